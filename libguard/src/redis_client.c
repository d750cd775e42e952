/*
 * The client object: connect (first link and handshake), waiting for a READY link on behalf
 * of commands, close, and the runtime resource hook.
 *
 * Happy path: lg_redis_new validates the host (an IP literal: hiredis resolves names with
 * blocking getaddrinfo), starts a link (redis_conn.c) and waits until it is READY.
 * Later commands call lg__redis_wait_ready, which starts a new link when the previous one was
 * lost, so a restarted server is picked up by the next command without any action.
 * Failure modes: a failed or timed-out attempt wakes every waiter with its code and message
 * (LG_ECONNECT, LG_ETIMEDOUT); the caller's own deadline or cancellation gives LG_ETIMEDOUT /
 * LG_ECANCELED; lg_redis_free wakes waiters with LG_ECANCELED and frees the context, which
 * completes commands in flight with LG_ECANCELED. The object itself is freed when its last
 * reference goes: the owner's (dropped by close), each link's (dropped when its poll handle
 * is closed) and each call's (so a call woken by close can still read it).
 */
#include "redis_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

#define REDIS_DEFAULT_PORT           6379
#define REDIS_DEFAULT_CONNECT_MS     10000
#define REDIS_DEFAULT_COMMAND_MS     30000
#define REDIS_DEFAULT_BACKOFF_MS     100
#define REDIS_DEFAULT_BACKOFF_MAX_MS 5000

static void redis_free(struct lg_redis *r)
{
	lg__free(r->username);
	lg__free(r->password);
	lg__free(r);
}

void lg__redis_unref(struct lg_redis *r)
{
	assert(r->refs > 0);
	if (--r->refs == 0) {
		redis_free(r);
	}
}

static void redis_abort_wait(struct lg__waiter *w, int status)
{
	struct lg_redis *r = w->data;
	lg__waitq_remove(&r->conn_waiters, w);
	lg__waiter_wake(w, status);
}

void lg__redis_breaker_failed(struct lg_redis *r)
{
	r->stats.breaker_opens++;
	r->retry_at = lg_now_ms() + r->backoff_ms;
	r->backoff_ms =
	    r->backoff_ms * 2 < r->backoff_max_ms ? r->backoff_ms * 2 : r->backoff_max_ms;
}

void lg__redis_breaker_ready(struct lg_redis *r)
{
	r->retry_at = 0;
	r->backoff_ms = r->backoff_min_ms;
}

LG_API void lg_redis_get_stats(const struct lg_redis *r, struct lg_redis_stats *out)
{
	*out = r->stats;
	uint64_t now = lg_now_ms();
	bool open = r->link == NULL && r->retry_at > now;
	out->breaker = open ? LG_REDIS_BREAKER_OPEN : LG_REDIS_BREAKER_CLOSED;
	out->retry_in_ms = open ? r->retry_at - now : 0;
}

int lg__redis_wait_ready(struct lg_redis *r, uint64_t deadline, struct lg_error *err)
{
	if (r->closed) {
		return lg__error_set(err, LG_ECLOSED, "redis: client closed");
	}
	if (r->link != NULL && r->link->state == LG__LINK_READY) {
		return 0;
	}
	if (r->link == NULL && r->retry_at > lg_now_ms()) {
		r->stats.fast_failures++;
		return lg__error_set(
		    err, LG_ECONNECT, "redis %s:%d: unavailable, retrying in %llu ms (%s)", r->host,
		    r->port, (unsigned long long)(r->retry_at - lg_now_ms()), r->last_msg);
	}
	if (r->link == NULL) {
		int rc = lg__redis_link_start(r);
		if (rc != 0) {
			return lg__error_set(err, rc, "%s", r->last_msg);
		}
	}
	struct lg__waiter w;
	lg__waiter_init(&w, redis_abort_wait);
	w.data = r;
	lg__waitq_push(&r->conn_waiters, &w);
	int rc = lg__park(&w, deadline);
	if (rc == 0 && !r->closed && r->link != NULL && r->link->state == LG__LINK_READY) {
		return 0;
	}
	if (rc == 0) { /* ready, but lost or closed again before this coroutine ran */
		rc = r->closed ? LG_ECANCELED : r->last_code;
	}
	if (r->closed || rc == LG_ECANCELED) {
		return lg__error_set(err, LG_ECANCELED, "redis: canceled while connecting");
	}
	if (rc == LG_ETIMEDOUT && r->link != NULL) {
		return lg__error_set(err, rc, "redis %s:%d: deadline passed while connecting",
				     r->host, r->port);
	}
	return lg__error_set(err, rc, "%s", r->last_msg);
}

static void redis_close_resource(struct lg__resource *res)
{
	struct lg_redis *r = (struct lg_redis *)((char *)res - offsetof(struct lg_redis, resource));
	lg_redis_free(r);
}

LG_API void lg_redis_free(struct lg_redis *r)
{
	if (r == NULL || r->closed) {
		return;
	}
	lg__resource_remove(r->rt, &r->resource);
	r->closed = true;
	lg__redis_wake_waiters(r, LG_ECANCELED);
	struct lg__redis_link *l = r->link;
	if (l != NULL) {
		lg__redis_link_close(l);
	}
	lg__redis_unref(r);
}

struct connect_args {
	struct lg_runtime *rt;
	const struct lg_redis_config *cfg;
	struct lg_redis **out;
	struct lg_error *err;
};

static int redis_init(struct lg_redis *r, const struct lg_redis_config *cfg)
{
	snprintf(r->host, sizeof(r->host), "%s", cfg->host);
	r->port = cfg->port != 0 ? cfg->port : REDIS_DEFAULT_PORT;
	r->db = cfg->db;
	r->connect_timeout_ms =
	    cfg->connect_timeout_ms != 0 ? cfg->connect_timeout_ms : REDIS_DEFAULT_CONNECT_MS;
	r->command_timeout_ms =
	    cfg->command_timeout_ms != 0 ? cfg->command_timeout_ms : REDIS_DEFAULT_COMMAND_MS;
	r->backoff_min_ms =
	    cfg->reconnect_backoff_ms != 0 ? cfg->reconnect_backoff_ms : REDIS_DEFAULT_BACKOFF_MS;
	r->backoff_max_ms = cfg->reconnect_backoff_max_ms != 0 ? cfg->reconnect_backoff_max_ms
							       : REDIS_DEFAULT_BACKOFF_MAX_MS;
	if (r->backoff_max_ms < r->backoff_min_ms) {
		r->backoff_max_ms = r->backoff_min_ms;
	}
	r->backoff_ms = r->backoff_min_ms;
	if (cfg->password != NULL && cfg->password[0] != '\0') {
		r->password = lg__strdup(cfg->password);
		if (r->password == NULL) {
			return LG_ENOMEM;
		}
	}
	if (r->password != NULL && cfg->username != NULL && cfg->username[0] != '\0') {
		r->username = lg__strdup(cfg->username);
		if (r->username == NULL) {
			return LG_ENOMEM;
		}
	}
	return 0;
}

static int redis_connect_in_coro(void *arg)
{
	struct connect_args *a = arg;
	struct lg_redis *r = lg__calloc(1, sizeof(*r));
	if (r == NULL) {
		return lg__error_set(a->err, LG_ENOMEM, "redis connect: out of memory");
	}
	r->rt = a->rt;
	r->refs = 1;
	r->resource.close = redis_close_resource;
	lg__resource_add(r->rt, &r->resource);
	int rc = redis_init(r, a->cfg);
	if (rc != 0) {
		lg_redis_free(r);
		return lg__error_set(a->err, rc, "redis connect: out of memory");
	}
	r->refs++; /* this call: lg_runtime_free may close r while it waits */
	rc = lg__redis_wait_ready(r, LG_DEADLINE_NONE, a->err);
	if (rc != 0) {
		lg_redis_free(r);
		lg__redis_unref(r);
		return rc;
	}
	lg__redis_unref(r);
	*a->out = r;
	return 0;
}

LG_API int lg_redis_new(struct lg_runtime *rt, const struct lg_redis_config *cfg,
			struct lg_redis **out, struct lg_error *err)
{
	lg_error_clear(err);
	if (out != NULL) {
		*out = NULL;
	}
	if (rt == NULL || cfg == NULL || cfg->host == NULL || out == NULL || cfg->port < 0 ||
	    cfg->port > 65535) {
		return lg__error_set(err, LG_EINVAL, "redis connect: missing runtime, host or out");
	}
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, cfg->host, buf) != 1 && inet_pton(AF_INET6, cfg->host, buf) != 1) {
		return lg__error_set(err, LG_EINVAL,
				     "redis connect: host \"%.64s\" is not an IP literal "
				     "(hiredis would resolve it with blocking getaddrinfo)",
				     cfg->host);
	}
	struct connect_args a = {rt, cfg, out, err};
	int rc = lg__run_in_coro(rt, redis_connect_in_coro, &a);
	if (rc == LG_EBUSY) {
		lg__error_set(err, rc, "redis connect: called from a loop callback");
	}
	return rc;
}
