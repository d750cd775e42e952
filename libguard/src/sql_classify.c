/*
 * SQL classification by lexing: split the text into statements at top-level semicolons,
 * remember each statement's first two words and whether certain words occur anywhere, and
 * decide from those.
 *
 * The lexer follows the token rules of PostgreSQL's scan.l closely enough that a semicolon
 * or keyword inside a string, quoted identifier, dollar quote or comment is never taken for
 * SQL: '' doubling, E'' backslash escapes, "" doubling, $tag$ ... $tag$ (a tag starts with a
 * letter or underscore, and $1 is a parameter), nested block comments. Text it cannot finish
 * (an unterminated quote or comment) is reported as such, and both verdicts then take their
 * safe side.
 */
#include "sql_classify.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

enum sql_tok {
	SQL_TOK_END,
	SQL_TOK_ERROR,
	SQL_TOK_WORD,
	SQL_TOK_SEMI,
	SQL_TOK_LPAREN,
	SQL_TOK_OTHER,
};

struct sql_token {
	enum sql_tok kind;
	const char *start;
	size_t len;
};

/* A read position; end (the terminating NUL) is found once so that searching for the close
 * of each dollar quote stays linear in the text. */
struct sql_lexer {
	const char *p;
	const char *end;
};

/* What one statement looks like to the classifiers. */
struct sql_stmt {
	struct sql_token head;   /* First word after opening parentheses, or len 0. */
	struct sql_token second; /* The token right after head, if it is a word, or len 0. */
	bool empty;              /* No tokens at all: ";;" or trailing comments. */
	bool error;              /* Unterminated quote or comment. */
	bool more;               /* A semicolon ended it; another statement may follow. */
	bool concurrently;       /* CONCURRENTLY occurs as a word. */
	bool write_word;         /* A word from sql_write_words occurs. */
};

static const char *const sql_write_words[] = {
    "insert", "update",  "delete",  "merge",   "into",
    "share",  "analyze", "analyse", "nextval", "setval",
};

static bool sql_is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool sql_is_ident_char(unsigned char c)
{
	return sql_is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool sql_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* p is at the opening of a block comment; returns the position after the matching close
 * (comments nest), or NULL. */
static const char *sql_skip_block_comment(const char *p)
{
	size_t depth = 0;
	while (*p != '\0') {
		if (p[0] == '/' && p[1] == '*') {
			depth++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			p += 2;
			if (--depth == 0) {
				return p;
			}
		} else {
			p++;
		}
	}
	return NULL;
}

/* Returns the first position that is not blank or comment, or NULL inside an unterminated
 * block comment. */
static const char *sql_skip_space(const char *p)
{
	for (;;) {
		if (sql_is_space(*p)) {
			p++;
		} else if (p[0] == '-' && p[1] == '-') {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			p = sql_skip_block_comment(p);
			if (p == NULL) {
				return NULL;
			}
		} else {
			return p;
		}
	}
}

/* p is at an opening quote; returns the position after the closing one, or NULL. A doubled
 * quote stands for itself; with backslash, a backslash escapes any next character. */
static const char *sql_skip_quoted(const char *p, char quote, bool backslash)
{
	for (p++; *p != '\0'; p++) {
		if (backslash && *p == '\\') {
			if (p[1] == '\0') {
				return NULL;
			}
			p++;
		} else if (*p == quote) {
			if (p[1] != quote) {
				return p + 1;
			}
			p++;
		}
	}
	return NULL;
}

/* p is at '$'. Returns the position after a complete dollar-quoted string, p itself when
 * the '$' opens no dollar quote, or NULL when the closing delimiter is missing. */
static const char *sql_skip_dollar(const char *p, const char *text_end)
{
	const char *q = p + 1;
	if (*q != '$') {
		if (!sql_is_ident_start((unsigned char)*q)) {
			return p;
		}
		while (*q != '$' && sql_is_ident_char((unsigned char)*q)) {
			q++;
		}
		if (*q != '$') {
			return p;
		}
	}
	size_t delim_len = (size_t)(q - p) + 1;
	const char *body = q + 1;
	const char *close = memmem(body, (size_t)(text_end - body), p, delim_len);
	return close == NULL ? NULL : close + delim_len;
}

/* Lexes a word, or an E'...' string whose E looked like the start of a word. */
static const char *sql_lex_word(const char *p, enum sql_tok *kind)
{
	const char *start = p;
	while (sql_is_ident_char((unsigned char)*p)) {
		p++;
	}
	if (p - start == 1 && (*start == 'e' || *start == 'E') && *p == '\'') {
		p = sql_skip_quoted(p, '\'', true);
		*kind = p == NULL ? SQL_TOK_ERROR : SQL_TOK_OTHER;
		return p;
	}
	*kind = SQL_TOK_WORD;
	return p;
}

/* Lexes the token at p (not blank, not a comment, not NUL); returns its end or NULL. */
static const char *sql_lex_at(const char *p, const char *text_end, enum sql_tok *kind)
{
	const char *end;
	*kind = SQL_TOK_OTHER;
	if (sql_is_ident_start((unsigned char)*p)) {
		return sql_lex_word(p, kind);
	}
	switch (*p) {
	case ';':
		*kind = SQL_TOK_SEMI;
		return p + 1;
	case '(':
		*kind = SQL_TOK_LPAREN;
		return p + 1;
	case '\'':
		return sql_skip_quoted(p, '\'', false);
	case '"':
		return sql_skip_quoted(p, '"', false);
	case '$':
		/* Not a dollar quote: the '$' of a parameter ($1), whose digits lex as a number. */
		end = sql_skip_dollar(p, text_end);
		return end == p ? p + 1 : end;
	default:
		break;
	}
	if (*p >= '0' && *p <= '9') {
		/* A number with its letters (1.5e3, 0x1F) is one token, so "1e" is not taken for
		 * an E'' prefix; a '$' after it still opens a dollar quote, as in the server. */
		for (end = p;
		     *end == '.' || (sql_is_ident_char((unsigned char)*end) && *end != '$');
		     end++) {
		}
		return end;
	}
	return p + 1;
}

static struct sql_token sql_next(struct sql_lexer *lx)
{
	struct sql_token t = {SQL_TOK_ERROR, NULL, 0};
	const char *p = sql_skip_space(lx->p);
	if (p == NULL) {
		return t;
	}
	t.start = p;
	if (*p == '\0') {
		t.kind = SQL_TOK_END;
		lx->p = p;
		return t;
	}
	const char *end = sql_lex_at(p, lx->end, &t.kind);
	if (end == NULL) {
		t.kind = SQL_TOK_ERROR;
		return t;
	}
	t.len = (size_t)(end - p);
	lx->p = end;
	return t;
}

/* Compares a word token with a lowercase keyword, ignoring ASCII case. */
static bool sql_word_is(const struct sql_token *t, const char *kw)
{
	if (t->kind != SQL_TOK_WORD || t->len != strlen(kw)) {
		return false;
	}
	for (size_t i = 0; i < t->len; i++) {
		char c = t->start[i];
		if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
		}
		if (c != kw[i]) {
			return false;
		}
	}
	return true;
}

static bool sql_word_in(const struct sql_token *t, const char *const *kws, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (sql_word_is(t, kws[i])) {
			return true;
		}
	}
	return false;
}

#define SQL_WORD_IN(t, list) sql_word_in((t), (list), sizeof(list) / sizeof((list)[0]))

static void sql_note_word(struct sql_stmt *st, const struct sql_token *t)
{
	st->concurrently |= sql_word_is(t, "concurrently");
	st->write_word |= SQL_WORD_IN(t, sql_write_words);
}

/* Reads one statement up to a top-level semicolon or the end of the text. */
static void sql_scan_stmt(struct sql_lexer *lx, struct sql_stmt *st)
{
	struct sql_token t;
	memset(st, 0, sizeof(*st));
	do {
		t = sql_next(lx);
	} while (t.kind == SQL_TOK_LPAREN);
	st->empty = t.kind == SQL_TOK_END || t.kind == SQL_TOK_SEMI;
	if (t.kind == SQL_TOK_WORD) {
		st->head = t;
		sql_note_word(st, &t);
		t = sql_next(lx);
		if (t.kind == SQL_TOK_WORD) {
			st->second = t;
		}
	}
	for (;; t = sql_next(lx)) {
		switch (t.kind) {
		case SQL_TOK_END:
			return;
		case SQL_TOK_ERROR:
			st->error = true;
			return;
		case SQL_TOK_SEMI:
			st->more = true;
			return;
		case SQL_TOK_WORD:
			sql_note_word(st, &t);
			break;
		default:
			break;
		}
	}
}

static const char *const sql_alone_heads[] = {
    "abort",   "begin",   "call",     "checkpoint", "close",  "cluster", "commit",   "deallocate",
    "declare", "discard", "do",       "end",        "listen", "load",    "prepare",  "reindex",
    "release", "reset",   "rollback", "savepoint",  "set",    "start",   "unlisten", "vacuum",
};
static const char *const sql_create_drop_alone[] = {"database", "tablespace", "subscription"};
static const char *const sql_alter_alone[] = {"system", "database", "subscription"};
static const char *const sql_concurrent_heads[] = {"create", "drop", "alter", "refresh"};

static enum lg__sql_kind sql_stmt_kind(const struct sql_stmt *st)
{
	const struct sql_token *head = &st->head;
	if (sql_word_is(head, "copy")) {
		return LG__SQL_UNSUPPORTED;
	}
	if (SQL_WORD_IN(head, sql_alone_heads)) {
		return LG__SQL_ALONE;
	}
	if ((sql_word_is(head, "create") || sql_word_is(head, "drop")) &&
	    SQL_WORD_IN(&st->second, sql_create_drop_alone)) {
		return LG__SQL_ALONE;
	}
	if (sql_word_is(head, "alter") && SQL_WORD_IN(&st->second, sql_alter_alone)) {
		return LG__SQL_ALONE;
	}
	if (st->concurrently && SQL_WORD_IN(head, sql_concurrent_heads)) {
		return LG__SQL_ALONE;
	}
	return LG__SQL_SHAREABLE;
}

/*
 * The common case, decided in one cheap pass: a single SELECT/INSERT/UPDATE/DELETE/WITH/VALUES
 * statement whose text has no semicolon, quote, dollar quote or comment. Those are always
 * shareable; anything else takes the full lexer below. This runs on every statement.
 */
static bool sql_fast_shareable(const char *p)
{
	static const char *const heads[] = {"select", "insert", "update",
					    "delete", "with",   "values"};
	while (sql_is_space(*p)) {
		p++;
	}
	const char *w = p;
	while (sql_is_ident_char((unsigned char)*p)) {
		p++;
	}
	size_t n = (size_t)(p - w);
	bool known = false;
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]) && !known; i++) {
		known = strlen(heads[i]) == n && strncasecmp(w, heads[i], n) == 0;
	}
	if (!known) {
		return false;
	}
	for (; *p != '\0'; p++) {
		char c = *p;
		if (c == ';' || c == '\'' || c == '"') {
			return false;
		}
		if ((c == '$' && (p[1] == '$' || sql_is_ident_start((unsigned char)p[1]))) ||
		    (c == '/' && p[1] == '*') || (c == '-' && p[1] == '-')) {
			return false;
		}
	}
	return true;
}

enum lg__sql_kind lg__sql_classify(const char *sql)
{
	if (sql_fast_shareable(sql)) {
		return LG__SQL_SHAREABLE;
	}
	enum lg__sql_kind kind = LG__SQL_SHAREABLE;
	struct sql_lexer lx = {sql, sql + strlen(sql)};
	unsigned statements = 0;
	struct sql_stmt st;
	do {
		sql_scan_stmt(&lx, &st);
		if (st.error) {
			/* The server will reject the text; keep the failure out of others'
			 * segments. */
			return kind > LG__SQL_ALONE ? kind : LG__SQL_ALONE;
		}
		if (st.empty) {
			continue; /* The server's grammar drops empty statements too. */
		}
		statements++;
		enum lg__sql_kind k = sql_stmt_kind(&st);
		kind = k > kind ? k : kind;
	} while (st.more);
	if (statements > 1 && kind < LG__SQL_ALONE) {
		kind = LG__SQL_ALONE;
	}
	return kind;
}

static const char *const sql_read_heads[] = {
    "select", "values", "table", "show", "explain", "with",
};

bool lg__sql_is_write(const char *sql)
{
	struct sql_lexer lx = {sql, sql + strlen(sql)};
	unsigned statements = 0;
	struct sql_stmt st;
	do {
		sql_scan_stmt(&lx, &st);
		if (st.error) {
			return true;
		}
		if (st.empty) {
			continue;
		}
		if (++statements > 1 || !SQL_WORD_IN(&st.head, sql_read_heads) || st.write_word) {
			return true;
		}
	} while (st.more);
	return statements == 0; /* Empty text is not known to be a read. */
}
