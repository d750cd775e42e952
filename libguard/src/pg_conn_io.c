/*
 * The connection object's memory and its socket watch, below every other part of the
 * connection: a reference count (the connection itself, the poll handle, cancel requests in
 * flight) and the libuv poll handle on libpq's socket. Readiness is handed to the
 * connection's on_io function, set by pg_conn.c (libuv's handle/callback contract); nothing
 * here calls into the layers above by name.
 */
#include "pg_conn_int.h"

#include <assert.h>

#include "alloc_int.h"
#include "sql_parse.h"

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
	lg__prep_free_all(&c->prep);
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
	c->on_io(c, status, events);
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
