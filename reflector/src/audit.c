/*
 * Continuous verification: compare cached keys with their rows on the primary.
 *
 * One round (rf__coh_audit):
 *   1. SCAN the next page of row keys (of one table, or all) from a cursor kept by the caller,
 *      and add the keys found stale in earlier rounds (to follow how long they stay stale).
 *   2. Read their rows from the primary (the batch read of coh_read.c).
 *   3. Ask the outbox which of the rows' versions it still holds: a change still in the outbox
 *      may not have reached Redis yet, so a key behind it is not counted.
 *   4. Only then read each key and its table fence from Redis (MGET): what Redis holds now
 *      must be at least every version whose change left the outbox in step 3 (the reflector
 *      writes Redis before it deletes the outbox row).
 *   5. Steps 2-4 again for the keys that look stale (audit_suspect). Between the steps of one
 *      look, writers commit and batches land: a row read in step 2 may be older than what
 *      Redis holds by step 4, a row may be deleted and inserted again. A suspect counts only
 *      when the two looks together prove it (audit_confirm).
 * A key is stale when Redis serves a value (not a tombstone, not below its table fence) that
 *   - is older than a change of its row that the reflector had applied (whose outbox row was
 *     gone) before Redis was read; or
 *   - has the row's version but other content; or
 *   - has a version the database did not have when it was read again (a commit it lost); or
 *   - belongs to a row that was deleted since, with the delete applied.
 * Keys a writer is updating while they are checked are never counted: see audit_confirm.
 *
 * The leader runs audit_keys_per_s keys a second, in up to ten rounds per sampler period
 * spread over the period (coh_watch.c); the CLI
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

/* Step 1: the next SCAN page plus the followed keys. */
static int audit_scan(struct rf_coh_session *s, struct rf_audit_state *a, const char *table,
		      size_t want, char ***keys, size_t *n_keys)
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
		char *k = strdup(key);
		if (k != NULL) {
			(*keys)[(*n_keys)++] = k;
		}
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
		/* One statement (one snapshot) and few passes over the outbox, which has no index
		 * on version or table (writers would pay for one): the audited versions are
		 * looked up with an uncorrelated IN, one filtered pass (a correlated EXISTS had
		 * PostgreSQL hash every pending version each round), and each distinct table is
		 * asked once whether it has a change pending (EXISTS: it stops at the first),
		 * not once per key (a full scan per key when nothing of it is pending). */
		static const char sql_t[] =
		    "WITH x AS (SELECT * FROM unnest($1::bigint[],"
		    " ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))"
		    " WITH ORDINALITY AS x(v, t, i)),"
		    " tp AS (SELECT d.t, EXISTS (SELECT 1 FROM lifeguard.outbox o"
		    " WHERE o.table_name = d.t) AS pending FROM (SELECT DISTINCT t FROM x) AS d)"
		    " SELECT x.v, x.v IN (SELECT o.version FROM lifeguard.outbox o"
		    " WHERE o.version = ANY($1::bigint[])), tp.pending"
		    " FROM x JOIN tp ON tp.t = x.t ORDER BY x.i";
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

/* One key of a pass: its row as read, whether the outbox still held its change, and what
 * Redis held afterwards. */
struct audit_item {
	const struct rf_key_work *k; /* Borrowed from the pass' plan; NULL: not judged */
	bool pending;                /* the row's version is still in the outbox */
	bool table_pending;          /* some change of its table is still in the outbox */
	bool readable;               /* Redis held a value readers would get (stored, row) */
	int64_t stored;
	const char *row; /* Borrowed from value */
	size_t row_len;
	struct lg_redis_reply *value; /* Owned: MGET key table-fence */
};

/* Steps 2-4 over keys[0..n): the item of keys[i] is items[i]. */
struct audit_pass {
	struct rf_plan plan;
	struct audit_item *items;
	size_t n;
};

static void audit_pass_free(struct audit_pass *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		lg_redis_reply_free(ps->items[i].value);
	}
	free(ps->items);
	rf_plan_free(&ps->plan);
	memset(ps, 0, sizeof(*ps));
}

/* What Redis holds for one key: a readable value (not a tombstone, not below its table fence,
 * not a foreign value) or not. */
static void audit_look(struct audit_item *it)
{
	const struct lg_redis_reply *r = it->value;
	it->readable = false;
	it->stored = -1;
	if (r == NULL || r->type != LG_REDIS_ARRAY || r->elements != 2 ||
	    r->element[0].type != LG_REDIS_STRING) {
		return; /* gone meanwhile: nothing to read */
	}
	const struct lg_redis_reply *value = &r->element[0];
	const struct lg_redis_reply *fence = &r->element[1];
	if (!lg__contract_value_parse(value->str, value->len, &it->stored, &it->row,
				      &it->row_len)) {
		return; /* a tombstone (a miss for readers) or a foreign value */
	}
	if (fence->type == LG_REDIS_STRING && it->stored < strtoll(fence->str, NULL, 10)) {
		return; /* below its table fence: readers treat it as absent */
	}
	it->readable = true;
}

static int audit_pass_run(struct rf_coh_session *s, char *const *keys, size_t n,
			  struct audit_pass *ps)
{
	const struct rf_config *cfg = s->coh->cfg;
	memset(ps, 0, sizeof(*ps));
	ps->items = calloc(n ? n : 1, sizeof(*ps->items));
	if (ps->items == NULL) {
		return COH_RETRY;
	}
	ps->n = n;
	for (size_t i = 0; i < n; i++) {
		char *tbl = NULL;
		char *pk = audit_key_parts(keys[i], cfg->key_prefix, &tbl);
		int arc = pk != NULL ? rf_plan_add(&ps->plan, (int64_t)i, tbl, pk, 'U', 1, 0) : 0;
		free(pk);
		free(tbl);
		if (arc != 0) {
			return COH_RETRY;
		}
	}
	if (n == 0 || ps->plan.n_changes == 0) {
		return COH_OK;
	}
	if (rf_plan_build(&ps->plan, cfg->key_prefix, cfg->fence_prefix) != 0) {
		return COH_RETRY;
	}
	for (size_t i = 0; i < ps->plan.n_keys; i++) {
		if (ps->plan.keys[i].state == RF_KEY_PENDING) {
			ps->plan.keys[i].state = RF_KEY_CACHED;
		}
	}
	int rc = rf__coh_read_rows(s, &ps->plan, false);
	size_t nc = ps->plan.n_changes;
	bool *pending = calloc(nc, sizeof(*pending));
	bool *table_pending = calloc(nc, sizeof(*table_pending));
	if (pending == NULL || table_pending == NULL) {
		rc = COH_RETRY;
	}
	if (rc == COH_OK) {
		rc = audit_pending(s, &ps->plan, pending, table_pending);
	}
	for (size_t i = 0; rc == COH_OK && i < nc; i++) {
		const struct rf_change *c = &ps->plan.changes[i];
		if (c->key_index == SIZE_MAX || c->bad != NULL) {
			continue;
		}
		const struct rf_key_work *k = &ps->plan.keys[c->key_index];
		if (k->state != RF_KEY_CACHED || k->read_bad != NULL || !k->read_done) {
			continue;
		}
		char fence_key[1200];
		if (lg__contract_table_fence(fence_key, sizeof(fence_key), cfg->fence_prefix,
					     c->table) != 0) {
			continue;
		}
		struct audit_item *it = &ps->items[c->id];
		struct lg_error err;
		if (lg_redis_command(s->redis,
				     &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)},
				     &it->value, &err, "MGET %s %s", keys[c->id], fence_key) != 0) {
			rf_log(RF_LOG_WARN, "audit.redis", "MGET: %s", err.message);
			rc = COH_RETRY;
			break;
		}
		it->k = k;
		it->pending = pending[i];
		it->table_pending = table_pending[i];
		audit_look(it);
	}
	free(pending);
	free(table_pending);
	return rc;
}

/* Whether the row read (k) and the value Redis holds (stored, row) disagree in content. */
static bool audit_other_content(const struct rf_key_work *k, const char *row, size_t row_len)
{
	int64_t v = 0;
	const char *want = NULL;
	size_t want_len = 0;
	if (!lg__contract_value_parse(k->value, k->value_len, &v, &want, &want_len)) {
		return false;
	}
	json_t *a = json_loadb(row, row_len, 0, NULL);
	json_t *b = json_loadb(want, want_len, 0, NULL);
	bool same = a != NULL && b != NULL && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return !same;
}

/* First look: why the key may be stale, or NULL. Its steps ran in order (row, outbox,
 * Redis), so a change that lands in between can make a fresh key look stale: a suspect is
 * only counted once audit_confirm agrees. */
static const char *audit_suspect(const struct audit_item *it)
{
	const struct rf_key_work *k = it->k;
	if (k == NULL || !it->readable) {
		return NULL;
	}
	if (!k->row_found) {
		return it->table_pending ? NULL : "the row is gone";
	}
	if (it->stored != k->row_version) {
		return it->stored > k->row_version || !it->pending ? "suspect" : NULL;
	}
	return audit_other_content(k, it->row, it->row_len) ? "suspect" : NULL;
}

/*
 * Second look at a suspect (b: row read at t4, outbox asked at t5, Redis read at t6), given
 * the first look's Redis read (a, at t3 < t4). Stale (the reason), or NULL. Each rule holds
 * whatever commits and batches land in between, because a row's version only rises (one
 * sequence, stamped at write time) and the reflector writes Redis before it deletes a change
 * from the outbox:
 *   - a readable value at t3 above the row's version at t4: the database never had it;
 *   - at t6 below the row's version at t4 whose change had left the outbox by t5: the
 *     reflector had already applied that change, so Redis must hold at least it;
 *   - at t6 the row's version at t4 with other content;
 *   - the row gone at t4, no change of its table left in the outbox at t5, and Redis holding
 *     at t6 the same readable version as at t3: that version existed before t4, so its row's
 *     delete (a higher version) had been applied by t5.
 */
static const char *audit_confirm(const struct audit_item *a, const struct audit_item *b,
				 int64_t *stored)
{
	const struct rf_key_work *k = b->k;
	*stored = b->stored;
	if (k == NULL) {
		return NULL;
	}
	if (a->readable && k->row_found && a->stored > k->row_version) {
		*stored = a->stored;
		return "version above the row's (a commit the database does not have)";
	}
	if (!b->readable) {
		return NULL;
	}
	if (!k->row_found) {
		return !b->table_pending && a->readable && a->stored == b->stored
			   ? "the row is gone and its delete was processed"
			   : NULL;
	}
	if (b->stored < k->row_version) {
		return b->pending ? NULL : "version below the row's, whose change was processed";
	}
	if (b->stored == k->row_version && audit_other_content(k, b->row, b->row_len)) {
		return "same version, other content";
	}
	return NULL;
}

/* Counts and reports one key judged stale (why) or fresh (why NULL). */
static void audit_record(struct rf_audit_state *a, struct rf_audit_round *out, const char *key,
			 const struct rf_key_work *k, const char *why, int64_t stored, uint64_t now)
{
	audit_follow(a, key, now, why != NULL);
	if (why == NULL) {
		return;
	}
	out->stale++;
	long long row = k->row_found ? (long long)k->row_version : 0;
	rf_log(RF_LOG_WARN, "audit.stale", "%s: Redis holds version %lld, the row %s%lld: %s", key,
	       (long long)stored, k->row_found ? "version " : "is gone, was ", row, why);
	if (a->report != NULL) {
		fprintf(a->report, "stale: %s: Redis holds version %lld, row %s%lld (%s)\n", key,
			(long long)stored, k->row_found ? "version " : "gone ", row, why);
	}
}

int rf__coh_audit(struct rf_coh_session *s, struct rf_audit_state *a, const char *table,
		  size_t want, struct rf_audit_round *out)
{
	memset(out, 0, sizeof(*out));
	if (a->cursor[0] == '\0') {
		snprintf(a->cursor, sizeof(a->cursor), "0");
	}
	char **keys = NULL;
	size_t n = 0;
	struct audit_pass first = {0};
	struct audit_pass second = {0};
	int rc = audit_scan(s, a, table, want, &keys, &n);
	if (rc == COH_OK) {
		rc = audit_pass_run(s, keys, n, &first);
	}
	/* The suspects, looked at again from the start. */
	char **sus = calloc(n ? n : 1, sizeof(*sus));
	size_t *sus_of = calloc(n ? n : 1, sizeof(*sus_of));
	size_t n_sus = 0;
	if (sus == NULL || sus_of == NULL) {
		rc = COH_RETRY;
	}
	uint64_t now = lg_now_ms();
	for (size_t i = 0; rc == COH_OK && i < n; i++) {
		const struct audit_item *it = &first.items[i];
		if (it->k == NULL) {
			continue;
		}
		out->checked++;
		if (audit_suspect(it) != NULL) {
			sus_of[n_sus] = i;
			sus[n_sus++] = keys[i];
		} else {
			audit_follow(a, keys[i], now, false);
		}
	}
	if (rc == COH_OK && n_sus > 0) {
		rc = audit_pass_run(s, sus, n_sus, &second);
	}
	for (size_t j = 0; rc == COH_OK && j < n_sus; j++) {
		const struct audit_item *b = &second.items[j];
		int64_t stored = -1;
		const char *why = audit_confirm(&first.items[sus_of[j]], b, &stored);
		audit_record(a, out, sus[j], b->k != NULL ? b->k : first.items[sus_of[j]].k, why,
			     stored, now);
	}
	if (rc != COH_OK) {
		out->checked = 0;
		out->stale = 0;
	}
	out->wrapped = strcmp(a->cursor, "0") == 0;
	audit_pass_free(&first);
	audit_pass_free(&second);
	for (size_t i = 0; i < n; i++) {
		free(keys[i]);
	}
	free(keys);
	free(sus);
	free(sus_of);
	return rc;
}
