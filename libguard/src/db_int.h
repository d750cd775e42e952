/* Internals of the database handle (db.c), its lag samplers (route_lag.c) and sessions
 * (db_session.c). */
#ifndef LG_DB_INT_H
#define LG_DB_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "libguard/db.h"
#include "libguard/pool.h"
#include "libguard/runtime.h"

struct session_ver;

struct lg_session {
	uint64_t token;    /* highest token seen */
	uint64_t token_ms; /* lg_now_ms when a token last arrived */
	bool pinned;       /* a write's token could not be read: primary only until the next */
	int last_source;   /* -2 none, -1 primary, else replica index */
	struct session_ver *vers;
	size_t n, cap; /* cap: a power of two, or 0 */
};

/* The session's token moved to token (a write of ours); clears the pin. */
void lg__session_token(struct lg_session *s, uint64_t token);
/* A write of ours has no token: reads go to the primary until the next one. */
void lg__session_pin(struct lg_session *s);

/* Primary positions the sampler saw lately (route_lag.c): 64 rounds, 6.4 s by default. */
#define LG__LAG_HIST 64

/* One replica: its pool, what the sampler last saw, and what routing did with it. */
struct lg__replica {
	struct lg_dbh *h;
	struct lg_pool *pool; /* Owned */
	char *name;           /* Owned */
	struct lg_coro *sampler;
	/* Last good sample (sampled_ms 0: none yet). */
	uint64_t sampled_ms;
	uint64_t replay_lsn;
	uint64_t lag_bytes;
	uint64_t lag_ms;
	uint64_t replay_age_ms; /* UINT64_MAX: nothing replayed to date it */
	bool standby;           /* pg_is_in_recovery() in the last sample */
	/* The primary's WAL insert position at the start of recent rounds, oldest first from
	 * hist_head (a ring of hist_n entries). */
	uint64_t hist_lsn[LG__LAG_HIST];
	uint64_t hist_ms[LG__LAG_HIST];
	unsigned hist_head, hist_n;
	/* A read failed here after the last good sample: unhealthy until the next one. */
	bool read_failed;
	uint64_t reads, read_failures, sample_failures;
};

struct lg_dbh {
	struct lg_runtime *rt;
	struct lg_pool *primary;
	struct lg_cache *cache;
	uint64_t max_lag_bytes, max_lag_ms;
	uint64_t interval_ms, timeout_ms, max_age_ms;
	unsigned next; /* round-robin start among eligible replicas */
	struct lg_dbh_stats stats;
	size_t n;
	struct lg__replica rep[];
};

/* Starts / stops the sampler coroutine of r (route_lag.c). */
int lg__route_lag_start(struct lg__replica *r);
void lg__route_lag_stop(struct lg__replica *r);

/* Whether r may serve reads now, bounds and tokens aside (route_lag.c). */
bool lg__route_healthy(const struct lg__replica *r, uint64_t now_ms);

#endif
