/*
 * lg_cache: cache-aside reads of rows the reflector keeps coherent (see
 * libguard/cache_contract.h and docs/data-contract.md for the contract and
 * reflector/README.md, "Coherence", for the guarantee).
 */
#ifndef LIBGUARD_CACHE_H
#define LIBGUARD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"
#include "libguard/model.h"
#include "libguard/pool.h"
#include "libguard/redis.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Cache-aside reads of reflected rows: Redis first; on a miss, the row from the primary, then
 * a fenced fill (LG_CACHE_FILL) that the reflector's fences refuse when the row read is older
 * than a change it already processed. The reflector keeps filled keys fresh afterwards.
 *
 * Values are byte-exact {"v":<lg_version>,"row":<to_jsonb(row)>}, as the reflector writes
 * them; a tombstone or a value in another format counts as a miss (the primary answers).
 * Redis failures degrade to reads from the primary (counted in redis_errors): the cache never
 * makes a read fail that PostgreSQL can answer. A fill is dropped, not written, when more than
 * fill_deadline_ms passed since the read started (the fences only cover fills that young):
 * checked here before sending, and by Redis itself against its own clock when the fill runs,
 * from its TIME taken before the read (so a fill delayed on the way, or run
 * after this client stopped waiting for it, is refused too). A hit is one MGET of the key and
 * its table fence (no script).
 * Coroutines that miss the same key at the same time share one read of the primary.
 */
struct lg_cache;

struct lg_cache_config {
	struct lg_pool *pool;      /* the primary; Borrowed: must outlive the cache */
	struct lg_redis *redis;    /* Borrowed: must outlive the cache */
	const char *key_prefix;    /* Copied; NULL = "lifeguard:model" (reflector key_prefix) */
	const char *fence_prefix;  /* Copied; NULL = "lifeguard:fence" (reflector fence_prefix) */
	uint64_t ttl_ms;           /* TTL of filled keys; 0 = 300,000 */
	uint64_t fill_deadline_ms; /* read -> fill budget; 0 = 1,000; keep below fence_ttl_ms */
	uint64_t redis_timeout_ms; /* per GET / fill: a stalled Redis degrades to the primary
				    * after this long instead of holding reads; 0 = 250 */
	/* Negative caching: TTL of the absent marker {"v":0,"absent":true} filled for a key
	 * whose row does not exist (the reflector replaces it when the row is inserted; see
	 * docs/read-path.md); 0 = absent rows are not cached. */
	uint64_t absent_ttl_ms;
};

/* Creates a cache reader. On success *out is Owned (lg_cache_free). LG_EINVAL, LG_ENOMEM. */
LG_API int lg_cache_new(const struct lg_cache_config *cfg, struct lg_cache **out,
			struct lg_error *err);
LG_API void lg_cache_free(struct lg_cache *c);

struct lg_cache_row {
	char *json; /* Owned: the row as JSON (to_jsonb), NUL-terminated */
	size_t len;
	int64_t version; /* its lg_version */
	bool from_cache; /* true: served by Redis */
};

/*
 * Reads one row by primary key. table names a reflected table ("public.users"; resolved by
 * PostgreSQL, so any accepted spelling works); parts are the key columns' values as text in
 * key order (Borrowed for the call), in any spelling PostgreSQL accepts for the column's type
 * ("01" and "+1" for 1, upper-case uuids, a timestamptz with any offset): the cache looks up
 * the key's canonical text (docs/data-contract.md, "Canonical key text"), made in the client
 * for plain integers, uuids, booleans and text and by PostgreSQL otherwise (one statement),
 * and fills the key the row read from the primary names, which is the key the reflector
 * refreshes. Text without an offset or in a day-month order is read as UTC and ISO/MDY. On
 * 0, *row holds the row (release with lg_cache_row_clear). LG_ENOTFOUND: no such row (with
 * absent_ttl_ms, an absent marker is filled; a later call answered by that marker returns
 * LG_ENOTFOUND with row->from_cache set and no JSON). LG_EINVAL: not a table, no primary key, no
 * lg_version column (not reflected), wrong number of key parts, a part PostgreSQL rejects for its
 * column's type (the message carries PostgreSQL's reason). Errors of the primary as lg_pool_query.
 * Must run in a coroutine of the pool's runtime or outside any coroutine.
 */
LG_API int lg_cache_get(struct lg_cache *c, const char *table, const char *const *parts,
			size_t nparts, struct lg_cache_row *row, struct lg_error *err);

LG_API void lg_cache_row_clear(struct lg_cache_row *row);

struct lg_cache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t fills;            /* written by LG_CACHE_FILL */
	uint64_t fills_refused;    /* a fence or a newer value was there ("fenced"/"kept") */
	uint64_t fills_late;       /* dropped: the fill deadline had passed */
	uint64_t absent_hits;      /* hits on an absent marker (LG_ENOTFOUND from Redis) */
	uint64_t absent_fills;     /* absent markers written (counted in fills too) */
	uint64_t stale_for_caller; /* cached values older than the caller's min_version */
	uint64_t bypassed;         /* typed finds sent past the cache (bypass, no policy, a key
				    * type the cache cannot name, a value that does not decode) */
	uint64_t redis_errors;     /* Redis unavailable: served from the primary */
	uint64_t coalesced;        /* misses answered by another coroutine's read of the same key */
	/* The Redis client's circuit breaker (lg_redis_get_stats): while OPEN, reads skip Redis
	 * and go straight to the database (counted in redis_errors). */
	enum lg_redis_breaker redis_breaker;
	uint64_t redis_connect_attempts;
	uint64_t redis_breaker_opens;
};

LG_API void lg_cache_get_stats(const struct lg_cache *c, struct lg_cache_stats *out);

/* ---- Typed reads through the cache (libguard/model.h) ---- */

/*
 * A model's opt-in to typed reads through the cache. The model's table must be reflected
 * (lifeguard.reflect), and its column table names the row's columns as to_jsonb spells them.
 */
struct lg_cache_policy {
	uint64_t ttl_ms;        /* TTL of a filled row; 0 = the cache's ttl_ms */
	unsigned jitter_pct;    /* each fill's TTL drawn within +-jitter_pct % (0..50), so rows
				 * filled together do not expire together */
	uint64_t absent_ttl_ms; /* negative caching for this model; 0 = absent rows not cached */
};

/* Registers (or replaces) model m's policy: its finds through lg_model_find_cached use the
 * cache. m is Borrowed (static descriptors). LG_EINVAL (bad arguments, jitter over 50),
 * LG_ERANGE (more than 64 models). */
LG_API int lg_cache_policy_set(struct lg_cache *c, const struct lg_model *m,
			       const struct lg_cache_policy *p, struct lg_error *err);

struct lg_find_opts {
	bool bypass; /* read the database as lg_model_find does; nothing is read or filled */
	/* Read-your-writes: a cached value (row or absent marker) whose version is below this
	 * is a miss, read from the database; 0 = none. */
	int64_t min_version;
	bool from_cache; /* out: Redis answered */
};

/*
 * lg_model_find through the cache: Redis first, decoded into *out with the model's column
 * table (a hit never touches the database); on a miss the row is read through db's normal
 * statement path (db's pool, transaction or routed handle) together with its lg_version and
 * key text, in one statement and snapshot, decoded the same way, and filled with that version
 * (fenced: a fill older than a change the reflector processed is refused, whichever server
 * answered). Models without a policy, opts->bypass, a db in a transaction, and keys of other
 * types than integers, uuid, boolean and text go straight to lg_model_find. With db->session
 * (libguard/db.h), a cached value below the version the session wrote for the key
 * (lg_session_version) is a miss, and the read is not shared with other callers. A cached absent
 * marker answers LG_ENOTFOUND. opts may be NULL. Errors as lg_model_find; Redis trouble never fails
 * a call. c NULL: the cache of db's handle (lg_dbh_cache(db->dbh)), if it has one; otherwise
 * the call is lg_model_find.
 */
LG_API int lg_model_find_cached(const struct lg_db *db, struct lg_cache *c,
				const struct lg_model *m, const struct lg_param *key,
				struct lg_find_opts *opts, void *out, struct lg_error *err);

/*
 * lg_model_find_cached for n keys (keys: n * the model's key columns, key after key; n up to
 * 1,000): one MGET for all of them, the misses read from the database in one statement
 * through db (the contract's batch read), each found row filled with its own version. rows is
 * an array of n row structs of m (each's previous lg_mem released); found[i] says whether key
 * i has a row (rows[i] is cleared when not). opts applies to every key (from_cache: Redis
 * answered them all); with db->session each key honours the session's version for it. The
 * cases lg_model_find_cached sends past the cache run lg_model_find per key. LG_EINVAL (bad
 * arguments), errors of the database.
 */
LG_API int lg_model_find_many_cached(const struct lg_db *db, struct lg_cache *c,
				     const struct lg_model *m, const struct lg_param *keys,
				     size_t n, void *rows, bool *found, struct lg_find_opts *opts,
				     struct lg_error *err);

#ifdef __cplusplus
}
#endif

#endif
