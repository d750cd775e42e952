/*
 * The leader session's two watchers, each a coroutine holding a session reference.
 *
 * The listener: a dedicated connection to the primary runs LISTEN lifeguard; every
 * notification becomes a wake-up of main (payloads are ignored: the outbox is the record). A
 * fresh LISTEN also wakes main, since notifications sent while nobody listened are gone.
 * Failure modes: connect or LISTEN fails, or the connection is lost -> pg_listening false,
 * logged, reconnect with backoff (50 ms .. 2 s); canceled when the session ends.
 *
 * The sampler: every poll_interval_ms the outbox (pending rows, oldest age,
 * pg_notification_queue_usage()) and Redis' eviction state for /status and /metrics, off the
 * batch path. While a backlog drains (full batches) the outbox count(*) would compete with
 * the drain, so it then runs only every 10 periods. Failures skip a sample (logged). Every
 * period it also audits audit_keys_per_s * period keys (audit.c): cached values compared with
 * their rows on the primary, in up to COH_AUDIT_SLICES rounds spread over the period.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coh_int.h"
#include "log.h"

/* At most this many audit rounds per sampler period. */
#define COH_AUDIT_SLICES 10

/* The listener: LISTEN lifeguard on a dedicated connection; reconnects until ended. */
void rf__coh_listen(void *arg)
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
			if (lg_conn_new(s->coh->rt, &cc, &conn, &err) != 0 ||
			    lg_conn_listen(conn, "lifeguard", &err) != 0) {
				rf_log(RF_LOG_WARN, "coherence.listen", "%s", err.message);
				lg_conn_free(conn);
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
		lg_conn_free(conn);
		conn = NULL;
	}
	st->pg_listening = false;
	lg_conn_free(conn);
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

/* Samples Redis' eviction state: an evicted fence lets an older fill through. */
static void coh_sample_redis(struct rf_coh_session *s)
{
	struct rf_coherence_stats *st = &s->coh->stats;
	struct lg_redis_reply *stats = NULL;
	struct lg_redis_reply *mem = NULL;
	struct lg_error err;
	const struct lg_redis_opts o = {lg_deadline_in(COH_REDIS_TIMEOUT_MS)};
	char evicted[32];
	if (lg_redis_command(s->redis, &o, &stats, &err, "INFO stats") == 0 &&
	    lg_redis_command(s->redis, &o, &mem, &err, "INFO memory") == 0 &&
	    rf__coh_info_field(stats, "evicted_keys", evicted, sizeof(evicted)) &&
	    rf__coh_info_field(mem, "maxmemory_policy", st->redis_maxmemory_policy,
			       sizeof(st->redis_maxmemory_policy))) {
		st->redis_evicted_keys = strtoull(evicted, NULL, 10);
		st->redis_info_known = true;
	}
	lg_redis_reply_free(stats);
	lg_redis_reply_free(mem);
}

/* One audit round of the leader, of want keys. */
static void coh_audit_tick(struct rf_coh_session *s, size_t want)
{
	struct rf_coherence_stats *st = &s->coh->stats;
	struct rf_audit_round round;
	if (rf__coh_audit(s, &s->audit, NULL, want, &round) == COH_OK && s->coh->session == s) {
		st->audit_checked += round.checked;
		st->audit_stale += round.stale;
		st->audit_oldest_stale_s = rf_audit_oldest_stale_s(&s->audit, lg_now_ms());
	}
}

/*
 * The sampler: outbox and Redis state for /status every poll_interval_ms, off the batch path.
 * While a backlog drains (full batches) the outbox count(*) would compete with the drain, so
 * it then runs only every 10 periods.
 */
void rf__coh_sampler(void *arg)
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
		/* The period's audit keys (audit_keys_per_s * period), in up to COH_AUDIT_SLICES
		 * rounds spread over the period: one round of all of them at once held the
		 * batches behind it for milliseconds (the p99 of propagation at 1k changes/s went
		 * from under 3 ms to over 10 ms). */
		size_t want = (size_t)((uint64_t)s->coh->cfg->audit_keys_per_s * period / 1000);
		want = want == 0 && s->coh->cfg->audit_keys_per_s > 0 ? 1 : want;
		size_t slices = want == 0 ? 1 : want < COH_AUDIT_SLICES ? want : COH_AUDIT_SLICES;
		uint64_t slice_ms = period / slices > 0 ? period / slices : 1;
		bool stop = false;
		for (size_t i = 0; i < slices && !stop; i++) {
			if (want > 0 && !s->ended) {
				coh_audit_tick(s, want / slices + (i < want % slices));
			}
			stop = s->ended || lg_sleep(slice_ms) != 0;
		}
		if (stop) {
			break;
		}
	}
	s->sampler = NULL;
	s->sampler_done = true;
	lg_cond_signal(s->wake);
	rf__coh_session_release(s);
}
