/*
 * The leader session of the coherence pipeline: one per term in which this node leads.
 *
 * Happy path:
 *   1. became_leader(T) creates the session and spawns its main coroutine.
 *   2. Main connects to Redis and raises the term key to T (the fencing token: every script
 *      refuses writers below it), opens a small pool to the primary, and spawns the listener.
 *   3. The listener opens a dedicated connection, runs LISTEN lifeguard, and turns every
 *      notification into a wake-up (the payload is ignored: the outbox is the record). A fresh
 *      LISTEN also wakes main, since notifications sent while nobody listened are gone.
 *   4. Main drains the outbox batch by batch (coh_batch.c) whenever it is woken, every
 *      poll_interval_ms, and at once on becoming leader; between batches it samples the
 *      outbox (pending rows, oldest age, pg_notification_queue_usage()) for /status.
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

#define COH_BACKOFF_MIN_MS 50
#define COH_BACKOFF_MAX_MS 2000

int rf_coherence_new(struct lg_runtime *rt, const struct rf_config *cfg,
		     struct rf_coherence **out)
{
	struct rf_coherence *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -1;
	}
	c->rt = rt;
	c->cfg = cfg;
	for (int i = 0; i < LG_CACHE__SCRIPT_COUNT; i++) {
		lg_redis_script_init(&c->scripts[i], lg_cache_script_source(i));
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
	lg_redis_close(s->redis);
	lg_pool_close(s->pool);
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
	int rc = lg_redis_eval(s->redis, &s->coh->scripts[LG_CACHE_CLAIM_TERM], 1, keys, NULL, 1,
			       args, NULL, lg_deadline_in(COH_REDIS_TIMEOUT_MS), NULL, &err);
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
		if (lg_redis_connect(s->coh->rt, &rc, &s->redis, &err) != 0) {
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

/* The listener: LISTEN lifeguard on a dedicated connection; reconnects until ended. */
static void coh_listen(void *arg)
{
	struct rf_coh_session *s = arg;
	struct rf_coherence_stats *st = &s->coh->stats;
	struct lg_conn *conn = NULL;
	uint64_t backoff = COH_BACKOFF_MIN_MS;
	s->listener = lg_coro_self();
	while (!s->ended) {
		struct lg_error err;
		if (conn == NULL) {
			struct lg_conn_config cc = {.conninfo = s->coh->cfg->postgres,
						    .connect_timeout_ms = COH_REDIS_TIMEOUT_MS};
			if (lg_conn_connect(s->coh->rt, &cc, &conn, &err) != 0 ||
			    lg_conn_listen(conn, "lifeguard", &err) != 0) {
				rf_log(RF_LOG_WARN, "coherence.listen", "%s", err.message);
				lg_conn_close(conn);
				conn = NULL;
				if (lg_sleep(backoff) != 0) {
					break;
				}
				backoff = backoff * 2 > COH_BACKOFF_MAX_MS ? COH_BACKOFF_MAX_MS
									   : backoff * 2;
				continue;
			}
			backoff = COH_BACKOFF_MIN_MS;
			st->pg_listening = true;
			rf_log(RF_LOG_INFO, "coherence.listen", "listening on channel lifeguard");
			s->dirty = true; /* notifications sent while nobody listened are gone */
			lg_cond_signal(s->wake);
		}
		struct lg_notification *n = NULL;
		int rc = lg_conn_notification(conn, LG_DEADLINE_NONE, &n, &err);
		if (rc == 0) {
			lg_notification_free(n);
			st->notifications++;
			s->dirty = true;
			lg_cond_signal(s->wake);
			continue;
		}
		if (rc == LG_ECANCELED) {
			break;
		}
		rf_log(RF_LOG_WARN, "coherence.listen", "lost: %s", err.message);
		st->pg_listening = false;
		lg_conn_close(conn);
		conn = NULL;
	}
	st->pg_listening = false;
	lg_conn_close(conn);
	s->listener = NULL;
	s->listener_done = true;
	lg_cond_signal(s->wake); /* main waits for this before it lets go of the session */
	rf__coh_session_release(s);
}

/* Samples the outbox for /status and /metrics (errors only skip the sample). */
static void coh_sample(struct rf_coh_session *s)
{
	static const char sql[] =
	    "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
	    "::float8, pg_notification_queue_usage() FROM lifeguard.outbox";
	struct rf_coherence_stats *st = &s->coh->stats;
	struct lg_result *r = NULL;
	struct lg_error err;
	if (lg_pool_query(s->pool, sql, NULL, 0, NULL, &r, &err) != 0) {
		rf_log(RF_LOG_WARN, "coherence.sample", "%s", err.message);
		return;
	}
	int64_t pending = 0;
	if (lg_result_int64(r, 0, 0, &pending) == 0 &&
	    lg_result_double(r, 0, 1, &st->outbox_oldest_age_s) == 0 &&
	    lg_result_double(r, 0, 2, &st->notify_queue_usage) == 0) {
		st->outbox_pending = (uint64_t)pending;
		st->outbox_known = true;
		st->outbox_sampled_ms = lg_now_ms();
	}
	lg_result_free(r);
}

/* Copies the value of "name:" from an INFO reply into out (cap bytes); false if absent. */
static bool coh_info_field(const struct lg_redis_reply *r, const char *name, char *out,
			   size_t cap)
{
	if (r == NULL || r->type != LG_REDIS_STRING) {
		return false;
	}
	size_t nl = strlen(name);
	for (const char *p = r->str; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		p += *p == '\n';
		if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
			size_t n = strcspn(p + nl + 1, "\r\n");
			snprintf(out, cap, "%.*s", (int)n, p + nl + 1);
			return true;
		}
	}
	return false;
}

/* Samples Redis' eviction state: an evicted fence lets an older fill through. */
static void coh_sample_redis(struct rf_coh_session *s)
{
	struct rf_coherence_stats *st = &s->coh->stats;
	struct lg_redis_reply *stats = NULL;
	struct lg_redis_reply *mem = NULL;
	struct lg_error err;
	uint64_t deadline = lg_deadline_in(COH_REDIS_TIMEOUT_MS);
	char evicted[32];
	if (lg_redis_command(s->redis, deadline, &stats, &err, "INFO stats") == 0 &&
	    lg_redis_command(s->redis, deadline, &mem, &err, "INFO memory") == 0 &&
	    coh_info_field(stats, "evicted_keys", evicted, sizeof(evicted)) &&
	    coh_info_field(mem, "maxmemory_policy", st->redis_maxmemory_policy,
			   sizeof(st->redis_maxmemory_policy))) {
		st->redis_evicted_keys = strtoull(evicted, NULL, 10);
		st->redis_info_known = true;
	}
	lg_redis_reply_free(stats);
	lg_redis_reply_free(mem);
}

/*
 * The sampler: outbox and Redis state for /status every poll_interval_ms, off the batch path.
 * While a backlog drains (full batches) the outbox count(*) would compete with the drain, so
 * it then runs only every 10 periods.
 */
static void coh_sampler(void *arg)
{
	struct rf_coh_session *s = arg;
	uint64_t period = s->coh->cfg->poll_interval_ms;
	uint64_t last = 0;
	s->sampler = lg_coro_self();
	while (!s->ended) {
		uint64_t now = lg_now_ms();
		if (!s->last_full || now >= last + 10 * period) {
			coh_sample(s);
			coh_sample_redis(s);
			last = now;
		}
		if (s->ended || lg_sleep(period) != 0) {
			break;
		}
	}
	s->sampler = NULL;
	s->sampler_done = true;
	lg_cond_signal(s->wake);
	rf__coh_session_release(s);
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
		if (lg_coro_spawn(s->coh->rt, coh_listen, s, NULL) != 0) {
			s->refs--;
			rc = COH_RETRY;
		} else {
			s->listener_started = true;
		}
	}
	if (rc == COH_OK && !s->sampler_started && !s->ended) {
		s->refs++;
		if (lg_coro_spawn(s->coh->rt, coh_sampler, s, NULL) != 0) {
			s->refs--;
		} else {
			s->sampler_started = true;
		}
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
