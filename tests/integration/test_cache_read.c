/*
 * lg_cache (cache-aside reads) against real PostgreSQL and Redis: a miss reads the primary and
 * fills with the row's version, the next read hits; fences and tombstones refuse older fills
 * (the row is still served from the primary); missing rows fill nothing; Redis stalled or down
 * degrades to the primary; bad tables and keys get clear errors; many coroutines at once.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/cache_contract.h>
#include <libguard/libguard.h>

#include "lg_test.h"

static struct lg_runtime *rt;
static struct lg_pool *pool;
static struct lg_redis *redis;
static struct lg_cache *cache;
static char schema[32];
static char table[64];

/* Runs ';'-separated statements one by one (the extended protocol takes one at a time). */
static void exec_sql(const char *sql)
{
	char *copy = strdup(sql);
	char *save = NULL;
	for (char *s = strtok_r(copy, ";", &save); s != NULL; s = strtok_r(NULL, ";", &save)) {
		struct lg_error err;
		cr_assert_eq(lg_pool_exec(pool, s, &err), 0, "%s: %s", s, err.message);
	}
	free(copy);
}

static void redis_cmd(const char *fmt, const char *a, const char *b)
{
	struct lg_error err;
	cr_assert_eq(lg_redis_command(redis, NULL, NULL, &err, fmt, a, b), 0, "%s", err.message);
}

/* GET key as an Owned string, NULL when absent. */
static char *redis_get(const char *key)
{
	struct lg_redis_reply *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_command(redis, NULL, &r, &err, "GET %s", key), 0, "%s", err.message);
	char *v = r->type == LG_REDIS_STRING ? strdup(r->str) : NULL;
	lg_redis_reply_free(r);
	return v;
}

static void key_of(char *buf, size_t size, const char *prefix, const char *id)
{
	const char *parts[] = {id};
	cr_assert_eq(lg_cache_key(buf, size, prefix, table, parts, 1), 0);
}

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_error err;
	struct lg_pool_config pc = {.conninfo = lg_test_pg_dsn(), .min_conns = 2};
	cr_assert_eq(lg_pool_new(rt, &pc, &pool, &err), 0, "%s", err.message);
	const char *port = getenv("LG_TEST_REDIS_PORT");
	cr_assert_not_null(port, "run through scripts/test (LG_TEST_REDIS_PORT)");
	struct lg_redis_config rc = {.host = "127.0.0.1", .port = atoi(port)};
	cr_assert_eq(lg_redis_new(rt, &rc, &redis, &err), 0, "%s", err.message);
	struct lg_cache_config cc = {.pool = pool, .redis = redis};
	cr_assert_eq(lg_cache_new(&cc, &cache, &err), 0, "%s", err.message);
	snprintf(schema, sizeof(schema), "lg_cache_%d", (int)getpid());
	snprintf(table, sizeof(table), "%s.users", schema);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "DROP SCHEMA IF EXISTS %s CASCADE;"
		 "CREATE SCHEMA %s;"
		 "CREATE TABLE %s (id int PRIMARY KEY, name text, lg_version bigint);"
		 "INSERT INTO %s VALUES (1, 'ann', 5), (2, 'bob', 6), (3, 'cy', 7)",
		 schema, schema, table, table);
	exec_sql(sql);
}

static void teardown(void)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	lg_pool_exec(pool, sql, NULL);
	lg_cache_free(cache);
	lg_redis_free(redis);
	lg_pool_free(pool);
	lg_runtime_free(rt);
}

TestSuite(cache_read, .init = setup, .fini = teardown);

Test(cache_read, a_miss_reads_the_primary_and_fills_then_hits)
{
	const char *id[] = {"1"};
	struct lg_cache_row row;
	struct lg_error err;
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert_not(row.from_cache);
	cr_assert_eq(row.version, 5);
	cr_assert_str_eq(row.json, "{\"id\": 1, \"name\": \"ann\", \"lg_version\": 5}");
	char key[128];
	key_of(key, sizeof(key), "lifeguard:model", "1");
	char *stored = redis_get(key);
	cr_assert_str_eq(stored,
			 "{\"v\":5,\"row\":{\"id\": 1, \"name\": \"ann\", \"lg_version\": 5}}");
	free(stored);
	lg_cache_row_clear(&row);

	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert(row.from_cache);
	cr_assert_eq(row.version, 5);
	cr_assert_str_eq(row.json, "{\"id\": 1, \"name\": \"ann\", \"lg_version\": 5}");
	lg_cache_row_clear(&row);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.hits, 1);
	cr_assert_eq(st.misses, 1);
	cr_assert_eq(st.fills, 1);
	cr_assert_eq(st.redis_errors, 0);
}

Test(cache_read, a_row_never_written_since_reflect_fills_as_version_0)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (4, 'old', NULL)", table);
	exec_sql(sql);
	const char *id[] = {"4"};
	struct lg_cache_row row;
	struct lg_error err;
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert_eq(row.version, 0);
	lg_cache_row_clear(&row);
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert(row.from_cache);
	cr_assert_eq(row.version, 0);
	lg_cache_row_clear(&row);
}

Test(cache_read, a_missing_row_is_not_found_and_fills_nothing)
{
	const char *id[] = {"99"};
	struct lg_cache_row row;
	struct lg_error err;
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), LG_ENOTFOUND);
	char key[128];
	key_of(key, sizeof(key), "lifeguard:model", "99");
	cr_assert_null(redis_get(key));
}

Test(cache_read, fences_and_tombstones_refuse_older_fills_but_the_row_is_served)
{
	char fence[128];
	key_of(fence, sizeof(fence), "lifeguard:fence", "2");
	redis_cmd("SET %s %s PX 60000", fence, "10"); /* the reflector processed version 10 */
	const char *id[] = {"2"};
	struct lg_cache_row row;
	struct lg_error err;
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert_eq(row.version, 6);
	lg_cache_row_clear(&row);
	char key[128];
	key_of(key, sizeof(key), "lifeguard:model", "2");
	cr_assert_null(redis_get(key), "a fill older than the fence landed");

	char sql[256];
	snprintf(sql, sizeof(sql), "UPDATE %s SET name = 'bo', lg_version = 11 WHERE id = 2",
		 table);
	exec_sql(sql);
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert_eq(row.version, 11);
	lg_cache_row_clear(&row);
	char *stored = redis_get(key);
	cr_assert_not_null(stored, "a fill newer than the fence was refused");
	free(stored);

	/* A tombstone newer than the row: a miss (the primary answers), no fill over it. */
	char key3[128];
	key_of(key3, sizeof(key3), "lifeguard:model", "3");
	redis_cmd("SET %s %s PX 60000", key3, "{\"v\":20,\"deleted\":true}");
	const char *id3[] = {"3"};
	cr_assert_eq(lg_cache_get(cache, table, id3, 1, &row, &err), 0, "%s", err.message);
	cr_assert_not(row.from_cache);
	cr_assert_eq(row.version, 7);
	lg_cache_row_clear(&row);
	stored = redis_get(key3);
	cr_assert_str_eq(stored, "{\"v\":20,\"deleted\":true}");
	free(stored);

	/* A table fence (TRUNCATE at version 30) refuses fills of rows older than it. */
	char tfence[128];
	snprintf(tfence, sizeof(tfence), "lifeguard:fence:%s", table);
	redis_cmd("SET %s %s PX 60000", tfence, "30");
	redis_cmd("DEL %s%s", key, "");
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	lg_cache_row_clear(&row);
	cr_assert_null(redis_get(key));
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.fills_refused, 3);
	cr_assert_eq(st.fills, 1);
}

Test(cache_read, a_cached_row_below_the_table_fence_is_a_miss)
{
	const char *id[] = {"1"};
	struct lg_cache_row row;
	struct lg_error err;
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	lg_cache_row_clear(&row);
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert(row.from_cache);
	lg_cache_row_clear(&row);
	/* The reflector processed a TRUNCATE at version 30 and has not swept the key yet: the
	 * cached version 5 is not served; the primary answers. */
	char tfence[128];
	snprintf(tfence, sizeof(tfence), "lifeguard:fence:%s", table);
	redis_cmd("SET %s %s", tfence, "30");
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert_not(row.from_cache, "a row cached before the TRUNCATE was served");
	lg_cache_row_clear(&row);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.hits, 1);
	cr_assert_eq(st.misses, 2);
}

Test(cache_read, bad_tables_and_keys_get_clear_errors)
{
	struct lg_cache_row row;
	struct lg_error err;
	const char *id[] = {"1"};
	cr_assert_eq(lg_cache_get(cache, "no_such.table", id, 1, &row, &err), LG_EINVAL);
	cr_assert_eq(lg_cache_get(cache, "a b c ;", id, 1, &row, &err), LG_EINVAL);
	char sql[256];
	snprintf(sql, sizeof(sql), "CREATE TABLE %s.plain (id int PRIMARY KEY)", schema);
	exec_sql(sql);
	char plain[64];
	snprintf(plain, sizeof(plain), "%s.plain", schema);
	cr_assert_eq(lg_cache_get(cache, plain, id, 1, &row, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "not reflected"), "%s", err.message);
	const char *two[] = {"1", "2"};
	cr_assert_eq(lg_cache_get(cache, table, two, 2, &row, &err), LG_EINVAL);
	const char *bad[] = {"abc"};
	cr_assert_eq(lg_cache_get(cache, table, bad, 1, &row, &err), LG_EINVAL);
	/* Still usable afterwards. */
	cr_assert_eq(lg_cache_get(cache, table, id, 1, &row, &err), 0, "%s", err.message);
	lg_cache_row_clear(&row);
}

Test(cache_read, composite_keys_use_the_reflector_key_spelling)
{
	char sql[512];
	snprintf(
	    sql, sizeof(sql),
	    "CREATE TABLE %s.\"Acct\" (tenant text, id uuid, bal int, lg_version bigint,"
	    " PRIMARY KEY (tenant, id));"
	    "INSERT INTO %s.\"Acct\" VALUES ('a:b', '6f1c1b36-3b7e-4d2a-9a59-7b0b2b8c1c11', 3, 9)",
	    schema, schema);
	exec_sql(sql);
	char acct[64];
	snprintf(acct, sizeof(acct), "%s.\"Acct\"", schema);
	const char *parts[] = {"a:b", "6f1c1b36-3b7e-4d2a-9a59-7b0b2b8c1c11"};
	struct lg_cache_row row;
	struct lg_error err;
	cr_assert_eq(lg_cache_get(cache, acct, parts, 2, &row, &err), 0, "%s", err.message);
	lg_cache_row_clear(&row);
	char key[256];
	cr_assert_eq(lg_cache_key(key, sizeof(key), "lifeguard:model", acct, parts, 2), 0);
	cr_assert_not_null(strstr(key, ":a\\:b:"), "%s", key);
	char *stored = redis_get(key);
	cr_assert_not_null(stored, "no value at %s", key);
	cr_assert_not_null(strstr(stored, "\"v\":9"));
	free(stored);
}

struct reader {
	int i;
	int rc;
	char message[128];
};

static void read_one(void *arg)
{
	struct reader *r = arg;
	char id[16];
	snprintf(id, sizeof(id), "%d", 1 + r->i % 3);
	const char *parts[] = {id};
	struct lg_cache_row row;
	struct lg_error err;
	r->rc = lg_cache_get(cache, table, parts, 1, &row, &err);
	if (r->rc != 0) {
		snprintf(r->message, sizeof(r->message), "%.100s", err.message);
	}
	if (r->rc == 0 && atoi(id) + 4 != row.version) {
		r->rc = -1;
	}
	lg_cache_row_clear(&row);
}

Test(cache_read, many_coroutines_at_once)
{
	static struct reader readers[2000];
	for (int wave = 0; wave < 2; wave++) {
		for (int i = 0; i < 2000; i++) {
			readers[i].i = i;
			cr_assert_eq(lg_coro_spawn(rt, read_one, &readers[i], NULL), 0);
		}
		cr_assert_eq(lg_runtime_run(rt), 0);
		for (int i = 0; i < 2000; i++) {
			cr_assert_eq(readers[i].rc, 0, "reader %d: %d %s", i, readers[i].rc,
				     readers[i].message);
		}
	}
	/* The first wave misses together and shares the reads of the three keys (single
	 * flight); the second one hits. */
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.hits + st.misses, 4000);
	cr_assert_geq(st.hits, 2000);
	cr_assert_gt(st.coalesced, 0, "2000 concurrent misses of 3 keys shared no read");
	cr_assert_leq(st.coalesced, st.misses - 3, "at least one read per key");
	cr_assert_eq(st.redis_errors, 0);
	fprintf(stderr, "cache_read: %llu misses, %llu answered by a shared read\n",
		(unsigned long long)st.misses, (unsigned long long)st.coalesced);
}

static void read_missing(void *arg)
{
	struct reader *r = arg;
	const char *parts[] = {"99"};
	struct lg_cache_row row;
	struct lg_error err;
	r->rc = lg_cache_get(cache, table, parts, 1, &row, &err);
	lg_cache_row_clear(&row);
}

Test(cache_read, a_shared_read_shares_its_error_too)
{
	static struct reader readers[200];
	for (int i = 0; i < 200; i++) {
		readers[i].i = i;
		cr_assert_eq(lg_coro_spawn(rt, read_missing, &readers[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(readers[i].rc, LG_ENOTFOUND, "reader %d: %d", i, readers[i].rc);
	}
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.misses, 200);
	cr_assert_eq(st.fills, 0);
}

Test(cache_read, redis_down_serves_from_the_primary)
{
	char dir[] = "/tmp/lg-cache-redis.XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	int port = lg_test_free_port();
	cr_assert_eq(lg_test_services("redis start %s %d", dir, port), 0);
	struct lg_redis_config rc = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 1000};
	struct lg_redis *own = NULL;
	struct lg_cache *c2 = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &rc, &own, &err), 0, "%s", err.message);
	struct lg_cache_config cc = {.pool = pool, .redis = own};
	cr_assert_eq(lg_cache_new(&cc, &c2, &err), 0);
	const char *id[] = {"1"};
	struct lg_cache_row row;
	/* Stalled (SIGSTOP): the GET's deadline passes, the primary answers. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "kill -STOP $(head -n 1 %s/redis.pid)", dir);
	cr_assert_eq(system(cmd), 0);
	int got = lg_cache_get(c2, table, id, 1, &row, &err);
	snprintf(cmd, sizeof(cmd), "kill -CONT $(head -n 1 %s/redis.pid)", dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(got, 0, "%s", err.message);
	cr_assert_not(row.from_cache);
	cr_assert_eq(row.version, 5);
	lg_cache_row_clear(&row);
	/* Gone: the same. */
	cr_assert_eq(lg_test_services("redis kill %s", dir), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(lg_cache_get(c2, table, id, 1, &row, &err), 0, "%s", err.message);
		cr_assert_not(row.from_cache);
		cr_assert_eq(row.version, 5);
		lg_cache_row_clear(&row);
	}
	struct lg_cache_stats st;
	lg_cache_get_stats(c2, &st);
	cr_assert_geq(st.redis_errors, 4);
	cr_assert_eq(st.fills, 0);
	lg_cache_free(c2);
	lg_redis_free(own);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
