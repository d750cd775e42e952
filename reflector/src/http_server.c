/*
 * HTTP server connections.
 *
 * Happy path per connection: accept -> read into the connection's input buffer -> feed the
 * request reader -> a complete request stops reading and the idle timer and goes to the
 * handler -> rf_http_reply() writes head and body with one uv_write -> on write completion,
 * with keep-alive, the reader is reset, the rest of the input (pipelined requests) is parsed,
 * and reading and the idle timer resume.
 *
 * Failure modes:
 *   - malformed or oversized request: the reader's status (400/413/414/431) is sent with
 *     "Connection: close", then the connection closes;
 *   - a request (head and body) that has not arrived head_timeout_ms after its first byte (on
 *     a new connection: after the accept) gets 408 and the connection closes. The deadline is
 *     set once per request and never pushed back by the bytes that trickle in, so a client
 *     sending one byte at a time holds its slot for head_timeout_ms at most;
 *   - read error or EOF, write error, idle timeout (no byte for RF_HTTP_IDLE_TIMEOUT_MS after
 *     a reply on a keep-alive connection): the connection closes; a connection that is busy
 *     (its request is with the handler) closes only after the reply, which is then dropped;
 *   - more than RF_HTTP_MAX_CONNECTIONS connections: the connection that has waited longest
 *     for its next request is closed to make room (so connections that hold a slot without
 *     finishing a request cannot lock out a client that sends one at once); when every
 *     connection is busy with the handler, the new one is closed at once;
 *   - server stop: listener closed, idle connections closed, busy ones close after replying;
 *     the server is freed when the listener and every connection have closed.
 * Connection memory is freed only after both its handles (TCP, timer) report closed.
 */
#include "http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_route.h"
#include "log.h"

#define CONN_READ_CHUNK 4096
#define CONN_MAX_INPUT  (64 * 1024)

/* What the connection's timer is measuring. */
enum conn_wait {
	CONN_IDLE,    /* keep-alive, nothing received since the last reply: idle timeout */
	CONN_REQUEST, /* a request is due: the head deadline runs */
	CONN_ABORT,   /* the 408 is being written: the timer closes whatever is left */
};

struct rf_http_exchange {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct rf_http_server *srv;
	struct rf_http_reader reader;
	char *in; /* received, not yet parsed */
	size_t in_len;
	size_t in_cap;
	bool busy;    /* a request is with the handler or its reply is being written */
	bool closing; /* close requested (done once not busy) */
	bool close_after_write;
	bool head; /* the pending request is a HEAD */
	enum conn_wait wait;
	uint64_t waiting_since; /* loop time the wait for the current request began */
	int open_handles;       /* > 0 once the handles are closing */
	struct rf_http_exchange *next;
	struct rf_http_exchange *prev;
};

struct rf_http_server {
	uv_tcp_t listener;
	uv_loop_t *loop;
	rf_http_handler handler;
	void *data;
	struct rf_metrics *metrics;
	unsigned head_timeout_ms;
	struct rf_http_exchange *conns; /* every connection until its memory is freed */
	size_t n_conns;
	bool stopping;
	bool listener_closed;
	void (*stop_cb)(void *data);
	void *stop_data;
};

struct conn_write {
	uv_write_t req;
	struct rf_http_exchange *conn;
	char data[];
};

static void conn_process(struct rf_http_exchange *c);

static void server_maybe_done(struct rf_http_server *s)
{
	if (!s->stopping || !s->listener_closed || s->conns != NULL) {
		return;
	}
	void (*cb)(void *) = s->stop_cb;
	void *data = s->stop_data;
	free(s);
	if (cb != NULL) {
		cb(data);
	}
}

static void conn_on_closed(uv_handle_t *h)
{
	struct rf_http_exchange *c = h->data;
	if (--c->open_handles > 0) {
		return;
	}
	struct rf_http_server *s = c->srv;
	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		s->conns = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	s->n_conns--;
	rf_http_reader_close(&c->reader);
	free(c->in);
	free(c);
	server_maybe_done(s);
}

static void conn_close_handles(struct rf_http_exchange *c)
{
	if (c->open_handles > 0) {
		return;
	}
	c->closing = true;
	c->open_handles = 2;
	uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
	uv_close((uv_handle_t *)&c->timer, conn_on_closed);
}

/* Closes now, or once the pending reply is done when the connection is busy. */
static void conn_close(struct rf_http_exchange *c)
{
	c->closing = true;
	if (!c->busy) {
		conn_close_handles(c);
	}
}

static void conn_send(struct rf_http_exchange *c, int status, const char *ctype, const char *body,
		      size_t len, const char *extra, bool keep_alive);
static void conn_on_timeout(uv_timer_t *t);

/* Starts the wait for the next request: the head deadline when a request is due (new
 * connection, or bytes of one received), the idle timeout otherwise. */
static void conn_wait_for(struct rf_http_exchange *c, enum conn_wait wait)
{
	c->wait = wait;
	uint64_t ms = wait == CONN_IDLE ? RF_HTTP_IDLE_TIMEOUT_MS : c->srv->head_timeout_ms;
	uv_timer_start(&c->timer, conn_on_timeout, ms, 0);
}

static void conn_on_timeout(uv_timer_t *t)
{
	struct rf_http_exchange *c = t->data;
	if (c->wait != CONN_REQUEST || c->busy || c->closing) {
		/* Idle keep-alive: close quietly. A 408 that could not be written within another
		 * head timeout (the peer does not read): close regardless. */
		c->busy = false;
		conn_close_handles(c);
		return;
	}
	static const char body[] = "{\"error\":\"request not received in time\"}\n";
	c->busy = true;
	c->head = false;
	uv_read_stop((uv_stream_t *)&c->tcp);
	conn_wait_for(c, CONN_ABORT);
	conn_send(c, 408, "application/json", body, sizeof(body) - 1, NULL, false);
}

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct rf_http_exchange *c = h->data;
	if (c->in_cap - c->in_len < CONN_READ_CHUNK && c->in_cap < CONN_MAX_INPUT) {
		size_t cap = c->in_cap == 0 ? CONN_READ_CHUNK : c->in_cap * 2;
		char *grown = realloc(c->in, cap);
		if (grown != NULL) {
			c->in = grown;
			c->in_cap = cap;
		}
	}
	if (c->in == NULL) {
		*buf = uv_buf_init(NULL, 0); /* the read callback gets UV_ENOBUFS and closes */
		return;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void conn_on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	struct rf_http_exchange *c = stream->data;
	if (n < 0) {
		conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	if (n > 0 && c->wait == CONN_IDLE) {
		conn_wait_for(c,
			      CONN_REQUEST); /* the first byte of a request starts its deadline */
	}
	conn_process(c);
}

static void conn_on_written(uv_write_t *req, int status)
{
	struct conn_write *w = (struct conn_write *)req;
	struct rf_http_exchange *c = w->conn;
	free(w);
	c->busy = false;
	if (status != 0 || c->close_after_write || c->closing || c->srv->stopping) {
		conn_close_handles(c);
		return;
	}
	rf_http_reader_next(&c->reader);
	c->waiting_since = uv_now(c->srv->loop);
	/* Pipelined bytes already received belong to the next request: its deadline runs. */
	conn_wait_for(c, c->in_len > 0 ? CONN_REQUEST : CONN_IDLE);
	uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
	conn_process(c);
}

static void conn_send(struct rf_http_exchange *c, int status, const char *ctype, const char *body,
		      size_t len, const char *extra, bool keep_alive)
{
	char head[1024];
	size_t hlen =
	    rf_http_format_head(head, sizeof(head), status, ctype, len, keep_alive, extra);
	if (hlen == 0) {
		status = 500;
		len = 0;
		keep_alive = false;
		hlen =
		    rf_http_format_head(head, sizeof(head), status, "text/plain", 0, false, NULL);
	}
	if (c->srv->metrics != NULL) {
		rf_metrics_count_http(c->srv->metrics, status);
	}
	if (c->head) {
		len = 0;
	}
	c->close_after_write = !keep_alive;
	struct conn_write *w = malloc(sizeof(*w) + hlen + len);
	if (w == NULL) {
		c->busy = false;
		conn_close(c);
		return;
	}
	w->conn = c;
	memcpy(w->data, head, hlen);
	if (len > 0) {
		memcpy(w->data + hlen, body, len);
	}
	uv_buf_t b = uv_buf_init(w->data, (unsigned)(hlen + len));
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_written) != 0) {
		free(w);
		c->busy = false;
		conn_close(c);
	}
}

void rf_http_reply(struct rf_http_exchange *x, int status, const char *content_type,
		   const char *body, size_t len, const char *extra_headers)
{
	if (x->closing) { /* closed meanwhile: drop the reply */
		x->busy = false;
		conn_close_handles(x);
		return;
	}
	bool keep_alive = x->reader.req.keep_alive && !x->srv->stopping;
	conn_send(x, status, content_type, body, len, extra_headers, keep_alive);
}

/* Parses buffered input; dispatches at most one request. */
static void conn_process(struct rf_http_exchange *c)
{
	if (c->busy || c->closing) {
		return;
	}
	size_t used = rf_http_reader_feed(&c->reader, c->in, c->in_len);
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	if (c->reader.error_status != 0) {
		char body[160];
		int n =
		    snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", c->reader.error_reason);
		c->busy = true;
		c->head = false;
		uv_read_stop((uv_stream_t *)&c->tcp);
		conn_send(c, c->reader.error_status, "application/json", body, (size_t)n, NULL,
			  false);
		return;
	}
	if (c->reader.complete) {
		c->busy = true;
		c->head = c->reader.req.method == HTTP_HEAD;
		uv_read_stop((uv_stream_t *)&c->tcp);
		uv_timer_stop(&c->timer);
		c->srv->handler(c->srv->data, c, &c->reader.req);
	}
}

/* Connections not on their way out: the ones the cap counts. */
static size_t server_live(const struct rf_http_server *s)
{
	size_t n = 0;
	for (const struct rf_http_exchange *c = s->conns; c != NULL; c = c->next) {
		n += !c->closing;
	}
	return n;
}

/* Closes the connection that has waited longest for a request and is not with the handler;
 * returns false when there is none. */
static bool server_evict(struct rf_http_server *s, const struct rf_http_exchange *keep)
{
	struct rf_http_exchange *victim = NULL;
	for (struct rf_http_exchange *c = s->conns; c != NULL; c = c->next) {
		/* "<=": the list runs from the newest connection to the oldest, so ties go to
		 * the oldest. */
		if (c != keep && !c->busy && !c->closing &&
		    (victim == NULL || c->waiting_since <= victim->waiting_since)) {
			victim = c;
		}
	}
	if (victim == NULL) {
		return false;
	}
	conn_close(victim);
	return true;
}

static void server_on_connection(uv_stream_t *listener, int status)
{
	struct rf_http_server *s = listener->data;
	if (status != 0 || s->stopping) {
		return;
	}
	struct rf_http_exchange *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return;
	}
	c->srv = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	rf_http_reader_init(&c->reader, NULL);
	c->next = s->conns;
	if (s->conns != NULL) {
		s->conns->prev = c;
	}
	s->conns = c;
	s->n_conns++;
	/* Closing connections still count until their handles are closed, so the cap is
	 * checked against those that are not closing. */
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
	    (server_live(s) > RF_HTTP_MAX_CONNECTIONS && !server_evict(s, c))) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->waiting_since = uv_now(s->loop);
	conn_wait_for(c, CONN_REQUEST);
	uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
}

static void server_on_failed_close(uv_handle_t *h)
{
	free(h->data);
}

int rf_http_server_start(uv_loop_t *loop, const char *address, unsigned head_timeout_ms,
			 rf_http_handler handler, void *data, struct rf_metrics *metrics,
			 struct rf_http_server **out, char *errbuf, size_t errlen)
{
	char ip[16];
	unsigned port;
	struct sockaddr_in sa;
	if (rf_addr_parse(address, true, ip, &port) != 0 || uv_ip4_addr(ip, (int)port, &sa) != 0) {
		snprintf(errbuf, errlen, "http: invalid address %s", address);
		return UV_EINVAL;
	}
	struct rf_http_server *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(errbuf, errlen, "http: out of memory");
		return UV_ENOMEM;
	}
	s->loop = loop;
	s->handler = handler;
	s->data = data;
	s->metrics = metrics;
	s->head_timeout_ms = head_timeout_ms;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
	if (rc == 0) {
		rc = uv_listen((uv_stream_t *)&s->listener, 128, server_on_connection);
	}
	if (rc != 0) {
		snprintf(errbuf, errlen, "http: listen on %s: %s", address, uv_strerror(rc));
		uv_close((uv_handle_t *)&s->listener, server_on_failed_close);
		return rc;
	}
	*out = s;
	return 0;
}

static void server_on_listener_closed(uv_handle_t *h)
{
	struct rf_http_server *s = h->data;
	s->listener_closed = true;
	server_maybe_done(s);
}

void rf_http_server_stop(struct rf_http_server *s, void (*cb)(void *data), void *data)
{
	s->stopping = true;
	s->stop_cb = cb;
	s->stop_data = data;
	uv_close((uv_handle_t *)&s->listener, server_on_listener_closed);
	for (struct rf_http_exchange *c = s->conns; c != NULL; c = c->next) {
		if (!c->busy) {
			conn_close(c); /* busy ones reply first: stopping turns keep-alive off */
		}
	}
}
