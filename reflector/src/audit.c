/*
 * Continuous verification: compare cached keys with their rows on the primary.
 *
 * One round (rf__coh_audit):
 *   1. SCAN the next page of row keys (of one table, or all) from a cursor kept by the caller,
 *      and add the keys found stale in earlier rounds (to follow how long they stay stale).
 *   2. Read their rows from the primary (the batch read of coh_read.c).
 *   3. Ask the outbox which of the rows' versions it still holds: a change still in the outbox
 *      may not have reached Redis yet, so a key behind it is not counted.
 *   4. Only then GET each key and the table fence: what Redis holds now must be at least every
 *      version whose change left the outbox in step 3 (the reflector writes Redis before it
 *      deletes the outbox row).
 * A key is stale when its value is readable (not a tombstone, not below its table fence) and
 *   - its version is below the row's and the row's change has left the outbox; or
 *   - its version equals the row's but its row differs (version and content); or
 *   - its version is above the row's (a value of a commit the database does not have); or
 *   - the row is gone and no change of its table waits in the outbox.
 *
 * The leader runs a round every second for audit_keys_per_s keys (coh_watch.c); the CLI
 * `lifeguard-reflector audit` runs rounds until it has checked its sample. Failures end the
 * round (counted as nothing checked).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "coh_int.h"
#include "contract.h"
#include "log.h"

/* Splits a row key "<prefix>:<table>:<part>[:<part>...]" into the table and a JSON array of
 * the parts (Owned), undoing the key's escapes ('\' before ':' and '\'). NULL if it is not. */
static char *audit_key_parts(const char *key, const char *prefix, char **table)
{
	size_t pl = strlen(prefix);
	if (strncmp(key, prefix, pl) != 0 || key[pl] != ':') {
		return NULL;
	}
	const char *t = key + pl + 1;
	const char *colon = strchr(t, ':'); /* table names are schema.table, quote_ident'ed */
	bool quoted = false;
	for (const char *p = t; *p != '\0'; p++) {
		if (*p == '"') {
			quoted = !quoted;
		} else if (*p == ':' && !quoted) {
			colon = p;
			break;
		}
	}
	if (colon == NULL || colon == t) {
		return NULL;
	}
	json_t *parts = json_array();
	size_t len = strlen(colon + 1);
	char *part = malloc(len + 1);
	if (parts == NULL || part == NULL) {
		json_decref(parts);
		free(part);
		return NULL;
	}
	size_t n = 0;
	for (const char *p = colon + 1;; p++) {
		if (*p == '\\' && p[1] != '\0') {
			part[n++] = *++p;
		} else if (*p == ':' || *p == '\0') {
			part[n] = '\0';
			json_array_append_new(parts, json_string(part));
			n = 0;
			if (*p == '\0') {
				break;
			}
		} else {
			part[n++] = *p;
		}
	}
	free(part);
	char *text = json_dumps(parts, JSON_COMPACT);
	json_decref(parts);
	*table = strndup(t, (size_t)(colon - t));
	if (*table == NULL) {
		free(text);
		return NULL;
	}
	return text;
}

/* The stale keys being followed: found stale, re-checked every round until fresh. */
static void audit_follow(struct rf_audit_state *a, const char *key, uint64_t now, bool stale)
{
	for (size_t i = 0; i < a->n_followed; i++) {
		if (strcmp(a->followed[i].key, key) != 0) {
			continue;
		}
		if (!stale) {
			free(a->followed[i].key);
			a->followed[i] = a->followed[--a->n_followed];
		}
		return;
	}
	if (stale && a->n_followed < RF_AUDIT_FOLLOW) {
		char *k = strdup(key);
		if (k != NULL) {
			a->followed[a->n_followed].key = k;
			a->followed[a->n_followed].since_ms = now;
			a->n_followed++;
		}
	}
}

double rf_audit_oldest_stale_s(const struct rf_audit_state *a, uint64_t now)
{
	uint64_t oldest = now;
	for (size_t i = 0; i < a->n_followed; i++) {
		if (a->followed[i].since_ms < oldest) {
			oldest = a->followed[i].since_ms;
		}
	}
	return (double)(now - oldest) / 1000.0;
}

void rf_audit_state_free(struct rf_audit_state *a)
{
	for (size_t i = 0; i < a->n_followed; i++) {
		free(a->followed[i].key);
	}
	a->n_followed = 0;
}

/* Step 1: the next SCAN page plus the followed keys, into the plan. */
static int audit_scan(struct rf_coh_session *s, struct rf_audit_state *a, const char *table,
		      size_t want, struct rf_plan *p, char ***keys, size_t *n_keys)
{
	const struct rf_config *cfg = s->coh->cfg;
	char match[1200];
	if (table != NULL) {
		if (lg__contract_table_match(match, sizeof(match), cfg->key_prefix, table) != 0) {
			return COH_RETRY;
		}
	} else {
		char esc[1100];
		if (!lg__contract_glob_escape(esc, sizeof(esc), cfg->key_prefix)) {
			return COH_RETRY;
		}
		snprintf(match, sizeof(match), "%s:*", esc);
	}
	char count[24];
	snprintf(count, sizeof(count), "%zu", want < 10 ? (size_t)10 : want);
	const char *argv[] = {"SCAN", a->cursor, "MATCH", match, "COUNT", count};
	struct lg_redis_reply *r = NULL;
	struct lg_error err;
	int rc = lg_redis_commandv(s->redis,
				   &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)}, 6,
				   argv, NULL, &r, &err);
	if (rc != 0) {
		rf_log(RF_LOG_WARN, "audit.redis", "SCAN: %s", err.message);
		return COH_RETRY;
	}
	if (r->type != LG_REDIS_ARRAY || r->elements != 2 ||
	    r->element[0].type != LG_REDIS_STRING || r->element[0].len >= sizeof(a->cursor) ||
	    r->element[1].type != LG_REDIS_ARRAY) {
		lg_redis_reply_free(r);
		return COH_RETRY;
	}
	snprintf(a->cursor, sizeof(a->cursor), "%s", r->element[0].str);
	const struct lg_redis_reply *page = &r->element[1];
	size_t cap = page->elements + a->n_followed;
	*keys = calloc(cap ? cap : 1, sizeof(**keys));
	if (*keys == NULL) {
		lg_redis_reply_free(r);
		return COH_RETRY;
	}
	*n_keys = 0;
	for (size_t i = 0; i < cap; i++) {
		const char *key =
		    i < a->n_followed ? a->followed[i].key : page->element[i - a->n_followed].str;
		if (key == NULL || (i >= a->n_followed && *n_keys >= want + a->n_followed)) {
			continue;
		}
		bool dup = false;
		for (size_t f = 0; i >= a->n_followed && f < a->n_followed; f++) {
			dup = dup || strcmp(a->followed[f].key, key) == 0;
		}
		if (dup) {
			continue;
		}
		char *tbl = NULL;
		char *pk = audit_key_parts(key, cfg->key_prefix, &tbl);
		if (pk != NULL && rf_plan_add(p, (int64_t)*n_keys, tbl, pk, 'U', 1, 0) == 0) {
			(*keys)[(*n_keys)++] = strdup(key);
		}
		free(pk);
		free(tbl);
	}
	lg_redis_reply_free(r);
	return COH_OK;
}

/* Step 3: which row versions the outbox still holds (pending[i] for key i). */
static int audit_pending(struct rf_coh_session *s, const struct rf_plan *p, bool *pending,
			 bool *table_pending)
{
	json_t *vs = json_array();
	json_t *ts = json_array();
	for (size_t i = 0; i < p->n_changes; i++) {
		size_t ki = p->changes[i].key_index;
		const struct rf_key_work *k = ki != SIZE_MAX ? &p->keys[ki] : NULL;
		json_array_append_new(vs,
				      json_integer(k != NULL && k->row_found ? k->row_version : 0));
		json_array_append_new(ts, json_string(p->changes[i].table));
	}
	char *vt = json_dumps(vs, JSON_COMPACT);
	char *tt = json_dumps(ts, JSON_COMPACT);
	json_decref(vs);
	json_decref(ts);
	int rc = COH_RETRY;
	if (vt != NULL && tt != NULL) {
		/* JSON arrays to PostgreSQL arrays: '[..]' -> '{..}' for bigint[]; text via jsonb.
		 */
		vt[0] = '{';
		vt[strlen(vt) - 1] = '}';
		static const char sql_t[] =
		    "SELECT x.v, EXISTS (SELECT 1 FROM lifeguard.outbox o WHERE o.version = x.v),"
		    " EXISTS (SELECT 1 FROM lifeguard.outbox o WHERE o.table_name = x.t)"
		    " FROM unnest($1::bigint[], ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))"
		    " WITH ORDINALITY AS x(v, t, i) ORDER BY x.i";
		struct lg_param params[] = {lg_param_text(vt), lg_param_text(tt)};
		struct lg_result *r = NULL;
		struct lg_error err;
		if (lg_pool_query(s->pool, sql_t, params, 2, NULL, &r, &err) == 0) {
			for (int i = 0; i < lg_result_rows(r) && (size_t)i < p->n_changes; i++) {
				bool b = false;
				lg_result_bool(r, i, 1, &b);
				pending[i] = b;
				b = false;
				lg_result_bool(r, i, 2, &b);
				table_pending[i] = b;
			}
			rc = COH_OK;
		} else {
			rf_log(RF_LOG_WARN, "audit.postgres", "outbox: %s", err.message);
		}
		lg_result_free(r);
	}
	free(vt);
	free(tt);
	return rc;
}

/* Step 4 for one key: why it is stale, or NULL. */
static const char *audit_judge(const struct rf_key_work *k, const struct lg_redis_reply *value,
			       const struct lg_redis_reply *fence, bool pending, bool table_pending,
			       int64_t *stored)
{
	*stored = -1;
	if (value == NULL || value->type != LG_REDIS_STRING) {
		return NULL; /* gone meanwhile: nothing to read */
	}
	const char *row = NULL;
	size_t row_len = 0;
	if (!lg__contract_value_parse(value->str, value->len, stored, &row, &row_len)) {
		return NULL; /* a tombstone (a miss for readers) or a foreign value */
	}
	if (fence != NULL && fence->type == LG_REDIS_STRING &&
	    *stored < strtoll(fence->str, NULL, 10)) {
		return NULL; /* below its table fence: readers treat it as absent */
	}
	if (!k->row_found) {
		return table_pending ? NULL : "the row is gone";
	}
	if (*stored > k->row_version) {
		return "version above the row's (a commit the database does not have)";
	}
	if (*stored < k->row_version) {
		return pending ? NULL : "version below the row's, whose change was processed";
	}
	int64_t v = 0;
	const char *want = NULL;
	size_t want_len = 0;
	if (!lg__contract_value_parse(k->value, k->value_len, &v, &want, &want_len)) {
		return NULL;
	}
	json_t *a = json_loadb(row, row_len, 0, NULL);
	json_t *b = json_loadb(want, want_len, 0, NULL);
	bool same = a != NULL && b != NULL && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return same ? NULL : "same version, other content";
}

int rf__coh_audit(struct rf_coh_session *s, struct rf_audit_state *a, const char *table,
		  size_t want, struct rf_audit_round *out)
{
	memset(out, 0, sizeof(*out));
	if (a->cursor[0] == '\0') {
		snprintf(a->cursor, sizeof(a->cursor), "0");
	}
	struct rf_plan p;
	memset(&p, 0, sizeof(p));
	char **keys = NULL;
	size_t n = 0;
	int rc = audit_scan(s, a, table, want, &p, &keys, &n);
	const struct rf_config *cfg = s->coh->cfg;
	if (rc == COH_OK && n > 0 && rf_plan_build(&p, cfg->key_prefix, cfg->fence_prefix) != 0) {
		rc = COH_RETRY;
	}
	bool *pending = calloc(n ? n : 1, sizeof(*pending));
	bool *table_pending = calloc(n ? n : 1, sizeof(*table_pending));
	if (pending == NULL || table_pending == NULL) {
		rc = COH_RETRY;
	}
	if (rc == COH_OK && n > 0) {
		for (size_t i = 0; i < p.n_keys; i++) {
			if (p.keys[i].state == RF_KEY_PENDING) {
				p.keys[i].state = RF_KEY_CACHED;
			}
		}
		rc = rf__coh_read_rows(s, &p, false);
	}
	if (rc == COH_OK && n > 0) {
		rc = audit_pending(s, &p, pending, table_pending);
	}
	uint64_t now = lg_now_ms();
	for (size_t i = 0; rc == COH_OK && i < p.n_changes; i++) {
		const struct rf_change *c = &p.changes[i];
		if (c->key_index == SIZE_MAX || c->bad != NULL) {
			continue;
		}
		const struct rf_key_work *k = &p.keys[c->key_index];
		if (k->state != RF_KEY_CACHED || k->read_bad != NULL || !k->read_done) {
			continue;
		}
		char fence_key[1200];
		if (lg__contract_table_fence(fence_key, sizeof(fence_key), cfg->fence_prefix,
					     c->table) != 0) {
			continue;
		}
		struct lg_redis_reply *value = NULL;
		struct lg_redis_reply *fence = NULL;
		struct lg_error err;
		struct lg_redis_opts o = {lg_deadline_in(COH_REDIS_TIMEOUT_MS)};
		const char *key = keys[c->id];
		if (lg_redis_command(s->redis, &o, &value, &err, "GET %s", key) != 0 ||
		    lg_redis_command(s->redis, &o, &fence, &err, "GET %s", fence_key) != 0) {
			rf_log(RF_LOG_WARN, "audit.redis", "GET: %s", err.message);
			lg_redis_reply_free(value);
			rc = COH_RETRY;
			break;
		}
		int64_t stored = -1;
		const char *why =
		    audit_judge(k, value, fence, pending[i], table_pending[i], &stored);
		lg_redis_reply_free(value);
		lg_redis_reply_free(fence);
		out->checked++;
		audit_follow(a, key, now, why != NULL);
		if (why != NULL) {
			out->stale++;
			rf_log(RF_LOG_WARN, "audit.stale",
			       "%s: Redis holds version %lld, the row %s%lld: %s", key,
			       (long long)stored, k->row_found ? "version " : "is gone, was ",
			       (long long)(k->row_found ? k->row_version : 0), why);
			if (a->report != NULL) {
				fprintf(a->report,
					"stale: %s: Redis holds version %lld, row %s%lld (%s)\n",
					key, (long long)stored, k->row_found ? "version " : "gone ",
					(long long)(k->row_found ? k->row_version : 0), why);
			}
		}
	}
	out->wrapped = strcmp(a->cursor, "0") == 0;
	for (size_t i = 0; i < n; i++) {
		free(keys[i]);
	}
	free(keys);
	free(pending);
	free(table_pending);
	rf_plan_free(&p);
	return rc;
}
