/*
 * The canonical text of a caller's key parts for lg_cache (cache_int.h): the Redis key a read
 * looks up is the one the reflector refreshes, whatever the caller's spelling.
 *
 * Happy path: every part is of a kind the contract canonicalizes client-side (integers, uuid,
 * boolean, text) and spelled in a plain form: no round trip. Otherwise one pooled, shared
 * read asks PostgreSQL (lg__contract_canon_sql: parsed and printed under the contract's fixed
 * settings) for the text of every part.
 *
 * Failure modes: a spelling PostgreSQL rejects for the column's type -> LG_EINVAL (nothing is
 * read or cached); parts longer than the key buffer -> LG_ERANGE; errors of the primary as
 * lg_pool_query.
 */
#include <stdio.h>
#include <string.h>

#include "cache_int.h"
#include "error_int.h"

/* Appends text of len bytes to buf at *used; false when it does not fit. */
static bool key_store(char *buf, size_t size, size_t *used, const char *text, size_t len,
		      const char **out)
{
	if (*used + len + 1 > size) {
		return false;
	}
	memcpy(buf + *used, text, len);
	buf[*used + len] = '\0';
	*out = buf + *used;
	*used += len + 1;
	return true;
}

/* The database's canonical text of every part. */
static int key_ask_db(struct lg_pool *pool, const char *canon_sql, size_t n,
		      const char *const *parts, char *buf, size_t size, const char **out,
		      struct lg_error *err)
{
	struct lg_param params[LG__CACHE_MAX_PARTS];
	for (size_t i = 0; i < n; i++) {
		params[i] = lg_param_text(parts[i]);
	}
	struct lg_query_opts opts = {.flags = LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	struct lg_result *r = NULL;
	int rc = lg_pool_query(pool, canon_sql, params, (int)n, &opts, &r, err);
	if (rc == LG_ESERVER && strncmp(err->sqlstate, "22", 2) == 0) {
		char why[LG_ERROR_MSG_SIZE];
		snprintf(why, sizeof(why), "%s", err->message); /* err is rewritten below */
		return lg__error_set(err, LG_EINVAL,
				     "lg_cache: key does not parse as the key columns' types: %s",
				     why);
	}
	if (rc != 0) {
		return rc;
	}
	size_t used = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *text = NULL;
		size_t len = 0;
		if (lg_result_rows(r) != 1 || lg_result_text(r, 0, (int)i, &text, &len) != 0) {
			rc = lg__error_set(err, LG_EPROTO, "lg_cache: unexpected key answer");
		} else if (!key_store(buf, size, &used, text, len, &out[i])) {
			rc = lg__error_set(err, LG_ERANGE, "lg_cache: key too long");
		}
	}
	lg_result_free(r);
	return rc;
}

int lg__cache_canon(struct lg_pool *pool, const char *canon_sql,
		    const enum lg__contract_kind *kinds, size_t n, const char *const *parts,
		    char *buf, size_t size, const char **out, struct lg_error *err)
{
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = lg__contract_canon(kinds[i], parts[i], buf + used, size - used);
		if (rc == LG__CONTRACT_ASK_DB) {
			return key_ask_db(pool, canon_sql, n, parts, buf, size, out, err);
		}
		if (rc != 0) {
			return lg__error_set(err, LG_ERANGE, "lg_cache: key too long");
		}
		out[i] = buf + used;
		used += strlen(out[i]) + 1;
	}
	return 0;
}
