/*
 * The Redis side of a batch: the cache-contract scripts (libguard/cache_contract.h) for every key,
 * fanned out over up to COH_WORKERS coroutines so that the commands of one loop turn travel
 * to Redis in one pipelined write.
 *
 * Happy path per key:
 *   phase 1: a delete runs TOMBSTONE (cached -> tombstone, uncached -> fence); an insert or
 *            update runs CHECK_OR_FENCE (uncached -> fence; cached -> read it, phase 2).
 *   phase 2: cached keys whose row was read run REFRESH_MANY, up to COH_REFRESH_CHUNK keys per
 *            script, each with its row's own version (kept when Redis already holds it or
 *            newer, fenced if the key vanished meanwhile); a cached key whose row is gone by
 *            now runs TOMBSTONE. A script per chunk pays the per-call cost (command parsing,
 *            entering Lua, the reply) once per chunk: alone, Redis refreshes about twice as
 *            many keys per CPU second that way; in the full pipeline the per-key commands
 *            dominate Redis' time, and most of the saving is the leader's (fewer replies).
 * TRUNCATE: TABLE_FENCE before the batch commits; once it has committed, SCAN the table's row
 * keys page by page and TOMBSTONE each with the TRUNCATE's version (keys already holding a
 * newer row are kept). The fence alone keeps the guarantee (readers treat values below it as
 * absent, and it never expires), so the sweep, a walk of the whole keyspace, runs outside the
 * claim transaction: it never holds outbox locks, and a slow or failed sweep cannot roll a
 * batch back (its transaction would hit idle_in_transaction_session_timeout on a large
 * keyspace, again and again). A failed sweep leaves unreadable keys to expire by their TTL.
 *
 * Failure modes: STALETERM -> COH_STALE (a higher token holds Redis: take a new one, or stop
 * when deposed); connection loss, timeout, or any other Redis error (OOM, BUSY, LOADING,
 * READONLY, MISCONF, NOPERM, NOAUTH, a script error, ...) -> COH_RETRY: the batch rolls back
 * and is retried with backoff, counted in redis_errors; nothing is dead-lettered for it. The
 * one exception is WRONGTYPE: the key holds a value of another type that is not ours to
 * interpret, and only that change is dead-lettered with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coh_int.h"
#include "log.h"

struct coh_batch *rf__coh_batch_new(struct rf_coh_session *s)
{
	struct coh_batch *b = calloc(1, sizeof(*b));
	if (b == NULL || lg_cond_new(s->coh->rt, &b->done) != 0) {
		free(b);
		return NULL;
	}
	b->refs = 1;
	b->s = s;
	s->refs++;
	return b;
}

void rf__coh_batch_release(struct coh_batch *b)
{
	if (--b->refs > 0) {
		return;
	}
	rf_plan_free(&b->plan);
	free(b->refresh);
	json_decref(b->requeue);
	lg_redis_reply_free(b->scan);
	lg_cond_free(b->done);
	struct rf_coh_session *s = b->s;
	free(b);
	rf__coh_session_release(s);
}

static void coh_worker(void *arg)
{
	struct coh_batch *b = arg;
	while (!b->abort && b->next < b->n) {
		size_t i = b->next++;
		int rc = b->item(b, i);
		if (rc > b->rc) {
			b->rc = rc;
		}
		if (rc != COH_OK) {
			b->abort = true;
		}
	}
	if (--b->running == 0) {
		lg_cond_signal(b->done);
	}
	rf__coh_batch_release(b);
}

/*
 * Runs item(b, i) for i in [0, n) on up to COH_WORKERS coroutines; waits for all. With
 * with_claim, main raises the term key before the workers' first turn, so the claim is the
 * first command of the pipeline, then Redis' version mark (timetravel.c).
 */
static int coh_fanout(struct coh_batch *b, size_t n, int (*item)(struct coh_batch *, size_t),
		      bool with_claim)
{
	b->item = item;
	b->n = n;
	b->next = 0;
	b->rc = COH_OK;
	b->abort = false;
	size_t workers = n < COH_WORKERS ? n : COH_WORKERS;
	for (size_t w = 0; w < workers; w++) {
		b->refs++;
		if (lg_coro_spawn(b->s->coh->rt, coh_worker, b, NULL) != 0) {
			b->refs--;
			b->abort = b->running == 0;
			break;
		}
		b->running++;
	}
	if (n > 0 && b->running == 0) {
		return COH_RETRY;
	}
	int claim = with_claim ? rf__coh_claim_term(b->s) : COH_OK;
	if (with_claim && claim == COH_OK) {
		claim = rf__coh_raise_mark(b->s, b->mark_top);
	}
	if (claim != COH_OK) {
		b->abort = true;
	}
	while (b->running > 0) {
		if (lg_cond_wait(b->done, LG_DEADLINE_NONE) == LG_ECANCELED) {
			b->abort = true;
			return COH_CANCELED;
		}
	}
	return claim > b->rc ? claim : b->rc;
}

/* The one Redis error that belongs to a key rather than to the server: a value of another
 * type at a row key (not ours). Every other error is retried. */
static bool coh_key_error(const char *msg)
{
	return strncmp(msg, "WRONGTYPE", 9) == 0;
}

/*
 * Runs a script; on success copies its status answer into answer. Returns enum coh_rc, or -1
 * for a permanent error on this key (message in answer).
 */
static int coh_eval(struct coh_batch *b, enum lg_cache_script which, int nkeys,
		    const char *const *keys, int nargs, const char *const *args,
		    const size_t *arg_lens, char *answer, size_t cap)
{
	struct rf_coh_session *s = b->s;
	struct lg_redis_reply *reply = NULL;
	struct lg_error err;
	int rc = lg_redis_eval(
	    s->redis, &s->coh->scripts[which], nkeys, keys, NULL, nargs, args, arg_lens,
	    &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)}, &reply, &err);
	if (rc != 0) {
		if (rc == LG_ESERVER && coh_key_error(err.message)) {
			snprintf(answer, cap, "Redis refused the script: %.200s", err.message);
			return -1;
		}
		return rf__coh_redis_failed(s, rc, &err, "running a cache script");
	}
	s->coh->stats.redis_connected = true;
	snprintf(answer, cap, "%.*s", (int)(reply != NULL ? reply->len : 0),
		 reply != NULL && reply->str != NULL ? reply->str : "");
	lg_redis_reply_free(reply);
	return COH_OK;
}

static void coh_count(struct rf_coherence_stats *st, const char *answer)
{
	switch (lg__contract_answer(answer)) {
	case LG__ANSWER_REFRESHED:
		st->refreshed++;
		break;
	case LG__ANSWER_FENCED:
		st->fenced++;
		break;
	case LG__ANSWER_TOMBSTONED:
		st->tombstoned++;
		break;
	case LG__ANSWER_KEPT:
		st->kept++;
		break;
	default:
		break;
	}
}

/* TOMBSTONE for row key / fence key at version (text). */
static int coh_tombstone(struct coh_batch *b, const char *row_key, const char *fence_key,
			 const char *version, char *answer, size_t cap)
{
	const struct rf_config *cfg = b->s->coh->cfg;
	char tomb_ttl[24];
	char fence_ttl[24];
	snprintf(tomb_ttl, sizeof(tomb_ttl), "%u", cfg->tombstone_ttl_ms);
	snprintf(fence_ttl, sizeof(fence_ttl), "%u", cfg->fence_ttl_ms);
	const char *keys[] = {row_key, fence_key, cfg->term_key};
	const char *args[] = {version, tomb_ttl, fence_ttl, b->s->token_str};
	return coh_eval(b, LG_CACHE_TOMBSTONE, 3, keys, 4, args, NULL, answer, cap);
}

/* A key's answer: counted, and the key done. */
static void coh_answered(struct coh_batch *b, struct rf_key_work *k, const char *answer)
{
	coh_count(&b->s->coh->stats, answer);
	if (lg__contract_answer(answer) == LG__ANSWER_FENCED) {
		b->n_miss++;
	} else {
		b->n_hit++;
	}
	k->state = RF_KEY_DONE;
}

/* A key Redis refused for its own value (WRONGTYPE): dead-lettered, the batch goes on. */
static void coh_key_refused(struct rf_key_work *k, const char *message)
{
	rf_log(RF_LOG_WARN, "coherence.key", "%s: %s", k->redis_key, message);
	k->state = RF_KEY_BAD;
	k->bad = "Redis refused the cache script for this key (foreign value?)";
}

/* Whether key k is refreshed by a REFRESH_MANY chunk: cached, with its row read. */
static bool coh_refreshed_in_chunk(const struct rf_key_work *k)
{
	return k->state == RF_KEY_CACHED && k->row_found;
}

/* Chunk c of b->refresh: one REFRESH_MANY script for its keys. */
static int coh_chunk_item(struct coh_batch *b, size_t c)
{
	const struct rf_config *cfg = b->s->coh->cfg;
	size_t from = c * COH_REFRESH_CHUNK;
	size_t n =
	    b->n_refresh - from < COH_REFRESH_CHUNK ? b->n_refresh - from : COH_REFRESH_CHUNK;
	const char *keys[1 + 2 * COH_REFRESH_CHUNK];
	const char *args[2 + 2 * COH_REFRESH_CHUNK];
	size_t lens[2 + 2 * COH_REFRESH_CHUNK];
	char versions[COH_REFRESH_CHUNK][24];
	char fence_ttl[24];
	snprintf(fence_ttl, sizeof(fence_ttl), "%u", cfg->fence_ttl_ms);
	keys[0] = cfg->term_key;
	args[0] = b->s->token_str;
	lens[0] = strlen(b->s->token_str);
	args[1] = fence_ttl;
	lens[1] = strlen(fence_ttl);
	for (size_t j = 0; j < n; j++) {
		const struct rf_key_work *k = &b->plan.keys[b->refresh[from + j]];
		keys[1 + 2 * j] = k->redis_key;
		keys[2 + 2 * j] = k->fence_key;
		int len =
		    snprintf(versions[j], sizeof(versions[j]), "%lld", (long long)k->row_version);
		args[2 + 2 * j] = versions[j];
		lens[2 + 2 * j] = (size_t)len;
		args[3 + 2 * j] = k->value;
		lens[3 + 2 * j] = k->value_len;
	}
	struct rf_coh_session *s = b->s;
	struct lg_redis_reply *reply = NULL;
	struct lg_error err;
	int rc = lg_redis_eval(s->redis, &s->coh->scripts[LG_CACHE_REFRESH_MANY], (int)(1 + 2 * n),
			       keys, NULL, (int)(2 + 2 * n), args, lens,
			       &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)},
			       &reply, &err);
	if (rc != 0) {
		return rf__coh_redis_failed(s, rc, &err, "running a cache script");
	}
	s->coh->stats.redis_connected = true;
	if (reply == NULL || reply->type != LG_REDIS_ARRAY || reply->elements != n) {
		lg_redis_reply_free(reply);
		err = (struct lg_error){.code = LG_EPROTO};
		snprintf(err.message, sizeof(err.message),
			 "REFRESH_MANY answered something other than %zu answers", n);
		return rf__coh_redis_failed(s, LG_EPROTO, &err, "running a cache script");
	}
	rc = COH_OK;
	for (size_t j = 0; j < n; j++) {
		struct rf_key_work *k = &b->plan.keys[b->refresh[from + j]];
		const struct lg_redis_reply *e = &reply->element[j];
		char answer[320];
		snprintf(answer, sizeof(answer), "%.*s", (int)(e->str != NULL ? e->len : 0),
			 e->str != NULL ? e->str : "");
		if (lg__contract_answer(answer) != LG__ANSWER_OTHER) {
			coh_answered(b, k, answer);
		} else if (coh_key_error(answer)) {
			coh_key_refused(k, answer);
		} else if (rc == COH_OK) {
			/* Any other error of one key (MISCONF, OOM, ...) retries the batch. */
			err = (struct lg_error){.code = LG_ESERVER};
			snprintf(err.message, sizeof(err.message), "%s", answer);
			rc = rf__coh_redis_failed(s, LG_ESERVER, &err, "running a cache script");
		}
	}
	lg_redis_reply_free(reply);
	return rc;
}

static int coh_key_item(struct coh_batch *b, size_t i)
{
	struct rf_key_work *k = &b->plan.keys[i];
	const struct rf_config *cfg = b->s->coh->cfg;
	bool second = k->state == RF_KEY_CACHED;
	if ((k->state != RF_KEY_PENDING && !second) || coh_refreshed_in_chunk(k)) {
		return COH_OK;
	}
	if (!second && k->version <= b->s->suspect_below) {
		/* The version sequence went back (timetravel.c): the cached value may be a
		 * phantom with a higher version than this change. Drop it; the fence then
		 * refuses fills older than this change. */
		struct lg_error err;
		int urc = lg_redis_command(
		    b->s->redis, &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)},
		    NULL, &err, "UNLINK %s", k->redis_key);
		if (urc != 0) {
			return rf__coh_redis_failed(b->s, urc, &err, "dropping a possible phantom");
		}
		b->s->coh->stats.invalidated++;
	}
	char version[24];
	char fence_ttl[24];
	char answer[320];
	snprintf(fence_ttl, sizeof(fence_ttl), "%u", cfg->fence_ttl_ms);
	const char *keys[] = {k->redis_key, k->fence_key, cfg->term_key};
	int rc;
	if (second || k->op == 'D') {
		snprintf(version, sizeof(version), "%lld", (long long)k->version);
		rc = coh_tombstone(b, k->redis_key, k->fence_key, version, answer, sizeof(answer));
	} else {
		snprintf(version, sizeof(version), "%lld", (long long)k->version);
		const char *args[] = {version, fence_ttl, b->s->token_str};
		rc = coh_eval(b, LG_CACHE_CHECK_OR_FENCE, 3, keys, 3, args, NULL, answer,
			      sizeof(answer));
		if (rc == COH_OK && lg__contract_answer(answer) == LG__ANSWER_CACHED) {
			k->state = RF_KEY_CACHED;
			return COH_OK;
		}
	}
	if (rc == -1) {
		coh_key_refused(k, answer);
		return COH_OK;
	}
	if (rc == COH_OK) {
		coh_answered(b, k, answer);
	}
	return rc;
}

/* Items [0, n_chunks) are REFRESH_MANY chunks; the rest are keys, one script each. */
static int coh_apply_item(struct coh_batch *b, size_t i)
{
	return i < b->n_chunks ? coh_chunk_item(b, i) : coh_key_item(b, i - b->n_chunks);
}

int rf__coh_apply_keys(struct coh_batch *b, bool with_claim)
{
	/* Each key's state says which phase it is in. */
	free(b->refresh);
	b->refresh = NULL;
	b->n_refresh = 0;
	b->n_chunks = 0;
	size_t n = 0;
	for (size_t i = 0; i < b->plan.n_keys; i++) {
		n += coh_refreshed_in_chunk(&b->plan.keys[i]);
	}
	if (n > 0) {
		b->refresh = malloc(n * sizeof(*b->refresh));
		if (b->refresh == NULL) {
			return COH_RETRY;
		}
		for (size_t i = 0; i < b->plan.n_keys; i++) {
			if (coh_refreshed_in_chunk(&b->plan.keys[i])) {
				b->refresh[b->n_refresh++] = i;
			}
		}
		b->n_chunks = (n + COH_REFRESH_CHUNK - 1) / COH_REFRESH_CHUNK;
	}
	return coh_fanout(b, b->n_chunks + b->plan.n_keys, coh_apply_item, with_claim);
}

/* Tombstones one scanned row key with the sweep's version. */
static int coh_sweep_item(struct coh_batch *b, size_t i)
{
	const struct lg_redis_reply *keys = &b->scan->element[1];
	const struct lg_redis_reply *key = &keys->element[i];
	const struct rf_config *cfg = b->s->coh->cfg;
	size_t kl = strlen(cfg->key_prefix);
	if (key->type != LG_REDIS_STRING || key->len <= kl || memchr(key->str, 0, key->len)) {
		return COH_OK;
	}
	char fence[2048];
	if (snprintf(fence, sizeof(fence), "%s%s", cfg->fence_prefix, key->str + kl) >=
	    (int)sizeof(fence)) {
		return COH_OK;
	}
	char answer[320];
	int rc = coh_tombstone(b, key->str, fence, b->sweep_version_str, answer, sizeof(answer));
	if (rc == COH_OK) {
		coh_count(&b->s->coh->stats, answer);
	}
	return rc == -1 ? COH_OK : rc;
}

/* One TRUNCATE's table fence, before the batch commits. */
static int coh_table_fence(struct coh_batch *b, const struct rf_truncate_work *t)
{
	struct rf_coh_session *s = b->s;
	char version[24];
	char answer[320];
	snprintf(version, sizeof(version), "%lld", (long long)t->version);
	const char *keys[] = {t->fence_key, s->coh->cfg->term_key};
	const char *args[] = {version, s->token_str};
	int rc = coh_eval(b, LG_CACHE_TABLE_FENCE, 2, keys, 2, args, NULL, answer, sizeof(answer));
	if (rc != COH_OK) {
		return rc == -1 ? COH_RETRY : rc;
	}
	s->coh->stats.truncates++;
	return COH_OK;
}

/* One TRUNCATE's tombstone sweep over the table's cached keys, after the commit. */
static int coh_sweep(struct coh_batch *b, const struct rf_truncate_work *t)
{
	struct rf_coh_session *s = b->s;
	int rc = COH_OK;
	snprintf(b->sweep_version_str, sizeof(b->sweep_version_str), "%lld", (long long)t->version);
	char cursor[32] = "0";
	do {
		if (s->ended) {
			return COH_CANCELED; /* leadership lost: stop; the fence needs no sweep */
		}
		struct lg_error err;
		lg_redis_reply_free(b->scan);
		b->scan = NULL;
		const char *argv[] = {"SCAN", cursor, "MATCH", t->match, "COUNT", "1000"};
		rc = lg_redis_commandv(
		    s->redis, &(struct lg_redis_opts){lg_deadline_in(COH_REDIS_TIMEOUT_MS)}, 6,
		    argv, NULL, &b->scan, &err);
		if (rc != 0) {
			return rf__coh_redis_failed(s, rc, &err, "SCAN for a TRUNCATE");
		}
		const struct lg_redis_reply *r = b->scan;
		if (r->type != LG_REDIS_ARRAY || r->elements != 2 ||
		    r->element[0].type != LG_REDIS_STRING || r->element[0].len >= sizeof(cursor) ||
		    r->element[1].type != LG_REDIS_ARRAY) {
			rf_log(RF_LOG_WARN, "coherence.truncate", "unexpected SCAN reply");
			return COH_RETRY;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0].str);
		rc = coh_fanout(b, r->element[1].elements, coh_sweep_item, false);
		if (rc != COH_OK) {
			return rc;
		}
	} while (strcmp(cursor, "0") != 0);
	return COH_OK;
}

int rf__coh_apply_truncates(struct coh_batch *b)
{
	for (size_t i = 0; i < b->plan.n_truncates; i++) {
		int rc = coh_table_fence(b, &b->plan.truncates[i]);
		if (rc != COH_OK) {
			return rc;
		}
	}
	return COH_OK;
}

void rf__coh_sweep_truncates(struct coh_batch *b)
{
	for (size_t i = 0; i < b->plan.n_truncates; i++) {
		const struct rf_truncate_work *t = &b->plan.truncates[i];
		int rc = coh_sweep(b, t);
		if (rc != COH_OK) {
			/* The fence is up and never expires: the keys left unswept read as absent
			 * and expire by their TTL. */
			rf_log(RF_LOG_WARN, "coherence.truncate",
			       "sweep of %s stopped (%s): its keys stay unreadable until their TTL",
			       t->match, rf_strerror(rc));
			return;
		}
	}
}
