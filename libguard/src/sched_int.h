/*
 * Internal runtime structures shared by the scheduler, the coroutine backend, the timer heap,
 * the synchronization primitives and the PostgreSQL connection.
 */
#ifndef LG_SCHED_INT_H
#define LG_SCHED_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "libguard/runtime.h"

/* A one-shot timer in the runtime's heap; cb runs on the scheduler stack. */
struct lg__timer {
	size_t heap_index; /* position in the heap (whose slot holds the deadline), SIZE_MAX when
			    * not armed */
	void (*cb)(struct lg__timer *timer);
};

/*
 * A parked coroutine. The party that registered it (a condition, a connection, a timer)
 * completes it with lg__waiter_wake(); lg__park() calls abort() on deadline or cancellation,
 * which must unregister the waiter and wake it with the given status.
 */
struct lg__waiter {
	struct lg_coro *coro;
	int status;
	bool done;
	void (*abort)(struct lg__waiter *w, int status);
	void *data;
	struct lg__waiter *next; /* intrusive FIFO links for wait queues */
	struct lg__waiter *prev;
};

/* Work to run once after the coroutines that were ready in a loop turn have run. */
struct lg__flush {
	void (*fn)(struct lg__flush *f);
	struct lg__flush *next;
	bool queued;
};

/* Something the runtime must close before it can be freed (a connection, say). */
struct lg__resource {
	void (*close)(struct lg__resource *res);
	struct lg__resource *next;
	struct lg__resource *prev;
};

struct lg__waitq {
	struct lg__waiter *head;
	struct lg__waiter *tail;
};

/* Coroutine backend (coro.c). */
struct lg__stack {
	void *base;  /* mapping start, guard page included */
	size_t size; /* whole mapping */
};
struct lg__ctx;

int lg__stack_alloc(size_t usable, struct lg__stack *out);
void lg__stack_release(struct lg__stack *stack);

/* Scheduler. */
/* Spawns a background coroutine (pool maintenance, say): like lg_coro_spawn, but
 * lg_runtime_run does not wait for it; lg_runtime_free still cancels and reaps it. */
int lg__coro_spawn_daemon(struct lg_runtime *rt, void (*fn)(void *arg), void *arg,
			  struct lg_coro **out);
struct lg_runtime *lg__runtime_of(struct lg_coro *c);
void lg__ready(struct lg_coro *c);
void lg__flush_schedule(struct lg_runtime *rt, struct lg__flush *f);
/* Takes f off the runtime's queue (before its memory goes away); nothing when not queued. */
void lg__flush_cancel(struct lg_runtime *rt, struct lg__flush *f);
/* Counts libuv requests (thread-pool work, getaddrinfo) that lg_runtime_free must wait for. */
void lg__runtime_req_begin(struct lg_runtime *rt);
void lg__runtime_req_end(struct lg_runtime *rt);
void lg__resource_add(struct lg_runtime *rt, struct lg__resource *res);
void lg__resource_remove(struct lg_runtime *rt, struct lg__resource *res);

/*
 * Parks the calling coroutine until w is woken, the deadline passes or the coroutine is
 * canceled; returns w->status. w->abort must be set. Must run inside a coroutine.
 */
int lg__park(struct lg__waiter *w, uint64_t deadline);
void lg__waiter_init(struct lg__waiter *w, void (*abort)(struct lg__waiter *w, int status));
void lg__waiter_wake(struct lg__waiter *w, int status);

/*
 * Runs fn(arg) inside a coroutine of rt: directly when already in one of rt's coroutines,
 * otherwise in a new coroutine while the loop runs until it finished (LG_EBUSY when called
 * from a loop callback of a running rt, where running the loop again is not allowed).
 */
int lg__run_in_coro(struct lg_runtime *rt, int (*fn)(void *arg), void *arg);

/* Timer heap (timer_heap.c), one uv_timer per runtime. */
void lg__timer_init(struct lg__timer *t, void (*cb)(struct lg__timer *t));
int lg__timer_start(struct lg_runtime *rt, struct lg__timer *t, uint64_t when);
void lg__timer_stop(struct lg_runtime *rt, struct lg__timer *t);
bool lg__timer_armed(const struct lg__timer *t);

/* FIFO wait queues. */
void lg__waitq_push(struct lg__waitq *q, struct lg__waiter *w);
void lg__waitq_remove(struct lg__waitq *q, struct lg__waiter *w);
struct lg__waiter *lg__waitq_pop(struct lg__waitq *q);

#endif
