/*
 * The users service's reads and writes (see svc_store.h).
 *
 * A read of one user, step by step:
 *   1. with a cache and no bypass: lg_model_find_cached. A hit (a row, or an absent marker:
 *      404) is served from Redis; a miss reads the primary and fills the key (the reflector's
 *      fences refuse a fill older than a change it already processed). A cached value older
 *      than the caller's token (a version below the token's, a row the caller deleted, a
 *      marker for a row it created) is not served: go to 2;
 *   2. the ORM on the database handle (lg_dbh) with a session holding the caller's token: a
 *      replica whose sampled lag is within the bounds and, with a token, whose replay position
 *      has passed it; otherwise, or when the replica read fails, the primary.
 * Writes run on the primary through the same handle; the session gives their token (the
 * primary's WAL position after the write), to which the service adds the row's id and version.
 */
#include "svc_store.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LG_MODEL_IMPLEMENTATION
#include "../models/users.h"

/* read_cache: the cached row is older than the caller's token (not an LG_E* code). */
#define STALE_FOR_CALLER (-1)

struct svc_store {
	struct lg_runtime *rt;
	struct svc_store_config cfg;
	struct lg_pool *primary;
	struct lg_dbh *dbh;
	struct lg_redis *redis;
	struct lg_cache *cache;
	struct svc_store_stats stats;
};

const char *svc_source_name(enum svc_source s)
{
	static const char *const names[] = {"cache", "replica", "primary"};
	return s < SVC_SRC__COUNT ? names[s] : "?";
}

/* ---- Rows as JSON ------------------------------------------------------------------------ */

static json_t *user_json(const struct users *u)
{
	return json_pack("{s:I,s:s,s:o,s:I}", "id", (json_int_t)u->id, "email", u->email, "name",
			 users_name_is_null(u) ? json_null() : json_string(u->name), "version",
			 (json_int_t)u->version);
}

/* ---- Reads ------------------------------------------------------------------------------- */

/* Whether the caller's token says a read of id from Redis missed its own write. */
static bool stale_for_caller(const struct svc_token *tok, int64_t id, bool found, int64_t version)
{
	return tok->set && tok->id == id &&
	       (found ? tok->deleted || version < tok->version : !tok->deleted);
}

/* A session carrying the caller's token (none: any replica within the bounds may answer). */
static int session_for(const struct svc_token *tok, struct lg_session **out)
{
	int rc = lg_session_new(out);
	if (rc == 0 && tok != NULL && tok->set) {
		lg_session_observe(*out, tok->lsn);
	}
	return rc;
}

static int read_db(struct svc_store *st, int64_t id, const struct svc_token *tok, json_t **user,
		   enum svc_source *src, struct lg_error *err)
{
	struct lg_session *session;
	int rc = session_for(tok, &session);
	if (rc != 0) {
		return rc;
	}
	struct lg_db db = {.pool = st->primary, .dbh = st->dbh, .session = session};
	struct users u = {0};
	struct lg_param key = lg_param_int64(id);
	rc = lg_model_find(&db, &users_model, &key, &u, err);
	*src = lg_session_last_source(session) >= 0 ? SVC_SRC_REPLICA : SVC_SRC_PRIMARY;
	if (rc == 0) {
		*user = user_json(&u);
		rc = *user ? 0 : LG_ENOMEM;
	}
	lg_row_clear(&users_model, &u);
	lg_session_free(session);
	return rc;
}

/*
 * The typed find through the cache (lg_model_find_cached). Its misses read the primary, not
 * a replica: a replica's row may be older than a change the reflector already processed
 * (its fill would be refused, but the caller would still get it), and a cached read must
 * never be older than that.
 */
static int read_cache(struct svc_store *st, int64_t id, const struct svc_token *tok, json_t **user,
		      enum svc_source *src, struct lg_error *err)
{
	struct lg_db db = {.pool = st->primary};
	struct lg_find_opts opts = {0};
	struct users u = {0};
	struct lg_param key = lg_param_int64(id);
	int rc = lg_model_find_cached(&db, st->cache, &users_model, &key, &opts, &u, err);
	*src = opts.from_cache ? SVC_SRC_CACHE : SVC_SRC_PRIMARY;
	/* Older than the caller's own write (a row below its version, a row it deleted, an absent
	 * marker from before it created the row): the reflector has not refreshed the key yet.
	 * A 404 is re-read whether or not Redis gave it (an absent-marker hit may not say so). */
	if ((rc == 0 && opts.from_cache && stale_for_caller(tok, id, true, u.version)) ||
	    (rc == LG_ENOTFOUND && stale_for_caller(tok, id, false, 0))) {
		st->stats.token_cache_stale++;
		rc = STALE_FOR_CALLER;
	} else if (rc == 0) {
		*user = user_json(&u);
		rc = *user ? 0 : LG_ENOMEM;
	}
	lg_row_clear(&users_model, &u);
	return rc;
}

int svc_store_get(struct svc_store *st, int64_t id, const struct svc_token *tok, bool bypass_cache,
		  json_t **user, enum svc_source *src, struct lg_error *err)
{
	*user = NULL;
	if (st->cache != NULL && !bypass_cache) {
		int rc = read_cache(st, id, tok, user, src, err);
		if (rc != STALE_FOR_CALLER) {
			if (rc == 0 || rc == LG_ENOTFOUND) {
				st->stats.reads[*src]++;
			}
			return rc;
		}
	}
	int rc = read_db(st, id, tok, user, src, err);
	if (rc == 0 || rc == LG_ENOTFOUND) {
		st->stats.reads[*src]++;
	}
	return rc;
}

int svc_store_get_many(struct svc_store *st, const int64_t *ids, size_t n,
		       const struct svc_token *tok, bool bypass_cache, json_t **users,
		       enum svc_source *src, struct lg_error *err)
{
	assert(n <= SVC_MAX_MANY);
	int rc = 0;
	memset(users, 0, n * sizeof(*users));
	if (st->cache == NULL || bypass_cache) {
		for (size_t i = 0; i < n && (rc == 0 || rc == LG_ENOTFOUND); i++) {
			rc = svc_store_get(st, ids[i], tok, bypass_cache, &users[i], &src[i], err);
		}
		return rc == LG_ENOTFOUND ? 0 : rc;
	}
	struct lg_param keys[SVC_MAX_MANY] = {{0}};
	struct users rows[SVC_MAX_MANY];
	bool found[SVC_MAX_MANY] = {0};
	memset(rows, 0, sizeof(rows));
	for (size_t i = 0; i < n; i++) {
		keys[i] = lg_param_int64(ids[i]);
	}
	/* Misses are read from the primary, as for one id (read_cache). */
	struct lg_db db = {.pool = st->primary};
	struct lg_find_opts opts = {0};
	rc = lg_model_find_many_cached(&db, st->cache, &users_model, keys, n, rows, found, &opts,
				       err);
	for (size_t i = 0; i < n; i++) {
		src[i] = opts.from_cache ? SVC_SRC_CACHE : SVC_SRC_PRIMARY;
		if (rc != 0 && rc != LG_ENOTFOUND) {
			/* failed: nothing more is read; rows are released below */
		} else if (stale_for_caller(tok, ids[i], found[i], rows[i].version)) {
			st->stats.token_cache_stale++;
			rc = read_db(st, ids[i], tok, &users[i], &src[i], err);
			st->stats.reads[src[i]]++;
		} else {
			users[i] = found[i] ? user_json(&rows[i]) : NULL;
			rc = found[i] && users[i] == NULL ? LG_ENOMEM : 0;
			st->stats.reads[src[i]]++;
		}
		lg_row_clear(&users_model, &rows[i]);
	}
	if (rc != 0 && rc != LG_ENOTFOUND) {
		for (size_t i = 0; i < n; i++) {
			json_decref(users[i]);
			users[i] = NULL;
		}
		return rc;
	}
	return 0;
}

/* ---- Writes ------------------------------------------------------------------------------ */

/* The token of a write the session saw (0: its WAL position could not be read). */
static void write_token(struct lg_session *session, int64_t id, int64_t version, bool deleted,
			struct svc_token *tok)
{
	tok->lsn = lg_session_token(session);
	tok->set = tok->lsn != 0;
	tok->id = id;
	tok->version = version;
	tok->deleted = deleted;
}

/* Runs a write with a fresh session, so that its token is this write's. */
struct write_ctx {
	struct lg_db db;
	struct lg_session *session;
};

static int write_begin(struct svc_store *st, struct write_ctx *w)
{
	int rc = lg_session_new(&w->session);
	struct lg_db db = {.pool = st->primary, .dbh = st->dbh, .session = w->session};
	w->db = db;
	return rc;
}

/* After an insert or update that returned rc: the token and the row as JSON; releases w. */
static int write_end(struct write_ctx *w, int rc, struct users *u, json_t **user,
		     struct svc_token *tok)
{
	if (rc == 0) {
		write_token(w->session, u->id, u->version, false, tok);
		*user = user_json(u);
		rc = *user ? 0 : LG_ENOMEM;
	}
	lg_row_clear(&users_model, u);
	lg_session_free(w->session);
	return rc;
}

int svc_store_create(struct svc_store *st, const char *email, const char *name, json_t **user,
		     struct svc_token *tok, struct lg_error *err)
{
	struct write_ctx w;
	int rc = write_begin(st, &w);
	if (rc != 0) {
		return rc;
	}
	struct users u = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &users_model, &u);
	users_set_email(&ch, email);
	if (name != NULL) {
		users_set_name(&ch, name);
	}
	return write_end(&w, lg_model_insert(&w.db, &ch, err), &u, user, tok);
}

static int update_once(struct svc_store *st, int64_t id, const char *email, bool set_email,
		       const char *name, bool set_name, int64_t version, json_t **user,
		       struct svc_token *tok, struct lg_error *err)
{
	struct write_ctx w;
	int rc = write_begin(st, &w);
	if (rc != 0) {
		return rc;
	}
	struct users u = {.id = id, .version = version};
	struct lg_changes ch;
	lg_changes_init(&ch, &users_model, &u);
	if (set_email) {
		users_set_email(&ch, email);
	}
	if (set_name && name != NULL) {
		users_set_name(&ch, name);
	} else if (set_name) {
		users_set_name_null(&ch);
	}
	return write_end(&w, lg_model_update(&w.db, &ch, err), &u, user, tok);
}

int svc_store_update(struct svc_store *st, int64_t id, const char *email, bool set_email,
		     const char *name, bool set_name, int64_t expect_version, json_t **user,
		     struct svc_token *tok, struct lg_error *err)
{
	if (expect_version != 0) {
		return update_once(st, id, email, set_email, name, set_name, expect_version, user,
				   tok, err);
	}
	struct lg_db pdb = {.pool = st->primary};
	for (int attempt = 0;; attempt++) {
		struct users cur = {0};
		struct lg_param key = lg_param_int64(id);
		int rc = lg_model_find(&pdb, &users_model, &key, &cur, err);
		int64_t version = cur.version;
		lg_row_clear(&users_model, &cur);
		if (rc == 0) {
			rc = update_once(st, id, email, set_email, name, set_name, version, user,
					 tok, err);
		}
		/* 40001: another writer changed the row between the read and the update. */
		if (rc != LG_ESERVER || strcmp(err->sqlstate, "40001") != 0 || attempt == 4) {
			return rc;
		}
	}
}

int svc_store_delete(struct svc_store *st, int64_t id, struct svc_token *tok, struct lg_error *err)
{
	struct write_ctx w;
	int rc = write_begin(st, &w);
	if (rc != 0) {
		return rc;
	}
	struct users u = {.id = id};
	rc = lg_model_delete(&w.db, &users_model, &u, err);
	if (rc == 0) {
		write_token(w.session, id, 0, true, tok);
	}
	lg_session_free(w.session);
	return rc;
}

/* ---- Life cycle -------------------------------------------------------------------------- */

int svc_store_new(struct lg_runtime *rt, const struct svc_store_config *cfg, struct svc_store **out,
		  struct lg_error *err)
{
	struct svc_store *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		return LG_ENOMEM;
	}
	st->rt = rt;
	st->cfg = *cfg;
	unsigned size = cfg->pool_size ? cfg->pool_size : 8;
	struct lg_pool_config pc = {
	    .conninfo = cfg->primary_dsn, .min_conns = 2, .max_conns = size};
	int rc = lg_pool_new(rt, &pc, &st->primary, err);
	if (rc == 0 && cfg->redis_host != NULL) {
		struct lg_redis_config rc_cfg = {.host = cfg->redis_host, .port = cfg->redis_port};
		rc = lg_redis_new(rt, &rc_cfg, &st->redis, err);
		struct lg_cache_config cc = {.pool = st->primary, .redis = st->redis};
		rc = rc ? rc : lg_cache_new(&cc, &st->cache, err);
		/* users opt in: TTL with jitter, absent ids cached as markers (negative caching).
		 */
		struct lg_cache_policy policy = {.jitter_pct = 10, .absent_ttl_ms = 60000};
		rc = rc ? rc : lg_cache_policy_set(st->cache, &users_model, &policy, err);
	}
	if (rc == 0) {
		struct lg_pool_config rep = {
		    .conninfo = cfg->replica_dsn, .min_conns = 2, .max_conns = size};
		struct lg_dbh_config hc = {
		    .primary = st->primary,
		    .replicas = cfg->replica_dsn ? &rep : NULL,
		    .nreplicas = cfg->replica_dsn ? 1 : 0,
		    .cache = st->cache,
		    .max_lag_bytes = cfg->max_lag_bytes,
		    .max_lag_ms = cfg->max_lag_ms,
		};
		rc = lg_dbh_new(rt, &hc, &st->dbh, err);
	}
	if (rc == 0) {
		struct lg_db pdb = {.pool = st->primary};
		rc = lg_model_check(&pdb, &users_model, err);
	}
	if (rc != 0) {
		svc_store_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

void svc_store_free(struct svc_store *st)
{
	if (st == NULL) {
		return;
	}
	lg_dbh_free(st->dbh);
	lg_cache_free(st->cache);
	lg_redis_free(st->redis);
	lg_pool_free(st->primary);
	free(st);
}

void svc_store_get_stats(const struct svc_store *st, struct svc_store_stats *out)
{
	*out = st->stats;
}

struct lg_pool *svc_store_primary(const struct svc_store *st)
{
	return st->primary;
}

const struct lg_dbh *svc_store_dbh(const struct svc_store *st)
{
	return st->dbh;
}

const struct lg_cache *svc_store_cache(const struct svc_store *st)
{
	return st->cache;
}

const struct lg_redis *svc_store_redis(const struct svc_store *st)
{
	return st->redis;
}
