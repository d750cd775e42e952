/*
 * The workload of the chaos tests on public.items (id int PRIMARY KEY, n bigint, note text):
 *
 * - Writer threads: autocommit UPDATE, upsert (INSERT ... ON CONFLICT DO UPDATE), DELETE, and
 *   small transactions that delete and re-insert a row, on random ids. Writer w owns the ids
 *   congruent to w modulo the number of writers: the writers run concurrently (sequence values
 *   and outbox ids are taken out of commit order across rows) but never race on one row:
 *   an INSERT that re-creates a key while a DELETE statement of it is still running stamps
 *   its lg_version (BEFORE trigger) before it waits for the deleter, whose D version (AFTER
 *   trigger, end of statement) is then higher. That inversion leaves a tombstone over a live
 *   row; it is a known contract bug, reproduced deterministically elsewhere, and random
 *   same-row races would only make these tests flaky.
 * - A filler thread that plays libguard's read-through fill, and Redis evicting cached rows:
 *   now and then it DELs a row key (never a fence: evicting fences is the documented
 *   weakness); otherwise it GETs the row key and, on a miss (and now and then on a hit, as a
 *   reader whose miss just preceded a refresh), reads the row and its lg_version from the
 *   primary in one statement, then runs LG_CACHE_FILL with the key fence and the table fence.
 *   A second filler waits up to 200 ms between its read and its fill, as a slow reader, so
 *   that changes are committed and processed in between and the fences must refuse its fills.
 *   A fill whose read->write time exceeds the fill deadline is dropped, as the contract
 *   requires (fence TTL >= fill deadline).
 *
 * Every thread reconnects by itself when PostgreSQL or Redis restart and drops the operation
 * that was in flight (it never re-sends a fill read before the failure).
 */
#ifndef CHAOS_LOAD_H
#define CHAOS_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#define CHAOS_WRITERS 2
#define CHAOS_FILLERS 2 /* a prompt one, and a slow one that lets changes race its fills */
#define CHAOS_THREADS (CHAOS_WRITERS + CHAOS_FILLERS)

/* Row keys, key fences and the table fence of public.items (default prefixes). */
#define CHAOS_ROW_PREFIX   "lifeguard:model:public.items:"
#define CHAOS_FENCE_PREFIX "lifeguard:fence:public.items:"
#define CHAOS_TABLE_FENCE  "lifeguard:fence:public.items"
#define CHAOS_TERM_KEY     "lifeguard:reflector:term"

struct chaos_load_stats {
	uint64_t writes;       /* statements or transactions committed */
	uint64_t write_errors; /* failed (server down, restarting, ...) */
	uint64_t fills;        /* LG_CACHE_FILL calls answered */
	uint64_t filled;
	uint64_t fenced;
	uint64_t kept;
	uint64_t late;        /* refused by Redis: past the fill deadline on its clock */
	uint64_t fill_errors; /* PostgreSQL or Redis failures, dropped fills */
	uint64_t evictions;   /* row keys the filler deleted, as an eviction would */
};

struct chaos_load {
	char dsn[300];
	int redis_port;
	int n_ids; /* ids 1..n_ids */
	atomic_bool stop;
	pthread_t threads[CHAOS_THREADS];
	size_t started;
	struct chaos_load_stats stats[CHAOS_THREADS]; /* one per thread, read after the join */
};

/* Starts the writers and the filler. Returns false (nothing left running) on failure. */
bool chaos_load_start(struct chaos_load *l, const char *dsn, int redis_port, int n_ids);

/* Stops and joins every thread; *total (may be NULL) receives the summed stats. */
void chaos_load_stop(struct chaos_load *l, struct chaos_load_stats *total);

/*
 * Makes *conn a working connection to dsn: keeps it when healthy, resets or reconnects it
 * otherwise (one attempt). Returns whether it is usable now.
 */
bool chaos_pg_ensure(PGconn **conn, const char *dsn);

#endif
