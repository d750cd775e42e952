/*
 * Typed reads through the cache (lg_model_find_cached) against real PostgreSQL and Redis: a
 * miss reads through the ORM's statement path and fills, a hit decodes into the model's
 * struct exactly as lg_model_find does (strings with escapes and non-ASCII, numeric digits,
 * arrays with NULLs, timestamptz in another session zone, jsonb, uuid, bool); models without
 * a policy and the bypass flag go to the database; a cached value older than the caller's
 * min_version is a miss; an absent row is cached when the policy says so; the TTL is jittered.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/cache_contract.h>
#include <libguard/libguard.h>

#include "lg_test.h"

static char schema_name[32];

#define CI_COLUMNS(X)                                                                              \
	X(ci, id, LG_INT64, LG_COL_PK)                                                             \
	X(ci, name, LG_TEXT, LG_COL_NULLABLE)                                                      \
	X(ci, score, LG_NUMERIC, LG_COL_NULLABLE)                                                  \
	X(ci, tags, LG_TEXT_ARRAY, LG_COL_NULLABLE)                                                \
	X(ci, nums, LG_INT64_ARRAY, LG_COL_NULLABLE)                                               \
	X(ci, at, LG_TIMESTAMPTZ, LG_COL_NULLABLE)                                                 \
	X(ci, ok, LG_BOOL, LG_COL_NULLABLE)                                                        \
	X(ci, doc, LG_JSONB, LG_COL_NULLABLE)                                                      \
	X(ci, u, LG_UUID, LG_COL_NULLABLE)                                                         \
	X(ci, f, LG_FLOAT64, LG_COL_NULLABLE)                                                      \
	X(ci, lg_version, LG_INT64, LG_COL_NULLABLE)
LG_MODEL_DECLARE(ci, CI_COLUMNS);
LG_MODEL_DEFINE(ci, schema_name, "items", CI_COLUMNS);

/* The same table, without a cache policy. */
#define CJ_COLUMNS(X)                                                                              \
	X(cj, id, LG_INT64, LG_COL_PK)                                                             \
	X(cj, name, LG_TEXT, LG_COL_NULLABLE)
LG_MODEL_DECLARE(cj, CJ_COLUMNS);
LG_MODEL_DEFINE(cj, schema_name, "items", CJ_COLUMNS);

static struct lg_runtime *rt;
static struct lg_pool *pool;
static struct lg_redis *redis;
static struct lg_cache *cache;
static struct lg_db db;

static void exec_ok(const char *sql)
{
	struct lg_error err;
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s: %s", sql, err.message);
}

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	snprintf(schema_name, sizeof(schema_name), "lg_cmodel_%d", (int)getpid());
	char dsn[1024];
	/* Another session zone: to_jsonb writes -04:00 offsets, the decode still gets UTC µs. */
	snprintf(dsn, sizeof(dsn), "%s options='-c TimeZone=America/New_York'", lg_test_pg_dsn());
	struct lg_pool_config pc = {.conninfo = dsn, .min_conns = 2};
	struct lg_error err;
	cr_assert_eq(lg_pool_new(rt, &pc, &pool, &err), 0, "%s", err.message);
	const char *port = getenv("LG_TEST_REDIS_PORT");
	cr_assert_not_null(port, "run through scripts/test (LG_TEST_REDIS_PORT)");
	struct lg_redis_config rc = {.host = "127.0.0.1", .port = atoi(port)};
	cr_assert_eq(lg_redis_new(rt, &rc, &redis, &err), 0, "%s", err.message);
	struct lg_cache_config cc = {.pool = pool, .redis = redis};
	cr_assert_eq(lg_cache_new(&cc, &cache, &err), 0, "%s", err.message);
	struct lg_cache_policy pol = {.ttl_ms = 60000, .jitter_pct = 20, .absent_ttl_ms = 60000};
	cr_assert_eq(lg_cache_policy_set(cache, &ci_model, &pol, &err), 0, "%s", err.message);
	db = (struct lg_db){.pool = pool};
	char sql[1024];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema_name);
	exec_ok(sql);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema_name);
	exec_ok(sql);
	snprintf(
	    sql, sizeof(sql),
	    "CREATE TABLE %s.items (id int8 PRIMARY KEY, name text, score numeric, tags text[],"
	    " nums int8[], at timestamptz, ok bool, doc jsonb, u uuid, f float8,"
	    " lg_version bigint)",
	    schema_name);
	exec_ok(sql);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s.items VALUES (1, E'a \"q\" \\\\ \\u00e9 \\U0001F600 \\t', 1.50,"
		 " ARRAY['x', 'b c', NULL, 'q\"}'], ARRAY[1, NULL, -3]::int8[],"
		 " '2024-03-31 00:30:00.123456+00', true, '{\"k\": [1, 2], \"s\": \"\\\\n\"}',"
		 " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0.1, 7),"
		 " (2, NULL, NULL, '{}', NULL, NULL, false, NULL, NULL, -2.5e-5, 8)",
		 schema_name);
	exec_ok(sql);
}

static void teardown(void)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema_name);
	lg_pool_exec(pool, sql, NULL);
	lg_cache_free(cache);
	lg_redis_free(redis);
	lg_pool_free(pool);
	lg_runtime_free(rt);
}

TestSuite(cache_model, .init = setup, .fini = teardown);

static void assert_same(const struct ci *a, const struct ci *b)
{
	cr_assert_eq(a->lg_null, b->lg_null);
	cr_assert_eq(a->id, b->id);
	cr_assert_eq(a->name == NULL, b->name == NULL);
	if (a->name != NULL) {
		cr_assert_str_eq(a->name, b->name);
	}
	cr_assert_eq(a->score == NULL, b->score == NULL);
	if (a->score != NULL) {
		cr_assert_str_eq(a->score, b->score);
	}
	cr_assert_eq(a->tags.n, b->tags.n);
	for (size_t i = 0; i < a->tags.n; i++) {
		cr_assert_eq(a->tags.v[i] == NULL, b->tags.v[i] == NULL, "tag %zu", i);
		if (a->tags.v[i] != NULL) {
			cr_assert_str_eq(a->tags.v[i], b->tags.v[i]);
		}
	}
	cr_assert_eq(a->nums.n, b->nums.n);
	for (size_t i = 0; i < a->nums.n; i++) {
		cr_assert_eq(a->nums.v[i], b->nums.v[i]);
		cr_assert_eq(a->nums.nulls != NULL && a->nums.nulls[i],
			     b->nums.nulls != NULL && b->nums.nulls[i]);
	}
	cr_assert_eq(a->at, b->at);
	cr_assert_eq(a->ok, b->ok);
	cr_assert_eq(a->doc == NULL, b->doc == NULL);
	if (a->doc != NULL) {
		cr_assert_str_eq(a->doc, b->doc);
	}
	cr_assert_eq(memcmp(a->u.b, b->u.b, 16), 0);
	cr_assert_eq(a->f, b->f);
	cr_assert_eq(a->lg_version, b->lg_version);
}

static int find(int64_t id, struct lg_find_opts *o, struct ci *out)
{
	struct lg_param key[] = {lg_param_int64(id)};
	struct lg_error err;
	int rc = lg_model_find_cached(&db, cache, &ci_model, key, o, out, &err);
	cr_assert(rc == 0 || rc == LG_ENOTFOUND, "%s", err.message);
	return rc;
}

Test(cache_model, a_hit_decodes_as_the_database_row_does)
{
	for (int64_t id = 1; id <= 2; id++) {
		struct ci want = {0};
		struct lg_param key[] = {lg_param_int64(id)};
		struct lg_error err;
		cr_assert_eq(lg_model_find(&db, &ci_model, key, &want, &err), 0, "%s", err.message);
		struct ci got = {0};
		struct lg_find_opts o = {0};
		cr_assert_eq(find(id, &o, &got), 0);
		cr_assert_not(o.from_cache, "row %lld: first read", (long long)id);
		assert_same(&want, &got);
		cr_assert_eq(find(id, &o, &got), 0);
		cr_assert(o.from_cache, "row %lld: second read", (long long)id);
		assert_same(&want, &got);
		lg_row_clear(&ci_model, &want);
		lg_row_clear(&ci_model, &got);
	}
	struct ci got = {0};
	struct lg_find_opts o = {0};
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert_str_eq(got.score, "1.50");
	cr_assert_str_eq(got.tags.v[3], "q\"}");
	cr_assert_null(got.tags.v[2]);
	lg_row_clear(&ci_model, &got);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.hits, 3);
	cr_assert_eq(st.misses, 2);
	cr_assert_eq(st.fills, 2);
	cr_assert_eq(st.bypassed, 0);
}

Test(cache_model, bypass_and_models_without_a_policy_read_the_database)
{
	struct ci got = {0};
	struct lg_find_opts o = {0};
	cr_assert_eq(find(1, &o, &got), 0); /* filled */
	o.bypass = true;
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert_not(o.from_cache);
	lg_row_clear(&ci_model, &got);
	struct cj other = {0};
	struct lg_param key[] = {lg_param_int64(1)};
	struct lg_error err;
	o = (struct lg_find_opts){0};
	cr_assert_eq(lg_model_find_cached(&db, cache, &cj_model, key, &o, &other, &err), 0, "%s",
		     err.message);
	cr_assert_not(o.from_cache);
	cr_assert_str_eq(other.name, "a \"q\" \\ \u00e9 \U0001F600 \t");
	lg_row_clear(&cj_model, &other);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.bypassed, 2);
	cr_assert_eq(st.hits + st.misses, 1);
}

Test(cache_model, a_cached_row_older_than_the_callers_write_is_a_miss)
{
	struct ci got = {0};
	struct lg_find_opts o = {0};
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert(o.from_cache);
	/* The caller wrote version 9 (the cache still holds 7): read from the database. */
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE %s.items SET name = 'mine', lg_version = 9 WHERE id = 1",
		 schema_name);
	exec_ok(sql);
	o = (struct lg_find_opts){.min_version = 9};
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert_not(o.from_cache);
	cr_assert_str_eq(got.name, "mine");
	cr_assert_eq(got.lg_version, 9);
	/* ...and its fill replaced the older value: the next read hits version 9. */
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert(o.from_cache);
	cr_assert_eq(got.lg_version, 9);
	lg_row_clear(&ci_model, &got);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.stale_for_caller, 1);
}

Test(cache_model, an_absent_row_is_cached_by_policy)
{
	struct ci got = {0};
	struct lg_find_opts o = {0};
	cr_assert_eq(find(404, &o, &got), LG_ENOTFOUND);
	cr_assert_not(o.from_cache);
	cr_assert_eq(find(404, &o, &got), LG_ENOTFOUND);
	cr_assert(o.from_cache);
	/* A caller that wrote the row meanwhile does not trust the marker (version 0). */
	o = (struct lg_find_opts){.min_version = 1};
	cr_assert_eq(find(404, &o, &got), LG_ENOTFOUND);
	cr_assert_not(o.from_cache);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.absent_hits, 1);
}

Test(cache_model, fills_get_a_jittered_ttl)
{
	struct ci got = {0};
	struct lg_find_opts o = {0};
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s.items (id, lg_version) SELECT g, 1 FROM generate_series(10, 49) g",
		 schema_name);
	exec_ok(sql);
	long long lo = -1;
	long long hi = -1;
	for (int64_t id = 10; id < 50; id++) {
		cr_assert_eq(find(id, &o, &got), 0);
		char key[256];
		char part[16];
		snprintf(part, sizeof(part), "%lld", (long long)id);
		const char *parts[] = {part};
		char table[64];
		snprintf(table, sizeof(table), "%s.items", schema_name);
		cr_assert_eq(lg_cache_key(key, sizeof(key), "lifeguard:model", table, parts, 1), 0);
		struct lg_redis_reply *r = NULL;
		struct lg_error err;
		cr_assert_eq(lg_redis_command(redis, NULL, &r, &err, "PTTL %s", key), 0);
		cr_assert_eq(r->type, LG_REDIS_INTEGER);
		long long ttl = r->integer;
		lg_redis_reply_free(r);
		cr_assert(ttl > 0 && ttl <= 72000, "ttl %lld outside 60 s +- 20 %%", ttl);
		lo = lo < 0 || ttl < lo ? ttl : lo;
		hi = ttl > hi ? ttl : hi;
	}
	lg_row_clear(&ci_model, &got);
	cr_assert_gt(hi - lo, 1000, "40 fills within %lld ms of each other: no jitter", hi - lo);
}

Test(cache_model, a_session_that_wrote_a_newer_version_misses_the_older_cached_row)
{
	struct ci got = {0};
	struct lg_find_opts o = {0};
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert(o.from_cache);
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE %s.items SET name = 'mine', lg_version = 9 WHERE id = 1",
		 schema_name);
	exec_ok(sql);
	/* The session noted the version its write returned; the cache still holds version 7. */
	struct lg_session *s = NULL;
	cr_assert_eq(lg_session_new(&s), 0);
	char table[64];
	snprintf(table, sizeof(table), "%s.items", schema_name);
	cr_assert_eq(lg_session_note_version(s, table, "1", 9), 0);
	struct lg_db with_session = {.pool = pool, .session = s};
	struct lg_param key[] = {lg_param_int64(1)};
	struct lg_error err;
	o = (struct lg_find_opts){0};
	cr_assert_eq(lg_model_find_cached(&with_session, cache, &ci_model, key, &o, &got, &err), 0,
		     "%s", err.message);
	cr_assert_not(o.from_cache);
	cr_assert_str_eq(got.name, "mine");
	/* The fill carried version 9: every caller hits it now. */
	o = (struct lg_find_opts){0};
	cr_assert_eq(find(1, &o, &got), 0);
	cr_assert(o.from_cache);
	cr_assert_eq(got.lg_version, 9);
	lg_row_clear(&ci_model, &got);
	lg_session_free(s);
}

static int statements;

static void count_sql(void *ud, const char *sql, int nparams)
{
	(void)ud;
	(void)sql;
	(void)nparams;
	statements++;
}

Test(cache_model, find_many_is_one_mget_and_one_statement_for_the_misses)
{
	struct lg_db counted = {.pool = pool, .on_sql = count_sql};
	struct lg_param keys[] = {lg_param_int64(1), lg_param_int64(404), lg_param_int64(2)};
	struct ci rows[3];
	memset(rows, 0, sizeof(rows));
	bool found[3];
	struct lg_find_opts o = {0};
	struct lg_error err;
	/* Row 2 cached beforehand: one hit, two misses read in one statement. */
	cr_assert_eq(find(2, &o, &rows[2]), 0);
	statements = 0;
	cr_assert_eq(
	    lg_model_find_many_cached(&counted, cache, &ci_model, keys, 3, rows, found, &o, &err),
	    0, "%s", err.message);
	cr_assert_eq(statements, 1);
	cr_assert_not(o.from_cache);
	cr_assert(found[0] && !found[1] && found[2]);
	for (int i = 0; i < 3; i += 2) {
		struct ci want = {0};
		cr_assert_eq(lg_model_find(&db, &ci_model, &keys[i], &want, &err), 0, "%s",
			     err.message);
		assert_same(&want, &rows[i]);
		lg_row_clear(&ci_model, &want);
	}
	/* Now all three are cached (row 404 as absent): no statement at all. */
	statements = 0;
	memset(found, 0, sizeof(found));
	cr_assert_eq(
	    lg_model_find_many_cached(&counted, cache, &ci_model, keys, 3, rows, found, &o, &err),
	    0, "%s", err.message);
	cr_assert_eq(statements, 0);
	cr_assert(o.from_cache);
	cr_assert(found[0] && !found[1] && found[2]);
	cr_assert_str_eq(rows[0].score, "1.50");
	cr_assert_eq(rows[2].lg_version, 8);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.fills, 2 + 1); /* row 2 alone, then row 1 and the marker of 404 */
	cr_assert_eq(st.absent_fills, 1);
	for (int i = 0; i < 3; i++) {
		lg_row_clear(&ci_model, &rows[i]);
	}
}

/* A cached value is read as PostgreSQL would print it even when its JSON escapes characters
 * to_jsonb never escapes (another writer): \u005c and \u0022 inside array elements. */
Test(cache_model, escaped_quotes_and_backslashes_in_array_elements_decode_exactly)
{
	struct ci got = {0};
	struct lg_find_opts o = {0};
	cr_assert_eq(find(2, &o, &got), 0); /* fills the key */
	char key[256];
	snprintf(key, sizeof(key), "lifeguard:model:%s.items:2", schema_name);
	const char *value = "{\"v\":8,\"row\":{\"id\":2,\"tags\":[\"a\\u005cb\",\"q\\u0022x\","
			    "\"\\\\\\\"\",\"\\u00e9\"],\"lg_version\":8}}";
	const char *argv[] = {"SET", key, value};
	struct lg_error err;
	cr_assert_eq(lg_redis_commandv(redis, NULL, 3, argv, NULL, NULL, &err), 0, "%s",
		     err.message);
	cr_assert_eq(find(2, &o, &got), 0);
	cr_assert(o.from_cache, "the planted value answers");
	cr_assert_eq(got.tags.n, 4);
	cr_assert_str_eq(got.tags.v[0], "a\\b");
	cr_assert_str_eq(got.tags.v[1], "q\"x");
	cr_assert_str_eq(got.tags.v[2], "\\\"");
	cr_assert_str_eq(got.tags.v[3], "\xc3\xa9");
	lg_row_clear(&ci_model, &got);
}
