/*
 * Pure SQL for whole statements: SELECT (rows, count, exists), DELETE by filter, find by
 * key, INSERT (one or many rows), UPDATE with optimistic locking, DELETE by key, upserts and
 * the relation loaders. Parameter numbering is documented per function in query_build.h;
 * model.c binds values in exactly that order.
 *
 * The parts that depend on the model alone (quoted names, the column list, find and delete
 * by key) are rendered once per model into its cache (lg__model_cache_build) and copied
 * from there: the hot statements then cost a few memcpy calls, or none for find by key.
 */
#include "query_build.h"

#include <string.h>

#include "alloc_int.h"

void lg__sql_span(struct lg_sqlbuf *sql, const struct lg__model_cache *c, struct lg__span s)
{
	lg__sql_put(sql, c->text + s.off, s.len);
}

void lg__sql_col(struct lg_sqlbuf *sql, const struct lg_model *m, unsigned col)
{
	const struct lg__model_cache *c = lg__model_cached(m);
	if (c != NULL) {
		lg__sql_span(sql, c, c->col[col]);
	} else {
		lg__sql_ident(sql, m->cols[col].name);
	}
}

static void sql_returning(struct lg_sqlbuf *sql, const struct lg_model *m)
{
	lg__sql_puts(sql, " RETURNING ");
	lg__sql_cols(sql, m, lg__model_all(m), NULL);
}

/* "pk1" = $first AND "pk2" = $first+1 ...; returns the next parameter number. */
static int sql_pk_match(struct lg_sqlbuf *sql, const struct lg_model *m, int first)
{
	bool any = false;
	for (unsigned i = 0; i < m->ncols; i++) {
		if (!(m->cols[i].flags & LG_COL_PK)) {
			continue;
		}
		if (any) {
			lg__sql_puts(sql, " AND ");
		}
		any = true;
		lg__sql_col(sql, m, i);
		lg__sql_puts(sql, " = ");
		lg__sql_param(sql, first++);
	}
	return first;
}

void lg__sql_select(struct lg_sqlbuf *sql, const struct lg__select *s, enum lg__select_kind k)
{
	const struct lg_model *m = s->m;
	const struct lg__model_cache *c = lg__model_cached(m);
	switch (k) {
	case LG__SELECT_ROWS:
		if (c != NULL && (s->cols == 0 || s->cols == c->all)) {
			lg__sql_span(sql, c, c->select); /* already ends with the table */
			goto table_done;
		}
		lg__sql_puts(sql, "SELECT ");
		lg__sql_cols(sql, m, s->cols != 0 ? s->cols : lg__model_all(m), NULL);
		lg__sql_puts(sql, " FROM ");
		break;
	case LG__SELECT_COUNT:
		lg__sql_puts(sql, "SELECT count(*) FROM ");
		break;
	case LG__SELECT_EXISTS:
		lg__sql_puts(sql, "SELECT EXISTS (SELECT 1 FROM ");
		break;
	case LG__DELETE:
		lg__sql_puts(sql, "DELETE FROM ");
		break;
	}
	lg__sql_table(sql, m);
table_done:
	if (s->where != NULL && (s->where->sql.err != 0 || s->where->depth != 0)) {
		/* An unclosed group or a bad column in the filter: never send a statement
		 * that would match more than the caller meant. */
		sql->err = s->where->sql.err != 0 ? s->where->sql.err : LG_EINVAL;
		return;
	}
	if (s->where != NULL && !lg__where_is_empty(s->where)) {
		lg__sql_puts(sql, " WHERE ");
		lg__sql_put(sql, s->where->sql.buf, s->where->sql.len);
	}
	if (k == LG__SELECT_EXISTS) {
		lg__sql_put(sql, ")", 1);
	}
	if (k != LG__SELECT_ROWS) {
		return;
	}
	for (int i = 0; i < s->norder; i++) {
		lg__sql_puts(sql, i == 0 ? " ORDER BY " : ", ");
		if (s->order[i] >= m->ncols) {
			sql->err = LG_EINVAL;
			return;
		}
		lg__sql_col(sql, m, s->order[i]);
		if (s->desc[i]) {
			lg__sql_puts(sql, " DESC");
		}
	}
	if (s->limit_param > 0) {
		lg__sql_puts(sql, " LIMIT ");
		lg__sql_param(sql, s->limit_param);
	}
	if (s->offset_param > 0) {
		lg__sql_puts(sql, " OFFSET ");
		lg__sql_param(sql, s->offset_param);
	}
}

void lg__sql_find(struct lg_sqlbuf *sql, const struct lg_model *m)
{
	const struct lg__model_cache *c = lg__model_cached(m);
	if (c != NULL) {
		lg__sql_span(sql, c, c->find);
		return;
	}
	lg__sql_puts(sql, "SELECT ");
	lg__sql_cols(sql, m, lg__model_all(m), NULL);
	lg__sql_puts(sql, " FROM ");
	lg__sql_table(sql, m);
	lg__sql_puts(sql, " WHERE ");
	sql_pk_match(sql, m, 1);
}

static void sql_values(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t cols, size_t nrows)
{
	int n = 1;
	lg__sql_puts(sql, " VALUES ");
	for (size_t r = 0; r < nrows; r++) {
		lg__sql_puts(sql, r == 0 ? "(" : ", (");
		bool first = true;
		for (unsigned i = 0; i < m->ncols; i++) {
			if (!(cols & LG_COL_BIT(i))) {
				continue;
			}
			if (!first) {
				lg__sql_put(sql, ", ", 2);
			}
			first = false;
			lg__sql_param(sql, n++);
		}
		lg__sql_put(sql, ")", 1);
	}
}

void lg__sql_insert(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t cols, size_t nrows,
		    bool returning)
{
	lg__sql_puts(sql, "INSERT INTO ");
	lg__sql_table(sql, m);
	if (cols == 0) {
		if (nrows != 1) {
			sql->err = LG_EINVAL;
			return;
		}
		lg__sql_puts(sql, " DEFAULT VALUES");
	} else {
		lg__sql_puts(sql, " (");
		lg__sql_cols(sql, m, cols, NULL);
		lg__sql_put(sql, ")", 1);
		sql_values(sql, m, cols, nrows);
	}
	if (returning) {
		sql_returning(sql, m);
	}
}

void lg__sql_update(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t set)
{
	int vcol = lg__model_version_col(m);
	int n = 1;
	lg__sql_puts(sql, "UPDATE ");
	lg__sql_table(sql, m);
	lg__sql_puts(sql, " SET ");
	bool first = true;
	for (unsigned i = 0; i < m->ncols; i++) {
		if (!(set & LG_COL_BIT(i)) || (int)i == vcol) {
			continue;
		}
		if (!first) {
			lg__sql_put(sql, ", ", 2);
		}
		first = false;
		lg__sql_col(sql, m, i);
		lg__sql_puts(sql, " = ");
		lg__sql_param(sql, n++);
	}
	if (vcol >= 0) {
		if (!first) {
			lg__sql_put(sql, ", ", 2);
		}
		lg__sql_col(sql, m, vcol);
		lg__sql_puts(sql, " = ");
		lg__sql_col(sql, m, vcol);
		lg__sql_puts(sql, " + 1");
	}
	lg__sql_puts(sql, " WHERE ");
	n = sql_pk_match(sql, m, n);
	if (vcol >= 0) {
		lg__sql_puts(sql, " AND ");
		lg__sql_col(sql, m, vcol);
		lg__sql_puts(sql, " = ");
		lg__sql_param(sql, n);
	}
	sql_returning(sql, m);
}

void lg__sql_delete_pk(struct lg_sqlbuf *sql, const struct lg_model *m)
{
	const struct lg__model_cache *c = lg__model_cached(m);
	if (c != NULL) {
		lg__sql_span(sql, c, c->del);
		return;
	}
	lg__sql_puts(sql, "DELETE FROM ");
	lg__sql_table(sql, m);
	lg__sql_puts(sql, " WHERE ");
	sql_pk_match(sql, m, 1);
}

void lg__sql_upsert(struct lg_sqlbuf *sql, const struct lg_model *m, uint64_t cols, bool do_update)
{
	uint64_t pk = lg__model_pk(m);
	int vcol = lg__model_version_col(m);
	lg__sql_insert(sql, m, cols, 1, false);
	lg__sql_puts(sql, " ON CONFLICT (");
	lg__sql_cols(sql, m, pk, NULL);
	lg__sql_put(sql, ")", 1);
	uint64_t upd = cols & ~pk;
	if (vcol >= 0) {
		upd &= ~LG_COL_BIT(vcol);
	}
	if (!do_update || upd == 0) {
		lg__sql_puts(sql, " DO NOTHING");
	} else {
		lg__sql_puts(sql, " DO UPDATE SET ");
		bool first = true;
		for (unsigned i = 0; i < m->ncols; i++) {
			if (!(upd & LG_COL_BIT(i))) {
				continue;
			}
			if (!first) {
				lg__sql_put(sql, ", ", 2);
			}
			first = false;
			lg__sql_col(sql, m, i);
			lg__sql_puts(sql, " = EXCLUDED.");
			lg__sql_col(sql, m, i);
		}
		if (vcol >= 0) {
			lg__sql_put(sql, ", ", 2);
			lg__sql_col(sql, m, vcol);
			lg__sql_puts(sql, " = ");
			lg__sql_table(sql, m);
			lg__sql_put(sql, ".", 1);
			lg__sql_col(sql, m, vcol);
			lg__sql_puts(sql, " + 1");
		}
	}
	sql_returning(sql, m);
}

const char *lg__type_array_name(enum lg_type t)
{
	switch (t) {
	case LG_INT32:
		return "int4[]";
	case LG_INT64:
		return "int8[]";
	case LG_TEXT:
		return "text[]";
	case LG_UUID:
		return "uuid[]";
	default:
		return NULL;
	}
}

void lg__sql_related(struct lg_sqlbuf *sql, const struct lg_model *m, unsigned col)
{
	const char *arr = col < m->ncols ? lg__type_array_name(m->cols[col].type) : NULL;
	if (arr == NULL) {
		sql->err = LG_EINVAL;
		return;
	}
	lg__sql_puts(sql, "SELECT ");
	lg__sql_cols(sql, m, lg__model_all(m), NULL);
	lg__sql_puts(sql, " FROM ");
	lg__sql_table(sql, m);
	lg__sql_puts(sql, " WHERE ");
	lg__sql_col(sql, m, col);
	lg__sql_puts(sql, " = ANY($1::");
	lg__sql_puts(sql, arr);
	lg__sql_put(sql, ")", 1);
}

void lg__sql_m2m(struct lg_sqlbuf *sql, const struct lg_model *t, unsigned tcol,
		 const struct lg_model *j, unsigned jsrc, unsigned jt)
{
	const char *arr = jsrc < j->ncols ? lg__type_array_name(j->cols[jsrc].type) : NULL;
	if (arr == NULL || tcol >= t->ncols || jt >= j->ncols) {
		sql->err = LG_EINVAL;
		return;
	}
	lg__sql_puts(sql, "SELECT j.");
	lg__sql_col(sql, j, jsrc);
	lg__sql_puts(sql, ", ");
	lg__sql_cols(sql, t, lg__model_all(t), "t.");
	lg__sql_puts(sql, " FROM ");
	lg__sql_table(sql, t);
	lg__sql_puts(sql, " AS t JOIN ");
	lg__sql_table(sql, j);
	lg__sql_puts(sql, " AS j ON t.");
	lg__sql_col(sql, t, tcol);
	lg__sql_puts(sql, " = j.");
	lg__sql_col(sql, j, jt);
	lg__sql_puts(sql, " WHERE j.");
	lg__sql_col(sql, j, jsrc);
	lg__sql_puts(sql, " = ANY($1::");
	lg__sql_puts(sql, arr);
	lg__sql_puts(sql, ") ORDER BY 1");
}

/* The span of what was appended to sql since start. */
static struct lg__span span_of(struct lg_sqlbuf *sql, size_t start)
{
	return (struct lg__span){(uint32_t)start, (uint32_t)(sql->len - start)};
}

void lg__model_cache_build(const struct lg_model *m)
{
	if (m->lg_cache == NULL) {
		return;
	}
	/* Rendered through the uncached paths: m is not published yet. */
	struct lg__model_cache head = {.all = lg__model_all(m),
				       .pk = lg__model_pk(m),
				       .insertable = lg__model_insertable(m),
				       .version_col = lg__model_version_col(m)};
	head.npk = __builtin_popcountll(head.pk);
	for (unsigned i = 0; i < m->ncols; i++) {
		head.strings |= lg__type_is_string(m->cols[i].type) ? LG_COL_BIT(i) : 0;
	}
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, NULL, 0);
	/* The find statement, with the spans of its parts: the SELECT list's names, each
	 * column's quoted name, the table. Then the delete statement. */
	lg__sql_puts(&sql, "SELECT ");
	size_t cols = sql.len;
	for (unsigned i = 0; i < m->ncols; i++) {
		if (i > 0) {
			lg__sql_put(&sql, ", ", 2);
		}
		size_t at = sql.len;
		lg__sql_ident(&sql, m->cols[i].name);
		head.col[i] = span_of(&sql, at);
	}
	head.cols = span_of(&sql, cols);
	lg__sql_puts(&sql, " FROM ");
	size_t table = sql.len;
	lg__sql_table(&sql, m);
	head.table = span_of(&sql, table);
	head.select = span_of(&sql, 0);
	lg__sql_puts(&sql, " WHERE ");
	sql_pk_match(&sql, m, 1);
	head.find = span_of(&sql, 0);
	lg__sql_put(&sql, "", 1); /* the NUL that ends find inside the text */
	size_t del = sql.len;
	lg__sql_puts(&sql, "DELETE FROM ");
	lg__sql_table(&sql, m);
	lg__sql_puts(&sql, " WHERE ");
	sql_pk_match(&sql, m, 1);
	head.del = span_of(&sql, del);
	struct lg__model_cache *c =
	    sql.err == 0 && sql.len < UINT32_MAX ? lg__malloc(sizeof(*c) + sql.len + 1) : NULL;
	if (c != NULL) {
		*c = head;
		memcpy(c->text, sql.buf, sql.len + 1);
		void *expected = NULL;
		/* Release: the text is complete before the pointer is seen. A builder that
		 * lost the race drops its copy; both copies are the same text. */
		if (!__atomic_compare_exchange_n(m->lg_cache, &expected, c, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE)) {
			lg__free(c);
		}
	}
	lg__sql_free(&sql);
}
