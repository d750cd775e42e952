/*
 * Unit tests for sql_classify.c: which statements may share a pipeline sync segment, and
 * which texts are surely read-only.
 *
 * The cases are tables of SQL chosen to trip a lexer: keywords and semicolons hidden in
 * every kind of quote and comment, keywords as prefixes of identifiers, odd spacing and case.
 * Each table entry states the verdict the server's own behaviour demands.
 */
#include "sql_classify.h"

#include <criterion/criterion.h>
#include <stddef.h>

struct kind_case {
	const char *sql;
	enum lg__sql_kind kind;
};

static const char *kind_name(enum lg__sql_kind kind)
{
	switch (kind) {
	case LG__SQL_SHAREABLE:
		return "SHAREABLE";
	case LG__SQL_ALONE:
		return "ALONE";
	case LG__SQL_UNSUPPORTED:
		return "UNSUPPORTED";
	}
	return "?";
}

static void expect_kinds(const struct kind_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum lg__sql_kind got = lg__sql_classify(cases[i].sql);
		cr_expect_eq(got, cases[i].kind, "[%s] gave %s, want %s", cases[i].sql,
			     kind_name(got), kind_name(cases[i].kind));
	}
}

#define EXPECT_KINDS(cases) expect_kinds((cases), sizeof(cases) / sizeof((cases)[0]))

#define S LG__SQL_SHAREABLE
#define A LG__SQL_ALONE
#define U LG__SQL_UNSUPPORTED

Test(sql_classify, ordinary_statements_share)
{
	static const struct kind_case cases[] = {
	    {"SELECT 1", S},
	    {"select * from t where a = $1", S},
	    {"INSERT INTO t VALUES (1) RETURNING id", S},
	    {"UPDATE t SET a = 1", S},
	    {"DELETE FROM t", S},
	    {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING", S},
	    {"CREATE TABLE t (a int)", S},
	    {"CREATE INDEX i ON t (a)", S},
	    {"DROP TABLE t", S},
	    {"ALTER TABLE t ADD COLUMN b int", S},
	    {"ALTER TABLE t ALTER COLUMN b SET DEFAULT 1", S},
	    {"TRUNCATE t", S},
	    {"(SELECT 1)", S},
	    {"((SELECT 1)) UNION (SELECT 2)", S},
	    {"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", S},
	    {"VALUES (1), (2)", S},
	    {"TABLE t", S},
	    {"SHOW work_mem", S},
	    {"EXPLAIN SELECT 1", S},
	    {"EXPLAIN ANALYZE SELECT 1", S},
	    {"EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", S},
	    {"ANALYZE t", S},
	    {"NOTIFY chan, 'payload'", S},
	    {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", S},
	    {"SELECT 1;", S},
	    {"SELECT 1;;  ; -- trailing\n/* comment */", S},
	    {"", S},
	    {"   \n\t", S},
	    {"-- only a comment", S},
	    {"/* only /* nested */ comment */", S},
	    {"SELECT settings FROM t", S},
	    {"SELECT * FROM begin_log", S},
	    {"INSERT INTO vacuum_stats VALUES (1)", S},
	    {"CREATE DATABASE_LOG_TABLE", S},
	    {"REFRESH MATERIALIZED VIEW mv", S},
	    {"GRANT SELECT ON t TO r", S},
	    {"FETCH 10 FROM c", S},
	    {"EXECUTE stmt(1)", S},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, transaction_control_travels_alone)
{
	static const struct kind_case cases[] = {
	    {"BEGIN", A},
	    {"begin isolation level serializable", A},
	    {"START TRANSACTION READ ONLY", A},
	    {"COMMIT", A},
	    {"COMMIT AND CHAIN", A},
	    {"END", A},
	    {"ROLLBACK", A},
	    {"ROLLBACK TO SAVEPOINT s", A},
	    {"ABORT", A},
	    {"SAVEPOINT s", A},
	    {"RELEASE SAVEPOINT s", A},
	    {"PREPARE TRANSACTION 'gx'", A},
	    {"COMMIT PREPARED 'gx'", A},
	    {"ROLLBACK PREPARED 'gx'", A},
	    {"  /* leading */ -- and line\n  Begin;", A},
	    {"(COMMIT)", A},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, session_state_travels_alone)
{
	static const struct kind_case cases[] = {
	    {"SET search_path = app", A},
	    {"SET LOCAL statement_timeout = 0", A},
	    {"set session authorization bob", A},
	    {"SET ROLE admin", A},
	    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", A},
	    {"RESET ALL", A},
	    {"LISTEN chan", A},
	    {"UNLISTEN *", A},
	    {"DISCARD ALL", A},
	    {"LOAD 'auto_explain'", A},
	    {"PREPARE q (int) AS SELECT $1", A},
	    {"DEALLOCATE ALL", A},
	    {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", A},
	    {"CLOSE c", A},
	    {"CALL proc()", A},
	    {"DO $$BEGIN COMMIT; END$$", A},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, statements_barred_from_transaction_blocks_travel_alone)
{
	static const struct kind_case cases[] = {
	    {"VACUUM", A},
	    {"vacuum (verbose, analyze) t", A},
	    {"CREATE DATABASE d", A},
	    {"DROP DATABASE IF EXISTS d", A},
	    {"CREATE TABLESPACE ts LOCATION '/x'", A},
	    {"DROP TABLESPACE ts", A},
	    {"ALTER SYSTEM SET work_mem = '64MB'", A},
	    {"ALTER DATABASE d SET TABLESPACE ts", A},
	    {"CREATE SUBSCRIPTION s CONNECTION '' PUBLICATION p", A},
	    {"DROP SUBSCRIPTION s", A},
	    {"CREATE INDEX CONCURRENTLY i ON t (a)", A},
	    {"create unique index concurrently if not exists i on t (a)", A},
	    {"DROP INDEX CONCURRENTLY i", A},
	    {"REINDEX TABLE CONCURRENTLY t", A},
	    {"REINDEX (VERBOSE) DATABASE d", A},
	    {"ALTER TABLE p DETACH PARTITION c CONCURRENTLY", A},
	    {"REFRESH MATERIALIZED VIEW CONCURRENTLY mv", A},
	    {"CLUSTER", A},
	    {"CLUSTER t USING i", A},
	    {"CHECKPOINT", A},
	    {"CREATE/**/DATABASE d", A},
	    {"CREATE -- x\n DATABASE d", A},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, copy_is_unsupported_even_in_a_batch)
{
	static const struct kind_case cases[] = {
	    {"COPY t FROM STDIN", U},
	    {"copy (select 1) to stdout", U},
	    {"(COPY t TO STDOUT)", U},
	    {"SELECT 1; COPY t FROM STDIN", U},
	    {"BEGIN; COPY t FROM STDIN; COMMIT", U},
	    {"SELECT 'COPY'", S},
	    {"SELECT copy FROM t", S},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, several_statements_travel_alone)
{
	static const struct kind_case cases[] = {
	    {"SELECT 1; SELECT 2", A},         {"SELECT 1;SELECT 2;", A},
	    {"SELECT 1; /* c */ SELECT 2", A}, {"INSERT INTO t VALUES (1); -- x\nDELETE FROM t", A},
	    {"SELECT 1; (SELECT 2)", A},       {";SELECT 1", S},
	    {"SELECT 1; -- SELECT 2", S},      {"SELECT 1; /* SELECT 2; */", S},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, quotes_hide_semicolons_and_keywords)
{
	static const struct kind_case cases[] = {
	    {"SELECT ';'", S},
	    {"SELECT ';' ; ", S},
	    {"SELECT 'it''s; here'", S},
	    {"SELECT $$;$$", S},
	    {"SELECT $$ ' $$ || ';'", S},
	    {"SELECT $tag$ ; $$ ; $tag$", S},
	    {"SELECT $a$ $b$ ; $b$ $a$", S},
	    {"SELECT E'\\';'", S},
	    {"SELECT e'\\\\'; SELECT 2", A},
	    {"SELECT E'a\\'b''c;'", S},
	    {"SELECT 'a\\'; SELECT 2", A},
	    {"SELECT \"a;b\" FROM t", S},
	    {"SELECT \"a\"\";b\" FROM t", S},
	    {"SELECT U&'\\0041;'", S},
	    {"SELECT x'1F', b'101;'", S},
	    {"SELECT 1 -- ; SELECT 2\n", S},
	    {"SELECT /* ; /* ; */ ; */ 1", S},
	    {"SELECT $1; SELECT $2", A},
	    {"SELECT a$b$c FROM t; SELECT 1", A},
	    {"SELECT 1$$; SELECT 2", A},
	    {"SELECT 1$$;$$", S}, /* The server lexes 1 then the dollar quote $$;$$. */
	    {"SELECT E'a''\\';'", S},
	    {"SELECT ex'\\';'", A}, /* Only a lone E prefixes an escape string. */
	    {"SELECT $1$$;$$", S},
	    {"/* BEGIN */ SELECT 1", S},
	    {"-- COPY\nSELECT 1", S},
	    {"SELECT 'BEGIN'; ", S},
	    {"SELECT \"commit\" FROM t", S},
	    {"SELECT 1 FROM t WHERE a --> 1\n", S},
	    {"SELECT 1 /*/ still comment ; */", S},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, unterminated_text_travels_alone)
{
	static const struct kind_case cases[] = {
	    {"SELECT 'abc", A},
	    {"SELECT \"abc", A},
	    {"SELECT $$abc", A},
	    {"SELECT $x$abc$y$", A},
	    {"SELECT E'abc\\'", A},
	    {"SELECT E'\\", A},
	    {"SELECT /* abc", A},
	    {"SELECT /* a /* b */ c", A},
	    {"COPY t FROM STDIN; SELECT 'x", U},
	};
	EXPECT_KINDS(cases);
}

Test(sql_classify, keyword_prefixes_and_case)
{
	static const struct kind_case cases[] = {
	    {"SETTINGS", S},  {"BEGINNING", S},       {"VaCuUm", A},   {"commit", A},
	    {"Set x = 1", A}, {"\t\n\r\f\vBEGIN", A}, {"settle()", S}, {"copying", S},
	    {"COPY_T", S},    {"DO_SOMETHING()", S},
	};
	EXPECT_KINDS(cases);
}

struct write_case {
	const char *sql;
	bool write;
};

static void expect_writes(const struct write_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool got = lg__sql_is_write(cases[i].sql);
		cr_expect_eq(got, cases[i].write, "[%s] gave %s", cases[i].sql,
			     got ? "write" : "read");
	}
}

Test(sql_is_write, reads_are_recognized)
{
	static const struct write_case cases[] = {
	    {"SELECT 1", false},
	    {"select * from t where a = 'insert into x'", false},
	    {"(SELECT a FROM t) UNION (SELECT b FROM u)", false},
	    {"VALUES (1)", false},
	    {"TABLE t", false},
	    {"SHOW search_path", false},
	    {"EXPLAIN SELECT 1", false},
	    {"EXPLAIN (COSTS OFF) SELECT 1", false},
	    {"WITH x AS (SELECT 1) SELECT * FROM x", false},
	    {"-- update\nSELECT \"delete\" FROM t /* insert */", false},
	    {"SELECT $$ update $$", false},
	    {"SELECT 1;", false},
	    {"SELECT * FROM inserted_rows", false},
	    {"SELECT * FROM t FOR UPDATE_LOG", false},
	};
	expect_writes(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(sql_is_write, everything_else_is_a_write)
{
	static const struct write_case cases[] = {
	    {"INSERT INTO t VALUES (1)", true},
	    {"UPDATE t SET a = 1", true},
	    {"DELETE FROM t", true},
	    {"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", true},
	    {"CREATE TABLE t (a int)", true},
	    {"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", true},
	    {"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", true},
	    {"SELECT * INTO new_t FROM t", true},
	    {"SELECT * FROM t FOR UPDATE", true},
	    {"SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", true},
	    {"SELECT * FROM t FOR KEY SHARE", true},
	    {"SELECT nextval('s')", true},
	    {"SELECT pg_catalog.setval('s', 1)", true},
	    {"EXPLAIN ANALYZE SELECT 1", true},
	    {"EXPLAIN (ANALYSE) DELETE FROM t", true},
	    {"EXPLAIN UPDATE t SET a = 1", true},
	    {"SELECT 1; SELECT 2", true},
	    {"SELECT 1; DELETE FROM t", true},
	    {"SELECT 'unterminated", true},
	    {"", true},
	    {"-- nothing", true},
	    {"COPY t TO STDOUT", true},
	    {"SET x = 1", true},
	    {"BEGIN", true},
	    {"CALL p()", true},
	    {"SELECT 1 FROM t WHERE a = $1 AND 'x' = E'\\'' /* ok */ OR Insert", true},
	};
	expect_writes(cases, sizeof(cases) / sizeof(cases[0]));
}
