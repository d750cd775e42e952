/*
 * libguard ORM quickstart: generated models, a drift check, then insert, find, update only
 * what changed, query, upsert, load a relation for a batch, stream, and run a transaction.
 *
 *   lifeguard migrate up --dir libguard/examples/migrations --dsn CONNINFO
 *   quickstart CONNINFO
 *
 * It works on the tables of schema "quickstart" that the migrations create, and empties them
 * first. scripts/demo runs both.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <libguard/libguard.h>
#include <libguard/model.h>
#include <libguard/query.h>

/* 1. The models, generated from the migrated tables (libguard/examples/migrations) by
 *    lifeguard codegen --schema quickstart --out libguard/examples/models
 *    This file defines LG_MODEL_IMPLEMENTATION, so it also holds the model descriptors. */
#define LG_MODEL_IMPLEMENTATION
#include "models/users.h" /* struct users, users_col_*, users_set_*(), users_query_*() */
#include "models/posts.h" /* posts_model, ...; and the relation loaders of posts.user_id */

static void on_sql(void *ud, const char *sql, int nparams)
{
	(void)ud;
	printf("  sql> %s   [%d params]\n", sql, nparams);
}

static int fail(const char *what, int rc, const struct lg_error *err)
{
	fprintf(stderr, "quickstart: %s: %s (%s)\n", what, err->message, lg_strerror(rc));
	return 1;
}

static int count_row(void *ud, const void *row)
{
	(void)row;
	++*(int *)ud;
	return 0;
}

/* A transaction body: runs on a pinned connection, retried on serialization failures. */
static int add_post_tx(struct lg_tx *tx, void *arg, struct lg_error *err)
{
	struct lg_db db = lg_db_tx((const struct lg_db *)arg, tx);
	struct posts p = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &posts_model, &p);
	posts_set_user_id(&ch, 1);
	posts_set_title(&ch, "written in a transaction");
	int rc = lg_model_insert(&db, &ch, err);
	lg_row_clear(&posts_model, &p);
	return rc;
}

static int run(struct lg_pool *pool)
{
	struct lg_error err;
	struct lg_db db = {.pool = pool, .on_sql = on_sql};
	int rc;

	/* 2. Insert through a change set: only the columns you set are sent; RETURNING fills
	 *    the server defaults (id, version) back into the struct. */
	struct users ann = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &users_model, &ann);
	users_set_email(&ch, "ann@example.com");
	if ((rc = lg_model_insert(&db, &ch, &err)) != 0) {
		return fail("insert", rc, &err);
	}
	printf("inserted user %" PRId64 " (version %" PRId64 ", name %s)\n", ann.id, ann.version,
	       users_name_is_null(&ann) ? "NULL" : ann.name);

	/* 3. Find by primary key. */
	struct users u = {0};
	struct lg_param key = lg_param_int64(ann.id);
	if ((rc = lg_model_find(&db, &users_model, &key, &u, &err)) != 0) {
		return fail("find", rc, &err);
	}

	/* 4. Update only what changed; the version column guards against lost updates. */
	lg_changes_init(&ch, &users_model, &u);
	users_set_name(&ch, "Ann");
	if ((rc = lg_model_update(&db, &ch, &err)) != 0) {
		return fail("update", rc, &err);
	}
	printf("updated: name %s, version %" PRId64 "\n", u.name, u.version);
	lg_changes_init(&ch, &users_model, &ann); /* ann still holds version 1 */
	users_set_name(&ch, "stale writer");
	rc = lg_model_update(&db, &ch, &err);
	printf("stale update refused: %s (SQLSTATE %s)\n", err.message, err.sqlstate);

	/* 5. Batch insert (multi-row VALUES) and a query. */
	struct posts batch[6];
	const char *titles[6] = {"hello",   "pipelines", "coroutines",
				 "upserts", "keysets",   "relations"};
	for (int i = 0; i < 6; i++) {
		batch[i] = (struct posts){.user_id = ann.id, .title = titles[i]};
	}
	if ((rc = lg_model_insert_many(&db, &posts_model, batch, 6, true, &err)) != 0) {
		return fail("insert_many", rc, &err);
	}
	struct lg_query q;
	lg_query_init(&q, &posts_model);
	posts_query_eq(&q, posts_col_user_id, lg_param_int64(ann.id));
	lg_query_or(&q);
	posts_query_like(&q, posts_col_title, lg_param_text("%es"));
	posts_query_like(&q, posts_col_title, lg_param_text("h%"));
	lg_query_end(&q);
	posts_query_order(&q, posts_col_title, false);
	lg_query_limit(&q, 10);
	struct lg_rows rows = {0};
	rc = lg_query_all(&db, &q, &rows, &err);
	lg_query_close(&q);
	if (rc != 0) {
		return fail("query", rc, &err);
	}
	for (size_t i = 0; i < rows.n; i++) {
		printf("  post %" PRId64 ": %s\n", LG_ROWS_AT(&rows, struct posts, i)->id,
		       LG_ROWS_AT(&rows, struct posts, i)->title);
	}

	/* 6. A relation for a whole batch of parents: one statement, not one per parent. */
	struct lg_rows authors = {0};
	rc = posts_load_user_id_users(&db, rows.data, rows.n, &authors, &err); /* generated */
	printf("authors of %zu posts: %zu row(s)\n", rows.n, authors.n);
	lg_rows_free(&authors);
	lg_rows_free(&rows);
	if (rc != 0) {
		return fail("load_related", rc, &err);
	}

	/* 7. Upsert, streaming, a transaction, delete. */
	struct users up = {0};
	lg_changes_init(&ch, &users_model, &up);
	users_set_id(&ch, ann.id);
	users_set_email(&ch, "ann@example.org");
	bool applied = false;
	if ((rc = lg_model_upsert(&db, &ch, LG_ON_CONFLICT_UPDATE, &applied, &err)) != 0) {
		return fail("upsert", rc, &err);
	}
	printf("upserted: email %s, version %" PRId64 "\n", up.email, up.version);
	int n = 0;
	lg_query_init(&q, &posts_model);
	rc = lg_query_each(&db, &q, 4, count_row, &n, &err);
	lg_query_close(&q);
	if (rc != 0) {
		return fail("each", rc, &err);
	}
	printf("streamed %d posts in pages of 4\n", n);
	if ((rc = lg_pool_run_tx(pool, NULL, add_post_tx, &db, 3, &err)) != 0) {
		return fail("transaction", rc, &err);
	}
	if ((rc = lg_model_delete(&db, &users_model, &up, &err)) != 0) {
		return fail("delete", rc, &err);
	}
	lg_row_clear(&users_model, &up);
	lg_row_clear(&users_model, &u);
	lg_row_clear(&users_model, &ann);
	for (int i = 0; i < 6; i++) {
		lg_row_clear(&posts_model, &batch[i]);
	}
	printf("quickstart: done\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *dsn = argc > 1 ? argv[1] : "host=127.0.0.1 user=postgres dbname=postgres";
	struct lg_runtime *rt;
	struct lg_pool *pool;
	struct lg_error err;
	if (lg_runtime_new(NULL, NULL, &rt) != 0) {
		return 1;
	}
	struct lg_pool_config cfg = {.conninfo = dsn, .min_conns = 2};
	if (lg_pool_new(rt, &cfg, &pool, &err) != 0) {
		fprintf(stderr, "quickstart: %s\n", err.message);
		lg_runtime_free(rt);
		return 1;
	}
	/* The tables come from the migrations; the models must match them (a drift check). */
	const struct lg_model *models[] = {&users_model, &posts_model};
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(models) / sizeof(models[0]); i++) {
		if ((rc = lg_model_check(&(struct lg_db){.pool = pool}, models[i], &err)) != 0) {
			fprintf(stderr, "quickstart: %s (run lifeguard migrate up first)\n",
				err.message);
		}
	}
	if (rc == 0) {
		printf("models match their tables (lg_model_check)\n");
		rc = lg_pool_exec(
		    pool, "TRUNCATE quickstart.posts, quickstart.users RESTART IDENTITY", &err);
	}
	if (rc == 0) {
		rc = run(pool);
	}
	lg_pool_free(pool);
	lg_runtime_free(rt);
	return rc == 0 ? 0 : 1;
}
