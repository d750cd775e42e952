/*
 * Test harness for lifeguard-reflector clusters made of real processes on loopback.
 *
 * Each cluster gets a fresh temp dir (configs, data dirs, one log per node) and free ports
 * outside the kernel's ephemeral range (so raft's own outgoing connections cannot take them).
 * Every spawned pid is registered: rfh_cleanup() (call it from the test's .fini) SIGKILLs and
 * reaps whatever is still running, even after a failed assertion, prints the tail of every
 * node's log when the test did not reach RFH_PASS(), and removes the temp dir.
 */
#ifndef RF_HARNESS_H
#define RF_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define RFH_MAX_NODES 8

struct rfh_node {
	uint64_t id;
	char raft[24];
	char http[24];
	char dir[300];
	char config[300];
	char log[300];
	pid_t pid; /* 0 when not running */
	bool join; /* started with join: true */
};

struct rfh_cluster {
	char root[256];
	size_t n; /* nodes with a config (bootstrap voters + joiners) */
	struct rfh_node nodes[RFH_MAX_NODES];
};

/* The daemon binary (LG_REFLECTOR_BIN). */
const char *rfh_bin(void);

/* Marks the running test as passed (no log dump at cleanup). */
void rfh_pass(void);
#define RFH_PASS() rfh_pass()

/*
 * Prepares a cluster of n nodes: the first n_bootstrap bootstrap together, the others get
 * join: true. Every config lists all n nodes as peers. extra (may be NULL) is merged into
 * every node's config file (e.g. {"admin_token": "x"}); it is Borrowed.
 * c must have static storage: it is registered for rfh_cleanup(), which runs in .fini after
 * Criterion has left the test function (a failed assert longjmps out of it).
 */
void rfh_cluster_init(struct rfh_cluster *c, size_t n, size_t n_bootstrap, json_t *extra);

/* Spawns node i with its config plus extra argv (NULL-terminated, may be NULL) and env
 * assignments ("K=V", NULL-terminated, may be NULL). Returns the pid. */
pid_t rfh_start(struct rfh_cluster *c, size_t i, const char *const *argv_extra,
		const char *const *env_extra);
void rfh_start_all(struct rfh_cluster *c, size_t count);

/* Sends sig to node i (must be running). */
void rfh_signal(struct rfh_cluster *c, size_t i, int sig);

/* SIGKILLs node i and reaps it. */
void rfh_kill(struct rfh_cluster *c, size_t i);

/* Waits up to timeout_ms for node i to exit; returns its wait status or -1 on timeout. */
int rfh_wait_exit(struct rfh_cluster *c, size_t i, int timeout_ms);

/* Kills and reaps every registered child, dumps logs unless passed, removes temp dirs. */
void rfh_cleanup(void);

/* Runs a program to completion with a deadline: returns the exit status (or -1), captures
 * stdout+stderr into out (cap bytes, NUL-terminated). env_extra as in rfh_start. */
int rfh_run(const char *const *argv, const char *const *env_extra, char *out, size_t cap,
	    int timeout_ms);

/* GET/HEAD/POST... on node i; returns the HTTP status or -1 (body Owned by caller, may be
 * NULL when body is NULL). */
int rfh_http(const struct rfh_cluster *c, size_t i, const char *method, const char *path,
	     const char *headers, const char *req_body, char **body, int timeout_ms);

/* GET /status of node i parsed, or NULL when unreachable. Owned by the caller. */
json_t *rfh_status(const struct rfh_cluster *c, size_t i, int timeout_ms);

/*
 * Polls the running nodes among the first count until exactly one of them answers 200 on
 * /leader and every running node's /status names that leader and term. Returns the leader's
 * index, or -1 after timeout_ms; *term (may be NULL) receives the term.
 */
int rfh_wait_agreed_leader(const struct rfh_cluster *c, size_t count, int timeout_ms,
			   uint64_t *term);

/*
 * Polls node i's /status until its voter flag equals want and it knows a leader. Returns
 * false after timeout_ms.
 */
bool rfh_wait_voter(const struct rfh_cluster *c, size_t i, bool want, int timeout_ms);

/* Integer field of a JSON object (0 when absent); nested with "a.b". */
int64_t rfh_int(const json_t *o, const char *path);

/* Monotonic milliseconds. */
int64_t rfh_now_ms(void);

/* Sleeps ms milliseconds. */
void rfh_sleep_ms(int ms);

/* Reads a whole file (Owned, NUL-terminated) or NULL. */
char *rfh_read_file(const char *path);

#endif
