/*
 * The Redis client's circuit breaker under lg_cache, against a private Redis that the test
 * kills and restarts and the real PostgreSQL: while Redis is down, reads are served by the
 * primary and many concurrent readers cause one connection attempt per backoff period, not
 * one per call; the state and counters are exported; reads hit the cache again once Redis is
 * back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>

#include "lg_test.h"

static struct lg_runtime *rt;
static struct lg_pool *pool;
static char schema[32];
static char table[64];
static char redis_dir[64];
static int redis_port;

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

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_error err;
	struct lg_pool_config pc = {.conninfo = lg_test_pg_dsn(), .min_conns = 2};
	cr_assert_eq(lg_pool_new(rt, &pc, &pool, &err), 0, "%s", err.message);
	snprintf(schema, sizeof(schema), "lg_cache_brk_%d", (int)getpid());
	snprintf(table, sizeof(table), "%s.users", schema);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "DROP SCHEMA IF EXISTS %s CASCADE;"
		 "CREATE SCHEMA %s;"
		 "CREATE TABLE %s (id int PRIMARY KEY, name text, lg_version bigint);"
		 "INSERT INTO %s VALUES (1, 'ann', 5)",
		 schema, schema, table, table);
	exec_sql(sql);
	snprintf(redis_dir, sizeof(redis_dir), "/tmp/lg-cache-brk.XXXXXX");
	cr_assert_not_null(mkdtemp(redis_dir));
	redis_port = lg_test_free_port();
	cr_assert_eq(lg_test_services("redis start %s %d", redis_dir, redis_port), 0);
}

static void teardown(void)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	lg_pool_exec(pool, sql, NULL);
	lg_pool_free(pool);
	lg_runtime_free(rt);
	lg_test_services("redis kill %s", redis_dir);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", redis_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot remove %s\n", redis_dir);
	}
}

TestSuite(cache_breaker, .init = setup, .fini = teardown);

static struct lg_cache *open_cache(uint64_t backoff_ms, struct lg_redis **redis)
{
	struct lg_redis_config rc = {.host = "127.0.0.1",
				     .port = redis_port,
				     .connect_timeout_ms = 1000,
				     .reconnect_backoff_ms = backoff_ms,
				     .reconnect_backoff_max_ms = backoff_ms * 4};
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &rc, redis, &err), 0, "%s", err.message);
	struct lg_cache_config cc = {.pool = pool, .redis = *redis};
	struct lg_cache *c = NULL;
	cr_assert_eq(lg_cache_new(&cc, &c, &err), 0, "%s", err.message);
	return c;
}

/* Reads row 1; returns whether Redis served it (asserts it was read and is right). */
static bool get_one(struct lg_cache *c)
{
	const char *id[] = {"1"};
	struct lg_cache_row row;
	struct lg_error err;
	cr_assert_eq(lg_cache_get(c, table, id, 1, &row, &err), 0, "%s", err.message);
	cr_assert_eq(row.version, 5);
	bool hit = row.from_cache;
	lg_cache_row_clear(&row);
	return hit;
}

struct reader {
	struct lg_cache *cache;
	int done;
	int from_cache;
	int rc;
};

#define READERS 100
#define ROUNDS  10

static void read_rounds(void *arg)
{
	struct reader *r = arg;
	const char *id[] = {"1"};
	for (int i = 0; i < ROUNDS; i++) {
		struct lg_cache_row row;
		struct lg_error err;
		r->rc = lg_cache_get(r->cache, table, id, 1, &row, &err);
		if (r->rc != 0 || row.version != 5) {
			r->rc = r->rc != 0 ? r->rc : -1;
			return;
		}
		r->from_cache += row.from_cache ? 1 : 0;
		lg_cache_row_clear(&row);
		r->done++;
		lg_yield(); /* let the other readers' calls interleave with this one's */
	}
}

Test(cache_breaker, redis_down_many_readers_cause_one_connect_attempt)
{
	struct lg_redis *redis = NULL;
	struct lg_cache *c = open_cache(60000, &redis);
	cr_assert_not(get_one(c)); /* miss, filled */
	cr_assert(get_one(c));
	struct lg_cache_stats before;
	lg_cache_get_stats(c, &before);
	cr_assert_eq(before.redis_breaker, LG_REDIS_BREAKER_CLOSED);
	cr_assert_eq(before.redis_connect_attempts, 1);

	cr_assert_eq(lg_test_services("redis kill %s", redis_dir), 0);
	static struct reader readers[READERS];
	for (int i = 0; i < READERS; i++) {
		readers[i] = (struct reader){.cache = c};
		cr_assert_eq(lg_coro_spawn(rt, read_rounds, &readers[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < READERS; i++) {
		cr_assert_eq(readers[i].rc, 0, "reader %d: %d", i, readers[i].rc);
		cr_assert_eq(readers[i].done, ROUNDS);
		cr_assert_eq(readers[i].from_cache, 0);
	}
	struct lg_cache_stats st;
	lg_cache_get_stats(c, &st);
	struct lg_redis_stats rs;
	lg_redis_get_stats(redis, &rs);
	fprintf(stderr, "cache_breaker: %d reads, %llu connect attempts, %llu failed at once\n",
		READERS * ROUNDS,
		(unsigned long long)(st.redis_connect_attempts - before.redis_connect_attempts),
		(unsigned long long)rs.fast_failures);
	/* One backoff period (60 s) is longer than the test: one attempt, whatever the load. */
	cr_assert_leq(st.redis_connect_attempts - before.redis_connect_attempts, 1);
	cr_assert_eq(st.redis_breaker, LG_REDIS_BREAKER_OPEN);
	cr_assert_eq(st.redis_breaker_opens, 1);
	cr_assert_gt(rs.retry_in_ms, 0);
	/* The first round may find the dead link, the second waits for the one attempt; every
	 * later call fails at once. */
	cr_assert_geq(rs.fast_failures, READERS * (ROUNDS - 2));
	cr_assert_eq(st.hits, before.hits);
	cr_assert_eq(st.misses - before.misses, READERS * ROUNDS);
	lg_cache_free(c);
	lg_redis_free(redis);
}

Test(cache_breaker, reads_recover_when_redis_returns)
{
	struct lg_redis *redis = NULL;
	struct lg_cache *c = open_cache(50, &redis);
	cr_assert_not(get_one(c));
	cr_assert(get_one(c));
	/* Down: served by the primary, the breaker opens. */
	cr_assert_eq(lg_test_services("redis kill %s", redis_dir), 0);
	for (int i = 0; i < 5; i++) {
		cr_assert_not(get_one(c));
	}
	struct lg_cache_stats st;
	lg_cache_get_stats(c, &st);
	cr_assert_geq(st.redis_breaker_opens, 1);
	/* Back: within a few backoff periods a read connects, misses (Redis restarted empty),
	 * fills, and a later one hits. */
	cr_assert_eq(lg_test_services("redis start %s", redis_dir), 0);
	uint64_t give_up = lg_deadline_in(30000);
	while (!get_one(c)) {
		cr_assert_lt(lg_now_ms(), give_up, "reads never came back to Redis");
		usleep(20000);
	}
	lg_cache_get_stats(c, &st);
	cr_assert_eq(st.redis_breaker, LG_REDIS_BREAKER_CLOSED);
	lg_cache_free(c);
	lg_redis_free(redis);
}
