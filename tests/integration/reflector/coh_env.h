/*
 * The world of a coherence test: a private PostgreSQL and a private Redis (started by the
 * test, so that it may stop, restart or misconfigure them), the lifeguard schema, the table
 * public.items, and a 3-node reflector cluster configured for both. Helpers assert on
 * failure. Call coh_env_teardown() from the suite's .fini.
 */
#ifndef RF_COH_ENV_H
#define RF_COH_ENV_H

#include <stdbool.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "lg_test.h"
#include "rf_harness.h"

#define COH_WAIT_MS 60000

struct coh_env {
	struct lg_test_pg pg;
	bool pg_started;
	char redis_dir[256];
	int redis_port;
	PGconn *db;
	redisContext *rc;
	struct rfh_cluster cluster;
};

/* The one environment of the running test (static storage, see rfh_cluster_init). */
extern struct coh_env coh;

/* Starts PostgreSQL and Redis, configures the cluster (extra is merged into every node's
 * config, may be NULL), runs setup, creates and reflects public.items (id int primary key,
 * name text, n int); starts the nodes and waits for a leader when start_nodes. */
void coh_env_start(json_t *extra, bool start_nodes);
void coh_env_teardown(void);

void coh_sql(const char *q);
long long coh_sql_int(const char *q);
/* A Redis command on the test's own connection; the reply is Owned by the caller. */
redisReply *coh_redis(const char *fmt, ...);
/* GET key: Owned string or NULL when absent. */
char *coh_rget(const char *key);
void coh_rset(const char *key, const char *value);
/* Waits until the outbox is empty. */
void coh_wait_drained(void);
/* The value {"v":lg_version,"row":to_jsonb(row)} of items row id, as the reflector writes it
 * (Owned). */
char *coh_items_value(int id);
/* True when key holds exactly the current value of items row id (compared as JSON). */
bool coh_cached_current(const char *key, int id);
/* Redis' restart: SIGKILL, then start again in the same dir on the same port. */
void coh_redis_restart(void);
/* Reconnects the test's own Redis connection. */
void coh_redis_reconnect(void);
/* The index of the agreed leader. */
int coh_leader(void);

#endif
