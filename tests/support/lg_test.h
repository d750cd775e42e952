/*
 * Test support: where the ephemeral services started by scripts/services are, and helpers to
 * start private PostgreSQL instances for tests that stop or kill their server.
 */
#ifndef LG_TEST_H
#define LG_TEST_H

#include <stdbool.h>
#include <stdint.h>

/* The shared primary's conninfo ($LG_TEST_PG_DSN); aborts the test when unset. */
const char *lg_test_pg_dsn(void);

/* A port nobody listens on right now (bound, then released). */
int lg_test_free_port(void);

/* Runs "$LG_SCRIPTS_DIR/services ARGS..." and returns its exit status. */
int lg_test_services(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A private PostgreSQL instance in a fresh temp dir on a free port. */
struct lg_test_pg {
	char dir[256];
	int port;
	char dsn[256];
};

bool lg_test_pg_start(struct lg_test_pg *pg);
bool lg_test_pg_stop(struct lg_test_pg *pg, const char *mode); /* "fast", "immediate" */
bool lg_test_pg_restart(struct lg_test_pg *pg);
void lg_test_pg_destroy(struct lg_test_pg *pg);
/* A private streaming replica of the shared primary ($LG_TEST_PG_PORT), copied with
 * pg_basebackup (scripts/services pg replica); stop and destroy it like the above. */
bool lg_test_pg_replica_start(struct lg_test_pg *pg);

/*
 * Ends a test's private services, each only when set, and marks it gone: the Redis of
 * redis_dir (killed, its dir removed; redis_dir[0] cleared), the replica of replica_dir
 * (stopped; cleared), and pg (lg_test_pg_destroy; *pg_started cleared). Any may be NULL.
 */
void lg_test_private_destroy(char *redis_dir, char *replica_dir, struct lg_test_pg *pg,
			     bool *pg_started);

/* A TCP listener on 127.0.0.1 that never accepts: connects hang after the handshake. */
int lg_test_blackhole_listen(int *port);

#endif
