/*
 * Shared by the files of reflect_bench (a benchmark program; steps and output are described in
 * reflect_bench.c): reflect_bench_env.c (services, schema, cache fill, the 3-node cluster),
 * reflect_bench_load.c (paced and flat-out writers, the NOTIFY probe, the Redis keyspace
 * subscriber) and reflect_bench_phase.c (the measured phases, libpq helpers).
 */
#ifndef LG_REFLECT_BENCH_H
#define LG_REFLECT_BENCH_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "bench_common.h"
#include "config.h"

#define RB_NODES      3
#define RB_TABLE      "public.bench"
#define RB_KEY_PREFIX "lifeguard:model:" RB_TABLE ":"

/* Set by SIGINT/SIGTERM: every loop of the program checks it and winds down. */
extern volatile sig_atomic_t rb_stop;

/* ---- reflect_bench_env.c ---- */

struct rb_node {
	char raft[RF_ADDR_MAX];
	char http[RF_ADDR_MAX];
	char config[PATH_MAX];
	char log[PATH_MAX];
	volatile pid_t pid; /* 0 = not running; read by the signal handler */
};

struct rb_env {
	const char *bin; /* Borrowed (argv or static): the lifeguard-reflector daemon */
	char dsn[512];
	int redis_port;
	char root[64];        /* temp dir: node configs, data dirs, logs */
	bool keep;            /* keep root (the node logs) at teardown */
	int audit_keys_per_s; /* the nodes' audit_keys_per_s; -1 = the daemon's default */
	struct rb_node nodes[RB_NODES];
};

/* Starts PostgreSQL + Redis and writes the node configs under a fresh temp dir. */
int rb_env_up(struct rb_env *e);
/* Creates public.bench with rows rows (id 1..rows), runs `setup` and `reflect` on it. */
int rb_env_schema(struct rb_env *e, int rows);
/* Marks every row cached: SET <key> {"v":0,"row":{}} PX 1 h, pipelined. */
int rb_env_fill(struct rb_env *e, int rows);
/* CONFIG SET notify-keyspace-events to flags ("" turns them off). */
int rb_env_keyspace_events(struct rb_env *e, const char *flags);
/* Starts the three daemons (stderr to root/nodeN.log). */
int rb_env_cluster_start(struct rb_env *e);
/* Waits for a leader whose coherence session listens; returns its index or -1. */
int rb_env_leader(struct rb_env *e, int timeout_ms);

/* The leader's coherence counters (GET /status). */
struct rb_counters {
	int64_t changes, keys, batches, errors, notifications, refreshed, kept, fenced;
	int64_t prop_count;
	double prop_mean_ms;
	int64_t term;
	bool leading;
};
int rb_env_counters(struct rb_env *e, int node, struct rb_counters *out);
/* Counts the lines of each node log holding "level":"warn" or "error"; prints them (max 5). */
void rb_env_log_summary(struct rb_env *e, FILE *out);
/* User + system CPU seconds of node's daemon so far (from /proc), or -1. */
double rb_env_node_cpu_s(struct rb_env *e, int node);
/* User + system CPU seconds of redis-server so far (INFO cpu), or -1. */
double rb_env_redis_cpu_s(struct rb_env *e);
/* SIGKILLs the daemons (async-signal-safe). */
void rb_env_kill_nodes(struct rb_env *e);
/* Kills the daemons, stops the services, removes the temp dir (unless keep). Idempotent. */
void rb_env_down(struct rb_env *e);

/* Connects with libpq; NULL (message printed) on failure. */
PGconn *rb_pg_connect(const char *dsn);
/* Runs sql (no result wanted); prints the error and returns -1 on failure. */
int rb_pg_exec(PGconn *c, const char *sql);
/* Runs sql returning one bigint; -1 on failure. */
int64_t rb_pg_int(PGconn *c, const char *sql);

/* ---- reflect_bench_load.c ---- */

/*
 * Changes in flight per row id, between the writers (who stamp the send time) and the
 * keyspace subscriber (who takes it back and records the latency).
 */
struct rb_track {
	_Atomic uint64_t *sent_us; /* Owned; [rows + 1]: send time (monotonic µs), 0 = idle */
	int rows;
	atomic_uint_fast64_t in_flight;
	atomic_uint_fast64_t unexpected; /* events for an id with nothing in flight */
	atomic_uint_fast64_t skipped;    /* writer found the next id still in flight */
	pthread_mutex_t mu;              /* guards lat */
	struct bench_lat lat;            /* µs, send -> keyspace event */
};

int rb_track_init(struct rb_track *t, int rows);
/* Forgets everything in flight and the latencies (between phases). */
void rb_track_reset(struct rb_track *t);
void rb_track_close(struct rb_track *t);

/* One writer phase: writers connections, each updating its own share of the ids. */
struct rb_load {
	const char *dsn; /* Borrowed */
	int rows;
	int writers;
	double rate; /* changes/s in total; 0 = flat out */
	int batch;   /* rows per UPDATE statement */
	double seconds;
	struct rb_track *track; /* Borrowed; NULL: no latency tracking */
	/* Results. */
	uint64_t changes;
	uint64_t statements;
	uint64_t errors;
	uint64_t first_us;    /* first send (monotonic µs) */
	uint64_t last_us;     /* last answer */
	double elapsed_s;     /* first send to last answer */
	uint64_t max_lag_us;  /* worst lateness against the pacing schedule */
	struct bench_lat rtt; /* µs per statement (send -> answer) */
};

/* Runs the phase to its end (or rb_stop). Returns 0, or -1 when a writer could not start. */
int rb_load_run(struct rb_load *l);

struct rb_notify {
	uint64_t sent;
	uint64_t received;
	struct bench_lat lat; /* µs, pg_notify() sent -> notification received */
};

/* pg_notify() on a private channel at rate/s for seconds, timed by a LISTEN connection. */
int rb_notify_run(const char *dsn, double rate, double seconds, struct rb_notify *out);

/* The keyspace subscriber thread: PSUBSCRIBE to the row keys, feed track. */
struct rb_sub;
int rb_sub_start(int redis_port, struct rb_track *t, struct rb_sub **out);
/* Events received so far (any, matched or not). */
uint64_t rb_sub_events(const struct rb_sub *s);
void rb_sub_stop(struct rb_sub *s);

/* ---- reflect_bench_phase.c ---- */

struct rb_opts {
	double seconds;
	int rows, writers, batch;
	bool json;
};

/* What one run shares between its phases. */
struct rb_ctx {
	const struct rb_opts *o; /* Borrowed */
	struct rb_env *env;      /* Borrowed */
	PGconn *pg;              /* Owned by the caller: outbox queries */
	struct rb_track *track;  /* Borrowed: fed by the keyspace subscriber */
	int leader;              /* index of the leader node once the cluster is up */
};

/* What the whole machine spent on a phase (every process: PostgreSQL, Redis, the daemons, this
 * program), from /proc/stat. */
struct rb_cpu {
	double busy_cores;    /* busy CPU seconds / wall seconds */
	double us_per_change; /* busy CPU µs / changes */
};

struct rb_anchors {
	double batched; /* --writers x --batch, like the sustained phase */
	double single;  /* single-row UPDATEs */
	int single_writers;
	struct rb_cpu batched_cpu;
};

struct rb_paced {
	double target, achieved, p50, p99, max, rtt_p50, lag_ms;
	uint64_t changes, received, missing, unexpected, skipped, errors;
	int batch, writers;
	double tail_ms;      /* last write answered -> last event (or give-up) */
	double per_batch;    /* changes per reflector batch (leader's counters) */
	double refl_mean_ms; /* the leader's own mean latency, trigger -> Redis write */
	double leader_cpu;   /* leader's CPU use during the phase, 1.0 = one core */
};

struct rb_sustained {
	double rate, write_rate, drain_rate, drain_s, leader_cpu;
	uint64_t changes, pending_at_stop;
	struct rb_cpu cpu;       /* first write .. outbox empty */
	struct rb_cpu drain_cpu; /* writers stopped .. outbox empty: reflecting alone */
	/* CPU µs per change over the same span: Redis and the leader's daemon. */
	double redis_us_per_change, leader_us_per_change;
	struct rb_counters before, after;
};

/* Writer connections for a paced phase and rows per UPDATE (see reflect_bench_phase.c). */
int rb_paced_writers(const struct rb_opts *o, double rate, int batch);
int rb_paced_batch(double rate, const struct rb_anchors *a);
/* Writers flat out without the cluster; *rate in changes/s; cpu (may be NULL) gets the
 * machine's CPU over the phase. */
int rb_phase_anchor(struct rb_ctx *c, int writers, int batch, double *rate, struct rb_cpu *cpu);
/* Paced writers with latency tracking; prints a line unless --json. */
int rb_phase_paced(struct rb_ctx *c, double rate, int batch, struct rb_paced *out);
/* Writers flat out for 2 x seconds, then waits for the outbox to empty. */
int rb_phase_sustained(struct rb_ctx *c, struct rb_sustained *s);
/* Paced below the sustained rate, stepping down until the reflector keeps up. */
int rb_phase_max(struct rb_ctx *c, double sustained, struct rb_paced *out, double *kept_up);

#endif
