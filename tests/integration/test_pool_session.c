/*
 * lg_pool against real PostgreSQL: statements keep their autocommit meaning on shared
 * connections. Session state is refused there (it would leak to the next caller of the same
 * connection), transaction-local state does not leak to neighbours of the same loop turn, and
 * writes never share an implicit transaction with other callers.
 *
 * Every test here failed on the pipeline that put all statements of a loop turn into one sync
 * segment: BEGIN went through and swallowed other callers' INSERTs, set_config(.., true) was
 * visible to a neighbour's current_setting(), a neighbour's failure rolled back a write.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>

#include "lg_test.h"

static struct lg_runtime *rt;
static struct lg_pool *pool;
static char table[64];

static void open_pool(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_pool_config cfg = {.conninfo = lg_test_pg_dsn(), .min_conns = 2, .max_conns = 2};
	struct lg_error err;
	cr_assert_eq(lg_pool_new(rt, &cfg, &pool, &err), 0, "pool: %s", err.message);
	snprintf(table, sizeof(table), "lg_it_ps_%d", (int)getpid());
	char sql[160];
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int8 PRIMARY KEY, who text)", table);
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
}

static void close_pool(void)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
	struct lg_error err;
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	lg_pool_free(pool);
	lg_runtime_free(rt);
}

/* Runs sql on a fresh connection of its own (not the pool's); the count(*) it returns, or
 * -1 when it returns no rows. What another session sees is what was committed. */
static int64_t fresh_session(const char *sql)
{
	struct lg_conn *c;
	struct lg_conn_config cc = {.conninfo = lg_test_pg_dsn()};
	struct lg_error err;
	cr_assert_eq(lg_conn_new(rt, &cc, &c, &err), 0, "%s", err.message);
	struct lg_result *r = NULL;
	cr_assert_eq(lg_conn_query(c, sql, NULL, 0, NULL, &r, &err), 0, "%s", err.message);
	int64_t n = -1;
	if (lg_result_rows(r) == 1) {
		cr_assert_eq(lg_result_int64(r, 0, 0, &n), 0);
	}
	lg_result_free(r);
	lg_conn_free(c);
	return n;
}

static int64_t committed_rows(void)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return fresh_session(sql);
}

Test(pool_session, session_state_is_refused_before_it_is_sent, .init = open_pool, .fini = NULL)
{
	static const char *const refused[] = {
	    "BEGIN",
	    "START TRANSACTION",
	    "COMMIT",
	    "SET search_path = nowhere",
	    "RESET ALL",
	    "SELECT set_config('app.tenant', 'tenant-A', false)",
	    "SELECT set_config('app.tenant', 'tenant-A', 1 = 1)",
	    "LISTEN lg_it_chan",
	    "PREPARE lg_it_p AS SELECT 1",
	    "DISCARD ALL",
	    "DEALLOCATE ALL",
	    "SELECT pg_advisory_lock(4242)",
	    "SELECT pg_try_advisory_lock(4242)",
	    "CREATE TEMP TABLE lg_it_tmp (a int)",
	};
	struct lg_error err;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		cr_expect_eq(lg_pool_exec(pool, refused[i], &err), LG_EINVAL, "%s", refused[i]);
		cr_expect(strstr(err.message, "lg_pool_begin") != NULL, "%s: %s", refused[i],
			  err.message);
	}
	/* None of it reached a server: no advisory lock, no LISTEN, no prepared statement. */
	struct lg_result *r;
	cr_assert_eq(lg_pool_query(pool,
				   "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = "
				   "'advisory') + (SELECT count(*) FROM pg_listening_channels()) + "
				   "(SELECT count(*) FROM pg_prepared_statements)",
				   NULL, 0, NULL, &r, &err),
		     0, "%s", err.message);
	int64_t n = -1;
	cr_assert_eq(lg_result_int64(r, 0, 0, &n), 0);
	lg_result_free(r);
	cr_assert_eq(n, 0);
	/* The same statements are fine where the session is the caller's: in a transaction. */
	struct lg_tx *tx;
	cr_assert_eq(lg_pool_begin(pool, NULL, &tx, &err), 0, "%s", err.message);
	cr_assert_eq(lg_tx_exec(tx, "SELECT set_config('app.tenant', 'tenant-A', true)", &err), 0,
		     "%s", err.message);
	cr_assert_eq(lg_tx_exec(tx, "SET LOCAL statement_timeout = 0", &err), 0, "%s", err.message);
	cr_assert_eq(lg_tx_commit(tx, &err), 0, "%s", err.message);
	close_pool();
}

struct tenant_job {
	int id;
	bool setter;
	int rc;
	char seen[64];
	struct lg_error err;
};

static void tenant_worker(void *arg)
{
	struct tenant_job *j = arg;
	struct lg_result *r = NULL;
	if (j->setter) {
		char v[32];
		snprintf(v, sizeof(v), "tenant-%d", j->id);
		struct lg_param p = lg_param_text(v);
		j->rc = lg_pool_query(pool, "SELECT set_config('app.tenant', $1, true)", &p, 1,
				      NULL, NULL, &j->err);
		return;
	}
	struct lg_query_opts read = {0, LG_QUERY_SHARED_READ};
	j->rc = lg_pool_query(pool, "SELECT coalesce(current_setting('app.tenant', true), '')",
			      NULL, 0, &read, &r, &j->err);
	const char *v = NULL;
	if (j->rc == 0 && lg_result_text(r, 0, 0, &v, NULL) == 0) {
		snprintf(j->seen, sizeof(j->seen), "%s", v);
	}
	lg_result_free(r);
}

/* Row-level security keyed on a setting: one tenant must never read with another's. */
Test(pool_session, transaction_local_settings_do_not_reach_neighbours, .init = open_pool,
     .fini = NULL)
{
	enum { N = 400 };
	struct tenant_job *jobs = calloc(N, sizeof(*jobs));
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct tenant_job){.id = i, .setter = i % 2 == 0, .rc = -1};
		cr_assert_eq(lg_coro_spawn(rt, tenant_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(jobs[i].rc, 0, "job %d: %s", i, jobs[i].err.message);
		if (!jobs[i].setter) {
			cr_assert_str_eq(jobs[i].seen, "", "job %d read tenant '%s'", i,
					 jobs[i].seen);
		}
	}
	free(jobs);
	close_pool();
}

struct write_job {
	int id;
	bool poison;
	int rc;
	struct lg_error err;
};

static void write_worker(void *arg)
{
	struct write_job *j = arg;
	char sql[160];
	snprintf(sql, sizeof(sql), "INSERT INTO %s (id, who) VALUES ($1, ($2::int8 / $3)::text)",
		 table);
	struct lg_param p[3] = {lg_param_int64(j->id), lg_param_int64(j->id),
				lg_param_int64(j->poison ? 0 : 1)};
	j->rc = lg_pool_query(pool, sql, p, 3, NULL, NULL, &j->err);
}

/* A caller's BEGIN used to open a transaction around other callers' INSERTs, which then
 * reported success and were never committed. Refused now; the neighbours commit. */
Test(pool_session, begin_through_the_pool_cannot_swallow_other_writes, .init = open_pool,
     .fini = NULL)
{
	enum { N = 200 };
	struct write_job jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct write_job){.id = i, .poison = i % 40 == 7, .rc = -1};
		cr_assert_eq(lg_coro_spawn(rt, write_worker, &jobs[i], NULL), 0);
	}
	struct lg_error err;
	cr_assert_eq(lg_pool_exec(pool, "BEGIN", &err), LG_EINVAL);
	cr_assert_eq(lg_runtime_run(rt), 0);
	int ok = 0;
	for (int i = 0; i < N; i++) {
		if (jobs[i].poison) {
			cr_assert_eq(jobs[i].rc, LG_ESERVER);
			cr_assert_str_eq(jobs[i].err.sqlstate, "22012");
		} else {
			cr_assert_eq(jobs[i].rc, 0, "job %d: %s", i, jobs[i].err.message);
			ok++;
		}
	}
	/* Every acknowledged INSERT is visible to a fresh session, exactly once. */
	cr_assert_eq(committed_rows(), ok);
	close_pool();
}

/* A statement of a transaction that timed out may or may not have run: COMMIT must not make
 * that permanent. It rolls back and says so. */
Test(pool_session, a_deadline_inside_a_transaction_dooms_it, .init = open_pool, .fini = NULL)
{
	struct lg_tx *tx;
	struct lg_error err;
	cr_assert_eq(lg_pool_begin(pool, NULL, &tx, &err), 0, "%s", err.message);
	char sql[160];
	snprintf(sql, sizeof(sql), "INSERT INTO %s (id, who) VALUES (1, 'doomed')", table);
	cr_assert_eq(lg_tx_exec(tx, sql, &err), 0, "%s", err.message);
	struct lg_query_opts slow = {lg_deadline_in(50), 0};
	int rc = lg_tx_query(tx, "SELECT pg_sleep(30)", NULL, 0, &slow, NULL, &err);
	cr_assert_eq(rc, LG_EUNKNOWN, "rc %d: %s", rc, err.message);
	rc = lg_tx_commit(tx, &err);
	cr_assert_eq(rc, LG_ECANCELED, "rc %d: %s", rc, err.message);
	cr_assert(strstr(err.message, "rolled back") != NULL, "%s", err.message);
	cr_assert_eq(committed_rows(), 0, "the doomed INSERT was committed");
	/* The pool still serves. */
	snprintf(sql, sizeof(sql), "INSERT INTO %s (id, who) VALUES (2, 'after')", table);
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	cr_assert_eq(committed_rows(), 1);
	close_pool();
}

/* lg_pool_free used to wait for a transaction left open until its owner ended it, spinning
 * the loop at 100% CPU when nothing else could run. It now gives the transaction until
 * drain_timeout_ms, closes, and returns; the owner's later calls fail with LG_ECLOSED and its
 * COMMIT never reports success. (Under ASan, LeakSanitizer checks that the last end frees what
 * was left of the pool.) */
Test(pool_session, close_with_a_transaction_left_open_returns, .init = NULL, .fini = NULL)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_pool_config cfg = {
	    .conninfo = lg_test_pg_dsn(), .min_conns = 2, .max_conns = 2, .drain_timeout_ms = 200};
	struct lg_error err;
	cr_assert_eq(lg_pool_new(rt, &cfg, &pool, &err), 0, "pool: %s", err.message);
	snprintf(table, sizeof(table), "lg_it_psc_%d", (int)getpid());
	char sql[160];
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int8 PRIMARY KEY)", table);
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	struct lg_tx *open_tx, *other_tx;
	cr_assert_eq(lg_pool_begin(pool, NULL, &open_tx, &err), 0, "%s", err.message);
	cr_assert_eq(lg_pool_begin(pool, NULL, &other_tx, &err), 0, "%s", err.message);
	snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1)", table);
	cr_assert_eq(lg_tx_exec(open_tx, sql, &err), 0, "%s", err.message);
	lg_pool_free(pool); /* returns: the transactions are still open */
	cr_assert_eq(lg_tx_exec(open_tx, sql, &err), LG_ECLOSED);
	cr_assert_eq(lg_tx_rollback(other_tx, &err), LG_ECLOSED);
	cr_assert_eq(lg_tx_commit(open_tx, &err), LG_ECLOSED); /* frees the rest of the pool */
	cr_assert_eq(committed_rows(), 0, "something was committed");
	snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
	fresh_session(sql);
	lg_runtime_free(rt);
}

/* Text the parser does not inspect (past its 256 KiB limit) might be anything: a BEGIN
 * padded that way used to leave the pooled session inside a transaction, where the next
 * callers' writes reported success and were never committed. It is refused on shared
 * connections, and later writes commit. */
Test(pool_session, a_transaction_left_open_on_a_shared_connection_is_closed, .init = open_pool,
     .fini = NULL)
{
	size_t pad = 300 * 1024;
	char *begin = malloc(pad + 16);
	cr_assert_not_null(begin);
	memcpy(begin, "BEGIN", 5);
	memset(begin + 5, ' ', pad);
	begin[5 + pad] = '\0';
	struct lg_error err;
	int rc = lg_pool_exec(pool, begin, &err);
	free(begin);
	cr_assert_eq(rc, LG_EINVAL, "rc %d: %s", rc, err.message);
	cr_assert(strstr(err.message, "too long to inspect") != NULL, "%s", err.message);
	/* Every later write commits, whichever connection it lands on. */
	for (int i = 0; i < 20; i++) {
		char sql[160];
		snprintf(sql, sizeof(sql), "INSERT INTO %s (id, who) VALUES (%d, 'after')", table,
			 i);
		cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	}
	int64_t n = committed_rows();
	cr_assert_eq(n, 20, "committed %" PRId64 " of 20", n);
	close_pool();
}

/* A transaction whose owner went quiet (a stuck coroutine, a forgotten lg_tx) used to hold its
 * pinned connection and row locks forever. After tx_idle_timeout_ms the server ends it: the
 * owner's COMMIT fails, its writes are gone, its locks are released, and the pool goes on. */
Test(pool_session, an_abandoned_transaction_is_ended_by_the_server, .init = NULL, .fini = NULL)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_pool_config cfg = {.conninfo = lg_test_pg_dsn(),
				     .min_conns = 2,
				     .max_conns = 2,
				     .tx_idle_timeout_ms = 200};
	struct lg_error err;
	cr_assert_eq(lg_pool_new(rt, &cfg, &pool, &err), 0, "pool: %s", err.message);
	snprintf(table, sizeof(table), "lg_it_pst_%d", (int)getpid());
	char sql[160];
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int8 PRIMARY KEY, who text)", table);
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	struct lg_tx *tx;
	cr_assert_eq(lg_pool_begin(pool, NULL, &tx, &err), 0, "%s", err.message);
	snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1, 'abandoned')", table);
	cr_assert_eq(lg_tx_exec(tx, sql, &err), 0, "%s", err.message);
	usleep(1000 * 1000); /* the owner goes quiet (the loop need not run meanwhile) */
	int rc = lg_tx_commit(tx, &err);
	cr_assert_neq(rc, 0, "the abandoned transaction committed");
	/* The row lock is gone: the same key can be written at once. */
	snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1, 'after')", table);
	struct lg_query_opts quick = {lg_deadline_in(5000), 0};
	cr_assert_eq(lg_pool_query(pool, sql, NULL, 0, &quick, NULL, &err), 0, "%s", err.message);
	close_pool();
}

struct swap_job {
	int a;
	int b;
	int rc;
	struct lg_error err;
};

static void swap_worker(void *arg)
{
	struct swap_job *j = arg;
	char sql[160];
	snprintf(sql, sizeof(sql), "UPDATE %s SET who = who || '.' WHERE id = $1", table);
	for (int round = 0; round < 20 && j->rc == 0; round++) {
		struct lg_param p = lg_param_int64(round % 2 ? j->a : j->b);
		j->rc = lg_pool_query(pool, sql, &p, 1, NULL, NULL, &j->err);
	}
}

static int64_t deadlocks_now(void)
{
	struct lg_result *r;
	struct lg_error err;
	struct lg_query_opts read = {0, LG_QUERY_SHARED_READ};
	/* Statistics are cached per transaction; each shared read here is a transaction. */
	cr_assert_eq(lg_pool_query(pool,
				   "SELECT deadlocks FROM pg_stat_database WHERE datname = "
				   "current_database()",
				   NULL, 0, &read, &r, &err),
		     0, "%s", err.message);
	int64_t n = -1;
	cr_assert_eq(lg_result_int64(r, 0, 0, &n), 0);
	lg_result_free(r);
	return n;
}

/* Unrelated callers updating single rows in opposite orders over two pooled connections:
 * in autocommit they can never deadlock. When a loop turn's statements shared one implicit
 * transaction per connection, two such transactions locked rows in opposite orders and
 * PostgreSQL had to kill one (pg_stat_database.deadlocks moved; the library re-sent it). */
Test(pool_session, unrelated_single_row_updates_never_deadlock, .init = open_pool, .fini = NULL)
{
	char sql[160];
	struct lg_error err;
	snprintf(sql, sizeof(sql), "INSERT INTO %s SELECT g, 'row' FROM generate_series(1, 10) g",
		 table);
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	int64_t before = deadlocks_now();
	enum { N = 200 };
	struct swap_job *jobs = calloc(N, sizeof(*jobs));
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct swap_job){.a = 1 + i % 10, .b = 1 + (i * 7 + 3) % 10};
		cr_assert_eq(lg_coro_spawn(rt, swap_worker, &jobs[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(jobs[i].rc, 0, "job %d: %s", i, jobs[i].err.message);
	}
	free(jobs);
	/* The statistics collector reports with a delay of its own: wait until it has seen this
	 * test's 4,000 updates, then compare. */
	snprintf(sql, sizeof(sql), "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = '%s'",
		 table);
	int64_t updated = 0;
	for (int i = 0; i < 200 && updated < N * 20; i++) {
		struct lg_result *r;
		cr_assert_eq(lg_pool_query(pool, sql, NULL, 0, NULL, &r, &err), 0, "%s",
			     err.message);
		if (lg_result_rows(r) == 1) {
			lg_result_int64(r, 0, 0, &updated);
		}
		lg_result_free(r);
		usleep(50 * 1000);
	}
	cr_assert_geq(updated, N * 20, "the statistics never showed the updates");
	cr_assert_eq(deadlocks_now(), before, "PostgreSQL resolved deadlocks between them");
	close_pool();
}

static void nap(void *arg)
{
	lg_sleep((uint64_t)(uintptr_t)arg);
}

static pid_t stopped_backend;

/* Runs even when an assertion ends the test: a stopped backend would hang the server's
 * shutdown for every later test. */
static void resume_backend(void)
{
	if (stopped_backend > 0) {
		kill(stopped_backend, SIGCONT);
	}
}

/* A backend that stops answering (here: SIGSTOP) while its connection idles in the pool used
 * to be found only by the next caller, who then waited out its own deadline. The idle health
 * check finds it first and replaces the connection, so callers are served. */
Test(pool_session, a_hung_idle_connection_is_found_and_replaced, .init = NULL,
     .fini = resume_backend)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	char dsn[512];
	snprintf(dsn, sizeof(dsn), "%s application_name=lg_health_%d", lg_test_pg_dsn(),
		 (int)getpid());
	struct lg_pool_config cfg = {
	    .conninfo = dsn, .min_conns = 1, .max_conns = 1, .health_check_ms = 200};
	struct lg_error err;
	cr_assert_eq(lg_pool_new(rt, &cfg, &pool, &err), 0, "pool: %s", err.message);
	struct lg_result *r;
	cr_assert_eq(lg_pool_query(pool, "SELECT pg_backend_pid()", NULL, 0, NULL, &r, &err), 0,
		     "%s", err.message);
	int64_t pid = 0;
	cr_assert_eq(lg_result_int64(r, 0, 0, &pid), 0);
	lg_result_free(r);
	stopped_backend = (pid_t)pid;
	cr_assert_eq(kill(stopped_backend, SIGSTOP), 0);
	usleep(100 * 1000);
	/* Let maintenance run for a while: it finds the hung connection and opens another. */
	struct lg_pool_stats st = {0};
	for (int i = 0; i < 100 && st.health_checks_failed == 0; i++) {
		cr_assert_eq(lg_coro_spawn(rt, nap, (void *)(uintptr_t)50, NULL), 0);
		cr_assert_eq(lg_runtime_run(rt), 0);
		lg_pool_get_stats(pool, &st);
	}
	cr_assert_gt(st.health_checks_failed, 0, "the hung connection was never checked");
	/* The next caller is served by the replacement, within a deadline the hung backend
	 * could never meet. */
	struct lg_query_opts quick = {lg_deadline_in(10000), 0};
	int rc = lg_pool_query(pool, "SELECT pg_backend_pid()", NULL, 0, &quick, &r, &err);
	resume_backend();
	cr_assert_eq(rc, 0, "%s", err.message);
	int64_t now_pid = 0;
	cr_assert_eq(lg_result_int64(r, 0, 0, &now_pid), 0);
	lg_result_free(r);
	cr_assert_neq(now_pid, pid);
	lg_pool_free(pool);
	lg_runtime_free(rt);
}

/* A caller that gives no deadline used to wait as long as the server took, forever for a
 * hung one. The pool's default statement deadline (30 s) ends the wait; the statement was
 * sent, so the outcome is unknown and a cancel goes to the server. */
Test(pool_session, a_statement_without_a_deadline_gets_the_default_one, .init = open_pool,
     .fini = NULL, .timeout = 120)
{
	struct lg_error err;
	int rc = lg_pool_exec(pool, "SELECT pg_sleep(600)", &err);
	cr_assert_eq(rc, LG_EUNKNOWN, "rc %d: %s", rc, err.message);
	/* The pool goes on: the cancel stopped the sleep. */
	cr_assert_eq(committed_rows(), 0);
	char sql[160];
	snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1, 'after')", table);
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s", err.message);
	close_pool();
}
