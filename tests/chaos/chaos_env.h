/*
 * Small helpers the chaos tests share: their own Redis connection, the reflector CLI and
 * the cluster's /status counters. They assert on failure (Criterion).
 */
#ifndef CHAOS_ENV_H
#define CHAOS_ENV_H

#include <stddef.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "lg_test.h"
#include "rf_harness.h"

/* Runs q on *db (connected to dsn first when needed); asserts success. The result is Owned. */
PGresult *chaos_query(PGconn **db, const char *dsn, const char *q);

/* chaos_query, then the first column of the first row as an integer (0 without rows). */
long long chaos_query_int(PGconn **db, const char *dsn, const char *q);

/* Keeps *rc connected to 127.0.0.1:port (10 s timeouts): reconnects after a failure. */
void chaos_redis_ensure(redisContext **rc, int port);

/*
 * Starts a streaming replica of pg in the dir beside pg's data dir (named "replica", removed
 * with pg's temp dir) on a free port: dir and *port receive where; dsn receives a conninfo
 * naming both servers that connects to whichever accepts writes.
 */
void chaos_replica_start(const struct lg_test_pg *pg, char *dir, size_t dir_cap, int *port,
			 char *dsn, size_t dsn_cap);

/* Starts a private Redis in a fresh temp dir (into dir) on a free port (into *port). */
void chaos_redis_start(char *dir, size_t dir_cap, int *port);

/* Runs `lifeguard-reflector cmd --config <node 1's config> [arg]`; asserts exit 0. */
void chaos_cli(const struct rfh_cluster *c, const char *cmd, const char *arg, int timeout_ms);

/* Sums the /status counter name over the running nodes among the first n (counters restart
 * with a process). */
long long chaos_counter_sum(const struct rfh_cluster *c, size_t n, const char *name);

#endif
