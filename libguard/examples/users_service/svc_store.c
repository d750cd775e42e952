/*
 * The users service's reads and writes (see svc_store.h).
 *
 * A read of one user, step by step:
 *   1. with a cache and no bypass: lg_cache_get. A hit is served from Redis; a miss reads the
 *      primary and fills the key (the reflector's fences refuse a fill older than a change it
 *      already processed). A cached row older than the caller's token (a version below the
 *      token's, or any row after the caller deleted it) is not served: go to 2;
 *   2. a replica, when its last lag sample is recent, its lag is under max_lag_bytes and,
 *      with a token, its replay position has passed the token's LSN;
 *   3. otherwise, or when the replica read fails, the primary.
 * Writes run on the primary; their token is the primary's WAL position read after the write
 * returned (the write had committed by then) plus the row's id and version.
 *
 * The lag sampler reads the replica's replay LSN and replay age, then the primary's current
 * LSN, every lag_sample_ms with a deadline of its own; a replica that does not answer, or
 * whose last sample is older than three periods, is not used.
 */
#include "svc_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LG_MODEL_IMPLEMENTATION
#include "../models/users.h"

#define USERS_TABLE "quickstart.users"
/* read_cache: the cached row is older than the caller's token (not an LG_E* code). */
#define STALE_FOR_CALLER (-1)

struct svc_store {
	struct lg_runtime *rt;
	struct svc_store_config cfg;
	struct lg_pool *primary, *replica;
	struct lg_redis *redis;
	struct lg_cache *cache;
	struct lg_coro *sampler;
	struct lg_db pdb, rdb;
	struct svc_store_stats stats;
	uint64_t replay_lsn;
	uint64_t sampled_at_ms; /* 0: no good sample yet */
};

const char *svc_source_name(enum svc_source s)
{
	static const char *const names[] = {"cache", "replica", "primary"};
	return s < SVC_SRC__COUNT ? names[s] : "?";
}

/* ---- Lag sampling ---------------------------------------------------------------------- */

static int sample_text(struct lg_pool *pool, const char *sql, uint64_t deadline,
		       struct lg_result **res)
{
	struct lg_query_opts o = {.deadline = deadline};
	int rc = lg_pool_query(pool, sql, NULL, 0, &o, res, NULL);
	if (rc == 0 && lg_result_rows(*res) != 1) {
		lg_result_free(*res);
		rc = LG_EPROTO;
	}
	return rc;
}

static void sample_once(struct svc_store *st)
{
	uint64_t deadline = lg_deadline_in(st->cfg.lag_sample_ms * 2);
	struct lg_result *r = NULL, *p = NULL;
	const char *replay, *current;
	uint64_t replay_lsn, primary_lsn;
	double age = 0;
	/* The replica first: the primary's position read afterwards can only be further on, so
	 * the lag is never under-estimated. */
	bool ok = sample_text(st->replica,
			      "SELECT pg_last_wal_replay_lsn()::text, COALESCE(EXTRACT(epoch FROM "
			      "now() - pg_last_xact_replay_timestamp()), 0)::float8",
			      deadline, &r) == 0 &&
		  sample_text(st->primary, "SELECT pg_current_wal_lsn()::text", deadline, &p) == 0;
	ok = ok && lg_result_text(r, 0, 0, &replay, NULL) == 0 &&
	     lg_result_double(r, 0, 1, &age) == 0 && lg_result_text(p, 0, 0, &current, NULL) == 0 &&
	     svc_lsn_parse(replay, &replay_lsn) && svc_lsn_parse(current, &primary_lsn);
	if (ok) {
		st->replay_lsn = replay_lsn;
		st->stats.lag_bytes = primary_lsn > replay_lsn ? primary_lsn - replay_lsn : 0;
		st->stats.replay_age_s = age;
		st->sampled_at_ms = lg_now_ms();
	}
	lg_result_free(r);
	lg_result_free(p);
}

static void sample_main(void *arg)
{
	struct svc_store *st = arg;
	while (!lg_coro_canceled()) {
		sample_once(st);
		if (lg_sleep(st->cfg.lag_sample_ms) != 0) {
			break;
		}
	}
}

static bool replica_fresh(const struct svc_store *st)
{
	return st->replica != NULL && st->sampled_at_ms != 0 &&
	       lg_now_ms() - st->sampled_at_ms <= 3 * st->cfg.lag_sample_ms &&
	       st->stats.lag_bytes <= st->cfg.max_lag_bytes;
}

/* ---- Rows as JSON ------------------------------------------------------------------------ */

static json_t *user_json(const struct users *u)
{
	return json_pack("{s:I,s:s,s:o,s:I}", "id", (json_int_t)u->id, "email", u->email, "name",
			 users_name_is_null(u) ? json_null() : json_string(u->name), "version",
			 (json_int_t)u->version);
}

/* The cached value's row (to_jsonb of the table row) as the service's user object. */
static json_t *cached_json(const char *text, int64_t *version)
{
	json_t *row = json_loads(text, 0, NULL);
	json_t *id = json_object_get(row, "id"), *email = json_object_get(row, "email");
	json_t *name = json_object_get(row, "name"), *v = json_object_get(row, "version");
	json_t *out = NULL;
	if (json_is_integer(id) && json_is_string(email) && json_is_integer(v) &&
	    (json_is_null(name) || json_is_string(name))) {
		*version = json_integer_value(v);
		out = json_pack("{s:O,s:O,s:O,s:O}", "id", id, "email", email, "name", name,
				"version", v);
	}
	json_decref(row);
	return out;
}

/* ---- Reads ------------------------------------------------------------------------------- */

static int read_db(struct svc_store *st, const struct lg_db *db, int64_t id, json_t **user,
		   struct lg_error *err)
{
	struct users u = {0};
	struct lg_param key = lg_param_int64(id);
	int rc = lg_model_find(db, &users_model, &key, &u, err);
	if (rc == 0) {
		*user = user_json(&u);
		rc = *user ? 0 : LG_ENOMEM;
	}
	lg_row_clear(&users_model, &u);
	(void)st;
	return rc;
}

static int read_cache(struct svc_store *st, int64_t id, const struct svc_token *tok, json_t **user,
		      enum svc_source *src, struct lg_error *err)
{
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	const char *parts[] = {idtext};
	struct lg_cache_row row;
	int rc = lg_cache_get(st->cache, USERS_TABLE, parts, 1, &row, err);
	if (rc != 0) {
		return rc; /* LG_ENOTFOUND: the primary has no such row */
	}
	int64_t version = 0;
	*user = cached_json(row.json, &version);
	*src = row.from_cache ? SVC_SRC_CACHE : SVC_SRC_PRIMARY;
	lg_cache_row_clear(&row);
	if (*user == NULL) {
		lg_error_clear(err);
		return LG_EPROTO;
	}
	bool mine = tok->set && tok->id == id;
	if (mine && *src == SVC_SRC_CACHE && (tok->deleted || version < tok->version)) {
		/* Older than the caller's own write: the reflector has not refreshed it yet. */
		st->stats.token_cache_stale++;
		json_decref(*user);
		*user = NULL;
		return STALE_FOR_CALLER;
	}
	return 0;
}

int svc_store_get(struct svc_store *st, int64_t id, const struct svc_token *tok, bool bypass_cache,
		  json_t **user, enum svc_source *src, struct lg_error *err)
{
	*user = NULL;
	if (st->cache != NULL && !bypass_cache) {
		int rc = read_cache(st, id, tok, user, src, err);
		if (rc != STALE_FOR_CALLER) {
			if (rc == 0 || rc == LG_ENOTFOUND) {
				st->stats.reads[rc == 0 ? *src : SVC_SRC_PRIMARY]++;
			}
			return rc;
		}
	}
	if (replica_fresh(st)) {
		if (!tok->set || st->replay_lsn >= tok->lsn) {
			int rc = read_db(st, &st->rdb, id, user, err);
			if (rc == 0 || rc == LG_ENOTFOUND) {
				*src = SVC_SRC_REPLICA;
				st->stats.reads[SVC_SRC_REPLICA]++;
				return rc;
			}
			st->stats
			    .replica_retries++; /* a failed replica read: the primary answers */
		} else {
			st->stats.token_replica_behind++;
		}
	}
	*src = SVC_SRC_PRIMARY;
	st->stats.reads[SVC_SRC_PRIMARY]++;
	return read_db(st, &st->pdb, id, user, err);
}

/* ---- Writes ------------------------------------------------------------------------------ */

/* The token of a write that returned (and so committed): the primary's WAL position now. */
static int write_token(struct svc_store *st, int64_t id, int64_t version, bool deleted,
		       struct svc_token *tok, struct lg_error *err)
{
	struct lg_result *r = NULL;
	const char *text;
	int rc =
	    lg_pool_query(st->primary, "SELECT pg_current_wal_lsn()::text", NULL, 0, NULL, &r, err);
	if (rc == 0 && (lg_result_rows(r) != 1 || lg_result_text(r, 0, 0, &text, NULL) != 0 ||
			!svc_lsn_parse(text, &tok->lsn))) {
		rc = LG_EPROTO;
	}
	lg_result_free(r);
	tok->set = rc == 0;
	tok->id = id;
	tok->version = version;
	tok->deleted = deleted;
	return rc;
}

int svc_store_create(struct svc_store *st, const char *email, const char *name, json_t **user,
		     struct svc_token *tok, struct lg_error *err)
{
	struct users u = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &users_model, &u);
	users_set_email(&ch, email);
	if (name != NULL) {
		users_set_name(&ch, name);
	}
	int rc = lg_model_insert(&st->pdb, &ch, err);
	if (rc == 0) {
		*user = user_json(&u);
		rc = *user ? write_token(st, u.id, u.version, false, tok, err) : LG_ENOMEM;
	}
	lg_row_clear(&users_model, &u);
	return rc;
}

static int update_once(struct svc_store *st, int64_t id, const char *email, bool set_email,
		       const char *name, bool set_name, int64_t version, json_t **user,
		       struct svc_token *tok, struct lg_error *err)
{
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
	int rc = lg_model_update(&st->pdb, &ch, err);
	if (rc == 0) {
		*user = user_json(&u);
		rc = *user ? write_token(st, u.id, u.version, false, tok, err) : LG_ENOMEM;
	}
	lg_row_clear(&users_model, &u);
	return rc;
}

int svc_store_update(struct svc_store *st, int64_t id, const char *email, bool set_email,
		     const char *name, bool set_name, int64_t expect_version, json_t **user,
		     struct svc_token *tok, struct lg_error *err)
{
	if (expect_version != 0) {
		return update_once(st, id, email, set_email, name, set_name, expect_version, user,
				   tok, err);
	}
	for (int attempt = 0;; attempt++) {
		struct users cur = {0};
		struct lg_param key = lg_param_int64(id);
		int rc = lg_model_find(&st->pdb, &users_model, &key, &cur, err);
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
	struct users u = {.id = id};
	int rc = lg_model_delete(&st->pdb, &users_model, &u, err);
	return rc == 0 ? write_token(st, id, 0, true, tok, err) : rc;
}

/* ---- Life cycle -------------------------------------------------------------------------- */

static int open_pool(struct svc_store *st, const char *dsn, struct lg_pool **out,
		     struct lg_error *err)
{
	struct lg_pool_config pc = {
	    .conninfo = dsn, .min_conns = 2, .max_conns = st->cfg.pool_size};
	return lg_pool_new(st->rt, &pc, out, err);
}

int svc_store_new(struct lg_runtime *rt, const struct svc_store_config *cfg, struct svc_store **out,
		  struct lg_error *err)
{
	struct svc_store *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		return LG_ENOMEM;
	}
	st->rt = rt;
	st->cfg = *cfg;
	st->cfg.pool_size = cfg->pool_size ? cfg->pool_size : 8;
	st->cfg.max_lag_bytes = cfg->max_lag_bytes ? cfg->max_lag_bytes : 1024 * 1024;
	st->cfg.lag_sample_ms = cfg->lag_sample_ms ? cfg->lag_sample_ms : 200;
	int rc = open_pool(st, cfg->primary_dsn, &st->primary, err);
	if (rc == 0 && cfg->replica_dsn != NULL) {
		rc = open_pool(st, cfg->replica_dsn, &st->replica, err);
	}
	if (rc == 0 && cfg->redis_host != NULL) {
		struct lg_redis_config rc_cfg = {.host = cfg->redis_host, .port = cfg->redis_port};
		rc = lg_redis_new(rt, &rc_cfg, &st->redis, err);
		struct lg_cache_config cc = {.pool = st->primary, .redis = st->redis};
		rc = rc ? rc : lg_cache_new(&cc, &st->cache, err);
	}
	if (rc == 0) {
		struct lg_db p = {.pool = st->primary}, r = {.pool = st->replica};
		st->pdb = p;
		st->rdb = r;
		rc = lg_model_check(&st->pdb, &users_model, err);
	}
	if (rc == 0 && st->replica != NULL) {
		st->stats.replica_configured = true;
		rc = lg_coro_spawn(rt, sample_main, st, &st->sampler);
	}
	if (rc != 0) {
		svc_store_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

void svc_store_stop(struct svc_store *st)
{
	if (st->sampler != NULL) {
		lg_coro_cancel(st->sampler);
		lg_coro_join(st->sampler, LG_DEADLINE_NONE);
		st->sampler = NULL;
	}
}

void svc_store_free(struct svc_store *st)
{
	if (st == NULL) {
		return;
	}
	svc_store_stop(st);
	lg_cache_free(st->cache);
	lg_redis_free(st->redis);
	lg_pool_free(st->replica);
	lg_pool_free(st->primary);
	free(st);
}

void svc_store_get_stats(const struct svc_store *st, struct svc_store_stats *out)
{
	*out = st->stats;
	out->replica_healthy = replica_fresh(st);
	out->sample_age_ms = st->sampled_at_ms ? lg_now_ms() - st->sampled_at_ms : UINT64_MAX;
}

struct lg_pool *svc_store_primary(const struct svc_store *st)
{
	return st->primary;
}

struct lg_pool *svc_store_replica(const struct svc_store *st)
{
	return st->replica;
}

const struct lg_cache *svc_store_cache(const struct svc_store *st)
{
	return st->cache;
}

const struct lg_redis *svc_store_redis(const struct svc_store *st)
{
	return st->redis;
}
