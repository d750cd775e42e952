/*
 * The online checker of the chaos suite: judges every read a reader makes through lg_cache
 * against what the reflector had processed before that read started.
 *
 * "Processed". The capture trigger inserts a change's outbox row (lifeguard.outbox, with the
 * row's new lg_version as its version) in the writer's own transaction, and the leader deletes
 * it in the transaction that commits its batch, after the batch's Redis writes. A confirmer
 * thread runs, again and again, one statement (one snapshot) on the primary:
 *
 *     every row whose lg_version is below the lowest version still in the outbox
 *
 * When row R shows version V in that snapshot and no outbox row of version <= V is left, the
 * change that wrote V (committed: it is visible) had its outbox row deleted, so a leader had
 * written it to Redis and committed the batch: V is processed. The confirmer raises R's floor
 * to V once the statement returned. The rule is conservative (any pending change of a lower
 * version, on any row, holds every floor back), never early.
 *
 * The guarantee (docs/data-contract.md, "The guarantee"): once the change with version V of a
 * row is processed, no read returns a value of that row older than V. A reader takes R's
 * floor before it starts a read; whatever the read returns must carry a version >= that floor.
 * The writers never delete (rows are updated and upserted only), so every read must find its
 * row: LG_ENOTFOUND is a violation too. Errors (PostgreSQL down) are counted, not judged.
 *
 * Documented exemptions ("Things that go back in time"), as windows the test opens and
 * closes; a read that overlaps an open or closed window is counted (exempt, and
 * exempt_stale when it was older than its floor) but not judged:
 * - Redis restarted from an older RDB: a snapshot value stays readable until the leader
 *   notices the new run id (poll_interval_ms) and deletes every cached key, and a fill racing
 *   a fence the snapshot lost can land until the second pass, fence_ttl_ms later. The window
 *   runs from the kill of Redis to the moment the leader logged that second pass.
 * - PostgreSQL failover to a replica that lost commits: processed versions are gone from the
 *   history (the new primary never had them). The window runs from the kill -9 of the primary
 *   to the end of the promotion, and every floor is reset (a new "era") at both ends: floors
 *   are then derived again from the new primary's outbox. After that the check is strict again:
 *   the contract says the leader raises the sequence and deletes phantom values before it
 *   processes a change of the new history, so a processed change of the new primary must be
 *   read as such. Phantom values (versions of lost commits) above every floor are not caught
 *   online; the end check catches any that remain.
 * No other exemption: a killed or paused leader, or Redis refusing writes, must never let a
 * read go back below a processed change.
 */
#ifndef CHAOS_ONLINE_CHECK_H
#define CHAOS_ONLINE_CHECK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OC_MAX_ROWS    32
#define OC_MAX_WINDOWS 16

struct oc_window {
	int64_t start_ms;
	int64_t end_ms; /* INT64_MAX while open */
};

struct oc_stats {
	uint64_t judged;      /* reads compared against their floor */
	uint64_t above_floor; /* judged reads with a floor > 0 */
	uint64_t errors;      /* reads that failed (not judged) */
	uint64_t exempt;      /* reads overlapping a window or an era change */
	uint64_t exempt_stale;
	uint64_t violations;
	uint64_t confirms; /* confirmer statements answered */
};

struct oc {
	char dsn[400];
	/* Row identities as the confirmer's statement names them ("i:1", "s:1768478400"). */
	char idents[OC_MAX_ROWS][48];
	size_t nrows;
	pthread_mutex_t mu;
	int64_t floors[OC_MAX_ROWS];
	int64_t max_floor; /* highest floor of the current era */
	uint64_t era;
	struct oc_window windows[OC_MAX_WINDOWS];
	size_t nwindows;
	char phase[48];
	struct oc_stats st;
	atomic_bool stop;
	pthread_t thread;
	bool running;
};

/* Sets up c (static storage) for rows named by idents. */
void oc_init(struct oc *c, const char *dsn, size_t nrows, const char *const *idents);
/* Starts / stops the confirmer thread. */
bool oc_start(struct oc *c);
void oc_stop(struct oc *c);

/* The phase named in violation reports. */
void oc_set_phase(struct oc *c, const char *phase);
/* Opens an exemption window now / closes the open one now. */
void oc_window_open(struct oc *c);
void oc_window_close(struct oc *c);
/* Forgets every floor (a new era: the history was cut by a failover). */
void oc_reset_floors(struct oc *c);
int64_t oc_max_floor(struct oc *c);

/* Before a read of row: its floor and the era, and the start time. */
struct oc_read {
	size_t row;
	int64_t floor;
	uint64_t era;
	int64_t start_ms;
};
void oc_read_begin(struct oc *c, size_t row, struct oc_read *rd);
/*
 * After the read: rc is lg_cache_get's answer, version/from_cache/json its row (json may be
 * NULL). Counts, and prints a violation (at most 20) with the phase and the values.
 */
void oc_read_end(struct oc *c, const struct oc_read *rd, int rc, int64_t version, bool from_cache,
		 const char *json, const char *spelling);

/* A copy of the counters. */
void oc_stats(struct oc *c, struct oc_stats *out);

int64_t oc_now_ms(void);

#endif
