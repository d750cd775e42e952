/*
 * lg_cache's catalog of tables (cache_int.h): the canonical name, the key columns and their
 * kinds, and the contract statements that read a row and canonicalize a key, looked up once
 * per cache and table spelling (lg__contract_catalog_sql).
 *
 * Happy path: the first caller of a table registers an entry marked loading and reads the
 * catalog; callers of the same table meanwhile wait on the cache's condition variable and
 * find the entry loaded when woken.
 *
 * Failure modes: not a table, no primary key, no lg_version column -> LG_EINVAL and no entry
 * (the next call looks again); more than LG__CACHE_MAX_TABLES tables -> LG_ERANGE; an entry
 * a read found changed is marked stale by cache_read.c and loaded anew on next use.
 */
#include <string.h>

#include "alloc_int.h"
#include "cache_int.h"
#include "error_int.h"
#include "pool_int.h"

void lg__cache_table_clear(struct lg__cache_table *t)
{
	lg__free(t->name);
	lg__free(t->canon);
	lg__free(t->fence);
	lg__free(t->read_sql);
	lg__free(t->batch_sql);
	lg__free(t->canon_sql);
}

/* A contract statement built by fn into an Owned string (NULL when out of memory). */
static char *cache_sql(size_t (*fn)(char *, size_t, const char *, const struct lg__contract_col *,
				    size_t),
		       const char *table, const struct lg__contract_col *cols, size_t n)
{
	size_t len = fn(NULL, 0, table, cols, n);
	char *sql = lg__malloc(len + 1);
	if (sql != NULL) {
		fn(sql, len + 1, table, cols, n);
	}
	return sql;
}

static size_t cache_canon_sql(char *buf, size_t size, const char *table,
			      const struct lg__contract_col *cols, size_t n)
{
	(void)table;
	return lg__contract_canon_sql(buf, size, cols, n);
}

/* Builds the read and canonicalization statements from the catalog rows in r. */
static int cache_table_fill(const struct lg_cache *c, struct lg__cache_table *t,
			    const struct lg_result *r, struct lg_error *err)
{
	const char *canon = NULL;
	bool versioned = false;
	int n = lg_result_rows(r);
	if (n > LG__CACHE_MAX_PARTS || lg_result_text(r, 0, 0, &canon, NULL) != 0 ||
	    lg_result_bool(r, 0, 3, &versioned) != 0) {
		return lg__error_set(err, LG_EPROTO, "lg_cache: unexpected catalog answer");
	}
	if (!versioned) {
		return lg__error_set(err, LG_EINVAL,
				     "lg_cache: %s is not reflected (no lg_version)", canon);
	}
	struct lg__contract_col cols[LG__CACHE_MAX_PARTS];
	for (int i = 0; i < n; i++) {
		if (lg_result_text(r, i, 1, &cols[i].name, NULL) != 0 ||
		    lg_result_text(r, i, 2, &cols[i].type, NULL) != 0) {
			return lg__error_set(err, LG_EPROTO, "lg_cache: unexpected catalog answer");
		}
		cols[i].kind = t->kinds[i] = lg__contract_kind(cols[i].type);
	}
	t->nkeys = (size_t)n;
	t->read_sql = cache_sql(lg__contract_read_one_sql, canon, cols, t->nkeys);
	t->batch_sql = cache_sql(lg__contract_read_batch_sql, canon, cols, t->nkeys);
	t->canon_sql = cache_sql(cache_canon_sql, canon, cols, t->nkeys);
	t->canon = lg__strdup(canon);
	size_t fence_len = strlen(c->fence_prefix) + 1 + strlen(canon) + 1;
	t->fence = lg__malloc(fence_len);
	if (t->read_sql == NULL || t->batch_sql == NULL || t->canon_sql == NULL ||
	    t->canon == NULL || t->fence == NULL) {
		return lg__error_set(err, LG_ENOMEM, "lg_cache: out of memory");
	}
	if (lg__contract_table_fence(t->fence, fence_len, c->fence_prefix, canon) != 0) {
		return lg__error_set(err, LG_ERANGE, "lg_cache: table name too long");
	}
	return 0;
}

/* Looks table up in the catalog into t (whose name is set). */
static int cache_table_load(struct lg_cache *c, struct lg__cache_table *t, struct lg_error *err)
{
	struct lg_param p = lg_param_text(t->name);
	struct lg_result *r = NULL;
	struct lg_query_opts read = {.flags = LG_QUERY_SHARED_READ};
	int rc = lg_pool_query(c->pool, lg__contract_catalog_sql, &p, 1, &read, &r, err);
	if (rc == LG_ESERVER &&
	    (strncmp(err->sqlstate, "42", 2) == 0 || strncmp(err->sqlstate, "22", 2) == 0)) {
		return lg__error_set(err, LG_EINVAL, "lg_cache: %s does not name a table", t->name);
	}
	if (rc != 0) {
		return rc;
	}
	if (lg_result_rows(r) == 0) {
		lg_result_free(r);
		return lg__error_set(err, LG_EINVAL,
				     "lg_cache: table %s does not exist or has no primary key",
				     t->name);
	}
	rc = cache_table_fill(c, t, r, err);
	lg_result_free(r);
	return rc;
}

int lg__cache_table_get(struct lg_cache *c, const char *table, struct lg__cache_table **out,
			struct lg_error *err)
{
	for (;;) {
		struct lg__cache_table *found = NULL;
		for (size_t i = 0; i < c->ntables && found == NULL; i++) {
			if (!c->tables[i]->stale && strcmp(c->tables[i]->name, table) == 0) {
				found = c->tables[i];
			}
		}
		if (found == NULL) {
			break;
		}
		if (!found->loading) {
			*out = found;
			return 0;
		}
		if (lg_coro_self() == NULL) {
			break; /* outside a coroutine nobody can wait: look it up ourselves */
		}
		int rc = lg_cond_wait(c->loaded, LG_DEADLINE_NONE);
		if (rc != 0) {
			return lg__error_set(err, rc, "lg_cache: waiting for the catalog: %s",
					     lg_strerror(rc));
		}
	}
	if (c->ntables == LG__CACHE_MAX_TABLES) {
		return lg__error_set(err, LG_ERANGE, "lg_cache: more than %d tables",
				     LG__CACHE_MAX_TABLES);
	}
	struct lg__cache_table *t = lg__calloc(1, sizeof(*t));
	struct lg__cache_table **grown = lg__realloc(c->tables, (c->ntables + 1) * sizeof(*grown));
	if (grown != NULL) {
		c->tables = grown;
	}
	if (t == NULL || grown == NULL || (t->name = lg__strdup(table)) == NULL) {
		lg__free(t);
		return lg__error_set(err, LG_ENOMEM, "lg_cache: out of memory");
	}
	t->loading = true;
	c->tables[c->ntables++] = t;
	int rc = cache_table_load(c, t, err);
	t->loading = false;
	lg_cond_broadcast(c->loaded);
	if (rc != 0) {
		/* Waiters look the array up again when woken: nobody holds a failed entry. */
		for (size_t i = 0; i < c->ntables; i++) {
			if (c->tables[i] == t) {
				c->tables[i] = c->tables[--c->ntables];
				break;
			}
		}
		lg__cache_table_clear(t);
		lg__free(t);
		return rc;
	}
	*out = t;
	return 0;
}
