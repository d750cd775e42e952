/*
 * Deadlines of one runtime: a binary min-heap of lg__timer keyed by absolute time, backed by a
 * single uv_timer armed to the earliest entry. Parking with a deadline costs a heap insert and
 * removal instead of a libuv handle (whose memory could only be freed in a close callback).
 *
 * The uv_timer is re-armed only when an entry is earlier than the time it is armed for, or
 * the heap runs empty: removing the earliest entry (the common case: a reply before its
 * deadline) leaves it armed early, and an early fire finds nothing expired and re-arms. This
 * spares a clock read and a libuv timer update per parked call.
 *
 * The uv_timer fires on the loop's cached clock; the callback re-reads the monotonic clock,
 * runs every expired entry (each callback may start or stop other timers) and re-arms for
 * the rest. An allocation failure while growing the heap is reported by lg__timer_start;
 * callers then fail the operation instead of waiting without a deadline.
 */
#include "runtime_int.h"

#include <assert.h>

#include "alloc_int.h"

void lg__timer_init(struct lg__timer *t, void (*cb)(struct lg__timer *t))
{
	t->heap_index = SIZE_MAX;
	t->cb = cb;
}

bool lg__timer_armed(const struct lg__timer *t)
{
	return t->heap_index != SIZE_MAX;
}

static void heap_set(struct lg_runtime *rt, size_t i, struct lg__heap_slot slot)
{
	rt->heap[i] = slot;
	slot.t->heap_index = i;
}

static void heap_sift_up(struct lg_runtime *rt, size_t i)
{
	struct lg__heap_slot slot = rt->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (slot.when >= rt->heap[parent].when) {
			break;
		}
		heap_set(rt, i, rt->heap[parent]);
		i = parent;
	}
	heap_set(rt, i, slot);
}

static void heap_sift_down(struct lg_runtime *rt, size_t i)
{
	struct lg__heap_slot slot = rt->heap[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= rt->heap_len) {
			break;
		}
		if (child + 1 < rt->heap_len && rt->heap[child + 1].when < rt->heap[child].when) {
			child++;
		}
		if (rt->heap[child].when >= slot.when) {
			break;
		}
		heap_set(rt, i, rt->heap[child]);
		i = child;
	}
	heap_set(rt, i, slot);
}

/* Arms the uv_timer for the earliest entry; stopped when the heap is empty (an armed timer
 * would keep the loop running). */
static void heap_rearm(struct lg_runtime *rt)
{
	if (rt->heap_len == 0) {
		uv_timer_stop(&rt->timer);
		rt->timer_at = 0;
		return;
	}
	uint64_t now = lg_now_ms();
	uint64_t when = rt->heap[0].when;
	rt->timer_at = when > 0 ? when : 1;
	uv_timer_start(&rt->timer, lg__timer_heap_on_fire, when > now ? when - now : 0, 0);
}

int lg__timer_start(struct lg_runtime *rt, struct lg__timer *t, uint64_t when)
{
	if (lg__timer_armed(t)) {
		lg__timer_stop(rt, t);
	}
	if (rt->heap_len == rt->heap_cap) {
		size_t cap = rt->heap_cap == 0 ? 64 : rt->heap_cap * 2;
		struct lg__heap_slot *heap = lg__realloc(rt->heap, cap * sizeof(*heap));
		if (heap == NULL) {
			return LG_ENOMEM;
		}
		rt->heap = heap;
		rt->heap_cap = cap;
	}
	heap_set(rt, rt->heap_len++, (struct lg__heap_slot){when, t});
	heap_sift_up(rt, t->heap_index);
	if (rt->heap[0].t == t && (rt->timer_at == 0 || when < rt->timer_at)) {
		heap_rearm(rt);
	}
	return 0;
}

void lg__timer_stop(struct lg_runtime *rt, struct lg__timer *t)
{
	if (!lg__timer_armed(t)) {
		return;
	}
	size_t i = t->heap_index;
	bool was_first = i == 0;
	t->heap_index = SIZE_MAX;
	struct lg__heap_slot last = rt->heap[--rt->heap_len];
	if (i < rt->heap_len) {
		heap_set(rt, i, last);
		heap_sift_down(rt, i);
		heap_sift_up(rt, last.t->heap_index);
	}
	if (was_first && rt->heap_len == 0) {
		heap_rearm(rt); /* stops the uv_timer; otherwise it stays armed early */
	}
}

void lg__timer_heap_on_fire(uv_timer_t *handle)
{
	struct lg_runtime *rt = handle->data;
	uint64_t now = lg_now_ms();
	rt->timer_at = 0;
	while (rt->heap_len > 0 && rt->heap[0].when <= now) {
		struct lg__timer *t = rt->heap[0].t;
		lg__timer_stop(rt, t);
		t->cb(t);
	}
	heap_rearm(rt);
}

void lg__timer_heap_free(struct lg_runtime *rt)
{
	assert(rt->heap_len == 0);
	lg__free(rt->heap);
	rt->heap = NULL;
	rt->heap_cap = 0;
}
