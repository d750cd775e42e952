/*
 * The end-state checker of the chaos tests: once writes stopped and the outbox drained, every
 * cached key of public.items must tell the truth about its row.
 *
 * What the contract guarantees at that point (libguard/cache_contract.h, docs/data-contract.md):
 * - A row value {"v":V,"row":R} must equal {"v": lg_version, "row": to_jsonb(row)} of the
 *   current row (compared as JSON). An older version is a stale write that landed (a deposed
 *   leader's, a stale fill, a lost refresh); a row value for a row that is gone is a missed
 *   delete.
 * - A tombstone {"v":V,"deleted":true} is correct only when the row does not exist. A
 *   tombstone for an existing row is a violation, not a tolerated leftover: a tombstone is a
 *   value, so the key counts as cached, and the change that (re)created the row after the
 *   delete runs CHECK_OR_FENCE -> "cached" -> REFRESH with the row's own version, which
 *   overwrites any tombstone of a lower version. A tombstone can survive only if its version
 *   is not lower than the row's, i.e. if versions did not grow per row in commit order, and a
 *   reader would then take an existing row for deleted (the tests use a tombstone TTL longer
 *   than the run, so such a tombstone cannot hide by expiring before the check).
 * - An absent key is always fine (never cached, evicted, expired, or lost with Redis).
 */
#ifndef CHAOS_CHECK_H
#define CHAOS_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

struct chaos_check {
	size_t keys;       /* row keys found in Redis */
	size_t rows;       /* row values equal to their row */
	size_t tombstones; /* tombstones of rows that do not exist */
	size_t violations; /* everything else (printed, at most 20) */
};

/*
 * Polls until lifeguard.outbox is empty, reconnecting *db when needed; false after timeout_ms.
 * Claimed rows count too (they are deleted only when their batch commits).
 */
bool chaos_wait_drained(PGconn **db, const char *dsn, int timeout_ms);

/*
 * Compares every key of CHAOS_ROW_PREFIX in Redis with public.items as db sees it now.
 * Prints each violation (key, Redis value, PostgreSQL row) to stderr. Returns false when
 * PostgreSQL or Redis failed (then *out is incomplete).
 */
bool chaos_check_items(PGconn *db, redisContext *rc, struct chaos_check *out);

#endif
