/*
 * The leader session of the coherence pipeline: one per term in which this node leads.
 *
 * Happy path:
 *   1. became_leader(T) creates the session and spawns its main coroutine.
 *   2. Main connects to Redis, reads the term key, and takes a fencing token above it through
 *      the raft log (fencing.h), then raises the term key to that token: every script refuses
 *      writers below it. It opens a small pool to the primary.
 *   3. It spawns the listener (LISTEN lifeguard -> wake-ups) and the sampler (outbox and
 *      Redis state for /status), both in coh_watch.c.
 *   4. Before batches it checks that nothing went back in time (timetravel.c): Redis' run id,
 *      and the version sequence against the highest version Redis has seen.
 *   5. Main drains the outbox batch by batch (coh_batch.c) whenever it is woken, every
 *      poll_interval_ms, and at once on becoming leader.
 * lost_leadership(T) marks the session ended and cancels the listener; main finishes the step
 * it is in (every wait has a deadline) and stops. A deposed session's Redis writes are refused
 * by the term check, and its claimed outbox rows return to the outbox when its transaction
 * rolls back, so the next leader processes them: at-least-once, idempotent through versions.
 *
 * Failure modes: Redis or PostgreSQL unreachable, restarted, or refusing (any Redis error:
 * MISCONF, NOPERM, OOM, LOADING, ...) -> the batch rolls back (the outbox keeps the record),
 * errors++, exponential backoff (50 ms .. 2 s) and retry; the pool and the Redis client
 * reconnect by themselves, the listener reconnects and re-LISTENs. Failures in a row for
 * RF_STALL_MS mark the leader stalled: /readyz answers 503 with the reason, stalls++.
 * Redis holding a higher token (STALETERM: a cluster re-created on a Redis used before, or a
 * newer leader) -> a new token is taken above it; a node that no longer leads cannot commit
 * one, and its session ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coh_int.h"
#include "fencing.h"
#include "log.h"

int rf_coherence_new(struct lg_runtime *rt, const struct rf_config *cfg, struct rf_coherence **out)
{
	struct rf_coherence *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -1;
	}
	c->rt = rt;
	c->cfg = cfg;
	for (int i = 0; i < LG_CACHE__SCRIPT_COUNT; i++) {
		struct lg_error err;
		if (lg_redis_script_init(&c->scripts[i], lg_cache_script_source(i), &err) != 0) {
			rf_log(RF_LOG_ERROR, "coherence.script", "cache script %d: %s", i,
			       err.message);
			free(c);
			return -1;
		}
	}
	struct lg_error err;
	if (lg_redis_script_init(&c->invalidate_script, rf__coh_invalidate_lua, &err) != 0 ||
	    lg_redis_script_init(&c->mark_script, rf__coh_mark_lua, &err) != 0) {
		rf_log(RF_LOG_ERROR, "coherence.script", "%s", err.message);
		free(c);
		return -1;
	}
	c->stats.outbox_stale_after_ms =
	    10 * (uint64_t)cfg->poll_interval_ms + 2 * COH_PG_TIMEOUT_MS;
	if (cfg->postgres == NULL || !cfg->redis.set) {
		c->disabled = true;
		rf_log(RF_LOG_WARN, "coherence.disabled",
		       "postgres and redis must both be set: this node will not refresh Redis");
	}
	*out = c;
	return 0;
}

void rf_coherence_attach(struct rf_coherence *c, struct rf_node *node)
{
	c->node = node;
}

void rf_coherence_free(struct rf_coherence *c)
{
	if (c == NULL) {
		return;
	}
	if (c->live_sessions != 0) {
		rf_log(RF_LOG_ERROR, "coherence.free", "%u sessions still alive: leaking them",
		       c->live_sessions);
		return;
	}
	free(c);
}

const struct rf_coherence_stats *rf_coherence_stats(const struct rf_coherence *c)
{
	return &c->stats;
}

static int coh_connect(struct rf_coh_session *s)
{
	const struct rf_config *cfg = s->coh->cfg;
	struct lg_error err;
	if (s->redis == NULL) {
		struct lg_redis_config rc = {
		    .host = cfg->redis.host,
		    .port = (int)cfg->redis.port,
		    .password = cfg->redis.password,
		    .db = (int)cfg->redis.db,
		    .connect_timeout_ms = COH_REDIS_TIMEOUT_MS,
		    .command_timeout_ms = COH_REDIS_TIMEOUT_MS,
		};
		if (lg_redis_new(s->coh->rt, &rc, &s->redis, &err) != 0) {
			s->coh->stats.redis_connected = false;
			rf_log(RF_LOG_WARN, "coherence.redis", "connect: %s", err.message);
			return COH_RETRY;
		}
	}
	if (s->pool == NULL) {
		struct lg_pool_config pc = {
		    .conninfo = cfg->postgres,
		    .min_conns = 2,
		    /* the next claim, a transaction per lane, a read per lane, sampling */
		    .max_conns = 2 * COH_LANES + 2,
		    .statement_timeout_ms = COH_PG_TIMEOUT_MS,
		    .backoff_max_ms = COH_BACKOFF_MAX_MS,
		};
		if (lg_pool_new(s->coh->rt, &pc, &s->pool, &err) != 0) {
			rf_log(RF_LOG_WARN, "coherence.postgres", "connect: %s", err.message);
			return COH_RETRY;
		}
	}
	return COH_OK;
}

/*
 * Step 2: reads the term key and takes a token above it through the raft log, then raises
 * the term key to it. COH_DEPOSED when this node no longer leads in the session's term.
 */
static int coh_take_token(struct rf_coh_session *s)
{
	struct rf_coherence *c = s->coh;
	struct lg_redis_reply *r = NULL;
	struct lg_error err;
	int rc = lg_redis_command(s->redis,
				  &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)}, &r,
				  &err, "GET %s", c->cfg->term_key);
	if (rc != 0) {
		return rf__coh_redis_failed(s, rc, &err, "reading the term key");
	}
	uint64_t floor = 0;
	if (r != NULL && r->type == LG_REDIS_STRING) {
		char *end = NULL;
		floor = strtoull(r->str, &end, 10);
		if (end == r->str || *end != '\0') {
			rf_log(RF_LOG_WARN, "coherence.token",
			       "term key %s holds %.40s, not a number: taking a token above 0",
			       c->cfg->term_key, r->str);
			floor = 0;
		}
	}
	lg_redis_reply_free(r);
	if (s->token >= floor) {
		floor = s->token; /* never go back below our own previous token */
	}
	uint64_t token = 0;
	if (c->node == NULL) {
		token = (s->term > floor ? s->term : floor + 1); /* no raft: embedded tests */
	} else if (rf_fencing_take(c->node, s->term, floor, &token) != 0) {
		return COH_DEPOSED;
	}
	if (s->ended) {
		return COH_DEPOSED;
	}
	s->token = token;
	snprintf(s->token_str, sizeof(s->token_str), "%llu", (unsigned long long)token);
	if (c->session == s) {
		c->stats.token = token;
	}
	return rf__coh_claim_term(s);
}

/* Records a turn's outcome: failures in a row for RF_STALL_MS make the leader stalled. */
static void coh_progress(struct rf_coh_session *s, bool ok)
{
	struct rf_coherence_stats *st = &s->coh->stats;
	if (s->coh->session != s) {
		return;
	}
	uint64_t now = lg_now_ms();
	if (ok) {
		if (st->stalled) {
			rf_log(RF_LOG_INFO, "coherence.progress",
			       "term %llu: making progress again", (unsigned long long)s->term);
		}
		st->stalled = false;
		st->failing_since_ms = 0;
		return;
	}
	if (st->failing_since_ms == 0) {
		st->failing_since_ms = now;
	}
	if (!st->stalled && now - st->failing_since_ms >= RF_STALL_MS) {
		st->stalled = true;
		st->stalls++;
		rf_log(RF_LOG_ERROR, "coherence.stalled", "term %llu: no progress for %llu ms: %s",
		       (unsigned long long)s->term,
		       (unsigned long long)(now - st->failing_since_ms), st->stall_reason);
	}
}

/* A session of term (one reference, counted live), or NULL when out of memory. */
static struct rf_coh_session *coh_session_new(struct rf_coherence *c, uint64_t term)
{
	struct rf_coh_session *s = calloc(1, sizeof(*s));
	if (s == NULL || lg_cond_new(c->rt, &s->wake) != 0 ||
	    lg_cond_new(c->rt, &s->finished_cv) != 0) {
		if (s != NULL && s->wake != NULL) {
			lg_cond_free(s->wake);
		}
		free(s);
		return NULL;
	}
	s->coh = c;
	s->term = term;
	s->cached_share = 1.0; /* until batches tell otherwise */
	s->refs = 1;
	c->live_sessions++;
	return s;
}

struct rf_coh_session *rf__coh_session_open(struct rf_coherence *c)
{
	struct rf_coh_session *s = coh_session_new(c, 0);
	if (s == NULL) {
		return NULL;
	}
	s->ended = true; /* leads nothing */
	if (coh_connect(s) != COH_OK) {
		rf__coh_session_release(s);
		return NULL;
	}
	return s;
}

static void coh_update_pg_state(struct rf_coh_session *s)
{
	struct lg_pool_stats ps;
	lg_pool_get_stats(s->pool, &ps);
	s->coh->stats.pg_connected = ps.conns_open > 0;
}

/* Whether rf__coh_check_redis may do more than return (timetravel.c decides the same). */
static bool coh_checks_due(const struct rf_coh_session *s)
{
	uint64_t now = lg_now_ms();
	return s->run_id[0] == '\0' || s->redis_suspect || !s->mark_known ||
	       now >= s->run_id_checked_ms + s->coh->cfg->poll_interval_ms ||
	       (s->invalidate_at_ms != 0 && now >= s->invalidate_at_ms);
}

/* One turn of main: returns false when the session must stop. */
static bool coh_turn(struct rf_coh_session *s, uint64_t *backoff)
{
	const struct rf_config *cfg = s->coh->cfg;
	int rc = coh_connect(s);
	if (rc == COH_OK && !s->listener_started && !s->ended) {
		s->refs++;
		if (lg_coro_spawn(s->coh->rt, rf__coh_listen, s, NULL) != 0) {
			s->refs--;
			rc = COH_RETRY;
		} else {
			s->listener_started = true;
		}
	}
	if (rc == COH_OK && !s->sampler_started && !s->ended) {
		s->refs++;
		if (lg_coro_spawn(s->coh->rt, rf__coh_sampler, s, NULL) != 0) {
			s->refs--;
		} else {
			s->sampler_started = true;
		}
	}
	if (rc == COH_OK && s->token == 0) {
		rc = coh_take_token(s);
		if (rc == COH_STALE) {
			s->token = 0; /* raised again meanwhile: take another one */
			rf__coh_note_failure(s, "fencing token", "Redis holds a higher token");
		}
	}
	if (rc == COH_OK && coh_checks_due(s)) {
		rc = rf__coh_drain(s); /* they may invalidate: with no batch in flight */
	}
	if (rc == COH_OK) {
		rc = rf__coh_check_redis(s);
	}
	if (rc == COH_OK && !s->schema_checked) {
		rc = rf__coh_schema_check(s);
	}
	size_t claimed = 0;
	if (rc == COH_OK) {
		s->dirty = false;
		rc = rf__coh_batch_run(s, &claimed);
		s->last_full = rc == COH_OK && claimed >= cfg->batch_size;
		coh_update_pg_state(s);
	}
	if (rc != COH_OK && rc != COH_CANCELED) {
		/* Settle every lane before backing off or taking a new token. */
		int lanes = rf__coh_drain(s);
		rc = lanes > rc ? lanes : rc;
	}
	if (rc == COH_DEPOSED) {
		rf_log(RF_LOG_WARN, "coherence.deposed",
		       "term %llu: no longer leading (no fencing token): stopping this session",
		       (unsigned long long)s->term);
		return false;
	}
	if (rc == COH_STALE && s->token != 0) {
		/* Redis holds a higher token: a cluster re-created on this Redis, or a newer
		 * leader. Take a token above it; a deposed node cannot commit one and stops. */
		rf_log(RF_LOG_WARN, "coherence.token",
		       "term %llu: Redis holds a token above %llu: taking a higher one",
		       (unsigned long long)s->term, (unsigned long long)s->token);
		s->coh->stats.token_raises++;
		s->token = 0;
		s->dirty = true;
		return true;
	}
	/* A batch handed to a lane is no progress yet: its commit is (or its failure, reported
	 * by the next claim, is not); an empty outbox is. */
	if (rc != COH_OK) {
		coh_progress(s, false);
	} else if (s->lane_committed || (claimed == 0 && s->in_flight == 0)) {
		s->lane_committed = false;
		coh_progress(s, true);
	}
	if (rc != COH_OK) {
		s->coh->stats.errors++;
		s->dirty = true;
		lg_cond_wait(s->wake, lg_deadline_in(*backoff)); /* lost leadership wakes it */
		*backoff = *backoff * 2 > COH_BACKOFF_MAX_MS ? COH_BACKOFF_MAX_MS : *backoff * 2;
		return true;
	}
	*backoff = COH_BACKOFF_MIN_MS;
	if (claimed >= cfg->batch_size || s->dirty || s->ended) {
		return true;
	}
	rf__coh_preopen(s);
	if (s->dirty || s->ended) {
		return true;
	}
	uint64_t wait = cfg->poll_interval_ms;
	if (lg_cond_wait(s->wake, lg_deadline_in(wait)) == LG_ETIMEDOUT) {
		s->dirty = true; /* the poll: catches anything a lost NOTIFY left behind */
	}
	return true;
}

static void coh_main(void *arg)
{
	struct rf_coh_session *s = arg;
	uint64_t backoff = COH_BACKOFF_MIN_MS;
	rf_log(RF_LOG_INFO, "coherence.start", "term %llu: draining the outbox",
	       (unsigned long long)s->term);
	s->dirty = true;
	while (!s->ended && !lg_coro_canceled() && coh_turn(s, &backoff)) {
	}
	s->ended = true;
	if (s->listener != NULL) {
		lg_coro_cancel(s->listener);
	}
	if (s->sampler != NULL) {
		lg_coro_cancel(s->sampler);
	}
	/* Main releases after the listener and the sampler: the pool and the Redis client are
	 * then closed by main or a lane, coroutines that were not canceled, so their
	 * graceful close can wait. */
	while (((s->listener_started && !s->listener_done) ||
		(s->sampler_started && !s->sampler_done)) &&
	       lg_cond_wait(s->wake, LG_DEADLINE_NONE) != LG_ECANCELED) {
	}
	if (s->next_tx != NULL) {
		struct lg_error err;
		lg_tx_rollback(s->next_tx, &err);
		s->next_tx = NULL;
	}
	rf_log(RF_LOG_INFO, "coherence.stop", "term %llu: session ended",
	       (unsigned long long)s->term);
	rf__coh_session_release(s);
}

void rf_coherence_became_leader(void *data, uint64_t term)
{
	struct rf_coherence *c = data;
	if (c->disabled) {
		return;
	}
	if (c->session != NULL) {
		rf_coherence_lost_leadership(c, c->session->term);
	}
	struct rf_coh_session *s = coh_session_new(c, term);
	if (s == NULL) {
		rf_log(RF_LOG_ERROR, "coherence.start", "out of memory: term %llu not served",
		       (unsigned long long)term);
		return;
	}
	if (lg_coro_spawn(c->rt, coh_main, s, NULL) != 0) {
		rf_log(RF_LOG_ERROR, "coherence.start", "cannot spawn: term %llu not served",
		       (unsigned long long)term);
		rf__coh_session_release(s);
		return;
	}
	c->session = s;
	c->stats.leading = true;
	c->stats.session_term = term;
	c->stats.token = 0;
	c->stats.stalled = false;
	c->stats.failing_since_ms = 0;
}

void rf_coherence_lost_leadership(void *data, uint64_t term)
{
	struct rf_coherence *c = data;
	struct rf_coh_session *s = c->session;
	if (s == NULL || s->term != term) {
		return;
	}
	s->ended = true;
	c->session = NULL;
	c->stats.leading = false;
	c->stats.session_term = 0;
	c->stats.token = 0;
	c->stats.stalled = false;
	c->stats.failing_since_ms = 0;
	lg_cond_signal(s->wake);
	if (s->listener != NULL) {
		lg_coro_cancel(s->listener);
	}
	if (s->sampler != NULL) {
		lg_coro_cancel(s->sampler);
	}
}
