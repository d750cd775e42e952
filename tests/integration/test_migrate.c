/*
 * The migration library (libguard/migrate.h) against the shared PostgreSQL: up, down, redo
 * and status; a failing migration leaves nothing behind and names its file, line and
 * SQLSTATE; a changed applied file is refused; a no-transaction migration runs CREATE INDEX
 * CONCURRENTLY. Each test works in a schema and a directory of its own (names carry the pid
 * and a counter), with its tracking table inside that schema, so tests never share state.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>

#include "lg_test.h"
#include "lg_test_files.h"

struct fx {
	char dir[64];
	char schema[64];
	char table[128];
	PGconn *pg;
};

static struct fx fx;

static void setup(void)
{
	static int seq;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/lg-migrate-XXXXXX");
	cr_assert_not_null(mkdtemp(fx.dir));
	snprintf(fx.schema, sizeof(fx.schema), "lgmig_%d_%d", (int)getpid(), seq++);
	snprintf(fx.table, sizeof(fx.table), "%s.schema_migrations", fx.schema);
	fx.pg = PQconnectdb(lg_test_pg_dsn());
	cr_assert_eq(PQstatus(fx.pg), CONNECTION_OK, "%s", PQerrorMessage(fx.pg));
	PQclear(PQexec(fx.pg, "SET client_min_messages = warning"));
}

static void teardown(void)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", fx.schema);
	PQclear(PQexec(fx.pg, sql));
	PQfinish(fx.pg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	cr_assert_eq(system(cmd), 0);
}

#define write_file(...) lg_test_write_file(fx.dir, __VA_ARGS__)
#define q_int(...)      lg_test_pq_int(fx.pg, __VA_ARGS__)

static struct lg_migrate *open_ok(void)
{
	struct lg_migrate_config cfg = {
	    .conninfo = lg_test_pg_dsn(), .dir = fx.dir, .table = fx.table};
	struct lg_migrate *m;
	struct lg_error err;
	cr_assert_eq(lg_migrate_new(&cfg, &m, &err), 0, "%s", err.message);
	return m;
}

static bool table_exists(const char *name)
{
	return q_int("SELECT (to_regclass('%s.%s') IS NOT NULL)::int", fx.schema, name) == 1;
}

static long long applied_count(void)
{
	return q_int("SELECT count(*) FROM %s", fx.table);
}

TestSuite(migrate, .init = setup, .fini = teardown);

Test(migrate, up_down_redo_and_status)
{
	write_file("1_items.up.sql",
		   "CREATE TABLE %1$s.items (id int);\n"
		   "INSERT INTO %1$s.items VALUES (1);\n",
		   fx.schema);
	write_file("1_items.down.sql", "DROP TABLE %s.items;\n", fx.schema);
	write_file("2_more.up.sql", "INSERT INTO %s.items VALUES (2);\n", fx.schema);
	write_file("2_more.down.sql", "DELETE FROM %s.items WHERE id = 2;\n", fx.schema);
	struct lg_migrate *m = open_ok();
	struct lg_error err;
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), 0, "%s", err.message);
	cr_assert_eq(applied_count(), 2);
	cr_assert_eq(q_int("SELECT count(*) FROM %s.items", fx.schema), 2);

	const struct lg_migration *migs;
	size_t n;
	cr_assert_eq(lg_migrate_status(m, &migs, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(migs[i].state, LG_MIGRATION_APPLIED);
		cr_assert_eq(strlen(migs[i].checksum), 64);
		cr_assert_str_eq(migs[i].checksum, migs[i].applied_checksum);
		cr_assert_gt(migs[i].applied_at_us, 0);
	}
	cr_assert_str_eq(migs[1].name, "more");

	/* redo: the down file deletes row 2, the up file inserts it again. */
	cr_assert_eq(lg_migrate_redo(m, &err), 0, "%s", err.message);
	cr_assert_eq(q_int("SELECT count(*) FROM %s.items WHERE id = 2", fx.schema), 1);
	cr_assert_eq(applied_count(), 2);

	cr_assert_eq(lg_migrate_down(m, 2, &err), 0, "%s", err.message);
	cr_assert_not(table_exists("items"));
	cr_assert_eq(applied_count(), 0);

	cr_assert_eq(lg_migrate_up(m, 1, false, &err), 0, "%s", err.message);
	cr_assert_eq(applied_count(), 1);
	cr_assert_eq(q_int("SELECT count(*) FROM %s.items", fx.schema), 1);
	lg_migrate_free(m);
}

Test(migrate, failing_migration_leaves_nothing_and_names_file_line_sqlstate)
{
	write_file("1_ok.up.sql", "CREATE TABLE %s.ok (id int);\n", fx.schema);
	write_file("2_bad.up.sql",
		   "-- line 1\n"
		   "CREATE TABLE %1$s.half (id int);\n"
		   "INSERT INTO %1$s.half VALUES (1);\n"
		   "\n"
		   "SELECT *\n"
		   "  FROM %1$s.no_such_table;\n",
		   fx.schema);
	struct lg_migrate *m = open_ok();
	struct lg_error err;
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), LG_ESERVER);
	cr_assert_not_null(strstr(err.message, "2_bad.up.sql:6: "), "%s", err.message);
	cr_assert_str_eq(err.sqlstate, "42P01");
	const struct lg_migrate_failure *f = lg_migrate_last_failure(m);
	cr_assert_eq(f->kind, LG_MIGRATE_FAIL_SQL);
	cr_assert_eq(f->version, 2);
	cr_assert_eq(f->line, 6);
	cr_assert_str_eq(f->sqlstate, "42P01");
	cr_assert_not_null(strstr(f->file, "2_bad.up.sql"));
	/* Migration 1 committed on its own; nothing of 2 remains. */
	cr_assert(table_exists("ok"));
	cr_assert_not(table_exists("half"));
	cr_assert_eq(applied_count(), 1);

	/* No position from the server (a run-time error): the statement's first line, past
	 * its leading comments. */
	write_file("2_bad.up.sql", "SELECT 1;\n-- why\n/* not */\nSELECT 1 / 0;\n");
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), LG_ESERVER);
	cr_assert_not_null(strstr(err.message, "2_bad.up.sql:4: "), "%s", err.message);
	cr_assert_str_eq(err.sqlstate, "22012");
	cr_assert_eq(applied_count(), 1);

	/* The server counts characters, the file has bytes: 24 two-byte characters before the
	 * error would move a byte-for-character reading back to line 2. */
	write_file("2_bad.up.sql",
		   "SELECT 'éééééééééééééééééééééééé'\n"
		   "  , 1\n"
		   "  FROM %s.no_such_table;\n",
		   fx.schema);
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), LG_ESERVER);
	cr_assert_not_null(strstr(err.message, "2_bad.up.sql:3: "), "%s", err.message);
	cr_assert_eq(lg_migrate_last_failure(m)->line, 3);
	lg_migrate_free(m);
}

Test(migrate, syntax_errors_and_transaction_control_are_found_before_running)
{
	write_file("1_typo.up.sql", "CREATE TABLE %s.typo (id int);\n\nSELEC 1;\n", fx.schema);
	struct lg_migrate *m = open_ok();
	struct lg_error err;
	cr_assert_eq(lg_migrate_validate(m, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "1_typo.up.sql:3: "), "%s", err.message);
	cr_assert_str_eq(err.sqlstate, "42601");
	cr_assert_neq(lg_migrate_up(m, 0, false, &err), 0);
	cr_assert_not(table_exists("typo"));

	write_file("1_typo.up.sql", "CREATE TABLE %s.typo (id int);\nCOMMIT;\n", fx.schema);
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "1_typo.up.sql:2: transaction control"), "%s",
			   err.message);
	cr_assert_eq(lg_migrate_last_failure(m)->kind, LG_MIGRATE_FAIL_INPUT);
	cr_assert_not(table_exists("typo"));
	lg_migrate_free(m);
}

Test(migrate, changed_checksum_is_refused)
{
	write_file("1_t.up.sql", "CREATE TABLE %s.t (id int);\n", fx.schema);
	struct lg_migrate *m = open_ok();
	struct lg_error err;
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), 0, "%s", err.message);
	lg_migrate_free(m);

	write_file("1_t.up.sql", "CREATE TABLE %s.t (id int, extra text);\n", fx.schema);
	write_file("2_next.up.sql", "CREATE TABLE %s.next (id int);\n", fx.schema);
	m = open_ok();
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "1_t.up.sql: changed after it was applied"), "%s",
			   err.message);
	cr_assert_eq(lg_migrate_last_failure(m)->kind, LG_MIGRATE_FAIL_CHECKSUM);
	cr_assert_not(table_exists("next"), "nothing runs after a refused checksum");
	cr_assert_eq(lg_migrate_validate(m, &err), LG_EINVAL);
	cr_assert_eq(lg_migrate_last_failure(m)->kind, LG_MIGRATE_FAIL_CHECKSUM);
	const struct lg_migration *migs;
	size_t n;
	cr_assert_eq(lg_migrate_status(m, &migs, &n, &err), 0, "%s", err.message);
	cr_assert_eq(migs[0].state, LG_MIGRATION_CHANGED);
	cr_assert_str_neq(migs[0].checksum, migs[0].applied_checksum);
	cr_assert_eq(migs[1].state, LG_MIGRATION_PENDING);
	lg_migrate_free(m);

	/* An applied migration whose file is gone is refused as well. */
	char path[256];
	snprintf(path, sizeof(path), "%s/1_t.up.sql", fx.dir);
	cr_assert_eq(unlink(path), 0);
	m = open_ok();
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), LG_ENOTFOUND);
	cr_assert_not_null(strstr(err.message, "is applied but its up file is missing"), "%s",
			   err.message);
	cr_assert_eq(lg_migrate_last_failure(m)->kind, LG_MIGRATE_FAIL_MISSING);
	cr_assert_not(table_exists("next"));
	cr_assert_eq(lg_migrate_status(m, &migs, &n, &err), 0, "%s", err.message);
	cr_assert_eq(migs[0].state, LG_MIGRATION_MISSING);
	cr_assert_null(migs[0].up_path);
	lg_migrate_free(m);
}

Test(migrate, no_transaction_migration_creates_index_concurrently)
{
	write_file("1_t.up.sql", "CREATE TABLE %1$s.t (id int);\nINSERT INTO %1$s.t VALUES (1);\n",
		   fx.schema);
	write_file("2_idx.up.sql", "CREATE INDEX CONCURRENTLY t_id ON %s.t (id);\n", fx.schema);
	struct lg_migrate *m = open_ok();
	struct lg_error err;
	/* Without the marker it is refused before anything of it is sent. */
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "2_idx.up.sql:1: "), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "-- lifeguard: no-transaction"), "%s", err.message);
	cr_assert_eq(applied_count(), 1);
	lg_migrate_free(m);

	write_file("2_idx.up.sql",
		   "-- lifeguard: no-transaction\n"
		   "CREATE INDEX CONCURRENTLY t_id ON %1$s.t (id);\n"
		   "CREATE INDEX CONCURRENTLY t_id2 ON %1$s.t (id);\n",
		   fx.schema);
	write_file("2_idx.down.sql",
		   "-- lifeguard: no-transaction\n"
		   "DROP INDEX CONCURRENTLY %1$s.t_id;\n"
		   "DROP INDEX CONCURRENTLY %1$s.t_id2;\n",
		   fx.schema);
	m = open_ok();
	cr_assert_eq(lg_migrate_up(m, 0, false, &err), 0, "%s", err.message);
	cr_assert_eq(applied_count(), 2);
	cr_assert_eq(q_int("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = "
			   "i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
			   "n.nspname = '%s' AND c.relname IN ('t_id', 't_id2') AND i.indisvalid",
			   fx.schema),
		     2);
	const struct lg_migration *migs;
	size_t n;
	cr_assert_eq(lg_migrate_status(m, &migs, &n, &err), 0, "%s", err.message);
	cr_assert(migs[1].no_transaction);
	cr_assert_not(migs[0].no_transaction);
	cr_assert_eq(lg_migrate_down(m, 1, &err), 0, "%s", err.message);
	cr_assert_eq(
	    q_int("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
		  "c.relnamespace WHERE n.nspname = '%s' AND c.relname IN ('t_id', 't_id2')",
		  fx.schema),
	    0);
	lg_migrate_free(m);
}

Test(migrate, create_picks_the_next_version)
{
	struct lg_error err;
	int64_t v;
	char path[256];
	cr_assert_eq(lg_migrate_create(fx.dir, "first", &v, path, sizeof(path), &err), 0, "%s",
		     err.message);
	cr_assert_eq(v, 1);
	write_file("41_jump.up.sql", "SELECT 1;\n");
	cr_assert_eq(lg_migrate_create(fx.dir, "next_one", &v, path, sizeof(path), &err), 0, "%s",
		     err.message);
	cr_assert_eq(v, 42);
	cr_assert_not_null(strstr(path, "/42_next_one.up.sql"), "%s", path);
	cr_assert_eq(access(path, R_OK), 0);
	cr_assert_eq(lg_migrate_create(fx.dir, "bad name", &v, NULL, 0, &err), LG_EINVAL);
	write_file("7_x.txt.sql", "SELECT 1;\n");
	cr_assert_eq(lg_migrate_create(fx.dir, "more", &v, NULL, 0, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "malformed migration file name"), "%s", err.message);
}
