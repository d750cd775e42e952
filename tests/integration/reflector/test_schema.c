/*
 * `lifeguard-reflector setup` and `reflect` against the real ephemeral PostgreSQL: the schema
 * installs idempotently (also twice at once), tables with composite/text/uuid keys are
 * captured into the outbox with NOTIFY, primary-key changes become delete + insert, TRUNCATE
 * is recorded, and bad input gets clear errors and exit codes.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char config_path[128];
static char schema[32];

static const char *dsn(void)
{
	const char *d = getenv("LG_TEST_PG_DSN");
	cr_assert_not_null(d, "run through scripts/test (LG_TEST_PG_DSN)");
	return d;
}

static void write_config(const char *postgres)
{
	snprintf(config_path, sizeof(config_path), "/tmp/rf-schema-%d.json", (int)getpid());
	FILE *f = fopen(config_path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"node_id\": 1, \"data_dir\": \"/tmp/rf-schema-%d\", \"peers\": [{\"id\": 1, "
		"\"raft_address\": \"127.0.0.1:1\", \"http_address\": \"127.0.0.1:2\"}]",
		(int)getpid());
	if (postgres != NULL) {
		fprintf(f, ", \"postgres\": \"%s\"", postgres);
	}
	fprintf(f, "}\n");
	fclose(f);
}

/* Runs the daemon binary with args; returns its exit status, output in out. */
static int reflector(const char *args, char *out, size_t size)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s' %s --config '%s' 2>&1", getenv("LG_REFLECTOR_BIN"), args,
		 config_path);
	FILE *p = popen(cmd, "r");
	size_t n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static PGconn *db(void)
{
	PGconn *c = PQconnectdb(dsn());
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void sql(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
		  PQresultErrorMessage(r));
	PQclear(r);
}

static void setup(void)
{
	snprintf(schema, sizeof(schema), "rf_schema_%d", (int)getpid());
	write_config(dsn());
	char out[4096];
	cr_assert_eq(reflector("setup", out, sizeof(out)), 0, "%s", out);
	PGconn *c = db();
	char q[1024];
	snprintf(
	    q, sizeof(q),
	    "SET client_min_messages = warning; DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s;"
	    "CREATE TABLE %s.acct (tenant text, id uuid, bal int, PRIMARY KEY (tenant, id));"
	    "CREATE TABLE %s.plain (id int8 PRIMARY KEY, v text);"
	    "CREATE TABLE %s.nokey (x int);",
	    schema, schema, schema, schema, schema);
	sql(c, q);
	PQfinish(c);
}

static void teardown(void)
{
	unlink(config_path);
}

TestSuite(schema, .init = setup, .fini = teardown);

Test(schema, setup_is_idempotent_even_when_run_twice_at_once)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "'%s' setup --config '%s' >/dev/null 2>&1 & '%s' setup --config '%s' "
		 ">/dev/null 2>&1; a=$?; wait $!; b=$?; exit $((a + b))",
		 getenv("LG_REFLECTOR_BIN"), config_path, getenv("LG_REFLECTOR_BIN"), config_path);
	int st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "concurrent setups");
	PGconn *c = db();
	/* Per-table capture functions (lifeguard.capture_<oid>) aside. */
	PGresult *r = PQexec(c, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON "
				"n.oid = p.pronamespace WHERE n.nspname = 'lifeguard'"
				" AND p.proname !~ '^capture_[0-9]+$'");
	cr_assert_eq(atoi(PQgetvalue(r, 0, 0)), 10, "ten functions, no duplicates");
	PQclear(r);
	PQfinish(c);
}

static PGresult *outbox(PGconn *c, const char *table)
{
	char q[512];
	snprintf(q, sizeof(q),
		 "SELECT pk::text, op::text, version FROM lifeguard.outbox WHERE table_name = "
		 "'%s.%s' ORDER BY id",
		 schema, table);
	PGresult *r = PQexec(c, q);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	return r;
}

Test(schema, row_changes_go_to_the_outbox_with_notify)
{
	char out[4096], args[256];
	snprintf(args, sizeof(args), "reflect %s.acct %s.plain", schema, schema);
	cr_assert_eq(reflector(args, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "key {tenant,id}"), "%s", out);
	cr_assert_eq(reflector(args, out, sizeof(out)), 0, "reflect twice: %s", out);
	PGconn *c = db();
	sql(c, "LISTEN lifeguard");
	char q[1024];
	snprintf(q, sizeof(q),
		 "INSERT INTO %s.acct VALUES ('t1', '123e4567-e89b-12d3-a456-426614174000', 5);"
		 "UPDATE %s.acct SET bal = 6;"
		 "UPDATE %s.acct SET tenant = 't2';"
		 "DELETE FROM %s.acct;"
		 "INSERT INTO %s.plain VALUES (1, 'a'), (2, 'b');"
		 "TRUNCATE %s.plain;",
		 schema, schema, schema, schema, schema, schema);
	sql(c, q);
	PGresult *r = outbox(c, "acct");
	cr_assert_eq(PQntuples(r), 5);
	const char *k1 = "[\"t1\", \"123e4567-e89b-12d3-a456-426614174000\"]";
	const char *k2 = "[\"t2\", \"123e4567-e89b-12d3-a456-426614174000\"]";
	const char *want[5][2] = {{k1, "I"}, {k1, "U"}, {k1, "D"}, {k2, "I"}, {k2, "D"}};
	for (int i = 0; i < 5; i++) {
		cr_assert_str_eq(PQgetvalue(r, i, 0), want[i][0], "row %d", i);
		cr_assert_str_eq(PQgetvalue(r, i, 1), want[i][1], "row %d", i);
	}
	/* Versions grow per row: the key t1 saw I < U < D. */
	cr_assert_lt(atoll(PQgetvalue(r, 0, 2)), atoll(PQgetvalue(r, 1, 2)));
	cr_assert_lt(atoll(PQgetvalue(r, 1, 2)), atoll(PQgetvalue(r, 2, 2)));
	PQclear(r);
	r = outbox(c, "plain");
	cr_assert_eq(PQntuples(r), 3);
	cr_assert_str_eq(PQgetvalue(r, 2, 1), "T");
	cr_assert(PQgetisnull(r, 2, 0), "TRUNCATE has no key");
	PQclear(r);
	/* lg_version is stamped by the trigger and equals the outbox version of the change. */
	snprintf(q, sizeof(q), "INSERT INTO %s.plain VALUES (9, 'z') RETURNING lg_version", schema);
	r = PQexec(c, q);
	long long stamped = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	cr_assert_gt(stamped, 0);
	r = outbox(c, "plain");
	cr_assert_eq(PQntuples(r), 4);
	cr_assert_str_eq(PQgetvalue(r, 3, 0), "[\"9\"]");
	cr_assert_eq(atoll(PQgetvalue(r, 3, 2)), stamped);
	PQclear(r);
	/* Notified with the table as the payload, once per table and transaction (PostgreSQL
	 * folds identical notifications of a transaction). */
	PQconsumeInput(c);
	int notified = 0;
	PGnotify *n;
	char acct[64], plain[64];
	snprintf(acct, sizeof(acct), "%s.acct", schema);
	snprintf(plain, sizeof(plain), "%s.plain", schema);
	const char *order[] = {acct, plain, plain};
	while ((n = PQnotifies(c)) != NULL) {
		cr_assert_lt(notified, 3, "extra notification %s", n->extra);
		cr_assert_str_eq(n->extra, order[notified]);
		notified++;
		PQfreemem(n);
	}
	cr_assert_eq(notified, 3, "one per table per transaction");
	PQfinish(c);
}

Test(schema, bad_tables_and_missing_settings_get_clear_errors)
{
	char out[4096], args[256];
	snprintf(args, sizeof(args), "reflect %s.nokey %s.plain %s.missing", schema, schema,
		 schema);
	cr_assert_eq(reflector(args, out, sizeof(out)), 1, "%s", out);
	cr_assert_not_null(strstr(out, "has no primary key"), "%s", out);
	cr_assert_not_null(strstr(out, "does not exist"), "%s", out);
	cr_assert_not_null(strstr(out, "plain: reflected"), "good tables still done: %s", out);
	cr_assert_eq(reflector("reflect", out, sizeof(out)), 2, "no table: usage");
	write_config(NULL);
	cr_assert_eq(reflector("setup", out, sizeof(out)), 2, "%s", out);
	cr_assert_not_null(strstr(out, "postgres"), "%s", out);
	write_config("host=127.0.0.1 port=1 user=postgres password=s3cret");
	cr_assert_eq(reflector("setup", out, sizeof(out)), 1, "%s", out);
	cr_assert_null(strstr(out, "s3cret"), "password never printed: %s", out);
}

/*
 * Two reflect() calls at once while capture functions of dropped tables are left over: both
 * find them, the first drops them and the second waits for its locks. The second used to
 * print a function dropped meanwhile as a bare number ("DROP FUNCTION 18722": syntax error)
 * or fail on a function that no longer exists; it must succeed.
 */
Test(schema, concurrent_reflects_both_sweep_leftover_capture_functions)
{
	PGconn *a = db();
	PGconn *b = db();
	char q[1024];
	snprintf(q, sizeof(q),
		 "CREATE TABLE %s.o1 (id int PRIMARY KEY); CREATE TABLE %s.o2 (id int PRIMARY KEY);"
		 "SELECT lifeguard.reflect('%s.o1'); SELECT lifeguard.reflect('%s.o2');"
		 "DROP TABLE %s.o1; DROP TABLE %s.o2;"
		 "CREATE TABLE %s.b1 (id int PRIMARY KEY); CREATE TABLE %s.b2 (id int PRIMARY KEY)",
		 schema, schema, schema, schema, schema, schema, schema, schema);
	sql(a, q);
	sql(a, "BEGIN");
	snprintf(q, sizeof(q), "SELECT lifeguard.reflect('%s.b1')", schema);
	sql(a, q); /* drops the leftovers, holds their locks until COMMIT */
	snprintf(q, sizeof(q), "SELECT lifeguard.reflect('%s.b2')", schema);
	cr_assert_eq(PQsendQuery(b, q), 1);
	char wait[256];
	snprintf(
	    wait, sizeof(wait),
	    "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'",
	    PQbackendPID(b));
	bool waiting = false;
	for (int i = 0; i < 300 && !waiting; i++) {
		PGresult *r = PQexec(a, wait);
		waiting =
		    PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "1") == 0;
		PQclear(r);
		if (!waiting) {
			usleep(10000);
		}
	}
	cr_assert(waiting, "the second reflect() should wait for the first one's locks");
	sql(a, "COMMIT");
	PGresult *r = NULL;
	PGresult *last = NULL;
	while ((r = PQgetResult(b)) != NULL) {
		PQclear(last);
		last = r;
	}
	cr_assert_eq(PQresultStatus(last), PGRES_TUPLES_OK, "second reflect(): %s",
		     PQresultErrorMessage(last));
	PQclear(last);
	PQfinish(a);
	PQfinish(b);
}
