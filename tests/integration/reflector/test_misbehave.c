/*
 * The zero-stale guarantee when the world misbehaves (docs/data-contract.md, "Fencing token"
 * and "Things that go back in time"): a cluster re-created on a Redis that holds a higher
 * token, Redis refusing writes (NOPERM, MISCONF), Redis restarted from an older snapshot, a
 * version sequence set back. Real PostgreSQL, Redis and reflector processes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "coh_env.h"

#define KEY1 "lifeguard:model:public.items:1"

TestSuite(misbehave, .fini = coh_env_teardown);

/* The leader's /status, once it answers. */
static json_t *leader_status(void)
{
	json_t *st = rfh_status(&coh.cluster, (size_t)coh_leader(), 5000);
	cr_assert_not_null(st);
	return st;
}

/* Waits until key holds the current value of items row id. */
static void wait_current(const char *key, int id)
{
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	while (!coh_cached_current(key, id)) {
		char *v = coh_rget(key);
		cr_assert_lt(rfh_now_ms(), deadline, "%s never refreshed: holds %s", key,
			     v != NULL ? v : "(nil)");
		free(v);
		rfh_sleep_ms(50);
	}
}

/* Row 1 cached with an older value, so that the next write refreshes it. */
static void cache_row1_old(void)
{
	coh_sql("INSERT INTO items VALUES (1, 'a', 0) ON CONFLICT (id) DO NOTHING");
	coh_wait_drained();
	coh_rset(KEY1, "{\"v\":0,\"row\":{}}");
}

Test(misbehave, a_cluster_recreated_on_a_redis_holding_a_higher_token_keeps_refreshing)
{
	coh_env_start(NULL, false);
	/* What a cluster of an earlier life left behind: a token far above the raft terms of
	 * a cluster whose data dirs are fresh. */
	coh_rset("lifeguard:reflector:term", "1000");
	redisReply *r = coh_redis("PERSIST lifeguard:reflector:term");
	freeReplyObject(r);
	rfh_start_all(&coh.cluster, 3);
	coh_leader();
	cache_row1_old();
	coh_sql("UPDATE items SET name = 'b' WHERE id = 1");
	coh_wait_drained();
	wait_current(KEY1, 1);
	json_t *st = leader_status();
	cr_assert_gt(rfh_int(st, "counters.token"), 1000, "token below what Redis held");
	cr_assert_eq(rfh_int(st, "counters.malformed"), 0);
	json_decref(st);
	char *t = coh_rget("lifeguard:reflector:term");
	cr_assert_gt(atoll(t), 1000);
	free(t);

	/* A new leader of the same cluster takes a token above the previous one: kill the
	 * leader, write again, and the change still lands. */
	int old = coh_leader();
	st = rfh_status(&coh.cluster, (size_t)old, 5000);
	long long first = rfh_int(st, "counters.token");
	json_decref(st);
	rfh_kill(&coh.cluster, (size_t)old);
	coh_rset(KEY1, "{\"v\":0,\"row\":{}}");
	coh_sql("UPDATE items SET name = 'c' WHERE id = 1");
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	int leader;
	while ((leader = rfh_wait_agreed_leader(&coh.cluster, 3, COH_WAIT_MS, NULL)) == old) {
		cr_assert_lt(rfh_now_ms(), deadline);
	}
	coh_wait_drained();
	wait_current(KEY1, 1);
	st = rfh_status(&coh.cluster, (size_t)leader, 5000);
	cr_assert_gt(rfh_int(st, "counters.token"), first);
	json_decref(st);
	RFH_PASS();
}

/* Polls the leader's /readyz until it answers code; returns the body (Owned). */
static char *wait_readyz(int code)
{
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	for (;;) {
		char *body = NULL;
		int got = rfh_http(&coh.cluster, (size_t)coh_leader(), "GET", "/readyz", NULL, NULL,
				   &body, 5000);
		if (got == code) {
			return body;
		}
		free(body);
		cr_assert_lt(rfh_now_ms(), deadline, "/readyz never answered %d (last %d)", code,
			     got);
		rfh_sleep_ms(100);
	}
}

/* The leader's counter at path. */
static long long leader_counter(const char *path)
{
	json_t *st = leader_status();
	long long n = rfh_int(st, path);
	json_decref(st);
	return n;
}

/* Waits until the leader has failed a batch since it counted before failures, or the outbox
 * is empty (code that dead-letters refused changes). */
static void wait_refused(long long before)
{
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	while (leader_counter("counters.errors") <= before &&
	       coh_sql_int("SELECT count(*) FROM lifeguard.outbox") != 0) {
		cr_assert_lt(rfh_now_ms(), deadline, "the leader neither failed nor went on");
		rfh_sleep_ms(100);
	}
}

/* The test's own Redis user, so that it keeps every permission the reflector loses. */
static void redis_admin(void)
{
	redisReply *r = coh_redis("ACL SETUSER admin on nopass ~* &* +@all");
	freeReplyObject(r);
	r = coh_redis("AUTH admin x");
	cr_assert(r->type == REDIS_REPLY_STATUS, "%s", r->str);
	freeReplyObject(r);
}

/* ACL SETUSER default with one or two rules (b may be NULL). */
static void redis_acl(const char *a, const char *b)
{
	redisReply *r = b != NULL ? coh_redis("ACL SETUSER default %s %s", a, b)
				  : coh_redis("ACL SETUSER default %s", a);
	cr_assert(r->type == REDIS_REPLY_STATUS, "%s", r->str);
	freeReplyObject(r);
}

Test(misbehave, redis_refusing_writes_loses_nothing)
{
	coh_env_start(NULL, true);
	cache_row1_old();
	/* NOPERM: the reflector's Redis user (default) may touch its own keys only for a while:
	 * the term claim works, every row key's script is refused. */
	redis_admin();
	long long errors = leader_counter("counters.errors");
	redis_acl("resetkeys", "~lifeguard:reflector:*");
	coh_sql("UPDATE items SET name = 'b' WHERE id = 1");
	wait_refused(errors);
	redis_acl("~*", NULL);
	coh_wait_drained();
	cr_assert_eq(coh_sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 0,
		     "a change refused by Redis was dead-lettered");
	wait_current(KEY1, 1);

	/* MISCONF: a background save that fails (its target is a directory) makes Redis refuse
	 * every write while stop-writes-on-bgsave-error is on and a save point is set. */
	errors = leader_counter("counters.errors");
	char parent[400];
	char blocker[420];
	snprintf(parent, sizeof(parent), "%s/dump.rdb", coh.redis_dir);
	snprintf(blocker, sizeof(blocker), "%s/keep", parent);
	cr_assert_eq(mkdir(parent, 0700), 0);
	cr_assert_eq(mkdir(blocker, 0700), 0);
	redisReply *r = coh_redis("CONFIG SET stop-writes-on-bgsave-error yes");
	freeReplyObject(r);
	r = coh_redis("CONFIG SET save %s", "3600 1");
	freeReplyObject(r);
	r = coh_redis("BGSAVE");
	freeReplyObject(r);
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	for (;;) {
		r = coh_redis("SET lifeguard:test:probe 1");
		bool refused = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MISCONF", 7) == 0;
		freeReplyObject(r);
		if (refused) {
			break;
		}
		cr_assert_lt(rfh_now_ms(), deadline, "Redis never refused writes");
		rfh_sleep_ms(50);
	}
	coh_sql("UPDATE items SET name = 'c' WHERE id = 1");
	wait_refused(errors);
	cr_assert_eq(rmdir(blocker), 0);
	cr_assert_eq(rmdir(parent), 0);
	r = coh_redis("BGSAVE");
	freeReplyObject(r);
	coh_wait_drained();
	cr_assert_eq(coh_sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 0,
		     "a change refused by Redis was dead-lettered");
	wait_current(KEY1, 1);
	cr_assert_geq(leader_counter("counters.redis_errors"), 2);
	RFH_PASS();
}

Test(misbehave, a_leader_that_cannot_make_progress_says_so)
{
	coh_env_start(NULL, true);
	cache_row1_old();
	redis_admin();
	redis_acl("-@scripting", NULL);
	coh_sql("UPDATE items SET name = 'b' WHERE id = 1");
	/* /readyz turns 503 and names the reason; /status and /metrics show the stall and the
	 * age of the oldest pending change. */
	char *body = wait_readyz(503);
	cr_assert_not_null(strstr(body, "progress"), "%s", body);
	cr_assert_not_null(strstr(body, "NOPERM"), "%s", body);
	free(body);
	json_t *st = leader_status();
	cr_assert(json_is_true(json_object_get(json_object_get(st, "counters"), "stalled")));
	cr_assert_geq(rfh_int(st, "counters.stalls"), 1);
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	while (rfh_int(st, "outbox.pending") == 0) { /* the sampler's next round */
		cr_assert_lt(rfh_now_ms(), deadline, "the pending change never showed");
		json_decref(st);
		rfh_sleep_ms(100);
		st = leader_status();
	}
	json_t *ob = json_object_get(st, "outbox");
	cr_assert(json_is_real(json_object_get(ob, "oldest_age_s")));
	cr_assert(json_is_false(json_object_get(ob, "stale")));
	json_decref(st);
	char *metrics = NULL;
	cr_assert_eq(rfh_http(&coh.cluster, (size_t)coh_leader(), "GET", "/metrics", NULL, NULL,
			      &metrics, 5000),
		     200);
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_stalled 1\n"), "%s", metrics);
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_stalls_total "));
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_outbox_oldest_age_seconds "));
	free(metrics);
	/* Redis accepts the scripts again: progress, /readyz 200. */
	redis_acl("+@all", NULL);
	coh_wait_drained();
	wait_current(KEY1, 1);
	free(wait_readyz(200));

	/* A node that no longer leads keeps its last outbox sample, and shows it as stale. */
	int old = coh_leader();
	rfh_signal(&coh.cluster, (size_t)old, SIGSTOP);
	int leader;
	deadline = rfh_now_ms() + COH_WAIT_MS;
	do {
		cr_assert_lt(rfh_now_ms(), deadline, "no new leader");
		rfh_sleep_ms(100);
		leader = -1;
		for (size_t i = 0; i < 3 && leader < 0; i++) {
			char *b = NULL;
			if ((int)i != old && rfh_http(&coh.cluster, i, "GET", "/leader", NULL, NULL,
						      &b, 2000) == 200) {
				leader = (int)i;
			}
			free(b);
		}
	} while (leader < 0);
	rfh_signal(&coh.cluster, (size_t)old, SIGCONT);
	cr_assert_neq(coh_leader(), old);
	st = rfh_status(&coh.cluster, (size_t)old, 5000);
	cr_assert_not_null(st);
	ob = json_object_get(st, "outbox");
	cr_assert(json_is_object(ob), "the old leader's sample is gone");
	cr_assert(json_is_true(json_object_get(ob, "stale")), "a stale sample shown as fresh");
	json_decref(st);
	RFH_PASS();
}

Test(misbehave, redis_restarted_from_an_older_snapshot_serves_no_old_row)
{
	coh_env_start(NULL, true);
	cache_row1_old();
	coh_sql("UPDATE items SET name = 'b' WHERE id = 1");
	coh_wait_drained();
	wait_current(KEY1, 1);
	char *old = coh_rget(KEY1);
	/* The snapshot holds name 'b'; the row moves on to 'c' and Redis follows. */
	coh_rset("lifeguard:test:marker", "snapshot");
	redisReply *r = coh_redis("SAVE");
	cr_assert(r->type == REDIS_REPLY_STATUS, "%s", r->str);
	freeReplyObject(r);
	coh_rset("lifeguard:test:marker", "later");
	coh_sql("UPDATE items SET name = 'c' WHERE id = 1");
	coh_wait_drained();
	wait_current(KEY1, 1);
	/* Redis dies and comes back from the older snapshot: it holds 'b' again (until the
	 * leader notices). */
	coh_redis_restart();
	char *now = coh_rget("lifeguard:test:marker");
	cr_assert(now != NULL && strcmp(now, "snapshot") == 0, "snapshot not restored: %s",
		  now != NULL ? now : "(nil)");
	free(now);
	/* The leader notices the new run id and invalidates: the old row disappears (a reader
	 * then refills from PostgreSQL) without any write to the row. */
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	for (;;) {
		now = coh_rget(KEY1);
		bool gone = now == NULL || strcmp(now, old) != 0;
		free(now);
		if (gone) {
			break;
		}
		cr_assert_lt(rfh_now_ms(), deadline, "the snapshot's old row is still served");
		rfh_sleep_ms(50);
	}
	free(old);
	json_t *st = leader_status();
	cr_assert_geq(rfh_int(st, "counters.redis_restarts"), 1);
	cr_assert_geq(rfh_int(st, "counters.invalidated"), 1);
	json_decref(st);
	/* And changes flow again. */
	coh_rset(KEY1, "{\"v\":0,\"row\":{}}");
	coh_sql("UPDATE items SET name = 'd' WHERE id = 1");
	coh_wait_drained();
	wait_current(KEY1, 1);
	RFH_PASS();
}

Test(misbehave, a_version_sequence_set_back_is_raised_and_keeps_no_phantom)
{
	coh_env_start(NULL, true);
	coh_sql("INSERT INTO items VALUES (2, 'x', 0)");
	cache_row1_old();
	coh_sql("UPDATE items SET name = 'b', n = n + 1");
	coh_sql("UPDATE items SET n = n + 1");
	coh_wait_drained();
	wait_current(KEY1, 1);
	coh_rset("lifeguard:model:public.items:2", "{\"v\":0,\"row\":{}}");
	coh_sql("UPDATE items SET n = n + 1 WHERE id = 2");
	coh_wait_drained();
	wait_current("lifeguard:model:public.items:2", 2);
	long long high = coh_sql_int("SELECT max(lg_version) FROM items");
	/* A restore, or a failover that lost the last commits: the sequence goes back, and
	 * Redis holds values newer than anything the database will write for a while. */
	coh_sql("SELECT setval('lifeguard.version_seq', 1)");
	coh_sql("UPDATE items SET name = 'after' WHERE id = 1");
	coh_wait_drained();
	/* Detected and raised past what Redis has seen ... */
	cr_assert_gt(coh_sql_int("SELECT last_value FROM lifeguard.version_seq"), high);
	json_t *st = leader_status();
	cr_assert_geq(rfh_int(st, "counters.sequence_raises"), 1);
	json_decref(st);
	/* ... and no phantom kept: row 1's key does not hold the pre-set-back value. */
	char *v = coh_rget(KEY1);
	cr_assert(v == NULL || coh_cached_current(KEY1, 1), "phantom kept: %s", v);
	free(v);
	/* Row 2 was not written after the set-back, but its cached value carries a version
	 * above the sequence's old value: it may be a phantom, and it is gone. */
	cr_assert_null(coh_rget("lifeguard:model:public.items:2"));
	/* Later writes are newer than anything Redis holds and are refreshed as usual. */
	coh_rset(KEY1, "{\"v\":0,\"row\":{}}");
	coh_sql("UPDATE items SET name = 'later' WHERE id = 1");
	coh_wait_drained();
	wait_current(KEY1, 1);
	RFH_PASS();
}

/* Runs `lifeguard-reflector audit` with node 0's config and extra arguments; returns the exit
 * status, output in out. */
static int audit_cli(const char *a1, const char *a2, const char *a3, const char *a4, char *out,
		     size_t cap)
{
	const char *argv[] = {rfh_bin(), "audit", "--config", coh.cluster.nodes[0].config, a1, a2,
			      a3,        a4,      NULL};
	int st = rfh_run(argv, NULL, out, cap, COH_WAIT_MS);
	cr_assert(st != -1 && WIFEXITED(st), "audit did not exit: %d: %s", st, out);
	return WEXITSTATUS(st);
}

Test(misbehave, the_audit_finds_a_planted_stale_key)
{
	json_t *extra = json_pack("{si}", "audit_keys_per_s", 1000);
	coh_env_start(extra, true);
	json_decref(extra);
	coh_sql("INSERT INTO items SELECT g, 'x', 0 FROM generate_series(1, 3) g");
	coh_sql("UPDATE items SET n = n + 1");
	coh_wait_drained();
	for (int id = 1; id <= 3; id++) {
		char key[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", id);
		char *v = coh_items_value(id);
		coh_rset(key, v);
		free(v);
	}
	char out[8192];
	int st = audit_cli(NULL, NULL, NULL, NULL, out, sizeof(out));
	cr_assert_eq(st, 0, "a fresh cache audited as stale: %s", out);
	cr_assert_not_null(strstr(out, "checked 3 cached keys"), "%s", out);
	cr_assert_not_null(strstr(out, ": 0 stale"), "%s", out);

	/* A value older than its row, whose change went through long ago: stale. */
	coh_rset(KEY1, "{\"v\":1,\"row\":{\"id\":1,\"name\":\"old\",\"n\":0,\"lg_version\":1}}");
	st = audit_cli(NULL, NULL, NULL, NULL, out, sizeof(out));
	cr_assert_eq(st, 1, "status %d: %s", st, out);
	cr_assert_not_null(strstr(out, "stale: " KEY1), "%s", out);
	cr_assert_not_null(strstr(out, ": 1 stale"), "%s", out);
	/* One table, a sample of one key at a time. */
	st = audit_cli("--table", "public.items", "--sample", "10", out, sizeof(out));
	cr_assert_eq(st, 1, "status %d: %s", st, out);
	/* Same version, other content: stale too. */
	char *v = coh_items_value(2);
	char *name = strstr(v, "\"name\": \"x\"");
	cr_assert_not_null(name, "%s", v);
	memcpy(name, "\"name\": \"y\"", 11);
	coh_rset("lifeguard:model:public.items:2", v);
	free(v);
	st = audit_cli("--sample", "100", NULL, NULL, out, sizeof(out));
	cr_assert_eq(st, 1, "status %d: %s", st, out);
	cr_assert_not_null(strstr(out, ": 2 stale"), "%s", out);
	/* Bad usage. */
	st = audit_cli("--sample", "0", NULL, NULL, out, sizeof(out));
	cr_assert_eq(st, 2, "status %d: %s", st, out);

	/* The leader's own sampling finds them too, and says for how long. */
	int64_t deadline = rfh_now_ms() + COH_WAIT_MS;
	for (;;) {
		json_t *s = leader_status();
		bool found = rfh_int(s, "counters.audit_checked") > 0 &&
			     rfh_int(s, "counters.audit_stale") >= 2 &&
			     json_real_value(json_object_get(json_object_get(s, "counters"),
							     "audit_oldest_stale_s")) > 0;
		json_decref(s);
		if (found) {
			break;
		}
		cr_assert_lt(rfh_now_ms(), deadline, "the leader's audit found nothing");
		rfh_sleep_ms(100);
	}
	char *metrics = NULL;
	cr_assert_eq(rfh_http(&coh.cluster, (size_t)coh_leader(), "GET", "/metrics", NULL, NULL,
			      &metrics, 5000),
		     200);
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_audit_checked_total "), "%s",
			   metrics);
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_audit_stale_total "));
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_audit_oldest_stale_seconds "));
	free(metrics);
	RFH_PASS();
}

/* The writer of the_audit_counts_no_key_a_writer_is_updating: a child process updating
 * items rows 1..AUDIT_HOT_ROWS one after the other, flat out, until killed. */
#define AUDIT_HOT_ROWS 20
static pid_t audit_writer = -1;

static void audit_writer_stop(void)
{
	if (audit_writer > 0) {
		kill(audit_writer, SIGKILL);
		waitpid(audit_writer, NULL, 0);
		audit_writer = -1;
	}
}

static void audit_writer_fini(void)
{
	audit_writer_stop();
	coh_env_teardown();
}

static void audit_writer_start(void)
{
	fflush(NULL);
	audit_writer = fork();
	cr_assert_neq(audit_writer, -1);
	if (audit_writer != 0) {
		return;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	PGconn *db = PQconnectdb(coh.pg.dsn);
	if (PQstatus(db) != CONNECTION_OK) {
		_exit(1);
	}
	for (unsigned long i = 0;; i++) {
		char id[16];
		snprintf(id, sizeof(id), "%lu", 1 + i % AUDIT_HOT_ROWS);
		const char *params[] = {id};
		PGresult *r = PQexecParams(db, "UPDATE items SET n = n + 1 WHERE id = $1::int", 1,
					   NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			_exit(1);
		}
		PQclear(r);
	}
}

/* A writer updates the audited rows all the time: batches land between the audit's row
 * reads and Redis reads, and none of that is staleness. A value planted old (on a row the
 * writer leaves alone) is still found, every time, while the writer runs. */
Test(misbehave, the_audit_counts_no_key_a_writer_is_updating, .fini = audit_writer_fini)
{
	json_t *extra = json_pack("{si}", "audit_keys_per_s", 1000);
	coh_env_start(extra, true);
	json_decref(extra);
	coh_sql("INSERT INTO items SELECT g, 'x', 0 FROM generate_series(1, 21) g");
	coh_wait_drained();
	for (int id = 1; id <= AUDIT_HOT_ROWS + 1; id++) {
		char key[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", id);
		char *v = coh_items_value(id);
		coh_rset(key, v);
		free(v);
	}
	long long updated = coh_sql_int("SELECT sum(n) FROM items");
	audit_writer_start();
	/* The writer is under way before the audits start. */
	while (coh_sql_int("SELECT sum(n) FROM items") < updated + 200) {
		rfh_sleep_ms(20);
	}
	char out[8192];
	for (int round = 0; round < 20; round++) {
		int st = audit_cli(NULL, NULL, NULL, NULL, out, sizeof(out));
		cr_assert_eq(st, 0, "round %d: keys being updated audited as stale: %s", round,
			     out);
		cr_assert_not_null(strstr(out, "checked 21 cached keys"), "%s", out);
	}
	json_t *s = leader_status();
	cr_assert_gt(rfh_int(s, "counters.audit_checked"), 0);
	cr_assert_eq(rfh_int(s, "counters.audit_stale"), 0,
		     "the leader's audit counted stale keys");
	json_decref(s);
	long long now = coh_sql_int("SELECT sum(n) FROM items");
	cr_assert_gt(now, updated + 200, "the writer stopped");

	/* Row 21 is left alone by the writer: a value older than its row is found each time. */
	coh_sql("UPDATE items SET name = 'y' WHERE id = 21");
	coh_wait_drained();
	wait_current("lifeguard:model:public.items:21", 21);
	coh_rset("lifeguard:model:public.items:21",
		 "{\"v\":1,\"row\":{\"id\":21,\"name\":\"x\",\"n\":0,\"lg_version\":1}}");
	for (int round = 0; round < 5; round++) {
		int st = audit_cli(NULL, NULL, NULL, NULL, out, sizeof(out));
		cr_assert_eq(st, 1, "round %d: status %d: %s", round, st, out);
		cr_assert_not_null(strstr(out, "stale: lifeguard:model:public.items:21:"), "%s",
				   out);
		cr_assert_not_null(strstr(out, ": 1 stale"), "%s", out);
	}
	audit_writer_stop();
	RFH_PASS();
}
