/*
 * The users service's HTTP server.
 *
 * Happy path per connection: accept -> read into the connection's input buffer -> http-parser
 * collects the URL, the two headers the service reads (Lifeguard-Token, Cache-Control) and
 * the body, and pauses at the end of the message -> a detached coroutine runs the handler
 * (which may block on PostgreSQL or Redis) -> one uv_write sends head and body -> with
 * keep-alive the rest of the input (pipelined requests) is parsed. Reading goes on while the
 * handler runs: what arrives is only buffered, up to SVC_MAX_BUFFERED bytes, where reading
 * pauses until the reply is out (stopping and restarting the read per request would cost two
 * epoll_ctl calls per request). A client that half-closes after its requests gets a reply to
 * each complete one, then the connection closes.
 *
 * Failure modes, each answered before the connection closes ("Connection: close"):
 *   - malformed request (http-parser error, upgrade): 400;
 *   - URL longer than SVC_MAX_URL: 414; headers over max_header_bytes: 431; a body over
 *     max_body: 413 (nothing is read or run for these requests);
 *   - a request that has not fully arrived request_timeout_ms after its first byte (on a new
 *     connection: after the accept): 408. The deadline is never pushed back by trickling
 *     bytes, so a slow client holds a connection for that long at most;
 *   - no coroutine could be started: 503;
 *   - read error or EOF, write error, idle keep-alive timeout: the connection closes; a busy
 *     one (its request is with the handler) closes after the reply, which is then dropped.
 * Connection memory is freed once both its handles (TCP, timer) reported closed.
 */
#include "svc_http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include <libguard/runtime.h>

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct svc_http *srv;
	struct conn *prev, *next;
	struct svc_http_reader rd;
	bool idle; /* the timer measures the keep-alive wait, not a request */
	bool reading;
	char *in; /* received, not yet parsed */
	size_t in_len, in_cap;
	bool busy, closing, close_after_write;
	bool peer_eof; /* the client half-closed: answer what is buffered, then close */
	int open_handles;
	struct svc_http_resp resp;
	uv_write_t wr;
	char head[1024];
};

struct svc_http {
	uv_tcp_t listener;
	struct lg_runtime *rt;
	struct svc_http_limits limits;
	svc_http_handler handler;
	void *ud;
	struct conn *conns;
	bool stopping, listener_closed;
};

/* Input buffered beyond the request being answered: reading pauses above it. */
#define SVC_MAX_BUFFERED (16 * 1024)

static void conn_close(struct conn *c);
static void conn_pump(struct conn *c);
static void conn_on_timer(uv_timer_t *t);
static void conn_read_start(struct conn *c);

/* ---- Replies ----------------------------------------------------------------------------- */

static void conn_on_written(uv_write_t *wr, int status)
{
	struct conn *c = wr->data;
	free(c->resp.body);
	memset(&c->resp, 0, sizeof(c->resp));
	c->busy = false;
	if (status != 0 || c->closing || c->close_after_write || !c->rd.req.keep_alive ||
	    c->srv->stopping) {
		conn_close(c);
		return;
	}
	svc_http_reader_next(&c->rd);
	c->idle = true;
	uv_timer_start(&c->timer, conn_on_timer, c->srv->limits.idle_timeout_ms, 0);
	conn_pump(c);
}

static void conn_send(struct conn *c)
{
	struct svc_http_resp *r = &c->resp;
	bool keep = c->rd.req.keep_alive && !c->close_after_write && !c->srv->stopping;
	int n = snprintf(c->head, sizeof(c->head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			 "Connection: %s\r\n\r\n",
			 r->status, svc_http_status_text(r->status),
			 r->content_type ? r->content_type : "application/json", r->body_len,
			 r->headers, keep ? "keep-alive" : "close");
	if (!keep) {
		c->close_after_write = true;
	}
	uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)n),
			    uv_buf_init(r->body, (unsigned)r->body_len)};
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, bufs, r->body_len ? 2 : 1, conn_on_written) !=
	    0) {
		conn_on_written(&c->wr, -1);
	}
}

/* Answers an error the server itself detected, then closes. */
static void conn_reject(struct conn *c, int status)
{
	c->busy = true;
	c->close_after_write = true;
	c->reading = false;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_timer_stop(&c->timer);
	char body[128];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", svc_http_status_text(status));
	svc_http_reply(&c->resp, status, body, (size_t)n);
	conn_send(c);
}

static void conn_serve(void *arg)
{
	struct conn *c = arg;
	c->resp.status = 500;
	c->srv->handler(c->srv->ud, &c->rd.req, &c->resp);
	if (c->closing) {
		free(c->resp.body);
		memset(&c->resp, 0, sizeof(c->resp));
		c->busy = false;
		conn_close(c);
		return;
	}
	conn_send(c);
}

/* Parses buffered input; a complete request goes to a coroutine. */
static void conn_pump(struct conn *c)
{
	size_t used = svc_http_reader_feed(&c->rd, c->in, c->in_len);
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	if (c->rd.error_status != 0) {
		conn_reject(c, c->rd.error_status);
		return;
	}
	if (c->rd.in_message && c->idle) { /* the request deadline runs from its first byte */
		c->idle = false;
		uv_timer_start(&c->timer, conn_on_timer, c->srv->limits.request_timeout_ms, 0);
	}
	if (!c->rd.complete) {
		if (c->peer_eof) {
			conn_close(c); /* every complete request was answered; no more can come */
			return;
		}
		conn_read_start(c);
		return;
	}
	c->busy = true;
	uv_timer_stop(&c->timer);
	if (lg_coro_spawn(c->srv->rt, conn_serve, c, NULL) != 0) {
		c->busy = false;
		conn_reject(c, 503);
	}
}

/* ---- Reading, timers, closing -------------------------------------------------------------- */

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct conn *c = h->data;
	size_t want = 4096;
	if (c->in_cap - c->in_len < want) {
		char *n = realloc(c->in, c->in_len + want);
		if (n == NULL) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		c->in = n;
		c->in_cap = c->in_len + want;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = s->data;
	if (nread < 0 || (nread == 0 && buf->base == NULL)) {
		if (c->busy) {
			/* EOF (a half-close after the requests), reset, or no memory while a
			 * handler runs: its reply and those of the complete requests buffered
			 * behind it still go out (a reset fails the write), then the connection
			 * closes. */
			c->peer_eof = true;
			c->reading = false;
			uv_read_stop(s);
			return;
		}
		conn_close(c);
		return;
	}
	c->in_len += (size_t)nread;
	if (c->busy) {
		/* The next request waits for this reply; stop reading if it piles up. */
		if (c->in_len >= SVC_MAX_BUFFERED) {
			c->reading = false;
			uv_read_stop(s);
		}
		return;
	}
	conn_pump(c);
}

static void conn_read_start(struct conn *c)
{
	if (!c->reading && !c->closing && !c->close_after_write && !c->peer_eof) {
		c->reading =
		    uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read) == 0;
		if (!c->reading) {
			conn_close(c);
		}
	}
}

static void conn_on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->busy) {
		return;
	}
	if (c->rd.in_message || !c->idle) {
		conn_reject(c, 408); /* a request (or the first one) did not arrive in time */
	} else {
		conn_close(c);
	}
}

static void srv_maybe_free(struct svc_http *srv)
{
	if (srv->stopping && srv->listener_closed && srv->conns == NULL) {
		free(srv);
	}
}

static void conn_on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open_handles > 0) {
		return;
	}
	struct svc_http *srv = c->srv;
	if (c->prev) {
		c->prev->next = c->next;
	} else {
		srv->conns = c->next;
	}
	if (c->next) {
		c->next->prev = c->prev;
	}
	svc_http_reader_close(&c->rd);
	free(c->resp.body);
	free(c->in);
	free(c);
	srv_maybe_free(srv);
}

static void conn_close(struct conn *c)
{
	if (c->busy) {
		c->closing = true; /* closes after the reply */
		return;
	}
	if (c->open_handles != 2 || uv_is_closing((uv_handle_t *)&c->tcp)) {
		return;
	}
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
	uv_close((uv_handle_t *)&c->timer, conn_on_closed);
}

static void srv_on_connection(uv_stream_t *l, int status)
{
	struct svc_http *srv = l->data;
	if (status != 0) {
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return; /* the client is left in the backlog; it retries or times out */
	}
	c->srv = srv;
	uv_tcp_init(l->loop, &c->tcp);
	uv_timer_init(l->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = srv->conns;
	if (srv->conns) {
		srv->conns->prev = c;
	}
	srv->conns = c;
	svc_http_reader_init(&c->rd, &srv->limits);
	if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	/* The first request is due request_timeout_ms after the accept. */
	uv_timer_start(&c->timer, conn_on_timer, srv->limits.request_timeout_ms, 0);
	conn_read_start(c);
}

int svc_http_start(struct lg_runtime *rt, const char *host, int port,
		   const struct svc_http_limits *limits, svc_http_handler handler, void *ud,
		   struct svc_http **out)
{
	struct svc_http *srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		return UV_ENOMEM;
	}
	srv->rt = rt;
	srv->handler = handler;
	srv->ud = ud;
	if (limits) {
		srv->limits = *limits;
	}
	if (srv->limits.max_header_bytes == 0) {
		srv->limits.max_header_bytes = 8192;
	}
	if (srv->limits.max_body == 0) {
		srv->limits.max_body = 64 * 1024;
	}
	if (srv->limits.request_timeout_ms == 0) {
		srv->limits.request_timeout_ms = 10000;
	}
	if (srv->limits.idle_timeout_ms == 0) {
		srv->limits.idle_timeout_ms = 60000;
	}
	uv_loop_t *loop = lg_runtime_loop(rt);
	struct sockaddr_in addr;
	int rc = uv_ip4_addr(host, port, &addr);
	uv_tcp_init(loop, &srv->listener);
	srv->listener.data = srv;
	if (rc == 0) {
		rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
	}
	if (rc == 0) {
		rc = uv_listen((uv_stream_t *)&srv->listener, 128, srv_on_connection);
	}
	if (rc != 0) {
		srv->stopping = true;
		svc_http_stop(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int svc_http_port(const struct svc_http *srv)
{
	struct sockaddr_in addr;
	int len = sizeof(addr);
	if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&addr, &len) != 0) {
		return -1;
	}
	return ntohs(addr.sin_port);
}

static void srv_on_listener_closed(uv_handle_t *h)
{
	struct svc_http *srv = h->data;
	srv->listener_closed = true;
	srv_maybe_free(srv);
}

void svc_http_stop(struct svc_http *srv)
{
	srv->stopping = true;
	for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
		next = c->next;
		conn_close(c);
	}
	uv_close((uv_handle_t *)&srv->listener, srv_on_listener_closed);
}
