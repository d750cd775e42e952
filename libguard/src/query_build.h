/*
 * Pure SQL generation for the ORM: identifiers, WHERE clauses and the statements of every
 * model operation. No libuv, no libpq: tested with golden strings in tests/unit.
 *
 * Identifiers only ever come from a model descriptor and are validated and double-quoted;
 * values only ever appear as $n placeholders. Errors are sticky in the buffer (sql->err):
 * callers build a whole statement and check once.
 */
#ifndef LG_QUERY_BUILD_H
#define LG_QUERY_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "libguard/model.h"

/* Longest identifier PostgreSQL keeps (NAMEDATALEN - 1). */
#define LG__IDENT_MAX 63

/* Starts sql in stack (Borrowed, cap bytes, may be NULL with cap 0). */
void lg__sql_init(struct lg_sqlbuf *sql, char *stack, size_t cap);
/* Releases heap storage; the buffer may be reused after lg__sql_init. */
void lg__sql_free(struct lg_sqlbuf *sql);
/* lg__sql_put when s may not fit: grows the buffer (or makes the error sticky). */
void lg__sql_put_grow(struct lg_sqlbuf *sql, const char *s, size_t n);

/* Inline because statements are a string of short appends, most of them literals whose
 * length and copy the compiler then resolves in place. */
static inline void lg__sql_put(struct lg_sqlbuf *sql, const char *s, size_t n)
{
	if (sql->err == 0 && sql->len + n < sql->cap) {
		memcpy(sql->buf + sql->len, s, n);
		sql->len += n;
		sql->buf[sql->len] = '\0';
	} else {
		lg__sql_put_grow(sql, s, n);
	}
}

static inline void lg__sql_puts(struct lg_sqlbuf *sql, const char *s)
{
	lg__sql_put(sql, s, strlen(s));
}
/* Appends "$n". */
void lg__sql_param(struct lg_sqlbuf *sql, int n);
/* 0 when name is a usable identifier: non-empty, at most 63 bytes. */
int lg__ident_check(const char *name);
/* Appends name double-quoted, embedded quotes doubled; an invalid name sets LG_EINVAL. */
void lg__sql_ident(struct lg_sqlbuf *sql, const char *name);
/* Appends the quoted, schema-qualified table name of m. */
void lg__sql_table(struct lg_sqlbuf *sql, const struct lg_model *m);
/* Appends the quoted names of the columns in mask, comma-separated, each after prefix. */
void lg__sql_cols(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t mask,
		  const char *prefix);
/* The NUL-terminated text, or NULL when building failed (then *code = sql->err). */
const char *lg__sql_text(const struct lg_sqlbuf *sql);

/*
 * What is rendered once per model whose descriptor has a cache slot (LG_MODEL_DEFINE):
 * the masks, the quoted names and the fixed statements, as spans of text. Built by the
 * first lg__model_check that passes, published with one compare-and-swap on the slot (a
 * racing builder frees its copy and uses the winner's), never freed or changed after, so
 * any thread reads it without a lock.
 */
struct lg__span {
	uint32_t off;
	uint32_t len;
};

struct lg__model_cache {
	uint64_t all, pk, insertable;
	uint64_t strings; /* the lg__type_is_string columns */
	int version_col;  /* -1: none */
	int npk;
	struct lg__span find;   /* SELECT all FROM t WHERE pk1 = $1 AND ... (NUL-terminated) */
	struct lg__span select; /* its head: SELECT all FROM t */
	struct lg__span cols;   /* "c1", "c2", ... */
	struct lg__span table;  /* "schema"."table" */
	struct lg__span del;    /* DELETE FROM t WHERE pk1 = $1 AND ... (NUL-terminated) */
	struct lg__span col[LG_MODEL_MAX_COLS];
	char text[];
};

/* The published cache of m, or NULL (no slot, not built yet, or m never passed a check). */
static inline const struct lg__model_cache *lg__model_cached(const struct lg_model *m)
{
	return m->lg_cache != NULL ? __atomic_load_n(m->lg_cache, __ATOMIC_ACQUIRE) : NULL;
}

/* Renders and publishes the cache of a valid m (no-op without a slot); on ENOMEM m stays
 * uncached and a later check tries again. */
void lg__model_cache_build(const struct lg_model *m);

/* Appends the span of cache text. */
void lg__sql_span(struct lg_sqlbuf *sql, const struct lg__model_cache *c, struct lg__span s);
/* Appends the quoted name of column col of m. */
void lg__sql_col(struct lg_sqlbuf *sql, const struct lg_model *m, unsigned col);

/* Validates m: identifiers, 1..64 columns, a primary key, an int8 version column. Cheap
 * once m is cached: it was validated before it was published. */
int lg__model_check(const struct lg_model *m);
/* Text, jsonb, numeric, enum, bytea and arrays: the types whose decoded fields point into the
 * result (arrays into blocks the result keeps). */
static inline bool lg__type_is_string(enum lg_type t)
{
	return t == LG_TEXT || t == LG_JSONB || t == LG_NUMERIC || t == LG_BYTEA || t == LG_ENUM ||
	       t >= LG_INT32_ARRAY;
}

static inline uint64_t lg__model_all(const struct lg_model *m)
{
	return m->ncols >= 64 ? UINT64_MAX : (LG_COL_BIT(m->ncols) - 1);
}
uint64_t lg__model_pk(const struct lg_model *m);
/* Index of the version column, or -1. */
int lg__model_version_col(const struct lg_model *m);
/* Columns a full-row insert sends: all but LG_COL_DEFAULT. */
uint64_t lg__model_insertable(const struct lg_model *m);

/* ---- WHERE clauses ---- */

enum lg__group { LG__AND, LG__OR, LG__NOT };

void lg__where_init(struct lg_where *w, char *stack, size_t cap);
void lg__where_open(struct lg_where *w, enum lg__group g);
void lg__where_close(struct lg_where *w);
/* "col" op $param, op one of = <> < <= > >= LIKE ILIKE. */
void lg__where_cmp(struct lg_where *w, const struct lg_model *m, unsigned col, const char *op,
		   int param);
/* "col" IN ($first, ..., $first+n-1); n == 0 gives FALSE. */
void lg__where_in(struct lg_where *w, const struct lg_model *m, unsigned col, int first, int n);
void lg__where_null(struct lg_where *w, const struct lg_model *m, unsigned col, bool is_null);
/* ("c1", "c2") op ($first, $first+1): keyset pagination. */
void lg__where_row_cmp(struct lg_where *w, const struct lg_model *m, const uint8_t *cols, int ncols,
		       const char *op, int first);
/* True when the clause has no condition. */
bool lg__where_is_empty(const struct lg_where *w);
/* True when the clause reduces to TRUE (no condition, or only constants such as
 * NOT (x IN ())): it would match every row. */
bool lg__where_matches_all(const struct lg_where *w);

/* ---- Statements ---- */

enum lg__select_kind { LG__SELECT_ROWS, LG__SELECT_COUNT, LG__SELECT_EXISTS, LG__DELETE };

struct lg__select {
	const struct lg_model *m;
	uint64_t cols;                /* SELECT list; 0 = all */
	const struct lg_where *where; /* may be NULL */
	const uint8_t *order;         /* column indexes */
	const bool *desc;
	int norder;
	int limit_param;  /* 0 = no LIMIT */
	int offset_param; /* 0 = no OFFSET */
};

void lg__sql_select(struct lg_sqlbuf *sql, const struct lg__select *s, enum lg__select_kind k);
/* SELECT all FROM t WHERE pk1 = $1 AND ... */
void lg__sql_find(struct lg_sqlbuf *sql, const struct lg_model *m);
/* INSERT INTO t (cols) VALUES ($1, ...), (...) [RETURNING all]; cols 0: DEFAULT VALUES. */
void lg__sql_insert(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t cols, size_t nrows,
		    bool returning);
/* UPDATE t SET set cols [, version = version + 1] WHERE pk [AND version = $v] RETURNING all.
 * Parameters: set columns, then key columns, then the version. */
void lg__sql_update(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t set);
void lg__sql_delete_pk(struct lg_sqlbuf *sql, const struct lg_model *m);
/* INSERT ... ON CONFLICT (pk) DO UPDATE SET c = EXCLUDED.c ... / DO NOTHING RETURNING all. */
void lg__sql_upsert(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t cols, bool do_update);
/* SELECT all FROM t WHERE "col" = ANY($1::<array type>) */
void lg__sql_related(struct lg_sqlbuf *sql, const struct lg_model *m, unsigned col);
/* SELECT j."src", t.all FROM t JOIN join j ON t."tcol" = j."jt" WHERE j."src" = ANY($1) */
void lg__sql_m2m(struct lg_sqlbuf *sql, const struct lg_model *t, unsigned tcol,
		 const struct lg_model *j, unsigned jsrc, unsigned jt);

/* The PostgreSQL array type name for an element type ("int8[]"), or NULL. */
const char *lg__type_array_name(enum lg_type t);

#endif
