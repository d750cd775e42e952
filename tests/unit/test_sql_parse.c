/*
 * Unit tests for sql_parse.c and sql_cache.c: what PostgreSQL's parser says a statement does,
 * and the verdict cache.
 *
 * Each table entry states what the server's own behaviour demands: which statements are
 * plain reads (may share a sync segment and be re-sent), which may run on a shared pooled
 * connection, and which effects they carry. Texts are chosen to fool a keyword lexer: effects
 * hidden in function calls, nested WITH clauses and subqueries, keywords inside quotes.
 */
#include "sql_parse.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct verdict_case {
	const char *sql;
	enum lg__sql_kind kind;
	unsigned flags; /* exactly these effects */
	bool read;      /* lg__sql_is_read */
	bool shareable; /* lg__sql_shareable_conn */
};

static void expect_verdicts(const struct verdict_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct verdict_case *c = &cases[i];
		struct lg__sql_verdict v = lg__sql_parse(c->sql);
		cr_expect_eq(v.kind, c->kind, "[%s] kind %d, want %d", c->sql, v.kind, c->kind);
		cr_expect_eq(v.flags, c->flags, "[%s] flags 0x%x, want 0x%x (%s)", c->sql, v.flags,
			     c->flags, v.why != NULL ? v.why : "-");
		cr_expect_eq(lg__sql_is_read(v), c->read, "[%s] read %d", c->sql, c->read);
		cr_expect_eq(lg__sql_shareable_conn(v), c->shareable, "[%s] shareable %d", c->sql,
			     c->shareable);
		if (!c->read && c->kind != LG__SQL_EMPTY) {
			cr_expect_not_null(v.why, "[%s] names no reason", c->sql);
		}
	}
}

#define EXPECT(cases) expect_verdicts((cases), sizeof(cases) / sizeof((cases)[0]))

#define R  LG__SQL_READ
#define W  LG__SQL_WRITES
#define L  LG__SQL_LOCKS
#define SS LG__SQL_SESSION_FX
#define TS LG__SQL_TX_STATE
#define TC LG__SQL_TX_CONTROL
#define NB LG__SQL_NO_TXBLOCK

Test(sql_parse, plain_reads)
{
	static const struct verdict_case cases[] = {
	    {"SELECT 1", R, 0, true, true},
	    {"select * from t where a = $1", R, 0, true, true},
	    {"(SELECT 1) UNION (SELECT 2)", R, 0, true, true},
	    {"VALUES (1), (2)", R, 0, true, true},
	    {"TABLE t", R, 0, true, true},
	    {"SHOW work_mem", R, 0, true, true},
	    {"EXPLAIN SELECT 1", R, 0, true, true},
	    {"EXPLAIN DELETE FROM t", R, 0, true, true}, /* not executed without ANALYZE */
	    {"EXPLAIN (ANALYZE false) DELETE FROM t", R, 0, true, true},
	    {"EXPLAIN ANALYZE SELECT 1", R, 0, true, true},
	    {"SELECT 1;", R, 0, true, true},
	    {"WITH x AS (SELECT 1) SELECT * FROM x", R, 0, true, true},
	    {"SELECT current_setting('app.tenant')", R, 0, true, true},
	    {"SELECT pg_try_advisory_xact_lock_x FROM t", R, 0, true, true},
	    /* Keywords in literals, comments and identifiers are not statements. */
	    {"SELECT 'BEGIN; DELETE FROM t; SET x = 1'", R, 0, true, true},
	    {"SELECT $q$ FOR UPDATE $q$, E'\\' nextval(1)'", R, 0, true, true},
	    {"SELECT 1 -- ; DELETE FROM t\n", R, 0, true, true},
	    {"SELECT /* INTO x */ share, \"nextval\" FROM \"update\"", R, 0, true, true},
	    {"", LG__SQL_EMPTY, 0, true, true},
	    {"  -- only a comment", LG__SQL_EMPTY, 0, true, true},
	};
	EXPECT(cases);
}

Test(sql_parse, writes_hidden_in_reads)
{
	static const struct verdict_case cases[] = {
	    {"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", R, W, false, true},
	    {"SELECT * FROM (WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM u) s", R, W,
	     false, true},
	    {"SELECT 1 INTO new_table", R, W, false, true},
	    {"SELECT nextval('s')", R, W, false, true},
	    {"SELECT (SELECT pg_catalog.nextval('s'))", R, W, false, true},
	    {"SELECT setval('s', 1)", R, W, false, true},
	    {"SELECT pg_notify('c', 'p')", R, W, false, true},
	    {"SELECT lo_unlink(42)", R, W, false, true},
	    {"EXPLAIN ANALYZE DELETE FROM t", R, W, false, true},
	    {"EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", R, W, false, true},
	};
	EXPECT(cases);
}

Test(sql_parse, locking_reads)
{
	static const struct verdict_case cases[] = {
	    {"SELECT * FROM t FOR UPDATE", R, L, false, true},
	    {"SELECT * FROM t FOR KEY SHARE SKIP LOCKED", R, L, false, true},
	    {"SELECT * FROM (SELECT * FROM t FOR NO KEY UPDATE) s", R, L, false, true},
	    {"SELECT pg_advisory_xact_lock(1)", R, L, false, true},
	    {"SELECT pg_try_advisory_xact_lock_shared(1)", R, L, false, true},
	    {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", LG__SQL_UTILITY, L, false, true},
	};
	EXPECT(cases);
}

Test(sql_parse, session_state)
{
	static const struct verdict_case cases[] = {
	    {"SET search_path = app", LG__SQL_SESSION, SS, false, false},
	    {"set session authorization bob", LG__SQL_SESSION, SS, false, false},
	    {"RESET ALL", LG__SQL_SESSION, SS, false, false},
	    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", LG__SQL_SESSION, SS, false,
	     false},
	    {"SET LOCAL statement_timeout = 0", LG__SQL_SESSION, TS, false, true},
	    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", LG__SQL_SESSION, TS, false, true},
	    {"SELECT set_config('app.tenant', 'a', false)", R, SS, false, false},
	    {"SELECT set_config('app.tenant', 'a', $1)", R, SS, false, false},
	    {"SELECT set_config('app.tenant', 'a', true)", R, TS, false, true},
	    {"SELECT pg_catalog.set_config('x', 'y', 1 = 1)", R, SS, false, false},
	    {"SELECT pg_advisory_lock(1)", R, SS, false, false},
	    {"SELECT pg_try_advisory_lock(1, 2)", R, SS, false, false},
	    {"SELECT pg_advisory_lock_shared(1)", R, SS, false, false},
	    {"SELECT pg_advisory_unlock_all()", R, SS, false, false},
	    {"LISTEN chan", LG__SQL_SESSION, SS, false, false},
	    {"UNLISTEN *", LG__SQL_SESSION, SS, false, false},
	    {"PREPARE p AS SELECT 1", LG__SQL_SESSION, SS, false, false},
	    {"DEALLOCATE ALL", LG__SQL_SESSION, SS, false, false},
	    {"DISCARD ALL", LG__SQL_SESSION, SS, false, false},
	    {"LOAD 'auto_explain'", LG__SQL_SESSION, SS, false, false},
	    {"CREATE TEMP TABLE x (a int)", LG__SQL_DDL, W | SS, false, false},
	    {"CREATE TEMPORARY TABLE x AS SELECT 1", LG__SQL_DDL, W | SS, false, false},
	    {"SELECT 1 INTO TEMP x", R, W | SS, false, false},
	    {"DECLARE c CURSOR FOR SELECT 1", LG__SQL_SESSION, TS, false, true},
	    {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", LG__SQL_SESSION, TS | SS, false, false},
	    {"FETCH 10 FROM c", LG__SQL_SESSION, SS, false, false},
	    {"EXECUTE p(1)", LG__SQL_SESSION, SS | W | LG__SQL_OPAQUE, false, false},
	};
	EXPECT(cases);
}

Test(sql_parse, transaction_control)
{
	static const struct verdict_case cases[] = {
	    {"BEGIN", LG__SQL_TRANSACTION, TC, false, false},
	    {"begin isolation level serializable", LG__SQL_TRANSACTION, TC, false, false},
	    {"START TRANSACTION READ ONLY", LG__SQL_TRANSACTION, TC, false, false},
	    {"COMMIT AND CHAIN", LG__SQL_TRANSACTION, TC, false, false},
	    {"END", LG__SQL_TRANSACTION, TC, false, false},
	    {"ABORT", LG__SQL_TRANSACTION, TC, false, false},
	    {"SAVEPOINT s", LG__SQL_TRANSACTION, TC, false, false},
	    {"ROLLBACK TO SAVEPOINT s", LG__SQL_TRANSACTION, TC, false, false},
	    {"PREPARE TRANSACTION 'gx'", LG__SQL_TRANSACTION, TC, false, false},
	    {"COMMIT PREPARED 'gx'", LG__SQL_TRANSACTION, TC | NB, false, false},
	    {"  /* leading */ -- and line\n  Begin;", LG__SQL_TRANSACTION, TC, false, false},
	};
	EXPECT(cases);
}

Test(sql_parse, writes_and_utilities)
{
	static const struct verdict_case cases[] = {
	    {"INSERT INTO t VALUES (1) RETURNING id", LG__SQL_DML, W, false, true},
	    {"UPDATE t SET a = 1", LG__SQL_DML, W, false, true},
	    {"DELETE FROM t", LG__SQL_DML, W, false, true},
	    {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING", LG__SQL_DML, W,
	     false, true},
	    {"INSERT INTO t SELECT * FROM s FOR UPDATE", LG__SQL_DML, W | L, false, true},
	    {"CREATE TABLE t (a int)", LG__SQL_DDL, W, false, true},
	    {"TRUNCATE t", LG__SQL_DDL, W, false, true},
	    {"NOTIFY chan, 'payload'", LG__SQL_UTILITY, W, false, true},
	    {"CALL p()", LG__SQL_UTILITY, W | LG__SQL_OPAQUE, false, true},
	    {"DO $$BEGIN END$$", LG__SQL_UTILITY, W | LG__SQL_OPAQUE, false, true},
	    {"ANALYZE t", LG__SQL_UTILITY, W, false, true},
	    {"VACUUM t", LG__SQL_UTILITY, W | NB, false, true},
	    {"CREATE INDEX CONCURRENTLY i ON t (a)", LG__SQL_DDL, W | NB, false, true},
	    {"CREATE INDEX i ON t (a)", LG__SQL_DDL, W, false, true},
	    {"DROP INDEX CONCURRENTLY i", LG__SQL_DDL, W | NB, false, true},
	    {"REINDEX (CONCURRENTLY) TABLE t", LG__SQL_DDL, W | NB, false, true},
	    {"REINDEX TABLE t", LG__SQL_DDL, W, false, true},
	    {"REINDEX DATABASE d", LG__SQL_DDL, W | NB, false, true},
	    {"CREATE DATABASE d", LG__SQL_DDL, W | NB, false, true},
	    {"ALTER SYSTEM SET work_mem = '1MB'", LG__SQL_DDL, W | NB, false, true},
	    {"CHECKPOINT", LG__SQL_UTILITY, NB, false, true},
	    {"COPY t FROM STDIN", LG__SQL_UTILITY, LG__SQL_COPY | W, false, true},
	};
	EXPECT(cases);
}

Test(sql_parse, several_statements_carry_every_effect)
{
	static const struct verdict_case cases[] = {
	    {"SELECT 1; SELECT 2", LG__SQL_MULTI, 0, false, true},
	    {"SELECT 1; SET search_path = x", LG__SQL_MULTI, SS, false, false},
	    {"SELECT 1; COMMIT", LG__SQL_MULTI, TC, false, false},
	};
	EXPECT(cases);
}

Test(sql_parse, unparseable_text_is_passed_on_alone)
{
	static const struct verdict_case cases[] = {
	    {"SELEC 1", LG__SQL_UNPARSED, 0, false, true},
	    {"SELECT 'unterminated", LG__SQL_UNPARSED, 0, false, true},
	    {"SELECT 1 /* unterminated", LG__SQL_UNPARSED, 0, false, true},
	};
	EXPECT(cases);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1);
	cr_assert_not_null(s);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++) {
		memcpy(s + hl + i * ul, unit, ul);
	}
	memcpy(s + hl + ul * n, tail, tl + 1);
	return s;
}

/* libpg_query recurses without a stack guard: these texts crash a parse on an 8 MiB stack
 * (and on a coroutine's 256 KiB one with far less); on the parse thread they must not. */
Test(sql_parse, deep_trees_do_not_crash)
{
	size_t terms = (LG__SQL_PARSE_MAX - 16) / 2;
	char *sum = repeat("SELECT 1", "+1", terms, "");
	struct lg__sql_verdict v = lg__sql_parse(sum);
	/* Parsed, but its tree is deeper than jansson loads: valid SQL nobody inspected. */
	cr_expect_eq(v.kind, LG__SQL_UNPARSED, "kind %d", v.kind);
	cr_expect_eq(v.flags, LG__SQL_UNCHECKED);
	cr_expect(!lg__sql_shareable_conn(v), "not inspected, so not for a shared connection");
	free(sum);

	char *calls = repeat("SELECT ", "f(", 5000, "1");
	char *closed = repeat(calls, ")", 5000, "");
	v = lg__sql_parse(closed);
	cr_expect_eq(v.kind, LG__SQL_UNPARSED, "kind %d", v.kind); /* the grammar's own limit */
	free(calls);
	free(closed);

	char *longest = repeat("SELECT '", "x", LG__SQL_PARSE_MAX, "'");
	v = lg__sql_parse(longest);
	cr_expect_eq(v.kind, LG__SQL_UNPARSED);
	cr_expect_eq(v.flags, LG__SQL_UNCHECKED);
	cr_expect(!lg__sql_shareable_conn(v));
	cr_expect(strstr(v.why, "too long") != NULL, "%s", v.why);
	free(longest);
}

Test(sql_cache, hits_after_the_first_parse_and_evicts_the_least_recent)
{
	struct lg__sql_cache *c = lg__sql_cache_new(2);
	cr_assert_not_null(c);
	bool hit = true;
	struct lg__sql_verdict v = lg__sql_cache_get(c, "BEGIN", &hit);
	cr_expect(!hit);
	cr_expect_eq(v.flags, LG__SQL_TX_CONTROL);
	v = lg__sql_cache_get(c, "BEGIN", &hit);
	cr_expect(hit);
	cr_expect_eq(v.flags, LG__SQL_TX_CONTROL);
	(void)lg__sql_cache_get(c, "SELECT 1", &hit);
	cr_expect(!hit);
	(void)lg__sql_cache_get(c, "BEGIN", &hit); /* BEGIN is now the most recent */
	cr_expect(hit);
	(void)lg__sql_cache_get(c, "SELECT nextval('s')", &hit); /* evicts SELECT 1 */
	cr_expect(!hit);
	v = lg__sql_cache_get(c, "BEGIN", &hit); /* survived: it was the most recent */
	cr_expect(hit);
	v = lg__sql_cache_get(c, "SELECT 1", &hit); /* evicts nextval */
	cr_expect(!hit);
	cr_expect(lg__sql_is_read(v));
	v = lg__sql_cache_get(c, "SELECT nextval('s')", &hit); /* evicts BEGIN */
	cr_expect(!hit);
	cr_expect_eq(v.flags, LG__SQL_WRITES);
	(void)lg__sql_cache_get(c, "SELECT 1", &hit);
	cr_expect(hit);
	(void)lg__sql_cache_get(c, "BEGIN", &hit);
	cr_expect(!hit);
	lg__sql_cache_free(c);
	lg__sql_cache_free(NULL);
}

Test(sql_cache, many_texts_stay_bounded_and_correct)
{
	struct lg__sql_cache *c = lg__sql_cache_new(64);
	cr_assert_not_null(c);
	char sql[64];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 500; i++) {
			snprintf(sql, sizeof(sql), i % 2 ? "SELECT %d" : "UPDATE t SET a = %d", i);
			bool hit;
			struct lg__sql_verdict v = lg__sql_cache_get(c, sql, &hit);
			cr_expect_eq(lg__sql_is_read(v), i % 2 == 1, "%s", sql);
			/* 500 texts through 64 entries in order: never a hit. */
			cr_expect(!hit, "%s hit", sql);
		}
	}
	bool hit;
	(void)lg__sql_cache_get(c, "SELECT 499", &hit);
	cr_expect(hit);
	lg__sql_cache_free(c);
}
