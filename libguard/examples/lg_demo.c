/*
 * libguard demo: one runtime, one pipelined connection, many coroutines.
 *
 *   lg_demo "host=127.0.0.1 port=5432 user=postgres dbname=postgres" [coroutines]
 *
 * It empties table lg_demo (created by libguard/examples/migrations), lets N coroutines insert and
 * read back rows concurrently over a single connection, shows that a failing statement only fails
 * its own caller, then runs the same query API from plain main() without a coroutine, and prints
 * what happened.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <libguard/libguard.h>

struct demo {
	struct lg_conn *conn;
	int ok;
	int failed;
	int64_t sum;
};

struct worker {
	struct demo *demo;
	int id;
};

static void demo_worker(void *arg)
{
	struct worker *w = arg;
	struct demo *d = w->demo;
	struct lg_error err;
	struct lg_param p[2] = {lg_param_int64(w->id), lg_param_text("hello from a coroutine")};
	struct lg_query_opts opts = {lg_deadline_in(10000), LG_QUERY_PREPARE};
	/* Every 100th worker inserts a duplicate key: only it must fail. */
	int64_t key = w->id % 100 == 99 ? 0 : w->id;
	p[0] = lg_param_int64(key);
	int rc = lg_conn_query(d->conn, "INSERT INTO lg_demo(id, note) VALUES ($1, $2)", p, 2,
			       &opts, NULL, &err);
	if (rc != 0) {
		d->failed++;
		if (d->failed == 1) {
			printf("  expected failure for worker %d: [%s] %s\n", w->id, err.sqlstate,
			       err.message);
		}
		return;
	}
	/* Reads marked as such share sync segments; the INSERT above had one of its own. */
	struct lg_query_opts read = {opts.deadline, LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	struct lg_result *r;
	rc = lg_conn_query(d->conn, "SELECT id * 2 AS twice FROM lg_demo WHERE id = $1", p, 1,
			   &read, &r, &err);
	int64_t v = 0;
	if (rc == 0 && lg_result_rows(r) == 1 && lg_result_int64_by_name(r, 0, "twice", &v) == 0) {
		d->ok++;
		d->sum += v;
	} else {
		d->failed++;
	}
	lg_result_free(r);
}

struct pool_demo {
	struct lg_pool *pool;
	int ok;
	int failed;
};

static void demo_pool_worker(void *arg)
{
	struct pool_demo *d = arg;
	struct lg_param p = lg_param_int64(lg_now_ms() % 1000);
	struct lg_query_opts opts = {lg_deadline_in(10000),
				     LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	for (int i = 0; i < 5; i++) {
		if (lg_pool_query(d->pool, "SELECT count(*) FROM lg_demo WHERE id < $1", &p, 1,
				  &opts, NULL, NULL) == 0) {
			d->ok++;
		} else {
			d->failed++;
		}
	}
}

/* The pool: thousands of coroutines, four connections, one transaction. */
static int demo_pool(struct lg_runtime *rt, const char *conninfo, int n)
{
	struct lg_pool_config cfg = {.conninfo = conninfo, .min_conns = 4, .max_conns = 4};
	struct pool_demo d = {0};
	struct lg_error err;
	if (lg_pool_new(rt, &cfg, &d.pool, &err) != 0) {
		fprintf(stderr, "lg_demo: pool: %s\n", err.message);
		return 1;
	}
	uint64_t start = lg_now_ms();
	for (int i = 0; i < n; i++) {
		lg_coro_spawn(rt, demo_pool_worker, &d, NULL);
	}
	lg_runtime_run(rt);
	uint64_t ms = lg_now_ms() - start;
	struct lg_pool_stats st;
	lg_pool_get_stats(d.pool, &st);
	printf("pool of %u connections, %d coroutines x 5 queries: %d ok, %d failed in %" PRIu64
	       " ms\n",
	       st.conns_open, n, d.ok, d.failed, ms);
	printf("  acquire waits: %" PRIu64 " total, mean %.1f us; statements ok %" PRIu64
	       ", failed %" PRIu64 "\n",
	       st.acquire_count,
	       st.acquire_count ? (double)st.acquire_wait_sum_us / (double)st.acquire_count : 0.0,
	       st.statements_ok, st.statements_failed);
	struct lg_tx *tx;
	int rc = lg_pool_begin(d.pool, NULL, &tx, &err);
	rc = rc ? rc : lg_tx_exec(tx, "DELETE FROM lg_demo WHERE id >= 1000", &err);
	rc = rc ? rc : lg_tx_commit(tx, &err);
	printf("transaction on a pinned connection: %s\n", rc == 0 ? "committed" : err.message);
	lg_pool_free(d.pool);
	return rc == 0 && d.failed == 0 ? 0 : 1;
}

static int demo_fail(const char *what, const struct lg_error *err)
{
	fprintf(stderr, "lg_demo: %s: %s\n", what, err->message);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: lg_demo CONNINFO [coroutines]\n");
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 2000;
	if (n < 1 || n > 1000000) {
		fprintf(stderr, "lg_demo: coroutines must be 1..1000000\n");
		return 2;
	}
	struct lg_runtime *rt;
	struct lg_error err;
	if (lg_runtime_new(NULL, NULL, &rt) != 0) {
		return 1;
	}
	struct lg_conn_config cfg = {.conninfo = argv[1], .connect_timeout_ms = 5000};
	struct demo d = {0};
	/* Called from main(): no coroutine here, the call runs the loop until it is done. */
	if (lg_conn_new(rt, &cfg, &d.conn, &err) != 0) {
		return demo_fail("connect", &err);
	}
	printf("connected (backend pid %d)\n", lg_conn_backend_pid(d.conn));
	/* The table comes from libguard/examples/migrations (lifeguard migrate up). */
	if (lg_conn_exec(d.conn, "TRUNCATE lg_demo", &err) != 0) {
		return demo_fail("empty table lg_demo (run lifeguard migrate up first)", &err);
	}
	struct worker *workers = calloc((size_t)n, sizeof(*workers));
	uint64_t start = lg_now_ms();
	for (int i = 0; i < n; i++) {
		workers[i] = (struct worker){&d, i};
		lg_coro_spawn(rt, demo_worker, &workers[i], NULL);
	}
	lg_runtime_run(rt);
	uint64_t ms = lg_now_ms() - start;
	struct lg_conn_stats st;
	lg_conn_get_stats(d.conn, &st);
	printf("%d coroutines on 1 connection: %d ok, %d failed in %" PRIu64 " ms\n", n, d.ok,
	       d.failed, ms);
	printf("  %" PRIu64 " statements in %" PRIu64 " sync segments (%.1f per segment), "
	       "%" PRIu64 " re-run after a sibling failed, %" PRIu64 " prepares\n",
	       st.statements, st.segments,
	       st.segments ? (double)st.statements / (double)st.segments : 0.0, st.reruns,
	       st.prepares);
	struct lg_result *r;
	if (lg_conn_query(d.conn, "SELECT count(*) FROM lg_demo", NULL, 0, NULL, &r, &err) != 0) {
		return demo_fail("count", &err);
	}
	int64_t rows = 0;
	lg_result_int64(r, 0, 0, &rows);
	lg_result_free(r);
	printf("rows in table: %" PRId64 " (each successful insert applied exactly once)\n", rows);
	lg_conn_free(d.conn);
	free(workers);
	int rc = demo_pool(rt, argv[1], n * 5);
	lg_runtime_free(rt);
	return rc;
}
