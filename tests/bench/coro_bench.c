/*
 * coro_bench: what a libguard coroutine costs, next to a POSIX thread.
 *
 * Measured in one run, each as the median of BENCH_REPEATS timed runs after one warm-up run
 * (CLOCK_MONOTONIC around the measured loop only; runtime creation and teardown excluded):
 *
 *   switch_ns   Two coroutines ping-pong with lg_yield() for N rounds each. One lg_yield() is
 *               two context switches (coroutine -> scheduler, scheduler -> next coroutine), so
 *               the run makes 2 * 2 * N switches; switch_ns = elapsed / (4 * N). It includes
 *               the scheduler's share of each loop turn (one libuv turn per round of both
 *               coroutines), because that is what a yield costs a program.
 *   spawn_ns    A driver coroutine spawns a coroutine that does nothing and joins it, N times
 *               in a row: elapsed / N. Each spawn+join is one allocation, one stack taken from
 *               the runtime's cache, four switches and two loop turns.
 *   thread_spawn_ns  pthread_create() of a function that does nothing plus pthread_join(),
 *               N / 10 times in a row (at least 100): elapsed / count.
 *   spawn_ratio thread_spawn_ns / spawn_ns.
 *
 * The table adds context rows that are not part of the JSON: a lone coroutine yielding (one
 * loop turn per yield), spawn+join called from the plain thread (lg_coro_join then runs the
 * loop from outside, through a helper coroutine), spawn of a batch of 64 then join of all,
 * and, with the fcontext backend, a bare jump_fcontext ping-pong (the floor without the
 * scheduler or libuv).
 *
 * Usage: coro_bench [--iterations N] [--json]
 * With --json stdout carries exactly one JSON object and nothing else.
 */
#include "libguard/runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_REPEATS            5
#define BENCH_DEFAULT_ITERATIONS 200000L
#define BENCH_BATCH              64

static uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void bench_die(const char *what, int rc)
{
	fprintf(stderr, "coro_bench: %s: %s\n", what, lg_strerror(rc));
	exit(1);
}

static struct lg_runtime *bench_runtime(void)
{
	struct lg_runtime *rt;
	int rc = lg_runtime_new(NULL, NULL, &rt);
	if (rc != 0) {
		bench_die("lg_runtime_new", rc);
	}
	return rt;
}

static void bench_run(struct lg_runtime *rt)
{
	int rc = lg_runtime_run(rt);
	if (rc != 0) {
		bench_die("lg_runtime_run", rc);
	}
}

static int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Runs fn once to warm up, then BENCH_REPEATS times; returns the median ns per unit. */
static double bench_median(double (*fn)(long n), long n)
{
	double samples[BENCH_REPEATS];
	fn(n);
	for (int i = 0; i < BENCH_REPEATS; i++) {
		samples[i] = fn(n);
	}
	qsort(samples, BENCH_REPEATS, sizeof(samples[0]), bench_cmp);
	return samples[BENCH_REPEATS / 2];
}

/* Context switches. */

static void bench_yielder(void *arg)
{
	long rounds = *(const long *)arg;
	for (long i = 0; i < rounds; i++) {
		lg_yield();
	}
}

static double bench_yield_with(int coroutines, long rounds)
{
	struct lg_runtime *rt = bench_runtime();
	for (int i = 0; i < coroutines; i++) {
		int rc = lg_coro_spawn(rt, bench_yielder, &rounds, NULL);
		if (rc != 0) {
			bench_die("lg_coro_spawn", rc);
		}
	}
	uint64_t t0 = bench_now_ns();
	bench_run(rt);
	uint64_t t1 = bench_now_ns();
	lg_runtime_free(rt);
	/* Each lg_yield() is a switch away from the coroutine and a switch back into one. */
	return (double)(t1 - t0) / (2.0 * coroutines * (double)rounds);
}

static double bench_switch_pingpong(long rounds)
{
	return bench_yield_with(2, rounds);
}

static double bench_switch_alone(long rounds)
{
	return bench_yield_with(1, rounds);
}

#if defined(LG_CORO_FCONTEXT)
/* boost.context's C entry points: the floor under any fcontext scheduler. */
typedef void *fcontext_t;
typedef struct {
	fcontext_t fctx;
	void *data;
} transfer_t;
extern transfer_t jump_fcontext(fcontext_t const to, void *vp);
extern fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static void bench_raw_partner(transfer_t t)
{
	for (;;) {
		t = jump_fcontext(t.fctx, NULL);
	}
}

static double bench_switch_raw(long rounds)
{
	size_t size = 64 * 1024;
	char *stack = malloc(size);
	if (stack == NULL) {
		bench_die("malloc", LG_ENOMEM);
	}
	fcontext_t partner = make_fcontext(stack + size, size, bench_raw_partner);
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < rounds; i++) {
		partner = jump_fcontext(partner, NULL).fctx;
	}
	uint64_t t1 = bench_now_ns();
	free(stack); /* the partner is parked for good; its stack is simply dropped */
	return (double)(t1 - t0) / (2.0 * (double)rounds);
}
#endif

/* Coroutine spawn + join. */

static void bench_nop(void *arg)
{
	(void)arg;
}

struct bench_spawner {
	struct lg_runtime *rt;
	long n;
	int rc;
};

static void bench_spawn_serial_body(void *arg)
{
	struct bench_spawner *s = arg;
	for (long i = 0; i < s->n && s->rc == 0; i++) {
		struct lg_coro *c;
		s->rc = lg_coro_spawn(s->rt, bench_nop, NULL, &c);
		if (s->rc == 0) {
			s->rc = lg_coro_join(c, LG_DEADLINE_NONE);
		}
	}
}

static void bench_spawn_batch_body(void *arg)
{
	struct bench_spawner *s = arg;
	struct lg_coro *batch[BENCH_BATCH];
	for (long done = 0; done < s->n && s->rc == 0; done += BENCH_BATCH) {
		int k = 0;
		for (; k < BENCH_BATCH && s->rc == 0; k++) {
			s->rc = lg_coro_spawn(s->rt, bench_nop, NULL, &batch[k]);
		}
		k -= s->rc != 0;
		for (int i = 0; i < k; i++) {
			int rc = lg_coro_join(batch[i], LG_DEADLINE_NONE);
			s->rc = s->rc != 0 ? s->rc : rc;
		}
	}
}

static double bench_spawn_in(void (*body)(void *arg), long n)
{
	struct bench_spawner s = {bench_runtime(), n, 0};
	int rc = lg_coro_spawn(s.rt, body, &s, NULL);
	if (rc != 0) {
		bench_die("lg_coro_spawn", rc);
	}
	uint64_t t0 = bench_now_ns();
	bench_run(s.rt);
	uint64_t t1 = bench_now_ns();
	lg_runtime_free(s.rt);
	if (s.rc != 0) {
		bench_die("spawn+join", s.rc);
	}
	return (double)(t1 - t0) / (double)n;
}

static double bench_spawn_serial(long n)
{
	return bench_spawn_in(bench_spawn_serial_body, n);
}

static double bench_spawn_batch(long n)
{
	long batches = (n + BENCH_BATCH - 1) / BENCH_BATCH;
	return bench_spawn_in(bench_spawn_batch_body, batches * BENCH_BATCH);
}

static double bench_spawn_outside(long n)
{
	struct lg_runtime *rt = bench_runtime();
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		struct lg_coro *c;
		int rc = lg_coro_spawn(rt, bench_nop, NULL, &c);
		if (rc == 0) {
			rc = lg_coro_join(c, LG_DEADLINE_NONE);
		}
		if (rc != 0) {
			bench_die("spawn+join from the thread", rc);
		}
	}
	uint64_t t1 = bench_now_ns();
	lg_runtime_free(rt);
	return (double)(t1 - t0) / (double)n;
}

/* Threads. */

static void *bench_thread_nop(void *arg)
{
	return arg;
}

static double bench_thread_spawn(long n)
{
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, bench_thread_nop, NULL);
		if (rc != 0) {
			fprintf(stderr, "coro_bench: pthread_create: %s\n", strerror(rc));
			exit(1);
		}
		pthread_join(t, NULL);
	}
	uint64_t t1 = bench_now_ns();
	return (double)(t1 - t0) / (double)n;
}

/* Driver. */

static long bench_parse_iterations(const char *s)
{
	char *end;
	errno = 0;
	long n = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1) {
		fprintf(stderr, "coro_bench: --iterations wants a positive integer, not '%s'\n", s);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	long n = BENCH_DEFAULT_ITERATIONS;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
			n = bench_parse_iterations(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--iterations N] [--json]\n", argv[0]);
			return 2;
		}
	}
	long threads = n / 10 < 100 ? 100 : n / 10;

	double switch_ns = bench_median(bench_switch_pingpong, n);
	double spawn_ns = bench_median(bench_spawn_serial, n);
	double thread_ns = bench_median(bench_thread_spawn, threads);
	double ratio = thread_ns / spawn_ns;

	if (json) {
		printf("{\"switch_ns\":%.1f,\"spawn_ns\":%.1f,\"thread_spawn_ns\":%.1f,"
		       "\"spawn_ratio\":%.1f}\n",
		       switch_ns, spawn_ns, thread_ns, ratio);
		return 0;
	}

	double alone_ns = bench_median(bench_switch_alone, n);
	double batch_ns = bench_median(bench_spawn_batch, n);
	double outside_ns = bench_median(bench_spawn_outside, n);
	printf("coro_bench: median of %d runs; %ld yields per coroutine, %ld spawn+join, "
	       "%ld threads\n",
	       BENCH_REPEATS, n, n, threads);
	printf("a switch is one jump between stacks: each lg_yield() counts as 2 (away and back),\n"
	       "so the ping-pong makes 4 * %ld switches; the loop turn they share is included\n\n",
	       n);
	printf("%-52s %12s\n", "measurement", "ns");
	printf("%-52s %12.1f\n", "switch: 2 coroutines ping-pong, per switch", switch_ns);
	printf("%-52s %12.1f\n", "  (context) 1 coroutine yielding, per switch", alone_ns);
#if defined(LG_CORO_FCONTEXT)
	double raw_ns = bench_median(bench_switch_raw, n * 10);
	printf("%-52s %12.1f\n", "  (context) bare jump_fcontext, per switch", raw_ns);
#endif
	printf("%-52s %12.1f\n", "spawn+join from a coroutine, per coroutine", spawn_ns);
	printf("%-52s %12.1f\n", "  (context) spawn 64 then join 64, per coroutine", batch_ns);
	printf("%-52s %12.1f\n", "  (context) spawn+join from the thread", outside_ns);
	printf("%-52s %12.1f\n", "pthread_create+pthread_join, per thread", thread_ns);
	printf("\n%-52s %12.1f  (target <= 50)\n", "switch_ns", switch_ns);
	printf("%-52s %12.1f  (target >= 20)\n", "spawn_ratio = thread_spawn_ns / spawn_ns", ratio);
	return 0;
}
