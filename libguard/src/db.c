/*
 * The database handle (db.h): routing of reads between replicas and the primary, writes and
 * their read-your-writes tokens, stats. The samplers that feed routing are in route_lag.c.
 *
 * Happy path of a read: pick a replica, starting after the last one picked, that is healthy
 * (route_lag.c), within max_lag_bytes and max_lag_ms, and -- with a session -- whose sampled
 * replay position has reached the session's token (a sampled position only grows, so it is a
 * lower bound of the replica's position now). Run the read there; with no such replica, on
 * the primary.
 *
 * Happy path of a write: run it on the primary with the token read, SELECT
 * pg_current_wal_insert_lsn(), queued right behind it on the same connection, so that one
 * flush sends both (the read in a sync segment of its own, after the write's) and no round
 * trip is spent on the token (pool.c, lg__pool_query_then; a commit likewise,
 * lg__tx_commit_then). The read runs once the write's implicit transaction -- or the
 * transaction that COMMIT ends -- has committed, so the insert position it returns is at or
 * past the end of every record of the write, its commit record included, and it is handed out
 * as the token. Not pg_current_wal_lsn(): that is how far WAL has been written out, which
 * under synchronous_commit = off may still be short of the commit record, and a replica that
 * replayed up to such a token could lack the write.
 *
 * Failure modes:
 *   - The replica read fails: unless the statement itself is at fault (LG_EINVAL) or the
 *     caller gave up (LG_ECANCELED) or memory ran out, it runs again on the primary. A lost
 *     connection, a deadline or a server shutting down also mark the replica unhealthy until
 *     its next good sample, so later reads do not queue behind it.
 *   - The token read fails after a confirmed write: the write's result stands; the session is
 *     pinned to the primary until its next token (any later token is past this write too).
 */
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "db_int.h"
#include "error_int.h"
#include "model_int.h"
#include "pool_int.h"

#define DBH_DEFAULT_LAG_BYTES (16u << 20)
#define DBH_DEFAULT_LAG_MS    1000
#define DBH_DEFAULT_INTERVAL  100
#define DBH_DEFAULT_TIMEOUT   500

/* Schema-qualified: a function of that name earlier in the search_path must not answer. */
static const char dbh_token_sql[] = "SELECT pg_catalog.pg_current_wal_insert_lsn()::text";

static uint64_t or_default(uint64_t v, uint64_t d)
{
	return v != 0 ? v : d;
}

static int dbh_replica_init(struct lg_dbh *h, size_t i, const struct lg_dbh_config *cfg,
			    struct lg_error *err)
{
	struct lg__replica *r = &h->rep[i];
	r->h = h;
	char name[32];
	snprintf(name, sizeof(name), "replica%zu", i);
	r->name = lg__strdup(cfg->names != NULL && cfg->names[i] != NULL ? cfg->names[i] : name);
	if (r->name == NULL) {
		return lg__error_set(err, LG_ENOMEM, "dbh: out of memory");
	}
	struct lg_pool_config pc = cfg->replicas[i];
	pc.no_warmup = true;
	int rc = lg_pool_new(h->rt, &pc, &r->pool, err);
	if (rc != 0) {
		return rc;
	}
	rc = lg__route_lag_start(r);
	return rc != 0 ? lg__error_set(err, rc, "dbh: cannot start the lag sampler of %s", r->name)
		       : 0;
}

LG_API int lg_dbh_new(struct lg_runtime *rt, const struct lg_dbh_config *cfg, struct lg_dbh **out,
		      struct lg_error *err)
{
	if (rt == NULL || cfg == NULL || cfg->primary == NULL ||
	    cfg->nreplicas > LG_DBH_MAX_REPLICAS || (cfg->nreplicas > 0 && cfg->replicas == NULL)) {
		return lg__error_set(err, LG_EINVAL,
				     "dbh: needs a runtime, a primary pool and at most %d replicas",
				     LG_DBH_MAX_REPLICAS);
	}
	struct lg_dbh *h = lg__calloc(1, sizeof(*h) + cfg->nreplicas * sizeof(h->rep[0]));
	if (h == NULL) {
		return lg__error_set(err, LG_ENOMEM, "dbh: out of memory");
	}
	h->rt = rt;
	h->primary = cfg->primary;
	h->cache = cfg->cache;
	h->max_lag_bytes = or_default(cfg->max_lag_bytes, DBH_DEFAULT_LAG_BYTES);
	h->max_lag_ms = or_default(cfg->max_lag_ms, DBH_DEFAULT_LAG_MS);
	h->interval_ms = or_default(cfg->sample_interval_ms, DBH_DEFAULT_INTERVAL);
	h->timeout_ms = or_default(cfg->sample_timeout_ms, DBH_DEFAULT_TIMEOUT);
	h->max_age_ms = or_default(cfg->sample_max_age_ms, 4 * h->interval_ms + h->timeout_ms);
	for (size_t i = 0; i < cfg->nreplicas; i++) {
		h->n = i + 1;
		int rc = dbh_replica_init(h, i, cfg, err);
		if (rc != 0) {
			lg_dbh_free(h);
			return rc;
		}
	}
	h->stats.nreplicas = h->n;
	*out = h;
	return 0;
}

LG_API void lg_dbh_free(struct lg_dbh *h)
{
	if (h == NULL) {
		return;
	}
	for (size_t i = 0; i < h->n; i++) {
		lg__route_lag_stop(&h->rep[i]);
	}
	for (size_t i = 0; i < h->n; i++) {
		lg_pool_free(h->rep[i].pool);
		lg__free(h->rep[i].name);
	}
	lg__free(h);
}

LG_API struct lg_pool *lg_dbh_primary(const struct lg_dbh *h)
{
	return h->primary;
}

LG_API struct lg_cache *lg_dbh_cache(const struct lg_dbh *h)
{
	return h->cache;
}

/* The replica for a read of session s, or -1 for the primary; *for_token tells whether a
 * replica within bounds was passed over only for the session's token. */
static int dbh_pick(struct lg_dbh *h, const struct lg_session *s, bool *for_token)
{
	uint64_t now = lg_now_ms();
	uint64_t need = s != NULL ? s->token : 0;
	bool pinned = s != NULL && s->pinned;
	*for_token = false;
	for (size_t k = 0; k < h->n; k++) {
		size_t i = (h->next + k) % h->n;
		const struct lg__replica *r = &h->rep[i];
		if (!lg__route_healthy(r, now) || r->lag_bytes > h->max_lag_bytes ||
		    r->lag_ms > h->max_lag_ms) {
			continue;
		}
		if (pinned || r->replay_lsn < need) {
			*for_token = true;
			continue;
		}
		h->next = (unsigned)(i + 1);
		return (int)i;
	}
	return -1;
}

/* Whether a failed read says the replica itself is in trouble (not just this statement). */
static bool dbh_replica_down(int rc, const struct lg_error *e)
{
	if (rc == LG_ESERVER) {
		/* 57P0x: the server is shutting down or in crash recovery; 08: connection. */
		return strncmp(e->sqlstate, "57P", 3) == 0 || strncmp(e->sqlstate, "08", 2) == 0;
	}
	return rc != LG_EPROTO && rc != LG_ENULL && rc != LG_ETYPE && rc != LG_ERANGE;
}

LG_API int lg_dbh_read(struct lg_dbh *h, struct lg_session *session, const char *sql,
		       const struct lg_param *params, int nparams, const struct lg_query_opts *opts,
		       struct lg_result **out, struct lg_error *err)
{
	struct lg_query_opts o = {.deadline = opts != NULL ? opts->deadline : 0,
				  .flags = (opts != NULL ? opts->flags : 0) | LG_QUERY_SHARED_READ};
	bool for_token;
	int i = dbh_pick(h, session, &for_token);
	if (i >= 0) {
		struct lg__replica *r = &h->rep[i];
		struct lg_error e = {0};
		int rc = lg_pool_query(r->pool, sql, params, nparams, &o, out, &e);
		if (rc == 0 || rc == LG_EINVAL || rc == LG_ECANCELED || rc == LG_ENOMEM) {
			r->reads += rc == 0;
			if (session != NULL && rc == 0) {
				session->last_source = i;
			}
			if (rc != 0 && err != NULL) {
				*err = e;
			}
			return rc;
		}
		r->read_failures++;
		r->read_failed = r->read_failed || dbh_replica_down(rc, &e);
		h->stats.fallback_reads++;
	} else if (for_token) {
		h->stats.token_reads++;
	}
	h->stats.primary_reads++;
	if (session != NULL) {
		session->last_source = -1;
	}
	return lg_pool_query(h->primary, sql, params, nparams, &o, out, err);
}

/* Takes the token of a confirmed write from the read that followed it (then) into *token
 * and session, and frees that read's result. */
static void dbh_take_token(struct lg_dbh *h, struct lg_session *session, struct lg__then *then,
			   uint64_t *token)
{
	const char *t;
	uint64_t lsn = 0;
	int rc = then->rc;
	if (rc == 0 &&
	    (lg_result_rows(then->result) != 1 ||
	     lg_result_text(then->result, 0, 0, &t, NULL) != 0 || lg_token_parse(t, &lsn) != 0)) {
		rc = LG_EPROTO;
	}
	lg_result_free(then->result);
	then->result = NULL;
	h->stats.writes++;
	if (rc != 0) {
		h->stats.token_failures++;
		lsn = 0;
		if (session != NULL) {
			lg__session_pin(session);
		}
	} else if (session != NULL) {
		lg__session_token(session, lsn);
	}
	if (token != NULL) {
		*token = lsn;
	}
}

LG_API int lg_dbh_write(struct lg_dbh *h, struct lg_session *session, const char *sql,
			const struct lg_param *params, int nparams,
			const struct lg_query_opts *opts, struct lg_result **out, uint64_t *token,
			struct lg_error *err)
{
	struct lg__then then = {.sql = dbh_token_sql};
	int rc = lg__pool_query_then(h->primary, sql, params, nparams, opts, &then, out, err);
	if (rc == 0) {
		dbh_take_token(h, session, &then, token);
	}
	lg_result_free(then.result);
	return rc;
}

LG_API int lg_dbh_commit(struct lg_dbh *h, struct lg_session *session, struct lg_tx *tx,
			 uint64_t *token, struct lg_error *err)
{
	struct lg__then then = {.sql = dbh_token_sql};
	int rc = lg__tx_commit_then(tx, &then, err);
	if (rc == 0) {
		dbh_take_token(h, session, &then, token);
	}
	lg_result_free(then.result);
	return rc;
}

int lg__db_route(const struct lg_db *db, const char *sql, const struct lg_param *params, int n,
		 const struct lg_query_opts *o, struct lg_result **out, struct lg_error *err)
{
	if (o->flags & LG_QUERY_SHARED_READ) {
		return lg_dbh_read(db->dbh, db->session, sql, params, n, o, out, err);
	}
	return lg_dbh_write(db->dbh, db->session, sql, params, n, o, out, NULL, err);
}

LG_API void lg_dbh_get_stats(const struct lg_dbh *h, struct lg_dbh_stats *out)
{
	*out = h->stats;
}

LG_API int lg_dbh_replica_stats(const struct lg_dbh *h, size_t i, struct lg_dbh_replica_stats *out)
{
	if (i >= h->n) {
		return LG_EINVAL;
	}
	const struct lg__replica *r = &h->rep[i];
	uint64_t now = lg_now_ms();
	*out = (struct lg_dbh_replica_stats){
	    .name = r->name,
	    .healthy = lg__route_healthy(r, now),
	    .sampled = r->sampled_ms != 0,
	    .lag_bytes = r->lag_bytes,
	    .lag_ms = r->lag_ms,
	    .replay_age_ms = r->replay_age_ms,
	    .replay_lsn = r->replay_lsn,
	    .sample_age_ms = r->sampled_ms != 0 ? now - r->sampled_ms : 0,
	    .reads = r->reads,
	    .read_failures = r->read_failures,
	    .sample_failures = r->sample_failures,
	};
	return 0;
}
