/*
 * The database handle (libguard/db.h) against the shared primary and a private streaming
 * replica per test (pg_basebackup of the primary): reads routed by replica lag, a killed
 * replica routed around, read-your-writes through a lagging replica, and the ORM on a handle.
 * Replay is paused with pg_wal_replay_pause(), so the replica really serves old rows.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libguard/db.h>
#include <libguard/libguard.h>
#include <libguard/model.h>

#include "lg_test.h"

static char table[64];

#define ROUTE_COLUMNS(X)                                                                           \
	X(route, id, LG_INT64, LG_COL_PK)                                                          \
	X(route, v, LG_INT64, 0)                                                                   \
	X(route, lg_version, LG_INT64, LG_COL_DEFAULT)
LG_MODEL_DECLARE(route, ROUTE_COLUMNS);
LG_MODEL_DEFINE(route, "public", table, ROUTE_COLUMNS);

struct env {
	struct lg_runtime *rt;
	struct lg_pool *primary;
	struct lg_pool *ctl; /* to the replica, for pause / resume */
	struct lg_dbh *h;
	struct lg_test_pg rep;
	struct lg_dbh_config cfg;
	uint64_t token; /* what replayed_token waits for */
	void (*body)(struct env *e);
};

static void sql_ok(struct lg_pool *p, const char *sql)
{
	struct lg_error err = {0};
	cr_assert_eq(lg_pool_exec(p, sql, &err), 0, "%s: %s", sql, err.message);
}

static void primary_sql(struct env *e, const char *fmt, long v)
{
	char sql[256];
	snprintf(sql, sizeof(sql), fmt, table, v);
	sql_ok(e->primary, sql);
}

/* v of row 1 as a read through the handle returns it. */
static int64_t read_v(struct env *e, struct lg_session *s)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT v FROM %s WHERE id = 1", table);
	struct lg_result *r = NULL;
	struct lg_error err = {0};
	cr_assert_eq(lg_dbh_read(e->h, s, sql, NULL, 0, NULL, &r, &err), 0, "%s", err.message);
	int64_t v = -1;
	cr_assert_eq(lg_result_int64(r, 0, 0, &v), 0);
	lg_result_free(r);
	return v;
}

static struct lg_dbh_replica_stats rstats(struct env *e)
{
	struct lg_dbh_replica_stats st;
	cr_assert_eq(lg_dbh_replica_stats(e->h, 0, &st), 0);
	return st;
}

static bool level_and_healthy(struct env *e)
{
	struct lg_dbh_replica_stats st = rstats(e);
	return st.healthy && st.lag_bytes == 0;
}

static bool lag_over_bound(struct env *e)
{
	struct lg_dbh_replica_stats st = rstats(e);
	return st.healthy && st.lag_bytes > 0 && st.lag_ms > e->cfg.max_lag_ms;
}

static bool unhealthy(struct env *e)
{
	struct lg_dbh_replica_stats st = rstats(e);
	return !st.healthy && st.sample_failures > 0;
}

/* Polls pred every 20 ms for up to 60 s (a slow machine, not a timing assertion). */
static void wait_for(struct env *e, bool (*pred)(struct env *e), const char *what)
{
	for (int i = 0; i < 3000; i++) {
		if (pred(e)) {
			return;
		}
		cr_assert_eq(lg_sleep(20), 0);
	}
	cr_assert_fail("timed out waiting until %s", what);
}

/*
 * Reads row 1 (always expecting v) until the replica serves one. A level replica may look
 * behind for one sample while WAL it has not replayed yet is in flight (another test's write,
 * a checkpoint), so a single read is not asserted on.
 */
static void read_until_replica(struct env *e, int64_t v, const char *what)
{
	uint64_t reads = rstats(e).reads;
	for (int i = 0; i < 3000; i++) {
		cr_assert_eq(read_v(e, NULL), v);
		if (rstats(e).reads > reads) {
			return;
		}
		cr_assert_eq(lg_sleep(20), 0);
	}
	cr_assert_fail("no read was served by the replica: %s", what);
}

static void run_body(void *arg)
{
	struct env *e = arg;
	struct lg_error err = {0};
	struct lg_pool_config pc = {.conninfo = lg_test_pg_dsn()};
	cr_assert_eq(lg_pool_new(e->rt, &pc, &e->primary, &err), 0, "%s", err.message);
	struct lg_pool_config rc = {.conninfo = e->rep.dsn, .no_warmup = true};
	cr_assert_eq(lg_pool_new(e->rt, &rc, &e->ctl, &err), 0, "%s", err.message);
	char sql[256];
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
	sql_ok(e->primary, sql);
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s (id int8 PRIMARY KEY, v int8 NOT NULL, "
		 "lg_version int8 GENERATED ALWAYS AS (v * 10) STORED)",
		 table);
	sql_ok(e->primary, sql);
	primary_sql(e, "INSERT INTO %s VALUES (1, %ld)", 1);
	e->cfg.primary = e->primary;
	e->cfg.replicas = &rc;
	e->cfg.nreplicas = 1;
	e->cfg.sample_interval_ms = 50;
	cr_assert_eq(lg_dbh_new(e->rt, &e->cfg, &e->h, &err), 0, "%s", err.message);
	wait_for(e, level_and_healthy, "the replica is level and healthy");
	e->body(e);
	lg_dbh_free(e->h);
	/* Replay may be paused: resume before the replica goes (it is dropped anyway). */
	struct lg_error ignored;
	lg_pool_exec(e->ctl, "SELECT pg_wal_replay_resume()", &ignored);
	snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
	sql_ok(e->primary, sql);
	lg_pool_free(e->ctl);
	lg_pool_free(e->primary);
}

static void run(const char *name, struct env *e)
{
	snprintf(table, sizeof(table), "route_%s_%d", name, (int)getpid());
	cr_assert(lg_test_pg_replica_start(&e->rep), "private replica did not start");
	cr_assert_eq(lg_runtime_new(NULL, NULL, &e->rt), 0);
	struct lg_coro *c;
	cr_assert_eq(lg_coro_spawn(e->rt, run_body, e, &c), 0);
	cr_assert_eq(lg_coro_join(c, LG_DEADLINE_NONE), 0);
	lg_runtime_free(e->rt);
	lg_test_pg_destroy(&e->rep);
}

/* Lag grows while replay is paused: reads move to the primary, and back after resume. */
static void lag_body(struct env *e)
{
	read_until_replica(e, 1, "a level replica serves reads");
	sql_ok(e->ctl, "SELECT pg_wal_replay_pause()");
	primary_sql(e, "UPDATE %s SET v = %ld WHERE id = 1", 2);
	wait_for(e, lag_over_bound, "the lag grows past max_lag_ms");
	struct lg_dbh_replica_stats lagging = rstats(e);
	cr_assert_geq(lagging.replay_age_ms, lagging.lag_ms, "lag is bounded by the replay age");
	struct lg_dbh_stats before;
	lg_dbh_get_stats(e->h, &before);
	uint64_t replica_reads = rstats(e).reads;
	/* The paused replica still holds v = 1: only the primary answers 2. */
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(read_v(e, NULL), 2, "a read was served by the lagging replica");
	}
	struct lg_dbh_stats after;
	lg_dbh_get_stats(e->h, &after);
	cr_assert_eq(after.primary_reads, before.primary_reads + 10);
	cr_assert_eq(rstats(e).reads, replica_reads);
	sql_ok(e->ctl, "SELECT pg_wal_replay_resume()");
	wait_for(e, level_and_healthy, "the replica is level again");
	read_until_replica(e, 2, "reads return to the replica after resume");
}

Test(db_route, lag_moves_reads_to_primary_and_back, .timeout = 240)
{
	struct env e = {.cfg = {.max_lag_ms = 300}, .body = lag_body};
	run("lag", &e);
}

/* A killed replica (SIGKILL): reads keep answering (retried on the primary), then avoid it. */
static void down_body(struct env *e)
{
	read_until_replica(e, 1, "a healthy replica serves reads");
	uint64_t replica_reads = rstats(e).reads;
	cr_assert_eq(lg_test_services("pg kill '%s'", e->rep.dir), 0, "SIGKILL the replica");
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(read_v(e, NULL), 1, "a read failed with the replica down");
	}
	cr_assert_geq(rstats(e).read_failures, 1, "no read met the dead replica");
	wait_for(e, unhealthy, "the sampler fails on the killed replica");
	struct lg_dbh_stats before;
	lg_dbh_get_stats(e->h, &before);
	cr_assert_eq(read_v(e, NULL), 1);
	struct lg_dbh_stats after;
	lg_dbh_get_stats(e->h, &after);
	cr_assert_eq(after.primary_reads, before.primary_reads + 1);
	cr_assert_eq(after.fallback_reads, before.fallback_reads, "no replica attempt once down");
	cr_assert_eq(rstats(e).reads, replica_reads);
}

Test(db_route, killed_replica_is_routed_around, .timeout = 240)
{
	/* Samples stay valid for long: the reads themselves find the replica dead (and are
	 * retried on the primary) before its samples age out. */
	struct env e = {.cfg = {.sample_max_age_ms = 600000}, .body = down_body};
	run("down", &e);
}

/*
 * Read-your-writes through a replica whose replay is paused but which stays within generous
 * bounds (so reads without a session are served there, stale): the session's reads never
 * see the old row; once replay resumes past the token they go back to the replica.
 */
static bool replayed_token(struct env *e)
{
	return rstats(e).replay_lsn >= e->token;
}

static void ryw_body(struct env *e)
{
	sql_ok(e->ctl, "SELECT pg_wal_replay_pause()");
	struct lg_session *s;
	cr_assert_eq(lg_session_new(&s), 0);
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE %s SET v = 3 WHERE id = 1", table);
	uint64_t token = 0;
	struct lg_error err = {0};
	cr_assert_eq(lg_dbh_write(e->h, s, sql, NULL, 0, NULL, NULL, &token, &err), 0, "%s",
		     err.message);
	cr_assert_gt(token, 0);
	cr_assert_eq(lg_session_token(s), token);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(read_v(e, s), 3, "the session read its write's old row");
		cr_assert_eq(lg_session_last_source(s), -1);
		lg_sleep(e->cfg.sample_interval_ms);
	}
	/* The same read without the session is served by the paused replica: the old row. */
	cr_assert_eq(read_v(e, NULL), 1);
	struct lg_dbh_stats st;
	lg_dbh_get_stats(e->h, &st);
	cr_assert_geq(st.token_reads, 5);

	/* The ORM on the handle: its update advances the session, its find honours it. */
	struct lg_db db = {.pool = e->primary, .dbh = e->h, .session = s};
	struct route row = {.id = 1, .v = 4};
	struct lg_changes ch;
	lg_changes_init(&ch, &route_model, &row);
	route_set_v(&ch, 4);
	cr_assert_eq(lg_model_update(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_gt(lg_session_token(s), token);
	token = lg_session_token(s);
	struct route got = {0};
	struct lg_param key = lg_param_int64(1);
	cr_assert_eq(lg_model_find(&db, &route_model, &key, &got, &err), 0, "%s", err.message);
	cr_assert_eq(got.v, 4, "the ORM read its own update's old row");
	cr_assert_eq(lg_session_last_source(s), -1);
	lg_row_clear(&route_model, &got);

	/* The versions the ORM wrote, per table and key text (lg_version here is v * 10). */
	char qualified[80];
	snprintf(qualified, sizeof(qualified), "public.%s", table);
	cr_assert_eq(lg_session_version(s, qualified, "1"), 40);
	struct route other = {0};
	lg_changes_init(&ch, &route_model, &other);
	route_set_id(&ch, 2);
	route_set_v(&ch, 7);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_eq(lg_session_version(s, qualified, "2"), 70);
	cr_assert_eq(lg_model_delete(&db, &route_model, &other, &err), 0, "%s", err.message);
	cr_assert_eq(lg_session_version(s, qualified, "2"), INT64_MAX,
		     "a delete hides every version");
	lg_row_clear(&route_model, &other);
	cr_assert_gt(lg_session_token(s), token);
	token = lg_session_token(s);

	/* A transaction's commit gives a token too, to a session that has none yet. */
	struct lg_session *s2;
	cr_assert_eq(lg_session_new(&s2), 0);
	struct lg_tx *tx;
	cr_assert_eq(lg_pool_begin(lg_dbh_primary(e->h), NULL, &tx, &err), 0, "%s", err.message);
	snprintf(sql, sizeof(sql), "UPDATE %s SET v = 5 WHERE id = 1", table);
	cr_assert_eq(lg_tx_exec(tx, sql, &err), 0, "%s", err.message);
	uint64_t ctoken = 0;
	cr_assert_eq(lg_dbh_commit(e->h, s2, tx, &ctoken, &err), 0, "%s", err.message);
	cr_assert_gt(ctoken, token);
	cr_assert_eq(lg_session_token(s2), ctoken);
	cr_assert_eq(read_v(e, s2), 5, "the session read its commit's old row");
	cr_assert_eq(read_v(e, NULL), 1, "the paused replica still serves the old row");
	lg_session_free(s2);
	token = ctoken;
	/* The first session has its own older token: it may read 4 or 5, never 3 or 1. */
	int64_t v = read_v(e, s);
	cr_assert(v == 4 || v == 5);

	sql_ok(e->ctl, "SELECT pg_wal_replay_resume()");
	e->token = token;
	wait_for(e, replayed_token, "the replica replays past the token");
	cr_assert_eq(read_v(e, s), 5);
	cr_assert_eq(lg_session_last_source(s), 0, "a replica past the token serves the session");
	lg_session_free(s);
}

Test(db_route, read_your_writes_through_a_lagging_replica, .timeout = 240)
{
	struct env e = {.cfg = {.max_lag_ms = 600000, .max_lag_bytes = 1u << 30}, .body = ryw_body};
	run("ryw", &e);
}

/* Tokens as text, and the session's written versions. */
Test(db_route, tokens_and_versions)
{
	char buf[LG_TOKEN_TEXT_SIZE];
	lg_token_format(UINT64_C(0x16B374D848), buf);
	cr_assert_str_eq(buf, "16/B374D848");
	uint64_t t = 0;
	cr_assert_eq(lg_token_parse("16/b374d848", &t), 0);
	cr_assert_eq(t, UINT64_C(0x16B374D848));
	cr_assert_eq(lg_token_parse("FFFFFFFF/FFFFFFFF", &t), 0);
	cr_assert_eq(t, UINT64_MAX);
	const char *bad[] = {"", "1", "/1", "1/", "1/2/3", "123456789/0", "g/0", "1/0 ", " 1/0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(lg_token_parse(bad[i], &t), LG_EINVAL, "accepted '%s'", bad[i]);
	}

	struct lg_session *s;
	cr_assert_eq(lg_session_new(&s), 0);
	cr_assert(lg_session_may_share(s, 0), "a session without token joins anything");
	lg_session_observe(s, 100);
	lg_session_observe(s, 50);
	cr_assert_eq(lg_session_token(s), 100, "a token never goes down");
	uint64_t now = lg_now_ms();
	cr_assert(!lg_session_may_share(s, now - 1), "a read started before the token");
	cr_assert(lg_session_may_share(s, now + 1));
	char key[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "%d", i);
		cr_assert_eq(lg_session_note_version(s, "public.users", key, i + 10), 0);
	}
	cr_assert_eq(lg_session_note_version(s, "public.users", "7", 3), 0);
	cr_assert_eq(lg_session_version(s, "public.users", "7"), 17, "a version never goes down");
	cr_assert_eq(lg_session_version(s, "public.users", "999"), 1009);
	cr_assert_eq(lg_session_version(s, "public.other", "7"), 0);
	cr_assert_eq(lg_session_version(s, "public.users", "1000"), 0);
	lg_session_free(s);
}
