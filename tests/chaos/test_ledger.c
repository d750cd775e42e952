/*
 * The pool's outcome contract under chaos, checked with a ledger.
 *
 * 200 coroutines over a pool of 4 connections run random operations, each tagged with a
 * unique op id: inserts, counter updates, statements that fail, slow statements with short
 * deadlines, and transactions that commit or roll back. Meanwhile a killer terminates the
 * pool's backends at random (pg_terminate_backend). Every acknowledged outcome goes into the
 * ledger, classed as:
 *   applied     -- the call returned 0: the op must be in the database exactly once;
 *   not applied -- not executed (LG_ENOTSENT, LG_ETIMEDOUT, LG_ECANCELED before sending ...)
 *                  or rolled back (a server error in autocommit, ROLLBACK, a doomed COMMIT):
 *                  it must be absent;
 *   unknown     -- LG_EUNKNOWN, LG_ECONNLOST: present at most once; for a transaction, all
 *                  of its ops or none.
 * An online checker compares the database with the ledger every 100 ms while the chaos runs
 * (an applied op must already be visible, a not-applied op must never appear, nothing twice),
 * and once more at the end.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>

#include "lg_test.h"

#define WORKERS  200
#define OPS_EACH 60
#define MAX_OPS  (WORKERS * OPS_EACH * 3)
#define COUNTERS 50

enum outcome { PENDING = 0, APPLIED, NOT_APPLIED, UNKNOWN };

struct op {
	enum outcome outcome;
	int64_t tx; /* 0, or the transaction's first op id: its ops share a fate */
};

static struct lg_runtime *rt;
static struct lg_pool *pool;
static struct op ledger[MAX_OPS + 1];
static int64_t next_op = 1;
static int workers_left;
static char app[64];
static int checks_done;
static char violation[512];

static enum outcome classify(int rc)
{
	switch (rc) {
	case 0:
		return APPLIED;
	case LG_EUNKNOWN:
	case LG_ECONNLOST:
		return UNKNOWN;
	case LG_ESERVER:
	case LG_ENOTSENT:
	case LG_ETIMEDOUT:
	case LG_ECANCELED:
	case LG_ECLOSED:
	case LG_EINVAL:
		return NOT_APPLIED;
	default:
		cr_assert_fail("unexpected code %d (%s)", rc, lg_strerror(rc));
		return UNKNOWN;
	}
}

static int64_t op_new(void)
{
	cr_assert_lt(next_op, MAX_OPS);
	return next_op++;
}

static int run(const char *sql, int64_t op, int64_t arg, uint64_t deadline_ms)
{
	struct lg_param p[2] = {lg_param_int64(op), lg_param_int64(arg)};
	struct lg_query_opts o = {deadline_ms ? lg_deadline_in(deadline_ms) : 0, LG_QUERY_PREPARE};
	return lg_pool_query(pool, sql, p, 2, &o, NULL, NULL);
}

static const char ins_sql[] = "INSERT INTO lg_ledger_ins (op, bad) VALUES ($1, $2 = 1)";
static const char upd_sql[] =
    "UPDATE lg_ledger_ctr SET ops = array_append(ops, $1::int8) WHERE id = $2";
static const char slow_sql[] =
    "INSERT INTO lg_ledger_ins (op, bad) SELECT $1, $2 = 1 FROM pg_sleep(0.02)";

static void single_op(uint32_t r)
{
	int64_t op = op_new();
	int rc;
	switch (r % 4) {
	case 0:
		rc = run(ins_sql, op, 0, 0);
		break;
	case 1:
		rc = run(upd_sql, op, 1 + (int64_t)(r >> 4) % COUNTERS, 0);
		break;
	case 2: /* violates CHECK (NOT bad): fails on its own */
		rc = run(ins_sql, op, 1, 0);
		cr_assert(rc != 0, "a failing statement succeeded");
		break;
	default: /* slow, with a deadline that may pass before or after sending */
		rc = run(slow_sql, op, 0, 5 + (r >> 8) % 40);
		break;
	}
	ledger[op].outcome = classify(rc);
}

static void tx_op(uint32_t r)
{
	struct lg_tx *tx;
	int rc = lg_pool_begin(pool, NULL, &tx, NULL);
	if (rc != 0) {
		return; /* nothing happened under any op id */
	}
	int64_t ops[3];
	int n = 1 + (int)(r % 3);
	bool ok = true;
	for (int i = 0; i < n; i++) {
		ops[i] = op_new();
		ledger[ops[i]].tx = ops[0];
		struct lg_param p[2] = {
		    lg_param_int64(ops[i]),
		    lg_param_int64(i % 2 ? 1 + (int64_t)(r >> 4) % COUNTERS : 0)};
		if (ok) {
			ok =
			    lg_tx_query(tx, i % 2 ? upd_sql : ins_sql, p, 2, NULL, NULL, NULL) == 0;
		}
	}
	enum outcome fate;
	if (ok && (r >> 12) % 4 != 0) {
		fate = classify(lg_tx_commit(tx, NULL));
	} else {
		lg_tx_rollback(tx, NULL);
		fate = NOT_APPLIED;
	}
	for (int i = 0; i < n; i++) {
		ledger[ops[i]].outcome = fate;
	}
}

static void worker(void *arg)
{
	uint32_t r = (uint32_t)(uintptr_t)arg * 2654435761u;
	for (int i = 0; i < OPS_EACH; i++) {
		r = r * 1103515245u + 12345u;
		if ((r >> 16) % 5 == 0) {
			tx_op(r >> 3);
		} else {
			single_op(r >> 3);
		}
		if ((r >> 20) % 3 == 0) {
			lg_sleep(1 + (r >> 24) % 5);
		}
	}
	workers_left--;
}

static void killer(void *arg)
{
	(void)arg;
	struct lg_conn *c;
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, NULL), 0);
	struct lg_param p = lg_param_text(app);
	uint32_t r = 7;
	while (workers_left > 0) {
		r = r * 1103515245u + 12345u;
		if (lg_sleep(20 + (r >> 16) % 60) != 0) {
			break;
		}
		lg_conn_query(c,
			      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
			      "WHERE application_name = $1 ORDER BY random() LIMIT 1",
			      &p, 1, NULL, NULL, NULL);
	}
	lg_conn_free(c);
}

/* How often each op id is in the database now. */
static int *db_counts(struct lg_conn *c)
{
	int *count = calloc(MAX_OPS + 1, sizeof(*count));
	struct lg_result *r = NULL;
	struct lg_error err;
	int rc = lg_conn_query(c,
			       "SELECT op FROM lg_ledger_ins UNION ALL "
			       "SELECT unnest(ops) FROM lg_ledger_ctr",
			       NULL, 0, NULL, &r, &err);
	if (rc != 0) {
		free(count);
		lg_result_free(r);
		return NULL; /* the checker's own connection was hit: try next time */
	}
	for (int i = 0; i < lg_result_rows(r); i++) {
		int64_t op = 0;
		cr_assert_eq(lg_result_int64(r, i, 0, &op), 0);
		cr_assert(op > 0 && op <= MAX_OPS);
		count[op]++;
	}
	lg_result_free(r);
	return count;
}

/* Compares the database with the ledger; final: every op has its outcome. */
static void check(const int *count, bool final)
{
	for (int64_t op = 1; op < next_op && violation[0] == '\0'; op++) {
		const struct op *o = &ledger[op];
		int n = count[op];
		const char *bad = n > 1                                ? "applied twice"
				  : o->outcome == APPLIED && n != 1    ? "acknowledged but absent"
				  : o->outcome == NOT_APPLIED && n > 0 ? "not applied but present"
								       : NULL;
		if (bad == NULL && final && o->outcome == UNKNOWN && o->tx != 0 &&
		    count[o->tx] != n) {
			bad = "a transaction applied in part";
		}
		if (bad == NULL && final && o->outcome == PENDING) {
			bad = "no outcome recorded";
		}
		if (bad != NULL) {
			snprintf(violation, sizeof(violation),
				 "op %" PRId64 " (tx %" PRId64
				 ", outcome %d, in the database %d times): %s",
				 op, o->tx, o->outcome, n, bad);
		}
	}
}

static void checker(void *arg)
{
	(void)arg;
	struct lg_conn *c;
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, NULL), 0);
	while (workers_left > 0) {
		/* Snapshot the ledger first: an op acknowledged after the read is not judged. */
		static struct op snap[MAX_OPS + 1];
		int64_t upto = next_op;
		memcpy(snap, ledger, sizeof(snap));
		int *count = db_counts(c);
		if (count != NULL) {
			for (int64_t op = 1; op < upto && violation[0] == '\0'; op++) {
				int n = count[op];
				if (n > 1 || (snap[op].outcome == APPLIED && n != 1) ||
				    (snap[op].outcome == NOT_APPLIED && n > 0)) {
					snprintf(violation, sizeof(violation),
						 "online: op %" PRId64
						 " outcome %d present %d times",
						 op, snap[op].outcome, n);
				}
			}
			free(count);
			checks_done++;
		}
		if (lg_sleep(100) != 0) {
			break;
		}
	}
	lg_conn_free(c);
}

static void exec_ok(struct lg_conn *c, const char *sql)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(c, sql, &err), 0, "%s: %s", sql, err.message);
}

Test(ledger, every_acknowledged_outcome_matches_the_database, .timeout = 600)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_conn *admin;
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	struct lg_error err;
	cr_assert_eq(lg_conn_new(rt, &cfg, &admin, &err), 0, "%s", err.message);
	exec_ok(admin, "DROP TABLE IF EXISTS lg_ledger_ins, lg_ledger_ctr");
	/* No unique key on op: a statement applied twice must be visible as two rows. */
	exec_ok(admin, "CREATE TABLE lg_ledger_ins (op int8 NOT NULL, bad bool NOT NULL "
		       "CHECK (NOT bad))");
	exec_ok(admin, "CREATE TABLE lg_ledger_ctr (id int8 PRIMARY KEY, ops int8[] NOT NULL)");
	exec_ok(admin, "INSERT INTO lg_ledger_ctr SELECT g, '{}' FROM generate_series(1, 50) g");

	snprintf(app, sizeof(app), "lg_ledger_%d", (int)getpid());
	char dsn[512];
	snprintf(dsn, sizeof(dsn), "%s application_name=%s", lg_test_pg_dsn(), app);
	struct lg_pool_config pc = {
	    .conninfo = dsn, .min_conns = 4, .max_conns = 4, .acquire_timeout_ms = 5000};
	cr_assert_eq(lg_pool_new(rt, &pc, &pool, &err), 0, "%s", err.message);
	workers_left = WORKERS;
	for (intptr_t i = 0; i < WORKERS; i++) {
		cr_assert_eq(lg_coro_spawn(rt, worker, (void *)(i + 1), NULL), 0);
	}
	cr_assert_eq(lg_coro_spawn(rt, killer, NULL, NULL), 0);
	cr_assert_eq(lg_coro_spawn(rt, checker, NULL, NULL), 0);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_assert_str_empty(violation, "%s", violation);
	lg_pool_free(pool);

	int *count = db_counts(admin);
	cr_assert_not_null(count);
	check(count, true);
	free(count);
	cr_assert_str_empty(violation, "%s", violation);
	int tally[4] = {0};
	for (int64_t op = 1; op < next_op; op++) {
		tally[ledger[op].outcome]++;
	}
	/* The run must have exercised every class, or it proved nothing. */
	cr_assert_gt(tally[APPLIED], 100, "applied %d", tally[APPLIED]);
	cr_assert_gt(tally[NOT_APPLIED], 100, "not applied %d", tally[NOT_APPLIED]);
	cr_assert_gt(checks_done, 1, "online checks %d", checks_done);
	cr_log_info("ledger: %" PRId64 " ops: %d applied, %d not applied, %d unknown; %d online "
		    "checks",
		    next_op - 1, tally[APPLIED], tally[NOT_APPLIED], tally[UNKNOWN], checks_done);
	exec_ok(admin, "DROP TABLE lg_ledger_ins, lg_ledger_ctr");
	lg_conn_free(admin);
	lg_runtime_free(rt);
}
