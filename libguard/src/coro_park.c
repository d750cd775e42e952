/*
 * Parking and waking coroutines, and the blocking calls built directly on it: yield, sleep,
 * cancel, join, and running a call inside a coroutine when the caller is a plain thread.
 *
 * A parked coroutine waits on a struct lg__waiter that lives on its own stack. Whoever
 * completes the wait calls lg__waiter_wake; a deadline (from the runtime's timer heap) or a
 * cancellation calls the waiter's abort hook instead, which unregisters the waiter from what
 * it waited on and wakes it with LG_ETIMEDOUT / LG_ECANCELED. So a waiter is never left
 * registered after its coroutine moved on.
 */
#include "runtime_int.h"

#include <assert.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

void lg__waiter_init(struct lg__waiter *w, void (*abort)(struct lg__waiter *w, int status))
{
	memset(w, 0, sizeof(*w));
	w->abort = abort;
	w->coro = lg_coro_self();
}

void lg__waiter_wake(struct lg__waiter *w, int status)
{
	if (w->done) {
		return;
	}
	w->done = true;
	w->status = status;
	if (w->coro != w->coro->rt->current) {
		lg__ready(w->coro); /* the running coroutine sees done before it parks */
	}
}

struct sched_deadline {
	struct lg__timer timer;
	struct lg__waiter *w;
};

static void sched_on_deadline(struct lg__timer *t)
{
	struct sched_deadline *d = (struct sched_deadline *)t;
	if (!d->w->done) {
		d->w->abort(d->w, LG_ETIMEDOUT);
	}
}

int lg__park(struct lg__waiter *w, uint64_t deadline)
{
	struct lg_coro *c = lg_coro_self();
	assert(c != NULL && w->abort != NULL && w->coro == c);
	/* Callers with a configured default have already resolved LG_DEADLINE_DEFAULT; what
	 * reaches here unresolved (the runtime's own waits) has none, so it waits forever. */
	if (deadline == LG_DEADLINE_DEFAULT) {
		deadline = LG_DEADLINE_NONE;
	}
	if (c->canceled && !w->done) {
		w->abort(w, LG_ECANCELED);
	}
	if (!w->done && deadline != LG_DEADLINE_NONE && deadline <= lg_now_ms()) {
		w->abort(w, LG_ETIMEDOUT);
	}
	struct sched_deadline d = {.w = w};
	lg__timer_init(&d.timer, sched_on_deadline);
	if (!w->done && deadline != LG_DEADLINE_NONE &&
	    lg__timer_start(c->rt, &d.timer, deadline) != 0) {
		w->abort(w, LG_ENOMEM); /* never wait without the deadline the caller asked for */
	}
	while (!w->done) {
		c->waiter = w;
		lg__coro_suspend(c);
		c->waiter = NULL;
	}
	lg__timer_stop(c->rt, &d.timer);
	return w->status;
}

static void sched_abort_plain(struct lg__waiter *w, int status)
{
	lg__waiter_wake(w, status);
}

LG_API int lg_yield(void)
{
	struct lg_coro *c = lg_coro_self();
	if (c == NULL) {
		return LG_ENOTCORO;
	}
	if (c->canceled) {
		return LG_ECANCELED;
	}
	lg__ready(c);
	lg__coro_suspend(c);
	return c->canceled ? LG_ECANCELED : 0;
}

LG_API int lg_sleep(uint64_t ms)
{
	if (lg_coro_self() == NULL) {
		return LG_ENOTCORO;
	}
	struct lg__waiter w;
	lg__waiter_init(&w, sched_abort_plain);
	int rc = lg__park(&w, lg_deadline_in(ms));
	return rc == LG_ETIMEDOUT ? 0 : rc;
}

LG_API void lg_coro_cancel(struct lg_coro *c)
{
	if (c->finished || c->canceled) {
		return;
	}
	c->canceled = true;
	if (c->waiter != NULL && !c->waiter->done) {
		c->waiter->abort(c->waiter, LG_ECANCELED);
	}
}

LG_API bool lg_coro_canceled(void)
{
	struct lg_coro *c = lg_coro_self();
	return c != NULL && c->canceled;
}

static void sched_abort_join(struct lg__waiter *w, int status)
{
	struct lg_coro *target = w->data;
	target->joiner = NULL;
	lg__waiter_wake(w, status);
}

static int sched_join_in_coro(void *arg)
{
	struct lg_coro *target = ((void **)arg)[0];
	uint64_t deadline = *(uint64_t *)((void **)arg)[1];
	if (!target->finished) {
		struct lg__waiter w;
		lg__waiter_init(&w, sched_abort_join);
		w.data = target;
		assert(target->joiner == NULL);
		target->joiner = &w;
		int rc = lg__park(&w, deadline);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

LG_API int lg_coro_join(struct lg_coro *c, uint64_t deadline)
{
	assert(!c->detached);
	void *args[2] = {c, &deadline};
	int rc = c->finished ? 0 : lg__run_in_coro(c->rt, sched_join_in_coro, args);
	if (rc == 0) {
		assert(c->finished);
		lg__free(c);
	}
	return rc;
}

struct sched_sync_call {
	int (*fn)(void *arg);
	void *arg;
	int rc;
};

static void sched_sync_trampoline(void *arg)
{
	struct sched_sync_call *call = arg;
	call->rc = call->fn(call->arg);
}

int lg__run_in_coro(struct lg_runtime *rt, int (*fn)(void *arg), void *arg)
{
	struct lg_coro *self = lg_coro_self();
	if (self != NULL && self->rt == rt) {
		return fn(arg);
	}
	if (self != NULL || rt->loop_depth > 0 || rt->running > 0) {
		return LG_EBUSY; /* another runtime's coroutine, or a loop callback */
	}
	struct sched_sync_call call = {fn, arg, 0};
	struct lg_coro *c;
	int rc = lg_coro_spawn(rt, sched_sync_trampoline, &call, &c);
	if (rc != 0) {
		return rc;
	}
	rt->running++;
	while (!c->finished) {
		if (uv_run(rt->loop, UV_RUN_ONCE) == 0 && !c->finished && !c->queued) {
			lg_coro_cancel(c); /* nothing left that could wake it */
		}
	}
	rt->running--;
	lg__free(c);
	return call.rc;
}

void lg__runtime_req_begin(struct lg_runtime *rt)
{
	rt->pending_reqs++;
}

void lg__runtime_req_end(struct lg_runtime *rt)
{
	rt->pending_reqs--;
}

void lg__resource_add(struct lg_runtime *rt, struct lg__resource *res)
{
	res->prev = NULL;
	res->next = rt->resources;
	if (rt->resources != NULL) {
		rt->resources->prev = res;
	}
	rt->resources = res;
}

void lg__resource_remove(struct lg_runtime *rt, struct lg__resource *res)
{
	if (res->prev != NULL) {
		res->prev->next = res->next;
	} else if (rt->resources == res) {
		rt->resources = res->next;
	}
	if (res->next != NULL) {
		res->next->prev = res->prev;
	}
	res->next = res->prev = NULL;
}
