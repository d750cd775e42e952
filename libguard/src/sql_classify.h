/*
 * Lexical SQL classification for the pipeline scheduler and the read/write router.
 *
 * The pipeline batches statements from different callers into one sync segment, which the
 * server runs as one implicit transaction (PostgreSQL 15 documentation, 55.2.4 "Pipelining"
 * and libpq 34.5 "Pipeline Mode"). Some statements must not share that transaction: they
 * control transactions, change session state a neighbour would observe or lose, or refuse to
 * run inside a transaction block. lg__sql_classify() finds them by their leading keywords.
 *
 * This is a lexer, not a parser: it knows PostgreSQL's comments, quoted identifiers, string
 * literals (standard, E'' escape, dollar-quoted) and assumes standard_conforming_strings=on
 * (the default since 9.1). Side effects hidden in function calls (set_config(),
 * pg_advisory_lock(), procedures) are invisible to it; callers who run such statements must
 * mark them themselves. The input is Borrowed and NUL-terminated.
 */
#ifndef LG_SQL_CLASSIFY_H
#define LG_SQL_CLASSIFY_H

#include <stdbool.h>

/* Ordered by strictness, so the verdict for several statements is the maximum. */
enum lg__sql_kind {
	/* May share a sync segment: queries, DML, ordinary DDL, EXPLAIN [ANALYZE]. */
	LG__SQL_SHAREABLE = 0,
	/* Needs a segment of its own: transaction control (BEGIN, START, COMMIT, END, ROLLBACK,
	 * ABORT, SAVEPOINT, RELEASE, PREPARE, COMMIT/ROLLBACK PREPARED), session state (SET,
	 * RESET, LISTEN, UNLISTEN, DISCARD, LOAD, PREPARE, DEALLOCATE, DECLARE, CLOSE),
	 * statements barred from transaction blocks (VACUUM, CLUSTER, REINDEX, CHECKPOINT,
	 * CREATE/DROP DATABASE, TABLESPACE or SUBSCRIPTION, ALTER SYSTEM, DATABASE or
	 * SUBSCRIPTION, any CREATE/DROP/ALTER/REFRESH with CONCURRENTLY), CALL and DO (which may
	 * COMMIT inside), several statements in one text, and text the lexer cannot finish
	 * (unterminated quote or comment). */
	LG__SQL_ALONE = 1,
	/* Cannot run in pipeline mode at all: COPY. */
	LG__SQL_UNSUPPORTED = 2,
};

/* Classifies sql; whitespace-only or comment-only text is LG__SQL_SHAREABLE (the server
 * answers it with EmptyQueryResponse). */
enum lg__sql_kind lg__sql_classify(const char *sql);

/*
 * Returns false only when sql is surely read-only: one statement that begins (after
 * comments and opening parentheses) with SELECT, VALUES, TABLE, SHOW, EXPLAIN or WITH and
 * contains none of the words INSERT, UPDATE, DELETE, MERGE, INTO (SELECT INTO creates a
 * table), SHARE (FOR [KEY] SHARE locks rows), ANALYZE/ANALYSE (EXPLAIN ANALYZE executes),
 * NEXTVAL or SETVAL outside quotes and comments. Every other text is a write. The scan is
 * deliberately conservative: a column named "share" makes a read look like a write, which
 * only costs routing it to the primary; the converse mistake would fail on a standby.
 */
bool lg__sql_is_write(const char *sql);

#endif
