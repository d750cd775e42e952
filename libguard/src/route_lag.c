/*
 * The lag sampler of one replica: a coroutine that measures, every sample_interval_ms and
 * within sample_timeout_ms, how far the replica's replay is behind the primary.
 *
 * Happy path, per round:
 *   1. Read the primary's WAL insert position (pg_current_wal_insert_lsn: every commit
 *      acknowledged before the read is below it, even with synchronous_commit off), a shared
 *      read, and remember it with the round's start time.
 *   2. Read, on the replica, whether it is still a standby, its replay position
 *      (pg_last_wal_replay_lsn) and the age of the last transaction it replayed
 *      (clock_timestamp() - pg_last_xact_replay_timestamp(), the replica's own clock).
 *   3. lag_bytes = primary position - replay position (0 when the replica is level or ahead,
 *      since the primary was read first). lag_ms = 0 when level, else the smaller of two
 *      bounds on how old the replica's view is: the replay age (the first commit it lacks is
 *      younger than the last one it replayed), and the time since the latest remembered
 *      round whose primary position the replica has replayed (it holds every commit
 *      acknowledged before that round started). The second keeps a replica that is behind
 *      by a few records in flight from looking as old as the primary's last idle spell. The
 *      sample is stamped with the time the round started, which is conservative: the replica
 *      had replayed at least this far by then.
 *   Both reads share one deadline, the round's start + sample_timeout_ms.
 *
 * Failure modes:
 *   - Either read fails or misses the deadline (replica down, hung, unreachable; primary
 *     down): the round counts a sample failure and keeps the previous sample, which then
 *     ages; once older than sample_max_age_ms the replica is unhealthy (lg__route_healthy).
 *   - The replica answers but is no longer a standby (promoted): the sample is kept and the
 *     replica is unhealthy, since its data no longer follows the primary.
 *   - Stop (lg_dbh_free): the coroutine is canceled; its read in flight ends promptly with
 *     LG_ECANCELED or LG_EUNKNOWN and the loop exits.
 */
#include <string.h>

#include "db_int.h"
#include "libguard/conn.h"

/* Schema-qualified: a function of the same name earlier in a role's search_path must not
 * answer for PostgreSQL's own. */
static const char lag_primary_sql[] = "SELECT pg_catalog.pg_current_wal_insert_lsn()::text";
static const char lag_replica_sql[] =
    "SELECT pg_catalog.pg_is_in_recovery()::text,"
    " COALESCE(pg_catalog.pg_last_wal_replay_lsn()::text, '0/0'),"
    " COALESCE((EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()"
    " - pg_catalog.pg_last_xact_replay_timestamp()) * 1000)::int8, -1)";

/* Reads one pg_lsn text cell of the first row of sql on pool. */
static int lag_read(struct lg_pool *pool, const char *sql, uint64_t deadline,
		    struct lg_result **out)
{
	struct lg_query_opts o = {.deadline = deadline,
				  .flags = LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	int rc = lg_pool_query(pool, sql, NULL, 0, &o, out, NULL);
	if (rc == 0 && lg_result_rows(*out) != 1) {
		lg_result_free(*out);
		*out = NULL;
		rc = LG_EPROTO;
	}
	return rc;
}

static int lag_lsn(const struct lg_result *r, int col, uint64_t *lsn)
{
	const char *t;
	return lg_result_text(r, 0, col, &t, NULL) == 0 ? lg_token_parse(t, lsn) : LG_EPROTO;
}

static void lag_remember(struct lg__replica *r, uint64_t lsn, uint64_t at_ms)
{
	unsigned i = (r->hist_head + r->hist_n) % LG__LAG_HIST;
	r->hist_lsn[i] = lsn;
	r->hist_ms[i] = at_ms;
	if (r->hist_n < LG__LAG_HIST) {
		r->hist_n++;
	} else {
		r->hist_head = (r->hist_head + 1) % LG__LAG_HIST;
	}
}

/* Time since the latest remembered round whose primary position replay has reached, as of
 * now_ms; UINT64_MAX when none is remembered. Positions only grow: scan newest first. */
static uint64_t lag_since_covered(const struct lg__replica *r, uint64_t replay, uint64_t now_ms)
{
	for (unsigned k = r->hist_n; k > 0; k--) {
		unsigned i = (r->hist_head + k - 1) % LG__LAG_HIST;
		if (r->hist_lsn[i] <= replay) {
			return now_ms - r->hist_ms[i];
		}
	}
	return UINT64_MAX;
}

/* One round; 0 when both sides answered. */
static int lag_sample(struct lg__replica *r)
{
	uint64_t start = lg_now_ms();
	uint64_t deadline = start + r->h->timeout_ms;
	struct lg_result *pr = NULL, *rr = NULL;
	uint64_t primary_lsn = 0, replay_lsn = 0;
	int64_t age_ms = -1;
	const char *standby = NULL;
	int rc = lag_read(r->h->primary, lag_primary_sql, deadline, &pr);
	if (rc == 0) {
		rc = lag_lsn(pr, 0, &primary_lsn);
	}
	if (rc == 0) {
		lag_remember(r, primary_lsn, start);
		rc = lag_read(r->pool, lag_replica_sql, deadline, &rr);
	}
	if (rc == 0 &&
	    (lg_result_text(rr, 0, 0, &standby, NULL) != 0 || lag_lsn(rr, 1, &replay_lsn) != 0 ||
	     lg_result_int64(rr, 0, 2, &age_ms) != 0)) {
		rc = LG_EPROTO;
	}
	if (rc == 0) {
		r->sampled_ms = start;
		r->replay_lsn = replay_lsn;
		r->standby = strcmp(standby, "true") == 0;
		r->lag_bytes = primary_lsn > replay_lsn ? primary_lsn - replay_lsn : 0;
		/* Behind with no replayed transaction to date it and no remembered round it
		 * covers: unknown, so out of bounds. */
		uint64_t age = age_ms < 0 ? UINT64_MAX : (uint64_t)age_ms;
		uint64_t covered = lag_since_covered(r, replay_lsn, start);
		r->lag_ms = r->lag_bytes == 0 ? 0 : age < covered ? age : covered;
		r->replay_age_ms = age;
		r->read_failed = false;
	} else {
		r->sample_failures++;
	}
	lg_result_free(pr);
	lg_result_free(rr);
	return rc;
}

static void lag_run(void *arg)
{
	struct lg__replica *r = arg;
	while (!lg_coro_canceled()) {
		lag_sample(r);
		if (lg_sleep(r->h->interval_ms) != 0) {
			break;
		}
	}
}

int lg__route_lag_start(struct lg__replica *r)
{
	return lg_coro_spawn(r->h->rt, lag_run, r, &r->sampler);
}

void lg__route_lag_stop(struct lg__replica *r)
{
	if (r->sampler == NULL) {
		return;
	}
	lg_coro_cancel(r->sampler);
	lg_coro_join(r->sampler, LG_DEADLINE_NONE);
	r->sampler = NULL;
}

bool lg__route_healthy(const struct lg__replica *r, uint64_t now_ms)
{
	return r->sampled_ms != 0 && r->standby && !r->read_failed &&
	       now_ms - r->sampled_ms <= r->h->max_age_ms;
}
