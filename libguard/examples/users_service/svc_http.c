/*
 * The users service's HTTP server.
 *
 * Happy path per connection: accept -> read into the connection's input buffer -> http-parser
 * collects the URL, the two headers the service reads (Lifeguard-Token, Cache-Control) and
 * the body, and pauses at the end of the message -> reading stops and a detached coroutine
 * runs the handler (which may block on PostgreSQL or Redis) -> one uv_write sends head and
 * body -> with keep-alive the rest of the input (pipelined requests) is parsed and reading
 * resumes.
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
#include "svc_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include <libguard/runtime.h>

enum hdr { HDR_OTHER, HDR_TOKEN, HDR_CACHE_CONTROL };

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct svc_http *srv;
	struct conn *prev, *next;
	http_parser parser;
	struct svc_http_req req;
	size_t body_cap;
	size_t header_bytes;
	char field[32];
	size_t field_len;
	bool in_value;
	enum hdr hdr;
	size_t value_len;
	bool in_message; /* a request's first byte has arrived */
	bool idle;       /* the timer measures the keep-alive wait, not a request */
	bool reading;
	bool complete;
	int error_status;
	char *in; /* received, not yet parsed */
	size_t in_len, in_cap;
	bool busy, closing, close_after_write;
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

static void conn_close(struct conn *c);
static void conn_pump(struct conn *c);
static void conn_on_timer(uv_timer_t *t);
static void conn_read_start(struct conn *c);

const char *svc_http_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return status >= 500 ? "Internal Server Error" : "Error";
	}
}

bool svc_http_reply(struct svc_http_resp *resp, int status, const char *body, size_t len)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
	resp->status = status;
	if (len == 0) {
		return true;
	}
	resp->body = malloc(len);
	if (resp->body == NULL) {
		resp->status = 500;
		return false;
	}
	memcpy(resp->body, body, len);
	resp->body_len = len;
	return true;
}

bool svc_http_header(struct svc_http_resp *resp, const char *name, const char *value)
{
	size_t used = strlen(resp->headers);
	int n =
	    snprintf(resp->headers + used, sizeof(resp->headers) - used, "%s: %s\r\n", name, value);
	if (n < 0 || (size_t)n >= sizeof(resp->headers) - used) {
		resp->headers[used] = '\0';
		return false;
	}
	return true;
}

/* ---- Request parsing (http-parser callbacks) ------------------------------------------- */

static struct conn *conn_of(http_parser *p)
{
	return p->data;
}

/* Records the status to answer; the non-zero return stops http_parser_execute. */
static int conn_fail(struct conn *c, int status)
{
	if (c->error_status == 0) {
		c->error_status = status;
	}
	return -1;
}

static int conn_on_begin(http_parser *p)
{
	struct conn *c = conn_of(p);
	c->header_bytes = 0;
	c->field_len = 0;
	c->in_value = false;
	c->hdr = HDR_OTHER;
	if (!c->in_message) {
		c->in_message = true;
		if (c->idle) { /* the request deadline runs from its first byte */
			c->idle = false;
			uv_timer_start(&c->timer, conn_on_timer, c->srv->limits.request_timeout_ms,
				       0);
		}
	}
	return 0;
}

static int conn_on_url(http_parser *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (len > SVC_MAX_URL - c->req.url_len) {
		return conn_fail(c, 414);
	}
	memcpy(c->req.url + c->req.url_len, at, len);
	c->req.url_len += len;
	c->req.url[c->req.url_len] = '\0';
	return 0;
}

static int conn_count(struct conn *c, size_t len)
{
	if (len > c->srv->limits.max_header_bytes - c->header_bytes) {
		return conn_fail(c, 431);
	}
	c->header_bytes += len;
	return 0;
}

static int conn_on_field(http_parser *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (conn_count(c, len) != 0) {
		return -1;
	}
	if (c->in_value) {
		c->in_value = false;
		c->field_len = 0;
	}
	size_t room = sizeof(c->field) - 1 - c->field_len;
	size_t n = len < room ? len : room;
	memcpy(c->field + c->field_len, at, n);
	c->field_len += n;
	c->field[c->field_len] = '\0';
	return 0;
}

static int conn_on_value(http_parser *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (conn_count(c, len) != 0) {
		return -1;
	}
	if (!c->in_value) {
		c->in_value = true;
		c->value_len = 0;
		c->hdr = strcasecmp(c->field, "lifeguard-token") == 0 ? HDR_TOKEN
			 : strcasecmp(c->field, "cache-control") == 0 ? HDR_CACHE_CONTROL
								      : HDR_OTHER;
	}
	if (c->hdr == HDR_TOKEN) {
		if (len > SVC_MAX_TOKEN - c->value_len) {
			return conn_fail(c, 431);
		}
		memcpy(c->req.token + c->value_len, at, len);
		c->value_len += len;
		c->req.token[c->value_len] = '\0';
	} else if (c->hdr == HDR_CACHE_CONTROL && len >= 8 && memmem(at, len, "no-cache", 8)) {
		c->req.no_cache = true;
	}
	return 0;
}

static int conn_on_headers_complete(http_parser *p)
{
	struct conn *c = conn_of(p);
	if (p->content_length != ULLONG_MAX && p->content_length > c->srv->limits.max_body) {
		return conn_fail(c, 413);
	}
	return 0;
}

static int conn_on_body(http_parser *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (len > c->srv->limits.max_body - c->req.body_len) {
		return conn_fail(c, 413);
	}
	if (c->req.body_len + len + 1 > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap * 2 : 1024;
		while (cap < c->req.body_len + len + 1) {
			cap *= 2;
		}
		char *b = realloc(c->req.body, cap);
		if (b == NULL) {
			return conn_fail(c, 503);
		}
		c->req.body = b;
		c->body_cap = cap;
	}
	memcpy(c->req.body + c->req.body_len, at, len);
	c->req.body_len += len;
	c->req.body[c->req.body_len] = '\0';
	return 0;
}

static int conn_on_complete(http_parser *p)
{
	struct conn *c = conn_of(p);
	c->req.method = (enum http_method)p->method;
	c->req.keep_alive = http_should_keep_alive(p) != 0;
	c->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings conn_settings = {
    .on_message_begin = conn_on_begin,
    .on_url = conn_on_url,
    .on_header_field = conn_on_field,
    .on_header_value = conn_on_value,
    .on_headers_complete = conn_on_headers_complete,
    .on_body = conn_on_body,
    .on_message_complete = conn_on_complete,
};

/* ---- Replies ----------------------------------------------------------------------------- */

static void conn_next_request(struct conn *c)
{
	free(c->req.body);
	memset(&c->req, 0, sizeof(c->req));
	c->body_cap = 0;
	c->complete = false;
	c->in_message = false;
	http_parser_pause(&c->parser, 0);
}

static void conn_on_written(uv_write_t *wr, int status)
{
	struct conn *c = wr->data;
	free(c->resp.body);
	memset(&c->resp, 0, sizeof(c->resp));
	c->busy = false;
	if (status != 0 || c->closing || c->close_after_write || !c->req.keep_alive ||
	    c->srv->stopping) {
		conn_close(c);
		return;
	}
	conn_next_request(c);
	c->idle = true;
	uv_timer_start(&c->timer, conn_on_timer, c->srv->limits.idle_timeout_ms, 0);
	conn_pump(c);
}

static void conn_send(struct conn *c)
{
	struct svc_http_resp *r = &c->resp;
	bool keep = c->req.keep_alive && !c->close_after_write && !c->srv->stopping;
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
	c->srv->handler(c->srv->ud, &c->req, &c->resp);
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
	size_t used = 0;
	if (c->in_len > 0) {
		used = http_parser_execute(&c->parser, &conn_settings, c->in, c->in_len);
	}
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	if (c->error_status == 0 && !c->complete && HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
		c->error_status = 400;
	}
	if (c->error_status == 0 && !c->complete && c->parser.upgrade) {
		c->error_status = 400;
	}
	if (c->error_status != 0) {
		conn_reject(c, c->error_status);
		return;
	}
	if (!c->complete) {
		conn_read_start(c);
		return;
	}
	c->busy = true;
	c->reading = false;
	uv_read_stop((uv_stream_t *)&c->tcp);
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
		conn_close(c); /* EOF, reset, or no memory for the input */
		return;
	}
	c->in_len += (size_t)nread;
	conn_pump(c);
}

static void conn_read_start(struct conn *c)
{
	if (!c->reading && !c->busy && !c->closing) {
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
	if (c->in_message || !c->idle) {
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
	free(c->req.body);
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
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
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
