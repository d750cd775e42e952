/*
 * `lifeguard doctor` against the real primary, replica and Redis of scripts/services: it flags
 * a Redis whose maxmemory-policy may evict fences (allkeys-lru) and a fence TTL below the
 * replica lag bound plus the fill deadline, passes a sound configuration of both, names the
 * missing capture triggers of a reflected table, and exits 2 on a bad configuration. The
 * reflector nodes named in the file are not running here: their lines fail, which the exit
 * status then reflects, so each test reads the line of the check it is about.
 *
 * Redis's policy and the replica's replay are server-wide: meson runs this test with --jobs 1,
 * teardown restores both.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lg_test.h"
#include "lg_test_files.h"

static struct {
	char dir[64];
	char out[96], errf[96];
	char doctor[128], reflector[128];
	char schema[32];
	PGconn *pg;
} fx;

static redisContext *redis_open(void)
{
	const char *port = getenv("LG_TEST_REDIS_PORT");
	cr_assert_not_null(port, "LG_TEST_REDIS_PORT is not set (scripts/services up)");
	redisContext *c = redisConnect("127.0.0.1", atoi(port));
	cr_assert(c != NULL && c->err == 0);
	return c;
}

/* Runs a command that answers a status or an integer. */
static void redis_ok(redisContext *c, const char *cmd)
{
	redisReply *r = redisCommand(c, cmd);
	cr_assert(r != NULL && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_INTEGER),
		  "%s: %s", cmd, r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
	freeReplyObject(r);
}

static void redis_policy(const char *policy)
{
	redisContext *c = redis_open();
	redisReply *r = redisCommand(c, "CONFIG SET maxmemory-policy %s", policy);
	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "CONFIG SET: %s",
		  r != NULL ? r->str : c->errstr);
	freeReplyObject(r);
	redisFree(c);
}

/* Writes the reflector's file (fence_ttl_ms) and the doctor's file around it (extra: more
 * JSON members, starting with a comma, or ""). */
static void write_config(int fence_ttl_ms, const char *extra)
{
	const char *replicas = getenv("LG_TEST_REPLICA_PORTS");
	char replica[64] = "";
	if (replicas != NULL && replicas[0] != '\0') {
		snprintf(replica, sizeof(replica), "%.*s", (int)strcspn(replicas, " ,"), replicas);
	}
	lg_test_write_file(fx.dir, "reflector.json",
			   "{\"node_id\": 1, \"data_dir\": \"%s/data\",\n"
			   " \"peers\": [{\"id\": 1, \"raft_address\": \"127.0.0.1:%d\","
			   " \"http_address\": \"127.0.0.1:%d\"}],\n"
			   " \"postgres\": \"%s\",\n"
			   " \"redis\": {\"host\": \"127.0.0.1\", \"port\": %s},\n"
			   " \"fence_ttl_ms\": %d}\n",
			   fx.dir, lg_test_free_port(), lg_test_free_port(), lg_test_pg_dsn(),
			   getenv("LG_TEST_REDIS_PORT"), fence_ttl_ms);
	lg_test_write_file(
	    fx.dir, "doctor.json",
	    "{\"reflector_config\": \"reflector.json\",\n"
	    " \"replicas\": [\"host=127.0.0.1 port=%s user=postgres dbname=postgres\"],\n"
	    " \"replica_lag_bound_ms\": 5000, \"fill_deadline_ms\": 1000,\n"
	    " \"timeout_ms\": 2000%s}\n",
	    replica, extra);
}

static void setup(void)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/lg-doctor-XXXXXX");
	cr_assert_not_null(mkdtemp(fx.dir));
	snprintf(fx.out, sizeof(fx.out), "%s.out", fx.dir);
	snprintf(fx.errf, sizeof(fx.errf), "%s.err", fx.dir);
	snprintf(fx.doctor, sizeof(fx.doctor), "%s/doctor.json", fx.dir);
	snprintf(fx.reflector, sizeof(fx.reflector), "%s/reflector.json", fx.dir);
	snprintf(fx.schema, sizeof(fx.schema), "doctor_%d", (int)getpid());
	fx.pg = PQconnectdb(lg_test_pg_dsn());
	cr_assert_eq(PQstatus(fx.pg), CONNECTION_OK, "%s", PQerrorMessage(fx.pg));
	PQclear(PQexec(fx.pg, "SET client_min_messages = warning"));
}

/* The replica's conninfo (first port of LG_TEST_REPLICA_PORTS), or "" when there is none. */
static const char *replica_dsn(void)
{
	static char dsn[128];
	const char *ports = getenv("LG_TEST_REPLICA_PORTS");
	if (ports == NULL || ports[0] == '\0') {
		return "";
	}
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%.*s user=postgres dbname=postgres",
		 (int)strcspn(ports, " ,"), ports);
	return dsn;
}

static void replay(const char *what)
{
	PGconn *rp = PQconnectdb(replica_dsn());
	cr_assert_eq(PQstatus(rp), CONNECTION_OK, "%s", PQerrorMessage(rp));
	char sql[64];
	snprintf(sql, sizeof(sql), "SELECT pg_wal_replay_%s()", what);
	PGresult *r = PQexec(rp, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(rp));
	PQclear(r);
	PQfinish(rp);
}

static void teardown(void)
{
	redis_policy("noeviction");
	redisContext *c = redis_open();
	redis_ok(c, "CONFIG SET maxmemory 0");
	redis_ok(c, "CONFIG RESETSTAT"); /* evicted_keys back to 0 */
	redisFree(c);
	if (replica_dsn()[0] != '\0') {
		replay("resume"); /* after warns_when_a_replica_lags_beyond_the_bound */
	}
	lg_test_cleanup(fx.pg, fx.schema, fx.dir, fx.out, fx.errf);
}

TestSuite(doctor, .init = setup, .fini = teardown);

static int doctor(const char *config)
{
	const char *args[] = {"doctor", "--config", config, NULL};
	return lg_test_wait_exit(lg_test_spawn_lifeguard(args, fx.out, fx.errf));
}

/* Asserts stdout has a line starting with line. */
static void assert_line(const char *line)
{
	const char *out = lg_test_slurp(fx.out);
	for (const char *p = out; p != NULL; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL) {
		if (strncmp(p, line, strlen(line)) == 0) {
			return;
		}
	}
	cr_assert_fail("no line \"%s\" in:\n%s", line, out);
}

Test(doctor, flags_allkeys_lru_and_a_fence_ttl_below_the_lag_bound)
{
	redis_policy("allkeys-lru");
	write_config(3000, "");
	cr_assert_eq(doctor(fx.doctor), 1, "%s", lg_test_slurp(fx.errf));
	assert_line("fail  redis eviction policy: maxmemory-policy allkeys-lru");
	assert_line("fail  fence ttl: fence_ttl_ms 3000 is below replica_lag_bound_ms 5000 + "
		    "fill_deadline_ms 1000 = 6000");
	assert_line("ok    primary: ");
	assert_line("ok    replica 1: ");
	assert_line("ok    redis: ");
	assert_line("fail  reflector 127.0.0.1:");
}

Test(doctor, passes_noeviction_and_a_long_enough_fence_ttl)
{
	redis_policy("noeviction");
	write_config(6000, "");
	doctor(fx.doctor);
	assert_line("ok    redis eviction policy: maxmemory-policy noeviction");
	assert_line("ok    fence ttl: fence_ttl_ms 6000 >= replica_lag_bound_ms 5000 + "
		    "fill_deadline_ms 1000");
	/* volatile-*: fences carry a TTL, so they can go too: a warning. */
	redis_policy("volatile-lru");
	doctor(fx.doctor);
	assert_line("warn  redis eviction policy: maxmemory-policy volatile-lru");
	/* The reflector's file alone: no lag bound to compare with. */
	doctor(fx.reflector);
	assert_line("warn  fence ttl: fence_ttl_ms 6000; replica_lag_bound_ms is not set");
}

Test(doctor, warns_when_a_replica_lags_beyond_the_bound)
{
	cr_assert_neq(replica_dsn()[0], '\0', "the test needs a replica (services --replicas 1)");
	/* Replay paused, then a commit on the primary: the replica is behind by bytes, and by
	 * the time since the last commit it replayed. */
	replay("pause");
	char sql[256];
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s; CREATE TABLE %s.t (id int)", fx.schema,
		 fx.schema);
	PQclear(PQexec(fx.pg, sql));
	write_config(30000, "");
	lg_test_write_file(fx.dir, "doctor.json",
			   "{\"reflector_config\": \"reflector.json\",\n"
			   " \"replicas\": [\"%s\"], \"replica_lag_bound_ms\": 0}\n",
			   replica_dsn());
	doctor(fx.doctor);
	assert_line("warn  replica 1: ");
	cr_assert_not_null(strstr(lg_test_slurp(fx.out), "above replica_lag_bound_ms"), "%s",
			   lg_test_slurp(fx.out));
}

Test(doctor, fails_a_volatile_policy_once_redis_has_evicted_keys)
{
	/* A memory limit just above what Redis uses, then keys with a TTL until it evicts. */
	redisContext *c = redis_open();
	redis_ok(c, "CONFIG RESETSTAT");
	redisReply *r = redisCommand(c, "INFO memory");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
	const char *used = strstr(r->str, "used_memory:");
	cr_assert_not_null(used);
	long long limit = atoll(used + strlen("used_memory:")) + 256 * 1024;
	freeReplyObject(r);
	redis_policy("volatile-lru");
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "CONFIG SET maxmemory %lld", limit);
	redis_ok(c, cmd);
	redis_ok(c, "SELECT 15"); /* the test's keys stay out of the services' database */
	static char value[4096];
	memset(value, 'x', sizeof(value) - 1);
	long long evicted = 0;
	for (int i = 0; i < 100000 && evicted == 0; i++) {
		r = redisCommand(c, "SET doctor-test:%d %s EX 600", i, value);
		cr_assert_not_null(r, "%s", c->errstr);
		freeReplyObject(r);
		r = redisCommand(c, "INFO stats");
		cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
		const char *e = strstr(r->str, "evicted_keys:");
		evicted = e != NULL ? atoll(e + strlen("evicted_keys:")) : 0;
		freeReplyObject(r);
	}
	cr_assert_gt(evicted, 0, "Redis evicted nothing under maxmemory %lld", limit);
	redis_ok(c, "CONFIG SET maxmemory 0");
	redis_ok(c, "FLUSHDB");
	redisFree(c);
	write_config(30000, "");
	cr_assert_eq(doctor(fx.doctor), 1);
	assert_line("fail  redis eviction policy: maxmemory-policy volatile-lru may evict fences");
	cr_assert_not_null(strstr(lg_test_slurp(fx.out), "key(s) evicted so far"));
}

Test(doctor, names_the_missing_capture_triggers_of_a_reflected_table)
{
	char sql[512];
	const char *s = fx.schema;
	snprintf(sql, sizeof(sql),
		 "CREATE SCHEMA %s; CREATE TABLE %s.t (id int PRIMARY KEY, lg_version bigint);"
		 " CREATE FUNCTION %s.noop() RETURNS trigger LANGUAGE plpgsql AS"
		 " 'BEGIN RETURN NEW; END';"
		 " CREATE TRIGGER lg_capture_row AFTER INSERT ON %s.t FOR EACH ROW"
		 " EXECUTE FUNCTION %s.noop()",
		 s, s, s, s, s);
	PGresult *r = PQexec(fx.pg, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(fx.pg));
	PQclear(r);
	char extra[256];
	snprintf(extra, sizeof(extra), ", \"reflected_tables\": [\"%s.t\", \"%s.gone\"]", fx.schema,
		 fx.schema);
	write_config(30000, extra);
	cr_assert_eq(doctor(fx.doctor), 1);
	char line[256];
	snprintf(line, sizeof(line),
		 "fail  reflected table %s.t: missing or disabled triggers: lg_stamp_version, "
		 "lg_capture_delete, lg_capture_truncate",
		 fx.schema);
	assert_line(line);
	snprintf(line, sizeof(line), "fail  reflected table %s.gone: the table does not exist",
		 fx.schema);
	assert_line(line);
}

Test(doctor, json_lists_every_check_with_its_status)
{
	redis_policy("allkeys-random");
	write_config(30000, "");
	const char *args[] = {"doctor", "--config", fx.doctor, "--json", NULL};
	cr_assert_eq(lg_test_wait_exit(lg_test_spawn_lifeguard(args, fx.out, fx.errf)), 1);
	json_error_t jerr;
	json_t *doc = json_loads(lg_test_slurp(fx.out), 0, &jerr);
	cr_assert_not_null(doc, "%s: %s", jerr.text, lg_test_slurp(fx.out));
	json_t *checks = json_object_get(doc, "checks"), *c;
	size_t i, fails = 0;
	bool policy = false;
	json_array_foreach(checks, i, c)
	{
		const char *name = json_string_value(json_object_get(c, "check"));
		const char *status = json_string_value(json_object_get(c, "status"));
		cr_assert(name != NULL && status != NULL);
		fails += strcmp(status, "fail") == 0;
		if (strcmp(name, "redis eviction policy") == 0) {
			policy = true;
			cr_assert_str_eq(status, "fail");
		}
	}
	cr_assert(policy);
	cr_assert_eq(json_integer_value(json_object_get(doc, "fail")), (json_int_t)fails);
	cr_assert_gt(json_array_size(checks), 8);
	json_decref(doc);
}

Test(doctor, bad_configuration_exits_2_with_one_line)
{
	write_config(30000, ", \"replica_lag_bound\": 5");
	cr_assert_eq(doctor(fx.doctor), 2);
	cr_assert_not_null(strstr(lg_test_slurp(fx.errf), "unknown key \"replica_lag_bound\""));
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/nope.json", fx.dir);
	cr_assert_eq(doctor(missing), 2);
	lg_test_write_file(fx.dir, "doctor.json", "{\"reflector_config\": \"nope.json\"}");
	cr_assert_eq(doctor(fx.doctor), 2);
	cr_assert_not_null(strstr(lg_test_slurp(fx.errf), "nope.json"), "%s",
			   lg_test_slurp(fx.errf));
	const char *args[] = {"doctor", NULL};
	cr_assert_eq(lg_test_wait_exit(lg_test_spawn_lifeguard(args, fx.out, fx.errf)), 2);
}
