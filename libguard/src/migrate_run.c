/*
 * Running one migration file.
 *
 * Happy path (transactional): read the file, split it into statements with PostgreSQL's
 * parser, refuse statements that cannot work inside our transaction (BEGIN/COMMIT, CREATE
 * INDEX CONCURRENTLY and friends, COPY), take the server's SHA-256 of the up file, then
 * BEGIN, each statement, the tracking row (INSERT for up, DELETE for down), COMMIT.
 * A file marked "-- lifeguard: no-transaction" runs each statement in autocommit and writes
 * the tracking row after the last one.
 *
 * Failure: a transactional file is rolled back and leaves nothing behind; a no-transaction
 * file keeps the statements that completed (the error says so) and has no tracking row, so the
 * next run starts it again from the top. Either way the error reads "FILE:LINE: message" with
 * the SQLSTATE, the line found from the server's error position inside the statement, or the
 * statement's first line when the server gives no position.
 */
#include "migrate_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc_int.h"
#include "error_int.h"
#include "sql_parse.h"

#define NO_TX_HINT "add the line '-- lifeguard: no-transaction' to the file"

struct run {
	struct lg_migrate *m;
	struct lg_migration *mg;
	const char *path;
	struct lg__mig_text text;
	struct lg__mig_stmt *stmts;
	size_t n;
	bool notx;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reports "FILE:LINE: message" (line of byte offset off in the file) and records it. */
static int fail_at(struct run *r, enum lg_migrate_fail_kind kind, int code, size_t off,
		   const char *sqlstate, const char *msg, struct lg_error *e)
{
	int line = lg__mig_line_at(r->text.data, off);
	lg__error_set(e, code, "%s:%d: %s%s", r->path, line, msg,
		      r->notx && kind == LG_MIGRATE_FAIL_SQL
			  ? " (no-transaction migration: the statements before this one stay "
			    "applied)"
			  : "");
	lg__error_set_sqlstate(e, sqlstate);
	return lg__mig_fail(r->m, kind, r->mg->version, r->path, line, e);
}

static char *stmt_text(const struct run *r, size_t i)
{
	const struct lg__mig_stmt *s = &r->stmts[i];
	char *sql = lg__malloc(s->len + 1);
	if (sql != NULL) {
		memcpy(sql, r->text.data + s->offset, s->len);
		sql[s->len] = '\0';
	}
	return sql;
}

static size_t stmt_start(const struct run *r, size_t i)
{
	const struct lg__mig_stmt *s = &r->stmts[i];
	return s->offset + lg__mig_skip_blank(r->text.data + s->offset, s->len);
}

/* Refuses, before anything is sent, what cannot work in the chosen mode. */
static int check_stmts(struct run *r, struct lg_error *e)
{
	for (size_t i = 0; i < r->n; i++) {
		char *sql = stmt_text(r, i);
		if (sql == NULL) {
			return lg__error_set(e, LG_ENOMEM, "migrations: out of memory");
		}
		struct lg__sql_verdict v = lg__sql_parse(sql);
		lg__free(sql);
		const char *why = NULL;
		if (v.flags & LG__SQL_COPY) {
			why = "COPY is not supported in migrations (use INSERT)";
		} else if (!r->notx && (v.flags & LG__SQL_TX_CONTROL)) {
			why = "transaction control inside a migration, which runs in a transaction "
			      "of its own; to manage transactions yourself, " NO_TX_HINT;
		} else if (!r->notx && (v.flags & LG__SQL_NO_TXBLOCK)) {
			why = "this statement cannot run inside a transaction block: " NO_TX_HINT;
		}
		if (why != NULL) {
			return fail_at(r, LG_MIGRATE_FAIL_INPUT, LG_EINVAL, stmt_start(r, i), NULL,
				       why, e);
		}
	}
	return 0;
}

static int run_stmt(struct run *r, size_t i, struct lg_error *e)
{
	char *sql = stmt_text(r, i);
	if (sql == NULL) {
		return lg__error_set(e, LG_ENOMEM, "migrations: out of memory");
	}
	PGresult *res = PQexec(r->m->pg, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
		PQclear(res);
		lg__free(sql);
		return 0;
	}
	size_t off = stmt_start(r, i);
	int rc;
	if (PQstatus(r->m->pg) == CONNECTION_BAD) {
		rc = fail_at(r, LG_MIGRATE_FAIL_DB, LG_ECONNLOST, off, NULL,
			     "connection lost during this statement (outcome unknown)", e);
	} else {
		/* The position counts characters of the text sent, which is the statement as it
		 * stands in the file from r->stmts[i].offset. */
		const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
		if (pos != NULL && atol(pos) > 0) {
			off = r->stmts[i].offset +
			      lg__mig_char_to_byte(sql, r->stmts[i].len, atol(pos));
		}
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		rc = fail_at(r, LG_MIGRATE_FAIL_SQL, LG_ESERVER, off,
			     PQresultErrorField(res, PG_DIAG_SQLSTATE),
			     msg != NULL ? msg : PQerrorMessage(r->m->pg), e);
	}
	PQclear(res);
	lg__free(sql);
	return rc;
}

/* The tracking row: written after an up file, deleted after a down file. */
static int record(struct run *r, bool up, int64_t ms, struct lg_error *e)
{
	char sql[512], ver[24], msbuf[24];
	snprintf(ver, sizeof(ver), "%" PRId64, r->mg->version);
	snprintf(msbuf, sizeof(msbuf), "%" PRId64, ms);
	const char *v[] = {ver, r->mg->name, r->mg->checksum, msbuf};
	if (up) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO %s (version, name, checksum, execution_ms) VALUES ($1, $2, "
			 "$3, $4)",
			 r->m->table);
		return lg__mig_exec(r->m, sql, 4, v, NULL, NULL, NULL, e);
	}
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE version = $1", r->m->table);
	return lg__mig_exec(r->m, sql, 1, v, NULL, NULL, NULL, e);
}

static int prepare(struct run *r, bool up, struct lg_error *e)
{
	int rc = lg__mig_read(r->path, &r->text, e);
	if (rc != 0) {
		return lg__mig_fail(r->m, LG_MIGRATE_FAIL_INPUT, r->mg->version, r->path, 0, e);
	}
	r->notx = lg__mig_no_tx(r->text.data);
	int line;
	rc = lg__mig_split(r->text.data, &r->stmts, &r->n, &line, e);
	if (rc == LG_EINVAL) {
		char msg[LG_ERROR_MSG_SIZE];
		snprintf(msg, sizeof(msg), "%s", e->message);
		lg__error_set(e, rc, "%s:%d: %s", r->path, line, msg);
		lg__error_set_sqlstate(e, "42601");
		return lg__mig_fail(r->m, LG_MIGRATE_FAIL_SQL, r->mg->version, r->path, line, e);
	}
	if (rc == 0) {
		rc = check_stmts(r, e);
	}
	if (rc == 0 && up) {
		rc = lg__mig_checksum(r->m, r->text.data, r->text.len, r->mg->checksum, e);
	}
	return rc;
}

int lg__mig_run(struct lg_migrate *m, struct lg_migration *mg, bool up, int64_t *ms,
		struct lg_error *e)
{
	struct run r = {.m = m, .mg = mg, .path = up ? mg->up_path : mg->down_path};
	if (r.path == NULL) {
		lg__error_set(e, LG_EINVAL, "migration %" PRId64 " (%s) has no %s file",
			      mg->version, mg->name, up ? "up" : "down");
		return lg__mig_fail(m, LG_MIGRATE_FAIL_MISSING, mg->version, NULL, 0, e);
	}
	int rc = prepare(&r, up, e);
	int64_t t0 = now_ms();
	if (rc == 0 && !r.notx) {
		rc = lg__mig_exec(m, "BEGIN", 0, NULL, NULL, NULL, NULL, e);
	}
	for (size_t i = 0; rc == 0 && i < r.n; i++) {
		rc = run_stmt(&r, i, e);
	}
	*ms = now_ms() - t0;
	if (rc == 0) {
		rc = record(&r, up, *ms, e);
	}
	if (rc == 0 && !r.notx) {
		rc = lg__mig_exec(m, "COMMIT", 0, NULL, NULL, NULL, NULL, e);
	}
	if (rc != 0 && m->fail.kind == LG_MIGRATE_FAIL_NONE) {
		/* The tracking row or COMMIT failed (a deferred constraint, say): no line. */
		char msg[LG_ERROR_MSG_SIZE], state[6];
		snprintf(msg, sizeof(msg), "%s", e->message);
		snprintf(state, sizeof(state), "%s", e->sqlstate);
		lg__error_set(e, rc, "%s: %s", r.path, msg);
		lg__error_set_sqlstate(e, state);
		lg__mig_fail(m, rc == LG_ESERVER ? LG_MIGRATE_FAIL_SQL : LG_MIGRATE_FAIL_DB,
			     mg->version, r.path, 0, e);
	}
	if (rc != 0 && !r.notx && PQtransactionStatus(m->pg) != PQTRANS_IDLE) {
		PQclear(PQexec(m->pg, "ROLLBACK"));
	}
	lg__free(r.stmts);
	lg__mig_text_free(&r.text);
	return rc;
}

int lg__mig_check_file(struct lg_migrate *m, struct lg_migration *mg, const char *path,
		       struct lg_error *e)
{
	struct run r = {.m = m, .mg = mg, .path = path};
	int rc = prepare(&r, false, e);
	lg__free(r.stmts);
	lg__mig_text_free(&r.text);
	return rc;
}
