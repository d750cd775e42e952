/*
 * The `lifeguard migrate` binary ($LG_LIFEGUARD_BIN, set by meson), run as separate
 * processes: five concurrent `up` runs apply each migration exactly once, `status --json`
 * parses, a failing migration exits 1 naming its file, line and SQLSTATE, and bad input exits
 * 2 with a one-line reason. Each test has its own schema, tracking table and directory.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lg_test.h"
#include "lg_test_files.h"

#define RUNNERS 5

struct fx {
	char dir[64];
	char schema[64];
	char table[128];
	char out[128], errf[128]; /* where a run's stdout and stderr go */
	PGconn *pg;
};

static struct fx fx;

static void setup(void)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/lg-migrate-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(fx.dir));
	snprintf(fx.schema, sizeof(fx.schema), "lgmigcli_%d", (int)getpid());
	snprintf(fx.table, sizeof(fx.table), "%s.schema_migrations", fx.schema);
	snprintf(fx.out, sizeof(fx.out), "%s.out", fx.dir);
	snprintf(fx.errf, sizeof(fx.errf), "%s.err", fx.dir);
	fx.pg = PQconnectdb(lg_test_pg_dsn());
	cr_assert_eq(PQstatus(fx.pg), CONNECTION_OK, "%s", PQerrorMessage(fx.pg));
	PQclear(PQexec(fx.pg, "SET client_min_messages = warning"));
}

static void teardown(void)
{
	lg_test_cleanup(fx.pg, fx.schema, fx.dir, fx.out, fx.errf);
}

#define write_file(...) lg_test_write_file(fx.dir, __VA_ARGS__)
#define q_int(...)      lg_test_pq_int(fx.pg, __VA_ARGS__)

/* Starts `lifeguard migrate ARGS...` (args NULL-terminated); output to the files given. */
static pid_t spawn(const char *const *args, const char *out, const char *err)
{
	const char *argv[31] = {"migrate"};
	for (int n = 1; *args != NULL && n < 30; n++) {
		argv[n] = *args++;
	}
	return lg_test_spawn_lifeguard(argv, out, err);
}

#define wait_exit lg_test_wait_exit
#define slurp     lg_test_slurp

/* The options that point a run at this test's database objects and directory. */
#define COMMON "--dsn", lg_test_pg_dsn(), "--dir", fx.dir, "--table", fx.table

/* Runs `lifeguard migrate ARGS...` to the end; stdout and stderr in fx.out / fx.errf. */
#define RUN(...) run_args((const char *[]){__VA_ARGS__, NULL})

static int run_args(const char *const *args)
{
	return wait_exit(spawn(args, fx.out, fx.errf));
}

/* Exit status 2 and exactly one line on stderr containing want. */
static void assert_bad_input(int rc, const char *want)
{
	const char *e = slurp(fx.errf);
	cr_assert_eq(rc, 2, "exit %d, stderr: %s", rc, e);
	cr_assert_not_null(strstr(e, want), "stderr: %s", e);
	const char *nl = strchr(e, '\n');
	cr_assert(nl != NULL && nl[1] == '\0', "not one line: %s", e);
}

TestSuite(migrate_cli, .init = setup, .fini = teardown);

Test(migrate_cli, concurrent_ups_apply_each_migration_exactly_once)
{
	/* log has no unique key: a migration applied twice leaves its value twice. */
	write_file("1_log.up.sql",
		   "CREATE TABLE %1$s.log (v int);\n"
		   "INSERT INTO %1$s.log VALUES (1);\n",
		   fx.schema);
	for (int v = 2; v <= 6; v++) {
		char name[64];
		snprintf(name, sizeof(name), "%d_step.up.sql", v);
		write_file(name, "INSERT INTO %1$s.log VALUES (%2$d);\nSELECT pg_sleep(0.05);\n",
			   fx.schema, v);
	}
	write_file("7_idx.up.sql",
		   "-- lifeguard: no-transaction\n"
		   "CREATE INDEX CONCURRENTLY log_v ON %1$s.log (v);\n"
		   "INSERT INTO %1$s.log VALUES (7);\n",
		   fx.schema);
	pid_t pids[RUNNERS];
	const char *args[] = {"up", COMMON, NULL};
	char errs[RUNNERS][160];
	for (int i = 0; i < RUNNERS; i++) {
		snprintf(errs[i], sizeof(errs[i]), "%s.%d", fx.errf, i);
		pids[i] = spawn(args, "/dev/null", errs[i]);
	}
	for (int i = 0; i < RUNNERS; i++) {
		int rc = wait_exit(pids[i]);
		cr_assert_eq(rc, 0, "runner %d: %s", i, slurp(errs[i]));
		unlink(errs[i]);
	}
	cr_assert_eq(q_int("SELECT count(*) FROM %s", fx.table), 7);
	cr_assert_eq(q_int("SELECT count(*) FROM %s.log", fx.schema), 7);
	cr_assert_eq(q_int("SELECT count(DISTINCT v) FROM %s.log", fx.schema), 7);
}

Test(migrate_cli, status_json_down_and_redo)
{
	write_file("1_a.up.sql", "CREATE TABLE %s.a (id int);\n", fx.schema);
	write_file("1_a.down.sql", "DROP TABLE %s.a;\n", fx.schema);
	write_file("2_b.up.sql", "-- lifeguard: no-transaction\nCREATE TABLE %s.b (id int);\n",
		   fx.schema);
	write_file("2_b.down.sql", "DROP TABLE %s.b;\n", fx.schema);
	/* A dry run reports and changes nothing, not even the tracking table's existence. */
	cr_assert_eq(RUN("up", "--dry-run", COMMON), 0, "%s", slurp(fx.errf));
	cr_assert_not_null(strstr(slurp(fx.out), "would apply 2 b (no transaction)"), "%s",
			   slurp(fx.out));
	cr_assert_eq(q_int("SELECT count(*) FROM pg_namespace WHERE nspname = '%s'", fx.schema), 0);
	cr_assert_eq(RUN("up", "--to", "1", COMMON), 0, "%s", slurp(fx.errf));
	cr_assert_not_null(strstr(slurp(fx.out), "applied 1 a"), "%s", slurp(fx.out));
	cr_assert_eq(RUN("status", "--json", COMMON), 0, "%s", slurp(fx.errf));
	json_error_t jerr;
	json_t *doc = json_loads(slurp(fx.out), 0, &jerr);
	cr_assert_not_null(doc, "status --json: %s", jerr.text);
	cr_assert_eq(json_integer_value(json_object_get(doc, "applied")), 1);
	cr_assert_eq(json_integer_value(json_object_get(doc, "pending")), 1);
	json_t *migs = json_object_get(doc, "migrations");
	cr_assert_eq(json_array_size(migs), 2);
	json_t *a = json_array_get(migs, 0), *b = json_array_get(migs, 1);
	cr_assert_eq(json_integer_value(json_object_get(a, "version")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(a, "state")), "applied");
	cr_assert_eq(strlen(json_string_value(json_object_get(a, "checksum"))), 64);
	cr_assert(json_is_string(json_object_get(a, "applied_at")));
	cr_assert_str_eq(json_string_value(json_object_get(b, "state")), "pending");
	cr_assert(json_is_true(json_object_get(b, "no_transaction")));
	cr_assert(json_is_null(json_object_get(b, "applied_at")));
	json_decref(doc);

	cr_assert_eq(RUN("up", COMMON), 0, "%s", slurp(fx.errf));
	cr_assert_eq(RUN("redo", COMMON), 0, "%s", slurp(fx.errf));
	cr_assert_not_null(strstr(slurp(fx.out), "reverted 2 b"), "%s", slurp(fx.out));
	cr_assert_eq(q_int("SELECT count(*) FROM %s", fx.table), 2);
	cr_assert_eq(RUN("down", "--steps", "2", COMMON), 0, "%s", slurp(fx.errf));
	cr_assert_eq(q_int("SELECT count(*) FROM %s", fx.table), 0);
	cr_assert_eq(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = '%s'", fx.schema), 1,
		     "only the tracking table is left");
}

Test(migrate_cli, failing_migration_exits_1_with_file_line_and_sqlstate)
{
	write_file("1_bad.up.sql",
		   "CREATE TABLE %1$s.x (id int);\nINSERT INTO %1$s.x\n"
		   "  VALUES ('not a number');\n",
		   fx.schema);
	int rc = RUN("up", COMMON);
	const char *e = slurp(fx.errf);
	cr_assert_eq(rc, 1, "%s", e);
	cr_assert_not_null(strstr(e, "1_bad.up.sql:3: "), "%s", e);
	cr_assert_not_null(strstr(e, "(SQLSTATE 22P02)"), "%s", e);
	cr_assert_eq(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = '%s' AND "
			   "tablename = 'x'",
			   fx.schema),
		     0);

	write_file("1_bad.up.sql", "CREATE TABLE %s.x (id int);\n", fx.schema);
	cr_assert_eq(RUN("up", COMMON), 0, "%s", slurp(fx.errf));
	write_file("1_bad.up.sql", "CREATE TABLE %s.x (id bigint);\n", fx.schema);
	cr_assert_eq(RUN("validate", COMMON), 1);
	cr_assert_not_null(strstr(slurp(fx.errf), "changed after it was applied"), "%s",
			   slurp(fx.errf));
	cr_assert_eq(RUN("up", COMMON), 1);
}

Test(migrate_cli, bad_input_exits_2_with_one_line)
{
	write_file("1_a.up.sql", "SELECT 1;\n");
	assert_bad_input(RUN("up", "--bogus", COMMON), "unknown option '--bogus'");
	assert_bad_input(RUN("down", "--to", "3", COMMON), "does not take --to");
	assert_bad_input(RUN("down", "--steps", "zero", COMMON), "--steps 'zero'");
	assert_bad_input(RUN("sideways", COMMON), "unknown migrate command");

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/no-such-dir", fx.dir);
	assert_bad_input(RUN("up", "--dsn", lg_test_pg_dsn(), "--dir", missing),
			 "no-such-dir: No such file or directory");

	write_file("01_lead.up.sql", "SELECT 1;\n");
	assert_bad_input(RUN("status", COMMON), "01_lead.up.sql: malformed migration file name");
	char path[256];
	snprintf(path, sizeof(path), "%s/01_lead.up.sql", fx.dir);
	cr_assert_eq(unlink(path), 0);

	char dsn[128];
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=postgres connect_timeout=2",
		 lg_test_free_port());
	assert_bad_input(RUN("up", "--dsn", dsn, "--dir", fx.dir), "cannot connect to PostgreSQL");
	/* Without --dsn, LIFEGUARD_DSN is used. */
	setenv("LIFEGUARD_DSN", dsn, 1);
	assert_bad_input(RUN("status", "--dir", fx.dir), "cannot connect to PostgreSQL");
	unsetenv("LIFEGUARD_DSN");
}
