/*
 * Typed reads of many keys through the cache (lg_model_find_many_cached, libguard/cache.h).
 *
 * Happy path:
 *   1. The keys' canonical text (the client-side kinds only: integers, uuid, boolean, text).
 *   2. One MGET of every row key and the table fence; hits (not below the table fence, nor
 *      below the caller's version for that key) decode into their rows, absent markers answer
 *      "not found".
 *   3. The misses: Redis' TIME, then one statement through db (the contract's batch read:
 *      $1 a JSON array of the keys) returning each found row's ordinal, lg_version and JSON;
 *      each row decodes into its slot and is filled (fenced, with its version), each key
 *      without a row gets the absent marker when the policy caches absence.
 * Failure modes: Redis failing -> every key is read from the database (no fill); a key type
 * the cache cannot name, no policy, bypass or a transaction -> lg_model_find per key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "cache_int.h"
#include "error_int.h"
#include "libguard/db.h"
#include "model_int.h"

#define MANY_MAX 1000

/* The canonical text of key i's parts, npk per key, and its Redis key. */
struct many_key {
	char parts[LG__CACHE_MAX_PARTS][64];
	const char *p[LG__CACHE_MAX_PARTS];
	char *key;
	int64_t min_version;
	bool done;
};

static int each_uncached(const struct lg_db *db, const struct lg_model *m,
			 const struct lg_param *keys, size_t n, size_t npk, void *rows, bool *found,
			 struct lg_error *err)
{
	for (size_t i = 0; i < n; i++) {
		void *row = (char *)rows + i * m->size;
		int rc = lg_model_find(db, m, keys + i * npk, row, err);
		found[i] = rc == 0;
		if (rc == LG_ENOTFOUND) {
			lg_row_clear(m, row);
		} else if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* Step 1 for key i; false when the cache cannot name it. */
static bool many_name(struct lg_cache *c, const struct lg__cache_table *t, const char *table,
		      const struct lg_db *db, const struct lg_param *key, struct many_key *k)
{
	char buf[LG__CACHE_KEY_MAX];
	for (size_t j = 0; j < t->nkeys; j++) {
		if (!lg__cache_key_text(&key[j], buf, sizeof(buf)) ||
		    lg__contract_canon(t->kinds[j], buf, k->parts[j], sizeof(k->parts[j])) != 0) {
			return false;
		}
		k->p[j] = k->parts[j];
	}
	if (lg_cache_key(buf, sizeof(buf), c->key_prefix, t->canon, k->p, t->nkeys) != 0 ||
	    (k->key = lg__strdup(buf)) == NULL) {
		return false;
	}
	if (db->session != NULL && lg_cache_key(buf, sizeof(buf), "p", "t", k->p, t->nkeys) == 0) {
		int64_t mine = lg_session_version(db->session, table, buf + 4);
		k->min_version = mine > k->min_version ? mine : k->min_version;
	}
	return true;
}

/* JSON string of s into o (at most size bytes): false when it does not fit. */
static bool json_str(char *o, size_t size, size_t *at, const char *s)
{
	size_t n = *at;
	for (const char *p = s; n + 8 < size && *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\') {
			o[n++] = '\\';
			o[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(o + n, size - n, "\\u%04x", ch);
		} else {
			o[n++] = (char)ch;
		}
	}
	if (n + 8 >= size) {
		return false;
	}
	*at = n;
	return true;
}

/* $1 of the batch read: [["p1","p2"],...] of the keys not done, in order. */
static char *many_keys_json(const struct many_key *ks, size_t n, size_t npk)
{
	size_t size = n * (npk * 6 * 64 + 8) + 16;
	char *o = lg__malloc(size);
	size_t at = 0;
	if (o == NULL) {
		return NULL;
	}
	o[at++] = '[';
	for (size_t i = 0, first = 1; i < n; i++) {
		if (ks[i].done) {
			continue;
		}
		at += (size_t)snprintf(o + at, size - at, "%s[", first ? "" : ",");
		first = 0;
		for (size_t j = 0; j < npk; j++) {
			at += (size_t)snprintf(o + at, size - at, "%s\"", j ? "," : "");
			if (!json_str(o, size, &at, ks[i].p[j])) {
				lg__free(o);
				return NULL;
			}
			o[at++] = '"';
		}
		o[at++] = ']';
	}
	o[at++] = ']';
	o[at] = '\0';
	return o;
}

struct many {
	struct lg_cache *c;
	const struct lg_model *m;
	const struct lg__cache_table *t;
	const struct lg_cache_policy *pol;
	struct many_key *ks;
	size_t n;
	void *rows;
	bool *found;
	const char *table_fence; /* t->fence */
};

/* Step 2: one MGET; hits and markers are done. False when Redis did not answer. */
static bool many_redis(struct many *w, size_t *nhits)
{
	const char **argv = lg__malloc((w->n + 2) * sizeof(*argv));
	if (argv == NULL) {
		return false;
	}
	argv[0] = "MGET";
	for (size_t i = 0; i < w->n; i++) {
		argv[i + 1] = w->ks[i].key;
	}
	argv[w->n + 1] = w->table_fence;
	struct lg_redis_reply *v = NULL;
	struct lg_redis_opts ropts = {lg_deadline_in(w->c->redis_timeout_ms)};
	bool ok =
	    lg_redis_commandv(w->c->redis, &ropts, (int)w->n + 2, argv, NULL, &v, NULL) == 0 &&
	    v->type == LG_REDIS_ARRAY && v->elements == w->n + 1;
	lg__free(argv);
	if (!ok) {
		lg_redis_reply_free(v);
		w->c->stats.redis_errors++;
		return false;
	}
	const struct lg_redis_reply *tf = &v->element[w->n];
	int64_t table_v = tf->type == LG_REDIS_STRING ? strtoll(tf->str, NULL, 10) : 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct lg_redis_reply *e = &v->element[i];
		const char *json = NULL;
		size_t len = 0;
		int64_t ver = 0;
		void *row = (char *)w->rows + i * w->m->size;
		int64_t floor = w->ks[i].min_version > table_v ? w->ks[i].min_version : table_v;
		if (e->type != LG_REDIS_STRING) {
			continue;
		}
		if (lg__contract_value_parse(e->str, e->len, &ver, &json, &len) && ver >= floor &&
		    lg__cache_decode(w->m, json, len, row) == 0) {
			w->found[i] = w->ks[i].done = true;
		} else if (lg__contract_absent_parse(e->str, e->len, &ver) && ver >= floor) {
			w->found[i] = false;
			w->ks[i].done = true;
			lg_row_clear(w->m, row);
			w->c->stats.absent_hits++;
		}
		*nhits += w->ks[i].done;
	}
	lg_redis_reply_free(v);
	return true;
}

/* Step 3: the misses in one statement, each row decoded and filled. */
static int many_read(struct many *w, const struct lg_db *db, bool fill, struct lg_error *err)
{
	long long read_ms = 0;
	fill = fill && lg__cache_clock(w->c, &read_ms);
	size_t *slot = lg__malloc(w->n * sizeof(*slot));
	char *keys = many_keys_json(w->ks, w->n, w->t->nkeys);
	if (slot == NULL || keys == NULL) {
		lg__free(slot);
		lg__free(keys);
		return lg__error_set(err, LG_ENOMEM, "lg_cache: out of memory");
	}
	size_t nmiss = 0;
	for (size_t i = 0; i < w->n; i++) {
		if (!w->ks[i].done) {
			slot[nmiss++] = i;
		}
	}
	struct lg_param p = lg_param_text(keys);
	struct lg_result *r = NULL;
	uint64_t started = lg_now_ms();
	int rc = lg__cache_read_db((void *)(uintptr_t)db, w->t->batch_sql, &p, 1, &r, err);
	lg__free(keys);
	fill = fill && lg_now_ms() - started < w->c->fill_deadline_ms;
	for (int ri = 0; rc == 0 && ri < lg_result_rows(r); ri++) {
		int64_t ord = 0;
		struct lg_cache_row row = {.version = 0};
		const char *json = NULL;
		if (lg_result_int64(r, ri, 0, &ord) != 0 || ord < 1 || (size_t)ord > nmiss ||
		    (!lg_result_is_null(r, ri, 1) &&
		     lg_result_int64(r, ri, 1, &row.version) != 0) ||
		    lg_result_text(r, ri, 2, &json, &row.len) != 0) {
			rc = lg__error_set(err, LG_EPROTO, "lg_cache: unexpected batch answer");
			break;
		}
		size_t i = slot[ord - 1];
		struct many_key *k = &w->ks[i];
		rc = lg__cache_decode(w->m, json, row.len, (char *)w->rows + i * w->m->size);
		if (rc != 0) {
			rc = lg__error_set(err, rc, "model %s: a row does not decode", w->m->table);
			break;
		}
		w->found[i] = k->done = true;
		char fence[LG__CACHE_KEY_MAX];
		row.json = (char *)(uintptr_t)json;
		if (fill && lg_cache_key(fence, sizeof(fence), w->c->fence_prefix, w->t->canon,
					 k->p, w->t->nkeys) == 0) {
			lg__cache_fill_row(
			    w->c, k->key, fence, w->table_fence, &row,
			    lg__cache_ttl_jitter(w->c, w->pol->ttl_ms, w->pol->jitter_pct),
			    read_ms);
		}
	}
	lg_result_free(r);
	for (size_t j = 0; rc == 0 && j < nmiss; j++) {
		struct many_key *k = &w->ks[slot[j]];
		if (!k->done) {
			w->found[slot[j]] = false;
			lg_row_clear(w->m, (char *)w->rows + slot[j] * w->m->size);
			if (fill && w->pol->absent_ttl_ms != 0) {
				lg__cache_fill_absent(w->c, w->t, k->p, k->key, w->table_fence,
						      w->pol->absent_ttl_ms, read_ms);
			}
		}
	}
	lg__free(slot);
	return rc;
}

LG_API int lg_model_find_many_cached(const struct lg_db *db, struct lg_cache *c,
				     const struct lg_model *m, const struct lg_param *keys,
				     size_t n, void *rows, bool *found, struct lg_find_opts *opts,
				     struct lg_error *err)
{
	struct lg_find_opts none = {0};
	opts = opts != NULL ? opts : &none;
	opts->from_cache = false;
	if (db == NULL || m == NULL || (n > 0 && (keys == NULL || rows == NULL || found == NULL)) ||
	    n > MANY_MAX || lg__model_check(m) != 0) {
		return lg__error_set(err, LG_EINVAL,
				     "lg_model_find_many_cached: invalid arguments");
	}
	if (c == NULL && db->dbh != NULL) {
		c = lg_dbh_cache(db->dbh); /* the handle's cache, when it was given one */
	}
	size_t npk = (size_t)__builtin_popcountll(lg__model_pk(m));
	const struct lg__cache_policy *cp = c != NULL ? lg__cache_policy_of(c, m) : NULL;
	const struct lg_cache_policy *pol = cp != NULL ? &cp->p : NULL;
	const char *table = cp != NULL ? cp->table : "";
	struct many w = {.c = c, .m = m, .pol = pol, .n = n, .rows = rows, .found = found};
	struct lg__cache_table *t = NULL;
	struct lg_error terr;
	if (n == 0 || pol == NULL || opts->bypass || db->tx != NULL ||
	    lg__cache_table_get(c, table, &t, &terr) != 0 || t->nkeys != npk ||
	    (w.ks = lg__calloc(n, sizeof(*w.ks))) == NULL) {
		if (c != NULL) {
			c->stats.bypassed += n;
		}
		return each_uncached(db, m, keys, n, npk, rows, found, err);
	}
	w.t = t;
	w.table_fence = t->fence;
	bool named = true;
	for (size_t i = 0; named && i < n; i++) {
		w.ks[i].min_version = opts->min_version;
		named = many_name(c, t, table, db, keys + i * npk, &w.ks[i]);
	}
	int rc = 0;
	if (!named) {
		c->stats.bypassed += n;
		rc = each_uncached(db, m, keys, n, npk, rows, found, err);
	} else {
		size_t nhits = 0;
		bool redis_ok = many_redis(&w, &nhits);
		c->stats.hits += nhits;
		c->stats.misses += n - nhits;
		opts->from_cache = nhits == n;
		rc = nhits < n ? many_read(&w, db, redis_ok, err) : 0;
	}
	for (size_t i = 0; i < n; i++) {
		lg__free(w.ks[i].key);
	}
	lg__free(w.ks);
	return rc;
}
