/*
 * libguard runtime: coroutines on a libuv loop.
 *
 * One runtime = one uv loop + one coroutine scheduler, single-threaded. Scale across cores by
 * running one runtime per thread. Coroutines are resumed only from the loop: a wake-up (timer,
 * socket readiness, a signal on a condition) queues the coroutine, and the scheduler runs the
 * queue once per loop turn, then flushes the work those coroutines queued (for example the
 * statements that share one pipeline sync segment).
 *
 * Deadlines are absolute times in milliseconds on the monotonic clock (lg_now_ms()), and
 * every call that takes one (here, in conn.h, pool.h, redis.h ...) reads it the same way:
 *   LG_DEADLINE_DEFAULT (0)  the default of the object the call works on (a connection's
 *                            statement_timeout_ms, a Redis client's command_timeout_ms, a
 *                            pool's acquire_timeout_ms); where nothing configures one (the
 *                            runtime's own waits below, notifications) it waits forever;
 *   LG_DEADLINE_NOW          do not block: only what can complete at once succeeds, anything
 *                            that would wait fails with LG_ETIMEDOUT;
 *   LG_DEADLINE_NONE         wait forever;
 *   anything else            that instant: lg_deadline_in(ms) builds one relative to now
 *                            (never 0 or 1).
 * Timeouts in configuration structs (*_timeout_ms) are durations and follow one rule too:
 * 0 = the default documented beside the field, LG_TIMEOUT_NONE = no limit.
 *
 * Blocking calls (join, sleep, waits, queries) made outside any coroutine still work: they
 * spawn a coroutine running the same code and run the loop until it finishes.
 */
#ifndef LIBGUARD_RUNTIME_H
#define LIBGUARD_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libuv's loop (uv_loop_t); the header does not need <uv.h>, callers that use libuv include it. */
struct uv_loop_s;

#define LG_DEADLINE_DEFAULT 0u
#define LG_DEADLINE_NOW     1u
#define LG_DEADLINE_NONE    UINT64_MAX
#define LG_TIMEOUT_NONE     UINT64_MAX

struct lg_runtime;
struct lg_coro;

struct lg_runtime_config {
	size_t stack_size;  /* usable bytes per coroutine stack; 0 = 256 KiB */
	size_t stack_cache; /* stacks kept for reuse after coroutines finish; 0 = 64 */
};

/* Monotonic clock in milliseconds. */
LG_API uint64_t lg_now_ms(void);

/* lg_now_ms() + ms, saturating at LG_DEADLINE_NONE. */
LG_API uint64_t lg_deadline_in(uint64_t ms);

/*
 * Creates a runtime on loop (Borrowed: must outlive the runtime; NULL = the runtime creates
 * and owns its own loop). config is Copied; NULL means defaults. On success *out is Owned by
 * the caller and released with lg_runtime_free().
 */
LG_API int lg_runtime_new(struct uv_loop_s *loop, const struct lg_runtime_config *config,
			  struct lg_runtime **out);

/*
 * Runs the loop until every coroutine of rt has finished (open connections stay open).
 * LG_EBUSY when called from a coroutine or loop callback, or when the loop ran dry while
 * coroutines were still parked on something nothing can signal any more.
 */
LG_API int lg_runtime_run(struct lg_runtime *rt);

/*
 * Cancels every live coroutine, runs the loop until they finished and every handle the runtime
 * owns is closed, then frees it. NULL is a no-op. Must not be called from a coroutine.
 */
LG_API void lg_runtime_free(struct lg_runtime *rt);

/* The loop of rt (Borrowed for the runtime's lifetime). */
LG_API struct uv_loop_s *lg_runtime_loop(struct lg_runtime *rt);

/* The runtime whose coroutine is running now on this thread, or NULL. */
LG_API struct lg_runtime *lg_runtime_current(void);

/* The coroutine running now on this thread, or NULL on the scheduler / a plain thread. */
LG_API struct lg_coro *lg_coro_self(void);

/*
 * Spawns a coroutine running fn(arg) on rt. It first runs on a later loop turn.
 * If out is NULL the coroutine is detached and frees itself when fn returns; otherwise *out
 * is a handle Owned by the caller until lg_coro_join() (which frees it) — every non-detached
 * coroutine must be joined exactly once.
 */
LG_API int lg_coro_spawn(struct lg_runtime *rt, void (*fn)(void *arg), void *arg,
			 struct lg_coro **out);

/*
 * Waits until c finished, then frees c (also on LG_ETIMEDOUT/LG_ECANCELED the handle stays
 * valid and must be joined again or the coroutine must be left to finish: on failure nothing
 * is freed). From outside a coroutine it runs the loop until c finished.
 */
LG_API int lg_coro_join(struct lg_coro *c, uint64_t deadline);

/* Gives other ready coroutines a turn; returns LG_ECANCELED if the caller was canceled. */
LG_API int lg_yield(void);

/* Sleeps ms milliseconds. LG_ECANCELED if canceled meanwhile. */
LG_API int lg_sleep(uint64_t ms);

/*
 * Requests cancellation of c: its current or next blocking call returns LG_ECANCELED
 * promptly (the operation underneath completes its own cleanup). Idempotent.
 */
LG_API void lg_coro_cancel(struct lg_coro *c);

/* True when the calling coroutine was canceled. */
LG_API bool lg_coro_canceled(void);

/*
 * Waits until fd is readable (UV_READABLE) and/or writable (UV_WRITABLE) or deadline.
 * *revents (may be NULL) receives the ready events. Only one waiter per fd at a time. The
 * flags are libuv's: callers include <uv.h> for them.
 */
LG_API int lg_wait_fd(int fd, int events, uint64_t deadline, int *revents);

/*
 * A condition for coroutine-to-coroutine handoff, bound to rt (Borrowed: must outlive it).
 * Waiters wake in FIFO order. A wait from outside any coroutine runs rt until it completes.
 */
struct lg_cond;
LG_API int lg_cond_new(struct lg_runtime *rt, struct lg_cond **out);
LG_API void lg_cond_free(struct lg_cond *cv); /* no waiter may remain */
/* Waits for a signal. Spurious wake-ups do not happen: 0 means signaled. */
LG_API int lg_cond_wait(struct lg_cond *cv, uint64_t deadline);
LG_API void lg_cond_signal(struct lg_cond *cv);
LG_API void lg_cond_broadcast(struct lg_cond *cv);

/*
 * A bounded channel of pointers (capacity 0 = rendezvous). Values are Borrowed/Owned as the
 * program decides; the channel never dereferences them. After lg_chan_close() sends fail with
 * LG_ECLOSED and receives drain what is buffered, then fail with LG_ECLOSED.
 */
struct lg_chan;
LG_API int lg_chan_new(struct lg_runtime *rt, size_t capacity, struct lg_chan **out);
LG_API void lg_chan_free(struct lg_chan *ch); /* no waiter may remain */
LG_API int lg_chan_send(struct lg_chan *ch, void *value, uint64_t deadline);
LG_API int lg_chan_recv(struct lg_chan *ch, void **value, uint64_t deadline);
LG_API void lg_chan_close(struct lg_chan *ch);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_RUNTIME_H */
