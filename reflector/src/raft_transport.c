/*
 * raft_uv transport with peers by host name (see raft_transport.h for why).
 *
 * Dial, happy path (one per raft connect request): parse "host:port" -> start the attempt
 * timer -> resolve the host with uv_getaddrinfo (skipped for an IPv4 literal) -> uv_tcp_connect
 * to the first IPv4 answer -> write the raft_uv handshake -> the request callback gets the
 * stream with status 0 (raft owns it from then on and frees it with raft_free).
 *
 * Failure modes:
 * - the address does not parse: connect() returns RAFT_NOCONNECTION and raft retries later;
 * - the name does not resolve, the TCP connect or the handshake write fails, or the attempt
 *   timer fires first: the callback gets RAFT_NOCONNECTION (raft waits its connect retry delay
 *   and calls connect() again, which resolves again);
 * - the transport closes: every pending dial completes with RAFT_CANCELED.
 * A dial waiting on the resolver cannot be abandoned: uv_cancel() is asked and the dial
 * completes from the resolver's callback, whichever way it ends.
 *
 * Close: stop the listener (raft's TCP transport), cancel every dial; the close callback runs
 * once the listener is closed and every dial's handles are closed and freed.
 */
#include "raft_transport.h"

#include <endian.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRANSPORT_HANDSHAKE_PROTOCOL 1

struct transport_dial;

struct transport {
	struct raft_uv_transport *outer; /* Borrowed: the transport raft sees */
	struct raft_uv_transport inner;  /* raft's TCP transport, used for listening only */
	uv_loop_t *loop;                 /* Borrowed */
	raft_id id;
	char address[RF_HOSTPORT_MAX]; /* this node's raft address, sent in handshakes */
	unsigned timeout_ms;
	raft_uv_accept_cb accept_cb;
	struct transport_dial *dials; /* pending dials (not yet completed) */
	unsigned n_alive;             /* dials not yet freed */
	bool inner_listening;
	bool closing;
	bool inner_closed;
	raft_uv_transport_close_cb close_cb;
};

struct transport_dial {
	struct transport *t;
	struct raft_uv_connect *req; /* Borrowed from raft until its callback */
	struct transport_dial *prev, *next;
	char host[RF_HOSTPORT_MAX];
	char port[8];
	uv_getaddrinfo_t gai;
	uv_timer_t timer;
	uv_tcp_t *tcp; /* raft_malloc'ed: raft frees it after a successful dial */
	uv_connect_t connect;
	uv_write_t write;
	uv_buf_t handshake;
	bool linked; /* in t->dials */
	bool resolving;
	int abort_status; /* set while resolving: how to end once the resolver answers */
	bool done;
	int status;
};

static void transport_maybe_closed(struct transport *t)
{
	if (t->closing && t->inner_closed && t->n_alive == 0 && t->close_cb != NULL) {
		raft_uv_transport_close_cb cb = t->close_cb;
		t->close_cb = NULL;
		cb(t->outer);
	}
}

static void transport_on_dial_freed(uv_handle_t *h)
{
	struct transport_dial *d = h->data;
	struct transport *t = d->t;
	free(d->handshake.base);
	free(d);
	t->n_alive--;
	transport_maybe_closed(t);
}

/* Hands the result to raft, then releases the dial (its timer is its last handle). */
static void transport_dial_complete(struct transport_dial *d)
{
	struct uv_stream_s *stream = d->status == 0 ? (struct uv_stream_s *)d->tcp : NULL;
	if (d->status == 0) {
		d->tcp->data = NULL;
	}
	d->tcp = NULL;
	d->req->cb(d->req, stream, d->status);
	uv_close((uv_handle_t *)&d->timer, transport_on_dial_freed);
}

static void transport_on_tcp_closed(uv_handle_t *h)
{
	struct transport_dial *d = h->data;
	raft_free(d->tcp);
	d->tcp = NULL;
	transport_dial_complete(d);
}

static void transport_dial_unlink(struct transport_dial *d)
{
	struct transport *t = d->t;
	if (!d->linked) {
		return;
	}
	d->linked = false;
	if (d->prev != NULL) {
		d->prev->next = d->next;
	} else {
		t->dials = d->next;
	}
	if (d->next != NULL) {
		d->next->prev = d->prev;
	}
	d->prev = NULL;
	d->next = NULL;
}

/* Ends the dial with status exactly once (the resolver must not be pending). */
static void transport_dial_end(struct transport_dial *d, int status)
{
	struct transport *t = d->t;
	if (d->done) {
		return;
	}
	d->done = true;
	d->status = t->closing ? RAFT_CANCELED : status;
	uv_timer_stop(&d->timer);
	transport_dial_unlink(d);
	if (d->status != 0 && d->tcp != NULL) {
		uv_close((uv_handle_t *)d->tcp, transport_on_tcp_closed);
		return;
	}
	transport_dial_complete(d);
}

/* Stops a dial early: now, or from the resolver callback when it is still pending. */
static void transport_dial_abort(struct transport_dial *d, int status)
{
	if (d->resolving) {
		d->abort_status = status;
		uv_cancel((uv_req_t *)&d->gai);
		return;
	}
	transport_dial_end(d, status);
}

static void transport_on_written(uv_write_t *w, int status)
{
	struct transport_dial *d = w->data;
	transport_dial_end(d, status == 0 ? 0 : RAFT_NOCONNECTION);
}

static void transport_on_connected(uv_connect_t *c, int status)
{
	struct transport_dial *d = c->data;
	if (d->done) {
		return; /* aborted: the TCP handle is closing */
	}
	if (status != 0 || uv_write(&d->write, (uv_stream_t *)d->tcp, &d->handshake, 1,
				    transport_on_written) != 0) {
		transport_dial_end(d, RAFT_NOCONNECTION);
	}
}

static void transport_dial_tcp(struct transport_dial *d, const struct sockaddr *sa)
{
	d->tcp = raft_malloc(sizeof(*d->tcp));
	if (d->tcp == NULL) {
		transport_dial_end(d, RAFT_NOMEM);
		return;
	}
	uv_tcp_init(d->t->loop, d->tcp);
	d->tcp->data = d;
	uv_tcp_nodelay(d->tcp, 1);
	if (uv_tcp_connect(&d->connect, d->tcp, sa, transport_on_connected) != 0) {
		transport_dial_end(d, RAFT_NOCONNECTION);
	}
}

static void transport_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct transport_dial *d = req->data;
	d->resolving = false;
	if (d->abort_status != 0 || d->t->closing) {
		uv_freeaddrinfo(res);
		transport_dial_end(d, d->abort_status != 0 ? d->abort_status : RAFT_CANCELED);
		return;
	}
	if (status != 0 || res == NULL) {
		uv_freeaddrinfo(res);
		transport_dial_end(d, RAFT_NOCONNECTION);
		return;
	}
	struct sockaddr_in sa;
	memcpy(&sa, res->ai_addr, sizeof(sa));
	uv_freeaddrinfo(res);
	transport_dial_tcp(d, (const struct sockaddr *)&sa);
}

static void transport_on_timeout(uv_timer_t *timer)
{
	transport_dial_abort(timer->data, RAFT_NOCONNECTION);
}

/* The raft_uv handshake: protocol, our id, padded address length, address (LE 64-bit). */
static int transport_handshake(const struct transport *t, uv_buf_t *buf)
{
	size_t len = (strlen(t->address) + 1 + 7) / 8 * 8;
	buf->len = 3 * sizeof(uint64_t) + len;
	buf->base = calloc(1, buf->len);
	if (buf->base == NULL) {
		return RAFT_NOMEM;
	}
	uint64_t words[3] = {htole64(TRANSPORT_HANDSHAKE_PROTOCOL), htole64(t->id), htole64(len)};
	memcpy(buf->base, words, sizeof(words));
	memcpy(buf->base + sizeof(words), t->address, strlen(t->address));
	return 0;
}

static int transport_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req,
			     raft_id id, const char *address, raft_uv_connect_cb cb)
{
	struct transport *t = outer->impl;
	(void)id;
	unsigned port;
	struct transport_dial *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		return RAFT_NOMEM;
	}
	d->t = t;
	d->req = req;
	if (rf_hostport_parse(address, false, d->host, &port) != 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "bad peer address \"%.80s\"",
			 address);
		free(d);
		return RAFT_NOCONNECTION;
	}
	if (transport_handshake(t, &d->handshake) != 0) {
		free(d);
		return RAFT_NOMEM;
	}
	snprintf(d->port, sizeof(d->port), "%u", port);
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct sockaddr_in sa;
	bool literal = uv_ip4_addr(d->host, (int)port, &sa) == 0;
	d->gai.data = d;
	if (!literal && uv_getaddrinfo(t->loop, &d->gai, transport_on_resolved, d->host, d->port,
				       &hints) != 0) {
		free(d->handshake.base);
		free(d);
		return RAFT_NOCONNECTION;
	}
	req->cb = cb;
	d->resolving = !literal;
	d->linked = true;
	d->next = t->dials;
	if (t->dials != NULL) {
		t->dials->prev = d;
	}
	t->dials = d;
	t->n_alive++;
	uv_timer_init(t->loop, &d->timer);
	d->timer.data = d;
	d->connect.data = d;
	d->write.data = d;
	uv_timer_start(&d->timer, transport_on_timeout, t->timeout_ms, 0);
	if (literal) {
		transport_dial_tcp(d, (const struct sockaddr *)&sa);
	}
	return 0;
}

static int transport_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
	struct transport *t = outer->impl;
	char host[RF_HOSTPORT_MAX];
	unsigned port;
	if (rf_hostport_parse(address, false, host, &port) != 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "bad raft address \"%.80s\"",
			 address);
		return RAFT_INVALID;
	}
	t->id = id;
	snprintf(t->address, sizeof(t->address), "%s", address);
	if (!rf_hostport_is_ipv4(address)) {
		char bind[32];
		snprintf(bind, sizeof(bind), "0.0.0.0:%u", port);
		int rv = raft_uv_tcp_set_bind_address(&t->inner, bind);
		if (rv != 0) {
			snprintf(outer->errmsg, sizeof(outer->errmsg), "bind address %s: %s", bind,
				 raft_strerror(rv));
			return rv;
		}
	}
	int rv = t->inner.init(&t->inner, id, t->address);
	if (rv != 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "%s", t->inner.errmsg);
	}
	return rv;
}

static void transport_on_accept(struct raft_uv_transport *inner, raft_id id, const char *address,
				struct uv_stream_s *stream)
{
	struct transport *t = inner->data;
	t->accept_cb(t->outer, id, address, stream);
}

static int transport_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
	struct transport *t = outer->impl;
	t->accept_cb = cb;
	int rv = t->inner.listen(&t->inner, transport_on_accept);
	if (rv != 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "%s", t->inner.errmsg);
	}
	return rv;
}

static void transport_on_inner_closed(struct raft_uv_transport *inner)
{
	struct transport *t = inner->data;
	t->inner_closed = true;
	transport_maybe_closed(t);
}

static void transport_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
	struct transport *t = outer->impl;
	t->closing = true;
	t->close_cb = cb;
	while (t->dials != NULL) {
		struct transport_dial *d = t->dials;
		if (d->resolving) {
			/* It ends when the resolver answers; off the list meanwhile. */
			transport_dial_abort(d, RAFT_CANCELED);
			transport_dial_unlink(d);
			continue;
		}
		transport_dial_end(d, RAFT_CANCELED);
	}
	t->inner.close(&t->inner, transport_on_inner_closed);
}

int rf_raft_transport_init(struct raft_uv_transport *outer, uv_loop_t *loop,
			   unsigned connect_timeout_ms)
{
	void *data = outer->data;
	memset(outer, 0, sizeof(*outer));
	outer->data = data;
	struct transport *t = calloc(1, sizeof(*t));
	if (t == NULL) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "out of memory");
		return RAFT_NOMEM;
	}
	int rv = raft_uv_tcp_init(&t->inner, loop);
	if (rv != 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "%s", t->inner.errmsg);
		free(t);
		return rv;
	}
	t->inner.data = t;
	t->outer = outer;
	t->loop = loop;
	t->timeout_ms = connect_timeout_ms;
	outer->impl = t;
	outer->init = transport_init;
	outer->listen = transport_listen;
	outer->connect = transport_connect;
	outer->close = transport_close;
	return 0;
}

void rf_raft_transport_close(struct raft_uv_transport *outer)
{
	struct transport *t = outer->impl;
	if (t == NULL) {
		return;
	}
	raft_uv_tcp_close(&t->inner);
	free(t);
	outer->impl = NULL;
}
