/*
 * The leader session of the coherence pipeline: one per term in which this node leads.
 *
 * Happy path:
 *   1. became_leader(T) creates the session and spawns its main coroutine.
 *   2. Main connects to Redis and raises the term key to T (the fencing token: every script
 *      refuses writers below it), opens a small pool to the primary, and spawns the listener.
 *   3. It spawns the listener (LISTEN lifeguard -> wake-ups) and the sampler (outbox and
 *      Redis state for /status), both in coh_watch.c.
 *   4. Main drains the outbox batch by batch (coh_batch.c) whenever it is woken, every
 *      poll_interval_ms, and at once on becoming leader.
 * lost_leadership(T) marks the session ended and cancels the listener; main finishes the step
 * it is in (every wait has a deadline) and stops. A deposed session's Redis writes are refused
 * by the term check, and its claimed outbox rows return to the outbox when its transaction
 * rolls back, so the next leader processes them: at-least-once, idempotent through versions.
 *
 * Failure modes: Redis or PostgreSQL unreachable or restarted -> the batch rolls back (the
 * outbox keeps the record), errors++, exponential backoff (50 ms .. 2 s) and retry; the pool
 * and the Redis client reconnect by themselves, the listener reconnects and re-LISTENs.
 * Redis holding a newer term (STALETERM) -> rejected_stale++, the session ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coh_int.h"
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
	if (cfg->postgres == NULL || !cfg->redis.set) {
		c->disabled = true;
		rf_log(RF_LOG_WARN, "coherence.disabled",
		       "postgres and redis must both be set: this node will not refresh Redis");
	}
	*out = c;
	return 0;
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

static void coh_tables_free(struct rf_coh_session *s)
{
	for (size_t i = 0; i < s->n_tables; i++) {
		free(s->tables[i].name);
		free(s->tables[i].canon);
		free(s->tables[i].read_sql);
	}
	free(s->tables);
	s->tables = NULL;
	s->n_tables = 0;
}

void rf__coh_session_release(struct rf_coh_session *s)
{
	if (--s->refs > 0) {
		return;
	}
	struct rf_coherence *c = s->coh;
	if (c->session == s) {
		c->session = NULL;
	}
	if (c->session == NULL) {
		c->stats.leading = false;
		c->stats.session_term = 0;
		c->stats.pg_connected = false;
		c->stats.pg_listening = false;
		c->stats.redis_connected = false;
	}
	lg_redis_free(s->redis);
	lg_pool_free(s->pool);
	lg_cond_free(s->wake);
	lg_cond_free(s->finished_cv);
	coh_tables_free(s);
	c->live_sessions--;
	free(s);
}

int rf__coh_redis_failed(struct rf_coh_session *s, int rc, const struct lg_error *err,
			 const char *what)
{
	struct rf_coherence_stats *st = &s->coh->stats;
	if (rc == LG_ESERVER && strncmp(err->message, "STALETERM", 9) == 0) {
		st->rejected_stale++;
		st->redis_connected = true;
		return COH_STALE;
	}
	if (rc != LG_ESERVER) {
		st->redis_connected = false;
	}
	rf_log(RF_LOG_WARN, "coherence.redis", "term %llu: %s: %s", (unsigned long long)s->term,
	       what, err->message);
	return COH_RETRY;
}

int rf__coh_claim_term(struct rf_coh_session *s)
{
	const char *keys[] = {s->coh->cfg->term_key};
	const char *args[] = {s->term_str};
	struct lg_error err;
	int rc = lg_redis_eval(
	    s->redis, &s->coh->scripts[LG_CACHE_CLAIM_TERM], 1, keys, NULL, 1, args, NULL,
	    &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)}, NULL, &err);
	if (rc != 0) {
		return rf__coh_redis_failed(s, rc, &err, "claiming the term");
	}
	s->coh->stats.redis_connected = true;
	return COH_OK;
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
		    .max_conns = 4, /* claim tx, the previous batch's commit, reads, sampling */
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

static void coh_update_pg_state(struct rf_coh_session *s)
{
	struct lg_pool_stats ps;
	lg_pool_get_stats(s->pool, &ps);
	s->coh->stats.pg_connected = ps.conns_open > 0;
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
	if (rc == COH_STALE) {
		rf_log(RF_LOG_WARN, "coherence.deposed",
		       "Redis holds a newer term than %llu: stopping this session",
		       (unsigned long long)s->term);
		return false;
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
	 * then closed by main or a finisher, coroutines that were not canceled, so their
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
	struct rf_coh_session *s = calloc(1, sizeof(*s));
	if (s == NULL || lg_cond_new(c->rt, &s->wake) != 0 ||
	    lg_cond_new(c->rt, &s->finished_cv) != 0) {
		if (s != NULL && s->wake != NULL) {
			lg_cond_free(s->wake);
		}
		free(s);
		rf_log(RF_LOG_ERROR, "coherence.start", "out of memory: term %llu not served",
		       (unsigned long long)term);
		return;
	}
	s->coh = c;
	s->term = term;
	snprintf(s->term_str, sizeof(s->term_str), "%llu", (unsigned long long)term);
	s->refs = 1;
	c->live_sessions++;
	if (lg_coro_spawn(c->rt, coh_main, s, NULL) != 0) {
		rf_log(RF_LOG_ERROR, "coherence.start", "cannot spawn: term %llu not served",
		       (unsigned long long)term);
		rf__coh_session_release(s);
		return;
	}
	c->session = s;
	c->stats.leading = true;
	c->stats.session_term = term;
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
	lg_cond_signal(s->wake);
	if (s->listener != NULL) {
		lg_coro_cancel(s->listener);
	}
	if (s->sampler != NULL) {
		lg_coro_cancel(s->sampler);
	}
}
