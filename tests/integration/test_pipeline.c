/*
 * Pipelining against the real ephemeral PostgreSQL: many coroutines on one connection, failure
 * isolation inside sync segments, the prepared statement cache, statements that travel alone.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libguard/libguard.h>

#include "lg_test.h"

static struct lg_runtime *rt;
static struct lg_conn *conn;

static void connect_shared(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	struct lg_error err;
	int rc = lg_conn_new(rt, &cfg, &conn, &err);
	cr_assert_eq(rc, 0, "connect: %s", err.message);
}

static void close_shared(void)
{
	lg_conn_free(conn);
	lg_runtime_free(rt);
}

static int64_t count_rows(const char *sql)
{
	struct lg_result *r;
	struct lg_error err;
	cr_assert_eq(lg_conn_query(conn, sql, NULL, 0, NULL, &r, &err), 0, "%s", err.message);
	int64_t n = -1;
	cr_assert_eq(lg_result_int64(r, 0, 0, &n), 0);
	lg_result_free(r);
	return n;
}

struct echo_job {
	int id;
	int rc;
	int64_t got;
};

static void echo_worker(void *arg)
{
	struct echo_job *j = arg;
	struct lg_param p = lg_param_int64(j->id);
	struct lg_result *r = NULL;
	struct lg_query_opts opts = {0, LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	j->rc = lg_conn_query(conn, "SELECT $1::int8 * 3 + 1", &p, 1, &opts, &r, NULL);
	if (j->rc == 0) {
		j->rc = lg_result_int64(r, 0, 0, &j->got);
	}
	lg_result_free(r);
}

Test(pipeline, ten_thousand_coroutines_one_connection, .init = connect_shared, .fini = NULL)
{
	enum { N = 10000 };
	struct echo_job *jobs = calloc(N, sizeof(*jobs));
	for (int i = 0; i < N; i++) {
		jobs[i].id = i * 7919 - 1000000;
		jobs[i].rc = -1;
		cr_assert_eq(lg_coro_spawn(rt, echo_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(jobs[i].rc, 0, "job %d: rc %d", i, jobs[i].rc);
		cr_assert_eq(jobs[i].got, (int64_t)jobs[i].id * 3 + 1, "job %d got %" PRId64, i,
			     jobs[i].got);
	}
	struct lg_conn_stats st;
	lg_conn_get_stats(conn, &st);
	cr_assert_eq(st.statements, N);
	cr_assert_eq(st.failed, 0);
	/* Shared reads shared: far fewer syncs than statements. */
	cr_assert_lt(st.segments, N / 4, "segments %" PRIu64, st.segments);
	cr_assert_eq(st.prepares, 1, "one Parse for one SQL text, got %" PRIu64, st.prepares);
	free(jobs);
	close_shared();
}

struct insert_job {
	int id;
	bool poison;
	int rc;
	struct lg_error err;
};

static void insert_worker(void *arg)
{
	struct insert_job *j = arg;
	struct lg_param p[2] = {lg_param_int64(j->id), lg_param_int64(j->poison ? 0 : 1)};
	struct lg_query_opts opts = {0, (j->id % 2) ? LG_QUERY_PREPARE : 0};
	/* 100 / 0 raises division_by_zero for the poisoned job only. */
	j->rc = lg_conn_query(conn, "INSERT INTO lg_it_seg(id, v) VALUES ($1, 100 / $2)", p, 2,
			      &opts, NULL, &j->err);
}

Test(pipeline, failing_statement_only_fails_its_caller, .init = connect_shared)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE IF EXISTS lg_it_seg", &err), 0);
	cr_assert_eq(
	    lg_conn_exec(conn, "CREATE TABLE lg_it_seg (id int8 PRIMARY KEY, v int8)", &err), 0,
	    "%s", err.message);
	enum { N = 300 };
	struct insert_job jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct insert_job){.id = i, .poison = (i == 150 || i == 151 || i == 7)};
		cr_assert_eq(lg_coro_spawn(rt, insert_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	int failed = 0;
	for (int i = 0; i < N; i++) {
		if (jobs[i].poison) {
			cr_assert_eq(jobs[i].rc, LG_ESERVER, "job %d rc %d", i, jobs[i].rc);
			cr_assert_str_eq(jobs[i].err.sqlstate, "22012");
			failed++;
		} else {
			cr_assert_eq(jobs[i].rc, 0, "job %d: %s", i, jobs[i].err.message);
		}
	}
	cr_assert_eq(failed, 3);
	/* Every other INSERT applied exactly once (a replay would hit the primary key). */
	cr_assert_eq(count_rows("SELECT count(*) FROM lg_it_seg"), N - 3);
	cr_assert_eq(count_rows("SELECT count(*) FROM lg_it_seg WHERE id IN (7, 150, 151)"), 0);
	struct lg_conn_stats st;
	lg_conn_get_stats(conn, &st);
	/* Autocommit equivalence: every write had a Sync of its own, none was re-run. */
	cr_assert_eq(st.reruns, 0, "writes are never re-run");
	cr_assert_geq(st.segments, N, "segments %" PRIu64, st.segments);
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE lg_it_seg", &err), 0);
	close_shared();
}

struct read_job {
	int id;
	int rc;
	int64_t got;
};

static void read_worker(void *arg)
{
	struct read_job *j = arg;
	struct lg_param p = lg_param_int64(j->id);
	struct lg_query_opts opts = {0, LG_QUERY_SHARED_READ};
	struct lg_result *r = NULL;
	/* 1 / 0 for every 50th job: division_by_zero inside a shared segment. */
	j->rc = lg_conn_query(conn, "SELECT $1::int8 / ((($1::int8 % 50) <> 0)::int)", &p, 1, &opts,
			      &r, NULL);
	if (j->rc == 0) {
		j->rc = lg_result_int64(r, 0, 0, &j->got);
	}
	lg_result_free(r);
}

Test(pipeline, a_failing_shared_read_fails_only_its_caller, .init = connect_shared)
{
	enum { N = 300 };
	struct read_job jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct read_job){.id = i + 1, .rc = -1};
		cr_assert_eq(lg_coro_spawn(rt, read_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < N; i++) {
		if ((i + 1) % 50 == 0) {
			cr_assert_eq(jobs[i].rc, LG_ESERVER, "job %d rc %d", i, jobs[i].rc);
		} else {
			cr_assert_eq(jobs[i].rc, 0, "job %d rc %d", i, jobs[i].rc);
			cr_assert_eq(jobs[i].got, i + 1);
		}
	}
	struct lg_conn_stats st;
	lg_conn_get_stats(conn, &st);
	cr_assert_gt(st.reruns, 0, "siblings of the failing reads were re-run");
	cr_assert_lt(st.segments, N / 4, "reads shared segments: %" PRIu64, st.segments);
	close_shared();
}

struct seq_job {
	bool fail;
	int rc;
	int64_t got;
};

static void seq_worker(void *arg)
{
	struct seq_job *j = arg;
	struct lg_result *r = NULL;
	j->rc = lg_conn_query(conn, j->fail ? "SELECT 1 / 0" : "SELECT nextval('lg_it_seq')", NULL,
			      0, NULL, &r, NULL);
	if (j->rc == 0) {
		j->rc = lg_result_int64(r, 0, 0, &j->got);
	}
	lg_result_free(r);
}

/* The old pipeline put nextval() in one segment with a failing neighbour, PostgreSQL rolled
 * the segment back, and the re-run burned a sequence value. */
Test(pipeline, nextval_beside_a_failure_burns_no_value, .init = connect_shared)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(conn, "DROP SEQUENCE IF EXISTS lg_it_seq", &err), 0);
	cr_assert_eq(lg_conn_exec(conn, "CREATE SEQUENCE lg_it_seq", &err), 0, "%s", err.message);
	enum { N = 200 };
	struct seq_job jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct seq_job){.fail = i % 10 == 5, .rc = -1};
		cr_assert_eq(lg_coro_spawn(rt, seq_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	bool seen[N + 1] = {false};
	int values = 0;
	for (int i = 0; i < N; i++) {
		if (jobs[i].fail) {
			cr_assert_eq(jobs[i].rc, LG_ESERVER);
			continue;
		}
		cr_assert_eq(jobs[i].rc, 0, "job %d rc %d", i, jobs[i].rc);
		cr_assert(jobs[i].got >= 1 && jobs[i].got <= N, "value %" PRId64, jobs[i].got);
		cr_assert(!seen[jobs[i].got], "value %" PRId64 " twice", jobs[i].got);
		seen[jobs[i].got] = true;
		values++;
	}
	/* No gaps: the sequence handed out exactly 1..values. */
	cr_assert_eq(count_rows("SELECT last_value FROM lg_it_seq"), values);
	/* Marked as a shared read, it is refused before anything is sent. */
	struct lg_query_opts read = {0, LG_QUERY_SHARED_READ};
	cr_assert_eq(lg_conn_query(conn, "SELECT nextval('lg_it_seq')", NULL, 0, &read, NULL, &err),
		     LG_EINVAL);
	cr_assert(strstr(err.message, "nextval") != NULL, "%s", err.message);
	cr_assert_eq(count_rows("SELECT last_value FROM lg_it_seq"), values);
	cr_assert_eq(lg_conn_exec(conn, "DROP SEQUENCE lg_it_seq", &err), 0);
	close_shared();
}

Test(pipeline, shared_read_marks_are_checked_by_the_parser, .init = connect_shared)
{
	static const char *const refused[] = {
	    "WITH d AS (DELETE FROM pg_class WHERE false RETURNING 1) SELECT * FROM d",
	    "SELECT * FROM pg_class FOR UPDATE",
	    "SELECT set_config('app.x', 'y', true)",
	    "SELECT pg_advisory_lock(42)",
	    "SELECT 1 INTO lg_it_never",
	    "SELECT 1; SELECT 2",
	    "SELEC 1",
	    "BEGIN",
	};
	struct lg_query_opts read = {0, LG_QUERY_SHARED_READ};
	struct lg_error err;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		cr_expect_eq(lg_conn_query(conn, refused[i], NULL, 0, &read, NULL, &err), LG_EINVAL,
			     "%s", refused[i]);
		cr_expect(strstr(err.message, "LG_QUERY_SHARED_READ") != NULL, "%s", err.message);
	}
	/* Nothing reached the server: no advisory lock is held, no table was created. */
	cr_assert_eq(count_rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);
	cr_assert_eq(count_rows("SELECT count(*) FROM pg_class WHERE relname = 'lg_it_never'"), 0);
	struct lg_conn_stats st;
	lg_conn_get_stats(conn, &st);
	cr_assert_eq(st.statements, 2, "only the two counts ran: %" PRIu64, st.statements);
	close_shared();
}

Test(pipeline, prepared_cache_reuses_and_recovers_from_bad_sql, .init = connect_shared)
{
	struct lg_query_opts opts = {0, LG_QUERY_PREPARE};
	struct lg_error err;
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(lg_conn_query(conn, "SELECT 1", NULL, 0, &opts, NULL, &err), 0);
	}
	int rc = lg_conn_query(conn, "SELEC broken", NULL, 0, &opts, NULL, &err);
	cr_assert_eq(rc, LG_ESERVER);
	cr_assert_str_eq(err.sqlstate, "42601");
	/* The failed Parse is not cached as prepared: asking again fails the same way. */
	rc = lg_conn_query(conn, "SELEC broken", NULL, 0, &opts, NULL, &err);
	cr_assert_eq(rc, LG_ESERVER);
	cr_assert_eq(lg_conn_query(conn, "SELECT 1", NULL, 0, &opts, NULL, &err), 0);
	struct lg_conn_stats st;
	lg_conn_get_stats(conn, &st);
	cr_assert_eq(st.prepares, 3, "SELECT 1 once, the broken text twice: %" PRIu64, st.prepares);
	close_shared();
}

struct set_job {
	int kind;
	int rc;
	char value[64];
};

static void set_worker(void *arg)
{
	struct set_job *j = arg;
	struct lg_result *r = NULL;
	if (j->kind == 0) {
		j->rc = lg_conn_exec(conn, "SET application_name = 'lg_alone'", NULL);
		return;
	}
	if (j->kind == 1) {
		/* A failing statement queued right after SET must not roll the SET back. */
		j->rc = lg_conn_exec(conn, "SELECT 1/0", NULL);
		return;
	}
	j->rc = lg_conn_query(conn, "SELECT current_setting('application_name')", NULL, 0, NULL, &r,
			      NULL);
	const char *v;
	if (j->rc == 0 && lg_result_text(r, 0, 0, &v, NULL) == 0) {
		snprintf(j->value, sizeof(j->value), "%s", v);
	}
	lg_result_free(r);
}

Test(pipeline, session_state_statements_travel_alone, .init = connect_shared)
{
	struct set_job jobs[3] = {{.kind = 0}, {.kind = 1}, {.kind = 2}};
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(lg_coro_spawn(rt, set_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_assert_eq(jobs[0].rc, 0);
	cr_assert_eq(jobs[1].rc, LG_ESERVER);
	cr_assert_eq(jobs[2].rc, 0);
	cr_assert_str_eq(jobs[2].value, "lg_alone");
	struct lg_error err;
	cr_assert_eq(lg_conn_query(conn, "COPY pg_class TO STDOUT", NULL, 0, NULL, NULL, &err),
		     LG_EINVAL);
	close_shared();
}

static int notices;

static void on_notice(void *ud, const struct lg_notice *n)
{
	(void)ud;
	if (strcmp(n->message, "hello notice") == 0 && strcmp(n->severity, "NOTICE") == 0) {
		notices++;
	}
}

Test(pipeline, notices_reach_the_hook)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn(), .notice_hook = on_notice};
	struct lg_error err;
	cr_assert_eq(lg_conn_new(rt, &cfg, &conn, &err), 0, "%s", err.message);
	notices = 0;
	cr_assert_eq(lg_conn_exec(conn, "DO $$BEGIN RAISE NOTICE 'hello notice'; END$$", &err), 0,
		     "%s", err.message);
	cr_assert_eq(notices, 1);
	close_shared();
}

Test(pipeline, listen_notify_roundtrip, .init = connect_shared)
{
	struct lg_conn *other;
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	struct lg_error err;
	cr_assert_eq(lg_conn_new(rt, &cfg, &other, &err), 0);
	cr_assert_eq(lg_conn_listen(conn, "lg \"odd\" channel", &err), 0, "%s", err.message);
	struct lg_notification *n = NULL;
	cr_assert_eq(lg_conn_notification(conn, lg_deadline_in(100), &n, &err), LG_ETIMEDOUT);
	struct lg_param p[2] = {lg_param_text("lg \"odd\" channel"), lg_param_text("payload 1")};
	cr_assert_eq(lg_conn_query(other, "SELECT pg_notify($1, $2)", p, 2, NULL, NULL, &err), 0);
	p[1] = lg_param_text("payload 2");
	cr_assert_eq(lg_conn_query(other, "SELECT pg_notify($1, $2)", p, 2, NULL, NULL, &err), 0);
	cr_assert_eq(lg_conn_notification(conn, lg_deadline_in(5000), &n, &err), 0, "%s",
		     err.message);
	cr_assert_str_eq(n->channel, "lg \"odd\" channel");
	cr_assert_str_eq(n->payload, "payload 1");
	cr_assert_eq(n->backend_pid, lg_conn_backend_pid(other));
	lg_notification_free(n);
	cr_assert_eq(lg_conn_notification(conn, lg_deadline_in(5000), &n, &err), 0);
	cr_assert_str_eq(n->payload, "payload 2");
	lg_notification_free(n);
	lg_conn_free(other);
	close_shared();
}

struct deferred_job {
	const char *sql;
	int64_t id;
	int64_t parent;
	int rc;
	struct lg_error err;
};

static void deferred_worker(void *arg)
{
	struct deferred_job *j = arg;
	struct lg_param p[2] = {lg_param_int64(j->id), lg_param_int64(j->parent)};
	j->rc = lg_conn_query(conn, j->sql, p, j->sql[0] == 'I' ? 2 : 0, NULL, NULL, &j->err);
}

/* A DEFERRABLE INITIALLY DEFERRED foreign key fails at the implicit COMMIT, after the INSERT
 * itself reported success: the error belongs to that INSERT alone, and the connection and the
 * other callers are untouched. (It used to drop the connection and fail every caller with
 * LG_ECONNLOST, storing nothing.) */
Test(pipeline, commit_time_failure_belongs_to_its_statement, .init = connect_shared)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE IF EXISTS lg_it_child, lg_it_parent", &err), 0);
	cr_assert_eq(lg_conn_exec(conn, "CREATE TABLE lg_it_parent (id int8 PRIMARY KEY)", &err),
		     0);
	cr_assert_eq(lg_conn_exec(conn,
				  "CREATE TABLE lg_it_child (id int8 PRIMARY KEY, parent int8 "
				  "REFERENCES lg_it_parent DEFERRABLE INITIALLY DEFERRED)",
				  &err),
		     0, "%s", err.message);
	cr_assert_eq(lg_conn_exec(conn, "INSERT INTO lg_it_parent VALUES (1)", &err), 0);
	static const char ins[] = "INSERT INTO lg_it_child (id, parent) VALUES ($1, $2)";
	for (int round = 0; round < 3; round++) {
		struct deferred_job jobs[4] = {
		    {ins, round * 10 + 1, 1, -1, {0}},
		    {ins, round * 10 + 2, 999, -1, {0}}, /* no such parent */
		    {ins, round * 10 + 3, 1, -1, {0}},
		    {"SELECT 42", 0, 0, -1, {0}},
		};
		for (int i = 0; i < 4; i++) {
			cr_assert_eq(lg_coro_spawn(rt, deferred_worker, &jobs[i], NULL), 0);
		}
		cr_assert_eq(lg_runtime_run(rt), 0);
		cr_assert_eq(jobs[0].rc, 0, "%s", jobs[0].err.message);
		cr_assert_eq(jobs[1].rc, LG_ESERVER, "rc %d: %s", jobs[1].rc, jobs[1].err.message);
		cr_assert_str_eq(jobs[1].err.sqlstate, "23503");
		cr_assert_eq(jobs[2].rc, 0, "%s", jobs[2].err.message);
		cr_assert_eq(jobs[3].rc, 0, "%s", jobs[3].err.message);
		cr_assert(lg_conn_ok(conn));
		cr_assert(!lg_conn_in_transaction(conn));
	}
	cr_assert_eq(count_rows("SELECT count(*) FROM lg_it_child"), 6);
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE lg_it_child, lg_it_parent", &err), 0);
	close_shared();
}

static int result_cols_of(const char *sql)
{
	struct lg_query_opts prep = {0, LG_QUERY_PREPARE};
	struct lg_result *r = NULL;
	struct lg_error err;
	int rc = lg_conn_query(conn, sql, NULL, 0, &prep, &r, &err);
	cr_assert_eq(rc, 0, "%s: %s", sql, err.message);
	int n = lg_result_cols(r);
	lg_result_free(r);
	return n;
}

/* A cached prepared SELECT * used to fail with 0A000 ("cached plan must not change result
 * type") on every call after ALTER TABLE ... ADD COLUMN, and with 26000 after DISCARD or
 * DEALLOCATE, until the connection was replaced. It did not execute, so it is prepared again
 * and re-sent once. */
Test(pipeline, stale_prepared_statements_are_prepared_again, .init = connect_shared)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE IF EXISTS lg_it_plan", &err), 0);
	cr_assert_eq(lg_conn_exec(conn, "CREATE TABLE lg_it_plan (a int)", &err), 0);
	cr_assert_eq(lg_conn_exec(conn, "INSERT INTO lg_it_plan VALUES (1)", &err), 0);
	static const char sel[] = "SELECT * FROM lg_it_plan";
	cr_assert_eq(result_cols_of(sel), 1);
	cr_assert_eq(result_cols_of(sel), 1);
	cr_assert_eq(lg_conn_exec(conn, "ALTER TABLE lg_it_plan ADD COLUMN b int", &err), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(result_cols_of(sel), 2);
	}
	cr_assert_eq(lg_conn_exec(conn, "DEALLOCATE ALL", &err), 0, "%s", err.message);
	cr_assert_eq(result_cols_of(sel), 2);
	cr_assert_eq(lg_conn_exec(conn, "DISCARD ALL", &err), 0, "%s", err.message);
	cr_assert_eq(result_cols_of(sel), 2);
	struct lg_conn_stats st;
	lg_conn_get_stats(conn, &st);
	cr_assert_eq(st.reprepares, 3, "reprepares %" PRIu64, st.reprepares);
	/* A write is re-sent only because it provably did not run: exactly one row added. */
	struct lg_query_opts prep = {0, LG_QUERY_PREPARE};
	static const char ins[] = "INSERT INTO lg_it_plan VALUES (2) RETURNING *";
	cr_assert_eq(lg_conn_query(conn, ins, NULL, 0, &prep, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(lg_conn_exec(conn, "ALTER TABLE lg_it_plan ADD COLUMN c int", &err), 0);
	cr_assert_eq(lg_conn_query(conn, ins, NULL, 0, &prep, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(count_rows("SELECT count(*) FROM lg_it_plan WHERE a = 2"), 2);
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE lg_it_plan", &err), 0);
	close_shared();
}

/* A connection nobody reads notifications from keeps at most notify_queue_max of them. */
Test(pipeline, notification_queue_is_bounded)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn(), .notify_queue_max = 10};
	struct lg_error err;
	cr_assert_eq(lg_conn_new(rt, &cfg, &conn, &err), 0, "%s", err.message);
	cr_assert_eq(lg_conn_listen(conn, "lg_it_bound", &err), 0, "%s", err.message);
	/* 100 notifications from the connection itself, one transaction each. */
	for (int i = 0; i < 100; i++) {
		struct lg_param p = lg_param_int64(i);
		cr_assert_eq(lg_conn_query(conn, "SELECT pg_notify('lg_it_bound', $1::text)", &p, 1,
					   NULL, NULL, &err),
			     0, "%s", err.message);
	}
	struct lg_conn_stats st;
	lg_conn_get_stats(conn, &st);
	cr_assert_eq(st.notifications_dropped, 90, "dropped %" PRIu64, st.notifications_dropped);
	/* The newest ten are kept, in order. */
	for (int i = 90; i < 100; i++) {
		struct lg_notification *n = NULL;
		cr_assert_eq(lg_conn_notification(conn, lg_deadline_in(1000), &n, &err), 0, "%s",
			     err.message);
		char want[8];
		snprintf(want, sizeof(want), "%d", i);
		cr_assert_str_eq(n->payload, want);
		lg_notification_free(n);
	}
	struct lg_notification *n = NULL;
	cr_assert_eq(lg_conn_notification(conn, lg_deadline_in(50), &n, &err), LG_ETIMEDOUT);
	close_shared();
}

struct hidden_write_job {
	bool writer;
	int rc;
	struct lg_error err;
};

static struct lg_pool *guard_pool;

static void hidden_write_worker(void *arg)
{
	struct hidden_write_job *j = arg;
	struct lg_query_opts read = {0, LG_QUERY_SHARED_READ};
	j->rc = lg_pool_query(guard_pool, j->writer ? "SELECT lg_it_sneaky()" : "SELECT 1", NULL, 0,
			      &read, NULL, &j->err);
}

static void tx_read_worker(void *arg)
{
	struct hidden_write_job *j = arg;
	struct lg_query_opts read = {0, LG_QUERY_SHARED_READ};
	j->rc = lg_conn_query(conn, "SELECT 1", NULL, 0, &read, NULL, &j->err);
}

/* The parser cannot see into a user function: a "read" that calls one which writes passes the
 * mark's check. In a segment shared with other reads it must fail loudly (the segment runs
 * read-only), not commit beside them and be re-run with them. */
Test(pipeline, a_shared_read_that_writes_through_a_function_fails_loudly, .init = connect_shared)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE IF EXISTS lg_it_sneak CASCADE", &err), 0);
	cr_assert_eq(lg_conn_exec(conn, "CREATE TABLE lg_it_sneak (a int)", &err), 0);
	cr_assert_eq(
	    lg_conn_exec(conn,
			 "CREATE OR REPLACE FUNCTION lg_it_sneaky() RETURNS int "
			 "LANGUAGE sql AS 'INSERT INTO lg_it_sneak VALUES (1) RETURNING 1'",
			 &err),
	    0, "%s", err.message);
	struct lg_pool_config pc = {.conninfo = lg_test_pg_dsn(), .min_conns = 1, .max_conns = 1};
	cr_assert_eq(lg_pool_new(rt, &pc, &guard_pool, &err), 0, "%s", err.message);
	enum { N = 200 };
	struct hidden_write_job jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct hidden_write_job){.writer = i % 10 == 3, .rc = -1};
		cr_assert_eq(lg_coro_spawn(rt, hidden_write_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < N; i++) {
		if (jobs[i].writer) {
			cr_assert_eq(jobs[i].rc, LG_ESERVER, "job %d rc %d", i, jobs[i].rc);
			cr_assert_str_eq(jobs[i].err.sqlstate, "25006", "%s", jobs[i].err.message);
		} else {
			cr_assert_eq(jobs[i].rc, 0, "job %d: %s", i, jobs[i].err.message);
		}
	}
	cr_assert_eq(count_rows("SELECT count(*) FROM lg_it_sneak"), 0);
	lg_pool_free(guard_pool);
	/* On a connection of the caller's own, shared reads may run inside the caller's
	 * transaction: no guard there, or the rest of the transaction would be read-only. */
	cr_assert_eq(lg_conn_exec(conn, "BEGIN", &err), 0, "%s", err.message);
	struct hidden_write_job reads[8];
	for (int i = 0; i < 8; i++) {
		reads[i] = (struct hidden_write_job){.rc = -1};
		cr_assert_eq(lg_coro_spawn(rt, tx_read_worker, &reads[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(reads[i].rc, 0, "%s", reads[i].err.message);
	}
	cr_assert_eq(lg_conn_exec(conn, "INSERT INTO lg_it_sneak VALUES (7)", &err), 0, "%s",
		     err.message);
	cr_assert_eq(lg_conn_exec(conn, "COMMIT", &err), 0, "%s", err.message);
	cr_assert_eq(count_rows("SELECT count(*) FROM lg_it_sneak"), 1);
	/* Writes that are not marked as reads are not affected. */
	cr_assert_eq(lg_conn_exec(conn, "SELECT lg_it_sneaky()", &err), 0, "%s", err.message);
	cr_assert_eq(count_rows("SELECT count(*) FROM lg_it_sneak"), 2);
	cr_assert_eq(lg_conn_exec(conn, "DROP TABLE lg_it_sneak CASCADE", &err), 0);
	cr_assert_eq(lg_conn_exec(conn, "DROP FUNCTION lg_it_sneaky()", &err), 0);
	close_shared();
}

/*
 * A result that a pipeline cannot carry (COPY's, here from a text too long for the parser to
 * inspect, which a connection of the caller's own sends as it is) fails the connection. That
 * failure frees the segment being read while its results are processed: nothing may touch it
 * afterwards (ASan caught a write to the freed segment).
 */
Test(pipeline, a_result_the_pipeline_cannot_carry_fails_the_connection_cleanly,
     .init = connect_shared, .fini = close_shared)
{
	size_t pad = 300 * 1024;
	const char head[] = "COPY (SELECT 1) TO STDOUT /*";
	char *sql = malloc(sizeof(head) + pad + 3);
	cr_assert_not_null(sql);
	memcpy(sql, head, sizeof(head) - 1);
	memset(sql + sizeof(head) - 1, 'x', pad);
	memcpy(sql + sizeof(head) - 1 + pad, "*/", 3);
	struct lg_error err;
	int rc = lg_conn_exec(conn, sql, &err);
	free(sql);
	cr_assert(rc == LG_EUNKNOWN || rc == LG_EPROTO || rc == LG_EINVAL, "rc %s: %s",
		  lg_strerror(rc), err.message);
	if (rc != LG_EINVAL) {
		cr_assert(!lg_conn_ok(conn), "the connection should be failed: %s", err.message);
		cr_assert_eq(lg_conn_exec(conn, "SELECT 1", &err), LG_ECONNLOST);
	}
}
