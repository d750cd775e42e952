/*
 * Unit tests for the coroutine runtime (sched.c, coro.c, coro_sync.c, timer_heap.c).
 *
 * Every test builds its own runtime, drives it to the end inside the test body and frees it
 * there, so the loop is left empty. Coroutines never assert directly (a failed cr_assert would
 * longjmp off a coroutine stack): they record what they saw in a fixture and the test body
 * checks it after the loop ran. Where a test checks "nothing leaks" it counts the library's
 * allocations through the lg_set_allocator() hook (installed before the runtime is created and
 * restored at the end, as alloc.h demands). No sockets: only a pipe for lg_wait_fd.
 *
 * No test sets Criterion's .timeout: in Criterion 2.4.1 (BoxFort) overlapping tests with
 * different timeouts leak a timeout request in the runner, which fails the ASan flavour.
 * A hang is caught by meson's test timeout instead.
 */
#include "libguard/alloc.h"
#include "libguard/runtime.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* Helpers. */

static struct lg_runtime *rt_new(void)
{
	struct lg_runtime *rt = NULL;
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	cr_assert_not_null(rt);
	return rt;
}

static struct lg_coro *spawn(struct lg_runtime *rt, void (*fn)(void *arg), void *arg)
{
	struct lg_coro *c = NULL;
	cr_assert_eq(lg_coro_spawn(rt, fn, arg, &c), 0);
	cr_assert_not_null(c);
	return c;
}

static void spawn_detached(struct lg_runtime *rt, void (*fn)(void *arg), void *arg)
{
	cr_assert_eq(lg_coro_spawn(rt, fn, arg, NULL), 0);
}

/* Lets every coroutine readied so far run (and park again) before the caller continues. */
static void settle(void)
{
	for (int i = 0; i < 4; i++) {
		lg_yield();
	}
}

/* An ordered record of events. */
#define TRACE_MAX 64
struct trace {
	int item[TRACE_MAX];
	size_t len;
};

static void trace_add(struct trace *t, int v)
{
	if (t->len < TRACE_MAX) {
		t->item[t->len++] = v;
	}
}

static void expect_trace(const struct trace *t, const int *want, size_t n)
{
	cr_assert_eq(t->len, n, "trace has %zu entries, want %zu", t->len, n);
	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(t->item[i], want[i], "trace[%zu] = %d, want %d", i, t->item[i],
			     want[i]);
	}
}

#define EXPECT_TRACE(t, ...)                                                                       \
	do {                                                                                       \
		static const int want_[] = {__VA_ARGS__};                                          \
		expect_trace((t), want_, sizeof(want_) / sizeof(want_[0]));                        \
	} while (0)

/* Counting allocator: live allocations, and failure injection from the n-th call on. */
static struct {
	long live;
	long calls;
	long fail_from; /* -1: never fail */
} alloc_count;

static bool alloc_count_fails(void)
{
	bool fail = alloc_count.fail_from >= 0 && alloc_count.calls >= alloc_count.fail_from;
	alloc_count.calls++;
	return fail;
}

static void *alloc_count_malloc(size_t size, void *ud)
{
	(void)ud;
	if (alloc_count_fails()) {
		return NULL;
	}
	void *p = malloc(size);
	if (p != NULL) {
		alloc_count.live++;
	}
	return p;
}

static void *alloc_count_realloc(void *ptr, size_t size, void *ud)
{
	if (ptr == NULL) {
		return alloc_count_malloc(size, ud);
	}
	if (alloc_count_fails()) {
		return NULL;
	}
	return realloc(ptr, size);
}

static void alloc_count_free(void *ptr, void *ud)
{
	(void)ud;
	if (ptr != NULL) {
		alloc_count.live--;
	}
	free(ptr);
}

static void alloc_count_install(long fail_from)
{
	static const struct lg_allocator a = {alloc_count_malloc, alloc_count_realloc,
					      alloc_count_free, NULL};
	alloc_count.live = 0;
	alloc_count.calls = 0;
	alloc_count.fail_from = fail_from;
	lg_set_allocator(&a);
}

/* Spawn and join. */

struct spawn_fixture {
	struct lg_runtime *rt;
	int runs;
	int value;
	struct lg_coro *self;
	struct lg_runtime *current;
};

static void spawn_body(void *arg)
{
	struct spawn_fixture *f = arg;
	f->runs++;
	f->value = 42;
	f->self = lg_coro_self();
	f->current = lg_runtime_current();
}

Test(runtime, spawn_then_join_sees_what_the_coroutine_did)
{
	struct spawn_fixture f = {0};
	f.rt = rt_new();
	struct lg_coro *c = spawn(f.rt, spawn_body, &f);
	cr_expect_eq(f.runs, 0, "a coroutine first runs on a later loop turn, not in spawn");
	cr_expect_null(lg_coro_self());
	cr_expect_null(lg_runtime_current());

	cr_assert_eq(lg_coro_join(c, LG_DEADLINE_NONE), 0);
	cr_expect_eq(f.runs, 1);
	cr_expect_eq(f.value, 42);
	cr_expect_eq(f.self, c, "lg_coro_self() inside is the spawned handle");
	cr_expect_eq(f.current, f.rt);
	cr_expect_null(lg_coro_self(), "back on the plain thread after the join");
	cr_expect_eq(lg_runtime_run(f.rt), 0, "nothing left to run");
	lg_runtime_free(f.rt);
}

struct join_in_coro_fixture {
	struct lg_runtime *rt;
	struct spawn_fixture child;
	int rc;
	int child_runs_at_join;
};

static void join_in_coro_body(void *arg)
{
	struct join_in_coro_fixture *f = arg;
	struct lg_coro *c;
	f->rc = lg_coro_spawn(f->rt, spawn_body, &f->child, &c);
	if (f->rc == 0) {
		f->rc = lg_coro_join(c, LG_DEADLINE_NONE);
		f->child_runs_at_join = f->child.runs;
	}
}

Test(runtime, join_from_a_coroutine_waits_for_the_child)
{
	struct join_in_coro_fixture f = {.rc = -1};
	f.rt = rt_new();
	spawn_detached(f.rt, join_in_coro_body, &f);
	cr_assert_eq(lg_runtime_run(f.rt), 0);
	cr_expect_eq(f.rc, 0);
	cr_expect_eq(f.child_runs_at_join, 1, "join returned before the child ran");
	cr_expect_eq(f.child.value, 42);
	lg_runtime_free(f.rt);
}

#define MANY 10000

struct many_fixture {
	int runs[MANY];
	int order[MANY];
	int next;
};

struct many_arg {
	struct many_fixture *f;
	int id;
};

static void many_body(void *arg)
{
	struct many_arg *a = arg;
	a->f->runs[a->id]++;
	lg_yield(); /* all 10,000 are alive and parked at once */
	a->f->order[a->f->next++] = a->id;
}

Test(runtime, ten_thousand_coroutines_each_run_exactly_once)
{
	static struct many_fixture f;
	static struct many_arg args[MANY];
	static struct lg_coro *handles[MANY];
	struct lg_runtime *rt = rt_new();
	for (int i = 0; i < MANY; i++) {
		args[i] = (struct many_arg){&f, i};
		if (i % 2 == 0) {
			handles[i] = spawn(rt, many_body, &args[i]);
		} else {
			spawn_detached(rt, many_body, &args[i]);
		}
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < MANY; i += 2) {
		cr_assert_eq(lg_coro_join(handles[i], LG_DEADLINE_NONE), 0);
	}
	cr_assert_eq(f.next, MANY);
	for (int i = 0; i < MANY; i++) {
		cr_assert_eq(f.runs[i], 1, "coroutine %d ran %d times", i, f.runs[i]);
		cr_assert_eq(f.order[i], i, "coroutines resumed out of spawn order at %d", i);
	}
	lg_runtime_free(rt);
}

/* Yield, sleep, cancel. */

struct yield_arg {
	struct trace *log;
	int id;
	int rc;
};

static void yield_body(void *arg)
{
	struct yield_arg *a = arg;
	for (int i = 0; i < 4; i++) {
		trace_add(a->log, a->id);
		int rc = lg_yield();
		if (rc != 0) {
			a->rc = rc;
		}
	}
}

Test(runtime, yield_alternates_two_coroutines)
{
	struct trace log = {0};
	struct yield_arg a = {&log, 1, 0};
	struct yield_arg b = {&log, 2, 0};
	struct lg_runtime *rt = rt_new();
	spawn_detached(rt, yield_body, &a);
	spawn_detached(rt, yield_body, &b);
	cr_assert_eq(lg_runtime_run(rt), 0);
	EXPECT_TRACE(&log, 1, 2, 1, 2, 1, 2, 1, 2);
	cr_expect_eq(a.rc, 0);
	cr_expect_eq(b.rc, 0);
	lg_runtime_free(rt);
}

struct sleep_arg {
	struct trace *log;
	uint64_t ms;
	int rc;
	uint64_t slept;
};

static void sleep_body(void *arg)
{
	struct sleep_arg *a = arg;
	uint64_t start = lg_now_ms();
	a->rc = lg_sleep(a->ms);
	a->slept = lg_now_ms() - start;
	trace_add(a->log, (int)a->ms);
}

Test(runtime, sleepers_wake_in_deadline_order)
{
	struct trace log = {0};
	struct sleep_arg s[3] = {{&log, 30, -1, 0}, {&log, 10, -1, 0}, {&log, 20, -1, 0}};
	struct lg_runtime *rt = rt_new();
	for (int i = 0; i < 3; i++) {
		spawn_detached(rt, sleep_body, &s[i]);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	EXPECT_TRACE(&log, 10, 20, 30);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(s[i].rc, 0);
		cr_expect_geq(s[i].slept, s[i].ms, "lg_sleep(%lu) returned after %lu ms",
			      (unsigned long)s[i].ms, (unsigned long)s[i].slept);
	}
	lg_runtime_free(rt);
}

struct cancel_fixture {
	struct lg_coro *victim;
	int sleep_rc;
	int yield_rc;
	bool canceled_seen;
	uint64_t slept;
	bool went_on;
};

static void cancel_victim(void *arg)
{
	struct cancel_fixture *f = arg;
	uint64_t start = lg_now_ms();
	f->sleep_rc = lg_sleep(60 * 1000);
	f->slept = lg_now_ms() - start;
	f->canceled_seen = lg_coro_canceled();
	f->yield_rc = lg_yield();
	f->went_on = true;
}

static void cancel_killer(void *arg)
{
	struct cancel_fixture *f = arg;
	lg_sleep(10);
	lg_coro_cancel(f->victim);
	lg_coro_cancel(f->victim); /* idempotent */
}

Test(runtime, cancel_interrupts_a_long_sleep)
{
	struct cancel_fixture f = {.sleep_rc = -1, .yield_rc = -1};
	struct lg_runtime *rt = rt_new();
	f.victim = spawn(rt, cancel_victim, &f);
	spawn_detached(rt, cancel_killer, &f);
	cr_assert_eq(lg_coro_join(f.victim, LG_DEADLINE_NONE), 0);
	cr_expect_eq(f.sleep_rc, LG_ECANCELED);
	cr_expect(f.canceled_seen);
	cr_expect_eq(f.yield_rc, LG_ECANCELED, "later blocking calls keep failing");
	cr_expect(f.went_on, "cancellation is reported, not forced: the coroutine goes on");
	cr_assert_eq(lg_runtime_run(rt), 0);
	lg_runtime_free(rt);
}

Test(runtime, cancel_before_first_run_fails_the_first_blocking_call)
{
	struct cancel_fixture f = {.sleep_rc = -1, .yield_rc = -1};
	struct lg_runtime *rt = rt_new();
	f.victim = spawn(rt, cancel_victim, &f);
	lg_coro_cancel(f.victim);
	cr_assert_eq(lg_coro_join(f.victim, LG_DEADLINE_NONE), 0);
	cr_expect_eq(f.sleep_rc, LG_ECANCELED);
	cr_expect(f.canceled_seen);
	cr_expect(f.went_on, "a canceled coroutine still runs its function");
	lg_runtime_free(rt);
}

/* Join deadlines. */

struct slow_fixture {
	uint64_t ms;
	bool done;
};

static void slow_body(void *arg)
{
	struct slow_fixture *f = arg;
	lg_sleep(f->ms);
	f->done = true;
}

Test(runtime, join_deadline_times_out_and_the_handle_stays_joinable)
{
	struct slow_fixture f = {.ms = 60};
	struct lg_runtime *rt = rt_new();
	struct lg_coro *c = spawn(rt, slow_body, &f);
	cr_assert_eq(lg_coro_join(c, lg_deadline_in(10)), LG_ETIMEDOUT);
	cr_expect_not(f.done, "join timed out although the coroutine finished");
	cr_assert_eq(lg_coro_join(c, lg_deadline_in(0)), LG_ETIMEDOUT,
		     "a deadline that has already passed fails at once");
	cr_assert_eq(lg_coro_join(c, LG_DEADLINE_NONE), 0);
	cr_expect(f.done);
	lg_runtime_free(rt);
}

struct join_deadline_fixture {
	struct lg_runtime *rt;
	struct slow_fixture slow;
	int first_rc;
	bool done_at_first;
	int second_rc;
};

static void join_deadline_body(void *arg)
{
	struct join_deadline_fixture *f = arg;
	struct lg_coro *c;
	if (lg_coro_spawn(f->rt, slow_body, &f->slow, &c) != 0) {
		return;
	}
	f->first_rc = lg_coro_join(c, lg_deadline_in(10));
	f->done_at_first = f->slow.done;
	f->second_rc = lg_coro_join(c, LG_DEADLINE_NONE);
}

Test(runtime, join_deadline_inside_a_coroutine)
{
	struct join_deadline_fixture f = {.slow = {.ms = 60}, .first_rc = -1, .second_rc = -1};
	f.rt = rt_new();
	spawn_detached(f.rt, join_deadline_body, &f);
	cr_assert_eq(lg_runtime_run(f.rt), 0);
	cr_expect_eq(f.first_rc, LG_ETIMEDOUT);
	cr_expect_not(f.done_at_first);
	cr_expect_eq(f.second_rc, 0);
	cr_expect(f.slow.done);
	lg_runtime_free(f.rt);
}

/* Conditions. */

struct cond_fixture {
	struct lg_cond *cv;
	struct trace woke;
	int rc[4];
	size_t woke_after[4];
	int nwaiters;
};

struct cond_arg {
	struct cond_fixture *f;
	int id;
	uint64_t deadline;
};

static void cond_waiter(void *arg)
{
	struct cond_arg *a = arg;
	a->f->rc[a->id] = lg_cond_wait(a->f->cv, a->deadline);
	trace_add(&a->f->woke, a->id);
}

static void cond_signal_one_by_one(void *arg)
{
	struct cond_fixture *f = arg;
	settle();
	for (int i = 0; i < f->nwaiters; i++) {
		lg_cond_signal(f->cv);
		settle();
		f->woke_after[i] = f->woke.len;
	}
}

static struct lg_cond *cond_new(struct lg_runtime *rt)
{
	struct lg_cond *cv = NULL;
	cr_assert_eq(lg_cond_new(rt, &cv), 0);
	return cv;
}

Test(runtime, cond_signal_wakes_one_waiter_at_a_time_in_fifo_order)
{
	struct cond_fixture f = {.rc = {-1, -1, -1}, .nwaiters = 3};
	struct cond_arg args[3];
	struct lg_runtime *rt = rt_new();
	f.cv = cond_new(rt);
	for (int i = 0; i < 3; i++) {
		args[i] = (struct cond_arg){&f, i, LG_DEADLINE_NONE};
		spawn_detached(rt, cond_waiter, &args[i]);
	}
	spawn_detached(rt, cond_signal_one_by_one, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	EXPECT_TRACE(&f.woke, 0, 1, 2);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(f.rc[i], 0);
		cr_expect_eq(f.woke_after[i], (size_t)i + 1, "signal %d left %zu waiters woken", i,
			     f.woke_after[i]);
	}
	lg_cond_free(f.cv);
	lg_runtime_free(rt);
}

/*
 * One reading of a deadline everywhere (runtime.h): LG_DEADLINE_DEFAULT (0) is "the default",
 * and the runtime's own waits have none, so they wait until signaled; LG_DEADLINE_NOW does
 * not wait at all.
 */
Test(runtime, cond_deadline_default_waits_and_now_does_not)
{
	struct cond_fixture f = {.rc = {-1, -1}, .nwaiters = 1};
	struct cond_arg args[2];
	struct lg_runtime *rt = rt_new();
	f.cv = cond_new(rt);
	args[0] = (struct cond_arg){&f, 0, LG_DEADLINE_DEFAULT};
	args[1] = (struct cond_arg){&f, 1, LG_DEADLINE_NOW};
	spawn_detached(rt, cond_waiter, &args[0]);
	spawn_detached(rt, cond_waiter, &args[1]);
	spawn_detached(rt, cond_signal_one_by_one, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	EXPECT_TRACE(&f.woke, 1, 0);
	cr_expect_eq(f.rc[0], 0, "LG_DEADLINE_DEFAULT gave %s", lg_strerror(f.rc[0]));
	cr_expect_eq(f.rc[1], LG_ETIMEDOUT, "LG_DEADLINE_NOW gave %s", lg_strerror(f.rc[1]));
	lg_cond_free(f.cv);
	lg_runtime_free(rt);
}

static void cond_broadcast_once(void *arg)
{
	struct cond_fixture *f = arg;
	settle();
	f->woke_after[0] = f->woke.len;
	lg_cond_broadcast(f->cv);
	settle();
	f->woke_after[1] = f->woke.len;
	lg_cond_broadcast(f->cv); /* nobody left: a no-op */
}

Test(runtime, cond_broadcast_wakes_every_waiter)
{
	struct cond_fixture f = {.rc = {-1, -1, -1, -1}};
	struct cond_arg args[4];
	struct lg_runtime *rt = rt_new();
	f.cv = cond_new(rt);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct cond_arg){&f, i, LG_DEADLINE_NONE};
		spawn_detached(rt, cond_waiter, &args[i]);
	}
	spawn_detached(rt, cond_broadcast_once, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.woke_after[0], 0, "someone woke before the broadcast");
	cr_expect_eq(f.woke_after[1], 4);
	EXPECT_TRACE(&f.woke, 0, 1, 2, 3);
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(f.rc[i], 0);
	}
	lg_cond_free(f.cv);
	lg_runtime_free(rt);
}

static void cond_signal_after_timeout(void *arg)
{
	struct cond_fixture *f = arg;
	lg_sleep(60); /* waiter 0 (20 ms deadline) has left by now */
	f->woke_after[0] = f->woke.len;
	lg_cond_signal(f->cv);
	settle();
	f->woke_after[1] = f->woke.len;
}

Test(runtime, cond_wait_timeout_does_not_swallow_a_later_signal)
{
	struct cond_fixture f = {.rc = {-1, -1}};
	struct lg_runtime *rt = rt_new();
	f.cv = cond_new(rt);
	struct cond_arg early = {&f, 0, lg_deadline_in(20)};
	struct cond_arg patient = {&f, 1, LG_DEADLINE_NONE};
	spawn_detached(rt, cond_waiter, &early);
	spawn_detached(rt, cond_waiter, &patient);
	spawn_detached(rt, cond_signal_after_timeout, &f);
	cr_assert_eq(lg_runtime_run(rt), 0, "the signal went to the departed waiter");
	cr_expect_eq(f.rc[0], LG_ETIMEDOUT);
	cr_expect_eq(f.rc[1], 0);
	cr_expect_eq(f.woke_after[0], 1, "only the timed-out waiter left before the signal");
	cr_expect_eq(f.woke_after[1], 2);
	EXPECT_TRACE(&f.woke, 0, 1);
	lg_cond_free(f.cv);
	lg_runtime_free(rt);
}

Test(runtime, cond_wait_with_a_past_deadline_fails_at_once)
{
	struct cond_fixture f = {.rc = {-1}};
	struct lg_runtime *rt = rt_new();
	f.cv = cond_new(rt);
	struct cond_arg a = {&f, 0, lg_now_ms() - 1};
	spawn_detached(rt, cond_waiter, &a);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.rc[0], LG_ETIMEDOUT);
	lg_cond_free(f.cv);
	lg_runtime_free(rt);
}

/* Channels. */

static struct lg_chan *chan_new(struct lg_runtime *rt, size_t cap)
{
	struct lg_chan *ch = NULL;
	cr_assert_eq(lg_chan_new(rt, cap, &ch), 0);
	return ch;
}

#define CHAN_N 4
static void *const chan_values[CHAN_N] = {(void *)0x11, (void *)0x22, NULL, (void *)0x33};

struct chan_fixture {
	struct lg_chan *ch;
	int send_rc[8];
	int sent;
	int recv_rc[8];
	void *got[8];
	int received;
	int sent_seen[8];
};

static void chan_sender(void *arg)
{
	struct chan_fixture *f = arg;
	for (int i = 0; i < CHAN_N; i++) {
		f->send_rc[i] = lg_chan_send(f->ch, chan_values[i], LG_DEADLINE_NONE);
		f->sent++;
	}
}

static void chan_receiver(void *arg)
{
	struct chan_fixture *f = arg;
	for (int i = 0; i < CHAN_N; i++) {
		f->got[i] = (void *)0xdead;
		f->recv_rc[i] = lg_chan_recv(f->ch, &f->got[i], LG_DEADLINE_NONE);
		f->received++;
	}
}

static void expect_chan_values(const struct chan_fixture *f)
{
	cr_assert_eq(f->sent, CHAN_N);
	cr_assert_eq(f->received, CHAN_N);
	for (int i = 0; i < CHAN_N; i++) {
		cr_expect_eq(f->send_rc[i], 0);
		cr_expect_eq(f->recv_rc[i], 0);
		cr_expect_eq(f->got[i], chan_values[i], "value %d: got %p, want %p", i, f->got[i],
			     chan_values[i]);
	}
}

Test(runtime, rendezvous_channel_hands_values_over_in_order)
{
	struct lg_runtime *rt = rt_new();
	/* Both orders: the sender parks first, and the receiver parks first. */
	for (int receiver_first = 0; receiver_first < 2; receiver_first++) {
		struct chan_fixture f = {0};
		f.ch = chan_new(rt, 0);
		if (receiver_first) {
			spawn_detached(rt, chan_receiver, &f);
			spawn_detached(rt, chan_sender, &f);
		} else {
			spawn_detached(rt, chan_sender, &f);
			spawn_detached(rt, chan_receiver, &f);
		}
		cr_assert_eq(lg_runtime_run(rt), 0);
		expect_chan_values(&f);
		lg_chan_free(f.ch);
	}
	lg_runtime_free(rt);
}

struct lonely_fixture {
	struct lg_chan *ch;
	int send_rc;
	int recv_rc;
	void *got;
};

static void lonely_body(void *arg)
{
	struct lonely_fixture *f = arg;
	f->send_rc = lg_chan_send(f->ch, (void *)0x77, lg_deadline_in(10));
	f->got = NULL;
	f->recv_rc = lg_chan_recv(f->ch, &f->got, lg_deadline_in(10));
}

Test(runtime, rendezvous_send_without_receiver_times_out_and_is_not_delivered)
{
	struct lonely_fixture f = {.send_rc = -1, .recv_rc = -1};
	struct lg_runtime *rt = rt_new();
	f.ch = chan_new(rt, 0);
	spawn_detached(rt, lonely_body, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.send_rc, LG_ETIMEDOUT, "a capacity-0 channel buffered the value");
	cr_expect_eq(f.recv_rc, LG_ETIMEDOUT, "the abandoned value was delivered later");
	cr_expect_null(f.got);
	lg_chan_free(f.ch);
	lg_runtime_free(rt);
}

static void full_sender(void *arg)
{
	struct chan_fixture *f = arg;
	for (int i = 0; i < CHAN_N; i++) {
		f->send_rc[i] = lg_chan_send(f->ch, chan_values[i], LG_DEADLINE_NONE);
		f->sent++;
	}
}

static void full_controller(void *arg)
{
	struct chan_fixture *f = arg;
	settle();
	f->sent_seen[0] = f->sent; /* 2: the third send waits for room */
	f->send_rc[7] = lg_chan_send(f->ch, (void *)0x99, lg_deadline_in(10));
	for (int i = 0; i < CHAN_N; i++) {
		f->recv_rc[i] = lg_chan_recv(f->ch, &f->got[i], LG_DEADLINE_NONE);
		f->received++;
		settle();
		f->sent_seen[i + 1] = f->sent;
	}
}

Test(runtime, buffered_channel_blocks_the_sender_while_full)
{
	struct chan_fixture f = {0};
	struct lg_runtime *rt = rt_new();
	f.ch = chan_new(rt, 2);
	spawn_detached(rt, full_sender, &f);
	spawn_detached(rt, full_controller, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	expect_chan_values(&f);
	cr_expect_eq(f.sent_seen[0], 2, "with capacity 2, %d sends completed", f.sent_seen[0]);
	cr_expect_eq(f.send_rc[7], LG_ETIMEDOUT, "a send into a full channel must wait");
	cr_expect_eq(f.sent_seen[1], 3, "one receive makes room for exactly one send");
	cr_expect_eq(f.sent_seen[2], 4);
	lg_chan_free(f.ch);
	lg_runtime_free(rt);
}

static void chan_recv_one(void *arg)
{
	struct chan_fixture *f = arg;
	int i = f->received++;
	f->got[i] = (void *)0xdead;
	f->recv_rc[i] = lg_chan_recv(f->ch, &f->got[i], LG_DEADLINE_NONE);
}

static void chan_send_one(void *arg)
{
	struct chan_fixture *f = arg;
	int i = f->sent++;
	f->send_rc[i] = lg_chan_send(f->ch, chan_values[i], LG_DEADLINE_NONE);
}

static void chan_closer(void *arg)
{
	struct chan_fixture *f = arg;
	settle();
	lg_chan_close(f->ch);
	f->send_rc[7] = lg_chan_send(f->ch, (void *)0x1, LG_DEADLINE_NONE);
}

Test(runtime, close_wakes_blocked_receivers_with_eclosed)
{
	struct chan_fixture f = {.recv_rc = {-1, -1}};
	struct lg_runtime *rt = rt_new();
	f.ch = chan_new(rt, 0);
	spawn_detached(rt, chan_recv_one, &f);
	spawn_detached(rt, chan_recv_one, &f);
	spawn_detached(rt, chan_closer, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.recv_rc[0], LG_ECLOSED);
	cr_expect_eq(f.recv_rc[1], LG_ECLOSED);
	cr_expect_eq(f.send_rc[7], LG_ECLOSED, "send after close");
	void *v = (void *)0x5;
	cr_expect_eq(lg_chan_recv(f.ch, &v, LG_DEADLINE_NONE), LG_ECLOSED);
	lg_chan_free(f.ch);
	lg_runtime_free(rt);
}

Test(runtime, close_wakes_blocked_senders_and_receivers_drain_the_buffer_first)
{
	struct chan_fixture f = {.send_rc = {-1, -1, -1}};
	struct lg_runtime *rt = rt_new();
	f.ch = chan_new(rt, 1);
	spawn_detached(rt, chan_send_one, &f); /* fills the buffer */
	spawn_detached(rt, chan_send_one, &f); /* blocks */
	spawn_detached(rt, chan_send_one, &f); /* blocks */
	spawn_detached(rt, chan_closer, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.send_rc[0], 0);
	cr_expect_eq(f.send_rc[1], LG_ECLOSED);
	cr_expect_eq(f.send_rc[2], LG_ECLOSED);
	/* From the test body: receives still drain what was buffered before the close. */
	void *v = NULL;
	cr_expect_eq(lg_chan_recv(f.ch, &v, LG_DEADLINE_NONE), 0);
	cr_expect_eq(v, chan_values[0]);
	cr_expect_eq(lg_chan_recv(f.ch, &v, LG_DEADLINE_NONE), LG_ECLOSED);
	lg_chan_free(f.ch);
	lg_runtime_free(rt);
}

Test(runtime, closed_buffered_channel_yields_every_value_then_eclosed)
{
	struct lg_runtime *rt = rt_new();
	struct lg_chan *ch = chan_new(rt, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(lg_chan_send(ch, chan_values[i], LG_DEADLINE_NONE), 0);
	}
	lg_chan_close(ch);
	cr_expect_eq(lg_chan_send(ch, (void *)0x1, LG_DEADLINE_NONE), LG_ECLOSED);
	for (int i = 0; i < 3; i++) {
		void *v = (void *)0xdead;
		cr_assert_eq(lg_chan_recv(ch, &v, LG_DEADLINE_NONE), 0, "value %d lost", i);
		cr_expect_eq(v, chan_values[i]);
	}
	void *v = NULL;
	cr_expect_eq(lg_chan_recv(ch, &v, LG_DEADLINE_NONE), LG_ECLOSED);
	lg_chan_close(ch); /* closing twice is harmless */
	lg_chan_free(ch);
	lg_runtime_free(rt);
}

static void chan_recv_with_deadline(void *arg)
{
	struct chan_fixture *f = arg;
	f->recv_rc[0] = lg_chan_recv(f->ch, &f->got[0], lg_deadline_in(10));
}

static void chan_send_late(void *arg)
{
	struct chan_fixture *f = arg;
	lg_sleep(40);
	f->send_rc[0] = lg_chan_send(f->ch, (void *)0x44, LG_DEADLINE_NONE);
}

static void chan_recv_patient(void *arg)
{
	struct chan_fixture *f = arg;
	f->recv_rc[1] = lg_chan_recv(f->ch, &f->got[1], LG_DEADLINE_NONE);
}

Test(runtime, timed_out_receiver_does_not_swallow_a_later_value)
{
	struct chan_fixture f = {.send_rc = {-1}, .recv_rc = {-1, -1}};
	struct lg_runtime *rt = rt_new();
	f.ch = chan_new(rt, 0);
	spawn_detached(rt, chan_recv_with_deadline, &f);
	spawn_detached(rt, chan_recv_patient, &f);
	spawn_detached(rt, chan_send_late, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.recv_rc[0], LG_ETIMEDOUT);
	cr_expect_eq(f.send_rc[0], 0);
	cr_expect_eq(f.recv_rc[1], 0);
	cr_expect_eq(f.got[1], (void *)0x44);
	lg_chan_free(f.ch);
	lg_runtime_free(rt);
}

/* Waiting for a file descriptor. */

struct fd_fixture {
	int fds[2];
	int rc;
	int revents;
	char byte;
	ssize_t nread;
};

static void fd_wait_briefly(void *arg)
{
	struct fd_fixture *f = arg;
	f->revents = -1;
	f->rc = lg_wait_fd(f->fds[0], UV_READABLE, lg_deadline_in(20), &f->revents);
}

static void fd_wait_long(void *arg)
{
	struct fd_fixture *f = arg;
	f->rc = lg_wait_fd(f->fds[0], UV_READABLE, lg_deadline_in(30 * 1000), &f->revents);
	if (f->rc == 0) {
		f->nread = read(f->fds[0], &f->byte, 1);
	}
}

static void fd_write_later(void *arg)
{
	struct fd_fixture *f = arg;
	lg_sleep(10);
	ssize_t n = write(f->fds[1], "x", 1);
	(void)n;
}

static void fd_wait_writable(void *arg)
{
	struct fd_fixture *f = arg;
	f->rc = lg_wait_fd(f->fds[1], UV_WRITABLE, lg_deadline_in(30 * 1000), &f->revents);
}

static void pipe_open(struct fd_fixture *f)
{
	cr_assert_eq(pipe(f->fds), 0);
}

static void pipe_close(struct fd_fixture *f)
{
	close(f->fds[0]);
	close(f->fds[1]);
}

Test(runtime, wait_fd_times_out_when_nothing_is_written)
{
	struct fd_fixture f = {.rc = -1};
	pipe_open(&f);
	struct lg_runtime *rt = rt_new();
	spawn_detached(rt, fd_wait_briefly, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.rc, LG_ETIMEDOUT);
	cr_expect_eq(f.revents, 0);
	lg_runtime_free(rt);
	pipe_close(&f);
}

Test(runtime, wait_fd_reports_readable_after_a_write)
{
	struct fd_fixture f = {.rc = -1};
	pipe_open(&f);
	struct lg_runtime *rt = rt_new();
	spawn_detached(rt, fd_wait_long, &f);
	spawn_detached(rt, fd_write_later, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.rc, 0);
	cr_expect(f.revents & UV_READABLE, "revents = %d", f.revents);
	cr_expect_eq(f.nread, 1);
	cr_expect_eq(f.byte, 'x');

	f.rc = -1;
	f.revents = 0;
	spawn_detached(rt, fd_wait_writable, &f);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_expect_eq(f.rc, 0);
	cr_expect(f.revents & UV_WRITABLE, "an empty pipe is writable; revents = %d", f.revents);
	lg_runtime_free(rt);
	pipe_close(&f);
}

/* Blocking calls from outside any coroutine. */

struct outside_fixture {
	struct lg_cond *cv;
	struct lg_chan *ch;
	bool signaled;
	bool sent;
	bool finished;
};

static void outside_signal_later(void *arg)
{
	struct outside_fixture *f = arg;
	lg_sleep(10);
	f->signaled = true;
	lg_cond_signal(f->cv);
}

static void outside_send_later(void *arg)
{
	struct outside_fixture *f = arg;
	lg_sleep(10);
	lg_chan_send(f->ch, (void *)0x55, LG_DEADLINE_NONE);
	f->sent = true;
}

static void outside_finish_later(void *arg)
{
	struct outside_fixture *f = arg;
	lg_sleep(10);
	f->finished = true;
}

Test(runtime, blocking_calls_outside_a_coroutine_run_the_loop)
{
	struct outside_fixture f = {0};
	struct lg_runtime *rt = rt_new();
	f.cv = cond_new(rt);
	f.ch = chan_new(rt, 0);

	spawn_detached(rt, outside_signal_later, &f);
	cr_expect_eq(lg_cond_wait(f.cv, LG_DEADLINE_NONE), 0);
	cr_expect(f.signaled);

	spawn_detached(rt, outside_send_later, &f);
	void *v = NULL;
	cr_expect_eq(lg_chan_recv(f.ch, &v, LG_DEADLINE_NONE), 0);
	cr_expect_eq(v, (void *)0x55);

	struct lg_coro *c = spawn(rt, outside_finish_later, &f);
	cr_expect_eq(lg_coro_join(c, LG_DEADLINE_NONE), 0);
	cr_expect(f.finished);

	cr_expect_eq(lg_cond_wait(f.cv, lg_deadline_in(10)), LG_ETIMEDOUT);
	cr_expect_eq(lg_runtime_run(rt), 0, "the sender finished once its value was taken");
	cr_expect(f.sent);
	lg_chan_free(f.ch);
	lg_cond_free(f.cv);
	lg_runtime_free(rt);
}

Test(runtime, outside_wait_that_nothing_can_end_is_canceled)
{
	struct lg_runtime *rt = rt_new();
	struct lg_cond *cv = cond_new(rt);
	struct lg_chan *ch = chan_new(rt, 0);
	cr_expect_eq(lg_cond_wait(cv, LG_DEADLINE_NONE), LG_ECANCELED);
	void *v = NULL;
	cr_expect_eq(lg_chan_recv(ch, &v, LG_DEADLINE_NONE), LG_ECANCELED);
	lg_chan_free(ch);
	lg_cond_free(cv);
	lg_runtime_free(rt);
}

Test(runtime, coroutine_only_calls_fail_outside_with_enotcoro)
{
	struct lg_runtime *rt = rt_new();
	cr_expect_eq(lg_sleep(1), LG_ENOTCORO);
	cr_expect_eq(lg_yield(), LG_ENOTCORO);
	int revents = 7;
	cr_expect_eq(lg_wait_fd(0, UV_READABLE, LG_DEADLINE_NONE, &revents), LG_ENOTCORO);
	cr_expect_not(lg_coro_canceled());
	cr_expect_null(lg_coro_self());
	cr_expect_null(lg_runtime_current());
	lg_runtime_free(rt);
}

/* Runtime teardown. */

struct blocked_fixture {
	struct lg_runtime *rt;
	struct lg_cond *cv;
	int rc[3];
	int returned;
	int run_rc;
};

struct blocked_arg {
	struct blocked_fixture *f;
	int id;
};

static void blocked_waiter(void *arg)
{
	struct blocked_arg *a = arg;
	a->f->rc[a->id] = lg_cond_wait(a->f->cv, LG_DEADLINE_NONE);
	a->f->returned++;
}

static void blocked_spawn_three(struct blocked_fixture *f, struct blocked_arg *args)
{
	for (int i = 0; i < 3; i++) {
		f->rc[i] = -1;
		args[i] = (struct blocked_arg){f, i};
		spawn_detached(f->rt, blocked_waiter, &args[i]);
	}
}

Test(runtime, run_returns_ebusy_when_a_waiter_can_never_be_woken)
{
	struct blocked_fixture f = {0};
	struct blocked_arg args[3];
	f.rt = rt_new();
	f.cv = cond_new(f.rt);
	blocked_spawn_three(&f, args);
	cr_expect_eq(lg_runtime_run(f.rt), LG_EBUSY);
	cr_expect_eq(f.returned, 0, "a waiter returned without a signal");
	lg_runtime_free(f.rt);
	cr_expect_eq(f.returned, 3);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(f.rc[i], LG_ECANCELED);
	}
	lg_cond_free(f.cv);
}

static void run_from_inside(void *arg)
{
	struct blocked_fixture *f = arg;
	f->run_rc = lg_runtime_run(f->rt);
}

Test(runtime, run_from_inside_a_coroutine_is_ebusy)
{
	struct blocked_fixture f = {.run_rc = -1};
	f.rt = rt_new();
	spawn_detached(f.rt, run_from_inside, &f);
	cr_assert_eq(lg_runtime_run(f.rt), 0);
	cr_expect_eq(f.run_rc, LG_EBUSY);
	lg_runtime_free(f.rt);
}

struct reenter_fixture {
	struct lg_runtime *rt;
	struct lg_cond *cv;
	int run_rc;
	int wait_rc;
};

static void reenter_on_timer(uv_timer_t *timer)
{
	struct reenter_fixture *f = timer->data;
	f->run_rc = lg_runtime_run(f->rt);
	f->wait_rc = lg_cond_wait(f->cv, lg_deadline_in(1));
}

/*
 * runtime.h: lg_runtime_run gives LG_EBUSY "when called from a coroutine or loop callback",
 * and blocking calls must not run the loop from one (uv_run is not reentrant). loop_depth
 * only counts the scheduler's own idle callback, so from any other callback on the loop both
 * calls nest uv_run() and succeed. Enable this test with the fix.
 */
Test(runtime, calls_from_a_loop_callback_do_not_reenter_the_loop)
{
	uv_loop_t loop;
	cr_assert_eq(uv_loop_init(&loop), 0);
	struct reenter_fixture f = {.run_rc = -1, .wait_rc = -1};
	cr_assert_eq(lg_runtime_new(&loop, NULL, &f.rt), 0);
	f.cv = cond_new(f.rt);
	uv_timer_t timer;
	cr_assert_eq(uv_timer_init(&loop, &timer), 0);
	timer.data = &f;
	cr_assert_eq(uv_timer_start(&timer, reenter_on_timer, 1, 0), 0);
	struct slow_fixture slow = {.ms = 20};
	spawn_detached(f.rt, slow_body, &slow);
	cr_expect_eq(lg_runtime_run(f.rt), 0);
	cr_expect_eq(f.run_rc, LG_EBUSY, "lg_runtime_run from a timer callback gave %d", f.run_rc);
	cr_expect_eq(f.wait_rc, LG_EBUSY, "lg_cond_wait from a timer callback gave %d", f.wait_rc);
	uv_close((uv_handle_t *)&timer, NULL);
	lg_cond_free(f.cv);
	lg_runtime_free(f.rt);
	cr_expect_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	cr_expect_eq(uv_loop_close(&loop), 0);
}

Test(runtime, free_cancels_parked_coroutines_and_frees_everything)
{
	alloc_count_install(-1);
	struct blocked_fixture f = {0};
	struct blocked_arg args[3];
	f.rt = rt_new();
	f.cv = cond_new(f.rt);
	blocked_spawn_three(&f, args);
	/* Park them: a join from the body runs the loop until this sleeper is done. */
	struct slow_fixture slow = {.ms = 5};
	cr_assert_eq(lg_coro_join(spawn(f.rt, slow_body, &slow), LG_DEADLINE_NONE), 0);
	cr_assert_eq(f.returned, 0);
	lg_runtime_free(f.rt);
	cr_expect_eq(f.returned, 3);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(f.rc[i], LG_ECANCELED, "waiter %d saw %d", i, f.rc[i]);
	}
	lg_cond_free(f.cv);
	long live = alloc_count.live;
	lg_set_allocator(NULL);
	cr_expect_eq(live, 0, "%ld allocations leaked", live);
}

Test(runtime, free_cancels_coroutines_that_never_ran)
{
	alloc_count_install(-1);
	struct blocked_fixture f = {0};
	struct blocked_arg args[3];
	f.rt = rt_new();
	f.cv = cond_new(f.rt);
	blocked_spawn_three(&f, args);
	lg_runtime_free(f.rt);
	cr_expect_eq(f.returned, 3);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(f.rc[i], LG_ECANCELED);
	}
	lg_cond_free(f.cv);
	long live = alloc_count.live;
	lg_set_allocator(NULL);
	cr_expect_eq(live, 0, "%ld allocations leaked", live);
}

struct own_loop_fixture {
	struct fd_fixture fd;
	struct lg_cond *cv;
	int cond_rc;
	struct sleep_arg sleeper;
	struct trace log;
};

static void own_loop_fd_waiter(void *arg)
{
	struct own_loop_fixture *f = arg;
	f->fd.rc = lg_wait_fd(f->fd.fds[0], UV_READABLE, LG_DEADLINE_NONE, &f->fd.revents);
}

static void own_loop_cond_waiter(void *arg)
{
	struct own_loop_fixture *f = arg;
	f->cond_rc = lg_cond_wait(f->cv, lg_deadline_in(60 * 1000));
}

Test(runtime, caller_loop_has_no_handles_left_after_free)
{
	uv_loop_t loop;
	cr_assert_eq(uv_loop_init(&loop), 0);
	struct own_loop_fixture f = {.fd = {.rc = -1}, .cond_rc = -1};
	pipe_open(&f.fd);
	struct lg_runtime *rt = NULL;
	struct lg_runtime_config config = {.stack_size = 64 * 1024, .stack_cache = 1};
	cr_assert_eq(lg_runtime_new(&loop, &config, &rt), 0);
	cr_assert_eq(lg_runtime_loop(rt), &loop);
	f.cv = cond_new(rt);

	spawn_detached(rt, own_loop_fd_waiter, &f);   /* a uv_poll, active until canceled */
	spawn_detached(rt, own_loop_cond_waiter, &f); /* a deadline in the timer heap */
	f.sleeper = (struct sleep_arg){&f.log, 5, -1, 0};
	cr_assert_eq(lg_coro_join(spawn(rt, sleep_body, &f.sleeper), LG_DEADLINE_NONE), 0);
	cr_expect_eq(f.sleeper.rc, 0);
	cr_expect_eq(f.fd.rc, -1, "the fd waiter returned early");
	cr_expect_eq(f.cond_rc, -1, "the cond waiter returned early");

	lg_runtime_free(rt);
	cr_expect_eq(f.fd.rc, LG_ECANCELED);
	cr_expect_eq(f.cond_rc, LG_ECANCELED);
	cr_expect_eq(uv_loop_alive(&loop), 0, "the runtime left active handles behind");
	cr_expect_eq(uv_loop_close(&loop), 0, "the runtime left handles open on the loop");
	lg_cond_free(f.cv);
	pipe_close(&f.fd);
}

/* Stack guard page. */

#define OVERFLOW_STACK (64 * 1024)
#define OVERFLOW_SLACK (16 * 1024)

static uintptr_t overflow_top; /* an address near the top of the coroutine's stack */
static uintptr_t overflow_page;
static volatile unsigned long overflow_limit = ~0UL;

/*
 * Runs on the alternate stack. The fault must lie just below the coroutine's usable stack
 * (the guard page); anywhere else means the overflow ran past where a guard should be.
 * Installing it replaces ASan's own SEGV report (ASan's default handle_segv=1 allows that),
 * so the test behaves the same in the sanitizer build: death by SIGSEGV, or exit status 3.
 * Frames stay well under a page, so the recursion cannot step over the guard.
 */
static void overflow_on_segv(int sig, siginfo_t *info, void *uctx)
{
	(void)uctx;
	uintptr_t addr = (uintptr_t)info->si_addr;
	uintptr_t low = overflow_top - OVERFLOW_STACK - overflow_page;
	uintptr_t high = overflow_top - OVERFLOW_STACK + OVERFLOW_SLACK;
	if (addr < low || addr >= high) {
		_exit(3);
	}
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL); /* the faulting access repeats and kills the process */
}

__attribute__((noinline)) static unsigned long overflow_recurse(unsigned long depth)
{
	volatile char frame[512];
	frame[0] = (char)depth;
	frame[sizeof(frame) - 1] = (char)depth;
	if (depth >= overflow_limit) {
		return depth;
	}
	return overflow_recurse(depth + 1) + (unsigned long)frame[0] + frame[sizeof(frame) - 1];
}

static void overflow_body(void *arg)
{
	volatile char probe = 0;
	overflow_top = (uintptr_t)&probe;
	*(unsigned long *)arg = overflow_recurse(0);
}

Test(runtime, stack_overflow_faults_on_the_guard_page, .signal = SIGSEGV)
{
	static char altstack[64 * 1024];
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
	cr_assert_eq(sigaltstack(&ss, NULL), 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = overflow_on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	overflow_page = (uintptr_t)sysconf(_SC_PAGESIZE);

	struct lg_runtime *rt = NULL;
	struct lg_runtime_config config = {.stack_size = OVERFLOW_STACK};
	cr_assert_eq(lg_runtime_new(NULL, &config, &rt), 0);
	unsigned long depth = 0;
	spawn_detached(rt, overflow_body, &depth);
	lg_runtime_run(rt);
	/* Not reached: the recursion never ends before the stack does. */
	lg_runtime_free(rt);
	cr_assert_fail("recursion of depth %lu did not fault", depth);
}

/* Allocation hook. */

static void nop_body(void *arg)
{
	(*(int *)arg)++;
}

Test(runtime, spawn_fails_with_enomem_and_leaks_nothing)
{
	alloc_count_install(-1);
	struct lg_runtime *rt = rt_new();
	long live = alloc_count.live;
	int runs = 0;

	alloc_count.fail_from = alloc_count.calls; /* every allocation from now on fails */
	struct lg_coro *c = (struct lg_coro *)&runs;
	cr_expect_eq(lg_coro_spawn(rt, nop_body, &runs, &c), LG_ENOMEM);
	cr_expect_eq(c, (struct lg_coro *)&runs, "*out written on failure");
	cr_expect_eq(lg_coro_spawn(rt, nop_body, &runs, NULL), LG_ENOMEM);
	cr_expect_eq(alloc_count.live, live, "failed spawns leaked");

	alloc_count.fail_from = -1;
	cr_assert_eq(lg_coro_spawn(rt, nop_body, &runs, &c), 0);
	cr_assert_eq(lg_coro_join(c, LG_DEADLINE_NONE), 0);
	cr_expect_eq(runs, 1, "a failed spawn ran its function");
	lg_runtime_free(rt);
	live = alloc_count.live;
	lg_set_allocator(NULL);
	cr_expect_eq(live, 0, "%ld allocations leaked", live);
}

Test(runtime, spawn_fails_with_enomem_when_no_stack_can_be_mapped)
{
	alloc_count_install(-1);
	struct lg_runtime *rt = NULL;
	struct lg_runtime_config config = {.stack_size = (size_t)1 << 60};
	cr_assert_eq(lg_runtime_new(NULL, &config, &rt), 0);
	long live = alloc_count.live;
	int runs = 0;
	cr_expect_eq(lg_coro_spawn(rt, nop_body, &runs, NULL), LG_ENOMEM);
	cr_expect_eq(alloc_count.live, live, "the coroutine of a failed spawn leaked");
	lg_runtime_free(rt);
	cr_expect_eq(runs, 0);
	live = alloc_count.live;
	lg_set_allocator(NULL);
	cr_expect_eq(live, 0, "%ld allocations leaked", live);
}

struct heap_fail_fixture {
	struct lg_cond *cv;
	int sleep_rc;
	int wait_rc;
};

static void heap_fail_body(void *arg)
{
	struct heap_fail_fixture *f = arg;
	alloc_count.fail_from = alloc_count.calls; /* the timer heap cannot grow */
	f->sleep_rc = lg_sleep(5);
	f->wait_rc = lg_cond_wait(f->cv, lg_deadline_in(5));
	alloc_count.fail_from = -1;
}

/*
 * timer_heap.c promises that a heap that cannot grow fails the operation "instead of waiting
 * without a deadline", but lg__park() ignores lg__timer_start()'s result (sched.c, the
 * deadline arm in lg__park): the sleep never ends and lg_runtime_run() reports LG_EBUSY.
 * Enable this test with the fix.
 */
Test(runtime, deadline_wait_fails_when_the_timer_heap_cannot_grow)
{
	alloc_count_install(-1);
	struct heap_fail_fixture f = {.sleep_rc = -1, .wait_rc = -1};
	struct lg_runtime *rt = rt_new();
	f.cv = cond_new(rt);
	spawn_detached(rt, heap_fail_body, &f);
	int run_rc = lg_runtime_run(rt);
	lg_runtime_free(rt);
	lg_cond_free(f.cv);
	long live = alloc_count.live;
	lg_set_allocator(NULL);
	cr_expect_eq(run_rc, 0, "a deadline wait hung (lg_runtime_run gave %d)", run_rc);
	cr_expect_eq(f.sleep_rc, LG_ENOMEM);
	cr_expect_eq(f.wait_rc, LG_ENOMEM);
	cr_expect_eq(live, 0, "%ld allocations leaked", live);
}

Test(runtime, constructors_fail_cleanly_at_every_allocation)
{
	long failures = 0;
	for (long n = 0;; n++) {
		alloc_count_install(n);
		struct lg_runtime *rt = NULL;
		int rc = lg_runtime_new(NULL, NULL, &rt);
		struct lg_cond *cv = NULL;
		struct lg_chan *ch = NULL;
		if (rc == 0) {
			rc = lg_cond_new(rt, &cv);
		}
		if (rc == 0) {
			rc = lg_chan_new(rt, 4, &ch);
		}
		lg_chan_free(ch);
		lg_cond_free(cv);
		lg_runtime_free(rt);
		long live = alloc_count.live;
		lg_set_allocator(NULL);
		cr_assert_eq(live, 0, "failing allocation %ld: %ld allocations leaked", n, live);
		if (rc == 0) {
			break;
		}
		cr_assert_eq(rc, LG_ENOMEM, "failing allocation %ld gave %d", n, rc);
		failures++;
	}
	cr_expect_geq(failures, 4, "runtime, loop, stack cache, cond, channel, buffer");
}

/* Clock helpers. */

Test(runtime, deadline_in_saturates)
{
	uint64_t before = lg_now_ms();
	uint64_t d = lg_deadline_in(1000);
	cr_expect_geq(d, before + 1000);
	cr_expect_lt(d, before + 1000 + 10 * 1000);
	cr_expect_eq(lg_deadline_in(UINT64_MAX), LG_DEADLINE_NONE);
	cr_expect_eq(lg_deadline_in(UINT64_MAX - 1), LG_DEADLINE_NONE);
}
