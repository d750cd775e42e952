/*
 * Layout of the runtime and of a coroutine. Private to the scheduler (sched.c), the context
 * switch backend (coro.c) and the timer heap (timer_heap.c).
 */
#ifndef LG_RUNTIME_INT_H
#define LG_RUNTIME_INT_H

#if defined(LG_CORO_UCONTEXT)
#include <ucontext.h>
#endif

#include "sched_int.h"

struct lg_coro {
	struct lg_runtime *rt;
	void (*fn)(void *arg);
	void *arg;
	struct lg__stack stack;
#if defined(LG_CORO_FCONTEXT)
	void *fctx; /* saved context while suspended */
#else
	ucontext_t uctx;
#endif
	void *asan_fake_stack;
	bool finished;
	bool detached;
	bool canceled;
	bool queued;
	bool daemon; /* background service: lg_runtime_run does not wait for it */
	struct lg_coro *ready_next;
	struct lg__waiter *waiter; /* what it is parked on, if anything */
	struct lg__waiter *joiner; /* who waits for it to finish */
	struct lg_coro *live_next; /* list of coroutines not yet finished */
	struct lg_coro *live_prev;
};

struct lg_runtime {
	uv_loop_t *loop;
	bool own_loop;
	size_t stack_size;
	size_t stack_cache_max;
	struct lg__stack *stack_cache;
	size_t stack_cache_len;

	/* Scheduler context: the stack the loop runs on. */
#if defined(LG_CORO_FCONTEXT)
	void *sched_fctx;
#else
	ucontext_t sched_uctx;
#endif
	const void *sched_stack_bottom; /* for ASan fiber switches */
	size_t sched_stack_size;
	void *sched_fake_stack;

	struct lg_coro *current;
	struct lg_coro *ready_head;
	struct lg_coro *ready_tail;
	struct lg__flush *flush_head;
	struct lg_coro *live;
	size_t live_count;
	size_t daemon_count;
	int loop_depth; /* > 0 while a scheduler callback runs */
	int running;    /* > 0 while libguard itself drives uv_run on this loop */

	uv_idle_t idle;    /* active while coroutines are ready or flushes pending */
	uv_timer_t timer;  /* armed at or before the heap's earliest deadline */
	uint64_t timer_at; /* the deadline timer is armed for; 0 = stopped */
	struct lg__heap_slot *heap;
	size_t heap_len;
	size_t heap_cap;
	int pending_closes;
	int pending_reqs; /* libuv requests of libguard objects (cancel, resolve) */
	struct lg__resource *resources;
};

/* Context switch backend (coro.c). */
void lg__coro_prepare(struct lg_coro *c);
void lg__coro_resume(struct lg_runtime *rt, struct lg_coro *c);
void lg__coro_suspend(struct lg_coro *c);
_Noreturn void lg__coro_exit(struct lg_coro *c);
/* Entry point every coroutine runs; defined by the scheduler. */
void lg__coro_main(struct lg_coro *c);

/* Timer heap (timer_heap.c): each slot carries its timer's deadline, so sifting compares
 * without reading timers that live on other coroutines' stacks. */
struct lg__heap_slot {
	uint64_t when;
	struct lg__timer *t;
};

void lg__timer_heap_on_fire(uv_timer_t *handle);
void lg__timer_heap_free(struct lg_runtime *rt);

#endif
