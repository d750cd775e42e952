/*
 * A read sent right behind a statement (lg__conn_query_then, pg_query_int.h) on a real
 * connection: it runs after the statement, whatever the statement did; the reads behind
 * statements sent in one flush share one sync segment after them (pg_pipeline.c); a caller
 * that gives up gives up the read too.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>

#include "lg_test.h"
#include "pg_query_int.h"

#define WRITERS 4

static char table[64];
static struct lg_runtime *rt;
static struct lg_conn *conn;

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	struct lg_error err = {0};
	cr_assert_eq(lg_conn_new(rt, &cfg, &conn, &err), 0, "%s", err.message);
	snprintf(table, sizeof(table), "query_then_%d", (int)getpid());
	char sql[160];
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
	cr_assert_eq(lg_conn_exec(conn, sql, &err), 0, "%s", err.message);
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s AS SELECT g::int8 AS id, 0::int8 AS v FROM "
		 "generate_series(1, %d) g",
		 table, WRITERS);
	cr_assert_eq(lg_conn_exec(conn, sql, &err), 0, "%s", err.message);
}

static void teardown(void)
{
	char sql[96];
	snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
	lg_conn_exec(conn, sql, NULL);
	lg_conn_free(conn);
	lg_runtime_free(rt);
}

TestSuite(query_then, .init = setup, .fini = teardown);

struct writer {
	int id;
	int rc;
	int64_t written; /* v as the UPDATE returned it */
	int64_t read;    /* v as the read behind it saw it */
	struct lg__then then;
	char then_sql[128];
};

static void writer_main(void *arg)
{
	struct writer *w = arg;
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE %s SET v = v + 10 WHERE id = %d RETURNING v", table,
		 w->id);
	snprintf(w->then_sql, sizeof(w->then_sql), "SELECT v FROM %s WHERE id = %d", table, w->id);
	w->then.sql = w->then_sql;
	struct lg_result *r = NULL;
	w->rc = lg__conn_query_then(conn, false, sql, NULL, 0, NULL, &w->then, &r, NULL);
	if (w->rc == 0) {
		lg_result_int64(r, 0, 0, &w->written);
	}
	if (w->then.rc == 0) {
		lg_result_int64(w->then.result, 0, 0, &w->read);
	}
	lg_result_free(r);
	lg_result_free(w->then.result);
}

static void writers_body(void *arg)
{
	(void)arg;
	struct lg_conn_stats before, after;
	lg_conn_get_stats(conn, &before);
	struct writer w[WRITERS];
	struct lg_coro *c[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){.id = i + 1};
		cr_assert_eq(lg_coro_spawn(rt, writer_main, &w[i], &c[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		cr_assert_eq(lg_coro_join(c[i], LG_DEADLINE_NONE), 0);
	}
	lg_conn_get_stats(conn, &after);
	for (int i = 0; i < WRITERS; i++) {
		cr_assert_eq(w[i].rc, 0);
		cr_assert_eq(w[i].then.rc, 0);
		cr_assert_eq(w[i].written, 10);
		cr_assert_eq(w[i].read, 10, "the read behind the write did not see it");
	}
	/* The writes were queued in one loop turn: a segment each, and their reads one more. */
	cr_assert_eq(after.segments - before.segments, WRITERS + 1,
		     "%llu segments for %d writes with a read behind each",
		     (unsigned long long)(after.segments - before.segments), WRITERS);
}

Test(query_then, reads_behind_writes_of_one_flush_run_after_them_in_one_segment)
{
	struct lg_coro *c;
	cr_assert_eq(lg_coro_spawn(rt, writers_body, NULL, &c), 0);
	cr_assert_eq(lg_coro_join(c, LG_DEADLINE_NONE), 0);
}

Test(query_then, the_read_runs_when_the_statement_fails)
{
	struct lg__then then = {.sql = "SELECT 7"};
	struct lg_error err = {0};
	int rc = lg__conn_query_then(conn, false, "SELECT 1 / 0", NULL, 0, NULL, &then, NULL, &err);
	cr_assert_eq(rc, LG_ESERVER);
	cr_assert_str_eq(err.sqlstate, "22012");
	cr_assert_eq(then.rc, 0, "the read behind a failed statement did not run");
	int64_t v = 0;
	cr_assert_eq(lg_result_int64(then.result, 0, 0, &v), 0);
	cr_assert_eq(v, 7);
	lg_result_free(then.result);
	cr_assert(lg_conn_ok(conn));
}

Test(query_then, a_caller_that_gives_up_gives_up_the_read)
{
	struct lg__then then = {.sql = "SELECT 7"};
	struct lg_query_opts o = {.deadline = lg_deadline_in(100)};
	struct lg_error err = {0};
	int rc =
	    lg__conn_query_then(conn, false, "SELECT pg_sleep(1)", NULL, 0, &o, &then, NULL, &err);
	cr_assert_eq(rc, LG_EUNKNOWN, "%s", err.message);
	cr_assert_neq(then.rc, 0);
	cr_assert_null(then.result);
	/* The connection carries on once the sleep is over: no cancel request goes out while a
	 * statement sent after the given-up one (the read, dropped) could be hit. */
	struct lg_result *r = NULL;
	cr_assert_eq(lg_conn_query(conn, "SELECT 1", NULL, 0, NULL, &r, &err), 0, "%s",
		     err.message);
	lg_result_free(r);
}
