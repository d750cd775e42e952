/*
 * Connection lifecycle against real servers: connect failures and deadlines, statement
 * deadlines with server-side cancel, a backend terminated or a server stopped mid-query,
 * and the API used from plain code without coroutines.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>

#include "lg_test.h"
#include "lg_test_loop.h"

static struct lg_conn *connect_ok(struct lg_runtime *rt, const char *dsn)
{
	struct lg_conn *c;
	struct lg_error err;
	struct lg_conn_config cfg = {.conninfo = dsn, .connect_timeout_ms = 10000};
	int rc = lg_conn_new(rt, &cfg, &c, &err);
	cr_assert_eq(rc, 0, "connect %s: %s", dsn, err.message);
	return c;
}

Test(conn, refused_port_gives_clear_error)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	char dsn[128];
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=postgres", lg_test_free_port());
	struct lg_conn *c = NULL;
	struct lg_error err;
	struct lg_conn_config cfg = {.conninfo = dsn, .connect_timeout_ms = 5000};
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, &err), LG_ECONNECT);
	cr_assert_null(c);
	cr_assert_not_null(strstr(err.message, "refused"), "message: %s", err.message);
	cr_assert_not_null(strstr(err.message, "127.0.0.1"), "message: %s", err.message);
	runtime_free_checked(rt);
}

Test(conn, blackholed_server_hits_connect_deadline)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	int port;
	int fd = lg_test_blackhole_listen(&port);
	cr_assert_geq(fd, 0);
	char dsn[128];
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=postgres", port);
	struct lg_conn *c = NULL;
	struct lg_error err;
	struct lg_conn_config cfg = {.conninfo = dsn, .connect_timeout_ms = 300};
	uint64_t start = lg_now_ms();
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, &err), LG_ETIMEDOUT, "%s", err.message);
	cr_assert_geq(lg_now_ms() - start, 300);
	cr_assert_not_null(strstr(err.message, "300 ms"), "message: %s", err.message);
	close(fd);
	runtime_free_checked(rt);
}

Test(conn, names_resolve_without_blocking_and_bad_conninfo_is_rejected)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_error err;
	struct lg_conn *c = NULL;
	struct lg_conn_config bad = {.conninfo = "host=127.0.0.1 port= 'unterminated"};
	cr_assert_eq(lg_conn_new(rt, &bad, &c, &err), LG_EINVAL);
	struct lg_conn_config nx = {.conninfo = "host=no-such-host.invalid user=postgres"};
	cr_assert_eq(lg_conn_new(rt, &nx, &c, &err), LG_ERESOLVE, "%s", err.message);
	/* "localhost" goes through uv_getaddrinfo and then connects. */
	char dsn[256];
	snprintf(dsn, sizeof(dsn), "%s host=localhost", lg_test_pg_dsn());
	c = connect_ok(rt, dsn);
	cr_assert_eq(lg_conn_exec(c, "SELECT 1", &err), 0, "%s", err.message);
	lg_conn_free(c);
	runtime_free_checked(rt);
}

Test(conn, slow_query_past_deadline_is_canceled_and_connection_survives)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_conn *c = connect_ok(rt, lg_test_pg_dsn());
	struct lg_error err;
	struct lg_query_opts opts = {lg_deadline_in(200), 0};
	/* An hour: if the cancel did not reach the server, the next query on this connection
	 * would wait behind it and the test would run into meson's timeout. */
	int rc = lg_conn_query(c, "SELECT pg_sleep(3600)", NULL, 0, &opts, NULL, &err);
	/* Sent, then the deadline passed: the caller cannot know what it did. */
	cr_assert_eq(rc, LG_EUNKNOWN, "rc %d %s", rc, err.message);
	cr_assert(lg_error_outcome_unknown(rc));
	/* The server-side statement was canceled: the connection answers the next query. */
	struct lg_result *r;
	cr_assert_eq(lg_conn_query(c, "SELECT 42", NULL, 0, NULL, &r, &err), 0, "%s", err.message);
	int64_t v;
	cr_assert_eq(lg_result_int64(r, 0, 0, &v), 0);
	cr_assert_eq(v, 42);
	lg_result_free(r);
	struct lg_conn_stats st;
	lg_conn_get_stats(c, &st);
	cr_assert_eq(st.cancels, 1);
	lg_conn_free(c);
	runtime_free_checked(rt);
}

struct victim {
	struct lg_conn *conn;
	int rc;
	struct lg_error err;
};

static void victim_sleep(void *arg)
{
	struct victim *v = arg;
	v->rc = lg_conn_query(v->conn, "SELECT pg_sleep(30)", NULL, 0, NULL, NULL, &v->err);
}

Test(conn, terminated_backend_fails_in_flight_statement_clearly)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct victim v = {.conn = connect_ok(rt, lg_test_pg_dsn()), .rc = -1};
	struct lg_conn *killer = connect_ok(rt, lg_test_pg_dsn());
	struct lg_coro *co;
	cr_assert_eq(lg_coro_spawn(rt, victim_sleep, &v, &co), 0);
	struct lg_error err;
	/* Wait until the sleep is running on the server, then terminate that backend. */
	struct lg_param pid = lg_param_int32(lg_conn_backend_pid(v.conn));
	for (int i = 0; i < 100; i++) {
		struct lg_result *r;
		cr_assert_eq(lg_conn_query(killer,
					   "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 "
					   "AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
					   &pid, 1, NULL, &r, &err),
			     0, "%s", err.message);
		int64_t n = 0;
		lg_result_int64(r, 0, 0, &n);
		lg_result_free(r);
		if (n == 1) {
			break;
		}
		usleep(20000);
	}
	cr_assert_eq(
	    lg_conn_query(killer, "SELECT pg_terminate_backend($1)", &pid, 1, NULL, NULL, &err), 0,
	    "%s", err.message);
	cr_assert_eq(lg_coro_join(co, lg_deadline_in(20000)), 0);
	cr_assert_eq(v.rc, LG_ECONNLOST, "rc %d: %s", v.rc, v.err.message);
	cr_assert_not_null(strstr(v.err.message, "terminating connection"), "%s", v.err.message);
	cr_assert(!lg_conn_ok(v.conn));
	cr_assert_eq(lg_conn_exec(v.conn, "SELECT 1", &err), LG_ECONNLOST);
	lg_conn_free(v.conn);
	lg_conn_free(killer);
	runtime_free_checked(rt);
}

Test(conn, server_stopped_mid_query_then_restarted)
{
	struct lg_test_pg pg;
	cr_assert(lg_test_pg_start(&pg), "private PostgreSQL did not start");
	struct lg_runtime *rt = runtime_on_own_loop();
	struct victim v = {.conn = connect_ok(rt, pg.dsn), .rc = -1};
	struct lg_coro *co;
	cr_assert_eq(lg_coro_spawn(rt, victim_sleep, &v, &co), 0);
	cr_assert_eq(lg_coro_join(co, lg_deadline_in(1)), LG_ETIMEDOUT); /* let it send */
	cr_assert(lg_test_pg_stop(&pg, "fast"));
	cr_assert_eq(lg_coro_join(co, lg_deadline_in(20000)), 0);
	cr_assert_eq(v.rc, LG_ECONNLOST, "rc %d: %s", v.rc, v.err.message);
	lg_conn_free(v.conn);

	struct lg_error err;
	struct lg_conn *c = NULL;
	struct lg_conn_config cfg = {.conninfo = pg.dsn, .connect_timeout_ms = 2000};
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, &err), LG_ECONNECT, "%s", err.message);
	cr_assert(lg_test_pg_restart(&pg));
	c = connect_ok(rt, pg.dsn);
	cr_assert_eq(lg_conn_exec(c, "SELECT 1", &err), 0, "%s", err.message);
	lg_conn_free(c);
	runtime_free_checked(rt);
	lg_test_pg_destroy(&pg);
}

Test(conn, plain_main_without_coroutines)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	cr_assert_null(lg_coro_self());
	struct lg_conn *c = connect_ok(rt, lg_test_pg_dsn());
	struct lg_error err;
	struct lg_result *r;
	struct lg_param p[2] = {lg_param_text("abc"), lg_param_int32(7)};
	cr_assert_eq(
	    lg_conn_query(c, "SELECT repeat($1, $2) AS s, $2 + 1 AS n", p, 2, NULL, &r, &err), 0,
	    "%s", err.message);
	const char *s;
	size_t len;
	cr_assert_eq(lg_result_text_by_name(r, 0, "s", &s, &len), 0);
	cr_assert_eq(len, 21);
	int64_t n;
	cr_assert_eq(lg_result_int64_by_name(r, 0, "n", &n), 0);
	cr_assert_eq(n, 8);
	cr_assert_eq(lg_result_int64_by_name(r, 0, "missing", &n), LG_ENOTFOUND);
	lg_result_free(r);
	cr_assert_null(lg_coro_self());
	lg_conn_free(c);
	runtime_free_checked(rt);
}

Test(conn, close_with_statements_in_flight_cancels_them)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct victim v = {.conn = connect_ok(rt, lg_test_pg_dsn()), .rc = -1};
	struct lg_coro *co;
	cr_assert_eq(lg_coro_spawn(rt, victim_sleep, &v, &co), 0);
	cr_assert_eq(lg_coro_join(co, lg_deadline_in(50)), LG_ETIMEDOUT);
	lg_conn_free(v.conn);
	cr_assert_eq(lg_coro_join(co, lg_deadline_in(5000)), 0);
	/* It was in flight when the connection closed: outcome unknown, not "canceled". */
	cr_assert_eq(v.rc, LG_EUNKNOWN, "rc %d: %s", v.rc, v.err.message);
	runtime_free_checked(rt);
}
