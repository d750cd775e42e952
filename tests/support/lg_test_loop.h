/*
 * A runtime on a loop the test owns, and the check that freeing the runtime leaves that loop
 * empty. Header-only because it asserts with Criterion (include <criterion/criterion.h>
 * first); the support library itself does not link Criterion.
 */
#ifndef LG_TEST_LOOP_H
#define LG_TEST_LOOP_H

#include <uv.h>

#include <libguard/runtime.h>

static uv_loop_t lg_test_loop;

static inline struct lg_runtime *runtime_on_own_loop(void)
{
	cr_assert_eq(uv_loop_init(&lg_test_loop), 0);
	struct lg_runtime *rt;
	cr_assert_eq(lg_runtime_new(&lg_test_loop, NULL, &rt), 0);
	return rt;
}

/* Frees rt and checks nothing was left behind on the loop. */
static inline void runtime_free_checked(struct lg_runtime *rt)
{
	lg_runtime_free(rt);
	uv_run(&lg_test_loop, UV_RUN_NOWAIT);
	cr_assert_eq(uv_loop_alive(&lg_test_loop), 0, "handles left on the loop");
	cr_assert_eq(uv_loop_close(&lg_test_loop), 0);
}

#endif
