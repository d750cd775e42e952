/*
 * One outbox batch, from claim to commit.
 *
 * Happy path:
 *   1. BEGIN on a pinned connection; claim up to batch_size outbox rows in id order with
 *      FOR UPDATE SKIP LOCKED (a deposed leader still holding rows does not block us: its
 *      rows come back when its transaction ends). idle_in_transaction_session_timeout is set
 *      for the transaction, so a paused (SIGSTOP) leader's locks are released by the server.
 *   2. Plan it (coh_plan.c): newest version per key, TRUNCATE per table, malformed rows.
 *   3. Check the version sequence against the highest version Redis has seen (timetravel.c).
 *      Raise the term key (fencing) and that mark, then TRUNCATEs' table fences, then one
 *      check-or-fence or tombstone per key, pipelined (coh_apply.c).
 *   4. Read the cached keys' rows from the primary, one statement per table (on the pool's
 *      other connection, so a failing read never aborts the claim transaction), then refresh
 *      them (pipelined).
 *   5. Move malformed rows to lifeguard.outbox_dead with their reason, delete the processed
 *      rows, COMMIT. Record the propagation latency of each change. Then, outside the
 *      transaction, sweep the truncated tables' cached keys (tombstones; coh_apply.c).
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

/* The claim also sets idle_in_transaction_session_timeout for the transaction ($2 ms), and
 * reads the version sequence (checked against Redis' mark, timetravel.c), in the same round
 * trip: the one-row subqueries run once. */
static const char claim_sql[] =
    "SELECT o.id, o.table_name, o.pk::text, o.op::text, o.version, o.created_at,"
    " (SELECT last_value FROM lifeguard.version_seq)"
    " FROM lifeguard.outbox o,"
    " (SELECT set_config('idle_in_transaction_session_timeout', $2, true)) AS cfg"
    " ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED";

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
		return rf__coh_pg_failed(s, &err, "claiming outbox rows");
	}
	int rc = COH_OK;
	int64_t seq_last = 0;
	if (lg_result_rows(r) > 0 && lg_result_int64(r, 0, 6, &seq_last) == 0) {
		rc = rf__coh_check_sequence(s, seq_last);
	}
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
static int coh_finish(struct rf_coh_session *s, struct lg_tx *tx, struct rf_plan *p, size_t *dead)
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
			json_array_append_new(
			    dl, json_pack("{sIss}", "id", (json_int_t)c->id, "reason", why));
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
		rf__coh_pg_failed(s, &err, "deleting processed outbox rows");
		lg_tx_rollback(tx, &err);
		return COH_RETRY;
	}
	if (lg_tx_commit(tx, &err) != 0) {
		return rf__coh_pg_failed(s, &err, "committing the batch");
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

/* The speculative reader: rows of every insert/update while Redis checks the keys. */
static void coh_spec_reader(void *arg)
{
	struct coh_batch *b = arg;
	b->spec_rc = rf__coh_read_rows(b->s, &b->plan, true);
	b->spec_running = false;
	lg_cond_signal(b->done);
	rf__coh_batch_release(b);
}

/* Steps 2-4 on a claimed plan. */
static int coh_process(struct rf_coh_session *s, struct coh_batch *b)
{
	const struct rf_config *cfg = s->coh->cfg;
	if (rf_plan_build(&b->plan, cfg->key_prefix, cfg->fence_prefix) != 0) {
		return COH_RETRY;
	}
	bool spec = b->plan.n_truncates == 0 && b->plan.n_keys <= COH_SPECULATE_MAX;
	if (spec) {
		b->refs++;
		b->spec_running = true;
		if (lg_coro_spawn(s->coh->rt, coh_spec_reader, b, NULL) != 0) {
			b->refs--;
			b->spec_running = false;
			spec = false;
		}
	}
	/* The term claim travels in the same Redis pipeline as the first scripts, ahead of
	 * them (commands of a connection run in order); every script checks the term itself. */
	for (size_t i = 0; i < b->plan.n_changes; i++) {
		if (b->plan.changes[i].version > b->mark_top) {
			b->mark_top = b->plan.changes[i].version;
		}
	}
	int rc = COH_OK;
	if (b->plan.n_truncates > 0) {
		rc = rf__coh_claim_term(s);
		if (rc == COH_OK) {
			rc = rf__coh_raise_mark(s, b->mark_top);
		}
		if (rc == COH_OK) {
			rc = rf__coh_apply_truncates(b);
		}
		if (rc == COH_OK) {
			rc = rf__coh_apply_keys(b, false);
		}
	} else {
		rc = rf__coh_apply_keys(b, true);
	}
	if (rc == COH_CANCELED) {
		return rc;
	}
	while (b->spec_running) {
		if (lg_cond_wait(b->done, LG_DEADLINE_NONE) == LG_ECANCELED) {
			return COH_CANCELED;
		}
	}
	if (rc == COH_OK && spec) {
		rc = b->spec_rc;
	}
	if (rc == COH_OK) {
		rc = rf__coh_read_rows(s, &b->plan, false); /* cached keys not read yet */
	}
	rf__coh_read_merge(&b->plan);
	/* A row read now may carry a newer change's version than the batch holds: the mark
	 * covers every version written to Redis (usually no round trip: already covered). */
	int64_t top = b->mark_top;
	for (size_t i = 0; i < b->plan.n_keys; i++) {
		const struct rf_key_work *k = &b->plan.keys[i];
		if (k->state == RF_KEY_CACHED && k->row_found && k->row_version > top) {
			top = k->row_version;
		}
	}
	if (rc == COH_OK && top > b->mark_top) {
		b->mark_top = top;
		rc = rf__coh_raise_mark(s, top);
	}
	if (rc == COH_OK) {
		rc = rf__coh_apply_keys(b, false);
	}
	return rc;
}

/* Step 5 in the background, so the next batch's claim overlaps this one's commit. */
static void coh_finisher(void *arg)
{
	struct coh_batch *b = arg;
	struct rf_coh_session *s = b->s;
	size_t dead = 0;
	bool committed = coh_finish(s, b->tx, &b->plan, &dead) == COH_OK;
	if (committed) {
		coh_account(s, &b->plan, dead, b->written_us);
	} else {
		s->coh->stats.errors++;
	}
	s->finishing--;
	lg_cond_signal(s->finished_cv);
	if (committed) {
		rf__coh_sweep_truncates(b); /* the next batches need not wait for it */
	}
	rf__coh_batch_release(b);
}

int rf__coh_batch_run(struct rf_coh_session *s, size_t *claimed)
{
	struct lg_tx *tx = NULL;
	struct lg_error err;
	*claimed = 0;
	while (s->finishing >= COH_MAX_FINISHING) {
		if (lg_cond_wait(s->finished_cv, lg_deadline_in(COH_PG_TIMEOUT_MS)) ==
		    LG_ECANCELED) {
			return COH_RETRY;
		}
	}
	struct coh_batch *b = rf__coh_batch_new(s);
	if (b == NULL) {
		return COH_RETRY;
	}
	/* The transaction was opened after the previous batch, while nothing waited on it: the
	 * claim is then the first round trip after a wake-up. */
	tx = s->next_tx;
	s->next_tx = NULL;
	if (tx == NULL && lg_pool_begin(s->pool, NULL, &tx, &err) != 0) {
		rf__coh_batch_release(b);
		return rf__coh_pg_failed(s, &err, "BEGIN");
	}
	struct rf_plan *p = &b->plan;
	int rc = coh_claim(s, tx, p);
	*claimed = p->n_changes;
	if (rc == COH_OK && p->n_changes > 0) {
		rc = coh_process(s, b);
	}
	if (rc == COH_OK && p->n_changes > 0) {
		b->tx = tx;
		b->written_us = coh_wall_us();
		b->refs++;
		s->finishing++;
		if (lg_coro_spawn(s->coh->rt, coh_finisher, b, NULL) == 0) {
			rf__coh_batch_release(b);
			return COH_OK;
		}
		b->refs--;
		s->finishing--;
		size_t dead = 0;
		rc = coh_finish(s, tx, p, &dead); /* commit or rollback released tx */
		if (rc == COH_OK) {
			coh_account(s, p, dead, b->written_us);
			rf__coh_sweep_truncates(b);
		}
		tx = NULL;
	}
	if (tx != NULL) {
		if (rc == COH_OK) {
			rc = lg_tx_commit(tx, &err) == 0 ? COH_OK : COH_RETRY;
		} else {
			lg_tx_rollback(tx, &err);
		}
	}
	rf__coh_batch_release(b);
	return rc == COH_CANCELED ? COH_RETRY : rc;
}

void rf__coh_preopen(struct rf_coh_session *s)
{
	struct lg_error err;
	if (s->next_tx == NULL && !s->ended &&
	    lg_pool_begin(s->pool, NULL, &s->next_tx, &err) != 0) {
		s->next_tx = NULL; /* the next batch opens its own and reports the failure */
	}
}
