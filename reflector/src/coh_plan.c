/*
 * Batch planning (see coh_plan.h).
 *
 * Steps: validate each change (a table name, an op, a key that is a JSON array of strings for
 * row changes and NULL for TRUNCATE) -> sort the row changes by (table, key, version) -> one
 * work entry per distinct key with the newest version and its op -> one TRUNCATE entry per
 * table with its newest version -> keys of a truncated table whose newest version is older
 * than the TRUNCATE are superseded.
 *
 * Failure modes: a malformed change gets a reason (it goes to lifeguard.outbox_dead, never
 * retried forever, never a crash); out of memory returns -1 and the caller retries the batch.
 */
#include "coh_plan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

#define PLAN_KEY_MAX 2048

int rf_plan_add(struct rf_plan *p, int64_t id, const char *table, const char *pk, char op,
		int64_t version, int64_t created_us)
{
	if (p->n_changes == p->cap_changes) {
		size_t cap = p->cap_changes ? p->cap_changes * 2 : 64;
		struct rf_change *grown = realloc(p->changes, cap * sizeof(*grown));
		if (grown == NULL) {
			return -1;
		}
		p->changes = grown;
		p->cap_changes = cap;
	}
	struct rf_change *c = &p->changes[p->n_changes];
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->op = op;
	c->version = version;
	c->created_us = created_us;
	c->key_index = SIZE_MAX;
	if ((table != NULL && (c->table = strdup(table)) == NULL) ||
	    (pk != NULL && (c->pk = strdup(pk)) == NULL)) {
		free(c->table);
		return -1;
	}
	p->n_changes++;
	return 0;
}

/*
 * Skips one identifier as quote_ident() writes it: lower-case/digit/_/$ starting with a
 * letter or _, or double-quoted with "" for a quote. NULL when malformed.
 */
static const char *plan_ident(const char *p)
{
	if (*p == '"') {
		for (p++; *p != '\0'; p++) {
			if (*p == '"' && p[1] == '"') {
				p++;
			} else if (*p == '"') {
				return p + 1;
			}
		}
		return NULL;
	}
	if (!((*p >= 'a' && *p <= 'z') || *p == '_' || (unsigned char)*p >= 0x80)) {
		return NULL;
	}
	while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '$' ||
	       (unsigned char)*p >= 0x80) {
		p++;
	}
	return p;
}

/* True for quote_ident(schema) || '.' || quote_ident(table): keys of different tables can
 * then never collide (':' only ever appears quoted, and parts escape it). */
static bool plan_table_ok(const char *t)
{
	const char *p = plan_ident(t);
	if (p == NULL || *p != '.') {
		return false;
	}
	p = plan_ident(p + 1);
	return p != NULL && *p == '\0';
}

/* Reason a change cannot be processed, or NULL. */
static const char *plan_check(const struct rf_change *c)
{
	if (c->table == NULL || c->table[0] == '\0' || strlen(c->table) > 512) {
		return "missing or oversized table_name";
	}
	if (!plan_table_ok(c->table)) {
		return "table_name is not quote_ident(schema).quote_ident(table)";
	}
	if (c->version <= 0) {
		return "version is not positive";
	}
	if (c->op == 'T') {
		return c->pk == NULL ? NULL : "TRUNCATE carries a key";
	}
	if (c->op != 'I' && c->op != 'U' && c->op != 'D') {
		return "unknown op";
	}
	if (c->pk == NULL) {
		return "row change without a key";
	}
	return NULL;
}

/* Parses a key: a non-empty JSON array of strings. NULL when malformed. */
static json_t *plan_parse_key(const char *pk)
{
	json_error_t jerr;
	json_t *a = json_loads(pk, JSON_REJECT_DUPLICATES, &jerr);
	if (a == NULL) {
		return NULL;
	}
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > 32) {
		json_decref(a);
		return NULL;
	}
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

struct plan_sort_item {
	struct rf_change *c;
	json_t *parts;
	char *pk; /* canonical text */
};

static int plan_cmp(const void *a, const void *b)
{
	const struct plan_sort_item *x = a;
	const struct plan_sort_item *y = b;
	int r = strcmp(x->c->table, y->c->table);
	if (r == 0) {
		r = strcmp(x->pk, y->pk);
	}
	if (r == 0) {
		r = (x->c->version > y->c->version) - (x->c->version < y->c->version);
	}
	return r;
}

static int plan_cmp_key(const struct plan_sort_item *x, const struct plan_sort_item *y)
{
	int r = strcmp(x->c->table, y->c->table);
	return r != 0 ? r : strcmp(x->pk, y->pk);
}

/* Builds "<prefix>:<table>:<parts...>" (Owned) or NULL. */
static char *plan_key(const char *prefix, const char *table, json_t *parts)
{
	size_t n = json_array_size(parts);
	const char *strs[32];
	for (size_t i = 0; i < n; i++) {
		strs[i] = json_string_value(json_array_get(parts, i));
	}
	char buf[PLAN_KEY_MAX];
	if (lg_cache_key(buf, sizeof(buf), prefix, table, strs, n) != 0) {
		return NULL;
	}
	return strdup(buf);
}

static int plan_truncate(struct rf_plan *p, const struct rf_change *c, const char *prefix,
			 const char *fence_prefix)
{
	for (size_t i = 0; i < p->n_truncates; i++) {
		if (strcmp(p->truncates[i].table, c->table) == 0) {
			if (c->version > p->truncates[i].version) {
				p->truncates[i].version = c->version;
			}
			return 0;
		}
	}
	struct rf_truncate_work *grown =
	    realloc(p->truncates, (p->n_truncates + 1) * sizeof(*grown));
	if (grown == NULL) {
		return -1;
	}
	p->truncates = grown;
	struct rf_truncate_work *t = &p->truncates[p->n_truncates];
	memset(t, 0, sizeof(*t));
	t->table = c->table;
	t->version = c->version;
	char fence[PLAN_KEY_MAX];
	char match[PLAN_KEY_MAX];
	if (lg__contract_table_fence(fence, sizeof(fence), fence_prefix, c->table) != 0 ||
	    lg__contract_table_match(match, sizeof(match), prefix, c->table) != 0 ||
	    (t->fence_key = strdup(fence)) == NULL || (t->match = strdup(match)) == NULL) {
		free(t->fence_key);
		return -1;
	}
	p->n_truncates++;
	return 0;
}

/* Groups sorted items into key work entries. */
static int plan_group(struct rf_plan *p, struct plan_sort_item *items, size_t n, const char *prefix,
		      const char *fence_prefix)
{
	p->keys = calloc(n ? n : 1, sizeof(*p->keys));
	if (p->keys == NULL) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		bool last = i + 1 == n || plan_cmp_key(&items[i], &items[i + 1]) != 0;
		items[i].c->key_index = p->n_keys;
		if (!last) {
			json_decref(items[i].parts);
			free(items[i].pk);
			continue;
		}
		struct rf_key_work *k = &p->keys[p->n_keys++];
		k->table = items[i].c->table;
		k->parts = items[i].parts;
		k->pk = items[i].pk;
		k->version = items[i].c->version;
		k->op = items[i].c->op;
		k->redis_key = plan_key(prefix, k->table, k->parts);
		k->fence_key = plan_key(fence_prefix, k->table, k->parts);
		if (k->redis_key == NULL || k->fence_key == NULL) {
			/* Only oversized keys fail here besides OOM: dead-letter them. */
			k->state = RF_KEY_BAD;
			k->bad = "key too long for a Redis key";
		}
	}
	return 0;
}

int rf_plan_build(struct rf_plan *p, const char *prefix, const char *fence_prefix)
{
	struct plan_sort_item *items = calloc(p->n_changes ? p->n_changes : 1, sizeof(*items));
	if (items == NULL) {
		return -1;
	}
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < p->n_changes && rc == 0; i++) {
		struct rf_change *c = &p->changes[i];
		c->bad = plan_check(c);
		if (c->bad != NULL) {
			continue;
		}
		if (c->op == 'T') {
			rc = plan_truncate(p, c, prefix, fence_prefix);
			continue;
		}
		json_t *parts = plan_parse_key(c->pk);
		if (parts == NULL) {
			c->bad = "key is not a JSON array of strings";
			continue;
		}
		char *canon = json_dumps(parts, JSON_COMPACT | JSON_ENCODE_ANY);
		if (canon == NULL) {
			json_decref(parts);
			rc = -1;
			break;
		}
		items[n++] = (struct plan_sort_item){c, parts, canon};
	}
	if (rc == 0) {
		qsort(items, n, sizeof(*items), plan_cmp);
		rc = plan_group(p, items, n, prefix, fence_prefix);
	} else {
		for (size_t i = 0; i < n; i++) {
			json_decref(items[i].parts);
			free(items[i].pk);
		}
	}
	free(items);
	for (size_t i = 0; rc == 0 && i < p->n_keys; i++) {
		for (size_t t = 0; t < p->n_truncates; t++) {
			if (p->keys[i].state == RF_KEY_PENDING &&
			    strcmp(p->keys[i].table, p->truncates[t].table) == 0 &&
			    p->keys[i].version < p->truncates[t].version) {
				p->keys[i].state = RF_KEY_SUPERSEDED;
			}
		}
	}
	return rc;
}

void rf_plan_free(struct rf_plan *p)
{
	for (size_t i = 0; i < p->n_changes; i++) {
		free(p->changes[i].table);
		free(p->changes[i].pk);
	}
	for (size_t i = 0; i < p->n_keys; i++) {
		json_decref(p->keys[i].parts);
		free(p->keys[i].pk);
		free(p->keys[i].redis_key);
		free(p->keys[i].fence_key);
		free(p->keys[i].value);
	}
	for (size_t i = 0; i < p->n_truncates; i++) {
		free(p->truncates[i].fence_key);
		free(p->truncates[i].match);
	}
	free(p->changes);
	free(p->keys);
	free(p->truncates);
	memset(p, 0, sizeof(*p));
}

char *rf_plan_read_sql(const char *table, const struct lg__contract_col *cols, size_t n)
{
	size_t len = lg__contract_read_batch_sql(NULL, 0, table, cols, n);
	char *buf = malloc(len + 1);
	if (buf != NULL) {
		lg__contract_read_batch_sql(buf, len + 1, table, cols, n);
	}
	return buf;
}

char *rf_plan_value(int64_t version, const char *row_json, size_t row_len, size_t *out_len)
{
	char *v = malloc(lg__contract_value_len(version, row_len) + 1);
	if (v != NULL) {
		*out_len = lg__contract_value_write(v, version, row_json, row_len);
	}
	return v;
}
