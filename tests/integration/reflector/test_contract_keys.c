/*
 * Canonical keys end to end: a 3-process reflector cluster, a private PostgreSQL and Redis,
 * and libguard's lg_cache.
 *   - Writers whose sessions use other TimeZone, DateStyle, IntervalStyle,
 *     extra_float_digits and bytea_output record the same keys as a UTC session: cached keys
 *     of timestamptz, timestamp, uuid, numeric, text, interval, float, bytea, boolean and
 *     composite primary keys are refreshed.
 *   - lg_cache callers spelling a key "01", "+1", an upper-case uuid, a timestamptz in another
 *     zone or a numeric of another scale read and fill the key the reflector refreshes, so
 *     their next read is fresh.
 *   - Capture triggers installed by an older version are replaced when a leader starts, and
 *     the changes they recorded in the old form are processed under the canonical keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <libguard/cache_contract.h>
#include <libguard/libguard.h>

#include "coh_env.h"

static PGconn *berlin; /* a writer with other session settings */

/* The settings of a writer far from UTC and ISO. */
static const char berlin_settings[] =
    "SET TimeZone = 'Europe/Berlin'; SET DateStyle = 'SQL, DMY';"
    " SET IntervalStyle = 'sql_standard'; SET extra_float_digits = -3;"
    " SET bytea_output = 'escape'";

static void sql(const char *q)
{
	coh_sql(q);
}

/* Runs q (one or more statements) on c. */
static void sql_on(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
		  PQresultErrorMessage(r));
	PQclear(r);
}

static void teardown(void)
{
	PQfinish(berlin);
	berlin = NULL;
	coh_env_teardown();
}

/*
 * The private services and the cluster (coh_env, nodes not started), and the Berlin writer.
 * With old_schema, the lifeguard schema `setup` installed is replaced by that file's SQL (an
 * older version's), before any table but public.items exists.
 */
static void start_services(const char *old_schema)
{
	coh_env_start(NULL, false);
	if (old_schema != NULL) {
		coh_sql("DROP SCHEMA lifeguard CASCADE");
		FILE *f = fopen(old_schema, "r");
		cr_assert_not_null(f, "%s", old_schema);
		static char text[65536];
		size_t n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
		text[n] = '\0';
		coh_sql(text);
	}
	berlin = PQconnectdb(coh.pg.dsn);
	cr_assert_eq(PQstatus(berlin), CONNECTION_OK, "%s", PQerrorMessage(berlin));
	sql_on(berlin, berlin_settings);
}

static void start_cluster(void)
{
	rfh_start_all(&coh.cluster, 3);
	coh_leader();
}

/* Asserts that key holds {"v": lg_version, "row": to_jsonb(row)} of a row of table now. */
static void assert_row_cached(const char *key, const char *table)
{
	char *v = coh_rget(key);
	cr_assert_not_null(v, "%s: not cached", key);
	char q[512];
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM %s t WHERE jsonb_build_object('v', lg_version, 'row', "
		 "to_jsonb(t)) = $1::jsonb",
		 table);
	const char *params[] = {v};
	PGresult *r = PQexecParams(coh.db, q, 1, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	cr_assert_str_eq(PQgetvalue(r, 0, 0), "1", "%s holds %s", key, v);
	PQclear(r);
	free(v);
}

/* The Redis key of each row of table, from PostgreSQL's own output of its key columns in a
 * session with the contract's settings. keys receives up to max Owned strings. */
static int canonical_keys(const char *table, const char *cols, char **keys, int max)
{
	PGconn *c = PQconnectdb(coh.pg.dsn);
	cr_assert_eq(PQstatus(c), CONNECTION_OK);
	sql_on(c, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY';"
		  " SET IntervalStyle = 'postgres'; SET extra_float_digits = 1;"
		  " SET bytea_output = 'hex'");
	char q[256];
	snprintf(q, sizeof(q), "SELECT %s FROM public.%s", cols, table);
	PGresult *r = PQexec(c, q);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	int n = PQntuples(r) < max ? PQntuples(r) : max;
	char name[64];
	snprintf(name, sizeof(name), "public.%s", table);
	for (int i = 0; i < n; i++) {
		const char *parts[8];
		for (int j = 0; j < PQnfields(r); j++) {
			parts[j] = PQgetvalue(r, i, j);
		}
		char key[1024];
		cr_assert_eq(lg_cache_key(key, sizeof(key), "lifeguard:model", name, parts,
					  (size_t)PQnfields(r)),
			     0);
		keys[i] = strdup(key);
	}
	PQclear(r);
	PQfinish(c);
	return n;
}

TestSuite(contract_keys, .fini = teardown);

Test(contract_keys, keys_do_not_depend_on_the_writers_session_settings)
{
	static const struct {
		const char *table, *key_cols, *ddl, *rows;
	} t[] = {
	    {"tz", "at", "at timestamptz PRIMARY KEY",
	     "('2024-03-31 02:30:00+02'), ('2024-10-27 02:30:00+01'), ('0044-03-15 12:00:00+00 "
	     "BC'), ('infinity'), ('2024-01-01 10:00:00.123456+00')"},
	    {"ts", "at", "at timestamp PRIMARY KEY",
	     "('2024-03-31 02:30:00'), ('0044-03-15 12:00:00 BC'), ('-infinity')"},
	    {"u", "id", "id uuid PRIMARY KEY", "('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')"},
	    {"num", "amount", "amount numeric PRIMARY KEY", "(1.50), (-0.000), (1e20)"},
	    {"txt", "name", "name text PRIMARY KEY", "('a:b\\c'), ('2024-01-01')"},
	    {"iv", "d", "d interval PRIMARY KEY", "('-1 day 02:00:00'), ('1 year -3 mons 4 days')"},
	    {"fl", "x", "x float8 PRIMARY KEY", "(0.1), (1e300), (-0.3333333333333333)"},
	    {"bt", "b", "b bytea PRIMARY KEY", "('\\x00ff3a5c'), ('\\x')"},
	    {"bo", "b", "b boolean PRIMARY KEY", "(true), (false)"},
	    {"comp", "at, id, amount, name",
	     "at timestamptz, id uuid, amount numeric, name text, PRIMARY KEY (at, id, amount, "
	     "name)",
	     "('2024-03-31 02:30:00+02', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 2.50, 'x:y')"},
	};
	size_t nt = sizeof(t) / sizeof(t[0]);
	start_services(NULL);
	char q[1024];
	for (size_t i = 0; i < nt; i++) {
		snprintf(q, sizeof(q), "CREATE TABLE %s (%s, n int DEFAULT 0)", t[i].table,
			 t[i].ddl);
		sql(q);
		snprintf(q, sizeof(q), "SELECT lifeguard.reflect('public.%s')", t[i].table);
		sql(q);
		snprintf(q, sizeof(q), "INSERT INTO %s (%s) VALUES %s", t[i].table, t[i].key_cols,
			 t[i].rows);
		sql(q);
	}
	start_cluster();
	coh_wait_drained();
	char *keys[10][8];
	int nkeys[10];
	for (size_t i = 0; i < nt; i++) {
		nkeys[i] = canonical_keys(t[i].table, t[i].key_cols, keys[i], 8);
		cr_assert_gt(nkeys[i], 0);
		for (int k = 0; k < nkeys[i]; k++) {
			coh_rset(keys[i][k], "{\"v\":0,\"row\":{}}"); /* cached: any older value */
		}
	}
	/* Every row changes from the Berlin session: each cached key must follow. */
	for (size_t i = 0; i < nt; i++) {
		snprintf(q, sizeof(q), "UPDATE %s SET n = n + 1", t[i].table);
		sql_on(berlin, q);
	}
	coh_wait_drained();
	for (size_t i = 0; i < nt; i++) {
		for (int k = 0; k < nkeys[i]; k++) {
			assert_row_cached(keys[i][k], t[i].table);
			free(keys[i][k]);
		}
	}
	RFH_PASS();
}

/* lg_cache_get outside a coroutine; returns the row (Owned json) and whether it hit. */
static char *cache_get(struct lg_cache *cache, const char *table, const char *part, bool *hit)
{
	struct lg_cache_row row;
	struct lg_error err;
	const char *parts[] = {part};
	cr_assert_eq(lg_cache_get(cache, table, parts, 1, &row, &err), 0, "%s %s: %s", table, part,
		     err.message);
	*hit = row.from_cache;
	char *json = strdup(row.json);
	lg_cache_row_clear(&row);
	return json;
}

Test(contract_keys, lg_cache_spellings_fill_the_key_the_reflector_refreshes)
{
	start_services(NULL);
	sql("CREATE TABLE ids (id int8 PRIMARY KEY, name text)");
	sql("CREATE TABLE u (id uuid PRIMARY KEY, name text)");
	sql("CREATE TABLE ev (at timestamptz PRIMARY KEY, name text)");
	sql("CREATE TABLE num (amount numeric PRIMARY KEY, name text)");
	static const char *const tables[] = {"public.ids", "public.u", "public.ev", "public.num"};
	for (int i = 0; i < 4; i++) {
		char q[128];
		snprintf(q, sizeof(q), "SELECT lifeguard.reflect('%s')", tables[i]);
		sql(q);
	}
	sql("INSERT INTO ids VALUES (1, 'old')");
	sql("INSERT INTO u VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'old')");
	sql("INSERT INTO ev VALUES ('2024-01-01 10:00:00+00', 'old')");
	sql("INSERT INTO num VALUES (1.50, 'old')");
	start_cluster();
	coh_wait_drained();

	struct lg_runtime *rt = NULL;
	struct lg_pool *pool = NULL;
	struct lg_redis *redis = NULL;
	struct lg_cache *cache = NULL;
	struct lg_error err;
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_pool_config pc = {.conninfo = coh.pg.dsn, .min_conns = 1};
	cr_assert_eq(lg_pool_new(rt, &pc, &pool, &err), 0, "%s", err.message);
	struct lg_redis_config rcfg = {.host = "127.0.0.1", .port = coh.redis_port};
	cr_assert_eq(lg_redis_new(rt, &rcfg, &redis, &err), 0, "%s", err.message);
	struct lg_cache_config cc = {.pool = pool, .redis = redis};
	cr_assert_eq(lg_cache_new(&cc, &cache, &err), 0, "%s", err.message);

	/* First reads, in a caller's spelling: from the primary, filling the canonical key. */
	static const char *const first[] = {"01", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
					    "2024-01-01 11:00:00+01", "1.5"};
	static const char *const again[] = {"+1", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
					    "2024-01-01 05:00:00-05", "1.50"};
	static const char *const filled[] = {
	    "lifeguard:model:public.ids:1",
	    "lifeguard:model:public.u:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	    "lifeguard:model:public.ev:2024-01-01 10\\:00\\:00+00",
	    "lifeguard:model:public.num:1.50"};
	for (int i = 0; i < 4; i++) {
		bool hit = true;
		char *json = cache_get(cache, tables[i], first[i], &hit);
		cr_assert_not(hit, "%s", tables[i]);
		cr_assert_not_null(strstr(json, "\"old\""), "%s", json);
		free(json);
		char *v = coh_rget(filled[i]);
		cr_assert_not_null(v, "%s read as %s did not fill %s", tables[i], first[i],
				   filled[i]);
		free(v);
	}
	cr_assert_null(coh_rget("lifeguard:model:public.ids:01"));
	/* A write from another session: the reflector refreshes the keys libguard filled. */
	sql_on(berlin, "UPDATE ids SET name = 'new'; UPDATE u SET name = 'new';"
		       " UPDATE ev SET name = 'new'; UPDATE num SET name = 'new'");
	coh_wait_drained();
	for (int i = 0; i < 4; i++) {
		assert_row_cached(filled[i], tables[i]);
		/* Any spelling now reads the refreshed row; the canonical ones from Redis. */
		const char *spellings[] = {first[i], again[i]};
		for (int s = 0; s < 2; s++) {
			bool hit = false;
			char *json = cache_get(cache, tables[i], spellings[s], &hit);
			cr_assert_not_null(strstr(json, "\"new\""), "%s %s: stale %s", tables[i],
					   spellings[s], json);
			/* numeric 1.5 = 1.50 but prints otherwise: that spelling misses (and
			 * reads the primary), every other spelling here hits. */
			bool other_scale = i == 3 && s == 0;
			cr_assert_eq(hit, !other_scale, "%s %s", tables[i], spellings[s]);
			free(json);
		}
	}
	/* A spelling PostgreSQL rejects is a clear error; nothing is cached for it. */
	const char *bad[] = {"1.0"};
	struct lg_cache_row row;
	cr_assert_eq(lg_cache_get(cache, "public.ids", bad, 1, &row, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "bigint"), "%s", err.message);
	lg_cache_free(cache);
	lg_redis_free(redis);
	lg_pool_free(pool);
	lg_runtime_free(rt);
	RFH_PASS();
}

Test(contract_keys, older_capture_triggers_are_replaced_when_a_leader_starts)
{
	start_services(getenv("LG_CONTRACT_V1_SQL"));
	sql("CREATE TABLE ev (at timestamptz PRIMARY KEY, name text)");
	sql("SELECT lifeguard.reflect('public.ev')");
	/* Written under the old capture from Berlin: recorded as 2024-03-31T01:30:00+01:00. */
	sql_on(berlin, "INSERT INTO ev VALUES ('2024-03-31 00:30:00+00', 'a')");
	cr_assert_eq(coh_sql_int("SELECT count(*) FROM lifeguard.outbox WHERE pk->>0 LIKE '%T%'"),
		     1);
	const char *key = "lifeguard:model:public.ev:2024-03-31 00\\:30\\:00+00";
	coh_rset(key, "{\"v\":0,\"row\":{}}");
	start_cluster();
	coh_wait_drained();
	/* The pending change was processed under the canonical key. */
	assert_row_cached(key, "ev");
	cr_assert_eq(
	    coh_sql_int("SELECT count(*) FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid"
			" WHERE g.tgrelid = 'public.ev'::regclass AND p.proname = 'capture_'"
			" || 'public.ev'::regclass::oid"),
	    2, "capture and delete triggers replaced");
	cr_assert_eq(coh_sql_int("SELECT count(*) FROM pg_proc WHERE proname IN ('capture_row',"
				 " 'capture_delete', 'row_key')"),
		     0, "the old generic functions are gone");
	/* New writes from Berlin keep refreshing it. */
	sql_on(berlin, "UPDATE ev SET name = 'b'");
	coh_wait_drained();
	assert_row_cached(key, "ev");
	cr_assert_eq(coh_sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 0);
	RFH_PASS();
}
