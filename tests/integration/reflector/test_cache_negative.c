/*
 * Negative caching against a real reflector cluster, PostgreSQL and Redis: lg_cache fills an
 * absent marker for a row that does not exist, answers the next read from it, and the
 * reflector replaces the marker with the row once it is inserted — also when the INSERT was
 * already in flight (holding a version below versions that committed before the read) when
 * the read found nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <libguard/libguard.h>

#include "coh_env.h"

#define ABSENT_TAIL ",\"absent\":true}"

struct world {
	struct lg_runtime *rt;
	struct lg_pool *pool;
	struct lg_redis *redis;
	struct lg_cache *cache;
};

TestSuite(cache_negative, .fini = coh_env_teardown);

static void world_open(struct world *w)
{
	struct lg_error err;
	cr_assert_eq(lg_runtime_new(NULL, NULL, &w->rt), 0);
	struct lg_pool_config pc = {.conninfo = coh.pg.dsn, .min_conns = 1};
	cr_assert_eq(lg_pool_new(w->rt, &pc, &w->pool, &err), 0, "%s", err.message);
	struct lg_redis_config rcfg = {.host = "127.0.0.1", .port = coh.redis_port};
	cr_assert_eq(lg_redis_new(w->rt, &rcfg, &w->redis, &err), 0, "%s", err.message);
	struct lg_cache_config cc = {.pool = w->pool, .redis = w->redis, .absent_ttl_ms = 60000};
	cr_assert_eq(lg_cache_new(&cc, &w->cache, &err), 0, "%s", err.message);
}

static void world_close(struct world *w)
{
	lg_cache_free(w->cache);
	lg_redis_free(w->redis);
	lg_pool_free(w->pool);
	lg_runtime_free(w->rt);
}

/* Reads items row id: its rc, and whether Redis answered. */
static int get(struct world *w, const char *id, bool *from_cache, char **json)
{
	const char *parts[] = {id};
	struct lg_cache_row row;
	struct lg_error err;
	int rc = lg_cache_get(w->cache, "public.items", parts, 1, &row, &err);
	cr_assert(rc == 0 || rc == LG_ENOTFOUND, "%s", err.message);
	*from_cache = row.from_cache;
	if (json != NULL) {
		*json = row.json != NULL ? strdup(row.json) : NULL;
	}
	lg_cache_row_clear(&row);
	return rc;
}

/* Asserts that key holds an absent marker {"v":N,"absent":true}. */
static void assert_absent(const char *key)
{
	char *v = coh_rget(key);
	cr_assert_not_null(v, "%s: nothing cached", key);
	size_t n = strlen(v);
	size_t t = strlen(ABSENT_TAIL);
	cr_assert(strncmp(v, "{\"v\":", 5) == 0 && n > t && strcmp(v + n - t, ABSENT_TAIL) == 0,
		  "%s holds %s", key, v);
	free(v);
}

Test(cache_negative, an_absent_marker_is_replaced_after_an_insert)
{
	coh_env_start(NULL, true);
	struct world w;
	world_open(&w);
	const char *key = "lifeguard:model:public.items:4242";
	bool hit = true;
	cr_assert_eq(get(&w, "4242", &hit, NULL), LG_ENOTFOUND);
	cr_assert_not(hit);
	assert_absent(key);
	cr_assert_eq(get(&w, "4242", &hit, NULL), LG_ENOTFOUND);
	cr_assert(hit, "the second read of an absent row is answered by the marker");
	struct lg_cache_stats st;
	lg_cache_get_stats(w.cache, &st);
	cr_assert_eq(st.absent_fills, 1);
	cr_assert_eq(st.absent_hits, 1);

	coh_sql("INSERT INTO items VALUES (4242, 'born', 1)");
	coh_wait_drained();
	cr_assert(coh_cached_current(key, 4242), "the reflector left the marker in place");
	char *json = NULL;
	cr_assert_eq(get(&w, "4242", &hit, &json), 0);
	cr_assert(hit);
	cr_assert_not_null(strstr(json, "\"born\""), "%s", json);
	free(json);
	world_close(&w);
	RFH_PASS();
}

static PGconn *writer(void)
{
	PGconn *c = PQconnectdb(coh.pg.dsn);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void sql_on(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", q, PQresultErrorMessage(r));
	PQclear(r);
}

/*
 * Why the marker carries version 0 and not the sequence's value at the read: T1 inserts row
 * 77 (version a) and stays open; T2 writes row 78 (version b > a) and commits; the read sees
 * neither row 77 nor T1. A marker stamped with b would outrank T1's change: its fence (a)
 * would not refuse the marker and the refresh would keep it ("kept": b >= a). With 0, the
 * reflector replaces it.
 */
Test(cache_negative, an_insert_in_flight_during_the_read_replaces_the_marker)
{
	coh_env_start(NULL, true);
	struct world w;
	world_open(&w);
	PGconn *t1 = writer();
	sql_on(t1, "BEGIN");
	sql_on(t1, "INSERT INTO items VALUES (77, 'in flight', 1)");
	coh_sql("INSERT INTO items VALUES (78, 'committed', 1)");
	coh_wait_drained();
	bool hit = true;
	cr_assert_eq(get(&w, "77", &hit, NULL), LG_ENOTFOUND);
	cr_assert_not(hit);
	const char *key = "lifeguard:model:public.items:77";
	assert_absent(key);
	sql_on(t1, "COMMIT");
	PQfinish(t1);
	/* The case the marker's version must cover: the unseen row holds the lower version. */
	cr_assert_lt(coh_sql_int("SELECT lg_version FROM items WHERE id = 77"),
		     coh_sql_int("SELECT lg_version FROM items WHERE id = 78"));
	coh_wait_drained();
	cr_assert(coh_cached_current(key, 77), "the marker outlived the insert");
	char *json = NULL;
	cr_assert_eq(get(&w, "77", &hit, &json), 0);
	cr_assert(hit);
	cr_assert_not_null(strstr(json, "in flight"), "%s", json);
	free(json);
	world_close(&w);
	RFH_PASS();
}
