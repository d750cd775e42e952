/*
 * What every coherence file below the session's main loop shares about a session: releasing
 * it, recording a failure, claiming its term in Redis, reading an INFO field. Here, at the
 * bottom, so that batch, apply, the time-travel checks and the watchers call down into it
 * and nothing below coherence.c calls back up into the session's main loop.
 *
 * Failure modes: rf__coh_redis_failed maps a Redis error to the batch's outcome (STALETERM ->
 * COH_STALE, anything else -> COH_RETRY, counted, logged, and kept as the stall reason).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "coh_int.h"
#include "log.h"

static void coh_tables_free(struct rf_coh_session *s)
{
	for (size_t i = 0; i < s->n_tables; i++) {
		free(s->tables[i]->name);
		free(s->tables[i]->canon);
		free(s->tables[i]->read_sql);
		free(s->tables[i]);
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
		c->stats.token = 0;
		c->stats.stalled = false;
		c->stats.failing_since_ms = 0;
		c->stats.pg_connected = false;
		c->stats.pg_listening = false;
		c->stats.redis_connected = false;
	}
	lg_redis_free(s->redis);
	lg_pool_free(s->pool);
	lg_cond_free(s->wake);
	lg_cond_free(s->finished_cv);
	coh_tables_free(s);
	free(s->inflight);
	rf_audit_state_free(&s->audit);
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
	st->redis_errors++;
	s->redis_suspect = true; /* a restart looks like this: check the run id first */
	rf_log(RF_LOG_WARN, "coherence.redis", "term %llu: %s: %s", (unsigned long long)s->term,
	       what, err->message);
	char where[96];
	snprintf(where, sizeof(where), "Redis, %s", what);
	rf__coh_note_failure(s, where, err->message);
	return COH_RETRY;
}

void rf__coh_note_failure(struct rf_coh_session *s, const char *what, const char *message)
{
	struct rf_coherence_stats *st = &s->coh->stats;
	if (s->coh->session == s) {
		snprintf(st->stall_reason, sizeof(st->stall_reason), "%s: %s", what, message);
	}
}

int rf__coh_claim_term(struct rf_coh_session *s)
{
	const char *keys[] = {s->coh->cfg->term_key};
	const char *args[] = {s->token_str};
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

/* Copies the value of "name:" from an INFO reply into out (cap bytes); false if absent. */
bool rf__coh_info_field(const struct lg_redis_reply *r, const char *name, char *out, size_t cap)
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
