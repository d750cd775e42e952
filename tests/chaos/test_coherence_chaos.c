/*
 * The coherence pipeline under chaos: a 3-process reflector cluster, a private PostgreSQL and
 * a private Redis (each test restarts them, so never the shared ones), writers and
 * read-through fillers running throughout (chaos_load.h). After each storm the writes stop,
 * the outbox must drain, and chaos_check.h must find every cached key equal to its row.
 *
 * 1. The leader is killed (SIGKILL, then restarted from its data dir) and paused (SIGSTOP
 *    longer than the election timeout, then SIGCONT) again and again.
 * 2. PostgreSQL (fast, then immediate) and Redis (TERM, then KILL: it keeps nothing, so the
 *    term key, fences and cached values are gone) are restarted.
 * 3. 100k changes in one transaction and 100k in 10k small ones: all processed, and the peak
 *    resident memory (VmHWM) of every node stays under a generous bound.
 *
 * "No write from an old term landed": a deposed leader's write would show as a mismatch in
 * the checker, and the Redis term key must equal the term every node reports at the end.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <libguard/cache_contract.h>

#include "chaos_check.h"
#include "chaos_env.h"
#include "chaos_load.h"
#include "lg_test.h"
#include "rf_harness.h"

#define WAIT_MS  60000
#define DRAIN_MS 180000
#define N_IDS    2000
#define BIG_N    100000
#define FILL_TTL "600000"

/* Peak resident memory allowed to any node in test 3; ASan's shadow and quarantine need more. */
#if defined(__SANITIZE_ADDRESS__)
#define CHAOS_HWM_LIMIT_KB (1024L * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHAOS_HWM_LIMIT_KB (1024L * 1024)
#endif
#endif
#ifndef CHAOS_HWM_LIMIT_KB
#define CHAOS_HWM_LIMIT_KB (256L * 1024)
#endif

static struct lg_test_pg pg;
static bool pg_started;
static char redis_dir[256];
static int redis_port;
static PGconn *db;
static redisContext *rc;
static struct rfh_cluster cluster; /* static: .fini reads it after a failed assert */
static struct chaos_load load;
static char replica_dir[200];
static int replica_port;

static void teardown(void)
{
	chaos_load_stop(&load, NULL);
	rfh_cleanup();
	redisFree(rc);
	rc = NULL;
	PQfinish(db);
	db = NULL;
	lg_test_private_destroy(redis_dir, replica_dir, &pg, &pg_started);
}

TestSuite(chaos, .fini = teardown);

static void sql(const char *q)
{
	PQclear(chaos_query(&db, pg.dsn, q));
}

static long long sql_int(const char *q)
{
	return chaos_query_int(&db, pg.dsn, q);
}

/* (Re)connects rc after a Redis restart. */
static void redis_ensure(void)
{
	chaos_redis_ensure(&rc, redis_port);
}

static void cli(const char *cmd, const char *arg)
{
	chaos_cli(&cluster, cmd, arg, WAIT_MS);
}

/*
 * Private PostgreSQL and Redis, the schema, public.items reflected, a 3-node cluster
 * configured (not started). Tombstones outlive the test, so that a wrong one cannot expire
 * before the check (see chaos_check.h).
 */
static void env_start_opts(bool with_replica)
{
	pg_started = true; /* a partial start leaves a temp dir to remove too */
	cr_assert(lg_test_pg_start(&pg), "private PostgreSQL");
	char postgres[300];
	snprintf(postgres, sizeof(postgres), "%s", pg.dsn);
	if (with_replica) {
		/* A streaming replica beside the primary's data dir (removed with it); the cluster
		 * gets both servers and follows whichever accepts writes. */
		chaos_replica_start(&pg, replica_dir, sizeof(replica_dir), &replica_port, postgres,
				    sizeof(postgres));
	}
	chaos_redis_start(redis_dir, sizeof(redis_dir), &redis_port);
	redis_ensure();
	json_t *extra =
	    json_pack("{ss s{sssi} si si}", "postgres", postgres, "redis", "host", "127.0.0.1",
		      "port", redis_port, "poll_interval_ms", 200, "tombstone_ttl_ms", 3600000);
	rfh_cluster_init(&cluster, 3, 3, extra);
	json_decref(extra);
	cli("setup", NULL);
	sql("SET client_min_messages = warning");
	sql("CREATE TABLE public.items (id int PRIMARY KEY, n bigint NOT NULL, note text)");
	cli("reflect", "public.items");
}

static void env_start(void)
{
	env_start_opts(false);
}

static int cluster_start(void)
{
	rfh_start_all(&cluster, 3);
	int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
	cr_assert_geq(leader, 0, "no leader");
	return leader;
}

/* Caches the current rows of the ids divisible by every (LG_CACHE_FILL, pipelined). */
static void cache_rows(int every)
{
	char q[256];
	snprintf(q, sizeof(q),
		 "SELECT id, lg_version, jsonb_build_object('v', lg_version, 'row', to_jsonb(t))"
		 " FROM public.items t WHERE id %% %d = 0",
		 every);
	PGresult *r = PQexec(db, q);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	redis_ensure();
	/* The rows were read just now: stamp the fills with Redis' clock (LG_CACHE_FILL refuses
	 * fills older than their max age, here FILL_TTL). */
	redisReply *clock = redisCommand(rc, "TIME");
	cr_assert(clock != NULL && clock->type == REDIS_REPLY_ARRAY && clock->elements == 2);
	char read_ms[32];
	snprintf(read_ms, sizeof(read_ms), "%lld",
		 atoll(clock->element[0]->str) * 1000 + atoll(clock->element[1]->str) / 1000);
	freeReplyObject(clock);
	for (int i = 0; i < PQntuples(r); i++) {
		char key[96];
		char fence[96];
		snprintf(key, sizeof(key), "%s%s", CHAOS_ROW_PREFIX, PQgetvalue(r, i, 0));
		snprintf(fence, sizeof(fence), "%s%s", CHAOS_FENCE_PREFIX, PQgetvalue(r, i, 0));
		const char *argv[] = {"EVAL",
				      lg_cache_script_source(LG_CACHE_FILL),
				      "3",
				      key,
				      fence,
				      CHAOS_TABLE_FENCE,
				      PQgetvalue(r, i, 1),
				      PQgetvalue(r, i, 2),
				      FILL_TTL,
				      read_ms,
				      FILL_TTL};
		cr_assert_eq(redisAppendCommandArgv(rc, 11, argv, NULL), REDIS_OK);
	}
	for (int i = 0; i < PQntuples(r); i++) {
		redisReply *reply = NULL;
		cr_assert_eq(redisGetReply(rc, (void **)&reply), REDIS_OK, "%s", rc->errstr);
		cr_assert(reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_STRING);
		freeReplyObject(reply);
	}
	PQclear(r);
}

/* Sums a /status counter over the running nodes (counters restart with a process). */
static long long counter_sum(const char *name)
{
	return chaos_counter_sum(&cluster, 3, name);
}

static void print_counters(const char *test)
{
	static const char *const names[] = {"changes",    "refreshed", "fenced",
					    "tombstoned", "kept",      "rejected_stale",
					    "errors",     "malformed", "batches"};
	fprintf(stderr, "%s: counters of the running nodes:", test);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		fprintf(stderr, " %s=%lld", names[i], counter_sum(names[i]));
	}
	fprintf(stderr, "\n");
}

static void stop_load(const char *test)
{
	struct chaos_load_stats t;
	chaos_load_stop(&load, &t);
	fprintf(stderr,
		"%s: load: writes=%llu write_errors=%llu fills=%llu (filled=%llu fenced=%llu"
		" kept=%llu) fill_errors=%llu evictions=%llu\n",
		test, (unsigned long long)t.writes, (unsigned long long)t.write_errors,
		(unsigned long long)t.fills, (unsigned long long)t.filled,
		(unsigned long long)t.fenced, (unsigned long long)t.kept,
		(unsigned long long)t.fill_errors, (unsigned long long)t.evictions);
	cr_assert_gt(t.writes, 100, "the writers barely wrote");
	cr_assert_gt(t.filled, 10, "the filler barely filled");
}

/*
 * After the writers stopped: one probe write (so that the leader of the current term runs a
 * batch and raises the term key), drain, then the checker and the term key. Returns the
 * number of cached rows found equal.
 */
static size_t assert_end_state(const char *test)
{
	sql("UPDATE public.items SET note = 'probe' WHERE id = (SELECT min(id) FROM public.items)");
	cr_assert(chaos_wait_drained(&db, pg.dsn, DRAIN_MS), "outbox not drained: %lld pending",
		  sql_int("SELECT count(*) FROM lifeguard.outbox"));
	uint64_t term = 0;
	int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, &term);
	cr_assert_geq(leader, 0, "no agreed leader at the end");
	rfh_sleep_ms(1000); /* a resumed ex-leader's last refused writes */
	redis_ensure();
	struct chaos_check chk;
	cr_assert(chaos_check_items(db, rc, &chk), "checker failed");
	fprintf(stderr, "%s: checked %zu cached keys: %zu rows, %zu tombstones, %zu violations\n",
		test, chk.keys, chk.rows, chk.tombstones, chk.violations);
	print_counters(test);
	cr_assert_eq(chk.violations, 0, "%zu cached keys disagree with PostgreSQL (see above)",
		     chk.violations);
	cr_assert_eq(sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 0);
	cr_assert_eq(counter_sum("malformed"), 0);
	redisReply *r = redisCommand(rc, "GET %s", CHAOS_TERM_KEY);
	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "no term key in Redis");
	/* The term key holds the fencing token the leader took through raft (not the term). */
	json_t *st = rfh_status(&cluster, (size_t)leader, 5000);
	cr_assert_not_null(st, "the leader does not answer /status");
	long long token = rfh_int(st, "counters.token");
	json_decref(st);
	fprintf(stderr,
		"%s: term key %s, cluster term %llu, leader's token %lld (node %zu leads)\n", test,
		r->str, (unsigned long long)term, token, (size_t)leader + 1);
	cr_assert_eq(strtoull(r->str, NULL, 10), (unsigned long long)token,
		     "term key %s, but the leader holds token %lld", r->str, token);
	freeReplyObject(r);
	return chk.rows;
}

/* SIGTERM every node: each must exit 0 (no leak report under ASan either). */
static void stop_cluster(void)
{
	for (size_t i = 0; i < 3; i++) {
		rfh_signal(&cluster, i, SIGTERM);
	}
	for (size_t i = 0; i < 3; i++) {
		int status = rfh_wait_exit(&cluster, i, WAIT_MS);
		cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "node %zu: wait status %d", i + 1, status);
	}
}

static void seed_rows(int n)
{
	char q[160];
	snprintf(q, sizeof(q),
		 "INSERT INTO public.items SELECT g, 0, 'seed' FROM generate_series(1, %d) g", n);
	sql(q);
}

Test(chaos, leader_killed_and_paused_during_writes)
{
	env_start();
	seed_rows(N_IDS);
	cluster_start();
	cr_assert(chaos_wait_drained(&db, pg.dsn, DRAIN_MS));
	cache_rows(2);
	uint64_t first_term = 0;
	cr_assert_geq(rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, &first_term), 0);
	cr_assert(chaos_load_start(&load, pg.dsn, redis_port, N_IDS));
	for (int round = 0; round < 6; round++) {
		int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
		cr_assert_geq(leader, 0, "round %d: no agreed leader", round);
		rfh_sleep_ms(600 + 150 * round); /* vary where in its work the leader is hit */
		if (round % 2 == 0) {
			rfh_kill(&cluster, (size_t)leader);
			rfh_sleep_ms(1500);
			rfh_start(&cluster, (size_t)leader, NULL, NULL);
		} else {
			/* Longer than the election timeout (500 ms, randomized up to 2x). */
			rfh_signal(&cluster, (size_t)leader, SIGSTOP);
			rfh_sleep_ms(2500);
			rfh_signal(&cluster, (size_t)leader, SIGCONT);
		}
	}
	uint64_t last_term = 0;
	cr_assert_geq(rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, &last_term), 0);
	cr_assert_gt(last_term, first_term);
	rfh_sleep_ms(1500); /* writes under the final leader */
	stop_load("kill/pause");
	cr_assert_gt(assert_end_state("kill/pause"), 50, "too few cached rows to judge");
	fprintf(stderr, "kill/pause: rejected_stale over the running nodes: %lld\n",
		counter_sum("rejected_stale"));
	stop_cluster();
	RFH_PASS();
}

static void pg_restart(const char *mode)
{
	cr_assert(lg_test_pg_stop(&pg, mode));
	rfh_sleep_ms(300);
	cr_assert(lg_test_pg_restart(&pg));
	PQfinish(db); /* its server is gone; sql() reconnects */
	db = NULL;
}

static void redis_restart(const char *how)
{
	cr_assert_eq(lg_test_services("redis %s '%s'", how, redis_dir), 0);
	rfh_sleep_ms(300);
	cr_assert_eq(lg_test_services("redis start '%s' %d", redis_dir, redis_port), 0);
	redisFree(rc);
	rc = NULL;
}

Test(chaos, postgres_and_redis_restarted_during_writes)
{
	env_start();
	seed_rows(N_IDS);
	cluster_start();
	cr_assert(chaos_wait_drained(&db, pg.dsn, DRAIN_MS));
	cache_rows(2);
	cr_assert(chaos_load_start(&load, pg.dsn, redis_port, N_IDS));
	rfh_sleep_ms(2000);
	pg_restart("fast");
	rfh_sleep_ms(2000);
	redis_restart("stop");
	rfh_sleep_ms(2000);
	pg_restart("immediate"); /* a crash: recovery on start */
	rfh_sleep_ms(2000);
	redis_restart("kill");
	rfh_sleep_ms(2500); /* writes and refills after the last restart */
	stop_load("restarts");
	cr_assert_gt(counter_sum("errors"), 0, "the outages went unnoticed");
	cr_assert_gt(assert_end_state("restarts"), 50, "too few cached rows to judge");
	stop_cluster();
	RFH_PASS();
}

/* Peak resident set of node i in kB (VmHWM), or -1. */
static long vm_hwm_kb(size_t i)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)cluster.nodes[i].pid);
	char *text = rfh_read_file(path);
	const char *line = text != NULL ? strstr(text, "VmHWM:") : NULL;
	long kb = line != NULL ? strtol(line + 6, NULL, 10) : -1;
	free(text);
	return kb;
}

static void assert_memory(const char *when)
{
	for (size_t i = 0; i < 3; i++) {
		long kb = vm_hwm_kb(i);
		fprintf(stderr, "burst: %s: node %zu VmHWM %ld kB (limit %ld kB)\n", when, i + 1,
			kb, CHAOS_HWM_LIMIT_KB);
		cr_assert_gt(kb, 0, "node %zu: no VmHWM", i + 1);
		cr_assert_lt(kb, CHAOS_HWM_LIMIT_KB, "node %zu: peak memory %ld kB", i + 1, kb);
	}
}

Test(chaos, hundred_thousand_changes_in_one_and_in_ten_thousand_transactions)
{
	env_start();
	/* One key in five cached before its row exists: the inserts refresh 20k keys and fence
	 * the other 80k. */
	redis_ensure();
	for (int id = 5; id <= BIG_N; id += 5) {
		cr_assert_eq(redisAppendCommand(rc, "SET %s%d {\"v\":0,\"row\":{}} PX %s",
						CHAOS_ROW_PREFIX, id, FILL_TTL),
			     REDIS_OK);
	}
	for (int id = 5; id <= BIG_N; id += 5) {
		redisReply *reply = NULL;
		cr_assert_eq(redisGetReply(rc, (void **)&reply), REDIS_OK, "%s", rc->errstr);
		freeReplyObject(reply);
	}
	cluster_start();
	assert_memory("idle");

	seed_rows(BIG_N); /* one transaction */
	cr_assert(chaos_wait_drained(&db, pg.dsn, DRAIN_MS), "one transaction: not drained");
	struct chaos_check chk;
	redis_ensure();
	cr_assert(chaos_check_items(db, rc, &chk));
	cr_assert_eq(chk.violations, 0);
	cr_assert_eq(chk.rows, BIG_N / 5, "%zu of %d cached rows refreshed", chk.rows, BIG_N / 5);
	assert_memory("after one 100k transaction");

	/* 10k transactions of 10 rows each, committed one by one inside the server (a DO block
	 * may COMMIT since PostgreSQL 11): each commit sends its own notifications. */
	char q[256];
	snprintf(q, sizeof(q),
		 "DO $$ BEGIN FOR k IN 0..%d LOOP UPDATE public.items SET n = n + 1"
		 " WHERE id > 10 * k AND id <= 10 * k + 10; COMMIT; END LOOP; END $$",
		 BIG_N / 10 - 1);
	sql(q);
	cr_assert_eq(sql_int("SELECT count(*) FROM public.items WHERE n = 1"), BIG_N);
	cr_assert(chaos_wait_drained(&db, pg.dsn, DRAIN_MS), "10k transactions: not drained");
	cr_assert(chaos_check_items(db, rc, &chk));
	fprintf(stderr, "burst: checked %zu cached keys: %zu rows, %zu violations\n", chk.keys,
		chk.rows, chk.violations);
	cr_assert_eq(chk.violations, 0);
	cr_assert_eq(chk.rows, BIG_N / 5);
	cr_assert_eq(sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 0);
	print_counters("burst");
	cr_assert_geq(counter_sum("changes"), 2 * BIG_N);
	assert_memory("after 10k transactions");
	stop_cluster();

	/* The checker itself: an older version, a tombstone over a live row and a row value of
	 * a row that does not exist are three violations. */
	redisReply *r = redisCommand(rc,
				     "MSET %s5 {\"v\":1,\"row\":{}} %s10 {\"v\":1,"
				     "\"deleted\":true} %s0 {\"v\":1,\"row\":{}}",
				     CHAOS_ROW_PREFIX, CHAOS_ROW_PREFIX, CHAOS_ROW_PREFIX);
	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
	fprintf(stderr, "burst: the checker must now report 3 violations:\n");
	cr_assert(chaos_check_items(db, rc, &chk));
	cr_assert_eq(chk.violations, 3);
	cr_assert_eq(chk.rows, BIG_N / 5 - 2);
	RFH_PASS();
}

Test(chaos, primary_failover_to_a_promoted_replica)
{
	env_start_opts(true);
	seed_rows(N_IDS);
	cluster_start();
	cr_assert(chaos_wait_drained(&db, pg.dsn, DRAIN_MS));
	cache_rows(3);
	cr_assert(chaos_load_start(&load, pg.dsn, redis_port, N_IDS));
	rfh_sleep_ms(3000);
	stop_load("failover, before");
	assert_end_state("failover, before");

	/* Writes committed but not processed yet ride the outbox across the failover. */
	sql("UPDATE public.items SET n = n + 1000 WHERE id % 3 = 0");
	/* A fast shutdown sends every WAL record to the connected replica before it ends. */
	cr_assert(lg_test_pg_stop(&pg, "fast"));
	cr_assert_eq(lg_test_services("pg promote '%s'", replica_dir), 0, "promote");
	/* From now on the promoted replica is "the" PostgreSQL of this test (teardown too). */
	struct lg_test_pg old = pg;
	snprintf(pg.dir, sizeof(pg.dir), "%s", replica_dir);
	pg.port = replica_port;
	snprintf(pg.dsn, sizeof(pg.dsn), "host=127.0.0.1 port=%d user=postgres dbname=postgres",
		 replica_port);
	replica_dir[0] = '\0';
	lg_test_services("pg stop '%s' immediate", old.dir); /* already stopped: a no-op */
	PQfinish(db);
	db = NULL;
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	while (sql_int("SELECT pg_is_in_recovery()::int") != 0) {
		cr_assert_lt(rfh_now_ms(), deadline, "the replica never left recovery");
		rfh_sleep_ms(100);
	}
	cr_assert_eq(sql_int("SELECT count(*) FROM public.items WHERE id % 3 = 0 AND n < 1000"), 0,
		     "the last writes before the failover did not reach the replica");
	cr_assert(chaos_load_start(&load, pg.dsn, redis_port, N_IDS));
	rfh_sleep_ms(3000);
	stop_load("failover, after");
	assert_end_state("failover, after");
	int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
	json_t *st = rfh_status(&cluster, (size_t)leader, 2000);
	cr_assert(json_is_true(json_object_get(json_object_get(st, "postgres"), "listening")));
	cr_assert_gt(rfh_int(st, "counters.errors") + counter_sum("errors"), 0,
		     "the failover went unnoticed");
	json_decref(st);
	stop_cluster();
	RFH_PASS();
}
