/*
 * One asynchronous PostgreSQL connection, shared by many coroutines.
 *
 * The connection runs libpq in nonblocking pipeline mode: statements submitted by coroutines
 * during one loop turn go out in one write, and nobody waits a round trip for another.
 *
 * Every statement behaves as if it were sent alone in autocommit: it travels in a sync
 * segment of its own (its own implicit transaction, locks and failure), unless its caller
 * marks it LG_QUERY_SHARED_READ. Marked reads of one loop turn share segments (up to
 * max_segment statements) and are re-run if a sibling fails, which is safe only because they
 * change nothing: the mark is checked with PostgreSQL's own parser (cached per SQL text), and
 * a marked statement that writes, locks rows, calls nextval()/set_config()/advisory locks or
 * holds several statements is refused with LG_EINVAL. COPY is refused (pipeline mode cannot
 * carry it).
 *
 * Outcomes are truthful (error.h, lg_error_outcome_unknown): a statement in flight when the
 * connection dies fails with LG_ECONNLOST, and one whose deadline passes (or whose caller is
 * canceled) after it was sent returns LG_EUNKNOWN at once: its outcome is unknown, and it is
 * never sent again. A cancel request then goes to the server (from libuv's thread pool, since
 * PQcancel blocks) and the result is discarded when it arrives. Before sending, the same
 * deadline gives LG_ETIMEDOUT and the statement never runs. An error at a segment's implicit
 * COMMIT (a deferred constraint) goes to that segment's statement; the connection survives.
 * A cached prepared statement the server lost or invalidated (26000, 0A000) is prepared
 * again and re-sent once: it had not run.
 *
 * Transaction control on a shared connection affects every coroutine using it: use one
 * connection per transaction (the pool pins connections for that).
 *
 * Every call works inside a coroutine of the connection's runtime, or outside any coroutine
 * (then it runs the loop until done). The connection belongs to one runtime and one thread.
 */
#ifndef LIBGUARD_CONN_H
#define LIBGUARD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"
#include "libguard/param.h"
#include "libguard/result.h"
#include "libguard/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_conn;

/* A server notice or warning (RAISE NOTICE, say). Strings are Borrowed for the hook call. */
struct lg_notice {
	const char *severity; /* "NOTICE", "WARNING", ... */
	const char *sqlstate;
	const char *message;
};

struct lg_conn_config {
	const char *conninfo;        /* libpq keyword/value string or URI. Copied. */
	uint64_t connect_timeout_ms; /* 0 = 10,000 */
	/* Deadline of a statement whose caller gives none (opts NULL or opts->deadline 0).
	 * 0 = 30,000; LG_TIMEOUT_NONE = wait forever. */
	uint64_t statement_timeout_ms;
	unsigned max_segment;        /* statements per sync segment; 0 = 64 */
	unsigned max_in_flight;      /* statements sent and unanswered; 0 = 4,096 */
	unsigned prepared_cache_max; /* cached prepared statements; 0 = 1,024 */
	/* Called on the loop for every notice; NULL drops them. */
	void (*notice_hook)(void *ud, const struct lg_notice *notice);
	void *notice_ud; /* Borrowed until the connection is closed. */
	/* Called on the loop once when the connection is found lost (not on lg_conn_free). */
	void (*lost_hook)(void *ud, struct lg_conn *conn);
	void *lost_ud; /* Borrowed until the connection is closed. */
	/* Notifications kept until lg_conn_notification takes them; past it the oldest is
	 * dropped (counted in lg_conn_stats). 0 = 10,000. */
	unsigned notify_queue_max;
	/* Server settings for the session, in libpq's "options" syntax ("-c name=value ...");
	 * appended to the conninfo's own. NULL for none. Copied. */
	const char *options;
};

/*
 * Connects to PostgreSQL. Host names are resolved with uv_getaddrinfo (never blocking the
 * loop); libpq's own connect_timeout is replaced by connect_timeout_ms. On success *out is
 * Owned by the caller and released with lg_conn_free(). Errors: LG_ERESOLVE, LG_ECONNECT
 * (refused, authentication, ...), LG_ETIMEDOUT, LG_ECANCELED, LG_EINVAL (bad conninfo).
 */
LG_API int lg_conn_new(struct lg_runtime *rt, const struct lg_conn_config *config,
		       struct lg_conn **out, struct lg_error *err);

/*
 * Closes the connection. Statements still queued or in flight complete with LG_ECANCELED;
 * the memory is released once libuv has closed the socket handle. NULL is a no-op.
 */
LG_API void lg_conn_free(struct lg_conn *conn);

#define LG_QUERY_PREPARE 0x1u /* use the connection's prepared statement cache */
#define LG_QUERY_BINARY  0x2u /* ask for binary result columns */
/* A plain read (SELECT, VALUES, TABLE, SHOW, EXPLAIN without ANALYZE; no FOR UPDATE/SHARE,
 * no data-modifying WITH, no function with known side effects): may share a sync segment
 * with other callers' reads and be re-sent when one of them fails. LG_EINVAL otherwise.
 * (0x4 was LG_QUERY_ALONE, which is now every statement's default.) */
#define LG_QUERY_SHARED_READ 0x8u

struct lg_query_opts {
	uint64_t
	    deadline;   /* LG_DEADLINE_* or absolute; 0 = the connection's statement_timeout_ms */
	unsigned flags; /* LG_QUERY_* */
};

/*
 * Runs one statement with nparams bound parameters (params Borrowed until the call returns;
 * opts may be NULL). On success *out (may be NULL to discard) is an Owned result freed with
 * lg_result_free(). Errors: LG_ESERVER (err carries SQLSTATE and the server message),
 * LG_ECONNLOST (sent, outcome unknown; also for any call on a lost connection), LG_EUNKNOWN
 * (the deadline passed, or the caller was canceled or the connection closed, after it was
 * sent: outcome unknown), LG_ENOTSENT
 * (the connection was lost while the statement waited to be sent: not executed, safe to send
 * again elsewhere), LG_ETIMEDOUT / LG_ECANCELED (before it was sent: not executed),
 * LG_ECLOSED, LG_EINVAL (COPY, a parameter longer than 2 GiB - 1, a statement
 * marked LG_QUERY_SHARED_READ that is not a plain read, or more parameters than the protocol
 * allows; nothing was sent). The connection is the caller's own: session state (SET,
 * LISTEN ...) is allowed here and stays on it; the pool refuses it on shared connections.
 */
LG_API int lg_conn_query(struct lg_conn *conn, const char *sql, const struct lg_param *params,
			 int nparams, const struct lg_query_opts *opts, struct lg_result **out,
			 struct lg_error *err);

/* lg_conn_query without parameters or result. */
LG_API int lg_conn_exec(struct lg_conn *conn, const char *sql, struct lg_error *err);

/* True while the connection is usable (connected and not lost). */
LG_API bool lg_conn_ok(const struct lg_conn *conn);

/*
 * True when the session is inside a transaction block (or a failed one) as of the last
 * completed segment. Meaningful when no statement is in flight.
 */
LG_API bool lg_conn_in_transaction(const struct lg_conn *conn);

/* LISTEN / UNLISTEN on channel (quoted as an identifier; Borrowed for the call). */
LG_API int lg_conn_listen(struct lg_conn *conn, const char *channel, struct lg_error *err);
LG_API int lg_conn_unlisten(struct lg_conn *conn, const char *channel, struct lg_error *err);

struct lg_notification {
	char *channel;
	char *payload;
	int backend_pid;
};

/*
 * Waits for the next notification received on conn (queued in arrival order; at most one
 * waiter at a time: LG_EBUSY otherwise). *out is Owned: free with lg_notification_free().
 * LG_ECONNLOST once the connection is lost (notifications sent meanwhile are gone).
 */
LG_API int lg_conn_notification(struct lg_conn *conn, uint64_t deadline,
				struct lg_notification **out, struct lg_error *err);
LG_API void lg_notification_free(struct lg_notification *n);

struct lg_conn_stats {
	uint64_t statements; /* completed, with success or failure */
	uint64_t failed;
	uint64_t segments;   /* sync segments sent */
	uint64_t reruns;     /* statements re-run after a sibling failed */
	uint64_t prepares;   /* Parse messages sent */
	uint64_t reprepares; /* re-sent after the server lost or invalidated a prepared one */
	uint64_t notifications_dropped; /* the oldest, past notify_queue_max */
	uint64_t cancels;               /* cancel requests sent */
	size_t pending;                 /* queued, not sent */
	size_t in_flight;               /* sent, unanswered */
};

LG_API void lg_conn_get_stats(const struct lg_conn *conn, struct lg_conn_stats *out);

/* The server's process id for this session (0 if not connected). */
LG_API int lg_conn_backend_pid(const struct lg_conn *conn);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_CONN_H */
