/* Helpers the chaos tests share (see chaos_env.h). */
#include "chaos_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "chaos_load.h"

PGresult *chaos_query(PGconn **db, const char *dsn, const char *q)
{
	cr_assert(chaos_pg_ensure(db, dsn), "PostgreSQL: %s", PQerrorMessage(*db));
	PGresult *r = PQexec(*db, q);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
		  PQresultErrorMessage(r));
	return r;
}

long long chaos_query_int(PGconn **db, const char *dsn, const char *q)
{
	PGresult *r = chaos_query(db, dsn, q);
	long long v = PQntuples(r) > 0 ? atoll(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	return v;
}

void chaos_redis_ensure(redisContext **rc, int port)
{
	if (*rc != NULL && (*rc)->err == 0) {
		return;
	}
	redisFree(*rc);
	struct timeval tv = {10, 0};
	*rc = redisConnectWithTimeout("127.0.0.1", port, tv);
	cr_assert(*rc != NULL && (*rc)->err == 0, "Redis: %s", *rc != NULL ? (*rc)->errstr : "?");
	redisSetTimeout(*rc, tv);
}

void chaos_replica_start(const struct lg_test_pg *pg, char *dir, size_t dir_cap, int *port,
			 char *dsn, size_t dsn_cap)
{
	const char *slash = strrchr(pg->dir, '/');
	cr_assert_not_null(slash, "%s", pg->dir);
	snprintf(dir, dir_cap, "%.*s/replica", (int)(slash - pg->dir), pg->dir);
	*port = lg_test_free_port();
	cr_assert_eq(lg_test_services("pg replica '%s' %d %d", dir, *port, pg->port), 0,
		     "streaming replica");
	snprintf(dsn, dsn_cap,
		 "host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres"
		 " target_session_attrs=read-write",
		 pg->port, *port);
}

void chaos_redis_start(char *dir, size_t dir_cap, int *port)
{
	char tmpl[] = "/tmp/rf-chaos-redis.XXXXXX";
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(dir, dir_cap, "%s", tmpl);
	*port = lg_test_free_port();
	cr_assert_eq(lg_test_services("redis start '%s' %d", dir, *port), 0);
}

void chaos_cli(const struct rfh_cluster *c, const char *cmd, const char *arg, int timeout_ms)
{
	const char *argv[] = {rfh_bin(), cmd, "--config", c->nodes[0].config, arg, NULL};
	char out[4096];
	int st = rfh_run(argv, NULL, out, sizeof(out), timeout_ms);
	cr_assert_eq(st, 0, "%s %s: %s", cmd, arg != NULL ? arg : "", out);
}

long long chaos_counter_sum(const struct rfh_cluster *c, size_t n, const char *name)
{
	char path[64];
	snprintf(path, sizeof(path), "counters.%s", name);
	long long sum = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *st = c->nodes[i].pid > 0 ? rfh_status(c, i, 2000) : NULL;
		sum += st != NULL ? rfh_int(st, path) : 0;
		json_decref(st);
	}
	return sum;
}
