/*
 * The migration runner's database side, on a libpq connection of its own.
 *
 * Plain synchronous libpq rather than lg_conn: a migration needs a session of its own (an
 * advisory lock held across many transactions, BEGIN and COMMIT around a file) and the
 * statement position of an error (PG_DIAG_STATEMENT_POSITION) to name the failing line, and
 * it runs at start-up or from the CLI, where blocking the thread is what the caller wants.
 *
 * Statements are sent one at a time with the simple query protocol, each exactly as it stands
 * in the file (leading comments included), so the server's character position maps straight
 * back to a byte offset in the file.
 */
#include "migrate_int.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_int.h"
#include "error_int.h"

/* The advisory lock's first key ("LGMG"); the second is hashtext() of the tracking table, so
 * runners of one table serialize and runners of different tables do not. */
#define LOCK_CLASS "1279741255"

static void quiet(void *arg, const char *message)
{
	/* Notices (CREATE SCHEMA IF NOT EXISTS "already exists", RAISE NOTICE) are not errors
	 * and libpq's default printer would write them to stderr. */
	(void)arg;
	(void)message;
}

/* The first line of a libpq message: the CLI prints one-line reasons. */
static void first_line(char *dst, size_t size, const char *msg)
{
	size_t n = strcspn(msg, "\n");
	if (n >= size) {
		n = size - 1;
	}
	memcpy(dst, msg, n);
	dst[n] = '\0';
}

int lg__mig_connect(struct lg_migrate *m, struct lg_error *err)
{
	const char *kw[] = {"dbname", "fallback_application_name", NULL};
	const char *val[] = {m->conninfo, "lifeguard-migrate", NULL};
	m->pg = PQconnectdbParams(kw, val, 1);
	if (m->pg == NULL) {
		return lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
	}
	if (PQstatus(m->pg) != CONNECTION_OK) {
		char line[LG_ERROR_MSG_SIZE];
		first_line(line, sizeof(line), PQerrorMessage(m->pg));
		return lg__error_set(err, LG_ECONNECT, "cannot connect to PostgreSQL: %s", line);
	}
	PQsetNoticeProcessor(m->pg, quiet, NULL);
	return 0;
}

/* A failed result (or none) as an lg_error; r is freed. */
static int result_error(struct lg_migrate *m, PGresult *r, const char *what, struct lg_error *err)
{
	int rc;
	if (PQstatus(m->pg) == CONNECTION_BAD) {
		char line[LG_ERROR_MSG_SIZE];
		first_line(line, sizeof(line), PQerrorMessage(m->pg));
		rc = lg__error_set(err, LG_ECONNLOST, "%s: connection lost: %s", what, line);
	} else {
		const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		rc = lg__error_set(err, LG_ESERVER, "%s: %s", what,
				   primary != NULL ? primary : PQerrorMessage(m->pg));
		lg__error_set_sqlstate(err, PQresultErrorField(r, PG_DIAG_SQLSTATE));
	}
	PQclear(r);
	return rc;
}

/* Runs sql with text parameters (binary where fmts says so); *out (may be NULL) is Owned. */
int lg__mig_exec(struct lg_migrate *m, const char *sql, int n, const char *const *vals,
		 const int *lens, const int *fmts, PGresult **out, struct lg_error *err)
{
	PGresult *r = PQexecParams(m->pg, sql, n, NULL, vals, lens, fmts, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		return result_error(m, r, sql, err);
	}
	if (out != NULL) {
		*out = r;
	} else {
		PQclear(r);
	}
	return 0;
}

int lg__mig_lock(struct lg_migrate *m, struct lg_error *err)
{
	/*
	 * Polled with pg_try_advisory_lock, never waited for inside pg_advisory_lock: a waiter
	 * would sit in a statement holding a snapshot, and CREATE INDEX CONCURRENTLY in the
	 * holder's no-transaction migration waits for every older snapshot to go away, which
	 * PostgreSQL reports as a deadlock (40P01) of the waiters. Between tries the waiter's
	 * session is idle and holds nothing.
	 */
	const char *v[] = {m->table};
	useconds_t delay_us = 10000;
	for (;;) {
		PGresult *r = NULL;
		int rc =
		    lg__mig_exec(m, "SELECT pg_try_advisory_lock(" LOCK_CLASS ", hashtext($1))", 1,
				 v, NULL, NULL, &r, err);
		if (rc != 0) {
			return rc;
		}
		bool got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (got) {
			return 0;
		}
		/* Backs off to 0.5 s; the pid spreads runners that started together. */
		usleep(delay_us + (useconds_t)(getpid() % 16) * 1000u);
		delay_us = delay_us < 500000 ? delay_us * 2 : 500000;
	}
}

void lg__mig_unlock(struct lg_migrate *m)
{
	/* Failing to unlock needs no report: the lock ends with the session at the latest. */
	const char *v[] = {m->table};
	lg__mig_exec(m, "SELECT pg_advisory_unlock(" LOCK_CLASS ", hashtext($1))", 1, v, NULL, NULL,
		     NULL, NULL);
}

int lg__mig_ensure_table(struct lg_migrate *m, struct lg_error *err)
{
	char sql[512];
	snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", m->schema);
	int rc = lg__mig_exec(m, sql, 0, NULL, NULL, NULL, NULL, err);
	if (rc == 0) {
		snprintf(sql, sizeof(sql),
			 "CREATE TABLE IF NOT EXISTS %s (version bigint PRIMARY KEY, name text "
			 "NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL "
			 "DEFAULT now(), execution_ms bigint NOT NULL)",
			 m->table);
		rc = lg__mig_exec(m, sql, 0, NULL, NULL, NULL, NULL, err);
	}
	return rc;
}

/* Forgets what the last load found: applied state, and entries that exist only in the table. */
static void forget_applied(struct lg_migrate *m)
{
	size_t k = 0;
	for (size_t i = 0; i < m->nmigs; i++) {
		struct lg_migration *mg = &m->migs[i];
		if (mg->up_path == NULL) {
			lg__free((void *)mg->name);
			continue;
		}
		mg->state = LG_MIGRATION_PENDING;
		mg->applied_checksum[0] = '\0';
		mg->applied_at_us = 0;
		mg->execution_ms = 0;
		m->migs[k++] = *mg;
	}
	m->nmigs = k;
}

static int load_row(struct lg_migrate *m, PGresult *r, int i, struct lg_error *err)
{
	int64_t v = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	struct lg_migration *mg = lg__mig_find(m, v, true);
	if (mg == NULL) {
		return lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
	}
	if (mg->name == NULL) {
		mg->name = lg__strdup(PQgetvalue(r, i, 1));
		if (mg->name == NULL) {
			return lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
		}
	}
	mg->state = mg->up_path != NULL ? LG_MIGRATION_APPLIED : LG_MIGRATION_MISSING;
	snprintf(mg->applied_checksum, sizeof(mg->applied_checksum), "%s", PQgetvalue(r, i, 2));
	mg->applied_at_us = strtoll(PQgetvalue(r, i, 3), NULL, 10);
	mg->execution_ms = strtoll(PQgetvalue(r, i, 4), NULL, 10);
	return 0;
}

int lg__mig_load_applied(struct lg_migrate *m, struct lg_error *err)
{
	forget_applied(m);
	const char *v[] = {m->table};
	PGresult *r = NULL;
	int rc = lg__mig_exec(m, "SELECT to_regclass($1) IS NOT NULL", 1, v, NULL, NULL, &r, err);
	if (rc != 0) {
		return rc;
	}
	bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!exists) {
		return 0;
	}
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT version, name, checksum, (extract(epoch FROM applied_at) * 1000000)::int8,"
		 " execution_ms FROM %s ORDER BY version",
		 m->table);
	rc = lg__mig_exec(m, sql, 0, NULL, NULL, NULL, &r, err);
	if (rc != 0) {
		return rc;
	}
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		rc = load_row(m, r, i, err);
	}
	PQclear(r);
	return rc;
}

int lg__mig_checksum(struct lg_migrate *m, const char *data, size_t len, char out[65],
		     struct lg_error *err)
{
	/* Sent as binary bytea: the hash covers the file's bytes, whatever their encoding. */
	const char *v[] = {data};
	int lens[] = {(int)len};
	int fmts[] = {1};
	PGresult *r = NULL;
	int rc =
	    lg__mig_exec(m, "SELECT encode(sha256($1::bytea), 'hex')", 1, v, lens, fmts, &r, err);
	if (rc == 0) {
		snprintf(out, 65, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return rc;
}
