/* Pool policy without a loop: picking a connection, reconnect backoff, wait histogram. */
#include <criterion/criterion.h>

#include <libguard/pool.h>

#include "pool_policy.h"

Test(pool_policy, picks_least_loaded_usable_with_room)
{
	struct lg__pool_view v[4] = {{5, true}, {2, false}, {3, true}, {3, true}};
	cr_assert_eq(lg__pool_pick(v, 4, 10), 2, "fewest in flight among usable; ties: first");
	cr_assert_eq(lg__pool_pick(v, 4, 3), -1, "3 in flight is full when cap is 3");
	cr_assert_eq(lg__pool_pick(v, 4, 4), 2);
	v[2].usable = false;
	cr_assert_eq(lg__pool_pick(v, 4, 4), 3);
	cr_assert_eq(lg__pool_pick(v, 0, 4), -1);
	struct lg__pool_view idle[3] = {{0, true}, {0, true}, {0, true}};
	cr_assert_eq(lg__pool_pick(idle, 3, 1), 0, "light load stays on the first connection");
}

Test(pool_policy, backoff_doubles_with_bounded_jitter)
{
	cr_assert_eq(lg__pool_backoff_ms(0, 50, 5000, 7), 0);
	for (uint32_t rnd = 0; rnd < 1000; rnd += 37) {
		uint64_t d1 = lg__pool_backoff_ms(1, 50, 5000, rnd);
		uint64_t d3 = lg__pool_backoff_ms(3, 50, 5000, rnd);
		uint64_t d20 = lg__pool_backoff_ms(20, 50, 5000, rnd);
		uint64_t d200 = lg__pool_backoff_ms(200, 50, 5000, rnd);
		cr_assert(d1 >= 25 && d1 <= 50, "%lu", (unsigned long)d1);
		cr_assert(d3 >= 100 && d3 <= 200, "%lu", (unsigned long)d3);
		cr_assert(d20 >= 2500 && d20 <= 5000, "capped: %lu", (unsigned long)d20);
		cr_assert(d200 >= 2500 && d200 <= 5000, "no overflow: %lu", (unsigned long)d200);
	}
	cr_assert_neq(lg__pool_backoff_ms(4, 50, 5000, 1), lg__pool_backoff_ms(4, 50, 5000, 300),
		      "jitter spreads clients");
}

Test(pool_policy, wait_histogram_buckets)
{
	cr_assert_eq(lg__pool_wait_bucket(0), 0);
	cr_assert_eq(lg__pool_wait_bucket(10), 0);
	cr_assert_eq(lg__pool_wait_bucket(11), 1);
	cr_assert_eq(lg__pool_wait_bucket(1000), 2);
	cr_assert_eq(lg__pool_wait_bucket(1001), 3);
	cr_assert_eq(lg__pool_wait_bucket(10000000), 6);
	cr_assert_eq(lg__pool_wait_bucket(10000001), 7);
	cr_assert_eq(lg__pool_wait_bucket(UINT64_MAX), 7);
	cr_assert_eq(lg_pool_wait_bucket_bound(7), UINT64_MAX);
	cr_assert_eq(lg_pool_wait_bucket_bound(2), 1000);
	for (unsigned b = 0; b + 1 < LG_POOL_WAIT_BUCKETS; b++) {
		cr_assert_eq(lg__pool_wait_bucket(lg_pool_wait_bucket_bound(b)), b);
		cr_assert_eq(lg__pool_wait_bucket(lg_pool_wait_bucket_bound(b) + 1), b + 1);
	}
}
