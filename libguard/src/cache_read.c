/*
 * Cache-aside reads of reflected rows (libguard/cache.h).
 *
 * Happy path of lg_cache_get:
 *   1. Resolve the table once per cache: canonical quote_ident(schema).quote_ident(table) (the
 *      reflector's key spelling), key columns and their types, lg_version present.
 *   2. Make the caller's key parts canonical (cache_key.c: client-side for plain integers,
 *      uuids, booleans and text, else one read that PostgreSQL renders under the contract's
 *      fixed settings), so "01", "+1" or an upper-case uuid name the key the reflector
 *      refreshes.
 *   3. MGET <key_prefix>:<table>:<escaped key> and the table fence: one native command, so a
 *      hit costs Redis what a GET does. A value {"v":V,"row":R} with V not below the table
 *      fence is a hit: R is returned. (Values below it predate a TRUNCATE: absent.)
 *   4. Otherwise take Redis' clock (TIME), then read to_jsonb(row), lg_version and the row's
 *      own canonical key text from the primary (one statement, pooled); coroutines that miss
 *      the same key meanwhile wait for this read (cache_flight.c).
 *   5. If the read took less than fill_deadline_ms, run LG_CACHE_FILL on the key built from
 *      the row's key text (never the caller's: for types whose equality is looser than their
 *      text, numeric 1.5 = 1.50, the row's spelling is the one the reflector refreshes) with
 *      the row's version and the clock of step 4: Redis stores it only while its clock is
 *      less than fill_deadline_ms past that reading (the deadline holds even for a fill that
 *      Redis runs long after this client gave up on it), no key fence or table fence is newer
 *      and the key does not already hold a newer value. The row read is returned either way:
 *      it came from the primary.
 *   6. Negative caching (absent_ttl_ms): a read that finds no row fills the absent marker
 *      {"v":0,"absent":true} the same way; a later GET of a marker answers LG_ENOTFOUND. The
 *      reflector refreshes a marker like any cached value, so an INSERT replaces it.
 *
 * Failure modes: Redis unreachable or failing -> served from the primary, redis_errors++
 * (no fill). The table is gone or changed -> LG_EINVAL, the catalog entry is dropped so the
 * next call looks again. Errors of the primary are returned as they are (the cache adds none).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "cache_int.h"
#include "libguard/cache.h"
#include "pool_int.h"
#include "redis_int.h"

#define CACHE_KEY_MAX   LG__CACHE_KEY_MAX
#define CACHE_MAX_PARTS LG__CACHE_MAX_PARTS

LG_API int lg_cache_new(const struct lg_cache_config *cfg, struct lg_cache **out,
			struct lg_error *err)
{
	if (cfg == NULL || cfg->pool == NULL || cfg->redis == NULL || out == NULL) {
		return lg__error_set(err, LG_EINVAL, "lg_cache_new: pool and redis are required");
	}
	struct lg_cache *c = lg__calloc(1, sizeof(*c));
	if (c == NULL) {
		return lg__error_set(err, LG_ENOMEM, "lg_cache_new: out of memory");
	}
	c->pool = cfg->pool;
	c->redis = cfg->redis;
	c->key_prefix = lg__strdup(cfg->key_prefix != NULL ? cfg->key_prefix : "lifeguard:model");
	c->fence_prefix =
	    lg__strdup(cfg->fence_prefix != NULL ? cfg->fence_prefix : "lifeguard:fence");
	c->ttl_ms = cfg->ttl_ms != 0 ? cfg->ttl_ms : 300000;
	c->fill_deadline_ms = cfg->fill_deadline_ms != 0 ? cfg->fill_deadline_ms : 1000;
	c->redis_timeout_ms = cfg->redis_timeout_ms != 0 ? cfg->redis_timeout_ms : 250;
	c->absent_ttl_ms = cfg->absent_ttl_ms;
	if (c->key_prefix == NULL || c->fence_prefix == NULL) {
		lg_cache_free(c);
		return lg__error_set(err, LG_ENOMEM, "lg_cache_new: out of memory");
	}
	if (c->key_prefix[0] == '\0' || c->fence_prefix[0] == '\0') {
		lg_cache_free(c);
		return lg__error_set(err, LG_EINVAL, "lg_cache_new: empty key or fence prefix");
	}
	if (lg_cond_new(c->pool->rt, &c->loaded) != 0) {
		lg_cache_free(c);
		return lg__error_set(err, LG_ENOMEM, "lg_cache_new: out of memory");
	}
	int rc = lg_redis_script_init(&c->fill, lg_cache_script_source(LG_CACHE_FILL), err);
	if (rc != 0) {
		lg_cache_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

LG_API void lg_cache_free(struct lg_cache *c)
{
	if (c == NULL) {
		return;
	}
	for (size_t i = 0; i < c->ntables; i++) {
		lg__cache_table_clear(c->tables[i]);
		lg__free(c->tables[i]);
	}
	lg__free(c->tables);
	if (c->loaded != NULL) {
		lg_cond_free(c->loaded);
	}
	lg__free(c->key_prefix);
	lg__free(c->fence_prefix);
	lg__free(c);
}

LG_API void lg_cache_row_clear(struct lg_cache_row *row)
{
	if (row != NULL) {
		lg__free(row->json);
		memset(row, 0, sizeof(*row));
	}
}

LG_API void lg_cache_get_stats(const struct lg_cache *c, struct lg_cache_stats *out)
{
	*out = c->stats;
	struct lg_redis_stats rs;
	lg_redis_get_stats(c->redis, &rs);
	out->redis_breaker = rs.breaker;
	out->redis_connect_attempts = rs.connect_attempts;
	out->redis_breaker_opens = rs.breaker_opens;
}

/* What the MGET of a key and its table fence answered (step 3). */
struct cache_lookup {
	const struct lg__cache_call *call;
	struct lg_cache_row *row;
	bool answered;       /* a two-element array came back */
	bool hit;            /* row holds the value (json, or decoded by call->decode) */
	bool absent;         /* an absent marker at absent_v */
	bool stale_for_call; /* a value older than call->min_version */
	int64_t absent_v;
};

/*
 * Reads the MGET reply where hiredis holds it. A hit is a value exactly {"v":<digits>,
 * "row":<json>} not below the table fence (older values predate a TRUNCATE the reflector
 * processed: absent, swept or not) nor below the caller's own write; tombstones and others
 * are misses. The row is decoded or copied from the reply: nothing else is copied.
 */
static int cache_lookup_visit(void *ud, const redisReply *rep)
{
	struct cache_lookup *l = ud;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
		return 0;
	}
	l->answered = true;
	const redisReply *v = rep->element[0];
	const redisReply *fence = rep->element[1];
	int64_t table_v = fence->type == REDIS_REPLY_STRING ? strtoll(fence->str, NULL, 10) : 0;
	const char *json = NULL;
	size_t len = 0;
	int64_t version = 0;
	if (v->type != REDIS_REPLY_STRING) {
		return 0;
	}
	if (lg__contract_value_parse(v->str, v->len, &version, &json, &len)) {
		if (version < table_v) {
			return 0;
		}
		if (version < l->call->min_version) {
			l->stale_for_call = true;
			return 0;
		}
		l->row->version = version;
		l->row->from_cache = true;
		if (l->call->decode != NULL &&
		    l->call->decode(l->call->decode_ud, json, len) == 0) {
			l->hit = true;
			return 0;
		}
		if ((l->row->json = lg__malloc(len + 1)) == NULL) {
			return 0; /* a miss: the database answers */
		}
		memcpy(l->row->json, json, len);
		l->row->json[len] = '\0';
		l->row->len = len;
		l->hit = true;
	} else if (lg__contract_absent_parse(v->str, v->len, &version) && version >= table_v) {
		l->stale_for_call = version < l->call->min_version;
		l->absent = !l->stale_for_call;
		l->absent_v = version;
	}
	return 0;
}

/* The fenced fill of value (a row's or an absent marker, of version) just read from the
 * database; read_ms is Redis' clock (TIME) taken before the read. True when written. */
bool lg__cache_fill(struct lg_cache *c, const char *key, const char *fence, const char *table_fence,
		    int64_t version, const char *value, size_t len, uint64_t ttl_ms,
		    long long read_ms)
{
	char v[24];
	char ttl[24];
	char read_at[24];
	char max_age[24];
	snprintf(v, sizeof(v), "%" PRId64, version);
	snprintf(ttl, sizeof(ttl), "%" PRIu64, ttl_ms);
	snprintf(read_at, sizeof(read_at), "%lld", read_ms);
	snprintf(max_age, sizeof(max_age), "%" PRIu64, c->fill_deadline_ms);
	const char *keys[] = {key, fence, table_fence};
	const char *args[] = {v, value, ttl, read_at, max_age};
	const size_t arg_lens[] = {strlen(v), len, strlen(ttl), strlen(read_at), strlen(max_age)};
	struct lg_redis_reply *reply = NULL;
	struct lg_error err;
	enum lg__contract_answer a = LG__ANSWER_OTHER;
	if (lg_redis_eval(c->redis, &c->fill, 3, keys, NULL, 5, args, arg_lens,
			  &(struct lg_redis_opts){lg_deadline_in(c->redis_timeout_ms)}, &reply,
			  &err) != 0) {
		c->stats.redis_errors++;
		return false;
	}
	a = lg__contract_answer(reply != NULL ? reply->str : NULL);
	lg_redis_reply_free(reply);
	if (a == LG__ANSWER_FILLED) {
		c->stats.fills++;
	} else if (a == LG__ANSWER_LATE) {
		c->stats.fills_late++;
	} else {
		c->stats.fills_refused++;
	}
	return a == LG__ANSWER_FILLED;
}

void lg__cache_fill_row(struct lg_cache *c, const char *key, const char *fence,
			const char *table_fence, const struct lg_cache_row *row, uint64_t ttl_ms,
			long long read_ms)
{
	char *value = lg__malloc(lg__contract_value_len(row->version, row->len) + 1);
	if (value == NULL) {
		return;
	}
	size_t n = lg__contract_value_write(value, row->version, row->json, row->len);
	(void)lg__cache_fill(c, key, fence, table_fence, row->version, value, n, ttl_ms, read_ms);
	lg__free(value);
}

/*
 * Negative caching: the absent marker of a key whose row the read did not find. It carries
 * version 0, below every change's version: a transaction still in flight when the read's
 * snapshot was taken may already hold any version the sequence handed out (even one below
 * versions that committed before the snapshot), so no higher version is known to precede
 * every INSERT the read could not see. With 0, any key fence refuses the marker and the
 * reflector's refresh of any later INSERT replaces it (docs/read-path.md).
 */
void lg__cache_fill_absent(struct lg_cache *c, const struct lg__cache_table *t,
			   const char *const *canon, const char *key, const char *table_fence,
			   uint64_t ttl_ms, long long read_ms)
{
	char fence[CACHE_KEY_MAX];
	char value[64];
	size_t n = lg__contract_absent_write(value, sizeof(value), 0);
	if (n >= sizeof(value) ||
	    lg_cache_key(fence, sizeof(fence), c->fence_prefix, t->canon, canon, t->nkeys) != 0) {
		return;
	}
	if (lg__cache_fill(c, key, fence, table_fence, 0, value, n, ttl_ms, read_ms)) {
		c->stats.absent_fills++;
	}
}

/* Redis' TIME in ms into *ms; false when Redis does not answer. */
bool lg__cache_clock(struct lg_cache *c, long long *ms)
{
	struct lg_redis_reply *t = NULL;
	const char *argv[] = {"TIME"};
	struct lg_redis_opts ropts = {lg_deadline_in(c->redis_timeout_ms)};
	bool ok = lg_redis_commandv(c->redis, &ropts, 1, argv, NULL, &t, NULL) == 0 &&
		  t->type == LG_REDIS_ARRAY && t->elements == 2 &&
		  t->element[0].type == LG_REDIS_STRING && t->element[1].type == LG_REDIS_STRING;
	if (ok) {
		*ms = strtoll(t->element[0].str, NULL, 10) * 1000 +
		      strtoll(t->element[1].str, NULL, 10) / 1000;
	} else {
		c->stats.redis_errors++;
	}
	lg_redis_reply_free(t);
	return ok;
}

/* The Redis key and key fence of the row read in r (its own key text). */
static int cache_row_keys(const struct lg_cache *c, const struct lg__cache_table *t,
			  const struct lg_result *r, char *key, char *fence)
{
	const char *parts[CACHE_MAX_PARTS];
	for (size_t i = 0; i < t->nkeys; i++) {
		if (lg_result_text(r, 0, (int)i + 2, &parts[i], NULL) != 0) {
			return LG_EPROTO;
		}
	}
	if (lg_cache_key(key, CACHE_KEY_MAX, c->key_prefix, t->canon, parts, t->nkeys) != 0 ||
	    lg_cache_key(fence, CACHE_KEY_MAX, c->fence_prefix, t->canon, parts, t->nkeys) != 0) {
		return LG_ERANGE;
	}
	return 0;
}

/* Step 4: the row from the primary, and the keys its own key text names. */
static int cache_read(struct lg__cache_table *t, struct lg_cache *c,
		      const struct lg__cache_call *call, const char *const *parts,
		      struct lg_cache_row *row, char *key, char *fence, struct lg_error *err)
{
	struct lg_param params[CACHE_MAX_PARTS];
	for (size_t i = 0; i < t->nkeys; i++) {
		params[i] = lg_param_text(parts[i]);
	}
	struct lg_query_opts opts = {.flags = LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	struct lg_result *r = NULL;
	int rc = call->read != NULL
		     ? call->read(call->read_ud, t->read_sql, params, (int)t->nkeys, &r, err)
		     : lg_pool_query(c->pool, t->read_sql, params, (int)t->nkeys, &opts, &r, err);
	if (rc == LG_ESERVER && strncmp(err->sqlstate, "22", 2) == 0) {
		return lg__error_set(err, LG_EINVAL, "lg_cache: key does not match %s's key types",
				     t->canon);
	}
	if (rc == LG_ESERVER && strncmp(err->sqlstate, "42", 2) == 0) {
		t->stale = true; /* changed under us: look it up again next time */
		return rc;
	}
	if (rc != 0) {
		return rc;
	}
	if (lg_result_rows(r) == 0) {
		lg_result_free(r);
		return lg__error_set(err, LG_ENOTFOUND, "lg_cache: no such row");
	}
	const char *json = NULL;
	size_t len = 0;
	int64_t version = 0;
	/* A row not written since reflect() has no version yet: 0 is below every change's
	 * version, so every fence of a later change still refuses this fill. */
	if (!lg_result_is_null(r, 0, 1) && lg_result_int64(r, 0, 1, &version) != 0) {
		lg_result_free(r);
		return lg__error_set(err, LG_EPROTO, "lg_cache: lg_version is not an integer");
	}
	rc = cache_row_keys(c, t, r, key, fence);
	if (rc != 0) {
		lg_result_free(r);
		return lg__error_set(err, rc, "lg_cache: %s",
				     rc == LG_ERANGE ? "key too long" : "unexpected row answer");
	}
	if (lg_result_text(r, 0, 0, &json, &len) != 0 ||
	    (row->json = lg__malloc(len + 1)) == NULL) {
		lg_result_free(r);
		return lg__error_set(err, LG_ENOMEM, "lg_cache: out of memory");
	}
	memcpy(row->json, json, len);
	row->json[len] = '\0';
	row->len = len;
	row->version = version;
	row->from_cache = false;
	lg_result_free(r);
	return 0;
}

LG_API int lg_cache_get(struct lg_cache *c, const char *table, const char *const *parts,
			size_t nparts, struct lg_cache_row *row, struct lg_error *err)
{
	if (c == NULL) {
		return lg__error_set(err, LG_EINVAL, "lg_cache_get: invalid arguments");
	}
	struct lg__cache_call call = {.ttl_ms = c->ttl_ms, .absent_ttl_ms = c->absent_ttl_ms};
	return lg__cache_get(c, table, parts, nparts, &call, row, err);
}

int lg__cache_get(struct lg_cache *c, const char *table, const char *const *parts, size_t nparts,
		  const struct lg__cache_call *call, struct lg_cache_row *row, struct lg_error *err)
{
	if (c == NULL || table == NULL || parts == NULL || row == NULL || nparts == 0 ||
	    nparts > CACHE_MAX_PARTS) {
		return lg__error_set(err, LG_EINVAL, "lg_cache_get: invalid arguments");
	}
	memset(row, 0, sizeof(*row));
	struct lg__cache_table *t = NULL;
	int rc = lg__cache_table_get(c, table, &t, err);
	if (rc != 0) {
		return rc;
	}
	if (nparts != t->nkeys) {
		return lg__error_set(err, LG_EINVAL,
				     "lg_cache_get: %s has %zu key columns, got %zu", t->canon,
				     t->nkeys, nparts);
	}
	char text[CACHE_KEY_MAX];
	const char *canon[CACHE_MAX_PARTS];
	rc = lg__cache_canon(c->pool, t->canon_sql, t->kinds, nparts, parts, text, sizeof(text),
			     canon, err);
	if (rc != 0) {
		return rc;
	}
	char key[CACHE_KEY_MAX];
	const char *table_fence = t->fence;
	if (lg_cache_key(key, sizeof(key), c->key_prefix, t->canon, canon, nparts) != 0) {
		return lg__error_set(err, LG_ERANGE, "lg_cache_get: key too long");
	}
	/* Step 3: one native MGET of the row key and the table fence (the hit path costs Redis
	 * what a GET does; no script). */
	struct lg_error rerr;
	const char *mget[] = {"MGET", key, table_fence};
	struct cache_lookup look = {.call = call, .row = row};
	bool redis_ok =
	    lg__redis_commandv_visit(c->redis, lg_deadline_in(c->redis_timeout_ms), 3, mget, NULL,
				     cache_lookup_visit, &look, &rerr) == 0 &&
	    look.answered;
	if (!redis_ok) {
		c->stats.redis_errors++;
	}
	bool hit = redis_ok && look.hit;
	bool absent = redis_ok && look.absent;
	int64_t absent_v = look.absent_v;
	if (!hit) {
		lg_cache_row_clear(row); /* a failed call may have left a half-read row */
	}
	if (look.stale_for_call) {
		/* Older than the caller's own write: a miss, read from the database. */
		c->stats.stale_for_caller++;
	}
	if (hit) {
		c->stats.hits++;
		return 0;
	}
	if (absent) {
		c->stats.hits++;
		c->stats.absent_hits++;
		row->from_cache = true;
		row->version = absent_v;
		return lg__error_set(err, LG_ENOTFOUND, "lg_cache: no such row (cached absence)");
	}
	c->stats.misses++;
	/* A caller with a version to honour never joins a read that may have started before
	 * its write. */
	struct lg__cache_flight *mine = NULL;
	rc = call->min_version > 0 || call->no_share
		 ? LG__CACHE_LOAD
		 : lg__cache_flight_join(&c->flights, c->pool->rt, key, &mine, row, err);
	if (rc != LG__CACHE_LOAD) {
		c->stats.coalesced++;
		return rc;
	}
	/* Redis' clock before the read: LG_CACHE_FILL measures the fill deadline from it. */
	long long read_ms = 0;
	redis_ok = redis_ok && lg__cache_clock(c, &read_ms);
	uint64_t started = lg_now_ms();
	char row_key[CACHE_KEY_MAX];
	char row_fence[CACHE_KEY_MAX];
	rc = cache_read(t, c, call, canon, row, row_key, row_fence, err);
	bool fill = redis_ok && (rc == 0 || (rc == LG_ENOTFOUND && call->absent_ttl_ms != 0));
	if (fill && lg_now_ms() - started >= c->fill_deadline_ms) {
		c->stats.fills_late++;
	} else if (fill && rc == 0) {
		lg__cache_fill_row(c, row_key, row_fence, table_fence, row, call->ttl_ms, read_ms);
	} else if (fill) {
		lg__cache_fill_absent(c, t, canon, key, table_fence, call->absent_ttl_ms, read_ms);
	}
	lg__cache_flight_publish(&c->flights, mine, rc, row, err);
	return rc;
}
