/*
 * The coherence pipeline end to end: a 3-process reflector cluster, a private PostgreSQL and a
 * private Redis. Cached keys follow INSERT/UPDATE/DELETE/TRUNCATE, uncached keys are never
 * created, the stale-fill race loses, malformed outbox rows are dead-lettered without
 * stopping the pipeline, a new leader drains what was written while no node ran, and the
 * leader reports its connections, outbox and counters on /status and /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <libguard/cache_contract.h>

#include "lg_test.h"
#include "rf_harness.h"

#define WAIT_MS 60000

static struct lg_test_pg pg;
static bool pg_started;
static char redis_dir[256];
static int redis_port;
static PGconn *db;
static redisContext *rc;
static struct rfh_cluster cluster;

static void sql(const char *q)
{
	PGresult *r = PQexec(db, q);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
		  PQresultErrorMessage(r));
	PQclear(r);
}

/* First column of the first row as an integer. */
static long long sql_int(const char *q)
{
	PGresult *r = PQexec(db, q);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", q, PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1, "%s", q);
	long long v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* GET key: Owned string or NULL when absent. */
static char *rget(const char *key)
{
	redisReply *r = redisCommand(rc, "GET %s", key);
	cr_assert_not_null(r, "redis: %s", rc->errstr);
	char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
	freeReplyObject(r);
	return v;
}

static void rset(const char *key, const char *value)
{
	redisReply *r = redisCommand(rc, "SET %s %s PX 600000", key, value);
	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
}

/* Runs a cache script with EVAL; returns its status answer (Owned). */
static char *reval(enum lg_cache_script which, int nkeys, const char **keys, int nargs,
		   const char **args)
{
	const char *argv[16] = {"EVAL", lg_cache_script_source(which)};
	char n[8];
	snprintf(n, sizeof(n), "%d", nkeys);
	argv[2] = n;
	for (int i = 0; i < nkeys; i++) {
		argv[3 + i] = keys[i];
	}
	for (int i = 0; i < nargs; i++) {
		argv[3 + nkeys + i] = args[i];
	}
	redisReply *r = redisCommandArgv(rc, 3 + nkeys + nargs, argv, NULL);
	cr_assert_not_null(r);
	char *v = strdup(r->str != NULL ? r->str : "");
	freeReplyObject(r);
	return v;
}

/* Redis' clock in milliseconds, the stamp LG_CACHE_FILL measures a fill's age from. */
static void redis_ms(char out[32])
{
	redisReply *r = redisCommand(rc, "TIME");
	cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
	snprintf(out, 32, "%lld",
		 atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000);
	freeReplyObject(r);
}

static void teardown(void)
{
	rfh_cleanup();
	if (rc != NULL) {
		redisFree(rc);
		rc = NULL;
	}
	if (db != NULL) {
		PQfinish(db);
		db = NULL;
	}
	if (redis_dir[0] != '\0') {
		lg_test_services("redis kill '%s'", redis_dir);
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", redis_dir);
		cr_log_info("%d", system(cmd));
		redis_dir[0] = '\0';
	}
	if (pg_started) {
		lg_test_pg_destroy(&pg);
		pg_started = false;
	}
}

/* Runs the reflector CLI with node 0's config; asserts exit 0. */
static void cli(const char *cmd, const char *arg)
{
	const char *argv[] = {rfh_bin(), cmd, "--config", cluster.nodes[0].config, arg, NULL};
	char out[4096];
	int st = rfh_run(argv, NULL, out, sizeof(out), 60000);
	cr_assert_eq(st, 0, "%s %s: %s", cmd, arg != NULL ? arg : "", out);
}

/* The nodes' poll_interval_ms (also how often the leader checks Redis' run id). */
static int poll_ms = 200;

/* Private PostgreSQL and Redis, the schema, table public.items, and a 3-node cluster. */
static void start_all(bool start_nodes)
{
	cr_assert(lg_test_pg_start(&pg), "private PostgreSQL");
	pg_started = true;
	char tmpl[] = "/tmp/rf-coh-redis.XXXXXX";
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(redis_dir, sizeof(redis_dir), "%s", tmpl);
	redis_port = lg_test_free_port();
	cr_assert_eq(lg_test_services("redis start '%s' %d", redis_dir, redis_port), 0);
	db = PQconnectdb(pg.dsn);
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	rc = redisConnect("127.0.0.1", redis_port);
	cr_assert(rc != NULL && rc->err == 0);

	json_t *extra = json_pack("{ss s{sssi} si}", "postgres", pg.dsn, "redis", "host",
				  "127.0.0.1", "port", redis_port, "poll_interval_ms", poll_ms);
	rfh_cluster_init(&cluster, 3, 3, extra);
	json_decref(extra);
	cli("setup", NULL);
	sql("SET client_min_messages = warning");
	sql("CREATE TABLE items (id int PRIMARY KEY, name text, n int)");
	sql("CREATE TABLE acct (tenant text, id uuid, bal int, PRIMARY KEY (tenant, id))");
	cli("reflect", "public.items");
	cli("reflect", "public.acct");
	if (start_nodes) {
		rfh_start_all(&cluster, 3);
		cr_assert(rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL) >= 0, "no leader");
	}
}

/* Waits until every change committed so far went through Redis (outbox empty). */
static void wait_drained(void)
{
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	while (sql_int("SELECT count(*) FROM lifeguard.outbox") != 0) {
		cr_assert_lt(rfh_now_ms(), deadline, "outbox not drained");
		rfh_sleep_ms(20);
	}
}

/* Asserts that key holds exactly {"v": lg_version, "row": to_jsonb(row)} of the row. */
static void assert_row_cached(const char *key, const char *where)
{
	char *v = rget(key);
	cr_assert_not_null(v, "%s: not cached", key);
	char q[512];
	snprintf(q, sizeof(q),
		 "SELECT (jsonb_build_object('v', lg_version, 'row', to_jsonb(t)) = $1::jsonb)::int"
		 " FROM %s",
		 where);
	const char *params[] = {v};
	PGresult *r = PQexecParams(db, q, 1, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1);
	cr_assert_str_eq(PQgetvalue(r, 0, 0), "1", "%s holds %s", key, v);
	PQclear(r);
	free(v);
}

/* Asserts that the keys of items first..last hold their rows exactly. */
static void assert_items_cached(int first, int last)
{
	for (int i = first; i <= last; i++) {
		char key[64];
		char where[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", i);
		snprintf(where, sizeof(where), "items t WHERE id = %d", i);
		assert_row_cached(key, where);
	}
}

static long long tombstone_version(const char *key)
{
	char *v = rget(key);
	cr_assert_not_null(v, "%s: no tombstone", key);
	json_t *j = json_loads(v, 0, NULL);
	cr_assert(json_is_true(json_object_get(j, "deleted")), "%s holds %s", key, v);
	long long version = json_integer_value(json_object_get(j, "v"));
	json_decref(j);
	free(v);
	return version;
}

/* What a libguard reader gets for key of table items (LG_CACHE_READ; a tombstone is a miss
 * too): Owned, NULL = miss. */
static char *read_items(const char *key)
{
	const char *argv[] = {"EVAL", lg_cache_script_source(LG_CACHE_READ), "2", key,
			      "lifeguard:fence:public.items"};
	redisReply *r = redisCommandArgv(rc, 5, argv, NULL);
	cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "%s",
		  r != NULL && r->str != NULL ? r->str : "no reply");
	char *v = r->element[1]->type == REDIS_REPLY_STRING &&
			  strstr(r->element[1]->str, "\"deleted\":true") == NULL
		      ? strdup(r->element[1]->str)
		      : NULL;
	freeReplyObject(r);
	return v;
}

/* Waits (bounded) for the TRUNCATE sweep, which runs after the commit, to tombstone key
 * above version; returns the tombstone's version. */
static long long wait_tombstone(const char *key, long long above)
{
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	for (;;) {
		char *v = rget(key);
		bool swept = v != NULL && strstr(v, "\"deleted\":true") != NULL;
		free(v);
		if (swept && tombstone_version(key) > above) {
			return tombstone_version(key);
		}
		cr_assert_lt(rfh_now_ms(), deadline, "%s: never tombstoned", key);
		rfh_sleep_ms(20);
	}
}

TestSuite(coherence, .fini = teardown);

Test(coherence, cached_keys_follow_every_write_and_uncached_are_never_created)
{
	start_all(true);
	sql("INSERT INTO items SELECT g, 'n' || g, 0 FROM generate_series(1, 10) g");
	wait_drained();
	for (int i = 1; i <= 5; i++) { /* cached: any older value counts */
		char key[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", i);
		rset(key, "{\"v\":0,\"row\":{}}");
	}
	sql("UPDATE items SET n = n + 1");
	sql("UPDATE items SET name = 'twice' WHERE id IN (2, 7)");
	sql("INSERT INTO items VALUES (11, 'new', 0)");
	wait_drained();
	assert_items_cached(1, 5);
	for (int i = 6; i <= 11; i++) {
		char key[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", i);
		char *v = rget(key);
		cr_assert_null(v, "uncached %s was created: %s", key, v);
		snprintf(key, sizeof(key), "lifeguard:fence:public.items:%d", i);
		free(v);
		v = rget(key);
		cr_assert_not_null(v, "uncached %s: no fence", key);
		free(v);
	}

	/* DELETE: the cached key becomes a tombstone, the uncached one stays absent. */
	sql("DELETE FROM items WHERE id IN (1, 6)");
	wait_drained();
	cr_assert_gt(tombstone_version("lifeguard:model:public.items:1"), 0);
	char *v = rget("lifeguard:model:public.items:6");
	cr_assert_null(v);

	/* A primary-key change: the old key is deleted, the new one is an insert. */
	sql("UPDATE items SET id = 12 WHERE id = 2");
	wait_drained();
	tombstone_version("lifeguard:model:public.items:2");
	cr_assert_null(rget("lifeguard:model:public.items:12"));

	/* Composite text/uuid key with a ':' inside: escaped key, refreshed. */
	sql("INSERT INTO acct VALUES ('a:b', '6f1c1b36-3b7e-4d2a-9a59-7b0b2b8c1c11', 1)");
	wait_drained();
	const char *akey = "lifeguard:model:public.acct:a\\:b:6f1c1b36-3b7e-4d2a-9a59-7b0b2b8c1c11";
	rset(akey, "{\"v\":0,\"row\":{}}");
	sql("UPDATE acct SET bal = 2");
	wait_drained();
	assert_row_cached(akey, "acct t");

	/* TRUNCATE: once committed, the table fence makes every cached key of the table read as
	 * a miss; the sweep after the commit then tombstones them. */
	long long before = sql_int("SELECT max(lg_version) FROM items");
	sql("TRUNCATE items");
	wait_drained();
	cr_assert_null(read_items("lifeguard:model:public.items:3"));
	cr_assert_null(read_items("lifeguard:model:public.items:5"));
	wait_tombstone("lifeguard:model:public.items:3", before);
	wait_tombstone("lifeguard:model:public.items:5", before);
	v = rget("lifeguard:fence:public.items");
	cr_assert_not_null(v, "no table fence");
	cr_assert_gt(atoll(v), before);
	free(v);
	assert_row_cached(akey, "acct t"); /* other tables untouched */
	RFH_PASS();
}

Test(coherence, a_stale_fill_after_a_committed_write_is_rejected)
{
	start_all(true);
	sql("INSERT INTO items VALUES (1, 'old', 0), (2, 'old', 0)");
	wait_drained();
	/* Reader 1 misses key 1 (stamped with Redis' clock) and reads the row (version v1) ... */
	char read_ms[32];
	redis_ms(read_ms);
	long long v1 = sql_int("SELECT lg_version FROM items WHERE id = 1");
	char old_value[128];
	snprintf(old_value, sizeof(old_value), "{\"v\":%lld,\"row\":{\"id\":1,\"name\":\"old\"}}",
		 v1);
	/* ... a writer commits meanwhile, and the reflector processes it ... */
	sql("UPDATE items SET name = 'new' WHERE id = 1");
	wait_drained();
	/* ... then the reader tries to fill the row it read: refused by the fence. */
	char version[24];
	snprintf(version, sizeof(version), "%lld", v1);
	const char *keys[] = {"lifeguard:model:public.items:1", "lifeguard:fence:public.items:1",
			      "lifeguard:fence:public.items"};
	const char *args[] = {version, old_value, "600000", read_ms, "600000"};
	char *answer = reval(LG_CACHE_FILL, 3, keys, 5, args);
	cr_assert_str_eq(answer, "fenced");
	free(answer);
	cr_assert_null(rget(keys[0]));

	/* The same race on a cached key: the reflector refreshed it, the late fill is kept out. */
	const char *keys2[] = {"lifeguard:model:public.items:2", "lifeguard:fence:public.items:2",
			       "lifeguard:fence:public.items"};
	rset(keys2[0], "{\"v\":0,\"row\":{}}");
	long long v2 = sql_int("SELECT lg_version FROM items WHERE id = 2");
	sql("UPDATE items SET name = 'new' WHERE id = 2");
	wait_drained();
	snprintf(version, sizeof(version), "%lld", v2);
	const char *args2[] = {version, "{\"v\":1,\"row\":{}}", "600000", read_ms, "600000"};
	answer = reval(LG_CACHE_FILL, 3, keys2, 5, args2);
	cr_assert_str_eq(answer, "fenced"); /* the refresh raised the key fence too */
	free(answer);
	assert_row_cached(keys2[0], "items t WHERE id = 2");

	/* A fill of the current row after the change is accepted. */
	sql("UPDATE items SET name = 'newer' WHERE id = 1");
	wait_drained();
	long long v3 = sql_int("SELECT lg_version FROM items WHERE id = 1");
	snprintf(version, sizeof(version), "%lld", v3);
	const char *args3[] = {version, "{\"v\":0}", "600000", read_ms, "600000"};
	answer = reval(LG_CACHE_FILL, 3, keys, 5, args3);
	cr_assert_str_eq(answer, "filled");
	free(answer);
	RFH_PASS();
}

Test(coherence, a_truncate_commits_without_walking_the_keyspace)
{
	start_all(true);
	sql("INSERT INTO items VALUES (1, 'a', 0), (2, 'b', 0)");
	wait_drained();
	rset("lifeguard:model:public.items:1", "{\"v\":1,\"row\":{\"id\":1}}");
	/* The keyspace walk is impossible (SCAN denied to the reflector's Redis user): the
	 * TRUNCATE must still leave the outbox, since the table fence alone keeps the guarantee
	 * and the walk is cleanup after the commit. */
	redisReply *r = redisCommand(rc, "ACL SETUSER default -scan");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "%s", r != NULL ? r->str : "");
	freeReplyObject(r);
	sql("TRUNCATE items");
	wait_drained();
	cr_assert_null(read_items("lifeguard:model:public.items:1"), "a pre-TRUNCATE row read");
	/* Later changes flow as usual, and the new row is readable once cached. */
	sql("INSERT INTO items VALUES (1, 'new', 0)");
	wait_drained();
	long long v = sql_int("SELECT lg_version FROM items WHERE id = 1");
	char value[64];
	snprintf(value, sizeof(value), "{\"v\":%lld,\"row\":{\"id\":1}}", v);
	rset("lifeguard:model:public.items:1", value);
	char *got = read_items("lifeguard:model:public.items:1");
	cr_assert(got != NULL && strcmp(got, value) == 0, "%s", got != NULL ? got : "(nil)");
	free(got);
	r = redisCommand(rc, "ACL SETUSER default +scan");
	freeReplyObject(r);
	RFH_PASS();
}

Test(coherence, malformed_outbox_rows_are_dead_lettered_and_the_rest_flows)
{
	start_all(true);
	sql("INSERT INTO items VALUES (1, 'a', 0)");
	wait_drained();
	rset("lifeguard:model:public.items:1", "{\"v\":0,\"row\":{}}");
	/* Cached keys force reads, so their tables and key types are checked. */
	rset("lifeguard:model:public.items:abc", "{\"v\":0,\"row\":{}}");
	rset("lifeguard:model:public.nosuch:1", "{\"v\":0,\"row\":{}}");
	rset("lifeguard:model:public.plain:1", "{\"v\":0,\"row\":{}}");
	sql("CREATE TABLE plain (id int PRIMARY KEY)");
	sql("BEGIN");
	sql("INSERT INTO lifeguard.outbox (table_name, pk, op, version) VALUES"
	    " ('public.items', '{\"id\": 1}', 'U', 1),"    /* key not an array */
	    " ('public.items', '[\"abc\"]', 'U', 2),"      /* does not cast to int */
	    " ('public.nosuch', '[\"1\"]', 'U', 3),"       /* no such table */
	    " ('public.plain', '[\"1\"]', 'U', 4),"        /* not reflected */
	    " ('x; DROP TABLE items', '[\"1\"]', 'U', 5)," /* hostile name */
	    " ('public.items', NULL, 'U', 6)");            /* no key */
	sql("UPDATE items SET name = 'b' WHERE id = 1");
	sql("COMMIT");
	sql("NOTIFY lifeguard");
	wait_drained();
	cr_assert_eq(sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 6);
	cr_assert_eq(sql_int("SELECT count(*) FROM lifeguard.outbox_dead WHERE reason = ''"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM items"), 1);
	assert_row_cached("lifeguard:model:public.items:1", "items t WHERE id = 1");
	int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
	json_t *st = rfh_status(&cluster, (size_t)leader, 2000);
	cr_assert_eq(rfh_int(st, "counters.malformed"), 6);
	json_decref(st);
	RFH_PASS();
}

/* Scripts Redis has run so far (EVALSHA and EVAL calls, INFO commandstats). */
static long long redis_script_calls(void)
{
	redisReply *r = redisCommand(rc, "INFO commandstats");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "INFO commandstats");
	long long total = 0;
	static const char *const names[] = {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *at = strstr(r->str, names[i]);
		if (at != NULL) {
			total += atoll(at + strlen(names[i]));
		}
	}
	freeReplyObject(r);
	return total;
}

/* One batch of 64 cached keys and one key holding a hash (not ours): the cached keys are
 * refreshed a chunk of keys per script, not a script per key, and the foreign value is
 * dead-lettered alone, its chunk's other keys refreshed all the same. */
Test(coherence, cached_keys_refresh_a_chunk_per_script_and_a_foreign_value_stays_alone)
{
	start_all(true);
	sql("INSERT INTO items SELECT g, 'x', 0 FROM generate_series(1, 65) g");
	wait_drained();
	for (int i = 1; i <= 64; i++) {
		char key[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", i);
		rset(key, "{\"v\":0,\"row\":{}}");
	}
	redisReply *r = redisCommand(rc, "HSET lifeguard:model:public.items:65 not ours");
	cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "HSET");
	freeReplyObject(r);
	long long calls = redis_script_calls();
	sql("UPDATE items SET n = n + 1"); /* one transaction: 65 changes, one batch */
	wait_drained();
	assert_items_cached(1, 64);
	long long scripts = redis_script_calls() - calls;
	/* A script per key ran at least 65; chunks of 32 take 3, plus the term claim and
	 * Redis' version mark. */
	cr_assert_leq(scripts, 12, "%lld scripts for one batch of 65 keys", scripts);
	cr_assert_eq(
	    sql_int("SELECT count(*) FROM lifeguard.outbox_dead WHERE table_name ="
		    " 'public.items' AND pk = '[\"65\"]' AND reason LIKE '%Redis refused%'"),
	    1);
	cr_assert_eq(sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 1);
	r = redisCommand(rc, "HGET lifeguard:model:public.items:65 not");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, "ours") == 0,
		  "the foreign value was touched");
	freeReplyObject(r);
	RFH_PASS();
}

/* The leader's counter name from /status. */
static long long leader_counter(const char *name)
{
	int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
	json_t *st = rfh_status(&cluster, (size_t)leader, 2000);
	cr_assert_not_null(st);
	char path[64];
	snprintf(path, sizeof(path), "counters.%s", name);
	long long v = rfh_int(st, path);
	json_decref(st);
	return v;
}

/* A change claimed while a batch in flight carries its key is put back in the outbox (the
 * claim deleted it) and processed once that batch is done: nothing lost, nothing doubled, no
 * retry. Redis holds its writes for a while (CLIENT PAUSE) so that the first batch stays in
 * flight while the second change is claimed; the leader's periodic Redis checks (which wait
 * for the batches in flight) are made rare, so the second claim does not wait for the first
 * batch either. */
Test(coherence, a_change_whose_key_is_in_flight_is_put_back_and_processed_once)
{
	poll_ms = 600000;
	start_all(true);
	sql("INSERT INTO items VALUES (1, 'a', 0)");
	wait_drained();
	rset("lifeguard:model:public.items:1", "{\"v\":0,\"row\":{}}");
	long long changes = leader_counter("changes");
	long long errors = leader_counter("errors");
	redisReply *r = redisCommand(rc, "CLIENT PAUSE 1500 WRITE");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "CLIENT PAUSE");
	freeReplyObject(r);
	sql("UPDATE items SET name = 'b' WHERE id = 1"); /* its batch waits on Redis */
	rfh_sleep_ms(300);
	sql("UPDATE items SET n = 5 WHERE id = 1"); /* claimed while the key is in flight */
	wait_drained();
	assert_row_cached("lifeguard:model:public.items:1", "items t WHERE id = 1");
	cr_assert_eq(sql_int("SELECT count(*) FROM lifeguard.outbox_dead"), 0);
	cr_assert_eq(leader_counter("changes") - changes, 2);
	cr_assert_eq(leader_counter("errors"), errors, "a batch failed and was retried");
	RFH_PASS();
}

Test(coherence, a_new_leader_drains_what_was_written_while_no_node_ran)
{
	start_all(false);
	sql("INSERT INTO items SELECT g, 'x', 0 FROM generate_series(1, 100) g");
	for (int i = 1; i <= 100; i += 3) {
		char key[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", i);
		rset(key, "{\"v\":0,\"row\":{}}");
	}
	sql("UPDATE items SET n = 7");
	cr_assert_eq(sql_int("SELECT count(*) FROM lifeguard.outbox"), 200);
	rfh_start_all(&cluster, 3);
	int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
	cr_assert_geq(leader, 0);
	wait_drained();
	for (int i = 1; i <= 100; i += 3) {
		char key[64];
		char where[64];
		snprintf(key, sizeof(key), "lifeguard:model:public.items:%d", i);
		snprintf(where, sizeof(where), "items t WHERE id = %d", i);
		assert_row_cached(key, where);
	}
	redisReply *r = redisCommand(rc, "KEYS lifeguard:model:*");
	cr_assert_eq(r->elements, 34); /* only the cached ones */
	freeReplyObject(r);

	/* The leader reports its connections, the outbox and its counters; followers do not
	 * sample the outbox. */
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	json_t *st = NULL;
	for (;;) {
		json_decref(st);
		st = rfh_status(&cluster, (size_t)leader, 2000);
		if (st != NULL && rfh_int(st, "outbox.pending") == 0 &&
		    json_is_true(json_object_get(json_object_get(st, "postgres"), "listening"))) {
			break;
		}
		cr_assert_lt(rfh_now_ms(), deadline, "leader status never showed a drained outbox");
		rfh_sleep_ms(100);
	}
	cr_assert(json_is_true(json_object_get(json_object_get(st, "postgres"), "connected")));
	json_t *redis = json_object_get(st, "redis");
	cr_assert(json_is_true(json_object_get(redis, "connected")));
	cr_assert(json_is_integer(json_object_get(redis, "evicted_keys")));
	cr_assert_str_eq(json_string_value(json_object_get(redis, "maxmemory_policy")),
			 "noeviction");
	cr_assert_eq(rfh_int(st, "counters.changes"), 200);
	cr_assert_eq(rfh_int(st, "counters.refreshed"), 34);
	cr_assert_eq(rfh_int(st, "counters.fenced"), 66);
	cr_assert_eq(rfh_int(st, "propagation.count"), 200);
	json_decref(st);
	for (size_t i = 0; i < 3; i++) {
		if ((int)i == leader) {
			continue;
		}
		json_t *f = rfh_status(&cluster, i, 2000);
		cr_assert_not_null(f);
		cr_assert(json_is_null(json_object_get(f, "outbox")));
		cr_assert(
		    json_is_false(json_object_get(json_object_get(f, "postgres"), "connected")));
		json_decref(f);
	}
	char *metrics = NULL;
	cr_assert_eq(
	    rfh_http(&cluster, (size_t)leader, "GET", "/metrics", NULL, NULL, &metrics, 2000), 200);
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_changes_total 200\n"), "%s",
			   metrics);
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_propagation_seconds_count 200\n"));
	cr_assert_not_null(
	    strstr(metrics, "lifeguard_reflector_propagation_seconds_bucket{le=\"+Inf\"} 200\n"));
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_outbox_pending 0\n"));
	cr_assert_not_null(strstr(metrics, "lifeguard_reflector_notify_queue_usage "));
	free(metrics);

	/* Graceful shutdown with a running session: exit 0 (under ASan: nothing leaked). */
	for (size_t i = 0; i < 3; i++) {
		rfh_signal(&cluster, i, SIGTERM);
	}
	for (size_t i = 0; i < 3; i++) {
		int status = rfh_wait_exit(&cluster, i, WAIT_MS);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "node %zu: status %d", i,
			  status);
	}
	RFH_PASS();
}
