/*
 * Things that go back in time (docs/data-contract.md): detected, never trusted.
 *
 * Redis restarted from an older snapshot. The leader keeps Redis' INFO server run_id in the
 * run key (<term_key>:run_id). Before batches, at most every poll_interval_ms and at once
 * after any Redis failure (a restart breaks the connection), main compares the two:
 *   - equal: nothing happened;
 *   - absent: a Redis that was emptied or never used; nothing cached can be older than its
 *     row, so nothing is deleted (the term key and the mark are raised again by the next
 *     batch);
 *   - different: Redis restarted with data of its own (an RDB or AOF file), which may be
 *     older than what the leader wrote. Before the next batch, every cached row key is
 *     deleted (pass 1: the values of the snapshot, readers refill from PostgreSQL), and again
 *     fence_ttl_ms later (pass 2: a fill that read its row before a change whose fence the
 *     old snapshot lost can land until then; fence_ttl_ms covers the replica lag bound and
 *     the fill deadline). Then the run key is set to the new run id.
 * Bound: an older value restored by the snapshot is readable for at most poll_interval_ms
 * (detection) plus one pass over the keyspace; a fill racing with a lost fence for at most
 * poll_interval_ms + fence_ttl_ms plus one pass.
 *
 * A version sequence below the highest version Redis has seen (a restore of PostgreSQL, a
 * failover to a replica that lost commits). Every batch raises the mark
 * (<term_key>:version_mark) to its highest version, and every claim reads the sequence's
 * last_value in the same round trip; the leader also checks once when it starts. When the
 * sequence is below the mark M: setval raises it past M (every later write is newer than any
 * value Redis holds), cached keys whose version is above the sequence's old value are deleted
 * (values of commits that the database no longer has: phantoms), and for the rest of the
 * session every change with a version <= M drops its cached key before it fences it (a row
 * written again after the set-back carries a version that a phantom may exceed).
 *
 * A primary with another history: a replica promoted after a crash, or a point-in-time
 * restore, starts a new timeline and may lack commits whose changes the leader processed.
 * The sequence check alone misses that when fewer versions were lost than PostgreSQL logs
 * ahead for a sequence (32), or when new writes passed the mark before the next claim. So
 * the leader keeps "<system identifier>/<timeline>" in <term_key>:pg_history and compares it
 * at most every poll_interval_ms (and when it starts): when it changed, the sequence is
 * raised past the mark, every cached row key is deleted, twice as for a Redis restart (the
 * phantom values of lost commits can carry any version up to the mark), and changes up to
 * the mark drop their key before fencing it. Bound: a phantom is readable for at most
 * poll_interval_ms after the new primary serves the leader, plus one pass over the keyspace.
 *
 * Failure modes: any Redis or PostgreSQL failure -> COH_RETRY (the batch waits: nothing is
 * trusted until the check passed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coh_int.h"
#include "contract.h"
#include "log.h"

/* KEYS: row keys. ARGV[1]: delete those whose version is above it; -1 deletes them all.
 * Values of another shape count as version -1; a key of another type is left alone. */
const char rf__coh_invalidate_lua[] =
    "local above = tonumber(ARGV[1])\n"
    "local n = 0\n"
    "for _, k in ipairs(KEYS) do\n"
    "  local drop = above < 0\n"
    "  if not drop then\n"
    "    local head = redis.pcall('GETRANGE', k, 0, 31)\n"
    "    if type(head) == 'string' then\n"
    "      drop = tonumber(string.match(head, '^{\"v\":(%-?%d+)[,}]') or '-1') > above\n"
    "    end\n"
    "  end\n"
    "  if drop then redis.call('UNLINK', k) n = n + 1 end\n"
    "end\n"
    "return n\n";

/* KEYS[1]: the mark. ARGV[1]: a version. Raises the mark to it; returns the mark. */
const char rf__coh_mark_lua[] = "local m = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
				"local v = tonumber(ARGV[1])\n"
				"if v > m then redis.call('SET', KEYS[1], ARGV[1]) m = v end\n"
				"return tostring(m)\n";

static struct lg_redis_opts *coh_opts(struct lg_redis_opts *o)
{
	o->deadline = lg_deadline_in(COH_REDIS_TIMEOUT_MS);
	return o;
}

static void coh_aux_key(const struct rf_coh_session *s, const char *suffix, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s:%s", s->coh->cfg->term_key, suffix);
}

int rf__coh_invalidate(struct rf_coh_session *s, int64_t above, uint64_t *deleted)
{
	const struct rf_config *cfg = s->coh->cfg;
	char esc[600];
	char match[620];
	if (!lg__contract_glob_escape(esc, sizeof(esc), cfg->key_prefix)) {
		return COH_RETRY;
	}
	snprintf(match, sizeof(match), "%s:*", esc);
	char above_str[24];
	snprintf(above_str, sizeof(above_str), "%lld", (long long)above);
	char cursor[32] = "0";
	*deleted = 0;
	do {
		struct lg_redis_reply *r = NULL;
		struct lg_redis_opts o;
		struct lg_error err;
		const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
		int rc = lg_redis_commandv(s->redis, coh_opts(&o), 6, argv, NULL, &r, &err);
		if (rc != 0) {
			return rf__coh_redis_failed(s, rc, &err, "SCAN to invalidate");
		}
		if (r->type != LG_REDIS_ARRAY || r->elements != 2 ||
		    r->element[0].type != LG_REDIS_STRING || r->element[0].len >= sizeof(cursor) ||
		    r->element[1].type != LG_REDIS_ARRAY) {
			lg_redis_reply_free(r);
			return COH_RETRY;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0].str);
		const struct lg_redis_reply *page = &r->element[1];
		if (page->elements > 0) {
			const char **keys = calloc(page->elements, sizeof(*keys));
			size_t *lens = calloc(page->elements, sizeof(*lens));
			if (keys == NULL || lens == NULL) {
				free(keys);
				free(lens);
				lg_redis_reply_free(r);
				return COH_RETRY;
			}
			for (size_t i = 0; i < page->elements; i++) {
				keys[i] = page->element[i].str != NULL ? page->element[i].str : "";
				lens[i] = page->element[i].len;
			}
			const char *args[] = {above_str};
			struct lg_redis_reply *n = NULL;
			rc =
			    lg_redis_eval(s->redis, &s->coh->invalidate_script, (int)page->elements,
					  keys, lens, 1, args, NULL, coh_opts(&o), &n, &err);
			free(keys);
			free(lens);
			if (rc != 0) {
				lg_redis_reply_free(r);
				return rf__coh_redis_failed(s, rc, &err, "invalidating keys");
			}
			if (n != NULL && n->type == LG_REDIS_INTEGER && n->integer > 0) {
				*deleted += (uint64_t)n->integer;
			}
			lg_redis_reply_free(n);
		}
		lg_redis_reply_free(r);
	} while (strcmp(cursor, "0") != 0 && !s->ended);
	s->coh->stats.invalidated += *deleted;
	return s->ended ? COH_RETRY : COH_OK;
}

int rf__coh_raise_mark(struct rf_coh_session *s, int64_t version)
{
	if (version < s->mark) {
		version = s->mark; /* re-establish what this session knows (after a restart) */
	}
	if (s->mark_known && version <= s->mark_sent) {
		return COH_OK;
	}
	char key[600];
	char v[24];
	coh_aux_key(s, "version_mark", key, sizeof(key));
	snprintf(v, sizeof(v), "%lld", (long long)version);
	const char *keys[] = {key};
	const char *args[] = {v};
	struct lg_redis_reply *r = NULL;
	struct lg_redis_opts o;
	struct lg_error err;
	int rc = lg_redis_eval(s->redis, &s->coh->mark_script, 1, keys, NULL, 1, args, NULL,
			       coh_opts(&o), &r, &err);
	if (rc != 0) {
		return rf__coh_redis_failed(s, rc, &err, "raising the version mark");
	}
	if (r != NULL && r->type == LG_REDIS_STRING) {
		int64_t m = strtoll(r->str, NULL, 10);
		s->mark = m > s->mark ? m : s->mark;
		s->mark_sent = s->mark;
	}
	lg_redis_reply_free(r);
	return COH_OK;
}

/* Reads the mark from Redis into s->mark (kept when higher). */
static int coh_read_mark(struct rf_coh_session *s)
{
	char key[600];
	coh_aux_key(s, "version_mark", key, sizeof(key));
	struct lg_redis_reply *r = NULL;
	struct lg_redis_opts o;
	struct lg_error err;
	int rc = lg_redis_command(s->redis, coh_opts(&o), &r, &err, "GET %s", key);
	if (rc != 0) {
		return rf__coh_redis_failed(s, rc, &err, "reading the version mark");
	}
	if (r != NULL && r->type == LG_REDIS_STRING) {
		int64_t m = strtoll(r->str, NULL, 10);
		s->mark = m > s->mark ? m : s->mark;
	}
	lg_redis_reply_free(r);
	s->mark_known = true;
	return COH_OK;
}

/* Raises the version sequence past mark; changes up to mark may meet phantom values. */
static int coh_raise_sequence(struct rf_coh_session *s, int64_t mark)
{
	static const char raise_sql[] =
	    "SELECT setval('lifeguard.version_seq',"
	    " greatest($1::bigint + 1, (SELECT last_value FROM lifeguard.version_seq)))";
	struct lg_param p = lg_param_int64(mark);
	struct lg_error err;
	if (lg_pool_query(s->pool, raise_sql, &p, 1, NULL, NULL, &err) != 0) {
		rf__coh_note_failure(s, "PostgreSQL, raising the version sequence", err.message);
		return rf__coh_pg_failed(s, &err, "raising the version sequence");
	}
	s->suspect_below = mark > s->suspect_below ? mark : s->suspect_below;
	return COH_OK;
}

int rf__coh_check_sequence(struct rf_coh_session *s, int64_t seq_last)
{
	if (!s->mark_known) {
		int rc = coh_read_mark(s);
		if (rc != COH_OK) {
			return rc;
		}
	}
	if (seq_last >= s->mark) {
		return COH_OK;
	}
	int64_t mark = s->mark;
	rf_log(RF_LOG_ERROR, "coherence.timetravel",
	       "term %llu: lifeguard.version_seq is at %lld, below the version %lld Redis has "
	       "seen (restore or lost commits): raising it and invalidating",
	       (unsigned long long)s->term, (long long)seq_last, (long long)mark);
	int rc = coh_raise_sequence(s, mark);
	if (rc != COH_OK) {
		return rc;
	}
	uint64_t deleted = 0;
	rc = rf__coh_invalidate(s, seq_last, &deleted);
	if (rc != COH_OK) {
		return rc;
	}
	s->coh->stats.sequence_raises++;
	rf_log(RF_LOG_WARN, "coherence.timetravel",
	       "term %llu: version sequence raised past %lld; %llu cached keys above %lld deleted",
	       (unsigned long long)s->term, (long long)mark, (unsigned long long)deleted,
	       (long long)seq_last);
	return COH_OK;
}

/* The leader's first check: the sequence against the mark, before anything is written. */
static int coh_start_check(struct rf_coh_session *s)
{
	static const char sql[] = "SELECT last_value FROM lifeguard.version_seq";
	struct lg_result *r = NULL;
	struct lg_error err;
	if (lg_pool_query(s->pool, sql, NULL, 0, NULL, &r, &err) != 0) {
		rf__coh_note_failure(s, "PostgreSQL, reading the version sequence", err.message);
		return rf__coh_pg_failed(s, &err, "reading the version sequence");
	}
	int64_t last = 0;
	int rc = lg_result_int64(r, 0, 0, &last) == 0 ? COH_OK : COH_RETRY;
	lg_result_free(r);
	return rc == COH_OK ? rf__coh_check_sequence(s, last) : rc;
}

/* Compares Redis' run id with the run key; see the top of this file. */
static int coh_check_run_id(struct rf_coh_session *s, uint64_t now)
{
	char key[600];
	coh_aux_key(s, "run_id", key, sizeof(key));
	struct lg_redis_reply *info = NULL;
	struct lg_redis_reply *stored = NULL;
	struct lg_redis_opts o;
	struct lg_error err;
	int rc = lg_redis_command(s->redis, coh_opts(&o), &info, &err, "INFO server");
	if (rc == 0) {
		rc = lg_redis_command(s->redis, coh_opts(&o), &stored, &err, "GET %s", key);
	}
	char run_id[48] = "";
	if (rc != 0 || !rf__coh_info_field(info, "run_id", run_id, sizeof(run_id))) {
		lg_redis_reply_free(info);
		lg_redis_reply_free(stored);
		return rc != 0 ? rf__coh_redis_failed(s, rc, &err, "checking the run id")
			       : COH_RETRY;
	}
	lg_redis_reply_free(info);
	bool known = stored != NULL && stored->type == LG_REDIS_STRING;
	bool same = known && strcmp(stored->str, run_id) == 0;
	char before[48] = "";
	if (known) {
		snprintf(before, sizeof(before), "%s", stored->str);
	}
	lg_redis_reply_free(stored);
	if (!same) {
		if (known) {
			rf_log(
			    RF_LOG_WARN, "coherence.timetravel",
			    "term %llu: Redis restarted with data of its own (run id %s, was %s):"
			    " invalidating every cached key",
			    (unsigned long long)s->term, run_id, before);
			uint64_t deleted = 0;
			rc = rf__coh_invalidate(s, -1, &deleted);
			if (rc != COH_OK) {
				return rc;
			}
			s->coh->stats.redis_restarts++;
			s->invalidate_at_ms = now + s->coh->cfg->fence_ttl_ms;
			rf_log(
			    RF_LOG_WARN, "coherence.timetravel",
			    "term %llu: %llu cached keys deleted; a second pass follows in %u ms",
			    (unsigned long long)s->term, (unsigned long long)deleted,
			    s->coh->cfg->fence_ttl_ms);
		}
		s->mark_known = false; /* the mark may be older too: read and re-raise it */
		s->mark_sent = 0;
		rc = lg_redis_command(s->redis, coh_opts(&o), NULL, &err, "SET %s %s", key, run_id);
		if (rc != 0) {
			return rf__coh_redis_failed(s, rc, &err, "recording the run id");
		}
	}
	snprintf(s->run_id, sizeof(s->run_id), "%s", run_id);
	s->run_id_checked_ms = now;
	s->redis_suspect = false;
	return COH_OK;
}

/* Raises the sequence past the mark M and deletes every cached key; see the top. */
static int coh_after_lost_history(struct rf_coh_session *s, const char *before, const char *now)
{
	int64_t mark = s->mark;
	rf_log(RF_LOG_WARN, "coherence.timetravel",
	       "term %llu: the primary's history changed (%s, was %s: promoted or restored):"
	       " raising the version sequence past %lld and invalidating every cached key",
	       (unsigned long long)s->term, now, before, (long long)mark);
	int rc = coh_raise_sequence(s, mark);
	if (rc != COH_OK) {
		return rc;
	}
	uint64_t deleted = 0;
	rc = rf__coh_invalidate(s, -1, &deleted);
	if (rc != COH_OK) {
		return rc;
	}
	s->coh->stats.sequence_raises++;
	s->invalidate_at_ms = lg_now_ms() + s->coh->cfg->fence_ttl_ms;
	rf_log(RF_LOG_WARN, "coherence.timetravel",
	       "term %llu: %llu cached keys deleted; a second pass follows in %u ms",
	       (unsigned long long)s->term, (unsigned long long)deleted, s->coh->cfg->fence_ttl_ms);
	return COH_OK;
}

/* Compares the primary's system identifier and timeline with the history key. */
static int coh_check_pg_history(struct rf_coh_session *s, uint64_t now)
{
	static const char sql[] =
	    "SELECT system_identifier::text || '/' ||"
	    " substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) FROM pg_control_system()";
	struct lg_result *r = NULL;
	struct lg_error err;
	if (lg_pool_query(s->pool, sql, NULL, 0, NULL, &r, &err) != 0) {
		rf__coh_note_failure(s, "PostgreSQL, reading its timeline", err.message);
		return rf__coh_pg_failed(s, &err, "reading the primary's timeline");
	}
	char history[48] = "";
	const char *text = NULL;
	if (lg_result_rows(r) == 1 && lg_result_text(r, 0, 0, &text, NULL) == 0 && text != NULL) {
		snprintf(history, sizeof(history), "%s", text);
	}
	lg_result_free(r);
	char key[600];
	coh_aux_key(s, "pg_history", key, sizeof(key));
	struct lg_redis_reply *stored = NULL;
	struct lg_redis_opts o;
	int rc = lg_redis_command(s->redis, coh_opts(&o), &stored, &err, "GET %s", key);
	if (rc != 0) {
		return rf__coh_redis_failed(s, rc, &err, "reading the primary's history");
	}
	char before[48] = "";
	if (stored != NULL && stored->type == LG_REDIS_STRING) {
		snprintf(before, sizeof(before), "%s", stored->str);
	}
	lg_redis_reply_free(stored);
	if (history[0] == '\0') {
		return COH_RETRY;
	}
	if (strcmp(before, history) != 0) {
		if (before[0] != '\0') {
			if (!s->mark_known && (rc = coh_read_mark(s)) != COH_OK) {
				return rc;
			}
			if ((rc = coh_after_lost_history(s, before, history)) != COH_OK) {
				return rc;
			}
		}
		rc =
		    lg_redis_command(s->redis, coh_opts(&o), NULL, &err, "SET %s %s", key, history);
		if (rc != 0) {
			return rf__coh_redis_failed(s, rc, &err, "recording the primary's history");
		}
	}
	snprintf(s->pg_history, sizeof(s->pg_history), "%s", history);
	s->pg_history_checked_ms = now;
	return COH_OK;
}

int rf__coh_check_redis(struct rf_coh_session *s)
{
	uint64_t now = lg_now_ms();
	int rc = COH_OK;
	if (s->run_id[0] == '\0' || s->redis_suspect ||
	    now >= s->run_id_checked_ms + s->coh->cfg->poll_interval_ms) {
		rc = coh_check_run_id(s, now);
	}
	if (rc == COH_OK && (s->pg_history[0] == '\0' ||
			     now >= s->pg_history_checked_ms + s->coh->cfg->poll_interval_ms)) {
		rc = coh_check_pg_history(s, now);
	}
	if (rc == COH_OK && !s->mark_known) {
		rc = coh_start_check(s);
		if (rc == COH_OK) {
			rc = rf__coh_raise_mark(s, s->mark);
		}
	}
	if (rc == COH_OK && s->invalidate_at_ms != 0 && now >= s->invalidate_at_ms) {
		uint64_t deleted = 0;
		rc = rf__coh_invalidate(s, -1, &deleted);
		if (rc == COH_OK) {
			s->invalidate_at_ms = 0;
			rf_log(RF_LOG_INFO, "coherence.timetravel",
			       "term %llu: second pass: %llu cached keys deleted",
			       (unsigned long long)s->term, (unsigned long long)deleted);
		}
	}
	return rc;
}
