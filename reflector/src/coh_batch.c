/*
 * One outbox batch, from claim to commit.
 *
 * Happy path:
 *   1. BEGIN on a pinned connection; claim up to batch_size outbox rows in id order with
 *      FOR UPDATE SKIP LOCKED (a deposed leader still holding rows does not block us: its
 *      rows come back when its transaction ends). idle_in_transaction_session_timeout is set
 *      for the transaction, so a paused (SIGSTOP) leader's locks are released by the server.
 *   2. Plan it (coh_plan.c): newest version per key, TRUNCATE per table, malformed rows.
 *   3. Raise the term key (fencing), then TRUNCATEs (table fence + tombstone sweep), then one
 *      check-or-fence or tombstone per key, pipelined (coh_apply.c).
 *   4. Read the cached keys' rows from the primary, one statement per table (on the pool's
 *      other connection, so a failing read never aborts the claim transaction), then refresh
 *      them (pipelined).
 *   5. Move malformed rows to lifeguard.outbox_dead with their reason, delete the processed
 *      rows, COMMIT. Record the propagation latency of each change.
 *
 * Failure modes: any PostgreSQL or Redis failure before COMMIT rolls the transaction back:
 * the rows stay in the outbox and are processed again (every Redis write is idempotent:
 * only forward in version). A key whose text does not cast to its column types, a table that
 * is gone or not reflected: dead-lettered, never retried forever. A COMMIT whose answer was
 * lost may or may not have deleted the rows: processing them again is harmless.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coh_int.h"
#include "log.h"

#define COH_TABLE_TTL_MS 10000

/* The claim also sets idle_in_transaction_session_timeout for the transaction ($2 ms), in
 * the same round trip: the one-row subquery runs once. */
static const char claim_sql[] =
    "SELECT o.id, o.table_name, o.pk::text, o.op::text, o.version, o.created_at"
    " FROM lifeguard.outbox o,"
    " (SELECT set_config('idle_in_transaction_session_timeout', $2, true)) AS cfg"
    " ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED";

static const char table_sql[] =
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
    " array_to_json(array_agg(a.attname::text ORDER BY k.o))::text,"
    " array_to_json(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.o))::text,"
    " EXISTS (SELECT 1 FROM pg_attribute v WHERE v.attrelid = c.oid"
    "         AND v.attname = 'lg_version' AND NOT v.attisdropped)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
    " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o)"
    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
    " WHERE c.oid = to_regclass($1) GROUP BY 1, c.oid";

static const char dead_sql[] =
    "INSERT INTO lifeguard.outbox_dead (id, table_name, pk, op, version, created_at, reason)"
    " SELECT o.id, o.table_name, o.pk, o.op, o.version, o.created_at, r.reason"
    " FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, reason text)"
    " JOIN lifeguard.outbox o ON o.id = r.id ON CONFLICT (id) DO NOTHING";

static const char delete_sql[] = "DELETE FROM lifeguard.outbox WHERE id = ANY($1::bigint[])";

static int64_t coh_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Server errors that no retry can fix: data exceptions (22) and undefined objects (42). */
static bool coh_permanent(int rc, const struct lg_error *err)
{
	return rc == LG_ESERVER && (strncmp(err->sqlstate, "22", 2) == 0 ||
				    strncmp(err->sqlstate, "42", 2) == 0);
}

static int coh_pg_failed(struct rf_coh_session *s, const struct lg_error *err, const char *what)
{
	rf_log(RF_LOG_WARN, "coherence.postgres", "term %llu: %s: %s",
	       (unsigned long long)s->term, what, err->message);
	return COH_RETRY;
}

static int coh_claim(struct rf_coh_session *s, struct lg_tx *tx, struct rf_plan *p)
{
	struct lg_error err;
	char idle[24];
	snprintf(idle, sizeof(idle), "%u", COH_IDLE_TX_MS);
	struct lg_param params[] = {lg_param_int64((int64_t)s->coh->cfg->batch_size),
				    lg_param_text(idle)};
	struct lg_query_opts opts = {.flags = LG_QUERY_PREPARE};
	struct lg_result *r = NULL;
	if (lg_tx_query(tx, claim_sql, params, 2, &opts, &r, &err) != 0) {
		return coh_pg_failed(s, &err, "claiming outbox rows");
	}
	int rc = COH_OK;
	for (int i = 0; i < lg_result_rows(r) && rc == COH_OK; i++) {
		int64_t id = 0;
		int64_t version = 0;
		int64_t created = 0;
		const char *table = NULL;
		const char *pk = NULL;
		const char *op = "?";
		lg_result_int64(r, i, 0, &id);
		lg_result_text(r, i, 1, &table, NULL);
		if (!lg_result_is_null(r, i, 2)) {
			lg_result_text(r, i, 2, &pk, NULL);
		}
		lg_result_text(r, i, 3, &op, NULL);
		lg_result_int64(r, i, 4, &version);
		lg_result_timestamptz(r, i, 5, &created);
		if (rf_plan_add(p, id, table, pk, op[0], version, created) != 0) {
			rc = COH_RETRY;
		}
	}
	lg_result_free(r);
	return rc;
}

/* Copies the strings of a JSON array into a fresh NULL-padded array (Owned), or NULL. */
static char **coh_strings(const char *json, size_t *n)
{
	json_t *a = json_loads(json, 0, NULL);
	char **out = NULL;
	if (a != NULL && json_is_array(a) && (*n = json_array_size(a)) > 0 &&
	    (out = calloc(*n, sizeof(*out))) != NULL) {
		for (size_t i = 0; i < *n; i++) {
			const char *v = json_string_value(json_array_get(a, i));
			out[i] = strdup(v != NULL ? v : "");
		}
	}
	json_decref(a);
	return out;
}

static void coh_free_strings(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++) {
		free(v[i]);
	}
	free(v);
}

/* Fills t from the catalog. COH_RETRY on transient failures. */
static int coh_table_load(struct rf_coh_session *s, struct coh_table *t)
{
	struct lg_param name = lg_param_text(t->name);
	struct lg_result *r = NULL;
	struct lg_error err;
	int rc = lg_pool_query(s->pool, table_sql, &name, 1, NULL, &r, &err);
	if (rc != 0) {
		if (!coh_permanent(rc, &err)) {
			return coh_pg_failed(s, &err, "reading the catalog");
		}
		t->bad = "table_name does not name a table";
		return COH_OK;
	}
	const char *canon = NULL;
	const char *cols = NULL;
	const char *types = NULL;
	bool reflected = false;
	if (lg_result_rows(r) != 1) {
		t->bad = "table does not exist or has no primary key";
	} else if (lg_result_text(r, 0, 0, &canon, NULL) != 0 ||
		   lg_result_text(r, 0, 1, &cols, NULL) != 0 ||
		   lg_result_text(r, 0, 2, &types, NULL) != 0 ||
		   lg_result_bool(r, 0, 3, &reflected) != 0) {
		t->bad = "unexpected catalog answer";
	} else if (strcmp(canon, t->name) != 0) {
		t->bad = "table_name is not quote_ident(schema).quote_ident(table)";
	} else if (!reflected) {
		t->bad = "table is not reflected (no lg_version column)";
	} else {
		size_t nc = 0;
		size_t nt = 0;
		char **c = coh_strings(cols, &nc);
		char **ty = coh_strings(types, &nt);
		if (c != NULL && ty != NULL && nc == nt) {
			t->read_sql = rf_plan_read_sql(canon, (const char *const *)c,
						       (const char *const *)ty, nc);
		}
		coh_free_strings(c, nc);
		coh_free_strings(ty, nt);
		if (t->read_sql == NULL) {
			lg_result_free(r);
			return COH_RETRY;
		}
	}
	lg_result_free(r);
	return COH_OK;
}

/* The cached catalog entry for name, loading it when missing or older than the TTL. */
static int coh_table_get(struct rf_coh_session *s, const char *name, struct coh_table **out)
{
	uint64_t now = lg_now_ms();
	for (size_t i = 0; i < s->n_tables; i++) {
		struct coh_table *t = &s->tables[i];
		if (strcmp(t->name, name) == 0) {
			if (now - t->loaded_ms < COH_TABLE_TTL_MS) {
				*out = t;
				return COH_OK;
			}
			free(t->read_sql);
			t->read_sql = NULL;
			t->bad = NULL;
			t->loaded_ms = now;
			*out = t;
			return coh_table_load(s, t);
		}
	}
	struct coh_table *grown = realloc(s->tables, (s->n_tables + 1) * sizeof(*grown));
	if (grown == NULL) {
		return COH_RETRY;
	}
	s->tables = grown;
	struct coh_table *t = &s->tables[s->n_tables];
	memset(t, 0, sizeof(*t));
	if ((t->name = strdup(name)) == NULL) {
		return COH_RETRY;
	}
	s->n_tables++;
	t->loaded_ms = now;
	*out = t;
	return coh_table_load(s, t);
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
	struct lg_param param = lg_param_text(keys);
	struct lg_query_opts opts = {.flags = LG_QUERY_PREPARE};
	struct lg_result *r = NULL;
	int rc = lg_pool_query(s->pool, t->read_sql, &param, 1, &opts, &r, err);
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
static int coh_read_table(struct rf_coh_session *s, struct rf_plan *p, const size_t *idx,
			  size_t n)
{
	struct coh_table *t = NULL;
	int rc = coh_table_get(s, p->keys[idx[0]].table, &t);
	if (rc != COH_OK) {
		return rc;
	}
	if (t->bad != NULL) {
		for (size_t i = 0; i < n; i++) {
			p->keys[idx[i]].state = RF_KEY_BAD;
			p->keys[idx[i]].bad = t->bad;
		}
		return COH_OK;
	}
	struct lg_error err;
	rc = coh_read(s, t, p, idx, n, &err);
	if (rc == 0) {
		return COH_OK;
	}
	if (!coh_permanent(rc, &err)) {
		return coh_pg_failed(s, &err, "reading rows");
	}
	if (strncmp(err.sqlstate, "42", 2) == 0) {
		t->loaded_ms = 0; /* the table changed under us: look it up again next time */
		return coh_pg_failed(s, &err, "reading rows");
	}
	/* One key's text does not cast to its column type: find it, read the others. */
	for (size_t i = 0; i < n; i++) {
		rc = coh_read(s, t, p, &idx[i], 1, &err);
		if (rc != 0 && !coh_permanent(rc, &err)) {
			return coh_pg_failed(s, &err, "reading a row");
		}
		if (rc != 0) {
			p->keys[idx[i]].state = RF_KEY_BAD;
			p->keys[idx[i]].bad = "key does not match the table's key column types";
		}
	}
	return COH_OK;
}

/* Step 4a: rows of every cached key, one statement per table (keys are sorted by table). */
static int coh_read_rows(struct rf_coh_session *s, struct rf_plan *p)
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
		if (i < p->n_keys && p->keys[i].state == RF_KEY_CACHED) {
			idx[n++] = i;
		}
	}
	free(idx);
	return rc;
}

static const char *coh_dead_reason(const struct rf_plan *p, const struct rf_change *c)
{
	if (c->bad != NULL) {
		return c->bad;
	}
	if (c->key_index != SIZE_MAX && p->keys[c->key_index].state == RF_KEY_BAD) {
		return p->keys[c->key_index].bad;
	}
	return NULL;
}

/* Step 5: dead letters, delete, commit. *dead receives the dead-lettered count. */
static int coh_finish(struct rf_coh_session *s, struct lg_tx *tx, struct rf_plan *p,
		      size_t *dead)
{
	json_t *dl = json_array();
	char *ids = malloc(p->n_changes * 21 + 3);
	struct lg_error err;
	if (dl == NULL || ids == NULL) {
		json_decref(dl);
		free(ids);
		lg_tx_rollback(tx, &err);
		return COH_RETRY;
	}
	size_t off = 0;
	ids[off++] = '{';
	for (size_t i = 0; i < p->n_changes; i++) {
		const struct rf_change *c = &p->changes[i];
		off += (size_t)sprintf(ids + off, "%s%lld", i ? "," : "", (long long)c->id);
		const char *why = coh_dead_reason(p, c);
		if (why != NULL) {
			json_array_append_new(dl, json_pack("{sIss}", "id", (json_int_t)c->id,
							    "reason", why));
			rf_log(RF_LOG_WARN, "coherence.malformed",
			       "outbox row %lld moved to lifeguard.outbox_dead: %s",
			       (long long)c->id, why);
		}
	}
	ids[off++] = '}';
	ids[off] = '\0';
	*dead = json_array_size(dl);
	char *dl_text = *dead > 0 ? json_dumps(dl, JSON_COMPACT) : NULL;
	json_decref(dl);
	int rc = 0;
	if (*dead > 0) {
		struct lg_param param = lg_param_text(dl_text != NULL ? dl_text : "[]");
		rc = lg_tx_query(tx, dead_sql, &param, 1, NULL, NULL, &err);
	}
	free(dl_text);
	if (rc == 0) {
		struct lg_param param = lg_param_text(ids);
		rc = lg_tx_query(tx, delete_sql, &param, 1, NULL, NULL, &err);
	}
	free(ids);
	if (rc != 0) {
		coh_pg_failed(s, &err, "deleting processed outbox rows");
		lg_tx_rollback(tx, &err);
		return COH_RETRY;
	}
	if (lg_tx_commit(tx, &err) != 0) {
		return coh_pg_failed(s, &err, "committing the batch");
	}
	return COH_OK;
}

static void coh_account(struct rf_coh_session *s, const struct rf_plan *p, size_t dead,
			int64_t written_us)
{
	struct rf_coherence_stats *st = &s->coh->stats;
	st->batches++;
	st->changes += p->n_changes - dead;
	st->keys += p->n_keys;
	st->malformed += dead;
	for (size_t i = 0; i < p->n_changes; i++) {
		const struct rf_change *c = &p->changes[i];
		if (coh_dead_reason(p, c) == NULL && c->created_us > 0) {
			double ms = (double)(written_us - c->created_us) / 1000.0;
			rf_coherence_observe(st, ms < 0 ? 0 : ms);
		}
	}
}

/* Steps 2-4 on a claimed plan. */
static int coh_process(struct rf_coh_session *s, struct coh_batch *b)
{
	const struct rf_config *cfg = s->coh->cfg;
	if (rf_plan_build(&b->plan, cfg->key_prefix, cfg->fence_prefix) != 0) {
		return COH_RETRY;
	}
	/* The term claim travels in the same Redis pipeline as the first scripts, ahead of
	 * them (commands of a connection run in order); every script checks the term itself. */
	int rc = COH_OK;
	if (b->plan.n_truncates > 0) {
		rc = rf__coh_claim_term(s);
		if (rc == COH_OK) {
			rc = rf__coh_apply_truncates(b);
		}
		if (rc == COH_OK) {
			rc = rf__coh_apply_keys(b, false);
		}
	} else {
		rc = rf__coh_apply_keys(b, true);
	}
	if (rc == COH_OK) {
		rc = coh_read_rows(s, &b->plan);
	}
	if (rc == COH_OK) {
		rc = rf__coh_apply_keys(b, false);
	}
	return rc;
}

int rf__coh_batch_run(struct rf_coh_session *s, size_t *claimed)
{
	struct lg_tx *tx = NULL;
	struct lg_error err;
	*claimed = 0;
	struct coh_batch *b = rf__coh_batch_new(s);
	if (b == NULL) {
		return COH_RETRY;
	}
	if (lg_pool_begin(s->pool, NULL, &tx, &err) != 0) {
		rf__coh_batch_release(b);
		return coh_pg_failed(s, &err, "BEGIN");
	}
	struct rf_plan *p = &b->plan;
	int rc = coh_claim(s, tx, p);
	*claimed = p->n_changes;
	if (rc == COH_OK && p->n_changes > 0) {
		rc = coh_process(s, b);
	}
	int64_t written_us = coh_wall_us();
	size_t dead = 0;
	if (rc == COH_OK && p->n_changes > 0) {
		rc = coh_finish(s, tx, p, &dead);
		tx = NULL; /* commit or rollback released it, whatever the outcome */
	}
	if (tx != NULL) {
		if (rc == COH_OK) {
			rc = lg_tx_commit(tx, &err) == 0 ? COH_OK : COH_RETRY;
		} else {
			lg_tx_rollback(tx, &err);
		}
	}
	if (rc == COH_OK && p->n_changes > 0) {
		coh_account(s, p, dead, written_us);
	}
	rf__coh_batch_release(b);
	return rc == COH_CANCELED ? COH_RETRY : rc;
}
