/*
 * The connection object: public calls, the socket poll handle, loss and close.
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

void lg__pg_message(char *buf, size_t size, const char *msg)
{
	snprintf(buf, size, "%s", msg != NULL ? msg : "");
	/* libpq's messages span lines ("...\n\tThis probably means ..."): make them one line. */
	for (char *p = buf; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\t') {
			*p = ' ';
		}
	}
	size_t n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
		buf[--n] = '\0';
	}
}

static void conn_free(struct lg_conn *c)
{
	if (c->pg != NULL) {
		PQfinish(c->pg);
	}
	for (size_t i = 0; c->kw != NULL && c->kw[i] != NULL; i++) {
		lg__free(c->kw[i]);
		lg__free(c->vals[i]);
	}
	lg__free(c->kw);
	lg__free(c->vals);
	lg__prep_free_all(c);
	lg__sql_cache_free(c->verdicts);
	lg__notify_free_all(c);
	lg__free(c);
}

void lg__conn_unref(struct lg_conn *c)
{
	assert(c->refs > 0);
	if (--c->refs == 0) {
		conn_free(c);
	}
}

static void conn_on_poll_closed(uv_handle_t *handle)
{
	struct lg__conn_poll *p = (struct lg__conn_poll *)handle;
	struct lg_conn *c = p->conn;
	lg__free(p);
	lg__conn_unref(c);
}

void lg__conn_poll_close(struct lg_conn *c)
{
	if (c->poll == NULL) {
		return;
	}
	uv_poll_stop(&c->poll->handle);
	uv_close((uv_handle_t *)&c->poll->handle, conn_on_poll_closed);
	c->poll = NULL;
}

static void conn_on_poll(uv_poll_t *handle, int status, int events)
{
	struct lg_conn *c = ((struct lg__conn_poll *)handle)->conn;
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
	if ((events & UV_WRITABLE) && lg__pipe_on_writable(c) != 0) {
		return;
	}
	if ((events & UV_READABLE) && lg__pipe_on_readable(c) != 0) {
		return;
	}
	if (status < 0 && c->state == LG__CONN_READY) {
		lg__conn_poll_update(c);
	}
}

int lg__conn_poll_open(struct lg_conn *c)
{
	int fd = PQsocket(c->pg);
	if (c->poll != NULL && c->poll->fd == fd) {
		return 0;
	}
	lg__conn_poll_close(c);
	if (fd < 0) {
		return LG_ECONNECT;
	}
	struct lg__conn_poll *p = lg__calloc(1, sizeof(*p));
	if (p == NULL) {
		return LG_ENOMEM;
	}
	if (uv_poll_init_socket(lg_runtime_loop(c->rt), &p->handle, fd) != 0) {
		lg__free(p);
		return LG_ECONNECT;
	}
	p->conn = c;
	p->fd = fd;
	c->poll = p;
	c->refs++;
	return 0;
}

void lg__conn_poll_update(struct lg_conn *c)
{
	if (c->poll == NULL) {
		return;
	}
	if (c->poll_events == 0) {
		uv_poll_stop(&c->poll->handle);
	} else {
		uv_poll_start(&c->poll->handle, c->poll_events, conn_on_poll);
	}
}

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
	c->flush.fn = lg__pipe_on_flush;
	c->resource.close = conn_close_resource;
	c->statement_timeout_ms =
	    cfg->statement_timeout_ms ? cfg->statement_timeout_ms : CONN_DEFAULT_STATEMENT_MS;
	c->max_segment = cfg->max_segment ? cfg->max_segment : CONN_DEFAULT_SEGMENT;
	c->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : CONN_DEFAULT_IN_FLIGHT;
	c->prepared_cache_max =
	    cfg->prepared_cache_max ? cfg->prepared_cache_max : CONN_DEFAULT_PREPARED;
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
