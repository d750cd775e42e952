/*
 * What a statement does, as PostgreSQL's own parser sees it (libpg_query, the PostgreSQL 15
 * grammar as a library).
 *
 * The pipeline and the pool decide from this verdict whether a statement may share a sync
 * segment (PostgreSQL runs a segment as one implicit transaction: libpq documentation 34.5
 * "Pipeline Mode", protocol 55.2.4 "Pipelining") and whether it may run on a shared pooled
 * connection at all. Only a plain read may share a segment; only a statement without session
 * state may run on a shared connection.
 *
 * Parsing costs microseconds, so verdicts are cached per SQL text (sql_cache.c): the hot path
 * pays one hash lookup. libpg_query recurses over the parse tree and has no working stack
 * guard of its own: a deeply nested expression would overflow a coroutine stack (and even an
 * 8 MiB thread stack). Parsing therefore runs on a thread with a large, lazily committed
 * stack, and texts longer than LG__SQL_PARSE_MAX are not parsed at all; such texts, and text
 * the parser rejects, get the conservative verdict LG__SQL_UNPARSED (a segment of their own,
 * never shared, never re-sent), and the server reports any syntax error itself.
 *
 * Pure logic: no libuv, no sockets. Input text is Borrowed and NUL-terminated.
 */
#ifndef LG_SQL_PARSE_H
#define LG_SQL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest text that is parsed (bytes). A deeper tree needs more stack than the parse
 * thread has; see LG__SQL_PARSE_STACK in sql_parse.c for the measured ratio. */
#define LG__SQL_PARSE_MAX (256u * 1024u)

/* The statement's kind: the top-level statement of the text. */
enum lg__sql_kind {
	LG__SQL_EMPTY = 0,   /* only whitespace and comments */
	LG__SQL_READ,        /* SELECT, VALUES, TABLE, SHOW, EXPLAIN */
	LG__SQL_DML,         /* INSERT, UPDATE, DELETE, MERGE */
	LG__SQL_DDL,         /* CREATE, ALTER, DROP, GRANT, COMMENT, TRUNCATE ... */
	LG__SQL_TRANSACTION, /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION ... */
	LG__SQL_SESSION,     /* SET, RESET, LISTEN, PREPARE, DISCARD, DECLARE, FETCH ... */
	LG__SQL_UTILITY,     /* VACUUM, ANALYZE, CHECKPOINT, CALL, DO, LOCK, COPY ... */
	LG__SQL_MULTI,       /* several statements in one text */
	LG__SQL_UNPARSED,    /* the parser refused it, or it is too long to parse */
};

/* Effects, any number of them. */
#define LG__SQL_WRITES                                                                             \
	0x001u               /* modifies data or schema (data-modifying WITH, SELECT               \
			      * INTO, nextval() and other functions with side effects) */
#define LG__SQL_LOCKS 0x002u /* FOR UPDATE/SHARE, LOCK TABLE, pg_advisory_xact_lock() */
#define LG__SQL_SESSION_FX                                                                         \
	0x004u /* changes session state: SET, RESET, set_config(.., false)                         \
		* or a non-literal is_local, LISTEN/UNLISTEN, PREPARE,                             \
		* DEALLOCATE, DISCARD, session advisory locks, temporary                           \
		* tables, cursors WITH HOLD, LOAD */
#define LG__SQL_TX_STATE                                                                           \
	0x008u                    /* transaction-scoped state: SET LOCAL, set_config(.., true),    \
				   * SET TRANSACTION, cursors */
#define LG__SQL_TX_CONTROL 0x010u /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT ... */
#define LG__SQL_NO_TXBLOCK                                                                         \
	0x020u                /* cannot run inside a transaction block (VACUUM, CREATE             \
			       * DATABASE, CREATE INDEX CONCURRENTLY, COMMIT PREPARED ...) */
#define LG__SQL_COPY   0x040u /* COPY: pipeline mode cannot carry it */
#define LG__SQL_OPAQUE 0x080u /* runs code we cannot see: CALL, DO, EXECUTE */
/* Not inspected (too long, nested too deeply, no thread to parse it on): it might be a
 * BEGIN or a SET, so shared pooled connections refuse it. */
#define LG__SQL_UNCHECKED 0x100u

struct lg__sql_verdict {
	uint8_t kind;    /* enum lg__sql_kind */
	uint16_t flags;  /* LG__SQL_* effects */
	const char *why; /* static text naming the first effect found, or NULL */
};

/*
 * Parses sql and returns its verdict. Never fails: text that cannot be parsed (syntax error,
 * longer than LG__SQL_PARSE_MAX, out of memory, no thread) is LG__SQL_UNPARSED with a why.
 * Blocks the calling thread for the parse (microseconds; tens of microseconds with the
 * thread start); callers cache the verdict.
 */
struct lg__sql_verdict lg__sql_parse(const char *sql);

/* A plain read: one statement that reads and has none of the effects above. Only these may
 * share a sync segment and be re-sent when a sibling fails. */
static inline bool lg__sql_is_read(struct lg__sql_verdict v)
{
	return (v.kind == LG__SQL_READ || v.kind == LG__SQL_EMPTY) && v.flags == 0;
}

/* May run on a connection that other callers share between their statements. Text the
 * parser rejects goes to the server, which rejects it too (the same PostgreSQL 15 grammar);
 * text that was not inspected might change the session, so it may not. */
static inline bool lg__sql_shareable_conn(struct lg__sql_verdict v)
{
	return (v.flags & (LG__SQL_SESSION_FX | LG__SQL_TX_CONTROL | LG__SQL_UNCHECKED)) == 0;
}

/* A bounded cache of verdicts keyed by SQL text, least recently used out first. */
struct lg__sql_cache;

/* max entries (0 = 1,024). NULL when out of memory. */
struct lg__sql_cache *lg__sql_cache_new(size_t max);
void lg__sql_cache_free(struct lg__sql_cache *cache); /* NULL is a no-op */

/*
 * The verdict of sql: cached, or parsed and cached. With cache NULL (or no memory for an
 * entry) the text is parsed every time. *hit, if not NULL, tells which.
 */
struct lg__sql_verdict lg__sql_cache_get(struct lg__sql_cache *cache, const char *sql, bool *hit);

#endif
