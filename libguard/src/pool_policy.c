/* Pure pool policy (see pool_policy.h); no loop, no sockets. */
#include "pool_policy.h"

#include "libguard/pool.h"

int lg__pool_pick(const struct lg__pool_view *v, size_t n, unsigned cap)
{
	int best = -1;
	for (size_t i = 0; i < n; i++) {
		if (lg__pool_prefer(&v[i], best < 0 ? NULL : &v[best], cap)) {
			best = (int)i;
		}
	}
	return best;
}

uint64_t lg__pool_backoff_ms(unsigned failures, uint64_t initial, uint64_t max, uint32_t rnd)
{
	if (failures == 0) {
		return 0;
	}
	uint64_t d = initial;
	for (unsigned i = 1; i < failures && d < max; i++) {
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	}
	if (d > max) {
		d = max;
	}
	uint64_t half = d / 2;
	return half + (uint64_t)rnd % (d - half + 1);
}

static const uint64_t wait_bounds[LG_POOL_WAIT_BUCKETS] = {
    10, 100, 1000, 10000, 100000, 1000000, 10000000, UINT64_MAX,
};

unsigned lg__pool_wait_bucket(uint64_t us)
{
	unsigned i = 0;
	while (i + 1 < LG_POOL_WAIT_BUCKETS && us > wait_bounds[i]) {
		i++;
	}
	return i;
}

uint64_t lg__pool_wait_bound(unsigned bucket)
{
	return bucket < LG_POOL_WAIT_BUCKETS ? wait_bounds[bucket] : UINT64_MAX;
}
