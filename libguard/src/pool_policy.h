/* Pure pool policy: which connection takes a statement, reconnect backoff, wait histogram. */
#ifndef LG_POOL_POLICY_H
#define LG_POOL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the picker needs to know of one connection. */
struct lg__pool_view {
	unsigned in_flight;
	bool usable; /* connected, not pinned, reserved, retiring or lost */
};

/*
 * Index of the usable connection with the fewest statements in flight, provided it has
 * fewer than cap; ties go to the lowest index (keeps traffic on few connections when load is
 * light, which makes segments fuller). -1 when none has room.
 */
int lg__pool_pick(const struct lg__pool_view *v, size_t n, unsigned cap);

/* The rule lg__pool_pick applies to each candidate, for callers that scan in place. */
static inline bool lg__pool_prefer(const struct lg__pool_view *cand,
				   const struct lg__pool_view *best, unsigned cap)
{
	return cand->usable && cand->in_flight < cap &&
	       (best == NULL || cand->in_flight < best->in_flight);
}

/*
 * Delay before reconnect attempt number failures (1 = after the first failure):
 * d = min(max, initial * 2^(failures-1)), returned as d/2 + rnd % (d/2 + 1) ("equal jitter"),
 * so a crowd of clients spreads out but never retries sooner than half the nominal delay.
 */
uint64_t lg__pool_backoff_ms(unsigned failures, uint64_t initial, uint64_t max, uint32_t rnd);

/* Histogram bucket (0..7) for an acquire wait of us microseconds; bounds 10^1..10^7, +Inf. */
unsigned lg__pool_wait_bucket(uint64_t us);
uint64_t lg__pool_wait_bound(unsigned bucket);

#endif
