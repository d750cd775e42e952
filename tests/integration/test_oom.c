/*
 * Out of memory at every allocation of a realistic sequence, against a real server: a
 * connection with concurrent parameterized statements, then a pool with a statement and a
 * transaction. The allocation hook (libguard/alloc.h) fails the Nth allocation, for every N
 * until the sequence runs without reaching it, in two modes: that allocation alone fails
 * (recovery paths), or it and every later one fails (nothing may spin or wait forever).
 *
 * Every call must return: success with the right answer, or an error code. None may report
 * success with a wrong or missing result, and the loop must end empty (ASan's leak check
 * covers what was allocated). The test's own timeout catches a spin.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <libguard/libguard.h>

#include "lg_test.h"
#include "lg_test_loop.h"

static long fail_at = -1; /* index of the allocation that fails; -1 = none */
static bool fail_after;   /* every allocation from fail_at on fails too */
static long allocs;

static bool should_fail(void)
{
	long n = allocs++;
	return fail_at >= 0 && (n == fail_at || (fail_after && n > fail_at));
}

static void *oom_malloc(size_t size, void *ud)
{
	(void)ud;
	return should_fail() ? NULL : malloc(size);
}

static void *oom_realloc(void *p, size_t size, void *ud)
{
	(void)ud;
	return should_fail() ? NULL : realloc(p, size);
}

static void oom_free(void *p, void *ud)
{
	(void)ud;
	free(p);
}

struct stmt_job {
	struct lg_conn *conn;
	int value;
	int rc;
};

static void stmt_worker(void *arg)
{
	struct stmt_job *j = arg;
	struct lg_param p = lg_param_int32(j->value);
	struct lg_result *res = NULL;
	struct lg_error err;
	struct lg_query_opts o = {.deadline = lg_deadline_in(10000)};
	j->rc = lg_conn_query(j->conn, "SELECT $1::int4 + 1", &p, 1, &o, &res, &err);
	if (j->rc == 0) {
		int64_t v = -1;
		cr_assert_not_null(res, "success without a result");
		cr_assert_eq(lg_result_int64(res, 0, 0, &v), 0);
		cr_assert_eq(v, j->value + 1, "success with a wrong answer");
	} else {
		cr_assert_null(res);
	}
	lg_result_free(res);
}

static void trace(const char *what)
{
	if (getenv("LG_OOM_TRACE") != NULL) {
		fprintf(stderr, "oom:   %s\n", what);
	}
}

static void sequence_in_coro(void *arg)
{
	struct lg_runtime *rt = arg;
	struct lg_error err;
	struct lg_conn *c = NULL;
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	if (lg_conn_new(rt, &cfg, &c, &err) == 0) {
		enum { N = 6 };
		struct stmt_job jobs[N];
		struct lg_coro *co[N];
		int spawned = 0;
		for (int i = 0; i < N; i++) {
			jobs[i] = (struct stmt_job){.conn = c, .value = 100 + i, .rc = -1};
			if (lg_coro_spawn(rt, stmt_worker, &jobs[i], &co[spawned]) == 0) {
				spawned++;
			}
		}
		for (int i = 0; i < spawned; i++) {
			int rc = lg_coro_join(co[i], lg_deadline_in(20000));
			cr_assert_eq(rc, 0, "join: %s", lg_strerror(rc));
		}
		lg_conn_free(c);
	}
	struct lg_pool *pool = NULL;
	struct lg_pool_config pc = {.conninfo = lg_test_pg_dsn(), .min_conns = 1, .max_conns = 1};
	trace("pool_new");
	if (lg_pool_new(rt, &pc, &pool, &err) == 0) {
		trace("pool query");
		struct lg_result *res = NULL;
		struct lg_param p = lg_param_int32(41);
		int rc = lg_pool_query(pool, "SELECT $1::int4 + 1", &p, 1, NULL, &res, &err);
		if (rc == 0) {
			int64_t v = -1;
			cr_assert_eq(lg_result_int64(res, 0, 0, &v), 0);
			cr_assert_eq(v, 42);
		}
		lg_result_free(res);
		struct lg_tx *tx = NULL;
		trace("begin");
		if (lg_pool_begin(pool, NULL, &tx, &err) == 0) {
			rc = lg_tx_exec(tx, "SELECT 1", &err);
			if (rc == 0) {
				lg_tx_commit(tx, &err);
			} else {
				lg_tx_rollback(tx, &err);
			}
		}
		trace("pool_free");
		lg_pool_free(pool);
		trace("freed");
	}
}

static void run_sequence(void)
{
	cr_assert_eq(uv_loop_init(&lg_test_loop), 0);
	struct lg_runtime *rt = NULL;
	if (lg_runtime_new(&lg_test_loop, NULL, &rt) != 0) {
		cr_assert_eq(uv_loop_close(&lg_test_loop), 0);
		return;
	}
	if (lg_coro_spawn(rt, sequence_in_coro, rt, NULL) == 0) {
		int rc = lg_runtime_run(rt);
		cr_assert_eq(rc, 0, "run: %s", lg_strerror(rc));
	}
	runtime_free_checked(rt);
}

static void sweep(bool after)
{
	struct lg_allocator a = {oom_malloc, oom_realloc, oom_free, NULL};
	lg_set_allocator(&a);
	fail_at = -1;
	allocs = 0;
	run_sequence();
	long total = allocs;
	cr_assert_gt(total, 10, "the sequence allocates almost nothing: the hook is not used");
	for (long n = 0; n < total; n++) {
		fail_at = n;
		fail_after = after;
		allocs = 0;
		if (getenv("LG_OOM_TRACE") != NULL) {
			fprintf(stderr, "oom: n=%ld\n", n);
		}
		run_sequence();
	}
	fail_at = -1;
	lg_set_allocator(NULL);
	cr_log_info("%ld allocations, each failed in turn (%s)", total,
		    after ? "and every later one" : "alone");
}

Test(oom, each_allocation_failing_alone, .timeout = 300)
{
	sweep(false);
}

Test(oom, each_allocation_failing_with_all_later_ones, .timeout = 300)
{
	sweep(true);
}
