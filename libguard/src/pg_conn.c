/*
 * The connection object: public calls, poll dispatch, the end-of-turn flush, loss and close.
 * It is the top of the connection (see pg_conn_int.h): the layers below report trouble by
 * return value and it decides that the connection failed.
 *
 * Happy path of a statement: lg_conn_query builds a statement record on the heap, queues it
 * on the connection and parks the caller; the end-of-turn flush sends everything queued in
 * that turn (pg_pipeline.c); the poll handle reports readable data, results are matched to
 * statements, and at the segment's Sync every caller is woken with its result.
 *
 * Failure modes:
 *   - deadline or cancellation while queued: the record leaves the queue, LG_ETIMEDOUT /
 *     LG_ECANCELED. While in flight: the caller returns at once, the record is marked
 *     abandoned (freed when its results arrive), and a cancel request is sent.
 *   - socket error, EOF, or a protocol surprise: the connection becomes BROKEN, every queued
 *     and in-flight statement fails with LG_ECONNLOST, later calls fail at once.
 *   - lg_conn_free: everything pending fails with LG_ECANCELED; the PGconn is finished
 *     only after libuv has closed the poll handle watching its socket.
 */
#include "pg_conn_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "sql_parse.h"

#define CONN_DEFAULT_CONNECT_MS   10000
#define CONN_DEFAULT_STATEMENT_MS 30000
#define CONN_DEFAULT_SEGMENT      64
#define CONN_DEFAULT_IN_FLIGHT    4096
#define CONN_DEFAULT_PREPARED     1024
#define CONN_DEFAULT_NOTIFY_MAX   10000

void lg__conn_fail(struct lg_conn *c, int code, const char *why)
{
	if (c->state != LG__CONN_READY) {
		return;
	}
	c->state = LG__CONN_BROKEN;
	lg__pg_message(c->lost_msg, sizeof(c->lost_msg), why);
	lg__conn_poll_close(c);
	lg__pipe_fail_all(c, code, c->lost_msg);
	lg__notify_fail(c, code);
	if (c->lost_hook != NULL) {
		c->lost_hook(c->lost_ud, c);
	}
}

/*
 * Writes what libpq buffered and watches the socket for what comes next. The layers below
 * report trouble by their return value; the connection fails here, at the top.
 */
static bool conn_flush_output(struct lg_conn *c)
{
	int want = lg__pipe_flush(c);
	if (want < 0) {
		lg__conn_fail(c, LG_ECONNLOST, PQerrorMessage(c->pg));
		return false;
	}
	if (want != c->poll_events) {
		c->poll_events = want;
		lg__conn_poll_update(c);
	}
	return true;
}

/* End of a loop turn: send what the turn queued (pg_pipeline.c). */
static void conn_on_flush(struct lg__flush *f)
{
	struct lg_conn *c = (struct lg_conn *)((char *)f - offsetof(struct lg_conn, flush));
	if (c->state != LG__CONN_READY) {
		return;
	}
	if (lg__pipe_send(c) != 0) {
		lg__conn_fail(c, LG_ECONNLOST, PQerrorMessage(c->pg));
		return;
	}
	conn_flush_output(c);
}

/* Results arrived: notifications, then the statements' results (pg_results.c). */
static bool conn_read(struct lg_conn *c)
{
	char why[LG_ERROR_MSG_SIZE];
	int rc = lg__results_read(c, why, sizeof(why));
	lg__notify_drain(c); /* libpq may buffer notifications while it parses results */
	if (rc != 0) {
		lg__conn_fail(c, rc, why);
		return false;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		lg__conn_fail(c, LG_ECONNLOST, PQerrorMessage(c->pg));
		return false;
	}
	return true;
}

/* The poll handle's readiness (pg_conn_io.c), at every stage of the connection. */
static void conn_on_io(struct lg_conn *c, int status, int events)
{
	if (c->state == LG__CONN_CONNECTING) {
		lg__conn_connect_on_event(c);
		return;
	}
	if (c->state != LG__CONN_READY) {
		return;
	}
	/* An error status (POLLERR: the peer reset, say) still goes through libpq, which reads
	 * what the server sent last and reports the real cause. libuv has stopped the handle in
	 * that case: restart it, or a connection whose error is not fully read yet would never
	 * be looked at again. */
	if (status < 0) {
		events = UV_READABLE | UV_WRITABLE;
	}
	if ((events & UV_WRITABLE) && !conn_flush_output(c)) {
		return;
	}
	if ((events & UV_READABLE) && !conn_read(c)) {
		return;
	}
	if (status < 0) {
		lg__conn_poll_update(c);
	}
}

static void conn_close_resource(struct lg__resource *res)
{
	struct lg_conn *c = (struct lg_conn *)((char *)res - offsetof(struct lg_conn, resource));
	lg_conn_free(c);
}

LG_API void lg_conn_free(struct lg_conn *c)
{
	if (c == NULL || c->state == LG__CONN_CLOSED) {
		return;
	}
	lg__resource_remove(c->rt, &c->resource);
	c->state = LG__CONN_CLOSED;
	if (c->resolver != NULL) {
		uv_cancel((uv_req_t *)c->resolver);
	}
	lg__conn_poll_close(c);
	lg__pipe_fail_all(c, LG_ECANCELED, "connection closed");
	lg__notify_fail(c, LG_ECANCELED);
	lg__conn_unref(c);
}

struct connect_args {
	struct lg_runtime *rt;
	const struct lg_conn_config *cfg;
	struct lg_conn **out;
	struct lg_error *err;
};

static int conn_connect_in_coro(void *arg)
{
	struct connect_args *a = arg;
	const struct lg_conn_config *cfg = a->cfg;
	struct lg_conn *c = lg__calloc(1, sizeof(*c));
	if (c == NULL) {
		return lg__error_set(a->err, LG_ENOMEM, "connect: out of memory");
	}
	c->rt = a->rt;
	c->refs = 1;
	c->flush.fn = conn_on_flush;
	c->on_io = conn_on_io;
	c->prep.max = cfg->prepared_cache_max ? cfg->prepared_cache_max : CONN_DEFAULT_PREPARED;
	c->resource.close = conn_close_resource;
	c->statement_timeout_ms =
	    cfg->statement_timeout_ms ? cfg->statement_timeout_ms : CONN_DEFAULT_STATEMENT_MS;
	c->max_segment = cfg->max_segment ? cfg->max_segment : CONN_DEFAULT_SEGMENT;
	c->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : CONN_DEFAULT_IN_FLIGHT;
	c->notify_max = cfg->notify_queue_max ? cfg->notify_queue_max : CONN_DEFAULT_NOTIFY_MAX;
	c->notice_hook = cfg->notice_hook;
	c->notice_ud = cfg->notice_ud;
	c->lost_hook = cfg->lost_hook;
	c->lost_ud = cfg->lost_ud;
	lg__resource_add(c->rt, &c->resource);

	struct lg__waiter w;
	lg__waiter_init(&w, lg__conn_connect_abort);
	w.data = c;
	c->connect_waiter = &w;
	int rc = lg__conn_start(c, cfg->conninfo, cfg->options, a->err);
	if (rc != 0) {
		c->connect_waiter = NULL;
		lg_conn_free(c);
		return rc;
	}
	uint64_t ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : CONN_DEFAULT_CONNECT_MS;
	rc = lg__park(&w, lg_deadline_in(ms));
	if (rc != 0) {
		if (rc == LG_ETIMEDOUT) {
			lg__error_set(a->err, rc, "connect: no connection within %llu ms",
				      (unsigned long long)ms);
		} else if (rc == LG_ECANCELED) {
			lg__error_set(a->err, rc, "connect: canceled");
		} else {
			lg__error_set(a->err, rc, "%s", c->connect_msg);
		}
		lg_conn_free(c);
		return rc;
	}
	*a->out = c;
	return 0;
}

LG_API int lg_conn_new(struct lg_runtime *rt, const struct lg_conn_config *config,
		       struct lg_conn **out, struct lg_error *err)
{
	lg_error_clear(err);
	if (rt == NULL || config == NULL || config->conninfo == NULL || out == NULL) {
		return lg__error_set(err, LG_EINVAL, "connect: missing runtime or conninfo");
	}
	struct connect_args a = {rt, config, out, err};
	int rc = lg__run_in_coro(rt, conn_connect_in_coro, &a);
	if (rc == LG_EBUSY) {
		lg__error_set(err, rc, "connect: called from a loop callback");
	}
	return rc;
}

LG_API bool lg_conn_ok(const struct lg_conn *c)
{
	return c != NULL && c->state == LG__CONN_READY;
}

LG_API bool lg_conn_in_transaction(const struct lg_conn *c)
{
	if (c == NULL || c->pg == NULL || c->state != LG__CONN_READY) {
		return false;
	}
	PGTransactionStatusType st = PQtransactionStatus(c->pg);
	return st == PQTRANS_INTRANS || st == PQTRANS_INERROR;
}

LG_API int lg_conn_backend_pid(const struct lg_conn *c)
{
	return c != NULL && c->pg != NULL && c->state == LG__CONN_READY ? PQbackendPID(c->pg) : 0;
}

LG_API void lg_conn_get_stats(const struct lg_conn *c, struct lg_conn_stats *out)
{
	*out = c->stats;
	out->pending = c->pending.len;
	out->in_flight = c->in_flight;
}
