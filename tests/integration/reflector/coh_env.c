/* The world of a coherence test (see coh_env.h). */
#include "coh_env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

struct coh_env coh;

void coh_sql(const char *q)
{
	PGresult *r = PQexec(coh.db, q);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
		  PQresultErrorMessage(r));
	PQclear(r);
}

long long coh_sql_int(const char *q)
{
	PGresult *r = PQexec(coh.db, q);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", q, PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1, "%s", q);
	long long v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

redisReply *coh_redis(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(coh.rc, fmt, ap);
	va_end(ap);
	cr_assert_not_null(r, "redis: %s", coh.rc->errstr);
	return r;
}

char *coh_rget(const char *key)
{
	redisReply *r = coh_redis("GET %s", key);
	char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
	freeReplyObject(r);
	return v;
}

void coh_rset(const char *key, const char *value)
{
	redisReply *r = coh_redis("SET %s %s PX 600000", key, value);
	cr_assert(r->type == REDIS_REPLY_STATUS, "%s", r->str != NULL ? r->str : "");
	freeReplyObject(r);
}

void coh_redis_reconnect(void)
{
	if (coh.rc != NULL) {
		redisFree(coh.rc);
	}
	coh.rc = redisConnect("127.0.0.1", coh.redis_port);
	cr_assert(coh.rc != NULL && coh.rc->err == 0);
}

void coh_redis_restart(void)
{
	cr_assert_eq(lg_test_services("redis kill '%s'", coh.redis_dir), 0);
	cr_assert_eq(lg_test_services("redis start '%s'", coh.redis_dir), 0);
	coh_redis_reconnect();
}

void coh_env_teardown(void)
{
	rfh_cleanup();
	if (coh.rc != NULL) {
		redisFree(coh.rc);
		coh.rc = NULL;
	}
	if (coh.db != NULL) {
		PQfinish(coh.db);
		coh.db = NULL;
	}
	if (coh.redis_dir[0] != '\0') {
		lg_test_services("redis kill '%s'", coh.redis_dir);
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", coh.redis_dir);
		cr_log_info("%d", system(cmd));
		coh.redis_dir[0] = '\0';
	}
	if (coh.pg_started) {
		lg_test_pg_destroy(&coh.pg);
		coh.pg_started = false;
	}
}

/* Runs the reflector CLI with node 0's config; asserts exit 0. */
static void coh_cli(const char *cmd, const char *arg)
{
	const char *argv[] = {rfh_bin(), cmd, "--config", coh.cluster.nodes[0].config, arg, NULL};
	char out[4096];
	int st = rfh_run(argv, NULL, out, sizeof(out), 60000);
	cr_assert_eq(st, 0, "%s %s: %s", cmd, arg != NULL ? arg : "", out);
}

void coh_env_start(json_t *extra, bool start_nodes)
{
	cr_assert(lg_test_pg_start(&coh.pg), "private PostgreSQL");
	coh.pg_started = true;
	char tmpl[] = "/tmp/rf-coh-redis.XXXXXX";
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(coh.redis_dir, sizeof(coh.redis_dir), "%s", tmpl);
	coh.redis_port = lg_test_free_port();
	cr_assert_eq(lg_test_services("redis start '%s' %d", coh.redis_dir, coh.redis_port), 0);
	coh.db = PQconnectdb(coh.pg.dsn);
	cr_assert_eq(PQstatus(coh.db), CONNECTION_OK, "%s", PQerrorMessage(coh.db));
	coh_redis_reconnect();
	json_t *cfg = json_pack("{ss s{sssi} si}", "postgres", coh.pg.dsn, "redis", "host",
				"127.0.0.1", "port", coh.redis_port, "poll_interval_ms", 200);
	if (extra != NULL) {
		json_object_update(cfg, extra);
	}
	rfh_cluster_init(&coh.cluster, 3, 3, cfg);
	json_decref(cfg);
	coh_cli("setup", NULL);
	coh_sql("SET client_min_messages = warning");
	coh_sql("CREATE TABLE items (id int PRIMARY KEY, name text, n int)");
	coh_cli("reflect", "public.items");
	if (start_nodes) {
		rfh_start_all(&coh.cluster, 3);
		coh_leader();
	}
}

int coh_leader(void)
{
	int leader = rfh_wait_agreed_leader(&coh.cluster, 3, COH_WAIT_MS, NULL);
	cr_assert_geq(leader, 0, "no leader");
	return leader;
}

void coh_wait_drained(void)
{
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	while (coh_sql_int("SELECT count(*) FROM lifeguard.outbox") != 0) {
		cr_assert_lt(rfh_now_ms(), deadline, "outbox not drained");
		rfh_sleep_ms(20);
	}
}

char *coh_items_value(int id)
{
	char q[200];
	snprintf(q, sizeof(q),
		 "SELECT '{\"v\":' || lg_version || ',\"row\":' || to_jsonb(t)::text || '}'"
		 " FROM items t WHERE id = %d",
		 id);
	PGresult *r = PQexec(coh.db, q);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1, "items %d", id);
	char *v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

bool coh_cached_current(const char *key, int id)
{
	char *v = coh_rget(key);
	char *want = coh_items_value(id);
	json_t *a = v != NULL ? json_loads(v, 0, NULL) : NULL;
	json_t *b = json_loads(want, 0, NULL);
	bool same = a != NULL && b != NULL && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	free(v);
	free(want);
	return same;
}
