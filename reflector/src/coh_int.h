/* Shared by the coherence pipeline's files (coherence.c, coh_batch.c, coh_apply.c). */
#ifndef RF_COH_INT_H
#define RF_COH_INT_H

#include <libguard/cache_contract.h>
#include <libguard/conn.h>
#include <libguard/pool.h>
#include <libguard/redis.h>

#include "audit.h"
#include "coh_plan.h"
#include "coherence.h"
#include "rf_error.h"

/* Per-command deadline for Redis and per-statement deadline for PostgreSQL. */
#define COH_REDIS_TIMEOUT_MS 5000
#define COH_PG_TIMEOUT_MS    30000
/* Reconnect and retry backoff of the session, its listener and its pool. */
#define COH_BACKOFF_MIN_MS 50
#define COH_BACKOFF_MAX_MS 2000
/* idle_in_transaction_session_timeout of the claim transaction: a paused (SIGSTOP) or
 * partitioned leader's claimed rows return to the outbox after this long at most. */
#define COH_IDLE_TX_MS 10000
/* Fan-out width: Redis commands of one loop turn travel in one pipeline write. */
#define COH_WORKERS 128
/* Keys per REFRESH_MANY script (coh_apply.c): large enough that the per-call cost in Redis is
 * small beside the keys' own, small enough that one script holds Redis for well under a
 * millisecond and a batch still spreads over several workers. */
#define COH_REFRESH_CHUNK 32
/* Batches this small read the rows of their inserts/updates before touching Redis, and
 * refresh them a chunk per script (REFRESH_MANY fences a key that is not cached); larger ones
 * too while at least COH_DIRECT_SHARE of recent batches' keys were cached (coh_batch.c).
 * Otherwise CHECK_OR_FENCE first, and only the cached keys' rows are read. */
#define COH_SPECULATE_MAX 32
#define COH_DIRECT_SHARE  0.5
/* Batches applied at once, each in its own claim transaction (coh_batch.c): under a
 * backlog, and otherwise. */
#define COH_LANES      4
#define COH_LANES_IDLE 2
/* Buckets of the set of keys that batches in flight carry (a power of two). */
#define COH_INFLIGHT_BUCKETS 4096

struct rf_node;

struct rf_coherence {
	struct lg_runtime *rt;       /* Borrowed */
	const struct rf_config *cfg; /* Borrowed */
	struct rf_node *node;        /* Borrowed: takes fencing tokens through raft; may be NULL */
	struct rf_coherence_stats stats;
	struct rf_coh_session *session; /* the current term's session, if any */
	/* Named by Redis on first use; shared by every session's client (all on rt). */
	struct lg_redis_script scripts[LG_CACHE__SCRIPT_COUNT];
	struct lg_redis_script invalidate_script; /* timetravel.c */
	struct lg_redis_script mark_script;       /* timetravel.c */
	unsigned live_sessions;                   /* sessions not yet released */
	bool disabled;                            /* postgres or redis not configured */
};

/* A key's table as the catalog describes it (cached per session). */
struct coh_table {
	char *name;      /* as in the outbox */
	const char *bad; /* static reason it cannot be read, or NULL */
	char *canon;     /* quote_ident(schema).quote_ident(table) */
	char *read_sql;  /* rf_plan_read_sql */
	uint64_t loaded_ms;
	bool loading; /* a coroutine is reading the catalog for it */
};

/* One leadership term's work. Released when the last coroutine holding it lets go. */
/* One key of a batch in flight (coh_batch.c); key is Borrowed from the batch's plan. */
struct coh_key_node {
	const char *key;
	struct coh_key_node *next;
};

struct rf_coh_session {
	struct rf_coherence *coh;
	uint64_t term;
	/* The fencing token every script carries (fencing.h); 0 until taken, and again after
	 * Redis was found holding a higher one. */
	uint64_t token;
	char token_str[24];
	/* Redis' INFO server run_id when last checked: a change means a restart, maybe from
	 * an older snapshot (timetravel.c). */
	char run_id[48];
	uint64_t run_id_checked_ms;
	bool redis_suspect;    /* a Redis failure since: check the run id before a batch */
	int64_t suspect_below; /* changes up to this version may meet phantom values */
	/* The primary's history when last checked ("<system id>/<timeline>"): a new timeline
	 * means a promoted replica or a restore, which may have lost processed commits. */
	char pg_history[48];
	uint64_t pg_history_checked_ms;
	uint64_t invalidate_at_ms; /* second invalidation pass due (0 = none) */
	int64_t mark;              /* the highest version this session knows Redis has seen */
	int64_t mark_sent;         /* the highest mark Redis confirmed holding */
	bool mark_known;           /* mark was read from Redis (since its last restart) */
	bool ended; /* leadership lost or shutdown: finish the current step, then stop */
	int refs;
	struct lg_pool *pool;
	struct lg_redis *redis;
	bool listener_started;
	bool listener_done;
	bool sampler_started;
	bool sampler_done;
	struct lg_coro *sampler;   /* set by the sampler while it runs */
	struct lg_coro *listener;  /* set by the listener while it runs */
	struct lg_cond *wake;      /* main waits here for NOTIFY, poll timer, end */
	bool dirty;                /* work may be waiting in the outbox */
	struct coh_table **tables; /* Owned entries (never moved: lanes hold them) */
	size_t n_tables;
	struct lg_tx *next_tx;       /* opened ahead for the next batch, or NULL */
	unsigned in_flight;          /* batches handed to lanes, not finished yet */
	struct lg_cond *finished_cv; /* signaled when one of them is done */
	int lane_rc;                 /* worst enum coh_rc of lanes since main last looked */
	size_t last_claimed;         /* outbox rows of the last claim */
	bool lane_committed;         /* a lane committed since main last looked: progress */
	/* Row keys of the batches in flight, hashed (COH_INFLIGHT_BUCKETS; NULL until used). */
	struct coh_key_node **inflight;
	bool last_full; /* the last batch claimed batch_size rows: a backlog is draining */
	/* Share of recent batches' keys found cached (moving average; starts at 1). */
	double cached_share;
	struct rf_audit_state audit; /* the sampler's audit rounds (audit.c) */
	bool schema_checked;         /* rf__coh_schema_check ran for this session */
};

/* Outcome of a step, worst wins: the codes of rf_error.h (RETRY < STALE < DEPOSED <
 * CANCELED), under the pipeline's names. */
enum coh_rc {
	COH_OK = RF_OK,
	COH_RETRY = RF_ERETRY,     /* transient failure: roll back, back off */
	COH_STALE = RF_ESTALE,     /* Redis holds a higher token: take a new one (or stop) */
	COH_DEPOSED = RF_EDEPOSED, /* this node no longer leads in the session's term: stop */
	COH_CANCELED = RF_ECANCELED,
};

void rf__coh_session_release(struct rf_coh_session *s);

/*
 * One batch in flight, shared by main and the fan-out workers: it is freed (plan included)
 * when the last of them releases it, so a coroutine canceled at shutdown never leaves a
 * worker holding freed memory.
 */
struct coh_batch {
	int refs;
	struct rf_coh_session *s; /* a session reference is held for the batch */
	struct rf_plan plan;
	struct lg_cond *done; /* main waits here for the workers */
	int (*item)(struct coh_batch *b, size_t i);
	size_t n;
	size_t next;
	unsigned running;
	int rc;     /* worst enum coh_rc of the fan-out */
	bool abort; /* stop taking items */
	/* TRUNCATE sweep: one SCAN page of row keys and the version to tombstone them with. */
	struct lg_redis_reply *scan;
	int64_t sweep_version;
	char sweep_version_str[24];
	/* Keys whose row was read, refreshed COH_REFRESH_CHUNK to a script (coh_apply.c). */
	size_t *refresh;
	size_t n_refresh;
	size_t n_chunks;
	/* Keys Redis answered as cached (refreshed, kept, tombstoned) or not (fenced). */
	size_t n_hit;
	size_t n_miss;
	int64_t mark_top; /* the highest version of the batch (Redis' mark, timetravel.c) */
	/* Handed to the lane: the claim transaction and when Redis was written. */
	struct lg_tx *tx;
	int64_t written_us;
	/* Its keys in the session's in-flight set (n_nodes of them), and changes left in
	 * the outbox because their key was in flight. */
	struct coh_key_node *nodes;
	size_t n_nodes;
	size_t deferred;
	json_t *requeue; /* Owned: the deferred changes' rows (coh_batch.c), or NULL */
};

/* Creates a batch holding a reference on s; NULL when out of memory. */
struct coh_batch *rf__coh_batch_new(struct rf_coh_session *s);
void rf__coh_batch_release(struct coh_batch *b);

/*
 * Claims and plans one batch, then hands it to a lane coroutine (Redis work, delete,
 * commit) and returns, with up to COH_LANES batches in flight. *claimed receives the number
 * of outbox rows claimed. Returns enum coh_rc, including the worst outcome of lanes that
 * finished since the last call.
 */
int rf__coh_batch_run(struct rf_coh_session *s, size_t *claimed);

/* Waits until no batch is in flight; returns (and clears) the worst outcome of the lanes. */
int rf__coh_drain(struct rf_coh_session *s);

/*
 * Opens the next batch's transaction ahead of time (BEGIN alone holds no snapshot, lock or
 * xid), so that a wake-up costs the claim only. Failures are left to the next batch.
 */
void rf__coh_preopen(struct rf_coh_session *s);

/*
 * The Redis side of one planned batch (coh_apply.c). Returns enum coh_rc, or COH_CANCELED
 * when the caller was canceled (the batch may then only be released).
 */
/* Raises the table fence of every TRUNCATE of the plan (before the commit). */
int rf__coh_apply_truncates(struct coh_batch *b);
/* Tombstones the cached keys of every truncated table (after the commit); failures are
 * logged, never retried: the table fences already make those keys unreadable. */
void rf__coh_sweep_truncates(struct coh_batch *b);
/* with_claim: raise the term key first, in the same pipeline as the keys' scripts. */
int rf__coh_apply_keys(struct coh_batch *b, bool with_claim);

/*
 * Reads the rows of the keys in state RF_KEY_CACHED, or with speculative of every pending
 * insert/update, and stores them on the keys (read_done, row_found, value, read_bad).
 * rf__coh_read_merge then turns cached keys that cannot be read into RF_KEY_BAD.
 */
int rf__coh_read_rows(struct rf_coh_session *s, struct rf_plan *p, bool speculative);
void rf__coh_read_merge(struct rf_plan *p);

/* Once per session: installs the contract's PostgreSQL objects when they are missing or
 * older (replacing outdated capture triggers), so a new leader never serves an old contract.
 * COH_RETRY when PostgreSQL cannot be asked; a refused upgrade is logged, not retried. */
int rf__coh_schema_check(struct rf_coh_session *s);

/* Server errors no retry can fix (data exceptions, undefined objects). */
bool rf__coh_permanent(int rc, const struct lg_error *err);
/* Logs a PostgreSQL failure of this session; returns COH_RETRY. */
int rf__coh_pg_failed(struct rf_coh_session *s, const struct lg_error *err, const char *what);

/* The session's listener and sampler coroutines (coh_watch.c); arg is the session, whose
 * reference each releases when it ends. */
void rf__coh_listen(void *arg);
void rf__coh_sampler(void *arg);

/* Raises the term key to s->token (LG_CACHE_CLAIM_TERM). */
int rf__coh_claim_term(struct rf_coh_session *s);

/* Classifies a Redis failure and records the connection state. */
int rf__coh_redis_failed(struct rf_coh_session *s, int rc, const struct lg_error *err,
			 const char *what);

/* Remembers what failed, for the stall reason on /status and /readyz. */
void rf__coh_note_failure(struct rf_coh_session *s, const char *what, const char *message);

/*
 * Things that go back in time (timetravel.c), both run by main between batches:
 * rf__coh_check_redis compares Redis' run id with the one seen before and, when it changed
 * (or on the session's first check), invalidates the cached keys that may be older than their
 * rows; rf__coh_check_sequence compares the version sequence with the highest version Redis
 * has seen (its mark), raises the sequence past it and invalidates. Both return enum coh_rc.
 */
int rf__coh_check_redis(struct rf_coh_session *s);
int rf__coh_check_sequence(struct rf_coh_session *s, int64_t seq_last);
extern const char rf__coh_invalidate_lua[];
extern const char rf__coh_mark_lua[];
/* Copies the value of "name:" from an INFO reply into out (cap bytes); false if absent. */
bool rf__coh_info_field(const struct lg_redis_reply *r, const char *name, char *out, size_t cap);
/* Raises Redis' version mark to the highest version of the batch (pipelined with it). */
int rf__coh_raise_mark(struct rf_coh_session *s, int64_t version);
struct rf_audit_state;
struct rf_audit_round;
/* One audit round over up to want keys (of table, or all when NULL): audit.c. */
int rf__coh_audit(struct rf_coh_session *s, struct rf_audit_state *a, const char *table,
		  size_t want, struct rf_audit_round *out);
/* A session that leads nothing, for the CLI: connected to the configured PostgreSQL and
 * Redis (NULL and a message on stderr when either fails). */
struct rf_coh_session *rf__coh_session_open(struct rf_coherence *c);
/* Deletes the cached row keys (all of them, or those whose version is above above). */
int rf__coh_invalidate(struct rf_coh_session *s, int64_t above, uint64_t *deleted);

#endif
