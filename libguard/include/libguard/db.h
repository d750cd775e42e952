/*
 * lg_dbh: one database handle over a primary pool, replica pools and an optional cache, with
 * reads routed by replica lag and read-your-writes through sessions (docs/read-path.md).
 *
 *	struct lg_pool_config rep = {.conninfo = "host=10.0.0.6 ..."};
 *	struct lg_dbh_config cfg = {.primary = pool, .replicas = &rep, .nreplicas = 1};
 *	lg_dbh_new(rt, &cfg, &h, &err);
 *	lg_session_new(&s);
 *	lg_dbh_write(h, s, "UPDATE t SET ...", ...);   -- primary; s now holds the commit LSN
 *	lg_dbh_read(h, s, "SELECT ...", ...);          -- a replica only once it replayed it
 *
 * Routing: a lag sampler per replica asks, on a timer and with its own deadline, for the
 * primary's current WAL position and the replica's replay position and replay timestamp. A
 * replica is healthy while its last sample is younger than sample_max_age_ms, it is still a
 * standby, and no read failed on it since (connection lost, deadline). A read goes to a
 * healthy replica whose lag is within max_lag_bytes and max_lag_ms and -- for a read with a
 * session -- whose sampled replay position has reached the session's token; otherwise to the
 * primary. A read that fails on a replica (except LG_EINVAL, LG_ECANCELED, LG_ENOMEM) is
 * sent again to the primary: reads change nothing, so that is safe.
 *
 * Tokens: every write and commit through the handle returns a token, the primary's WAL insert
 * position, read by a statement sent in the same flush on the same connection right behind the
 * write (or COMMIT), so it costs no round trip of its own and runs after the commit. Every
 * record of the write is at or before it, so a replica that replayed past it shows the write. A
 *session keeps the highest token it saw, and the versions of reflected rows it wrote
 * (lg_session_note_version) so a cache can treat an older cached value as a miss.
 *
 * All calls follow the pool's contract: they work inside a coroutine of the handle's runtime
 * or outside any coroutine (then they run the loop). The sampler runs only while the loop
 * runs. A handle belongs to one runtime (one per thread, like pools). A replica that hangs
 * holds the reads already sent to it until their deadline (the caller's, else the replica
 * pool's statement_timeout_ms, which bounds how late the fallback to the primary comes);
 * new reads avoid it once its sample misses sample_max_age_ms.
 */
#ifndef LIBGUARD_DB_H
#define LIBGUARD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/conn.h"
#include "libguard/error.h"
#include "libguard/pool.h"
#include "libguard/result.h"
#include "libguard/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_dbh;
struct lg_session;
struct lg_cache;

#define LG_DBH_MAX_REPLICAS 16

struct lg_dbh_config {
	struct lg_pool *primary; /* Borrowed: must outlive the handle */
	/* Replica pools, created by the handle (Owned by it) from these configs (Copied; their
	 * no_warmup is forced, so a replica that is down at start is routed around, not fatal). */
	const struct lg_pool_config *replicas;
	size_t nreplicas;            /* at most LG_DBH_MAX_REPLICAS */
	const char *const *names;    /* Copied; replica names for stats (NULL = "replica<i>") */
	struct lg_cache *cache;      /* Borrowed, optional: lg_dbh_cache() hands it out */
	uint64_t max_lag_bytes;      /* replay behind the primary's WAL; 0 = 16 MiB */
	uint64_t max_lag_ms;         /* stats lag_ms while behind; 0 = 1,000 */
	uint64_t sample_interval_ms; /* 0 = 100 */
	uint64_t sample_timeout_ms;  /* deadline of one sample; 0 = 500 */
	uint64_t sample_max_age_ms;  /* older last sample: unhealthy; 0 = 4 x interval + timeout */
};

/*
 * Creates a handle on rt (Borrowed: must outlive it) and starts the samplers. On success *out
 * is Owned (lg_dbh_free). LG_EINVAL (no primary, too many replicas), LG_ENOMEM, or a replica
 * pool's creation error (a bad conninfo).
 */
LG_API int lg_dbh_new(struct lg_runtime *rt, const struct lg_dbh_config *cfg, struct lg_dbh **out,
		      struct lg_error *err);
/* Stops the samplers and frees the replica pools (not the primary, not the cache). No call on
 * the handle may be in progress. NULL ok. */
LG_API void lg_dbh_free(struct lg_dbh *h);

/* The primary pool (for transactions: lg_pool_begin, then lg_dbh_commit) and the cache. */
LG_API struct lg_pool *lg_dbh_primary(const struct lg_dbh *h);
LG_API struct lg_cache *lg_dbh_cache(const struct lg_dbh *h);

/*
 * A read (lg_pool_query's contract). session may be NULL (any healthy replica under the lag
 * bounds) or Borrowed for the call (then only a replica that replayed its token; the session
 * records where the read was served, lg_session_last_source). LG_QUERY_SHARED_READ is added
 * to opts' flags, so sql must be a plain read (else LG_EINVAL).
 */
LG_API int lg_dbh_read(struct lg_dbh *h, struct lg_session *session, const char *sql,
		       const struct lg_param *params, int nparams, const struct lg_query_opts *opts,
		       struct lg_result **out, struct lg_error *err);

/*
 * A statement on the primary (lg_pool_query's contract). On success the token of the write
 * goes into *token (may be NULL) and into session (may be NULL). The write is confirmed even
 * when its token cannot be read afterwards: *token is then 0, the session reads only from the
 * primary until its next token, and the handle counts a token failure.
 */
LG_API int lg_dbh_write(struct lg_dbh *h, struct lg_session *session, const char *sql,
			const struct lg_param *params, int nparams,
			const struct lg_query_opts *opts, struct lg_result **out, uint64_t *token,
			struct lg_error *err);

/* Commits tx (lg_tx_commit's contract; tx is released either way) and, on success, takes a
 * token as lg_dbh_write does. */
LG_API int lg_dbh_commit(struct lg_dbh *h, struct lg_session *session, struct lg_tx *tx,
			 uint64_t *token, struct lg_error *err);

/* ---- Sessions ------------------------------------------------------------------------------ */

/* A caller's read-your-writes state. Owned by the caller (lg_session_free; NULL ok). One
 * session belongs to one runtime (no locking). LG_ENOMEM. */
LG_API int lg_session_new(struct lg_session **out);
LG_API void lg_session_free(struct lg_session *s);

/* The highest token seen (0 = none); a token from elsewhere (a client's header) is merged
 * with lg_session_observe, which never lowers it. */
LG_API uint64_t lg_session_token(const struct lg_session *s);
LG_API void lg_session_observe(struct lg_session *s, uint64_t token);

/*
 * Whether a shared read (one result handed to several callers, such as a coalesced cache
 * miss) that started at started_ms (lg_now_ms) may serve this session: only when it started
 * after the session's last token arrived (strictly later millisecond), since one that started
 * before may miss the session's own write. Always true for NULL or a session without token.
 */
LG_API bool lg_session_may_share(const struct lg_session *s, uint64_t started_ms);

/*
 * Versions of reflected rows the session wrote, per table and canonical key text (the cache
 * key's <pk> part: key parts joined with ':', '\' and ':' escaped, docs/data-contract.md).
 * table is the model's schema and table joined with '.' ("public.users"; the table alone for
 * a model without schema). note keeps the highest (table and key Copied; LG_ENOMEM, LG_EINVAL
 * for NULL); version returns it, 0 when the session wrote none: a cached value with a lower
 * version for that key must be treated as a miss. ORM inserts, updates and upserts on a db
 * with a session note the row's version when the model has an int8 column named lg_version
 * (read back by their RETURNING) and integer, text or uuid key columns; an ORM delete notes
 * INT64_MAX (no cached value of that row may serve the session any more).
 */
LG_API int lg_session_note_version(struct lg_session *s, const char *table, const char *key,
				   int64_t version);
LG_API int64_t lg_session_version(const struct lg_session *s, const char *table, const char *key);

/* Where the session's last read through a handle was served: -1 the primary, else the
 * replica's index; -2 before any read. */
LG_API int lg_session_last_source(const struct lg_session *s);

/* Tokens as text, PostgreSQL's pg_lsn form "16/B374D848" (for headers). format needs 18 bytes
 * (LG_TOKEN_TEXT_SIZE); parse gives LG_EINVAL for anything else. */
#define LG_TOKEN_TEXT_SIZE 18
LG_API void lg_token_format(uint64_t token, char buf[LG_TOKEN_TEXT_SIZE]);
LG_API int lg_token_parse(const char *text, uint64_t *out);

/* ---- Stats --------------------------------------------------------------------------------- */

struct lg_dbh_replica_stats {
	const char *name; /* Borrowed from the handle */
	bool healthy;     /* as routing sees it now (bounds not applied) */
	bool sampled;     /* a sample ever succeeded */
	uint64_t lag_bytes;
	/* How old the replica's view may be: 0 when level, else the smaller of the replay age
	 * and the time since the latest sampled primary position it has replayed. */
	uint64_t lag_ms;
	/* now() - pg_last_xact_replay_timestamp() on the replica at the last sample (grows while
	 * the primary is idle, so not a lag by itself); UINT64_MAX when nothing was replayed. */
	uint64_t replay_age_ms;
	uint64_t replay_lsn;    /* last sampled replay position */
	uint64_t sample_age_ms; /* since the last good sample */
	uint64_t reads;         /* reads served */
	uint64_t read_failures; /* reads that failed here (then retried on the primary) */
	uint64_t sample_failures;
};

struct lg_dbh_stats {
	uint64_t primary_reads;  /* reads served by the primary (fallbacks included) */
	uint64_t fallback_reads; /* of those, retried after failing on a replica */
	uint64_t token_reads;    /* of those, sent there because no replica had the token */
	uint64_t writes;
	uint64_t token_failures; /* writes whose token could not be read */
	size_t nreplicas;
};

LG_API void lg_dbh_get_stats(const struct lg_dbh *h, struct lg_dbh_stats *out);
/* Stats of replica i (< nreplicas); LG_EINVAL otherwise. */
LG_API int lg_dbh_replica_stats(const struct lg_dbh *h, size_t i, struct lg_dbh_replica_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_DB_H */
