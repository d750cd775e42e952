/*
 * A fill from a lagging replica against a real reflector cluster, PostgreSQL primary with a
 * streaming replica, and Redis: with replay paused on the replica, a change is committed on
 * the primary and processed by the reflector; a typed read through the cache
 * (lg_model_find_cached) on the replica then reads the old row, and its fill, which carries
 * that row's version, is refused by the key fence the reflector raised. The key holds nothing
 * older afterwards, and a read on the primary fills the current row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <libguard/libguard.h>

#include "coh_env.h"

#define IT_COLUMNS(X)                                                                              \
	X(it, id, LG_INT32, LG_COL_PK)                                                             \
	X(it, name, LG_TEXT, LG_COL_NULLABLE)                                                      \
	X(it, n, LG_INT32, LG_COL_NULLABLE)                                                        \
	X(it, lg_version, LG_INT64, LG_COL_NULLABLE)
LG_MODEL_DECLARE(it, IT_COLUMNS);
LG_MODEL_DEFINE(it, "public", "items", IT_COLUMNS);

#define KEY "lifeguard:model:public.items:1"

static struct lg_test_pg replica;

static void teardown(void)
{
	if (replica.dir[0] != '\0') {
		lg_test_pg_destroy(&replica);
	}
	coh_env_teardown();
}

TestSuite(cache_replica, .fini = teardown);

static PGconn *replica_conn(void)
{
	PGconn *c = PQconnectdb(replica.dsn);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static char *replica_name(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT name FROM items WHERE id = 1");
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	char *v = PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
	PQclear(r);
	return v;
}

static void replica_sql(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", q, PQresultErrorMessage(r));
	PQclear(r);
}

/* A streaming replica of the test's private primary (scripts/services pg replica). */
static void start_replica(void)
{
	char tmpl[] = "/tmp/rf-cache-replica.XXXXXX";
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(replica.dir, sizeof(replica.dir), "%s/pg", tmpl);
	replica.port = lg_test_free_port();
	snprintf(replica.dsn, sizeof(replica.dsn),
		 "host=127.0.0.1 port=%d user=postgres dbname=postgres", replica.port);
	cr_assert_eq(
	    lg_test_services("pg replica '%s' %d %d", replica.dir, replica.port, coh.pg.port), 0,
	    "replica of the private primary");
}

Test(cache_replica, a_fill_from_a_lagging_replica_is_refused_by_the_fence)
{
	coh_env_start(NULL, true);
	coh_sql("INSERT INTO items VALUES (1, 'old', 1)");
	coh_wait_drained();
	start_replica();
	PGconn *rc = replica_conn();
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	for (;;) {
		char *v = replica_name(rc);
		bool shown = v != NULL && strcmp(v, "old") == 0;
		free(v);
		if (shown) {
			break;
		}
		cr_assert_lt(rfh_now_ms(), deadline, "the replica never showed row 1");
		rfh_sleep_ms(50);
	}
	long long old_version = coh_sql_int("SELECT lg_version FROM items WHERE id = 1");
	replica_sql(rc, "SELECT pg_wal_replay_pause()");

	/* A newer change, processed by the reflector (row 1 is not cached: it fences it). */
	coh_sql("UPDATE items SET name = 'new' WHERE id = 1");
	coh_wait_drained();
	long long new_version = coh_sql_int("SELECT lg_version FROM items WHERE id = 1");
	char *fence = coh_rget("lifeguard:fence:public.items:1");
	cr_assert_not_null(fence);
	cr_assert_eq(atoll(fence), new_version);
	free(fence);

	struct lg_runtime *rt = NULL;
	struct lg_pool *primary = NULL;
	struct lg_pool *lagging = NULL;
	struct lg_redis *redis = NULL;
	struct lg_cache *cache = NULL;
	struct lg_error err;
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_pool_config pc = {.conninfo = coh.pg.dsn, .min_conns = 1};
	cr_assert_eq(lg_pool_new(rt, &pc, &primary, &err), 0, "%s", err.message);
	struct lg_pool_config rpc = {.conninfo = replica.dsn, .min_conns = 1};
	cr_assert_eq(lg_pool_new(rt, &rpc, &lagging, &err), 0, "%s", err.message);
	struct lg_redis_config rcfg = {.host = "127.0.0.1", .port = coh.redis_port};
	cr_assert_eq(lg_redis_new(rt, &rcfg, &redis, &err), 0, "%s", err.message);
	struct lg_cache_config cc = {.pool = primary, .redis = redis};
	cr_assert_eq(lg_cache_new(&cc, &cache, &err), 0, "%s", err.message);
	struct lg_cache_policy pol = {.ttl_ms = 60000};
	cr_assert_eq(lg_cache_policy_set(cache, &it_model, &pol, &err), 0, "%s", err.message);

	/* The read on the lagging replica: the old row, and its fill is refused. */
	struct lg_db on_replica = {.pool = lagging};
	struct lg_param key[] = {lg_param_int32(1)};
	struct it row = {0};
	struct lg_find_opts o = {0};
	cr_assert_eq(lg_model_find_cached(&on_replica, cache, &it_model, key, &o, &row, &err), 0,
		     "%s", err.message);
	cr_assert_not(o.from_cache);
	cr_assert_str_eq(row.name, "old", "the replica was expected to lag");
	cr_assert_eq(row.lg_version, old_version);
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	cr_assert_eq(st.fills, 0);
	cr_assert_eq(st.fills_refused, 1);
	char *held = coh_rget(KEY);
	cr_assert_null(held, "a fill from the lagging replica planted %s", held);

	/* The primary's read fills the current row. */
	struct lg_db on_primary = {.pool = primary};
	cr_assert_eq(lg_model_find_cached(&on_primary, cache, &it_model, key, &o, &row, &err), 0,
		     "%s", err.message);
	cr_assert_str_eq(row.name, "new");
	cr_assert_eq(row.lg_version, new_version);
	cr_assert(coh_cached_current(KEY, 1));
	lg_row_clear(&it_model, &row);

	replica_sql(rc, "SELECT pg_wal_replay_resume()");
	PQfinish(rc);
	lg_cache_free(cache);
	lg_redis_free(redis);
	lg_pool_free(lagging);
	lg_pool_free(primary);
	lg_runtime_free(rt);
	RFH_PASS();
}
