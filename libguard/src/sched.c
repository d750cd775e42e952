/*
 * The scheduler: one per runtime, driving coroutines from a libuv loop.
 *
 * Happy path of one loop turn:
 *   1. Wake-ups from I/O callbacks, timers or other coroutines append coroutines to the ready
 *      queue (each at most once) and activate the idle handle, so the loop does not block.
 *   2. The idle callback takes the queue as it stands and resumes each coroutine until it parks
 *      again or finishes; coroutines readied meanwhile run in a further pass, up to a bounded
 *      number of passes, so coroutines handing work to each other do not pay a loop turn per
 *      switch while I/O still gets its turn.
 *   3. Then the flushes that those coroutines scheduled run once each (a connection sends the
 *      statements queued this turn as one pipeline segment).
 *   4. With nothing ready and nothing to flush the idle handle stops and the loop may block.
 *
 * Failure modes: a park whose deadline passes or whose coroutine is canceled calls the
 * waiter's abort hook, which unregisters it and wakes it with LG_ETIMEDOUT / LG_ECANCELED.
 * A blocking call outside any coroutine runs the same code in a fresh coroutine while the
 * loop runs; if the loop runs dry with that coroutine still parked (nothing can wake it), the
 * coroutine is canceled so the call returns LG_ECANCELED instead of hanging.
 */
#include "runtime_int.h"

#include <assert.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

#define SCHED_DEFAULT_STACK       (256 * 1024)
#define SCHED_DEFAULT_STACK_CACHE 64

static _Thread_local struct lg_runtime *sched_tls_rt;

LG_API uint64_t lg_now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

LG_API uint64_t lg_deadline_in(uint64_t ms)
{
	uint64_t now = lg_now_ms();
	return ms >= LG_DEADLINE_NONE - now ? LG_DEADLINE_NONE : now + ms;
}

LG_API struct lg_runtime *lg_runtime_current(void)
{
	struct lg_runtime *rt = sched_tls_rt;
	return rt != NULL && rt->current != NULL ? rt : NULL;
}

LG_API struct lg_coro *lg_coro_self(void)
{
	struct lg_runtime *rt = sched_tls_rt;
	return rt != NULL ? rt->current : NULL;
}

struct lg_runtime *lg__runtime_of(struct lg_coro *c)
{
	return c->rt;
}

LG_API uv_loop_t *lg_runtime_loop(struct lg_runtime *rt)
{
	return rt->loop;
}

static void sched_on_idle(uv_idle_t *handle);

void lg__ready(struct lg_coro *c)
{
	struct lg_runtime *rt = c->rt;
	if (c->queued || c->finished) {
		return;
	}
	c->queued = true;
	c->ready_next = NULL;
	if (rt->ready_tail != NULL) {
		rt->ready_tail->ready_next = c;
	} else {
		rt->ready_head = c;
	}
	rt->ready_tail = c;
	uv_idle_start(&rt->idle, sched_on_idle);
}

void lg__flush_schedule(struct lg_runtime *rt, struct lg__flush *f)
{
	if (f->queued) {
		return;
	}
	f->queued = true;
	f->next = rt->flush_head;
	rt->flush_head = f;
	uv_idle_start(&rt->idle, sched_on_idle);
}

void lg__flush_cancel(struct lg_runtime *rt, struct lg__flush *f)
{
	for (struct lg__flush **p = &rt->flush_head; f->queued && *p != NULL; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			f->queued = false;
			return;
		}
	}
}

static void sched_stack_put(struct lg_runtime *rt, struct lg__stack *stack)
{
	if (rt->stack_cache_len < rt->stack_cache_max) {
		rt->stack_cache[rt->stack_cache_len++] = *stack;
		stack->base = NULL;
		stack->size = 0;
		return;
	}
	lg__stack_release(stack);
}

static void sched_live_unlink(struct lg_runtime *rt, struct lg_coro *c)
{
	if (c->live_prev != NULL) {
		c->live_prev->live_next = c->live_next;
	} else {
		rt->live = c->live_next;
	}
	if (c->live_next != NULL) {
		c->live_next->live_prev = c->live_prev;
	}
	rt->live_count--;
	if (c->daemon) {
		rt->daemon_count--;
	}
}

/* Runs on the scheduler right after a coroutine's last switch. */
static void sched_finished(struct lg_runtime *rt, struct lg_coro *c)
{
	sched_live_unlink(rt, c);
	sched_stack_put(rt, &c->stack);
	if (c->detached) {
		lg__free(c);
		return;
	}
	if (c->joiner != NULL) {
		struct lg__waiter *w = c->joiner;
		c->joiner = NULL;
		lg__waiter_wake(w, 0);
	}
}

static void sched_run_ready(struct lg_runtime *rt)
{
	struct lg_coro *c = rt->ready_head;
	rt->ready_head = NULL;
	rt->ready_tail = NULL;
	while (c != NULL) {
		struct lg_coro *next = c->ready_next;
		c->queued = false;
		rt->current = c;
		lg__coro_resume(rt, c);
		rt->current = NULL;
		if (c->finished) {
			sched_finished(rt, c);
		}
		c = next;
	}
}

static void sched_run_flushes(struct lg_runtime *rt)
{
	while (rt->flush_head != NULL) {
		struct lg__flush *f = rt->flush_head;
		rt->flush_head = f->next;
		f->queued = false;
		f->fn(f);
	}
}

/* Passes over the ready queue per loop turn: coroutines that wake each other keep running
 * without paying a loop turn (an epoll_wait and clock reads) per switch, while I/O still gets
 * its turn after a bounded amount of work. */
#define SCHED_PASSES_PER_TURN 64

static void sched_on_idle(uv_idle_t *handle)
{
	struct lg_runtime *rt = handle->data;
	struct lg_runtime *saved = sched_tls_rt;
	sched_tls_rt = rt;
	rt->loop_depth++;
	for (int pass = 0; pass < SCHED_PASSES_PER_TURN && rt->ready_head != NULL; pass++) {
		sched_run_ready(rt);
	}
	sched_run_flushes(rt);
	rt->loop_depth--;
	sched_tls_rt = saved;
	if (rt->ready_head == NULL && rt->flush_head == NULL) {
		uv_idle_stop(&rt->idle);
	}
}

void lg__coro_main(struct lg_coro *c)
{
	c->fn(c->arg);
	c->finished = true;
}

LG_API int lg_runtime_new(uv_loop_t *loop, const struct lg_runtime_config *config,
			  struct lg_runtime **out)
{
	struct lg_runtime *rt = lg__calloc(1, sizeof(*rt));
	if (rt == NULL) {
		return LG_ENOMEM;
	}
	rt->stack_size =
	    config != NULL && config->stack_size != 0 ? config->stack_size : SCHED_DEFAULT_STACK;
	rt->stack_cache_max = config != NULL && config->stack_cache != 0
				  ? config->stack_cache
				  : SCHED_DEFAULT_STACK_CACHE;
	rt->stack_cache = lg__calloc(rt->stack_cache_max, sizeof(*rt->stack_cache));
	if (rt->stack_cache == NULL) {
		lg__free(rt);
		return LG_ENOMEM;
	}
	if (loop == NULL) {
		loop = lg__malloc(sizeof(*loop));
		if (loop == NULL || uv_loop_init(loop) != 0) {
			lg__free(loop);
			lg__free(rt->stack_cache);
			lg__free(rt);
			return LG_ENOMEM;
		}
		rt->own_loop = true;
	}
	rt->loop = loop;
	uv_idle_init(loop, &rt->idle);
	rt->idle.data = rt;
	uv_timer_init(loop, &rt->timer);
	rt->timer.data = rt;
	*out = rt;
	return 0;
}

static void sched_on_handle_closed(uv_handle_t *handle)
{
	struct lg_runtime *rt = handle->data;
	rt->pending_closes--;
}

LG_API int lg_runtime_run(struct lg_runtime *rt)
{
	if (rt->loop_depth > 0 || rt->running > 0 || lg_coro_self() != NULL) {
		return LG_EBUSY;
	}
	/* Open connections keep their sockets watched, so the loop itself would never run dry:
	 * run until the coroutines are done instead (background ones excepted). */
	int rc = 0;
	rt->running++;
	while (rt->live_count > rt->daemon_count) {
		if (uv_run(rt->loop, UV_RUN_ONCE) == 0 && rt->live_count > rt->daemon_count &&
		    rt->ready_head == NULL) {
			rc = LG_EBUSY; /* whatever is still parked can never be woken */
			break;
		}
	}
	rt->running--;
	return rc;
}

LG_API void lg_runtime_free(struct lg_runtime *rt)
{
	if (rt == NULL) {
		return;
	}
	assert(rt->loop_depth == 0 && lg_coro_self() == NULL);
	while (rt->resources != NULL) {
		struct lg__resource *res = rt->resources;
		lg__resource_remove(rt, res);
		res->close(res);
	}
	rt->running++;
	for (struct lg_coro *c = rt->live; c != NULL; c = c->live_next) {
		lg_coro_cancel(c);
	}
	while (rt->live_count > 0 || rt->ready_head != NULL || rt->flush_head != NULL ||
	       rt->pending_reqs > 0) {
		if (uv_run(rt->loop, UV_RUN_ONCE) == 0 && rt->ready_head == NULL) {
			break;
		}
	}
	assert(rt->live_count == 0);
	rt->pending_closes = 2;
	uv_close((uv_handle_t *)&rt->idle, sched_on_handle_closed);
	uv_close((uv_handle_t *)&rt->timer, sched_on_handle_closed);
	while (rt->pending_closes > 0) {
		uv_run(rt->loop, UV_RUN_ONCE);
	}
	rt->running--;
	lg__timer_heap_free(rt);
	for (size_t i = 0; i < rt->stack_cache_len; i++) {
		lg__stack_release(&rt->stack_cache[i]);
	}
	lg__free(rt->stack_cache);
	if (rt->own_loop) {
		uv_run(rt->loop, UV_RUN_DEFAULT);
		uv_loop_close(rt->loop);
		lg__free(rt->loop);
	}
	lg__free(rt);
}

LG_API int lg_coro_spawn(struct lg_runtime *rt, void (*fn)(void *arg), void *arg,
			 struct lg_coro **out)
{
	struct lg_coro *c = lg__calloc(1, sizeof(*c));
	if (c == NULL) {
		return LG_ENOMEM;
	}
	if (rt->stack_cache_len > 0) {
		c->stack = rt->stack_cache[--rt->stack_cache_len];
	} else if (lg__stack_alloc(rt->stack_size, &c->stack) != 0) {
		lg__free(c);
		return LG_ENOMEM;
	}
	c->rt = rt;
	c->fn = fn;
	c->arg = arg;
	c->detached = out == NULL;
	lg__coro_prepare(c);
	c->live_next = rt->live;
	if (rt->live != NULL) {
		rt->live->live_prev = c;
	}
	rt->live = c;
	rt->live_count++;
	lg__ready(c);
	if (out != NULL) {
		*out = c;
	}
	return 0;
}

int lg__coro_spawn_daemon(struct lg_runtime *rt, void (*fn)(void *arg), void *arg,
			  struct lg_coro **out)
{
	struct lg_coro *c;
	int rc = lg_coro_spawn(rt, fn, arg, &c);
	if (rc != 0) {
		return rc;
	}
	c->daemon = true;
	rt->daemon_count++;
	if (out != NULL) {
		*out = c;
	} else {
		c->detached = true;
	}
	return 0;
}
