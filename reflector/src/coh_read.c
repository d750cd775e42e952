/*
 * Reading the rows of cached keys from the primary for a batch: one statement per table
 * (keys arrive sorted by table), built from a per-session catalog entry (canonical name, key
 * columns and types, lg_version present) that is looked up again after 10 s or when a read
 * says the table changed.
 *
 * Failure modes: a table that is gone, unreflected or misnamed, and keys whose text does not
 * cast to the key column types (found by reading the table's keys one by one after the batch
 * read failed with a data exception) get a reason in read_bad: they are dead-lettered, never
 * retried forever. Any other failure is COH_RETRY (the batch rolls back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coh_int.h"
#include "log.h"

#define COH_TABLE_TTL_MS 10000

/* Server errors that no retry can fix: data exceptions (22) and undefined objects (42). */
bool rf__coh_permanent(int rc, const struct lg_error *err)
{
	return rc == LG_ESERVER &&
	       (strncmp(err->sqlstate, "22", 2) == 0 || strncmp(err->sqlstate, "42", 2) == 0);
}

int rf__coh_pg_failed(struct rf_coh_session *s, const struct lg_error *err, const char *what)
{
	rf_log(RF_LOG_WARN, "coherence.postgres", "term %llu: %s: %s", (unsigned long long)s->term,
	       what, err->message);
	return COH_RETRY;
}

/*
 * Fills t from the contract's catalog query. COH_RETRY on transient failures (t is then left
 * as it was). Lanes share the entry: its fields change only after the query, all at once.
 */
static int coh_table_load(struct rf_coh_session *s, struct coh_table *t)
{
	struct lg_param name = lg_param_text(t->name);
	struct lg_result *r = NULL;
	struct lg_error err;
	int rc = lg_pool_query(s->pool, lg__contract_catalog_sql, &name, 1, NULL, &r, &err);
	const char *bad = NULL;
	char *read_sql = NULL;
	if (rc != 0) {
		if (!rf__coh_permanent(rc, &err)) {
			return rf__coh_pg_failed(s, &err, "reading the catalog");
		}
		bad = "table_name does not name a table";
	}
	int n = rc == 0 ? lg_result_rows(r) : 0;
	struct lg__contract_col cols[32];
	const char *canon = NULL;
	bool reflected = false;
	if (bad != NULL) {
		n = 0; /* the name does not parse as a table: nothing to read */
	} else if (n == 0) {
		bad = "table does not exist or has no primary key";
	} else if (n > 32 || lg_result_text(r, 0, 0, &canon, NULL) != 0 ||
		   lg_result_bool(r, 0, 3, &reflected) != 0) {
		bad = "unexpected catalog answer";
	} else if (strcmp(canon, t->name) != 0) {
		bad = "table_name is not quote_ident(schema).quote_ident(table)";
	} else if (!reflected) {
		bad = "table is not reflected (no lg_version column)";
	}
	for (int i = 0; bad == NULL && i < n; i++) {
		if (lg_result_text(r, i, 1, &cols[i].name, NULL) != 0 ||
		    lg_result_text(r, i, 2, &cols[i].type, NULL) != 0) {
			bad = "unexpected catalog answer";
		}
		cols[i].kind = bad == NULL ? lg__contract_kind(cols[i].type) : LG__KEY_DB;
	}
	if (bad == NULL && (read_sql = rf_plan_read_sql(canon, cols, (size_t)n)) == NULL) {
		lg_result_free(r);
		return COH_RETRY;
	}
	lg_result_free(r);
	free(t->read_sql);
	t->read_sql = read_sql;
	t->bad = bad;
	t->loaded_ms = lg_now_ms();
	return COH_OK;
}

/* The cached catalog entry for name, loading it when missing or older than the TTL. An
 * entry is never moved or freed while the session lives (lanes may hold it across a wait). */
static int coh_table_get(struct rf_coh_session *s, const char *name, struct coh_table **out)
{
	uint64_t now = lg_now_ms();
	for (size_t i = 0; i < s->n_tables; i++) {
		struct coh_table *t = s->tables[i];
		if (strcmp(t->name, name) == 0) {
			*out = t;
			if (now - t->loaded_ms < COH_TABLE_TTL_MS || t->loading) {
				return t->read_sql != NULL || t->bad != NULL ? COH_OK : COH_RETRY;
			}
			t->loading = true;
			int rc = coh_table_load(s, t);
			t->loading = false;
			/* A failed reload keeps the entry it had (the next read tries again). */
			return t->read_sql != NULL || t->bad != NULL ? COH_OK : rc;
		}
	}
	struct coh_table **grown = realloc(s->tables, (s->n_tables + 1) * sizeof(*grown));
	if (grown == NULL) {
		return COH_RETRY;
	}
	s->tables = grown;
	struct coh_table *t = calloc(1, sizeof(*t));
	if (t == NULL || (t->name = strdup(name)) == NULL) {
		free(t);
		return COH_RETRY;
	}
	s->tables[s->n_tables++] = t;
	*out = t;
	t->loading = true;
	int rc = coh_table_load(s, t);
	t->loading = false;
	return rc;
}

/* Runs the read for keys idx[0..n) of one table and stores each row on its key. */
static int coh_read(struct rf_coh_session *s, struct coh_table *t, struct rf_plan *p,
		    const size_t *idx, size_t n, struct lg_error *err)
{
	size_t len = 2;
	for (size_t i = 0; i < n; i++) {
		len += strlen(p->keys[idx[i]].pk) + 1;
	}
	char *keys = malloc(len + 1);
	if (keys == NULL) {
		snprintf(err->message, sizeof(err->message), "out of memory");
		return LG_ENOMEM;
	}
	size_t off = 0;
	keys[off++] = '[';
	for (size_t i = 0; i < n; i++) {
		off += (size_t)sprintf(keys + off, "%s%s", i ? "," : "", p->keys[idx[i]].pk);
	}
	keys[off++] = ']';
	keys[off] = '\0';
	/* Copied: a lane reloading the entry meanwhile replaces its text. */
	char *sql = strdup(t->read_sql);
	if (sql == NULL) {
		free(keys);
		snprintf(err->message, sizeof(err->message), "out of memory");
		return LG_ENOMEM;
	}
	struct lg_param param = lg_param_text(keys);
	struct lg_query_opts opts = {.flags = LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	struct lg_result *r = NULL;
	int rc = lg_pool_query(s->pool, sql, &param, 1, &opts, &r, err);
	free(sql);
	free(keys);
	for (int row = 0; rc == 0 && row < lg_result_rows(r); row++) {
		int64_t ord = 0;
		int64_t version = 0;
		const char *json = NULL;
		size_t json_len = 0;
		if (lg_result_int64(r, row, 0, &ord) != 0 || ord < 1 || (size_t)ord > n ||
		    lg_result_text(r, row, 2, &json, &json_len) != 0) {
			continue;
		}
		struct rf_key_work *k = &p->keys[idx[ord - 1]];
		if (lg_result_is_null(r, row, 1) || lg_result_int64(r, row, 1, &version) != 0) {
			version = k->version; /* a row never written since reflect() */
		}
		free(k->value);
		k->value = rf_plan_value(version, json, json_len, &k->value_len);
		if (k->value == NULL) {
			rc = LG_ENOMEM;
			snprintf(err->message, sizeof(err->message), "out of memory");
			break;
		}
		k->row_found = true;
		k->row_version = version;
	}
	lg_result_free(r);
	return rc;
}

/* Reads the rows of one table's cached keys; isolates keys that do not cast. */
static int coh_read_table(struct rf_coh_session *s, struct rf_plan *p, const size_t *idx, size_t n)
{
	struct coh_table *t = NULL;
	int rc = coh_table_get(s, p->keys[idx[0]].table, &t);
	if (rc != COH_OK) {
		return rc;
	}
	if (t->bad != NULL) {
		for (size_t i = 0; i < n; i++) {
			p->keys[idx[i]].read_done = true;
			p->keys[idx[i]].read_bad = t->bad;
		}
		return COH_OK;
	}
	struct lg_error err;
	rc = coh_read(s, t, p, idx, n, &err);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			p->keys[idx[i]].read_done = true;
		}
		return COH_OK;
	}
	if (!rf__coh_permanent(rc, &err)) {
		return rf__coh_pg_failed(s, &err, "reading rows");
	}
	if (strncmp(err.sqlstate, "42", 2) == 0) {
		t->loaded_ms = 0; /* the table changed under us: look it up again next time */
		return rf__coh_pg_failed(s, &err, "reading rows");
	}
	/* One key's text does not cast to its column type: find it, read the others. */
	for (size_t i = 0; i < n; i++) {
		rc = coh_read(s, t, p, &idx[i], 1, &err);
		if (rc != 0 && !rf__coh_permanent(rc, &err)) {
			return rf__coh_pg_failed(s, &err, "reading a row");
		}
		p->keys[idx[i]].read_done = true;
		if (rc != 0) {
			p->keys[idx[i]].read_bad =
			    "key does not match the table's key column types";
		}
	}
	return COH_OK;
}

/* Whether key k is to be read now: cached ones, or (speculating) every insert/update. */
static bool coh_wants_read(const struct rf_key_work *k, bool speculative)
{
	if (k->read_done) {
		return false;
	}
	return speculative ? k->state == RF_KEY_PENDING && k->op != 'D' : k->state == RF_KEY_CACHED;
}

/* Rows of the keys to read, one statement per table (keys are sorted by table). */
int rf__coh_read_rows(struct rf_coh_session *s, struct rf_plan *p, bool speculative)
{
	size_t *idx = malloc((p->n_keys ? p->n_keys : 1) * sizeof(*idx));
	if (idx == NULL) {
		return COH_RETRY;
	}
	int rc = COH_OK;
	size_t n = 0;
	for (size_t i = 0; i <= p->n_keys && rc == COH_OK; i++) {
		bool flush = n > 0 && (i == p->n_keys ||
				       strcmp(p->keys[i].table, p->keys[idx[0]].table) != 0);
		if (flush) {
			rc = coh_read_table(s, p, idx, n);
			n = 0;
		}
		if (i < p->n_keys && coh_wants_read(&p->keys[i], speculative)) {
			idx[n++] = i;
		}
	}
	free(idx);
	return rc;
}

void rf__coh_read_merge(struct rf_plan *p)
{
	for (size_t i = 0; i < p->n_keys; i++) {
		struct rf_key_work *k = &p->keys[i];
		if (k->state == RF_KEY_CACHED && k->read_bad != NULL) {
			k->state = RF_KEY_BAD;
			k->bad = k->read_bad;
		}
	}
}

/* Runs the contract's setup statements in tx, under the setup lock. */
static int coh_schema_setup(struct lg_tx *tx, void *arg, struct lg_error *err)
{
	(void)arg;
	struct lg_param key = lg_param_int64(LG__CONTRACT_LOCK_KEY);
	/* Replacing a table's triggers waits for its writers' locks: a busy table makes the
	 * upgrade fail (logged; the next leader tries again) instead of stalling the session
	 * and queueing every writer behind the lock request. */
	int rc = lg_tx_exec(tx, "SET LOCAL lock_timeout = '5s'", err);
	rc =
	    rc ? rc : lg_tx_query(tx, "SELECT pg_advisory_xact_lock($1)", &key, 1, NULL, NULL, err);
	for (int i = 0; rc == 0 && lg__contract_setup_sql[i] != NULL; i++) {
		rc = lg_tx_exec(tx, lg__contract_setup_sql[i], err);
	}
	return rc;
}

int rf__coh_schema_check(struct rf_coh_session *s)
{
	struct lg_result *r = NULL;
	struct lg_error err;
	bool needed = false;
	int rc = lg_pool_query(s->pool, lg__contract_needs_setup_sql, NULL, 0, NULL, &r, &err);
	if (rc == 0 && lg_result_bool(r, 0, 0, &needed) != 0) {
		needed = false;
	}
	lg_result_free(r);
	if (rc != 0) {
		return rf__coh_pg_failed(s, &err, "checking the lifeguard schema");
	}
	if (needed) {
		rc = lg_pool_run_tx(s->pool, NULL, coh_schema_setup, NULL, 0, &err);
		if (rc != 0 && !rf__coh_permanent(rc, &err) && rc != LG_ESERVER) {
			return rf__coh_pg_failed(s, &err, "upgrading the lifeguard schema");
		}
		/* A refusal (no privilege, a table that cannot be reflected) is the operator's to
		 * fix: changes keep flowing with the capture that is installed. */
		if (rc != 0) {
			rf_log(RF_LOG_ERROR, "coherence.schema",
			       "upgrading the lifeguard schema failed (run `lifeguard-reflector "
			       "setup`): %s",
			       err.message);
		} else {
			rf_log(RF_LOG_INFO, "coherence.schema",
			       "installed contract " LG__CONTRACT_VERSION
			       " and replaced outdated capture triggers");
		}
	}
	s->schema_checked = true;
	return COH_OK;
}
