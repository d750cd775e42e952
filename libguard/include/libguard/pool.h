/*
 * lg_pool: a few persistent PostgreSQL connections serving thousands of coroutines.
 *
 * Statements from many coroutines are multiplexed over the pool's connections: each goes to
 * the least-loaded healthy connection with room (at most max_in_flight_per_conn statements
 * in flight on one connection). There every statement keeps its autocommit meaning (a sync
 * segment of its own), while reads marked LG_QUERY_SHARED_READ share segments (see conn.h),
 * and session state is refused (see lg_pool_query). When every connection is full, callers wait
 * in one FIFO queue with their acquire deadline; a freed slot is handed to the oldest waiter,
 * so nobody starves under overload.
 *
 * Transactions pin one connection exclusively from BEGIN to COMMIT/ROLLBACK.
 *
 * Health: a lost connection fails its in-flight statements with LG_ECONNLOST (outcome
 * unknown, never replayed); statements it had not sent yet are sent on another connection. Lost
 * connections are replaced in the background with exponential backoff and jitter; connections past
 * max_lifetime_ms, or idle past idle_timeout_ms while the pool is above min_conns, are retired
 * only once nothing is in flight on them.
 *
 * All calls work inside a coroutine of the pool's runtime or outside any coroutine.
 */
#ifndef LIBGUARD_POOL_H
#define LIBGUARD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/conn.h"
#include "libguard/error.h"
#include "libguard/result.h"
#include "libguard/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_pool;
struct lg_tx;

struct lg_pool_config {
	const char *conninfo;            /* Copied */
	unsigned min_conns;              /* opened at start and kept; 0 = 1 */
	unsigned max_conns;              /* 0 = max(min_conns, 4) */
	unsigned max_in_flight_per_conn; /* 0 = 256 */
	unsigned max_segment;            /* statements per sync segment; 0 = 64 */
	uint64_t acquire_timeout_ms;     /* default wait for a slot; 0 = 5,000 */
	uint64_t connect_timeout_ms;     /* per attempt; 0 = 5,000 */
	/* Deadline of a statement whose caller gives none (opts->deadline 0), so a hung server
	 * fails calls in bounded time. 0 = 30,000; LG_TIMEOUT_NONE = wait forever. */
	uint64_t statement_timeout_ms;
	uint64_t max_lifetime_ms;    /* rotate when idle; 0 = 3,600,000; LG_TIMEOUT_NONE = never */
	uint64_t idle_timeout_ms;    /* close idle ones above min; 0 = 600,000; NONE = never */
	uint64_t backoff_initial_ms; /* reconnect backoff; 0 = 50 */
	uint64_t backoff_max_ms;     /* 0 = 5,000 */
	uint64_t drain_timeout_ms;   /* graceful close waits this long; 0 = 10,000 */
	/* A transaction whose owner sends nothing for this long is ended by the server
	 * (idle_in_transaction_session_timeout): its connection is lost and replaced, and the
	 * owner's COMMIT fails. 0 = 60,000; LG_TIMEOUT_NONE = never. */
	uint64_t tx_idle_timeout_ms;
	/* A connection idle this long is sent "SELECT 1" with this deadline; no answer marks it
	 * lost and it is replaced. 0 = 30,000; LG_TIMEOUT_NONE = never. */
	uint64_t health_check_ms;
	bool no_warmup; /* do not wait for min_conns in lg_pool_new */
};

/*
 * Creates a pool on rt (Borrowed: must outlive the pool). Unless no_warmup, waits until
 * min_conns connections are open (or the first connect error: the pool is then not
 * created and err says why). On success *out is Owned; release with lg_pool_free().
 */
LG_API int lg_pool_new(struct lg_runtime *rt, const struct lg_pool_config *config,
		       struct lg_pool **out, struct lg_error *err);

/*
 * Graceful close: new calls fail with LG_ECLOSED, waiters are woken with LG_ECLOSED,
 * statements in flight may finish until drain_timeout_ms, then every connection is closed
 * (whatever is still running completes with LG_ECANCELED) and the pool is freed once every
 * open transaction has been ended by its owner (their calls fail fast after the close).
 */
LG_API void lg_pool_free(struct lg_pool *pool);

/*
 * Runs one statement on a pooled connection (same contract as lg_conn_query). The acquire
 * wait is bounded by opts->deadline when set, else by acquire_timeout_ms; LG_ETIMEDOUT then
 * names the last connect error when the server is unreachable. A statement marked
 * LG_QUERY_SHARED_READ that is chosen as a deadlock or serialization victim (40P01/40001)
 * changed nothing and is sent again (a few times, after a short random pause) before the
 * error is reported; any other statement's error is reported as in autocommit.
 *
 * Pooled connections are shared, so statements that would leave session state behind are
 * refused with LG_EINVAL before anything is sent: transaction control (use lg_pool_begin),
 * SET/RESET (SET LOCAL is fine inside a transaction), set_config(.., false) or with a
 * non-literal is_local, LISTEN/UNLISTEN, PREPARE/DEALLOCATE/DISCARD, session advisory locks
 * (pg_advisory_lock ...; the _xact_ ones are fine), temporary tables and cursors WITH HOLD.
 * Text that PostgreSQL's parser rejects is sent, alone, and the server
 * reports its error; text it could not inspect (longer than 256 KiB, or nested too deeply)
 * is refused, since it might change the session.
 */
LG_API int lg_pool_query(struct lg_pool *pool, const char *sql, const struct lg_param *params,
			 int nparams, const struct lg_query_opts *opts, struct lg_result **out,
			 struct lg_error *err);
LG_API int lg_pool_exec(struct lg_pool *pool, const char *sql, struct lg_error *err);

enum lg_isolation {
	LG_ISOLATION_DEFAULT = 0,
	LG_ISOLATION_READ_COMMITTED,
	LG_ISOLATION_REPEATABLE_READ,
	LG_ISOLATION_SERIALIZABLE,
};

struct lg_tx_opts {
	enum lg_isolation isolation;
	bool read_only;
	bool deferrable;
	uint64_t deadline; /* for acquiring the connection and BEGIN; 0 = acquire_timeout_ms */
};

/*
 * Begins a transaction on a connection pinned for it alone. *out is Owned until
 * lg_tx_commit() or lg_tx_rollback(), which always release it (also on error).
 */
LG_API int lg_pool_begin(struct lg_pool *pool, const struct lg_tx_opts *opts, struct lg_tx **out,
			 struct lg_error *err);
/*
 * A statement of the transaction (lg_conn_query's contract and codes). One that ends in
 * LG_ETIMEDOUT, LG_ECANCELED or LG_EUNKNOWN dooms the transaction: see lg_tx_commit. After
 * lg_pool_free: LG_ECLOSED.
 */
LG_API int lg_tx_query(struct lg_tx *tx, const char *sql, const struct lg_param *params,
		       int nparams, const struct lg_query_opts *opts, struct lg_result **out,
		       struct lg_error *err);
LG_API int lg_tx_exec(struct lg_tx *tx, const char *sql, struct lg_error *err);
/* Savepoints; name is quoted as an identifier. */
LG_API int lg_tx_savepoint(struct lg_tx *tx, const char *name, struct lg_error *err);
LG_API int lg_tx_release(struct lg_tx *tx, const char *name, struct lg_error *err);
LG_API int lg_tx_rollback_to(struct lg_tx *tx, const char *name, struct lg_error *err);
/*
 * Commits. 0 only when the server confirmed the COMMIT. A transaction that had failed is
 * rolled back by the server: LG_ESERVER with SQLSTATE 25P02. A doomed transaction (a
 * statement's deadline or cancel) is rolled back instead: LG_ECANCELED. A connection lost
 * before the answer gives LG_ECONNLOST, and a deadline after sending LG_EUNKNOWN: the outcome
 * is unknown, never reported as success. After lg_pool_free, or once the server ended an
 * abandoned transaction (tx_idle_timeout_ms): LG_ECLOSED / LG_ECONNLOST, nothing committed.
 */
LG_API int lg_tx_commit(struct lg_tx *tx, struct lg_error *err);
LG_API int lg_tx_rollback(struct lg_tx *tx, struct lg_error *err);

/*
 * Runs fn in a transaction and commits; retries the whole transaction (up to max_attempts,
 * 0 = 5) when it fails with serialization_failure (40001) or deadlock_detected (40P01),
 * with a short randomized backoff. fn returns 0 to commit, anything else to roll back and
 * return that code. arg is Borrowed for the call.
 */
LG_API int lg_pool_run_tx(struct lg_pool *pool, const struct lg_tx_opts *opts,
			  int (*fn)(struct lg_tx *tx, void *arg, struct lg_error *err), void *arg,
			  unsigned max_attempts, struct lg_error *err);

#define LG_POOL_WAIT_BUCKETS 8

struct lg_pool_stats {
	unsigned conns_open; /* connected (busy + idle) */
	unsigned conns_busy; /* with statements in flight or pinned */
	unsigned conns_idle;
	unsigned conns_connecting;
	unsigned conns_pinned;
	unsigned waiters;   /* callers waiting for a slot or a connection */
	uint64_t in_flight; /* statements on the wire */
	uint64_t statements_ok;
	uint64_t statements_failed;
	uint64_t reconnects; /* connections opened after the warm-up */
	uint64_t connect_failures;
	uint64_t conns_lost;
	uint64_t conns_retired;        /* closed for max lifetime or idle timeout */
	uint64_t health_checks_failed; /* idle connections that did not answer SELECT 1 */
	uint64_t acquire_timeouts;
	/* Acquire wait histogram: upper bounds in µs are 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, +Inf. */
	uint64_t acquire_wait_buckets[LG_POOL_WAIT_BUCKETS];
	uint64_t acquire_wait_sum_us;
	uint64_t acquire_count;
};

LG_API void lg_pool_get_stats(const struct lg_pool *pool, struct lg_pool_stats *out);

/* Upper bound in µs of histogram bucket i (UINT64_MAX for the last). */
LG_API uint64_t lg_pool_wait_bucket_bound(unsigned i);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_POOL_H */
