/*
 * The ORM's SQL generation, pure: golden statements for every operation, identifier quoting
 * and validation, parameter numbering, and the query builder's groups and sticky errors.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libguard/alloc.h>
#include <libguard/model.h>
#include <libguard/query.h>

#include "query_build.h"

#define ITEM_COLUMNS(X)                                                                            \
	X(item, id, LG_INT64, LG_COL_PK | LG_COL_DEFAULT)                                          \
	X(item, name, LG_TEXT, 0)                                                                  \
	X(item, note, LG_TEXT, LG_COL_NULLABLE)                                                    \
	X(item, price, LG_NUMERIC, 0)                                                              \
	X(item, version, LG_INT64, LG_COL_VERSION | LG_COL_DEFAULT)
LG_MODEL_DECLARE(item, ITEM_COLUMNS);
LG_MODEL_DEFINE(item, "shop", "items", ITEM_COLUMNS);

/* Composite key, no schema, a quote inside a column name. */
#define LINK_COLUMNS(X)                                                                            \
	X(link, a, LG_INT32, LG_COL_PK)                                                            \
	X(link, b, LG_TEXT, LG_COL_PK)                                                             \
	X(link, weird, LG_TEXT, LG_COL_NULLABLE)
LG_MODEL_DECLARE(link, LINK_COLUMNS);
static const struct lg_model_col link_cols[] = {
    {"a", LG_INT32, LG_COL_PK, offsetof(struct link, a)},
    {"b", LG_TEXT, LG_COL_PK, offsetof(struct link, b)},
    {"we\"ird; DROP TABLE x;--", LG_TEXT, LG_COL_NULLABLE, offsetof(struct link, weird)},
};
static void *link_cache;
const struct lg_model link_model = {NULL,
				    "link",
				    link_cols,
				    3,
				    sizeof(struct link),
				    offsetof(struct link, lg_null),
				    offsetof(struct link, lg_mem),
				    &link_cache};

static char out[4096];

static const char *render(void (*fn)(struct lg_sqlbuf *))
{
	char stack[16]; /* tiny on purpose: exercises the move to the heap */
	struct lg_sqlbuf s;
	lg__sql_init(&s, stack, sizeof(stack));
	fn(&s);
	cr_assert_eq(s.err, 0);
	cr_assert_eq(strlen(s.buf), s.len);
	snprintf(out, sizeof(out), "%s", s.buf);
	lg__sql_free(&s);
	return out;
}

#define ALL_ITEM "\"id\", \"name\", \"note\", \"price\", \"version\""

static void find_item(struct lg_sqlbuf *s)
{
	lg__sql_find(s, &item_model);
}
static void find_link(struct lg_sqlbuf *s)
{
	lg__sql_find(s, &link_model);
}

Test(query_build, find_by_key)
{
	cr_assert_str_eq(render(find_item),
			 "SELECT " ALL_ITEM " FROM \"shop\".\"items\" WHERE \"id\" = $1");
	cr_assert_str_eq(render(find_link), "SELECT \"a\", \"b\", \"we\"\"ird; DROP TABLE x;--\" "
					    "FROM \"link\" WHERE \"a\" = $1 AND \"b\" = $2");
}

static void ins_changed(struct lg_sqlbuf *s)
{
	lg__sql_insert(s, &item_model, LG_COL(item_col_name) | LG_COL(item_col_price), 1, true);
}
static void ins_default(struct lg_sqlbuf *s)
{
	lg__sql_insert(s, &item_model, 0, 1, true);
}
static void ins_many(struct lg_sqlbuf *s)
{
	lg__sql_insert(s, &item_model, lg__model_insertable(&item_model), 3, false);
}

Test(query_build, insert)
{
	cr_assert_str_eq(render(ins_changed),
			 "INSERT INTO \"shop\".\"items\" (\"name\", \"price\") VALUES ($1, $2) "
			 "RETURNING " ALL_ITEM);
	cr_assert_str_eq(render(ins_default),
			 "INSERT INTO \"shop\".\"items\" DEFAULT VALUES RETURNING " ALL_ITEM);
	cr_assert_str_eq(render(ins_many),
			 "INSERT INTO \"shop\".\"items\" (\"name\", \"note\", \"price\") VALUES "
			 "($1, $2, $3), ($4, $5, $6), ($7, $8, $9)");
}

static void upd_one(struct lg_sqlbuf *s)
{
	lg__sql_update(s, &item_model, LG_COL(item_col_note));
}
static void upd_link(struct lg_sqlbuf *s)
{
	lg__sql_update(s, &link_model, LG_COL_BIT(2));
}

Test(query_build, update_sends_only_changed_columns_and_checks_version)
{
	cr_assert_str_eq(
	    render(upd_one),
	    "UPDATE \"shop\".\"items\" SET \"note\" = $1, \"version\" = \"version\" + 1 "
	    "WHERE \"id\" = $2 AND \"version\" = $3 RETURNING " ALL_ITEM);
	cr_assert_str_eq(render(upd_link),
			 "UPDATE \"link\" SET \"we\"\"ird; DROP TABLE x;--\" = $1 WHERE \"a\" = $2 "
			 "AND \"b\" = $3 RETURNING \"a\", \"b\", \"we\"\"ird; DROP TABLE x;--\"");
}

static void del_link(struct lg_sqlbuf *s)
{
	lg__sql_delete_pk(s, &link_model);
}
static void ups_update(struct lg_sqlbuf *s)
{
	lg__sql_upsert(s, &item_model, LG_COL(item_col_id) | LG_COL(item_col_name), true);
}
static void ups_nothing(struct lg_sqlbuf *s)
{
	lg__sql_upsert(s, &item_model, LG_COL(item_col_id) | LG_COL(item_col_name), false);
}

Test(query_build, delete_and_upsert)
{
	cr_assert_str_eq(render(del_link), "DELETE FROM \"link\" WHERE \"a\" = $1 AND \"b\" = $2");
	cr_assert_str_eq(
	    render(ups_update),
	    "INSERT INTO \"shop\".\"items\" (\"id\", \"name\") VALUES ($1, $2) ON "
	    "CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\", \"version\" = "
	    "\"shop\".\"items\".\"version\" + 1 RETURNING " ALL_ITEM);
	cr_assert_str_eq(render(ups_nothing),
			 "INSERT INTO \"shop\".\"items\" (\"id\", \"name\") VALUES ($1, $2) ON "
			 "CONFLICT (\"id\") DO NOTHING RETURNING " ALL_ITEM);
}

static void rel(struct lg_sqlbuf *s)
{
	lg__sql_related(s, &item_model, item_ci_id);
}
static void m2m(struct lg_sqlbuf *s)
{
	lg__sql_m2m(s, &item_model, item_ci_id, &link_model, 0, 1);
}

Test(query_build, relations_use_one_array_parameter)
{
	cr_assert_str_eq(render(rel), "SELECT " ALL_ITEM " FROM \"shop\".\"items\" WHERE \"id\" = "
				      "ANY($1::int8[])");
	cr_assert_str_eq(
	    render(m2m),
	    "SELECT j.\"a\", t.\"id\", t.\"name\", t.\"note\", t.\"price\", "
	    "t.\"version\" FROM \"shop\".\"items\" AS t JOIN \"link\" AS j ON t.\"id\" "
	    "= j.\"b\" WHERE j.\"a\" = ANY($1::int4[]) ORDER BY 1");
}

Test(query_build, builder_filters_groups_order_limit)
{
	struct lg_query q;
	lg_query_init(&q, &item_model);
	item_query_eq(&q, item_col_name, lg_param_text("x'; DROP TABLE items;--"));
	lg_query_or(&q);
	item_query_lt(&q, item_col_id, lg_param_int64(10));
	item_query_is_null(&q, item_col_note);
	lg_query_not(&q);
	item_query_ilike(&q, item_col_note, lg_param_text("%a%"));
	lg_query_end(&q);
	lg_query_end(&q);
	struct lg_param in[3] = {lg_param_int64(1), lg_param_int64(2), lg_param_int64(3)};
	item_query_in(&q, item_col_id, in, 3);
	item_query_ne(&q, item_col_version, lg_param_int64(0));
	item_query_order(&q, item_col_name, false);
	item_query_order(&q, item_col_id, true);
	lg_query_limit(&q, 20);
	lg_query_offset(&q, 40);
	char sql[1024];
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), 0);
	cr_assert_str_eq(sql, "SELECT " ALL_ITEM " FROM \"shop\".\"items\" WHERE \"name\" = $1 AND "
			      "(\"id\" < $2 OR \"note\" IS NULL OR NOT (\"note\" ILIKE $3)) AND "
			      "\"id\" IN ($4, $5, $6) AND \"version\" <> $7 ORDER BY \"name\", "
			      "\"id\" DESC LIMIT $8 OFFSET $9");
	/* The hostile value is a parameter, never SQL text. */
	cr_assert_eq(q.nparams, 7);
	cr_assert_eq(q.params[0].length, (int)strlen("x'; DROP TABLE items;--"));
	cr_assert_eq(lg_query_sql(&q, sql, 10), LG_ERANGE);
	lg_query_close(&q);
}

Test(query_build, select_subset_empty_groups_and_keyset)
{
	struct lg_query q;
	lg_query_init(&q, &item_model);
	lg_query_select(&q, LG_COL(item_col_id) | LG_COL(item_col_name));
	lg_query_or(&q);
	lg_query_end(&q);
	lg_query_and(&q);
	lg_query_end(&q);
	char sql[1024];
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), 0);
	cr_assert_str_eq(sql, "SELECT \"id\", \"name\" FROM \"shop\".\"items\" WHERE (FALSE) AND "
			      "(TRUE)");
	lg_query_close(&q);

	struct lg_query k;
	lg_query_init(&k, &link_model);
	lg_query_order(&k, 0, false);
	lg_query_order(&k, 1, false);
	struct link last = {.a = 7, .b = "z"};
	lg_query_after(&k, &last);
	lg_query_limit(&k, 100);
	cr_assert_eq(lg_query_sql(&k, sql, sizeof(sql)), 0);
	cr_assert_str_eq(sql, "SELECT \"a\", \"b\", \"we\"\"ird; DROP TABLE x;--\" FROM \"link\" "
			      "WHERE (\"a\", \"b\") > ($1, $2) ORDER BY \"a\", \"b\" LIMIT $3");
	lg_query_close(&k);
}

Test(query_build, many_params_spill_to_heap)
{
	struct lg_query q;
	lg_query_init(&q, &item_model);
	struct lg_param v[200];
	for (int i = 0; i < 200; i++) {
		v[i] = lg_param_int64(i);
	}
	item_query_in(&q, item_col_id, v, 200);
	item_query_eq(&q, item_col_name, lg_param_text("n"));
	static char sql[8192];
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), 0);
	cr_assert(strstr(sql, "$200) AND \"name\" = $201") != NULL, "%s", sql);
	cr_assert_eq(q.nparams, 201);
	lg_query_close(&q);
}

Test(query_build, broken_queries_are_refused)
{
	char sql[512];
	struct lg_query q;
	lg_query_init(&q, &item_model);
	lg_query_eq(&q, 99, lg_param_int64(1)); /* no such column */
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), LG_EINVAL);
	lg_query_close(&q);

	lg_query_init(&q, &item_model);
	lg_query_or(&q); /* never closed */
	item_query_eq(&q, item_col_id, lg_param_int64(1));
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), LG_EINVAL);
	lg_query_close(&q);

	lg_query_init(&q, &item_model);
	for (int i = 0; i < 10; i++) {
		lg_query_and(&q); /* too deep */
	}
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), LG_EINVAL);
	lg_query_close(&q);

	lg_query_init(&q, &item_model);
	lg_query_end(&q); /* unbalanced */
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), LG_EINVAL);
	lg_query_close(&q);
}

Test(query_build, identifiers_validated_and_quoted)
{
	cr_assert_eq(lg__ident_check(""), LG_EINVAL);
	cr_assert_eq(lg__ident_check(NULL), LG_EINVAL);
	char name[80];
	memset(name, 'a', 63);
	name[63] = '\0';
	cr_assert_eq(lg__ident_check(name), 0);
	name[63] = 'a';
	name[64] = '\0';
	cr_assert_eq(lg__ident_check(name), LG_EINVAL);

	struct lg_sqlbuf s;
	lg__sql_init(&s, NULL, 0);
	lg__sql_ident(&s, "a\"\"b");
	cr_assert_str_eq(s.buf, "\"a\"\"\"\"b\"");
	lg__sql_ident(&s, "");
	cr_assert_eq(s.err, LG_EINVAL);
	cr_assert_null(lg__sql_text(&s));
	lg__sql_free(&s);

	struct lg_model_col bad_cols[] = {{"", LG_INT64, LG_COL_PK, 0}};
	void *bad_cache = NULL;
	struct lg_model bad = {NULL, "t", bad_cols, 1, 16, 0, 8, &bad_cache};
	cr_assert_eq(lg__model_check(&bad), LG_EINVAL);
	cr_assert_null(bad_cache, "an invalid model is never cached");
	struct lg_model_col nopk_cols[] = {{"a", LG_INT64, 0, 0}};
	struct lg_model nopk = {NULL, "t", nopk_cols, 1, 16, 0, 8, NULL};
	cr_assert_eq(lg__model_check(&nopk), LG_EINVAL);
	struct lg_model longtable = {NULL, name, nopk_cols, 1, 16, 0, 8, NULL};
	cr_assert_eq(lg__model_check(&longtable), LG_EINVAL);
	cr_assert_eq(lg__model_check(&item_model), 0);
	cr_assert_eq(lg__model_check(&link_model), 0);

	/* A query over an invalid model never renders. */
	struct lg_query q;
	lg_query_init(&q, &bad);
	char sql[128];
	cr_assert_eq(lg_query_sql(&q, sql, sizeof(sql)), LG_EINVAL);
	lg_query_close(&q);
}

Test(query_build, change_set_marks_only_set_columns)
{
	struct item it = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &item_model, &it);
	item_set_name(&ch, "n");
	item_set_note_null(&ch);
	cr_assert_eq(ch.changed, LG_COL(item_col_name) | LG_COL(item_col_note));
	cr_assert(item_note_is_null(&it));
	cr_assert_not(item_name_is_null(&it));
	item_set_note(&ch, "x");
	cr_assert_not(item_note_is_null(&it));
	cr_assert_str_eq(it.note, "x");
}

static int alloc_budget; /* allocations allowed before failing; -1 = unlimited */

static void *fail_malloc(size_t size, void *ud)
{
	(void)ud;
	if (alloc_budget == 0) {
		return NULL;
	}
	if (alloc_budget > 0) {
		alloc_budget--;
	}
	return malloc(size);
}

static void *fail_realloc(void *p, size_t size, void *ud)
{
	(void)ud;
	if (alloc_budget == 0) {
		return NULL;
	}
	if (alloc_budget > 0) {
		alloc_budget--;
	}
	return realloc(p, size);
}

static void plain_free(void *p, void *ud)
{
	(void)ud;
	free(p);
}

Test(query_build, allocation_failures_are_reported_not_sent)
{
	struct lg_allocator a = {fail_malloc, fail_realloc, plain_free, NULL};
	lg_set_allocator(&a);
	int ok = 0, failed = 0;
	for (int budget = 0; budget < 10; budget++) {
		alloc_budget = budget;
		struct lg_query q;
		lg_query_init(&q, &item_model);
		struct lg_param v[100];
		for (int i = 0; i < 100; i++) {
			v[i] = lg_param_int64(i); /* spills params and the WHERE text to the heap */
		}
		item_query_in(&q, item_col_id, v, 100);
		static char sql[4096];
		int rc = lg_query_sql(&q, sql, sizeof(sql));
		/* Enough budget succeeds with the full text; too little fails with ENOMEM. */
		if (rc == 0) {
			cr_assert(strstr(sql, "$100)") != NULL);
			ok++;
		} else {
			cr_assert_eq(rc, LG_ENOMEM, "budget %d: rc %d", budget, rc);
			failed++;
		}
		lg_query_close(&q);
	}
	alloc_budget = -1;
	lg_set_allocator(NULL);
	cr_assert_gt(ok, 0);
	cr_assert_gt(failed, 0);
}

/* Every statement of model m, rendered one after the other into out. */
static void render_all(const struct lg_model *m, char *buf, size_t size)
{
	struct lg_sqlbuf s;
	lg__sql_init(&s, NULL, 0);
	uint64_t some = LG_COL_BIT(0) | LG_COL_BIT(m->ncols - 1);
	lg__sql_find(&s, m);
	lg__sql_delete_pk(&s, m);
	lg__sql_insert(&s, m, some, 2, true);
	lg__sql_update(&s, m, some);
	lg__sql_upsert(&s, m, lg__model_all(m), true);
	lg__sql_related(&s, m, 0);
	lg__sql_m2m(&s, m, 0, &link_model, 0, 1);
	const uint8_t order[2] = {1, 0};
	const bool desc[2] = {true, false};
	for (int k = LG__SELECT_ROWS; k <= LG__DELETE; k++) {
		struct lg_where w;
		lg__where_init(&w, NULL, 0);
		lg__where_cmp(&w, m, 1, "=", 1);
		lg__where_in(&w, m, 0, 2, 2);
		lg__where_null(&w, m, m->ncols - 1, true);
		lg__where_row_cmp(&w, m, order, 2, ">", 4);
		struct lg__select sel = {m, k == LG__SELECT_ROWS ? some : 0, &w, order, desc, 2, 6,
					 7};
		lg__sql_select(&s, &sel, (enum lg__select_kind)k);
		sel.cols = 0; /* every column: the cached SELECT head */
		lg__sql_select(&s, &sel, (enum lg__select_kind)k);
		lg__sql_free(&w.sql);
	}
	cr_assert_eq(s.err, 0);
	cr_assert_lt(s.len, size);
	memcpy(buf, s.buf, s.len + 1);
	lg__sql_free(&s);
}

Test(query_build, cached_model_renders_the_same_sql)
{
	static char want[2][8192], got[8192];
	const struct lg_model *models[2] = {&item_model, &link_model};
	for (int i = 0; i < 2; i++) {
		/* The same descriptor without a cache slot renders everything per call. */
		struct lg_model plain = *models[i];
		plain.lg_cache = NULL;
		cr_assert_eq(lg__model_check(&plain), 0);
		cr_assert_null(lg__model_cached(&plain));
		render_all(&plain, want[i], sizeof(want[i]));
		cr_assert_eq(lg__model_check(models[i]), 0);
		cr_assert_not_null(lg__model_cached(models[i]), "a valid model gets its cache");
		render_all(models[i], got, sizeof(got));
		cr_assert_str_eq(got, want[i]);
	}
	const struct lg__model_cache *c = lg__model_cached(&link_model);
	cr_assert_str_eq(c->text + c->find.off,
			 "SELECT \"a\", \"b\", \"we\"\"ird; DROP TABLE x;--\" "
			 "FROM \"link\" WHERE \"a\" = $1 AND \"b\" = $2");
	cr_assert_str_eq(c->text + c->del.off,
			 "DELETE FROM \"link\" WHERE \"a\" = $1 AND \"b\" = $2");
	cr_assert_eq(c->npk, 2);
	cr_assert_eq(c->pk, LG_COL_BIT(0) | LG_COL_BIT(1));
	cr_assert_eq(c->strings, LG_COL_BIT(1) | LG_COL_BIT(2));
	cr_assert_eq(lg__model_cached(&item_model)->strings,
		     LG_COL(item_col_name) | LG_COL(item_col_note) | LG_COL(item_col_price));
}

#define RACERS 8

static void *check_model(void *arg)
{
	cr_assert_eq(lg__model_check(arg), 0);
	return (void *)lg__model_cached(arg);
}

Test(query_build, racing_first_uses_publish_one_cache)
{
	/* A fresh slot, so that the threads race to build it. */
	static void *slot;
	struct lg_model m = item_model;
	m.lg_cache = &slot;
	pthread_t t[RACERS];
	for (int i = 0; i < RACERS; i++) {
		cr_assert_eq(pthread_create(&t[i], NULL, check_model, &m), 0);
	}
	for (int i = 0; i < RACERS; i++) {
		void *seen;
		pthread_join(t[i], &seen);
		cr_assert_eq(seen, slot, "every thread uses the one published cache");
	}
	cr_assert_not_null(slot);
}

/* More values than the protocol can number ($65535) are refused while building: nothing is
 * rendered or sent, and the counters never come near int overflow. */
Test(query_build, parameter_count_is_bounded_while_building)
{
	enum { N = 40000 };
	struct lg_param *v = calloc(N, sizeof(*v));
	cr_assert_not_null(v);
	for (int i = 0; i < N; i++) {
		v[i] = lg_param_int64(i);
	}
	struct lg_query q;
	lg_query_init(&q, &item_model);
	item_query_in(&q, item_col_id, v, N);
	char *sql = malloc(1 << 20);
	cr_assert_not_null(sql);
	cr_assert_eq(lg_query_sql(&q, sql, 1 << 20), 0, "one list of 40,000 fits");
	item_query_in(&q, item_col_id, v, N); /* 80,000 in all */
	cr_assert_eq(lg_query_sql(&q, sql, 1 << 20), LG_EINVAL);
	lg_query_close(&q);
	free(sql);
	free(v);
}
