/*
 * One Redis connection ("link"): the attempt, the libuv adapter for hiredis, loss, close.
 *
 * Happy path of a connection attempt (a "link"):
 *   1. redisAsyncConnect starts a nonblocking connect to an IP literal (hiredis resolves names
 *      with blocking getaddrinfo, so names are refused up front).
 *   2. Our own adapter watches the socket with a uv_poll handle. hiredis 0.14's libuv adapter
 *      drops error events (a refused connect would never be reported and the loop would never
 *      run dry), so error statuses are handed to hiredis here: it reads the socket error and
 *      reports it.
 *   3. AUTH (when a password is set), SELECT (db != 0) and PING are queued at once and
 *      pipelined behind the connect; the PING reply makes the link READY and wakes every call
 *      waiting for a connection. A timer bounds the whole attempt (0.14 has no async timeouts).
 * Failure modes:
 *   - refused / reset / EOF during the attempt: hiredis calls the connect callback with an
 *     error, or the handshake replies arrive as NULL; the waiters get LG_ECONNECT with the
 *     socket error. AUTH or SELECT rejected: LG_ECONNECT with Redis's error text.
 *   - the attempt's timer fires: LG_ETIMEDOUT; the context is freed.
 *   - a READY link dies (server killed, restarted): hiredis completes every callback with a
 *     NULL reply (commands fail with LG_ECONNLOST) and then calls our cleanup hook; the client
 *     forgets the link, and the next command starts a new attempt.
 *   - lg_redis_free: waiters get LG_ECANCELED; the context is freed, which completes the
 *     commands in flight with LG_ECANCELED.
 * hiredis frees the context right after the connect-failure callback and after the cleanup
 * hook: link->ac is cleared there and never used again. The poll handle is closed inside the
 * cleanup hook, before hiredis closes the socket.
 */
#include "redis_int.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

void lg__redis_wake_waiters(struct lg_redis *r, int code)
{
	struct lg__waiter *w;
	while ((w = lg__waitq_pop(&r->conn_waiters)) != NULL) {
		lg__waiter_wake(w, code);
	}
}

/* The attempt or link failed: forget it and tell whoever waits for a connection. Does not
 * free the context (the caller knows whether hiredis is already freeing it). */
static void link_fail(struct lg__redis_link *l, int code, const char *fmt, const char *detail)
{
	struct lg_redis *r = l->r;
	if (l->state == LG__LINK_DEAD) {
		return;
	}
	bool attempt_failed = l->state == LG__LINK_CONNECTING && code != LG_ECANCELED;
	l->state = LG__LINK_DEAD;
	lg__timer_stop(r->rt, &l->timer);
	if (r->link == l) {
		r->link = NULL;
		r->last_code = code;
		snprintf(r->last_msg, sizeof(r->last_msg), fmt, r->host, r->port,
			 detail != NULL ? detail : "");
		if (attempt_failed && !r->closed) {
			lg__redis_breaker_failed(r);
		}
		lg__redis_wake_waiters(r, r->closed ? LG_ECANCELED : code);
	}
}

/* Frees the hiredis context from outside any hiredis callback (timer, close). */
static void link_free_context(struct lg__redis_link *l)
{
	redisAsyncContext *ac = l->ac;
	if (ac != NULL) {
		redisAsyncFree(ac); /* runs the callbacks with NULL, then the cleanup hook */
	}
}

static void link_on_closed(uv_handle_t *handle)
{
	struct lg__redis_link *l = (struct lg__redis_link *)handle;
	struct lg_redis *r = l->r;
	lg__flush_cancel(r->rt, &l->flush);
	lg__free(l);
	lg__redis_unref(r);
}

/* Adapter hooks (hiredis async.h "ev"): idempotent, as hiredis expects. */
static void link_on_poll(uv_poll_t *handle, int status, int events);

static void link_poll_apply(struct lg__redis_link *l)
{
	/* Unchanged: nothing to do (libuv's uv_poll_start re-registers the socket anyway). */
	if (!l->poll_open || l->events == l->applied) {
		return;
	}
	int rc = l->events != 0 ? uv_poll_start(&l->poll, l->events, link_on_poll)
				: uv_poll_stop(&l->poll);
	if (rc == 0) {
		l->applied = l->events; /* a failed start is tried again on the next change */
	}
}

static void link_add_read(void *p)
{
	struct lg__redis_link *l = p;
	l->events |= UV_READABLE;
	link_poll_apply(l);
}

static void link_del_read(void *p)
{
	struct lg__redis_link *l = p;
	l->events &= ~UV_READABLE;
	link_poll_apply(l);
}

/* End of a loop turn: write what the turn's coroutines queued, in one go. */
static void link_on_flush(struct lg__flush *f)
{
	struct lg__redis_link *l =
	    (struct lg__redis_link *)((char *)f - offsetof(struct lg__redis_link, flush));
	if (l->ac == NULL || l->state != LG__LINK_READY) {
		return;
	}
	l->in_flush = true;
	redisAsyncHandleWrite(l->ac); /* a partial write arms the write watch (in_flush) */
	l->in_flush = false;
}

/*
 * hiredis asks for a write watch for every command it queues. On a READY link the commands
 * of a loop turn are written together at the end of the turn instead (the runtime's flush),
 * so the socket is not registered and unregistered with epoll per command; the watch itself
 * is armed only while connecting and when a write could not finish.
 */
static void link_add_write(void *p)
{
	struct lg__redis_link *l = p;
	if (l->state == LG__LINK_READY && !l->in_flush) {
		lg__flush_schedule(l->r->rt, &l->flush);
		return;
	}
	l->events |= UV_WRITABLE;
	link_poll_apply(l);
}

static void link_del_write(void *p)
{
	struct lg__redis_link *l = p;
	l->events &= ~UV_WRITABLE;
	link_poll_apply(l);
}

/* hiredis is freeing the context: the last moment it may be read. */
static void link_cleanup(void *p)
{
	struct lg__redis_link *l = p;
	redisAsyncContext *ac = l->ac;
	l->ac = NULL;
	bool was_ready = l->state == LG__LINK_READY;
	const char *why =
	    ac != NULL && ac->c.errstr[0] != '\0' ? ac->c.errstr : "connection closed";
	link_fail(l, was_ready ? LG_ECONNLOST : LG_ECONNECT,
		  was_ready ? "redis %s:%d: connection lost: %s" : "redis connect %s:%d: %s", why);
	if (l->poll_open) {
		l->poll_open = false;
		uv_poll_stop(&l->poll);
		uv_close((uv_handle_t *)&l->poll, link_on_closed);
	}
}

static void link_on_poll(uv_poll_t *handle, int status, int events)
{
	struct lg__redis_link *l = (struct lg__redis_link *)handle;
	redisAsyncContext *ac = l->ac;
	if (ac == NULL) {
		return;
	}
	if (status < 0) {
		/* libuv stopped the handle. Let hiredis find the error: a pending connect reads
		 * SO_ERROR, a connected socket reads the reset or EOF. */
		l->applied = 0;
		if (!(ac->c.flags & REDIS_CONNECTED)) {
			redisAsyncHandleWrite(ac);
		} else {
			redisAsyncHandleRead(ac);
		}
		if (l->ac != NULL) {
			link_poll_apply(l);
		}
		return;
	}
	if (events & UV_READABLE) {
		redisAsyncHandleRead(ac);
	}
	if (l->ac != NULL && (events & UV_WRITABLE)) {
		redisAsyncHandleWrite(ac);
	}
}

static void link_on_connect(const redisAsyncContext *ac, int status)
{
	struct lg__redis_link *l = ac->data;
	if (status != REDIS_OK) {
		/* hiredis frees the context right after this callback (cleanup hook included). */
		link_fail(l, LG_ECONNECT, "redis connect %s:%d: %s", ac->c.errstr);
	}
}

/* Handshake replies: AUTH and SELECT must succeed; PING's reply completes the attempt. */
static void link_on_handshake(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct lg__redis_link *l = ac->data;
	const char *step = privdata;
	redisReply *rep = reply;
	if (rep == NULL || l->state != LG__LINK_CONNECTING) {
		return; /* the context is going away; the cleanup hook reports why */
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		char detail[LG_ERROR_MSG_SIZE];
		snprintf(detail, sizeof(detail), "%s failed: %.*s", step, (int)rep->len, rep->str);
		link_fail(l, LG_ECONNECT, "redis connect %s:%d: %s", detail);
		l->ac = NULL;
		redisAsyncFree(ac); /* inside a reply callback: hiredis frees it afterwards */
		return;
	}
	if (strcmp(step, "PING") == 0) {
		lg__timer_stop(l->r->rt, &l->timer);
		l->state = LG__LINK_READY;
		lg__redis_breaker_ready(l->r);
		lg__redis_wake_waiters(l->r, 0);
	}
}

static void link_on_timeout(struct lg__timer *t)
{
	struct lg__redis_link *l =
	    (struct lg__redis_link *)((char *)t - offsetof(struct lg__redis_link, timer));
	char detail[64];
	snprintf(detail, sizeof(detail), "no connection within %llu ms",
		 (unsigned long long)l->r->connect_timeout_ms);
	link_fail(l, LG_ETIMEDOUT, "redis connect %s:%d: %s", detail);
	link_free_context(l);
}

static int link_handshake(struct lg__redis_link *l)
{
	struct lg_redis *r = l->r;
	redisAsyncContext *ac = l->ac;
	int rc = REDIS_OK;
	if (r->password != NULL && r->username != NULL) {
		rc = redisAsyncCommand(ac, link_on_handshake, "AUTH", "AUTH %s %s", r->username,
				       r->password);
	} else if (r->password != NULL) {
		rc = redisAsyncCommand(ac, link_on_handshake, "AUTH", "AUTH %s", r->password);
	}
	if (rc == REDIS_OK && r->db != 0) {
		rc = redisAsyncCommand(ac, link_on_handshake, "SELECT", "SELECT %d", r->db);
	}
	if (rc == REDIS_OK) {
		rc = redisAsyncCommand(ac, link_on_handshake, "PING", "PING");
	}
	return rc == REDIS_OK ? 0 : LG_ENOMEM;
}

/* Attaches the adapter; on failure the context is still ours to free. */
static int link_attach(struct lg__redis_link *l)
{
	redisAsyncContext *ac = l->ac;
	if (uv_poll_init_socket(lg_runtime_loop(l->r->rt), &l->poll, ac->c.fd) != 0) {
		return LG_ECONNECT;
	}
	l->poll_open = true;
	l->r->refs++; /* released in link_on_closed */
	ac->data = l;
	ac->ev.data = l;
	ac->ev.addRead = link_add_read;
	ac->ev.delRead = link_del_read;
	ac->ev.addWrite = link_add_write;
	ac->ev.delWrite = link_del_write;
	ac->ev.cleanup = link_cleanup;
	redisEnableKeepAlive(&ac->c);
	/* Setting the connect callback arms the write watch that detects the connect. */
	redisAsyncSetConnectCallback(ac, link_on_connect);
	return 0;
}

/* Link ids are shared by every runtime of the process, which may run on other threads. */
static atomic_uint_fast64_t link_last_id;

int lg__redis_link_start(struct lg_redis *r)
{
	assert(r->link == NULL && !r->closed);
	struct lg__redis_link *l = lg__calloc(1, sizeof(*l));
	if (l == NULL) {
		return LG_ENOMEM;
	}
	r->stats.connect_attempts++;
	l->r = r;
	l->id = (uint64_t)atomic_fetch_add_explicit(&link_last_id, 1, memory_order_relaxed) + 1;
	l->state = LG__LINK_CONNECTING;
	l->flush.fn = link_on_flush;
	lg__timer_init(&l->timer, link_on_timeout);
	l->ac = redisAsyncConnect(r->host, r->port);
	if (l->ac == NULL || l->ac->err != 0) {
		int code = l->ac == NULL ? LG_ENOMEM : LG_ECONNECT;
		r->last_code = code;
		snprintf(r->last_msg, sizeof(r->last_msg), "redis connect %s:%d: %s", r->host,
			 r->port, l->ac != NULL ? l->ac->errstr : "out of memory");
		if (l->ac != NULL) {
			redisAsyncFree(l->ac); /* no adapter attached: nothing of ours runs */
		}
		lg__free(l);
		lg__redis_breaker_failed(r);
		return code;
	}
	int rc = link_attach(l);
	if (rc == 0) {
		r->link = l;
		rc = link_handshake(l);
	}
	if (rc == 0) {
		rc = lg__timer_start(r->rt, &l->timer, lg_deadline_in(r->connect_timeout_ms));
	}
	if (rc != 0) {
		bool attached = l->poll_open;
		r->link = l;
		link_fail(l, rc, "redis connect %s:%d: %s", "cannot start");
		link_free_context(l);
		if (!attached) {
			lg__free(l);
		}
		return rc;
	}
	return 0;
}

void lg__redis_link_close(struct lg__redis_link *l)
{
	link_fail(l, LG_ECANCELED, "redis %s:%d: %s", "client closed");
	link_free_context(l);
}
