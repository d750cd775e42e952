/*
 * Typed reads through the cache (libguard/cache.h, lg_model_find_cached).
 *
 * Happy path:
 *   1. The model's policy (lg_cache_policy_set) says it opted in; the key parameters become
 *      key text (integers, uuid, boolean, text; others are read as lg_model_find does).
 *   2. lg__cache_get (cache_read.c) with the policy's TTL (jittered) and the caller's
 *      min_version; a miss reads the contract's read statement through db (lg__db_run: the
 *      pool, the transaction, or the routed handle of libguard/db.h), so the row, its
 *      lg_version and its key text come from one statement on whichever server answered,
 *      and the fill carries that version.
 *   3. The row JSON (to_jsonb) becomes a one-row text-format PGresult with a column per model
 *      column (cache_json.c), decoded by the ORM's own decoder: hits and misses decode alike,
 *      and the row keeps the result as its lg_mem.
 * Failure modes: a value that does not decode into the model is read again as lg_model_find
 * does (counted in bypassed); Redis trouble is lg_cache's (served by the database).
 */
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "cache_int.h"
#include "libguard/db.h"
#include "error_int.h"
#include "model_int.h"
#include "pg_oid.h"

LG_API int lg_cache_policy_set(struct lg_cache *c, const struct lg_model *m,
			       const struct lg_cache_policy *p, struct lg_error *err)
{
	if (c == NULL || m == NULL || p == NULL || p->jitter_pct > 50) {
		return lg__error_set(err, LG_EINVAL, "lg_cache_policy_set: invalid arguments");
	}
	size_t i = 0;
	while (i < c->npolicies && c->policies[i].model != m) {
		i++;
	}
	if (i == LG__CACHE_MAX_POLICIES) {
		return lg__error_set(err, LG_ERANGE, "lg_cache_policy_set: more than %d models",
				     LG__CACHE_MAX_POLICIES);
	}
	bool schema = m->schema != NULL && m->schema[0] != '\0';
	if (snprintf(c->policies[i].table, sizeof(c->policies[i].table), "%s%s%s",
		     schema ? m->schema : "", schema ? "." : "",
		     m->table) >= (int)sizeof(c->policies[i].table)) {
		return lg__error_set(err, LG_ERANGE, "model %s: table name too long", m->table);
	}
	c->policies[i].model = m;
	c->policies[i].p = *p;
	if (c->policies[i].p.ttl_ms == 0) {
		c->policies[i].p.ttl_ms = c->ttl_ms;
	}
	c->npolicies += i == c->npolicies;
	return 0;
}

const struct lg__cache_policy *lg__cache_policy_of(const struct lg_cache *c,
						   const struct lg_model *m)
{
	for (size_t i = 0; i < c->npolicies; i++) {
		if (c->policies[i].model == m) {
			return &c->policies[i];
		}
	}
	return NULL;
}

/* ttl within +-pct %, from the cache's xorshift64 state. */
uint64_t lg__cache_ttl_jitter(struct lg_cache *c, uint64_t ttl, unsigned pct)
{
	if (pct == 0) {
		return ttl;
	}
	uint64_t x = c->jitter_state != 0 ? c->jitter_state : (uint64_t)(uintptr_t)c ^ lg_now_ms();
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->jitter_state = x;
	uint64_t span = ttl * pct / 100;
	uint64_t low = ttl - span;
	uint64_t t = low + (span != 0 ? x % (2 * span + 1) : 0);
	return t != 0 ? t : 1;
}

static uint64_t be_bytes(const unsigned char *b, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++) {
		v = v << 8 | b[i];
	}
	return v;
}

/* The key text of one parameter into buf; false when the cache cannot name it. */
bool lg__cache_key_text(const struct lg_param *p, char *buf, size_t size)
{
	const unsigned char *b = p->is_inline ? p->inline_buf : (const unsigned char *)p->value;
	if (p->is_null || b == NULL) {
		return false;
	}
	if (p->format == 0) {
		return snprintf(buf, size, "%.*s", p->length, (const char *)b) < (int)size;
	}
	switch (p->oid) {
	case LG__OID_INT4:
		return p->length == 4 &&
		       lg__contract_int_text(buf, size, (int32_t)(uint32_t)be_bytes(b, 4)) != 0;
	case LG__OID_INT8:
		return p->length == 8 &&
		       lg__contract_int_text(buf, size, (int64_t)be_bytes(b, 8)) != 0;
	case 21: /* int2 */
		return p->length == 2 &&
		       lg__contract_int_text(buf, size, (int16_t)(uint16_t)be_bytes(b, 2)) != 0;
	case LG__OID_BOOL:
		return p->length == 1 && snprintf(buf, size, "%s", b[0] ? "t" : "f") < (int)size;
	case LG__OID_UUID: {
		if (p->length != 16 || size < 37) {
			return false;
		}
		static const char hex[] = "0123456789abcdef";
		size_t o = 0;
		for (int i = 0; i < 16; i++) {
			o += (i == 4 || i == 6 || i == 8 || i == 10) ? (buf[o] = '-', 1) : 0;
			buf[o++] = hex[b[i] >> 4];
			buf[o++] = hex[b[i] & 15];
		}
		buf[o] = '\0';
		return true;
	}
	default:
		return false;
	}
}

/* The reader of a miss: the ORM's statement path on db. */
int lg__cache_read_db(void *ud, const char *sql, const struct lg_param *params, int n,
		      struct lg_result **out, struct lg_error *err)
{
	return lg__db_run(ud, sql, params, n, LG__DB_READ, out, err);
}

/* A hit decoded straight from Redis' reply (lg__cache_call.decode). */
struct find_decode {
	const struct lg_model *m;
	void *out;
	bool decoded;
};

static int find_decode(void *ud, const char *json, size_t len)
{
	struct find_decode *d = ud;
	int rc = lg__cache_decode(d->m, json, len, d->out);
	d->decoded = rc == 0;
	return rc;
}

LG_API int lg_model_find_cached(const struct lg_db *db, struct lg_cache *c,
				const struct lg_model *m, const struct lg_param *key,
				struct lg_find_opts *opts, void *out, struct lg_error *err)
{
	struct lg_find_opts none = {0};
	opts = opts != NULL ? opts : &none;
	opts->from_cache = false;
	if (c == NULL && db != NULL && db->dbh != NULL) {
		c = lg_dbh_cache(db->dbh); /* the handle's cache, when it was given one */
	}
	const struct lg__cache_policy *cp =
	    c != NULL && m != NULL ? lg__cache_policy_of(c, m) : NULL;
	const struct lg_cache_policy *pol = cp != NULL ? &cp->p : NULL;
	/* In a transaction the cache would hide the transaction's own writes (and a fill could
	 * publish a row that never commits): the transaction reads. */
	if (pol == NULL || opts->bypass || db->tx != NULL || lg__model_check(m) != 0) {
		if (c != NULL) {
			c->stats.bypassed++;
		}
		return lg_model_find(db, m, key, out, err);
	}
	uint64_t pk = lg__model_pk(m);
	size_t n = (size_t)__builtin_popcountll(pk);
	char text[LG__CACHE_MAX_PARTS][64];
	const char *parts[LG__CACHE_MAX_PARTS];
	for (size_t i = 0; i < n; i++) {
		if (n > LG__CACHE_MAX_PARTS ||
		    !lg__cache_key_text(&key[i], text[i], sizeof(text[i]))) {
			c->stats.bypassed++;
			return lg_model_find(db, m, key, out, err);
		}
		parts[i] = text[i];
	}
	const char *table = cp->table;
	struct find_decode dec = {.m = m, .out = out};
	struct lg__cache_call call = {
	    .ttl_ms = lg__cache_ttl_jitter(c, pol->ttl_ms, pol->jitter_pct),
	    .absent_ttl_ms = pol->absent_ttl_ms,
	    .min_version = opts->min_version,
	    .read = lg__cache_read_db,
	    .read_ud = (void *)(uintptr_t)db,
	    .decode = find_decode,
	    .decode_ud = &dec,
	};
	/* Read-your-writes: the version the caller's session wrote for this key (its <pk>
	 * part, what follows "p:t:" in a cache key). A session never shares a read either: one
	 * that started before its write may miss it. */
	char pk_text[LG__CACHE_KEY_MAX];
	if (db->session != NULL &&
	    lg_cache_key(pk_text, sizeof(pk_text), "p", "t", parts, n) == 0) {
		int64_t mine = lg_session_version(db->session, table, pk_text + 4);
		call.min_version = mine > call.min_version ? mine : call.min_version;
		call.no_share = true;
	}
	struct lg_cache_row row;
	int rc = lg__cache_get(c, table, parts, n, &call, &row, err);
	opts->from_cache = row.from_cache;
	if (rc == LG_ENOTFOUND) {
		lg_cache_row_clear(&row);
		return lg__error_set(err, LG_ENOTFOUND, "model %s: no row with that key", m->table);
	}
	if (rc != 0) {
		return rc;
	}
	if (dec.decoded && row.json == NULL) {
		return 0; /* a hit, decoded from the reply */
	}
	rc = lg__cache_decode(m, row.json, row.len, out);
	lg_cache_row_clear(&row);
	if (rc != 0) {
		/* A value this model cannot read (a column of another type, an array of more
		 * dimensions): the database answers as lg_model_find does. */
		c->stats.bypassed++;
		opts->from_cache = false;
		return lg_model_find(db, m, key, out, err);
	}
	return 0;
}
