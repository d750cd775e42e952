/*
 * Cancel requests never hit a neighbour (issue: "a stray cancel must never hit a neighbour or
 * a later COMMIT").
 *
 * PostgreSQL's cancel request names a backend, not a statement: it stops whatever that
 * backend runs when the signal arrives. A statement whose deadline passes while the server
 * executes it is canceled by libguard; if it finishes just before the request lands, the
 * request stops the next statement on that connection instead. Inside a transaction that
 * aborts the caller's transaction (a re-sent statement only meets "current transaction is
 * aborted"), and a cancel near a COMMIT can make it fail.
 *
 * Each round below runs, on one connection:
 *   victim    SELECT pg_sleep(...) with a deadline a little shorter than the sleep, so its
 *             cancel request races with its own completion;
 *   neighbour an autocommit INSERT, then BEGIN; INSERT; INSERT; COMMIT sent as soon as the
 *             INSERT returns. In even rounds the INSERT is pipelined right behind the victim
 *             (the victim is then not cancelled: it is not the last statement sent); in odd
 *             rounds it starts just after the victim's deadline, while the cancel request is
 *             on its way.
 * Every neighbour statement must succeed and its rows must be stored exactly once; the
 * victim must succeed or end in LG_EUNKNOWN (sent, deadline passed) or LG_ETIMEDOUT (not
 * sent yet), never with another statement's cancel. Over many rounds with
 * deadlines spread across the victim's run time, the old behaviour (cancel sent while others
 * were pipelined behind the victim, new statements sent while the request was on its way)
 * failed a transaction in most runs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <libguard/libguard.h>

#include "lg_test.h"
#include "lg_test_loop.h"

#define ROUNDS   150
#define SLEEP_MS 8

struct round {
	struct lg_conn *conn;
	int id;
	uint64_t victim_deadline_ms;
	int victim_rc;
	struct lg_error victim_err;
	int rc[5];
	struct lg_error err[5];
};

static void victim(void *arg)
{
	struct round *r = arg;
	struct lg_query_opts o = {.deadline = lg_deadline_in(r->victim_deadline_ms)};
	r->victim_rc =
	    lg_conn_query(r->conn, "SELECT pg_sleep(0.008)", NULL, 0, &o, NULL, &r->victim_err);
}

static int insert(struct round *r, int id, struct lg_error *err)
{
	struct lg_param p = lg_param_int32(id);
	return lg_conn_query(r->conn, "INSERT INTO lg_cancel_ledger(id) VALUES ($1)", &p, 1, NULL,
			     NULL, err);
}

static void neighbour(void *arg)
{
	struct round *r = arg;
	if (r->id % 2 == 1) {
		/* Start once the victim's deadline passed: its cancel request is on its way. */
		lg_sleep(r->victim_deadline_ms + (uint64_t)(r->id / 2) % 3);
	}
	r->rc[0] = insert(r, r->id * 10, &r->err[0]);
	r->rc[1] = lg_conn_exec(r->conn, "BEGIN", &r->err[1]);
	r->rc[2] = insert(r, r->id * 10 + 1, &r->err[2]);
	r->rc[3] = insert(r, r->id * 10 + 2, &r->err[3]);
	r->rc[4] = lg_conn_exec(r->conn, "COMMIT", &r->err[4]);
	if (r->rc[1] == 0 && r->rc[4] != 0) {
		struct lg_error ignored;
		lg_conn_exec(r->conn, "ROLLBACK", &ignored); /* leave the session usable */
	}
}

static long long count_rows(struct lg_conn *c, int lo, int hi)
{
	struct lg_param p[2] = {lg_param_int32(lo), lg_param_int32(hi)};
	struct lg_result *res = NULL;
	struct lg_error err;
	cr_assert_eq(
	    lg_conn_query(c, "SELECT count(*) FROM lg_cancel_ledger WHERE id BETWEEN $1 AND $2", p,
			  2, NULL, &res, &err),
	    0, "%s", err.message);
	int64_t n = -1;
	cr_assert_eq(lg_result_int64(res, 0, 0, &n), 0);
	lg_result_free(res);
	return (long long)n;
}

Test(cancel, stray_cancel_never_hits_a_neighbour_or_a_commit)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_conn *c = NULL;
	struct lg_error err;
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, &err), 0, "%s", err.message);
	cr_assert_eq(lg_conn_exec(c, "DROP TABLE IF EXISTS lg_cancel_ledger", &err), 0, "%s",
		     err.message);
	cr_assert_eq(lg_conn_exec(c, "CREATE TABLE lg_cancel_ledger (id int PRIMARY KEY)", &err), 0,
		     "%s", err.message);
	int victims_cut = 0;
	for (int i = 0; i < ROUNDS; i++) {
		/* Deadlines from well before the sleep ends to just after it. */
		struct round r = {
		    .conn = c, .id = i, .victim_deadline_ms = 2 + (uint64_t)i % (SLEEP_MS + 2)};
		struct lg_coro *v;
		struct lg_coro *n;
		cr_assert_eq(lg_coro_spawn(rt, victim, &r, &v), 0);
		cr_assert_eq(lg_coro_spawn(rt, neighbour, &r, &n), 0);
		cr_assert_eq(lg_coro_join(v, lg_deadline_in(30000)), 0);
		cr_assert_eq(lg_coro_join(n, lg_deadline_in(30000)), 0);
		cr_assert(
		    r.victim_rc == 0 || r.victim_rc == LG_EUNKNOWN || r.victim_rc == LG_ETIMEDOUT,
		    "round %d: victim %s: %s", i, lg_strerror(r.victim_rc), r.victim_err.message);
		victims_cut += r.victim_rc == LG_EUNKNOWN;
		for (int k = 0; k < 5; k++) {
			cr_assert_eq(
			    r.rc[k], 0,
			    "round %d (deadline %llu ms): neighbour statement %d failed: %s "
			    "[%s]",
			    i, (unsigned long long)r.victim_deadline_ms, k, r.err[k].message,
			    r.err[k].sqlstate);
		}
		cr_assert_eq(count_rows(c, i * 10, i * 10 + 9), 3, "round %d: rows not stored once",
			     i);
	}
	struct lg_conn_stats st;
	lg_conn_get_stats(c, &st);
	cr_log_info("%d of %d victims cut by their deadline, %llu cancel requests sent",
		    victims_cut, ROUNDS, (unsigned long long)st.cancels);
	cr_assert_gt(victims_cut, 0, "no victim ever passed its deadline: the race was not run");
	cr_assert_gt(st.cancels, 0, "no cancel request was sent: the race was not run");
	cr_assert_eq(lg_conn_exec(c, "DROP TABLE lg_cancel_ledger", &err), 0, "%s", err.message);
	lg_conn_free(c);
	runtime_free_checked(rt);
}
