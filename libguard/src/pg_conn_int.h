/*
 * Private layout of a PostgreSQL connection and the pieces shared by its files. They call
 * one way, from the top down; a lower layer reports failure by its return value and never
 * calls into a layer above it:
 *
 *   pg_query.c, pg_notify.c   public calls: build statements, park callers
 *   pg_conn.c                 the connection: poll dispatch, flush, loss and close
 *   pg_connect.c              resolve + connect state machine
 *   pg_pipeline.c             sending: segments, Sync, the read-only guard
 *   pg_results.c              receiving: matching results to statements, cancel requests
 *   pg_prep.c                 the prepared-statement cache
 *   pg_conn_io.c              reference count, memory and the socket's poll handle
 *   pg_notify_queue.c         received notifications
 *   pg_stmt.c                 statement records and their queues
 */
#ifndef LG_PG_CONN_INT_H
#define LG_PG_CONN_INT_H

#include <libpq-fe.h>

#include "libguard/conn.h"
#include "pg_result_int.h"
#include "sched_int.h"

enum conn_state {
	LG__CONN_RESOLVING,
	LG__CONN_CONNECTING,
	LG__CONN_READY,
	LG__CONN_BROKEN, /* lost: every call fails with LG_ECONNLOST */
	LG__CONN_CLOSED,
};

enum stmt_outcome {
	LG__STMT_QUEUED,
	LG__STMT_SENT,
	LG__STMT_OK,
	LG__STMT_FAILED,  /* the server rejected it: its caller gets the error */
	LG__STMT_ABORTED, /* skipped or rolled back because a sibling failed */
};

enum prep_state {
	LG__PREP_NONE,
	LG__PREP_PREPARING, /* Parse sent, answer not yet read */
	LG__PREP_READY,
};

struct lg__prep {
	struct lg__prep *next; /* hash chain */
	uint64_t hash;
	char *sql;
	uint32_t *types;
	int nparams;
	enum prep_state state;
	char name[24];
};

struct lg__stmt {
	struct lg__stmt *next;
	struct lg__stmt *prev;
	struct lg_conn *conn;
	const char *sql;
	int nparams;
	const char **values; /* arrays built at submit time, pointing at Borrowed params */
	int *lengths;
	int *formats;
	uint32_t *types;
	int result_format;
	unsigned flags;
	bool alone;
	bool abandoned;     /* the caller left (deadline/cancel); the connection frees it */
	bool cancel_victim; /* a cancel request was sent for it */
	struct lg__prep *prep;
	bool sent_prepare;
	bool reprepared; /* re-sent once after its prepared statement went stale */
	bool
	    trailing; /* a read queued behind its caller's statement: may go later, never earlier */
	bool
	    shared_conn; /* sent by the pool on a shared connection: never in a transaction block */
	enum stmt_outcome outcome;
	PGresult *result;
	PGresult *error;
	int fail_code; /* LG_ECONNLOST, LG_ECANCELED ... when not a server error */
	char fail_msg[LG_ERROR_MSG_SIZE];
	struct lg__waiter *waiter;
	struct lg__segment *segment;
};

struct lg__segment {
	struct lg__segment *next;
	struct lg__stmt *head;
	struct lg__stmt *tail;
	struct lg__stmt *cursor; /* statement whose results come next; NULL: awaiting Sync */
	bool cursor_in_prepare;  /* the Parse answer of cursor comes first */
	bool awaiting_null;      /* the current query's results ended; a NULL follows */
	bool commit_failed;      /* the implicit COMMIT at Sync failed; a NULL may follow */
	bool cursor_in_guard;    /* the read-only guard's answer comes first */
	bool failed;
	size_t count;
};

struct lg__stmtq {
	struct lg__stmt *head;
	struct lg__stmt *tail;
	size_t len;
};

struct lg__conn_poll {
	uv_poll_t handle; /* first: freed in the close callback */
	struct lg_conn *conn;
	int fd;
};

struct lg__prep_cache {
	struct lg__prep **buckets;
	size_t nbuckets;
	size_t count;
	size_t max; /* entries; full = statements run unprepared */
	unsigned seq;
};

struct lg__notify_item {
	struct lg__notify_item *next;
	struct lg_notification n;
};

struct lg_conn {
	struct lg_runtime *rt;
	struct lg__resource resource;
	struct lg__flush flush;
	enum conn_state state;
	PGconn *pg;
	struct lg__conn_poll *poll;
	int poll_events;
	/* Socket readiness, from the poll handle (set by pg_conn.c). */
	void (*on_io)(struct lg_conn *c, int status, int events);
	int refs; /* the conn itself, the poll handle, cancel requests in flight */

	/* connect */
	char **kw;
	char **vals;
	struct lg__waiter *connect_waiter;
	int connect_rc;
	char connect_msg[LG_ERROR_MSG_SIZE];
	uv_getaddrinfo_t *resolver;

	/* config */
	uint64_t statement_timeout_ms;
	unsigned max_segment;
	unsigned max_in_flight;
	void (*notice_hook)(void *ud, const struct lg_notice *notice);
	void *notice_ud;
	void (*lost_hook)(void *ud, struct lg_conn *conn);
	void *lost_ud;

	/* pipeline */
	struct lg__stmtq pending;
	struct lg__segment *seg_head;
	struct lg__segment *seg_tail;
	size_t in_flight;
	bool no_guard;           /* the read-only guard failed once: shared segments go without */
	bool cancel_pending;     /* a cancel request may still hit a statement */
	bool cancel_victim_live; /* its target's segment has not completed yet */
	int cancel_works;        /* cancel requests running on the thread pool */
	struct lg__prep_cache prep;
	struct lg__sql_cache *verdicts; /* statement verdicts by SQL text (lazy) */
	char lost_msg[LG_ERROR_MSG_SIZE];

	/* notifications */
	struct lg__notify_item *notify_head;
	struct lg__notify_item *notify_tail;
	struct lg__waiter *notify_waiter;
	size_t notify_len;
	size_t notify_max;

	struct lg_conn_stats stats;
};

/* pg_conn.c */
void lg__conn_fail(struct lg_conn *c, int code, const char *why);

/* pg_connect.c */
int lg__conn_start(struct lg_conn *c, const char *conninfo, const char *extra_options,
		   struct lg_error *err);
void lg__conn_connect_on_event(struct lg_conn *c);
void lg__conn_connect_abort(struct lg__waiter *w, int status);

/* pg_pipeline.c: sending */
void lg__pipe_submit(struct lg_conn *c, struct lg__stmt *s);
/* Sends queued statements as segments; 0, or LG_ECONNLOST (PQerrorMessage says why). */
int lg__pipe_send(struct lg_conn *c);
/* PQflush; returns the poll events wanted next, or -1 when the connection broke. */
int lg__pipe_flush(struct lg_conn *c);

/* pg_results.c: receiving */
/* Reads and matches what arrived; 0, or the code to fail the connection with (why set). */
int lg__results_read(struct lg_conn *c, char *why, size_t why_size);
void lg__pipe_fail_all(struct lg_conn *c, int code, const char *why);
void lg__pipe_abandon(struct lg_conn *c, struct lg__stmt *s);

/* pg_prep.c */
struct lg__prep *lg__prep_get(struct lg__prep_cache *pc, const char *sql, const uint32_t *types,
			      int nparams);
void lg__prep_rename(struct lg__prep_cache *pc, struct lg__prep *p);
void lg__prep_free_all(struct lg__prep_cache *pc);

/* pg_conn_io.c */
void lg__conn_poll_update(struct lg_conn *c);
int lg__conn_poll_open(struct lg_conn *c);
/*
 * Stops watching the socket and closes the poll handle. Must run in the same callback in
 * which libpq closed (or may have closed) its socket: uv_close removes the fd number from
 * epoll, and once another connection reuses that number it would silence that one instead.
 */
void lg__conn_poll_close(struct lg_conn *c);
void lg__conn_unref(struct lg_conn *c);

/* pg_notify_queue.c */
void lg__notify_drain(struct lg_conn *c);
void lg__notify_fail(struct lg_conn *c, int code);
void lg__notify_free_all(struct lg_conn *c);

/* pg_stmt.c */
void lg__stmt_free(struct lg__stmt *s);
/* Ends s without a result (its caller gets code and prefix + why); frees an abandoned one. */
void lg__stmt_fail(struct lg__stmt *s, int code, const char *prefix, const char *why);
void lg__stmtq_push(struct lg__stmtq *q, struct lg__stmt *s);
void lg__stmtq_remove(struct lg__stmtq *q, struct lg__stmt *s);
/* Copies libpq's message without its trailing newline into buf. */
void lg__pg_message(char *buf, size_t size, const char *msg);

#endif
