/*
 * Pure SQL text building: the growable buffer, identifier quoting, model checks and WHERE
 * clauses (see query_build.h). The buffer starts in caller (usually stack) storage so that
 * the common statement costs no allocation; an allocation failure or an invalid identifier
 * makes the buffer's error sticky and the statement is never sent.
 */
#include "query_build.h"

#include <string.h>

#include "alloc_int.h"

void lg__sql_init(struct lg_sqlbuf *sql, char *stack, size_t cap)
{
	sql->buf = stack;
	sql->cap = stack != NULL ? cap : 0;
	sql->len = 0;
	sql->heap = false;
	sql->err = 0;
	if (sql->cap > 0) {
		sql->buf[0] = '\0';
	}
}

void lg__sql_free(struct lg_sqlbuf *sql)
{
	if (sql->heap) {
		lg__free(sql->buf);
	}
	sql->buf = NULL;
	sql->cap = sql->len = 0;
	sql->heap = false;
}

#define LG__SQL_MAX ((size_t)1 << 30)

static bool sql_reserve(struct lg_sqlbuf *sql, size_t n)
{
	if (sql->err != 0) {
		return false;
	}
	if (n < sql->cap && sql->len + 1 <= sql->cap - n) {
		return true;
	}
	/* SQL text over 1 GiB is refused by the server anyway; stopping there keeps the
	 * doubling below far from overflow. */
	if (n > LG__SQL_MAX || sql->len + n + 1 > LG__SQL_MAX) {
		sql->err = LG_EINVAL;
		return false;
	}
	size_t cap = sql->cap < 256 ? 256 : sql->cap;
	while (cap < sql->len + n + 1) {
		cap *= 2;
	}
	char *nb = sql->heap ? lg__realloc(sql->buf, cap) : lg__malloc(cap);
	if (nb == NULL) {
		sql->err = LG_ENOMEM;
		return false;
	}
	if (!sql->heap && sql->len > 0) {
		memcpy(nb, sql->buf, sql->len);
	}
	sql->buf = nb;
	sql->cap = cap;
	sql->heap = true;
	return true;
}

void lg__sql_put_grow(struct lg_sqlbuf *sql, const char *s, size_t n)
{
	if (!sql_reserve(sql, n)) {
		return;
	}
	memcpy(sql->buf + sql->len, s, n);
	sql->len += n;
	sql->buf[sql->len] = '\0';
}

void lg__sql_param(struct lg_sqlbuf *sql, int n)
{
	/* Hand-rolled: snprintf showed up in profiles of the page benchmark. */
	char tmp[16];
	char *p = tmp + sizeof(tmp);
	unsigned v = n > 0 ? (unsigned)n : 0;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	*--p = '$';
	lg__sql_put(sql, p, (size_t)(tmp + sizeof(tmp) - p));
}

int lg__ident_check(const char *name)
{
	if (name == NULL) {
		return LG_EINVAL;
	}
	size_t n = strnlen(name, LG__IDENT_MAX + 1);
	return n == 0 || n > LG__IDENT_MAX ? LG_EINVAL : 0;
}

void lg__sql_ident(struct lg_sqlbuf *sql, const char *name)
{
	if (lg__ident_check(name) != 0) {
		if (sql->err == 0) {
			sql->err = LG_EINVAL;
		}
		return;
	}
	/* Worst case every byte is a quote: 2n + 2 bytes. */
	size_t n = strlen(name);
	if (!sql_reserve(sql, 2 * n + 2)) {
		return;
	}
	char *p = sql->buf + sql->len;
	*p++ = '"';
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '"') {
			*p++ = '"';
		}
		*p++ = name[i];
	}
	*p++ = '"';
	sql->len = (size_t)(p - sql->buf);
	sql->buf[sql->len] = '\0';
}

void lg__sql_table(struct lg_sqlbuf *sql, const struct lg_model *m)
{
	const struct lg__model_cache *c = lg__model_cached(m);
	if (c != NULL) {
		lg__sql_span(sql, c, c->table);
		return;
	}
	if (m->schema != NULL && m->schema[0] != '\0') {
		lg__sql_ident(sql, m->schema);
		lg__sql_put(sql, ".", 1);
	}
	lg__sql_ident(sql, m->table);
}

void lg__sql_cols(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t mask,
		  const char *prefix)
{
	const struct lg__model_cache *c = lg__model_cached(m);
	if (c != NULL && prefix == NULL && mask == c->all) {
		lg__sql_span(sql, c, c->cols);
		return;
	}
	bool first = true;
	for (unsigned i = 0; i < m->ncols; i++) {
		if (!(mask & LG_COL_BIT(i))) {
			continue;
		}
		if (!first) {
			lg__sql_put(sql, ", ", 2);
		}
		first = false;
		if (prefix != NULL) {
			lg__sql_puts(sql, prefix);
		}
		lg__sql_col(sql, m, i);
	}
}

const char *lg__sql_text(const struct lg_sqlbuf *sql)
{
	if (sql->err != 0 || sql->buf == NULL) {
		return NULL;
	}
	return sql->buf;
}

uint64_t lg__model_pk(const struct lg_model *m)
{
	uint64_t mask = 0;
	for (unsigned i = 0; i < m->ncols; i++) {
		if (m->cols[i].flags & LG_COL_PK) {
			mask |= LG_COL_BIT(i);
		}
	}
	return mask;
}

int lg__model_version_col(const struct lg_model *m)
{
	for (unsigned i = 0; i < m->ncols; i++) {
		if (m->cols[i].flags & LG_COL_VERSION) {
			return (int)i;
		}
	}
	return -1;
}

uint64_t lg__model_insertable(const struct lg_model *m)
{
	uint64_t mask = 0;
	for (unsigned i = 0; i < m->ncols; i++) {
		if (!(m->cols[i].flags & LG_COL_DEFAULT)) {
			mask |= LG_COL_BIT(i);
		}
	}
	return mask;
}

int lg__model_check(const struct lg_model *m)
{
	if (m != NULL && lg__model_cached(m) != NULL) {
		return 0;
	}
	if (m == NULL || m->ncols == 0 || m->ncols > LG_MODEL_MAX_COLS ||
	    lg__ident_check(m->table) != 0 ||
	    (m->schema != NULL && m->schema[0] != '\0' && lg__ident_check(m->schema) != 0)) {
		return LG_EINVAL;
	}
	int versions = 0;
	for (unsigned i = 0; i < m->ncols; i++) {
		const struct lg_model_col *c = &m->cols[i];
		if (lg__ident_check(c->name) != 0 || c->type > LG_UUID_ARRAY) {
			return LG_EINVAL;
		}
		if (c->flags & LG_COL_VERSION) {
			if (c->type != LG_INT64 || (c->flags & LG_COL_PK) || ++versions > 1) {
				return LG_EINVAL;
			}
		}
	}
	if (lg__model_pk(m) == 0) {
		return LG_EINVAL;
	}
	lg__model_cache_build(m); /* valid: render its fixed SQL once */
	return 0;
}

/* ---- WHERE ---- */

/*
 * Constant folding of the predicate, so that guards judge what a filter does rather than
 * whether one was written: "NOT (x IN ())" has a condition and still matches every row.
 * Each open group keeps what it reduces to so far; an empty AND is TRUE, an empty OR FALSE.
 */
enum { WHERE_TRUE, WHERE_FALSE, WHERE_VARIES };

static void where_fold(struct lg_where *w, uint8_t item)
{
	uint8_t *g = &w->value[w->depth];
	uint8_t absorbing = w->kind[w->depth] == LG__OR ? WHERE_TRUE : WHERE_FALSE;
	if (*g == absorbing) {
		return;
	}
	if (item == absorbing || item == WHERE_VARIES) {
		*g = item;
	}
}

void lg__where_init(struct lg_where *w, char *stack, size_t cap)
{
	lg__sql_init(&w->sql, stack, cap);
	w->depth = 0;
	w->kind[0] = LG__AND;
	w->empty[0] = true;
	w->value[0] = WHERE_TRUE;
}

/* Emits the connective before a new item of the current group. */
static void where_item(struct lg_where *w)
{
	if (!w->empty[w->depth]) {
		lg__sql_puts(&w->sql, w->kind[w->depth] == LG__OR ? " OR " : " AND ");
	}
	w->empty[w->depth] = false;
}

void lg__where_open(struct lg_where *w, enum lg__group g)
{
	if (w->depth + 1 >= LG_WHERE_MAX_DEPTH) {
		if (w->sql.err == 0) {
			w->sql.err = LG_EINVAL;
		}
		return;
	}
	where_item(w);
	lg__sql_puts(&w->sql, g == LG__NOT ? "NOT (" : "(");
	w->depth++;
	w->kind[w->depth] = (uint8_t)g;
	w->empty[w->depth] = true;
	w->value[w->depth] = g == LG__OR ? WHERE_FALSE : WHERE_TRUE;
}

void lg__where_close(struct lg_where *w)
{
	if (w->depth == 0) {
		if (w->sql.err == 0) {
			w->sql.err = LG_EINVAL;
		}
		return;
	}
	if (w->empty[w->depth]) {
		/* The identity of the connective: an empty OR matches nothing. */
		lg__sql_puts(&w->sql, w->kind[w->depth] == LG__OR ? "FALSE" : "TRUE");
	}
	lg__sql_put(&w->sql, ")", 1);
	uint8_t v = w->value[w->depth];
	if (w->kind[w->depth] == LG__NOT && v != WHERE_VARIES) {
		v = v == WHERE_TRUE ? WHERE_FALSE : WHERE_TRUE;
	}
	w->depth--;
	where_fold(w, v);
}

static bool where_col_ok(struct lg_where *w, const struct lg_model *m, unsigned col)
{
	if (col >= m->ncols) {
		if (w->sql.err == 0) {
			w->sql.err = LG_EINVAL;
		}
		return false;
	}
	return true;
}

void lg__where_cmp(struct lg_where *w, const struct lg_model *m, unsigned col, const char *op,
		   int param)
{
	if (!where_col_ok(w, m, col)) {
		return;
	}
	where_item(w);
	where_fold(w, WHERE_VARIES);
	lg__sql_col(&w->sql, m, col);
	lg__sql_put(&w->sql, " ", 1);
	lg__sql_puts(&w->sql, op);
	lg__sql_put(&w->sql, " ", 1);
	lg__sql_param(&w->sql, param);
}

void lg__where_in(struct lg_where *w, const struct lg_model *m, unsigned col, int first, int n)
{
	if (!where_col_ok(w, m, col)) {
		return;
	}
	where_item(w);
	where_fold(w, n == 0 ? WHERE_FALSE : WHERE_VARIES);
	if (n == 0) {
		lg__sql_puts(&w->sql, "FALSE");
		return;
	}
	lg__sql_col(&w->sql, m, col);
	lg__sql_puts(&w->sql, " IN (");
	for (int i = 0; i < n; i++) {
		if (i > 0) {
			lg__sql_put(&w->sql, ", ", 2);
		}
		lg__sql_param(&w->sql, first + i);
	}
	lg__sql_put(&w->sql, ")", 1);
}

void lg__where_null(struct lg_where *w, const struct lg_model *m, unsigned col, bool is_null)
{
	if (!where_col_ok(w, m, col)) {
		return;
	}
	where_item(w);
	where_fold(w, WHERE_VARIES);
	lg__sql_col(&w->sql, m, col);
	lg__sql_puts(&w->sql, is_null ? " IS NULL" : " IS NOT NULL");
}

void lg__where_row_cmp(struct lg_where *w, const struct lg_model *m, const uint8_t *cols, int ncols,
		       const char *op, int first)
{
	for (int i = 0; i < ncols; i++) {
		if (!where_col_ok(w, m, cols[i])) {
			return;
		}
	}
	where_item(w);
	where_fold(w, WHERE_VARIES);
	lg__sql_put(&w->sql, "(", 1);
	for (int i = 0; i < ncols; i++) {
		if (i > 0) {
			lg__sql_put(&w->sql, ", ", 2);
		}
		lg__sql_col(&w->sql, m, cols[i]);
	}
	lg__sql_puts(&w->sql, ") ");
	lg__sql_puts(&w->sql, op);
	lg__sql_puts(&w->sql, " (");
	for (int i = 0; i < ncols; i++) {
		if (i > 0) {
			lg__sql_put(&w->sql, ", ", 2);
		}
		lg__sql_param(&w->sql, first + i);
	}
	lg__sql_put(&w->sql, ")", 1);
}

bool lg__where_is_empty(const struct lg_where *w)
{
	return w->sql.len == 0;
}

bool lg__where_matches_all(const struct lg_where *w)
{
	return w->depth == 0 && w->value[0] == WHERE_TRUE;
}
