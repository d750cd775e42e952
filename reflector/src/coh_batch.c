/*
 * Outbox batches, from claim to commit, up to COH_LANES of them in flight at once (while a
 * backlog drains: the last claim was at least half full; COH_LANES_IDLE otherwise).
 *
 * Happy path (main claims and plans; a lane coroutine does the rest, so the next claim
 * overlaps the Redis work, row reads and commits of the batches before it):
 *   1. Main: BEGIN on a pinned connection (opened ahead, while idle); claim up to batch_size
 *      outbox rows in id order with FOR UPDATE SKIP LOCKED, deleting them in the same
 *      statement (the delete shows at the batch's commit, after Redis was written; a rollback
 *      brings the rows back): rows of batches in flight (and of a deposed leader still
 *      holding rows) are skipped, never waited for.
 *      idle_in_transaction_session_timeout is set for the transaction, so a paused (SIGSTOP)
 *      leader's locks are released by the server. The claim waits for a free lane first: a
 *      backlog then gathers into larger batches, while at low rates each change is claimed
 *      (alone, at once) as soon as its NOTIFY arrives.
 *   2. Main: plan it (coh_plan.c): newest version per key, TRUNCATE per table, malformed rows.
 *      Changes whose key a batch in flight carries are deferred: left out of the plan and
 *      put back in the outbox as they were (same id) by this transaction, for a later
 *      claim. The plan's keys join the session's in-flight set; the batch goes to a lane.
 *   3. Lane, direct (a small batch, or most keys of recent batches were cached): read the
 *      rows of every insert/update from the primary, one statement per table (on another
 *      pool connection, so a failing read never aborts the claim transaction), then the
 *      scripts, pipelined behind the term key (fencing) and Redis' version mark
 *      (coh_apply.c, timetravel.c): REFRESH_MANY with the rows, 32 keys per script (which
 *      fences a key that is not cached), TOMBSTONE for a delete or a row gone by now. One
 *      Redis round trip.
 *   3'. Lane, otherwise: check-or-fence or tombstone per key (pipelined the same way), then
 *      read the cached keys' rows and refresh them (REFRESH_MANY, pipelined): rows of keys
 *      nobody caches are not read, but every key costs a script of its own first.
 *   4. Lane: move malformed rows to lifeguard.outbox_dead, put deferred rows back, COMMIT,
 *      record the propagation latency of each change, leave the in-flight set. Then, outside
 *      the transaction, sweep the truncated tables' cached keys (tombstones; coh_apply.c).
 *
 * Ordering. At most one batch in flight carries a given key, so the changes of one key are
 * applied batch after batch, in the order their rows were claimed. That is belt and braces:
 * correctness does not rest on it. Every Redis write is a compare-and-set on the version
 * (REFRESH, TOMBSTONE and the fences only move forward), and a cached key is refreshed with
 * the row read from the primary after the change committed, whose version is at least the
 * change's. Were two batches to carry versions v1 < v2 of one row, whichever landed last, the
 * key would end at the highest version written, which is the newest row either batch read
 * (or its tombstone): the same state as applying them in order. A deposed leader racing a new
 * one already relies on this. What the rule buys is no wasted work (two reads and refreshes
 * of one hot row at once) and per-key order in the latency record.
 * Steps that may invalidate Redis run with no batch in flight: main drains the lanes before
 * the time-travel checks (run id, mark; coherence.c), before a claim whose version sequence
 * is below the mark, and before applying a batch with a TRUNCATE; so a lane never races an
 * invalidation, and a TRUNCATE's fence and sweep never race another batch's refresh (which,
 * by the argument above, would be harmless as well).
 *
 * Failure modes: any PostgreSQL or Redis failure before COMMIT rolls the lane's transaction
 * back: the rows stay in the outbox and are processed again (every Redis write is
 * idempotent: only forward in version). Main learns the lane's outcome (worst wins), drains
 * every lane, then backs off, or takes a new token on STALETERM. A key whose text does not
 * cast to its column types, a table that is gone or not reflected: dead-lettered, never
 * retried forever. A COMMIT whose answer was lost may or may not have deleted the rows:
 * processing them again is harmless. A session that ends leaves its lanes to finish (each
 * holds a session reference; every wait has a deadline).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coh_int.h"
#include "log.h"

/* The claim deletes the rows it takes (the delete becomes visible at the batch's commit, after
 * Redis was written; a rollback brings the rows back), sets idle_in_transaction_session_timeout
 * for the transaction ($2 ms), and reads the version sequence (checked against Redis' mark,
 * timetravel.c), in one round trip: the one-row subqueries run once. */
static const char claim_sql[] =
    "WITH c AS (SELECT id FROM lifeguard.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED),"
    " d AS (DELETE FROM lifeguard.outbox o USING c WHERE o.id = c.id"
    " RETURNING o.id, o.table_name, o.pk, o.op, o.version, o.created_at)"
    " SELECT d.id, d.table_name, d.pk::text, d.op::text, d.version, d.created_at,"
    " (SELECT last_value FROM lifeguard.version_seq)"
    " FROM d, (SELECT set_config('idle_in_transaction_session_timeout', $2, true)) AS cfg"
    " ORDER BY d.id";

/* Claimed rows given back as they were (same id, so in the same place): changes deferred
 * because a batch in flight carries their key. */
static const char requeue_sql[] =
    "INSERT INTO lifeguard.outbox (id, table_name, pk, op, version, created_at)"
    " SELECT r.id, r.t, r.pk::jsonb, r.op::\"char\", r.v,"
    " 'epoch'::timestamptz + r.us * interval '1 microsecond'"
    " FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, t text, pk text, op text, v bigint,"
    " us bigint)";

static const char dead_sql[] =
    "INSERT INTO lifeguard.outbox_dead (id, table_name, pk, op, version, created_at, reason)"
    " SELECT r.id, r.t, r.pk::jsonb, r.op::\"char\", r.v,"
    " 'epoch'::timestamptz + r.us * interval '1 microsecond', r.reason"
    " FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, t text, pk text, op text, v bigint,"
    " us bigint, reason text) ON CONFLICT (id) DO NOTHING";

/* A claimed row as JSON (the columns of requeue_sql and dead_sql), with reason when set. */
static json_t *coh_change_json(const struct rf_change *c, const char *reason)
{
	char op[2] = {c->op, '\0'};
	json_t *o =
	    json_pack("{sIss?ss?sssIsI}", "id", (json_int_t)c->id, "t", c->table, "pk", c->pk, "op",
		      op, "v", (json_int_t)c->version, "us", (json_int_t)c->created_us);
	if (o != NULL && reason != NULL) {
		json_object_set_new(o, "reason", json_string(reason));
	}
	return o;
}

/* Runs sql with rows (a JSON array, Borrowed) as $1 when it has any. */
static int coh_rows_query(struct lg_tx *tx, const char *sql, json_t *rows, struct lg_error *err)
{
	if (json_array_size(rows) == 0) {
		return 0;
	}
	char *text = json_dumps(rows, JSON_COMPACT);
	if (text == NULL) {
		*err = (struct lg_error){.code = LG_ENOMEM, .message = "out of memory"};
		return -1;
	}
	struct lg_param param = lg_param_text(text);
	int rc = lg_tx_query(tx, sql, &param, 1, NULL, NULL, err);
	free(text);
	return rc;
}

static int64_t coh_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Whether claiming may check the version sequence (it may invalidate): then no batch may
 * be in flight. */
static bool coh_sequence_check_due(const struct rf_coh_session *s, int64_t seq_last)
{
	return !s->mark_known || seq_last < s->mark;
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
		if (coh_sequence_check_due(s, seq_last)) {
			rc = rf__coh_drain(s); /* it may invalidate: with no batch in flight */
		}
		if (rc == COH_OK) {
			rc = rf__coh_check_sequence(s, seq_last);
		}
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

/* Step 4: dead letters and deferred changes back to the outbox, commit (the claim deleted the
 * batch's rows). *dead receives the dead-lettered count. */
static int coh_finish(struct rf_coh_session *s, struct coh_batch *b, size_t *dead)
{
	struct lg_tx *tx = b->tx;
	const struct rf_plan *p = &b->plan;
	json_t *dl = json_array();
	struct lg_error err;
	if (dl == NULL) {
		lg_tx_rollback(tx, &err);
		return COH_RETRY;
	}
	for (size_t i = 0; i < p->n_changes; i++) {
		const struct rf_change *c = &p->changes[i];
		const char *why = coh_dead_reason(p, c);
		if (why != NULL) {
			if (json_array_append_new(dl, coh_change_json(c, why)) != 0) {
				json_decref(dl);
				lg_tx_rollback(tx, &err);
				return COH_RETRY;
			}
			rf_log(RF_LOG_WARN, "coherence.malformed",
			       "outbox row %lld moved to lifeguard.outbox_dead: %s",
			       (long long)c->id, why);
		}
	}
	*dead = json_array_size(dl);
	int rc = coh_rows_query(tx, dead_sql, dl, &err);
	json_decref(dl);
	if (rc == 0) {
		rc = coh_rows_query(tx, requeue_sql, b->requeue, &err);
	}
	if (rc != 0) {
		rf__coh_pg_failed(s, &err, "finishing the batch (dead letters, deferred changes)");
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

/*
 * Whether to read the rows of every insert/update before Redis is touched, and refresh them
 * directly: REFRESH_MANY fences a key that is not cached, so the batch then costs one Redis
 * round trip and a script per 32 keys, instead of CHECK_OR_FENCE per key, then the refresh.
 * The price is reading rows that are not cached: so small batches always, larger ones while
 * most keys of recent batches were cached (s->cached_share). The threshold was chosen when
 * the refresh took a script per key too; with chunks the direct path is cheaper in Redis
 * than that, and a lower threshold may pay off (not measured).
 */
static bool coh_direct(const struct rf_coh_session *s, const struct coh_batch *b)
{
	return b->plan.n_truncates == 0 &&
	       (b->plan.n_keys <= COH_SPECULATE_MAX || s->cached_share >= COH_DIRECT_SHARE);
}

/* Keys whose row was read go straight to REFRESH (or TOMBSTONE when the row is gone). Keys
 * that could not be read, and those that may hold a phantom (timetravel.c), take the
 * CHECK_OR_FENCE path. Returns the batch's highest version, rows included. */
static int64_t coh_direct_keys(const struct rf_coh_session *s, struct coh_batch *b)
{
	int64_t top = b->mark_top;
	for (size_t i = 0; i < b->plan.n_keys; i++) {
		struct rf_key_work *k = &b->plan.keys[i];
		if (k->state != RF_KEY_PENDING || !k->read_done || k->read_bad != NULL ||
		    k->version <= s->suspect_below) {
			continue;
		}
		k->state = RF_KEY_CACHED;
		if (k->row_found && k->row_version > top) {
			top = k->row_version;
		}
	}
	return top;
}

/* Step 3 on a claimed, planned batch. */
static int coh_process(struct rf_coh_session *s, struct coh_batch *b)
{
	/* The term claim and Redis' mark travel in the same Redis pipeline as the first
	 * scripts, ahead of them (commands of a connection run in order); every script checks
	 * the term itself. */
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
	} else if (coh_direct(s, b)) {
		rc = rf__coh_read_rows(s, &b->plan, true);
		if (rc == COH_OK) {
			b->mark_top = coh_direct_keys(s, b);
			rc = rf__coh_apply_keys(b, true);
		}
	} else {
		rc = rf__coh_apply_keys(b, true);
	}
	if (rc == COH_CANCELED) {
		return rc;
	}
	bool second = false;
	for (size_t i = 0; i < b->plan.n_keys; i++) {
		second = second || b->plan.keys[i].state == RF_KEY_CACHED;
	}
	if (rc == COH_OK && second) {
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
	second = false;
	for (size_t i = 0; i < b->plan.n_keys; i++) {
		second = second || b->plan.keys[i].state == RF_KEY_CACHED;
	}
	if (rc == COH_OK && second) {
		rc = rf__coh_apply_keys(b, false);
	}
	return rc;
}

/* FNV-1a: the bucket of a row key in the in-flight set. */
static size_t coh_key_bucket(const char *key)
{
	uint64_t h = 14695981039346656037ULL;
	for (const unsigned char *c = (const unsigned char *)key; *c != '\0'; c++) {
		h = (h ^ *c) * 1099511628211ULL;
	}
	return (size_t)(h & (COH_INFLIGHT_BUCKETS - 1));
}

static bool coh_key_in_flight(const struct rf_coh_session *s, const char *key)
{
	for (const struct coh_key_node *n = s->inflight[coh_key_bucket(key)]; n != NULL;
	     n = n->next) {
		if (strcmp(n->key, key) == 0) {
			return true;
		}
	}
	return false;
}

/* Adds the batch's keys to the in-flight set. COH_RETRY when out of memory. */
static int coh_keys_hold(struct rf_coh_session *s, struct coh_batch *b)
{
	if (b->plan.n_keys == 0) {
		return COH_OK;
	}
	b->nodes = calloc(b->plan.n_keys, sizeof(*b->nodes));
	if (b->nodes == NULL) {
		return COH_RETRY;
	}
	for (size_t i = 0; i < b->plan.n_keys; i++) {
		struct coh_key_node *n = &b->nodes[i];
		size_t h = coh_key_bucket(b->plan.keys[i].redis_key);
		n->key = b->plan.keys[i].redis_key;
		n->next = s->inflight[h];
		s->inflight[h] = n;
	}
	b->n_nodes = b->plan.n_keys;
	return COH_OK;
}

/* Removes the batch's keys from the in-flight set. */
static void coh_keys_drop(struct rf_coh_session *s, struct coh_batch *b)
{
	for (size_t i = 0; i < b->n_nodes; i++) {
		struct coh_key_node **at = &s->inflight[coh_key_bucket(b->nodes[i].key)];
		while (*at != NULL && *at != &b->nodes[i]) {
			at = &(*at)->next;
		}
		if (*at != NULL) {
			*at = b->nodes[i].next;
		}
	}
	free(b->nodes);
	b->nodes = NULL;
	b->n_nodes = 0;
}

/*
 * Gives back to the outbox the changes whose key a batch in flight carries: the plan is built
 * again without them, and they are not written but put back (b->requeue) by this transaction,
 * as they were, for a later claim. Returns COH_OK or COH_RETRY (out of memory).
 */
static int coh_defer_busy(struct rf_coh_session *s, struct coh_batch *b)
{
	const struct rf_config *cfg = s->coh->cfg;
	struct rf_plan *p = &b->plan;
	bool any = false;
	for (size_t i = 0; i < p->n_keys && !any; i++) {
		any = coh_key_in_flight(s, p->keys[i].redis_key);
	}
	if (!any) {
		return COH_OK;
	}
	struct rf_plan kept = {0};
	size_t deferred = 0;
	for (size_t i = 0; i < p->n_changes; i++) {
		const struct rf_change *c = &p->changes[i];
		if (c->key_index != SIZE_MAX &&
		    coh_key_in_flight(s, p->keys[c->key_index].redis_key)) {
			if (b->requeue == NULL) {
				b->requeue = json_array();
			}
			if (json_array_append_new(b->requeue, coh_change_json(c, NULL)) != 0) {
				rf_plan_free(&kept);
				return COH_RETRY;
			}
			deferred++;
			continue;
		}
		if (rf_plan_add(&kept, c->id, c->table, c->pk, c->op, c->version, c->created_us) !=
		    0) {
			rf_plan_free(&kept);
			return COH_RETRY;
		}
	}
	if (rf_plan_build(&kept, cfg->key_prefix, cfg->fence_prefix) != 0) {
		rf_plan_free(&kept);
		return COH_RETRY;
	}
	rf_plan_free(p);
	*p = kept;
	b->deferred = deferred;
	return COH_OK;
}

/* Records a lane's outcome for main (worst wins) and wakes it. */
static void coh_lane_done(struct rf_coh_session *s, struct coh_batch *b, int rc)
{
	coh_keys_drop(s, b);
	if (rc == COH_CANCELED) {
		rc = COH_RETRY;
	}
	if (rc > s->lane_rc) {
		s->lane_rc = rc;
	}
	s->in_flight--;
	lg_cond_signal(s->finished_cv);
	if (rc != COH_OK || b->deferred > 0) {
		s->dirty = true; /* rows are back in the outbox: claim them again */
		lg_cond_signal(s->wake);
	}
}

/* A lane: steps 3-4 of one claimed batch, then the sweep of its TRUNCATEs. */
static void coh_lane(void *arg)
{
	struct coh_batch *b = arg;
	struct rf_coh_session *s = b->s;
	int rc = coh_process(s, b);
	if (rc == COH_OK) {
		size_t dead = 0;
		b->written_us = coh_wall_us();
		rc = coh_finish(s, b, &dead); /* commit or rollback released tx */
		if (rc == COH_OK) {
			coh_account(s, &b->plan, dead, b->written_us);
			s->lane_committed = true;
			size_t seen = b->n_hit + b->n_miss;
			if (seen > 0) {
				s->cached_share =
				    0.75 * s->cached_share + 0.25 * (double)b->n_hit / (double)seen;
			}
		}
	} else {
		struct lg_error err;
		lg_tx_rollback(b->tx, &err);
	}
	b->tx = NULL;
	coh_lane_done(s, b, rc);
	if (rc == COH_OK) {
		rf__coh_sweep_truncates(b); /* the next batches need not wait for it */
	}
	rf__coh_batch_release(b);
}

int rf__coh_drain(struct rf_coh_session *s)
{
	while (s->in_flight > 0) {
		if (lg_cond_wait(s->finished_cv, LG_DEADLINE_NONE) == LG_ECANCELED) {
			return COH_CANCELED;
		}
	}
	int rc = s->lane_rc;
	s->lane_rc = COH_OK;
	return rc;
}

int rf__coh_batch_run(struct rf_coh_session *s, size_t *claimed)
{
	struct lg_tx *tx = NULL;
	struct lg_error err;
	*claimed = 0;
	if (s->lane_rc != COH_OK) {
		return rf__coh_drain(s); /* a lane failed: settle before anything else */
	}
	/* Lanes beyond COH_LANES_IDLE only under a backlog (the last claim was at least half
	 * full): at low rates more lanes mean more, smaller batches, each paying its own claim,
	 * term claim and commit, for no gain in latency. */
	unsigned lanes =
	    s->last_claimed * 2 >= s->coh->cfg->batch_size ? COH_LANES : COH_LANES_IDLE;
	while (s->in_flight >= lanes) {
		if (lg_cond_wait(s->finished_cv, LG_DEADLINE_NONE) == LG_ECANCELED) {
			return COH_RETRY;
		}
	}
	if (s->inflight == NULL &&
	    (s->inflight = calloc(COH_INFLIGHT_BUCKETS, sizeof(*s->inflight))) == NULL) {
		return COH_RETRY;
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
	s->last_claimed = p->n_changes;
	if (rc == COH_OK && p->n_changes > 0 &&
	    rf_plan_build(p, s->coh->cfg->key_prefix, s->coh->cfg->fence_prefix) != 0) {
		rc = COH_RETRY;
	}
	if (rc == COH_OK && p->n_truncates > 0) {
		rc = rf__coh_drain(s); /* a TRUNCATE is applied with no other batch in flight */
	}
	if (rc == COH_OK) {
		rc = coh_defer_busy(s, b);
	}
	if (rc == COH_OK && p->n_changes > 0) {
		rc = coh_keys_hold(s, b);
	}
	if (rc == COH_OK && p->n_changes > 0) {
		b->tx = tx;
		b->refs++;
		s->in_flight++;
		if (lg_coro_spawn(s->coh->rt, coh_lane, b, NULL) == 0) {
			rf__coh_batch_release(b);
			return COH_OK;
		}
		b->refs--;
		s->in_flight--;
		b->tx = NULL;
		coh_keys_drop(s, b);
		rc = COH_RETRY;
	}
	if (rc == COH_OK) {
		/* Nothing claimed, or every change deferred: give them back. */
		rc = coh_rows_query(tx, requeue_sql, b->requeue, &err) == 0 &&
			     lg_tx_commit(tx, &err) == 0
			 ? COH_OK
			 : COH_RETRY;
		if (rc == COH_OK && b->deferred > 0 && s->in_flight > 0) {
			/* Their keys are in flight: claim them again once a lane is done. */
			lg_cond_wait(s->finished_cv, lg_deadline_in(COH_PG_TIMEOUT_MS));
			s->dirty = true;
		}
	} else {
		lg_tx_rollback(tx, &err);
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
