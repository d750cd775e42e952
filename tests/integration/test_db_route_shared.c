/*
 * Read-your-writes through a shared read in flight (docs/read-path.md): a read that started
 * before a session's write may be handed to several callers, and must never answer the
 * session's own read after that write.
 *
 * How the read in flight is held, deterministically: the table has a column of an enum type
 * whose cast to json (the one to_jsonb uses) and a gate() function both wait for a shared
 * advisory lock that the test holds in a transaction of its own. A read that calls either has
 * taken its snapshot (at the start of its statement) and then waits inside the server until
 * the test lets it go; pg_locks shows it waiting. So, while the test holds the gate:
 *   1. coroutine A starts the read (no session): it waits at the gate with v = 1 in its
 *      snapshot;
 *   2. the session writes v = 2 (lg_dbh_write: a token) and starts the same read;
 *   3. the test waits until the server shows that read waiting too (it runs on its own), then
 *      opens the gate.
 * A must see 1 (it really started before the write) and the session must see 2. A session
 * read that joined A's read would get 1.
 *
 * Two paths: lg_dbh_read (the pool's shared reads, LG_QUERY_SHARED_READ, on the primary) and
 * lg_model_find_cached on a db with the handle and the session (the cache coalesces misses of
 * one key into one read: single flight).
 *
 * The same gates show that a write's token comes with the write, with no round trip of its
 * own (a_token_rides_with_its_write, below).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/cache.h>
#include <libguard/db.h>
#include <libguard/libguard.h>
#include <libguard/model.h>

#include "lg_test.h"

static char table[64];
static char gate_type[64];
static char gate_fn[64];
static long gate_key; /* A: reads; B (gate_key + 1): the write of the token test */

#define RS_COLUMNS(X)                                                                              \
	X(rs, id, LG_INT64, LG_COL_PK)                                                             \
	X(rs, v, LG_INT64, 0)                                                                      \
	X(rs, g, LG_TEXT, LG_COL_DEFAULT)                                                          \
	X(rs, lg_version, LG_INT64, LG_COL_DEFAULT)
LG_MODEL_DECLARE(rs, RS_COLUMNS);
LG_MODEL_DEFINE(rs, "public", table, RS_COLUMNS);

struct env {
	struct lg_runtime *rt;
	struct lg_pool *primary;
	struct lg_pool *ctl; /* the gate's transaction and pg_locks */
	struct lg_dbh *h;
	struct lg_redis *redis;
	struct lg_cache *cache;
	struct lg_tx *gate[2];
	char read_sql[256];
	unsigned max_conns, max_in_flight; /* of the primary pool; 0: 4 and the default */
	void (*body)(struct env *e);
};

/* One read of row 1 in a coroutine of its own: the value it saw. */
struct reader {
	struct env *e;
	struct lg_session *session; /* NULL: none */
	bool cached;                /* lg_model_find_cached, else lg_dbh_read */
	int rc;
	int64_t v;
	char msg[LG_ERROR_MSG_SIZE];
};

static void sql_ok(struct lg_pool *p, const char *sql)
{
	struct lg_error err = {0};
	cr_assert_eq(lg_pool_exec(p, sql, &err), 0, "%s: %s", sql, err.message);
}

static void gate_close(struct env *e, int which)
{
	struct lg_error err = {0};
	cr_assert_eq(lg_pool_begin(e->ctl, NULL, &e->gate[which], &err), 0, "%s", err.message);
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%ld)", gate_key + which);
	cr_assert_eq(lg_tx_exec(e->gate[which], sql, &err), 0, "%s", err.message);
}

static void gate_open(struct env *e, int which)
{
	struct lg_error err = {0};
	cr_assert_eq(lg_tx_commit(e->gate[which], &err), 0, "%s", err.message);
	e->gate[which] = NULL;
}

/* Statements waiting at gate which now. */
static long gate_waiters(struct env *e, int which)
{
	char sql[160];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND "
		 "objid = %ld AND objsubid = 1 AND NOT granted",
		 gate_key + which);
	struct lg_result *r = NULL;
	struct lg_error err = {0};
	cr_assert_eq(lg_pool_query(e->ctl, sql, NULL, 0, NULL, &r, &err), 0, "%s", err.message);
	int64_t n = -1;
	cr_assert_eq(lg_result_int64(r, 0, 0, &n), 0);
	lg_result_free(r);
	return (long)n;
}

/* Polls every 20 ms, up to tries times, until n statements wait at gate A. */
static bool wait_waiters(struct env *e, long n, int tries)
{
	for (int i = 0; i < tries; i++) {
		if (gate_waiters(e, 0) >= n) {
			return true;
		}
		cr_assert_eq(lg_sleep(20), 0);
	}
	return false;
}

static void reader_main(void *arg)
{
	struct reader *rd = arg;
	struct env *e = rd->e;
	struct lg_error err = {0};
	if (rd->cached) {
		struct lg_db db = {.pool = e->primary, .dbh = e->h, .session = rd->session};
		struct lg_param key = lg_param_int64(1);
		struct rs row = {0};
		rd->rc = lg_model_find_cached(&db, e->cache, &rs_model, &key, NULL, &row, &err);
		rd->v = row.v;
		lg_row_clear(&rs_model, &row);
	} else {
		struct lg_result *r = NULL;
		rd->rc = lg_dbh_read(e->h, rd->session, e->read_sql, NULL, 0, NULL, &r, &err);
		if (rd->rc == 0) {
			rd->rc = lg_result_int64(r, 0, 0, &rd->v);
		}
		lg_result_free(r);
	}
	snprintf(rd->msg, sizeof(rd->msg), "%s", err.message);
}

/* The scenario of the header, the reads made by reader_main (cached or not). */
static void race(struct env *e, bool cached)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE %s SET v = 1 WHERE id = 1", table);
	sql_ok(e->primary, sql);
	gate_close(e, 0);
	struct reader a = {.e = e, .cached = cached};
	struct lg_coro *ca;
	cr_assert_eq(lg_coro_spawn(e->rt, reader_main, &a, &ca), 0);
	cr_assert(wait_waiters(e, 1, 3000), "the first read never reached the gate in 60 s");

	struct lg_session *s;
	cr_assert_eq(lg_session_new(&s), 0);
	snprintf(sql, sizeof(sql), "UPDATE %s SET v = 2 WHERE id = 1", table);
	uint64_t token = 0;
	struct lg_error err = {0};
	cr_assert_eq(lg_dbh_write(e->h, s, sql, NULL, 0, NULL, NULL, &token, &err), 0, "%s",
		     err.message);
	cr_assert_gt(token, 0, "the write has a token");
	struct reader b = {.e = e, .session = s, .cached = cached};
	struct lg_coro *cb;
	cr_assert_eq(lg_coro_spawn(e->rt, reader_main, &b, &cb), 0);
	/* The session's read has started (its coroutine ran up to its first wait as soon as
	 * this one waited). Give it up to 5 s to show up at the gate on its own: one that joined
	 * A's read never does, and then the gate opens anyway and b.v tells. Its outcome does
	 * not depend on reaching the gate: if it arrived later, it would still see the write. */
	(void)wait_waiters(e, 2, 250);
	gate_open(e, 0);
	cr_assert_eq(lg_coro_join(ca, LG_DEADLINE_NONE), 0);
	cr_assert_eq(lg_coro_join(cb, LG_DEADLINE_NONE), 0);
	cr_assert_eq(a.rc, 0, "%s", a.msg);
	cr_assert_eq(b.rc, 0, "%s", b.msg);
	cr_assert_eq(a.v, 1, "the first read started before the write, so it sees v = 1");
	cr_assert_eq(b.v, 2,
		     "the session read the row as it was before its own write: it was handed "
		     "a read that started before the write");
	lg_session_free(s);
}

static void pool_body(struct env *e)
{
	race(e, false);
	struct lg_dbh_stats st;
	lg_dbh_get_stats(e->h, &st);
	cr_assert_eq(st.token_failures, 0);
}

static void cache_body(struct env *e)
{
	race(e, true);
	struct lg_cache_stats st;
	lg_cache_get_stats(e->cache, &st);
	cr_assert_eq(st.coalesced, 0, "the session's miss joined the read in flight");
	cr_assert_geq(st.misses, 2);
}

/* lg_model_find_cached without a cache reads through the handle's. */
static void handle_cache_body(struct env *e)
{
	struct lg_db db = {.pool = e->primary, .dbh = e->h};
	struct lg_param key = lg_param_int64(1);
	struct rs row = {0};
	struct lg_find_opts o = {0};
	struct lg_error err;
	cr_assert_eq(lg_model_find_cached(&db, NULL, &rs_model, &key, &o, &row, &err), 0, "%s",
		     err.message);
	cr_assert_not(o.from_cache, "the first find misses");
	cr_assert_eq(lg_model_find_cached(&db, NULL, &rs_model, &key, &o, &row, &err), 0, "%s",
		     err.message);
	cr_assert(o.from_cache, "the second find is a hit in the handle's cache");
	cr_assert_eq(row.v, 1);
	lg_row_clear(&rs_model, &row);
	struct lg_cache_stats st;
	lg_cache_get_stats(e->cache, &st);
	cr_assert_eq(st.hits, 1);
	cr_assert_eq(st.fills, 1);
}

static void setup_schema(struct env *e)
{
	char sql[640];
	const char *ddl[] = {
	    "DROP TABLE IF EXISTS %1$s",
	    "DROP TYPE IF EXISTS %2$s CASCADE",
	    "DROP FUNCTION IF EXISTS %3$s(int8)",
	    "CREATE TYPE %2$s AS ENUM ('open')",
	    "CREATE FUNCTION %3$s(k int8) RETURNS int LANGUAGE plpgsql VOLATILE AS "
	    "$$ BEGIN PERFORM pg_advisory_xact_lock_shared(k); RETURN 1; END $$",
	    "CREATE FUNCTION %2$s_json(%2$s) RETURNS json LANGUAGE plpgsql VOLATILE AS "
	    "$$ BEGIN PERFORM %3$s(%4$ld); RETURN to_json($1::text); END $$",
	    "CREATE CAST (%2$s AS json) WITH FUNCTION %2$s_json(%2$s)",
	    "CREATE TABLE %1$s (id int8 PRIMARY KEY, v int8 NOT NULL, "
	    "g %2$s NOT NULL DEFAULT 'open', "
	    "lg_version int8 GENERATED ALWAYS AS (v * 10) STORED)",
	    "INSERT INTO %1$s (id, v) VALUES (1, 1)",
	};
	for (size_t i = 0; i < sizeof(ddl) / sizeof(ddl[0]); i++) {
		snprintf(sql, sizeof(sql), ddl[i], table, gate_type, gate_fn, gate_key);
		sql_ok(e->primary, sql);
	}
	snprintf(e->read_sql, sizeof(e->read_sql), "SELECT v, %s(%ld) FROM %s WHERE id = 1",
		 gate_fn, gate_key, table);
}

static void run_body(void *arg)
{
	struct env *e = arg;
	struct lg_error err = {0};
	unsigned conns = e->max_conns != 0 ? e->max_conns : 4;
	struct lg_pool_config pc = {.conninfo = lg_test_pg_dsn(),
				    .min_conns = conns,
				    .max_conns = conns,
				    .max_in_flight_per_conn = e->max_in_flight};
	cr_assert_eq(lg_pool_new(e->rt, &pc, &e->primary, &err), 0, "%s", err.message);
	/* The gate's transaction stays idle while the test waits (up to 60 s). */
	struct lg_pool_config cc = {.conninfo = lg_test_pg_dsn(),
				    .min_conns = 3,
				    .max_conns = 4,
				    .tx_idle_timeout_ms = 600000};
	cr_assert_eq(lg_pool_new(e->rt, &cc, &e->ctl, &err), 0, "%s", err.message);
	const char *port = getenv("LG_TEST_REDIS_PORT");
	cr_assert_not_null(port, "run through scripts/test (LG_TEST_REDIS_PORT)");
	struct lg_redis_config rc = {.host = "127.0.0.1", .port = atoi(port)};
	cr_assert_eq(lg_redis_new(e->rt, &rc, &e->redis, &err), 0, "%s", err.message);
	struct lg_cache_config kc = {.pool = e->primary, .redis = e->redis};
	cr_assert_eq(lg_cache_new(&kc, &e->cache, &err), 0, "%s", err.message);
	struct lg_cache_policy pol = {.ttl_ms = 60000};
	cr_assert_eq(lg_cache_policy_set(e->cache, &rs_model, &pol, &err), 0, "%s", err.message);
	setup_schema(e);
	struct lg_dbh_config hc = {.primary = e->primary, .cache = e->cache};
	cr_assert_eq(lg_dbh_new(e->rt, &hc, &e->h, &err), 0, "%s", err.message);
	e->body(e);
	lg_dbh_free(e->h);
	char sql[160];
	snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
	sql_ok(e->primary, sql);
	snprintf(sql, sizeof(sql), "DROP TYPE %s CASCADE", gate_type);
	sql_ok(e->primary, sql);
	snprintf(sql, sizeof(sql), "DROP FUNCTION %s(int8)", gate_fn);
	sql_ok(e->primary, sql);
	lg_cache_free(e->cache);
	lg_redis_free(e->redis);
	lg_pool_free(e->ctl);
	lg_pool_free(e->primary);
}

static void run(const char *name, struct env *e)
{
	int pid = (int)getpid();
	snprintf(table, sizeof(table), "rs_%s_%d", name, pid);
	snprintf(gate_type, sizeof(gate_type), "rs_gate_%s_%d", name, pid);
	snprintf(gate_fn, sizeof(gate_fn), "rs_gate_fn_%s_%d", name, pid);
	gate_key = 1200000000L + 2L * pid;
	cr_assert_eq(lg_runtime_new(NULL, NULL, &e->rt), 0);
	struct lg_coro *c;
	cr_assert_eq(lg_coro_spawn(e->rt, run_body, e, &c), 0);
	cr_assert_eq(lg_coro_join(c, LG_DEADLINE_NONE), 0);
	lg_runtime_free(e->rt);
}

Test(db_route_shared, a_session_read_never_joins_a_pool_read_started_before_its_write,
     .timeout = 240)
{
	struct env e = {.body = pool_body};
	run("pool", &e);
}

Test(db_route_shared, a_session_find_never_joins_a_cache_miss_started_before_its_write,
     .timeout = 240)
{
	struct env e = {.body = cache_body};
	run("cache", &e);
}

/*
 * The token comes with its write, not after it: on a pool of one connection taking one
 * statement at a time, a read that queued for the connection while the write ran gets it
 * next, and it waits at gate A. A token read sent as a statement of its own after the write
 * would queue behind that read until the gate opens; sent behind the write in the same flush,
 * it is answered first, and lg_dbh_write returns while the gate is still closed.
 */
struct writer {
	struct env *e;
	struct lg_session *s;
	uint64_t token;
	int rc;
	bool done;
	char msg[LG_ERROR_MSG_SIZE];
};

static void writer_main(void *arg)
{
	struct writer *w = arg;
	char sql[192];
	snprintf(sql, sizeof(sql), "UPDATE %s SET v = 5 WHERE id = 1 AND %s(%ld) = 1", table,
		 gate_fn, gate_key + 1);
	struct lg_error err = {0};
	w->rc = lg_dbh_write(w->e->h, w->s, sql, NULL, 0, NULL, NULL, &w->token, &err);
	snprintf(w->msg, sizeof(w->msg), "%s", err.message);
	w->done = true;
}

static void token_body(struct env *e)
{
	gate_close(e, 0);
	gate_close(e, 1);
	struct writer w = {.e = e};
	cr_assert_eq(lg_session_new(&w.s), 0);
	struct lg_coro *cw;
	cr_assert_eq(lg_coro_spawn(e->rt, writer_main, &w, &cw), 0);
	bool at_b = false;
	for (int i = 0; i < 3000 && !at_b; i++) {
		at_b = gate_waiters(e, 1) >= 1;
		cr_assert_eq(lg_sleep(20), 0);
	}
	cr_assert(at_b, "the write never reached gate B in 60 s");
	/* The pool's only slot is the write's: the read queues for it. */
	struct reader r = {.e = e};
	struct lg_coro *cr;
	cr_assert_eq(lg_coro_spawn(e->rt, reader_main, &r, &cr), 0);
	struct lg_pool_stats ps = {0};
	for (int i = 0; i < 12000 && ps.waiters == 0; i++) {
		cr_assert_eq(lg_sleep(5), 0);
		lg_pool_get_stats(e->primary, &ps);
	}
	cr_assert_eq(ps.waiters, 1, "the read did not queue for the pool's only slot in 60 s");
	gate_open(e, 1);
	cr_assert(wait_waiters(e, 1, 3000), "the read never reached gate A in 60 s");
	for (int i = 0; i < 3000 && !w.done; i++) {
		cr_assert_eq(lg_sleep(20), 0);
	}
	bool before = w.done;
	gate_open(e, 0);
	cr_assert_eq(lg_coro_join(cw, LG_DEADLINE_NONE), 0);
	cr_assert_eq(lg_coro_join(cr, LG_DEADLINE_NONE), 0);
	cr_assert_eq(w.rc, 0, "%s", w.msg);
	cr_assert(before, "the write's token waited behind a read queued after the write: it "
			  "took a round trip of its own");
	cr_assert_gt(w.token, 0,
		     "the write has no token: its token read queued behind a read sent after the "
		     "write and gave up (a round trip of its own)");
	cr_assert_eq(lg_session_token(w.s), w.token);
	cr_assert_eq(r.rc, 0, "%s", r.msg);
	cr_assert_eq(r.v, 5);
	lg_session_free(w.s);
}

Test(db_route_shared, a_token_rides_with_its_write, .timeout = 240)
{
	struct env e = {.max_conns = 1, .max_in_flight = 1, .body = token_body};
	run("token", &e);
}

Test(db_route_shared, a_find_without_a_cache_uses_the_handles_cache, .timeout = 240)
{
	struct env e = {.body = handle_cache_body};
	run("hcache", &e);
}
