/*
 * The ORM against real PostgreSQL: type round trips (NULLs, unicode, bytea with zero bytes,
 * int64 extremes, timestamptz across DST, uuid, jsonb, numeric), CRUD through change sets
 * (the exact SQL captured by the on_sql hook proves only changed columns are sent), the query
 * builder, optimistic locking, 100 coroutines upserting the same keys, keyset pagination and
 * streaming over 100k rows, relations with one statement each, transactions, and hostile
 * identifiers and values. Every test works in its own schema.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>
#include <libguard/model.h>
#include <libguard/query.h>

#include "lg_test.h"

/* ---- Models ---- */

/* Criterion runs each test in its own process, concurrently: each gets schema orm_<pid>. */
static char schema_name[32];

#define ALLT_COLUMNS(X)                                                                            \
	X(allt, id, LG_INT64, LG_COL_PK)                                                           \
	X(allt, i32, LG_INT32, LG_COL_NULLABLE)                                                    \
	X(allt, i64, LG_INT64, LG_COL_NULLABLE)                                                    \
	X(allt, f, LG_FLOAT64, LG_COL_NULLABLE)                                                    \
	X(allt, b, LG_BOOL, LG_COL_NULLABLE)                                                       \
	X(allt, t, LG_TEXT, LG_COL_NULLABLE)                                                       \
	X(allt, bin, LG_BYTEA, LG_COL_NULLABLE)                                                    \
	X(allt, u, LG_UUID, LG_COL_NULLABLE)                                                       \
	X(allt, ts, LG_TIMESTAMPTZ, LG_COL_NULLABLE)                                               \
	X(allt, j, LG_JSONB, LG_COL_NULLABLE)                                                      \
	X(allt, n, LG_NUMERIC, LG_COL_NULLABLE)
LG_MODEL_DECLARE(allt, ALLT_COLUMNS);
LG_MODEL_DEFINE(allt, schema_name, "allt", ALLT_COLUMNS);

#define USR_COLUMNS(X)                                                                             \
	X(usr, id, LG_INT64, LG_COL_PK | LG_COL_DEFAULT)                                           \
	X(usr, email, LG_TEXT, 0)                                                                  \
	X(usr, name, LG_TEXT, LG_COL_NULLABLE)                                                     \
	X(usr, score, LG_INT32, LG_COL_DEFAULT)                                                    \
	X(usr, version, LG_INT64, LG_COL_VERSION | LG_COL_DEFAULT)
LG_MODEL_DECLARE(usr, USR_COLUMNS);
LG_MODEL_DEFINE(usr, schema_name, "users", USR_COLUMNS);

#define BOOK_COLUMNS(X)                                                                            \
	X(book, id, LG_INT64, LG_COL_PK)                                                           \
	X(book, author_id, LG_INT64, 0)                                                            \
	X(book, title, LG_TEXT, 0)
LG_MODEL_DECLARE(book, BOOK_COLUMNS);
LG_MODEL_DEFINE(book, schema_name, "books", BOOK_COLUMNS);

#define TAG_COLUMNS(X)                                                                             \
	X(tag, id, LG_INT64, LG_COL_PK)                                                            \
	X(tag, label, LG_TEXT, 0)
LG_MODEL_DECLARE(tag, TAG_COLUMNS);
LG_MODEL_DEFINE(tag, schema_name, "tags", TAG_COLUMNS);

#define BT_COLUMNS(X)                                                                              \
	X(bt, book_id, LG_INT64, LG_COL_PK)                                                        \
	X(bt, tag_id, LG_INT64, LG_COL_PK)
LG_MODEL_DECLARE(bt, BT_COLUMNS);
LG_MODEL_DEFINE(bt, schema_name, "book_tags", BT_COLUMNS);

#define KV_COLUMNS(X)                                                                              \
	X(kv, k, LG_TEXT, LG_COL_PK)                                                               \
	X(kv, v, LG_TEXT, 0)                                                                       \
	X(kv, version, LG_INT64, LG_COL_VERSION | LG_COL_DEFAULT)
LG_MODEL_DECLARE(kv, KV_COLUMNS);
LG_MODEL_DEFINE(kv, schema_name, "kv", KV_COLUMNS);

/* A table and column named to break naive SQL building. */
#define EVIL_COLUMNS(X)                                                                            \
	X(evil, id, LG_INT64, LG_COL_PK)                                                           \
	X(evil, val, LG_TEXT, 0)
LG_MODEL_DECLARE(evil, EVIL_COLUMNS);
static const struct lg_model_col evil_cols[] = {
    {"id", LG_INT64, LG_COL_PK, offsetof(struct evil, id)},
    {"va\"l; DROP TABLE x;--", LG_TEXT, 0, offsetof(struct evil, val)},
};
static void *evil_cache; /* its hostile names go through the per-model cache too */
const struct lg_model evil_model = {schema_name,
				    "Robert'); DROP \"TABLE\" students;--",
				    evil_cols,
				    2,
				    sizeof(struct evil),
				    offsetof(struct evil, lg_null),
				    offsetof(struct evil, lg_mem),
				    &evil_cache};

/* ---- Fixture ---- */

static struct lg_runtime *rt;
static struct lg_pool *pool;
static struct lg_db db;
static char dsn[1024];

struct capture {
	int count;
	char last[4096];
	int last_nparams;
};
static struct capture cap;

static void on_sql(void *ud, const char *sql, int nparams)
{
	struct capture *c = ud;
	c->count++;
	snprintf(c->last, sizeof(c->last), "%s", sql);
	c->last_nparams = nparams;
}

static void exec_ok(const char *sql)
{
	struct lg_error err;
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s: %s", sql, err.message);
}

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	/* A DST-observing session time zone: timestamptz text then carries -05 and -04. */
	snprintf(schema_name, sizeof(schema_name), "orm_%d", (int)getpid());
	snprintf(dsn, sizeof(dsn), "%s options='-c TimeZone=America/New_York -c search_path=%s'",
		 lg_test_pg_dsn(), schema_name);
	struct lg_pool_config cfg = {.conninfo = dsn, .min_conns = 2, .max_conns = 4};
	struct lg_error err;
	cr_assert_eq(lg_pool_new(rt, &cfg, &pool, &err), 0, "%s", err.message);
	db = (struct lg_db){.pool = pool, .on_sql = on_sql, .on_sql_ud = &cap};
	memset(&cap, 0, sizeof(cap));
	char sql[128];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema_name);
	exec_ok(sql);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema_name);
	exec_ok(sql);
	exec_ok("CREATE TABLE allt (id int8 PRIMARY KEY, i32 int4, i64 int8, f float8, "
		"b bool, t text, bin bytea, u uuid, ts timestamptz, j jsonb, n numeric)");
	exec_ok("CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL "
		"UNIQUE, name text, score int4 NOT NULL DEFAULT 7, version int8 NOT NULL "
		"DEFAULT 1)");
	exec_ok("CREATE TABLE books (id int8 PRIMARY KEY, author_id int8 NOT NULL, "
		"title text NOT NULL)");
	exec_ok("CREATE TABLE tags (id int8 PRIMARY KEY, label text NOT NULL)");
	exec_ok("CREATE TABLE book_tags (book_id int8, tag_id int8, "
		"PRIMARY KEY (book_id, tag_id))");
	exec_ok("CREATE TABLE kv (k text PRIMARY KEY, v text NOT NULL, "
		"version int8 NOT NULL DEFAULT 1)");
	exec_ok("CREATE TABLE \"Robert'); DROP \"\"TABLE\"\" students;--\" "
		"(id int8 PRIMARY KEY, \"va\"\"l; DROP TABLE x;--\" text NOT NULL)");
}

static void teardown(void)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema_name);
	exec_ok(sql);
	lg_pool_free(pool);
	lg_runtime_free(rt);
}

TestSuite(orm, .init = setup, .fini = teardown);

static int64_t scalar(const char *sql)
{
	struct lg_result *r;
	struct lg_error err;
	cr_assert_eq(lg_pool_query(pool, sql, NULL, 0, NULL, &r, &err), 0, "%s: %s", sql,
		     err.message);
	int64_t v = -1;
	cr_assert_eq(lg_result_int64(r, 0, 0, &v), 0);
	lg_result_free(r);
	return v;
}

/* ---- Types ---- */

static const uint8_t zero_bytes[] = {0, 1, 0, 0xff, 0, 'x', 0};

Test(orm, every_type_round_trips_with_nulls)
{
	struct lg_error err;
	/* 2026-03-08 06:30:00 UTC and 07:30:00 UTC straddle New York's spring-forward (2:00
	 * EST -> 3:00 EDT); 2026-11-01 05:30 / 06:30 UTC straddle the fall-back. */
	const int64_t ts[4] = {1772951400000000LL + 123456, 1772955000000000LL, 1793511000000000LL,
			       1793514600000000LL + 1};
	struct lg_uuid u = {{0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66,
			     0x14, 0x17, 0x40, 0x00}};
	const char *big = "-12345678901234567890.000000000000000000001";
	for (int i = 0; i < 4; i++) {
		struct allt row = {0};
		struct lg_changes ch;
		lg_changes_init(&ch, &allt_model, &row);
		allt_set_id(&ch, i);
		allt_set_i32(&ch, i % 2 ? INT32_MIN : INT32_MAX);
		allt_set_i64(&ch, i % 2 ? INT64_MIN : INT64_MAX);
		allt_set_f(&ch, -0.1 * i);
		allt_set_b(&ch, i % 2);
		allt_set_t(&ch, "żółć 🐘 \"quoted\" 'single' \\ back");
		allt_set_bin(&ch, (struct lg_bytes){zero_bytes, sizeof(zero_bytes)});
		allt_set_u(&ch, u);
		allt_set_ts(&ch, ts[i]);
		allt_set_j(&ch, "{\"k\": [1, \"é\", null]}");
		allt_set_n(&ch, big);
		cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
		lg_row_clear(&allt_model, &row);
	}
	/* A row of NULLs. */
	struct allt nul = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &allt_model, &nul);
	allt_set_id(&ch, 99);
	allt_set_i32_null(&ch);
	allt_set_t_null(&ch);
	allt_set_bin_null(&ch);
	allt_set_n_null(&ch);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	lg_row_clear(&allt_model, &nul);

	for (int i = 0; i < 4; i++) {
		struct allt got = {0};
		struct lg_param key = lg_param_int64(i);
		cr_assert_eq(lg_model_find(&db, &allt_model, &key, &got, &err), 0, "%s",
			     err.message);
		cr_assert_eq(got.lg_null, 0);
		cr_assert_eq(got.i32, i % 2 ? INT32_MIN : INT32_MAX);
		cr_assert_eq(got.i64, i % 2 ? INT64_MIN : INT64_MAX);
		cr_assert_eq(got.f, -0.1 * i);
		cr_assert_eq(got.b, (bool)(i % 2));
		cr_assert_str_eq(got.t, "żółć 🐘 \"quoted\" 'single' \\ back");
		cr_assert_eq(got.bin.len, sizeof(zero_bytes));
		cr_assert_eq(memcmp(got.bin.data, zero_bytes, sizeof(zero_bytes)), 0);
		cr_assert_eq(memcmp(got.u.b, u.b, 16), 0);
		cr_assert_eq(got.ts, ts[i], "row %d: %" PRId64 " != %" PRId64, i, got.ts, ts[i]);
		cr_assert_str_eq(got.j, "{\"k\": [1, \"é\", null]}");
		cr_assert_str_eq(got.n, big);
		lg_row_clear(&allt_model, &got);
	}
	/* The server saw the instants in two different UTC offsets (DST really crossed). */
	cr_assert_eq(scalar("SELECT count(DISTINCT to_char(ts, 'TZH')) FROM allt"), 2);

	struct allt got = {0};
	struct lg_param key = lg_param_int64(99);
	cr_assert_eq(lg_model_find(&db, &allt_model, &key, &got, &err), 0, "%s", err.message);
	cr_assert_eq(got.lg_null, (LG_COL_BIT(allt_col__count) - 1) & ~LG_COL(allt_col_id));
	cr_assert(allt_t_is_null(&got));
	cr_assert_null(got.t);
	lg_row_clear(&allt_model, &got);
}

/* Row i of rows_borrow_from_results: every column set, from i. */
static void allt_fill(struct lg_changes *ch, int i, char *text, size_t size)
{
	snprintf(text, size, "text of row %d, \"quoted\" \\ 🐘", i);
	allt_set_id(ch, i);
	allt_set_i32(ch, -i);
	allt_set_i64(ch, INT64_MAX - i);
	allt_set_f(ch, 0.5 * i);
	allt_set_b(ch, i % 2);
	allt_set_t(ch, text);
	allt_set_bin(ch, (struct lg_bytes){zero_bytes, (size_t)i});
	allt_set_u(ch, (struct lg_uuid){{(uint8_t)i, 0xab}});
	allt_set_ts(ch, 1000000 * (int64_t)i);
	allt_set_j(ch, i % 2 ? "[1]" : "{\"a\": null}");
	allt_set_n(ch, i % 2 ? "1.5" : "-2");
}

static void allt_check(const struct allt *got, int i)
{
	char text[64];
	snprintf(text, sizeof(text), "text of row %d, \"quoted\" \\ 🐘", i);
	cr_assert_eq(got->id, i);
	cr_assert_eq(got->lg_null, 0, "row %d", i);
	cr_assert_eq(got->i32, -i);
	cr_assert_eq(got->i64, INT64_MAX - i);
	cr_assert_eq(got->f, 0.5 * i);
	cr_assert_eq(got->b, (bool)(i % 2));
	cr_assert_str_eq(got->t, text);
	cr_assert_eq(got->bin.len, (size_t)i);
	cr_assert_eq(memcmp(got->bin.data, zero_bytes, (size_t)i), 0);
	cr_assert_eq(got->u.b[0], i);
	cr_assert_eq(got->u.b[1], 0xab);
	cr_assert_eq(got->ts, 1000000 * (int64_t)i);
	cr_assert_str_eq(got->j, i % 2 ? "[1]" : "{\"a\": null}");
	cr_assert_str_eq(got->n, i % 2 ? "1.5" : "-2");
}

/* Decoded strings point into the query results, which the rows keep: a listing keeps every
 * result appended to it, a loaded row its own, until they are freed. */
Test(orm, rows_borrow_from_results)
{
	struct lg_error err;
	for (int i = 1; i <= 5; i++) {
		struct allt row = {0};
		struct lg_changes ch;
		char text[64];
		lg_changes_init(&ch, &allt_model, &row);
		allt_fill(&ch, i, text, sizeof(text));
		cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
		allt_check(&row, i); /* RETURNING, decoded into the change set's row */
		lg_row_clear(&allt_model, &row);
	}
	exec_ok("INSERT INTO allt (id) VALUES (99)");
	/* A page decoded column by column, then a one-row result into the same container. */
	struct lg_rows rows = {0};
	struct lg_query q;
	lg_query_init(&q, &allt_model);
	allt_query_lt(&q, allt_col_id, lg_param_int64(99));
	allt_query_order(&q, allt_col_id, false);
	cr_assert_eq(lg_query_all(&db, &q, &rows, &err), 0, "%s", err.message);
	lg_query_close(&q);
	lg_query_init(&q, &allt_model);
	allt_query_eq(&q, allt_col_id, lg_param_int64(99));
	cr_assert_eq(lg_query_all(&db, &q, &rows, &err), 0, "%s", err.message);
	lg_query_close(&q);
	cr_assert_eq(rows.n, 6);
	/* A result whose third row does not fit int4 appends nothing, not two rows. */
	const char *bad = "SELECT g::int8 AS id, CASE WHEN g = 3 THEN 5000000000 ELSE g END AS "
			  "i32, 'x' AS t FROM generate_series(1, 3) g";
	cr_assert_eq(lg_model_raw(&db, &allt_model, bad, NULL, 0, &rows, &err), LG_ERANGE);
	cr_assert_eq(rows.n, 6);
	for (int i = 1; i <= 5; i++) {
		allt_check(LG_ROWS_AT(&rows, struct allt, (size_t)i - 1), i);
	}
	const struct allt *nul = LG_ROWS_AT(&rows, struct allt, 5);
	cr_assert_eq(nul->id, 99);
	cr_assert_eq(nul->lg_null, (LG_COL_BIT(allt_col__count) - 1) & ~LG_COL(allt_col_id));
	cr_assert_null(nul->t);
	cr_assert_null(nul->bin.data);
	lg_rows_free(&rows);

	/* Several rows of a column subset, and of a raw result matched by name (reordered, with
	 * a column the model lacks): only those fields are filled. */
	lg_query_init(&q, &allt_model);
	lg_query_select(&q, LG_COL(allt_col_id) | LG_COL(allt_col_t) | LG_COL(allt_col_n));
	allt_query_lt(&q, allt_col_id, lg_param_int64(99));
	allt_query_order(&q, allt_col_id, false);
	cr_assert_eq(lg_query_all(&db, &q, &rows, &err), 0, "%s", err.message);
	lg_query_close(&q);
	const char *raw = "SELECT t, 'x' AS other, i32, id FROM allt WHERE id < 99 ORDER BY id";
	cr_assert_eq(lg_model_raw(&db, &allt_model, raw, NULL, 0, &rows, &err), 0, "%s",
		     err.message);
	cr_assert_eq(rows.n, 10);
	for (int i = 1; i <= 5; i++) {
		const struct allt *sub = LG_ROWS_AT(&rows, struct allt, (size_t)i - 1);
		const struct allt *byname = LG_ROWS_AT(&rows, struct allt, (size_t)i + 4);
		char text[64];
		snprintf(text, sizeof(text), "text of row %d, \"quoted\" \\ 🐘", i);
		cr_assert_eq(sub->id, i);
		cr_assert_str_eq(sub->t, text);
		cr_assert_str_eq(sub->n, i % 2 ? "1.5" : "-2");
		cr_assert_eq(sub->i64, 0);
		cr_assert_null(sub->j);
		cr_assert_eq(byname->id, i);
		cr_assert_eq(byname->i32, -i);
		cr_assert_str_eq(byname->t, text);
		cr_assert_null(byname->n);
		/* Columns absent from a result read as NULL, not as zero values. */
		uint64_t all = LG_COL_BIT(allt_col__count) - 1;
		cr_assert_eq(sub->lg_null, all & ~(LG_COL(allt_col_id) | LG_COL(allt_col_t) |
						   LG_COL(allt_col_n)));
		cr_assert_eq(byname->lg_null, all & ~(LG_COL(allt_col_id) | LG_COL(allt_col_t) |
						      LG_COL(allt_col_i32)));
		cr_assert(allt_i64_is_null(sub) && allt_f_is_null(byname) && !allt_t_is_null(sub));
	}
	lg_rows_free(&rows);
	/* The same through the single-row path. */
	struct allt one = {0};
	lg_query_init(&q, &allt_model);
	lg_query_select(&q, LG_COL(allt_col_id));
	allt_query_eq(&q, allt_col_id, lg_param_int64(2));
	cr_assert_eq(lg_query_first(&db, &q, &one, &err), 0, "%s", err.message);
	lg_query_close(&q);
	cr_assert_eq(one.id, 2);
	cr_assert_eq(one.lg_null, (LG_COL_BIT(allt_col__count) - 1) & ~LG_COL(allt_col_id));
	lg_row_clear(&allt_model, &one);
	lg_query_init(&q, &allt_model);
	allt_query_eq(&q, allt_col_id, lg_param_int64(99));
	cr_assert_eq(lg_query_all(&db, &q, &rows, &err), 0, "%s", err.message);
	lg_query_close(&q);

	/* A found row keeps its result past other statements and the listing's release. */
	struct allt found = {0}, first = {0}, copy = {0};
	struct lg_param key = lg_param_int64(3);
	cr_assert_eq(lg_model_find(&db, &allt_model, &key, &found, &err), 0, "%s", err.message);
	lg_query_init(&q, &allt_model);
	allt_query_gt(&q, allt_col_id, lg_param_int64(3));
	allt_query_order(&q, allt_col_id, true);
	cr_assert_eq(lg_query_first(&db, &q, &first, &err), 0, "%s", err.message);
	lg_query_close(&q);
	lg_rows_free(&rows);
	cr_assert_eq(scalar("SELECT count(*) FROM allt"), 6);
	allt_check(&found, 3);
	cr_assert_eq(first.id, 99);
	cr_assert(allt_t_is_null(&first));
	/* Reloading over a loaded row releases the old result and takes the new one. */
	cr_assert_eq(lg_model_reload(&db, &allt_model, &found, &err), 0, "%s", err.message);
	allt_check(&found, 3);
	/* A copy owns compact copies of the strings and outlives the original. */
	cr_assert_eq(lg_row_copy(&allt_model, &copy, &found), 0);
	cr_assert_neq(copy.t, found.t);
	lg_row_clear(&allt_model, &found);
	allt_check(&copy, 3);
	lg_row_clear(&allt_model, &copy);
	lg_row_clear(&allt_model, &first);
}

/* ---- CRUD and change sets ---- */

static void new_user(const char *email, struct usr *out)
{
	struct lg_error err;
	memset(out, 0, sizeof(*out));
	struct lg_changes ch;
	lg_changes_init(&ch, &usr_model, out);
	usr_set_email(&ch, email);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
}

Test(orm, change_sets_send_only_changed_columns)
{
	struct lg_error err;
	struct usr u;
	cap.count = 0;
	new_user("a@x", &u);
	cr_assert_eq(cap.count, 1);
	char want[512];
	snprintf(want, sizeof(want),
		 "INSERT INTO \"%s\".\"users\" (\"email\") VALUES ($1) RETURNING \"id\", "
		 "\"email\", \"name\", \"score\", \"version\"",
		 schema_name);
	cr_assert_str_eq(cap.last, want);
	cr_assert_eq(cap.last_nparams, 1);
	/* Server defaults came back through RETURNING. */
	cr_assert_gt(u.id, 0);
	cr_assert_eq(u.score, 7);
	cr_assert_eq(u.version, 1);
	cr_assert(usr_name_is_null(&u));
	cr_assert_str_eq(u.email, "a@x");

	struct lg_changes ch;
	lg_changes_init(&ch, &usr_model, &u);
	usr_set_name(&ch, "Ann");
	cr_assert_eq(lg_model_update(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_eq(cap.count, 2);
	snprintf(want, sizeof(want),
		 "UPDATE \"%s\".\"users\" SET \"name\" = $1, \"version\" = \"version\" + 1 "
		 "WHERE \"id\" = $2 AND \"version\" = $3 RETURNING \"id\", \"email\", "
		 "\"name\", \"score\", \"version\"",
		 schema_name);
	cr_assert_str_eq(cap.last, want);
	cr_assert_eq(cap.last_nparams, 3);
	cr_assert_eq(u.version, 2);
	cr_assert_str_eq(u.name, "Ann");
	cr_assert_eq(ch.changed, 0);

	/* Another writer changes score: our update of name must not overwrite it. */
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE users SET score = 42 WHERE id = %" PRId64, u.id);
	exec_ok(sql);
	struct usr fresh = {0};
	struct lg_param key = lg_param_int64(u.id);
	cr_assert_eq(lg_model_find(&db, &usr_model, &key, &fresh, &err), 0, "%s", err.message);
	lg_changes_init(&ch, &usr_model, &fresh);
	usr_set_name_null(&ch);
	cr_assert_eq(lg_model_update(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_eq(fresh.score, 42);
	cr_assert(usr_name_is_null(&fresh));

	/* Nothing changed: nothing sent. */
	int before = cap.count;
	cr_assert_eq(lg_model_update(&db, &ch, &err), 0);
	cr_assert_eq(cap.count, before);

	/* A NOT NULL column set to NULL is refused before anything is sent. */
	usr_set_email_null(&ch);
	cr_assert_eq(lg_model_update(&db, &ch, &err), LG_EINVAL);
	cr_assert_eq(cap.count, before);

	cr_assert_eq(lg_model_delete(&db, &usr_model, &fresh, &err), 0, "%s", err.message);
	cr_assert_eq(lg_model_delete(&db, &usr_model, &fresh, &err), LG_ENOTFOUND);
	cr_assert_eq(lg_model_find(&db, &usr_model, &key, &fresh, &err), LG_ENOTFOUND);
	lg_row_clear(&usr_model, &fresh);
	lg_row_clear(&usr_model, &u);
}

Test(orm, optimistic_lock_reports_lost_update)
{
	struct lg_error err;
	struct usr a, b = {0};
	new_user("lock@x", &a);
	struct lg_param key = lg_param_int64(a.id);
	cr_assert_eq(lg_model_find(&db, &usr_model, &key, &b, &err), 0);

	struct lg_changes ca, cb;
	lg_changes_init(&ca, &usr_model, &a);
	usr_set_name(&ca, "first");
	cr_assert_eq(lg_model_update(&db, &ca, &err), 0, "%s", err.message);

	lg_changes_init(&cb, &usr_model, &b);
	usr_set_name(&cb, "second");
	cr_assert_eq(lg_model_update(&db, &cb, &err), LG_ESERVER);
	cr_assert_str_eq(err.sqlstate, "40001");
	cr_assert(strstr(err.message, "optimistic lock") != NULL, "%s", err.message);

	struct usr now = {0};
	cr_assert_eq(lg_model_find(&db, &usr_model, &key, &now, &err), 0);
	cr_assert_str_eq(now.name, "first");
	cr_assert_eq(now.version, 2);

	/* A missing row is not a conflict. */
	struct usr ghost = {.id = 987654321, .email = "g", .version = 1};
	struct lg_changes cg;
	lg_changes_init(&cg, &usr_model, &ghost);
	usr_set_name(&cg, "x");
	cr_assert_eq(lg_model_update(&db, &cg, &err), LG_ENOTFOUND);
	lg_row_clear(&usr_model, &a);
	lg_row_clear(&usr_model, &b);
	lg_row_clear(&usr_model, &now);
}

/* ---- Query builder ---- */

Test(orm, query_builder_runs)
{
	struct lg_error err;
	char email[32];
	for (int i = 0; i < 20; i++) {
		struct usr u;
		snprintf(email, sizeof(email), "q%02d@%s", i, i % 2 ? "odd" : "even");
		new_user(email, &u);
		if (i % 5 == 0) {
			struct lg_changes ch;
			lg_changes_init(&ch, &usr_model, &u);
			usr_set_name(&ch, "five");
			cr_assert_eq(lg_model_update(&db, &ch, &err), 0, "%s", err.message);
		}
		lg_row_clear(&usr_model, &u);
	}
	struct lg_query q;
	lg_query_init(&q, &usr_model);
	usr_query_ilike(&q, usr_col_email, lg_param_text("%@ODD"));
	lg_query_or(&q);
	usr_query_eq(&q, usr_col_name, lg_param_text("five"));
	usr_query_is_null(&q, usr_col_name);
	lg_query_end(&q);
	usr_query_order(&q, usr_col_email, true);
	lg_query_limit(&q, 4);
	lg_query_offset(&q, 1);
	struct lg_rows rows = {0};
	cr_assert_eq(lg_query_all(&db, &q, &rows, &err), 0, "%s", err.message);
	cr_assert_eq(rows.n, 4);
	const char *want[] = {"q17@odd", "q15@odd", "q13@odd", "q11@odd"};
	for (size_t i = 0; i < rows.n; i++) {
		cr_assert_str_eq(LG_ROWS_AT(&rows, struct usr, i)->email, want[i]);
	}
	lg_rows_free(&rows);

	int64_t n = 0;
	cr_assert_eq(lg_query_count(&db, &q, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 10); /* odd ones: names NULL or "five" */
	bool ex = false;
	cr_assert_eq(lg_query_exists(&db, &q, &ex, &err), 0);
	cr_assert(ex);
	lg_query_close(&q);

	/* Subset of columns, IN, NOT, first. */
	lg_query_init(&q, &usr_model);
	struct lg_param in[3] = {lg_param_text("q00@even"), lg_param_text("q05@odd"),
				 lg_param_text("nope")};
	usr_query_in(&q, usr_col_email, in, 3);
	lg_query_not(&q);
	usr_query_eq(&q, usr_col_email, lg_param_text("q00@even"));
	lg_query_end(&q);
	lg_query_select(&q, LG_COL(usr_col_email));
	struct usr u = {0};
	cr_assert_eq(lg_query_first(&db, &q, &u, &err), 0, "%s", err.message);
	cr_assert_str_eq(u.email, "q05@odd");
	cr_assert_eq(u.id, 0); /* not loaded */
	lg_row_clear(&usr_model, &u);
	lg_query_close(&q);

	/* Delete by filter; a filterless delete is refused. */
	lg_query_init(&q, &usr_model);
	usr_query_like(&q, usr_col_email, lg_param_text("%@even"));
	int64_t gone = 0;
	cr_assert_eq(lg_query_delete(&db, &q, &gone, &err), 0, "%s", err.message);
	cr_assert_eq(gone, 10);
	lg_query_close(&q);
	lg_query_init(&q, &usr_model);
	cr_assert_eq(lg_query_delete(&db, &q, &gone, &err), LG_EINVAL);
	usr_query_eq(&q, usr_col_email, lg_param_text("q00@even"));
	cr_assert_eq(lg_query_first(&db, &q, &u, &err), LG_ENOTFOUND);
	lg_query_close(&q);
	cr_assert_eq(scalar("SELECT count(*) FROM users"), 10);

	/* Filters that reduce to TRUE match every row: refused like no filter at all. (The
	 * guard used to look only for a condition, and NOT (x IN ()) deleted everything.) */
	for (int shape = 0; shape < 3; shape++) {
		lg_query_init(&q, &usr_model);
		if (shape == 0) {
			lg_query_not(&q);
			usr_query_in(&q, usr_col_id, NULL, 0);
			lg_query_end(&q);
		} else if (shape == 1) {
			lg_query_or(&q); /* (NOT (FALSE)) OR id < 0 */
			lg_query_not(&q);
			usr_query_in(&q, usr_col_id, NULL, 0);
			lg_query_end(&q);
			usr_query_lt(&q, usr_col_id, lg_param_int64(0));
			lg_query_end(&q);
		} else {
			lg_query_and(&q);
			lg_query_end(&q);
		}
		cr_assert_eq(lg_query_delete(&db, &q, &gone, &err), LG_EINVAL, "shape %d", shape);
		cr_assert(strstr(err.message, "every row") != NULL, "%s", err.message);
		lg_query_close(&q);
		cr_assert_eq(scalar("SELECT count(*) FROM users"), 10);
	}
	/* A filter that reduces to FALSE runs and deletes nothing. */
	lg_query_init(&q, &usr_model);
	usr_query_in(&q, usr_col_id, NULL, 0);
	cr_assert_eq(lg_query_delete(&db, &q, &gone, &err), 0, "%s", err.message);
	cr_assert_eq(gone, 0);
	lg_query_close(&q);
	/* Emptying the table is a call of its own. */
	cr_assert_eq(lg_query_delete_all(&db, &usr_model, &gone, &err), 0, "%s", err.message);
	cr_assert_eq(gone, 10);
	cr_assert_eq(scalar("SELECT count(*) FROM users"), 0);
}

/* ---- Upserts from 100 coroutines ---- */

enum { UPSERTERS = 100, KEYS = 10 };

struct upserter {
	int id;
	int failures;
	struct lg_error err;
};

static void upsert_worker(void *arg)
{
	struct upserter *w = arg;
	for (int k = 0; k < KEYS; k++) {
		char key[16], val[16];
		snprintf(key, sizeof(key), "key%d", (k + w->id) % KEYS);
		snprintf(val, sizeof(val), "w%d", w->id);
		struct kv row = {0};
		struct lg_changes ch;
		lg_changes_init(&ch, &kv_model, &row);
		kv_set_k(&ch, key);
		kv_set_v(&ch, val);
		bool applied = false;
		struct lg_error err;
		int rc = lg_model_upsert(&db, &ch, LG_ON_CONFLICT_UPDATE, &applied, &err);
		if (rc != 0 || !applied || strcmp(row.v, val) != 0 || strcmp(row.k, key) != 0) {
			if (w->failures++ == 0) {
				w->err = err;
				w->err.code = rc;
				if (rc == 0) {
					snprintf(w->err.message, sizeof(w->err.message),
						 "applied %d, row %s=%s", applied, row.k, row.v);
				}
			}
		}
		lg_row_clear(&kv_model, &row);
	}
}

Test(orm, hundred_coroutines_upsert_same_keys)
{
	struct upserter w[UPSERTERS] = {0};
	for (int i = 0; i < UPSERTERS; i++) {
		w[i].id = i;
		cr_assert_eq(lg_coro_spawn(rt, upsert_worker, &w[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < UPSERTERS; i++) {
		cr_assert_eq(w[i].failures, 0, "worker %d: rc %d %s", i, w[i].err.code,
			     w[i].err.message);
	}
	cr_assert_eq(scalar("SELECT count(*) FROM kv"), KEYS);
	/* One insert then 99 updates per key, each bumping the version exactly once. */
	cr_assert_eq(scalar("SELECT count(*) FROM kv WHERE version = 100"), KEYS);
	cr_assert_eq(scalar("SELECT count(*) FROM kv WHERE v ~ '^w[0-9]+$'"), KEYS);

	/* DO NOTHING keeps the row and reports it. */
	struct lg_error err;
	struct kv row = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &kv_model, &row);
	kv_set_k(&ch, "key0");
	kv_set_v(&ch, "ignored");
	bool applied = true;
	cr_assert_eq(lg_model_upsert(&db, &ch, LG_ON_CONFLICT_NOTHING, &applied, &err), 0);
	cr_assert_not(applied);
	cr_assert_eq(scalar("SELECT count(*) FROM kv WHERE v = 'ignored'"), 0);
}

/* ---- Batch insert, keyset pagination, streaming ---- */

enum { BIG = 100000 };

static void fill_books(void)
{
	struct book *rows = calloc(BIG, sizeof(*rows));
	char(*titles)[16] = calloc(BIG, 16);
	for (int i = 0; i < BIG; i++) {
		snprintf(titles[i], 16, "t%d", i);
		rows[i] = (struct book){.id = i + 1, .author_id = i % 500, .title = titles[i]};
	}
	struct lg_error err;
	cap.count = 0;
	cr_assert_eq(lg_model_insert_many(&db, &book_model, rows, BIG, false, &err), 0, "%s",
		     err.message);
	cr_assert_eq(cap.count, BIG / 1000); /* chunks of 1,000 rows (3,000 parameters) */
	free(rows);
	free(titles);
	cr_assert_eq(scalar("SELECT count(*) FROM books"), BIG);
}

Test(orm, keyset_pagination_returns_each_row_once)
{
	fill_books();
	struct lg_error err;
	uint8_t *seen = calloc(BIG + 1, 1);
	struct book last = {0};
	bool have_last = false;
	size_t total = 0, pages = 0;
	for (;;) {
		struct lg_query q;
		lg_query_init(&q, &book_model);
		book_query_order(&q, book_col_id, false);
		if (have_last) {
			lg_query_after(&q, &last);
		}
		lg_query_limit(&q, 999);
		struct lg_rows rows = {0};
		cr_assert_eq(lg_query_all(&db, &q, &rows, &err), 0, "%s", err.message);
		lg_query_close(&q);
		pages++;
		for (size_t i = 0; i < rows.n; i++) {
			struct book *b = LG_ROWS_AT(&rows, struct book, i);
			cr_assert(b->id >= 1 && b->id <= BIG);
			cr_assert_eq(seen[b->id], 0, "id %" PRId64 " twice", b->id);
			seen[b->id] = 1;
			total++;
		}
		if (rows.n > 0) {
			last.id = LG_ROWS_AT(&rows, struct book, rows.n - 1)->id;
			have_last = true;
		}
		size_t n = rows.n;
		lg_rows_free(&rows);
		if (n < 999) {
			break;
		}
	}
	cr_assert_eq(total, BIG);
	cr_assert_eq(pages, BIG / 999 + 1);
	free(seen);
}

struct stream_ctx {
	uint8_t *seen;
	size_t n;
	int dup;
	int64_t prev;
};

static int stream_row(void *ud, const void *row)
{
	struct stream_ctx *s = ud;
	const struct book *b = row;
	if (s->seen[b->id]++ != 0 || b->id <= s->prev || b->author_id != 7) {
		s->dup++;
	}
	s->prev = b->id;
	s->n++;
	return 0;
}

static int stop_at_3(void *ud, const void *row)
{
	(void)row;
	return ++*(int *)ud == 3 ? 42 : 0;
}

Test(orm, streaming_with_filter_is_bounded_and_complete)
{
	fill_books();
	struct lg_error err;
	struct stream_ctx s = {.seen = calloc(BIG + 1, 1)};
	struct lg_query q;
	lg_query_init(&q, &book_model);
	book_query_eq(&q, book_col_author_id, lg_param_int64(7));
	cap.count = 0;
	cr_assert_eq(lg_query_each(&db, &q, 37, stream_row, &s, &err), 0, "%s", err.message);
	cr_assert_eq(s.n, BIG / 500);
	cr_assert_eq(s.dup, 0);
	cr_assert_eq(cap.count, BIG / 500 / 37 + 1); /* pages of 37 rows */
	int calls = 0;
	cr_assert_eq(lg_query_each(&db, &q, 2, stop_at_3, &calls, &err), 42);
	cr_assert_eq(calls, 3);
	book_query_order(&q, book_col_id, false);
	cr_assert_eq(lg_query_each(&db, &q, 2, stop_at_3, &calls, &err), LG_EINVAL);
	lg_query_close(&q);
	free(s.seen);
}

/* ---- Relations ---- */

Test(orm, relations_load_with_one_statement_each)
{
	struct lg_error err;
	exec_ok("INSERT INTO books SELECT g, g % 50, 'b' || g FROM generate_series(1, 500) g");
	exec_ok("INSERT INTO tags SELECT g, 'tag' || g FROM generate_series(1, 5) g");
	exec_ok("INSERT INTO book_tags SELECT b, t FROM generate_series(1, 40) b, "
		"generate_series(1, 5) t WHERE (b + t) % 2 = 0");
	/* 40 "parents": books 1..40 (has-many and m2m), whose author ids are the belongs-to. */
	struct lg_query q;
	lg_query_init(&q, &book_model);
	book_query_le(&q, book_col_id, lg_param_int64(40));
	book_query_order(&q, book_col_id, false);
	struct lg_rows parents = {0};
	cr_assert_eq(lg_query_all(&db, &q, &parents, &err), 0, "%s", err.message);
	lg_query_close(&q);
	cr_assert_eq(parents.n, 40);

	/* has-many: other books by the same authors (author_id -> author_id). */
	cap.count = 0;
	struct lg_rows siblings = {0};
	cr_assert_eq(LG_MODEL_LOAD_RELATED(&db, book, book_col_author_id, book, parents.data,
					   parents.n, book_col_author_id, &siblings, &err),
		     0, "%s", err.message);
	cr_assert_eq(cap.count, 1);
	cr_assert_eq(siblings.n, 400); /* 40 distinct authors x 10 books each */

	/* belongs-to: the tag whose id equals each parent's author_id (ids 1..5 exist). */
	struct lg_rows tags = {0};
	cr_assert_eq(LG_MODEL_LOAD_RELATED(&db, tag, tag_col_id, book, parents.data, parents.n,
					   book_col_author_id, &tags, &err),
		     0, "%s", err.message);
	cr_assert_eq(cap.count, 2);
	cr_assert_eq(tags.n, 5);

	/* many-to-many through book_tags. */
	struct lg_rows bt = {0};
	cr_assert_eq(LG_MODEL_LOAD_MANY_TO_MANY(&db, tag, tag_col_id, bt, bt_col_book_id,
						bt_col_tag_id, book, parents.data, parents.n,
						book_col_id, &bt, &err),
		     0, "%s", err.message);
	cr_assert_eq(cap.count, 3);
	cr_assert_eq((int64_t)bt.n, scalar("SELECT count(*) FROM book_tags"));
	for (size_t i = 0; i < bt.n; i++) {
		struct tag *t = LG_ROWS_AT(&bt, struct tag, i);
		cr_assert_lt(bt.owner[i], parents.n);
		struct book *b = LG_ROWS_AT(&parents, struct book, bt.owner[i]);
		cr_assert_eq((b->id + t->id) % 2, 0, "book %" PRId64 " tag %" PRId64, b->id, t->id);
	}
	/* A target without strings keeps no result: the owners are read before it goes. Each
	 * book_tags row comes once per parent sharing its tag. */
	struct lg_rows links = {0};
	cr_assert_eq(LG_MODEL_LOAD_MANY_TO_MANY(&db, bt, bt_col_tag_id, bt, bt_col_book_id,
						bt_col_tag_id, book, parents.data, parents.n,
						book_col_id, &links, &err),
		     0, "%s", err.message);
	cr_assert_gt(links.n, bt.n);
	cr_assert_null(links.arena);
	for (size_t i = 0; i < links.n; i++) {
		struct bt *l = LG_ROWS_AT(&links, struct bt, i);
		cr_assert_lt(links.owner[i], parents.n);
		struct book *b = LG_ROWS_AT(&parents, struct book, links.owner[i]);
		cr_assert_eq((b->id + l->tag_id) % 2, 0);
	}
	lg_rows_free(&links);
	lg_rows_free(&bt);
	lg_rows_free(&tags);
	lg_rows_free(&siblings);
	lg_rows_free(&parents);
}

/* ---- Transactions, raw SQL, hostile input ---- */

Test(orm, transactions_and_raw_sql)
{
	struct lg_error err;
	struct lg_tx *tx;
	cr_assert_eq(lg_pool_begin(pool, NULL, &tx, &err), 0, "%s", err.message);
	struct lg_db tdb = lg_db_tx(&db, tx);
	struct usr u = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &usr_model, &u);
	usr_set_email(&ch, "tx@x");
	cr_assert_eq(lg_model_insert(&tdb, &ch, &err), 0, "%s", err.message);
	cr_assert_eq(lg_tx_rollback(tx, &err), 0);
	cr_assert_eq(scalar("SELECT count(*) FROM users"), 0);

	cr_assert_eq(lg_pool_begin(pool, NULL, &tx, &err), 0, "%s", err.message);
	tdb = lg_db_tx(&db, tx);
	lg_changes_init(&ch, &usr_model, &u);
	usr_set_email(&ch, "tx2@x");
	cr_assert_eq(lg_model_insert(&tdb, &ch, &err), 0, "%s", err.message);
	cr_assert_eq(lg_tx_commit(tx, &err), 0);
	lg_row_clear(&usr_model, &u);

	struct lg_rows rows = {0};
	struct lg_param p = lg_param_text("tx2@x");
	cr_assert_eq(lg_model_raw(&db, &usr_model,
				  "SELECT email, id, 'extra' AS other FROM users "
				  "WHERE email = $1",
				  &p, 1, &rows, &err),
		     0, "%s", err.message);
	cr_assert_eq(rows.n, 1);
	cr_assert_str_eq(LG_ROWS_AT(&rows, struct usr, 0)->email, "tx2@x");
	cr_assert_gt(LG_ROWS_AT(&rows, struct usr, 0)->id, 0);
	lg_rows_free(&rows);
}

Test(orm, hostile_identifiers_and_values)
{
	struct lg_error err;
	const char *hostile = "x'); DROP TABLE users; --\"\\";
	struct evil e = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &evil_model, &e);
	evil_set_id(&ch, 1);
	evil_set_val(&ch, hostile);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_str_eq(e.val, hostile);
	lg_row_clear(&evil_model, &e);

	struct lg_query q;
	lg_query_init(&q, &evil_model);
	lg_query_eq(&q, 1, lg_param_text(hostile));
	cr_assert_eq(lg_query_first(&db, &q, &e, &err), 0, "%s", err.message);
	cr_assert_eq(e.id, 1);
	lg_row_clear(&evil_model, &e);
	lg_query_close(&q);
	cr_assert_eq(scalar("SELECT count(*) FROM users"), 0); /* still there */

	/* Invalid identifiers are refused before anything is sent. */
	char longname[70];
	memset(longname, 'n', 64);
	longname[64] = '\0';
	struct lg_model_col cols[] = {{"id", LG_INT64, LG_COL_PK, 0}};
	void *bad_cache = NULL;
	struct lg_model bad = {schema_name,
			       longname,
			       cols,
			       1,
			       sizeof(struct evil),
			       offsetof(struct evil, lg_null),
			       offsetof(struct evil, lg_mem),
			       &bad_cache};
	struct lg_model_col empty_cols[] = {{"", LG_INT64, LG_COL_PK, 0}};
	struct lg_model bad2 = {schema_name,
				"t",
				empty_cols,
				1,
				sizeof(struct evil),
				offsetof(struct evil, lg_null),
				offsetof(struct evil, lg_mem),
				NULL};
	cap.count = 0;
	struct lg_param key = lg_param_int64(1);
	cr_assert_eq(lg_model_find(&db, &bad, &key, &e, &err), LG_EINVAL);
	cr_assert_eq(lg_model_find(&db, &bad2, &key, &e, &err), LG_EINVAL);
	lg_query_init(&q, &bad);
	int64_t n;
	cr_assert_eq(lg_query_count(&db, &q, &n, &err), LG_EINVAL);
	lg_query_close(&q);
	cr_assert_eq(cap.count, 0);
	cr_assert_null(bad_cache, "an invalid model is never cached");
}

Test(orm, composite_keys_and_batch_insert_returning)
{
	struct lg_error err;
	/* Composite primary key: insert, find, delete. */
	struct bt link = {.book_id = 5, .tag_id = 9};
	struct lg_changes ch;
	lg_changes_init(&ch, &bt_model, &link);
	bt_set_book_id(&ch, 5);
	bt_set_tag_id(&ch, 9);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	struct bt got = {0};
	struct lg_param key[2] = {lg_param_int64(5), lg_param_int64(9)};
	cr_assert_eq(lg_model_find(&db, &bt_model, key, &got, &err), 0, "%s", err.message);
	cr_assert_eq(got.book_id, 5);
	cr_assert_eq(got.tag_id, 9);
	cr_assert_null(got.lg_mem, "a row without strings keeps no result");
	key[1] = lg_param_int64(8);
	cr_assert_eq(lg_model_find(&db, &bt_model, key, &got, &err), LG_ENOTFOUND);
	cr_assert_eq(lg_model_delete(&db, &bt_model, &link, &err), 0, "%s", err.message);
	cr_assert_eq(scalar("SELECT count(*) FROM book_tags"), 0);

	/* Batch insert with RETURNING: server defaults come back into each row, in order. */
	struct usr rows[5] = {0};
	char emails[5][16];
	for (int i = 0; i < 5; i++) {
		snprintf(emails[i], sizeof(emails[i]), "batch%d@x", i);
		rows[i].email = emails[i];
		rows[i].lg_null = LG_COL(usr_col_name); /* explicit NULL */
	}
	cap.count = 0;
	cr_assert_eq(lg_model_insert_many(&db, &usr_model, rows, 5, true, &err), 0, "%s",
		     err.message);
	/* BEGIN and COMMIT travel through the pool itself; one INSERT went through the hook. */
	cr_assert_eq(cap.count, 1);
	for (int i = 0; i < 5; i++) {
		cr_assert_gt(rows[i].id, 0);
		cr_assert_eq(rows[i].score, 7);
		cr_assert_eq(rows[i].version, 1);
		cr_assert(usr_name_is_null(&rows[i]));
		snprintf(emails[i], sizeof(emails[i]), "batch%d@x", i);
		cr_assert_str_eq(rows[i].email, emails[i]);
		if (i > 0) {
			cr_assert_gt(rows[i].id, rows[i - 1].id);
		}
		lg_row_clear(&usr_model, &rows[i]);
	}
	/* A NULL string without its NULL bit is refused and nothing lands (all or none). */
	struct usr bad[2] = {{.email = "ok@x", .lg_null = LG_COL(usr_col_name)}, {.email = NULL}};
	cr_assert_eq(lg_model_insert_many(&db, &usr_model, bad, 2, false, &err), LG_EINVAL);
	cr_assert_eq(scalar("SELECT count(*) FROM users"), 5);
}

struct desc_ctx {
	size_t n;
	int bad;
	char prev[16];
};

static int desc_row(void *ud, const void *row)
{
	struct desc_ctx *s = ud;
	const struct book *b = row;
	if ((s->n > 0 && strcmp(b->title, s->prev) >= 0) || b->author_id != 3) {
		s->bad++;
	}
	snprintf(s->prev, sizeof(s->prev), "%s", b->title);
	s->n++;
	return 0;
}

Test(orm, cursor_stream_any_order)
{
	exec_ok("INSERT INTO books SELECT g, g % 10, 'b' || lpad(g::text, 6, '0') "
		"FROM generate_series(1, 20000) g");
	struct lg_error err;
	struct lg_query q;
	lg_query_init(&q, &book_model);
	book_query_eq(&q, book_col_author_id, lg_param_int64(3));
	book_query_order(&q, book_col_title, true);
	struct desc_ctx s = {0};
	cap.count = 0;
	cr_assert_eq(lg_query_stream(&db, &q, 150, desc_row, &s, &err), 0, "%s", err.message);
	cr_assert_eq(s.n, 2000);
	cr_assert_eq(s.bad, 0);
	/* DECLARE, 14 FETCHes (13 full batches of 150, one short), CLOSE. */
	cr_assert_eq(cap.count, 1 + 14 + 1);
	int calls = 0;
	cr_assert_eq(lg_query_stream(&db, &q, 2, stop_at_3, &calls, &err), 42);
	lg_query_close(&q);
	/* The pool is healthy afterwards: the stream's transaction was ended. */
	cr_assert_eq(scalar("SELECT count(*) FROM books"), 20000);
}
