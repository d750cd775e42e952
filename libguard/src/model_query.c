/*
 * The query builder's public face (query.h): conditions are rendered into the query's own
 * WHERE text as they are added (no expression tree, no allocation while it fits inline), and
 * their values are kept as bound parameters numbered in call order. Running a query renders
 * the statement into a stack buffer and sends it prepared; LIMIT and OFFSET are parameters
 * too, so every page of a listing shares one prepared statement.
 *
 * lg_query_each streams by keyset pagination over the primary key: each page is
 * "... WHERE (<filter>) AND (pk) > (last pk) ORDER BY pk LIMIT $n", so memory stays bounded
 * by a page and no server-side cursor (which the pipelined connections cannot hold across
 * statements outside a transaction) is needed.
 */
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "libguard/query.h"
#include "model_int.h"

LG_API void lg_query_init(struct lg_query *q, const struct lg_model *m)
{
	q->model = m;
	q->select = 0;
	q->limit = -1;
	q->offset = 0;
	q->norder = 0;
	q->err = lg__model_check(m);
	lg__where_init(&q->where, q->where_inline, sizeof(q->where_inline));
	q->params = q->params_inline;
	q->nparams = 0;
	q->cap = LG_QUERY_INLINE_PARAMS;
}

LG_API void lg_query_close(struct lg_query *q)
{
	lg__sql_free(&q->where.sql);
	if (q->params != q->params_inline) {
		lg__free(q->params);
	}
	q->params = q->params_inline;
	q->nparams = 0;
}

static void query_fail(struct lg_query *q, int code)
{
	if (q->err == 0) {
		q->err = code;
	}
}

#define LG__QUERY_MAX_PARAMS 65535

/* Room for n more parameters plus LIMIT and OFFSET; returns the first new $number. */
static int query_reserve(struct lg_query *q, int n)
{
	/* The protocol numbers parameters with 16 bits: refuse before any arithmetic can
	 * overflow (an IN list of INT_MAX values would have wrapped the doubling below). */
	if (n < 0 || n > LG__QUERY_MAX_PARAMS - 2 - q->nparams) {
		query_fail(q, LG_EINVAL);
		return -1;
	}
	if (q->nparams + n + 2 > q->cap) {
		int cap = q->cap * 2;
		while (cap < q->nparams + n + 2) {
			cap *= 2;
		}
		struct lg_param *np = lg__malloc((size_t)cap * sizeof(*np));
		if (np == NULL) {
			query_fail(q, LG_ENOMEM);
			return -1;
		}
		memcpy(np, q->params, (size_t)q->nparams * sizeof(*np));
		if (q->params != q->params_inline) {
			lg__free(q->params);
		}
		q->params = np;
		q->cap = cap;
	}
	return q->nparams + 1;
}

static void query_cmp(struct lg_query *q, unsigned col, const char *op, struct lg_param v)
{
	if (v.length < 0) {
		query_fail(q, LG_EINVAL); /* a value its constructor refused (param.h, model.h) */
		return;
	}
	int n = query_reserve(q, 1);
	if (n < 0) {
		return;
	}
	q->params[q->nparams++] = v;
	lg__where_cmp(&q->where, q->model, col, op, n);
}

LG_API void lg_query_eq(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, "=", v);
}
LG_API void lg_query_ne(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, "<>", v);
}
LG_API void lg_query_lt(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, "<", v);
}
LG_API void lg_query_le(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, "<=", v);
}
LG_API void lg_query_gt(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, ">", v);
}
LG_API void lg_query_ge(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, ">=", v);
}
LG_API void lg_query_like(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, "LIKE", v);
}
LG_API void lg_query_ilike(struct lg_query *q, unsigned c, struct lg_param v)
{
	query_cmp(q, c, "ILIKE", v);
}

LG_API void lg_query_in(struct lg_query *q, unsigned col, const struct lg_param *v, int n)
{
	for (int i = 0; i < n; i++) {
		if (v[i].length < 0) {
			n = -1;
		}
	}
	if (n < 0) {
		query_fail(q, LG_EINVAL);
		return;
	}
	int first = query_reserve(q, n);
	if (first < 0) {
		return;
	}
	if (n > 0) { /* v may be NULL for an empty list */
		memcpy(q->params + q->nparams, v, (size_t)n * sizeof(*v));
	}
	q->nparams += n;
	lg__where_in(&q->where, q->model, col, first, n);
}

LG_API void lg_query_is_null(struct lg_query *q, unsigned col)
{
	lg__where_null(&q->where, q->model, col, true);
}

LG_API void lg_query_not_null(struct lg_query *q, unsigned col)
{
	lg__where_null(&q->where, q->model, col, false);
}

LG_API void lg_query_and(struct lg_query *q)
{
	lg__where_open(&q->where, LG__AND);
}
LG_API void lg_query_or(struct lg_query *q)
{
	lg__where_open(&q->where, LG__OR);
}
LG_API void lg_query_not(struct lg_query *q)
{
	lg__where_open(&q->where, LG__NOT);
}
LG_API void lg_query_end(struct lg_query *q)
{
	lg__where_close(&q->where);
}

LG_API void lg_query_order(struct lg_query *q, unsigned col, bool desc)
{
	if (q->norder >= LG_QUERY_MAX_ORDER || q->model == NULL || col >= q->model->ncols) {
		query_fail(q, LG_EINVAL);
		return;
	}
	q->order[q->norder] = (uint8_t)col;
	q->desc[q->norder] = desc;
	q->norder++;
}

LG_API void lg_query_limit(struct lg_query *q, int64_t n)
{
	q->limit = n;
}
LG_API void lg_query_offset(struct lg_query *q, int64_t n)
{
	q->offset = n;
}
LG_API void lg_query_select(struct lg_query *q, uint64_t mask)
{
	q->select = mask;
}

LG_API void lg_query_after(struct lg_query *q, const void *last_row)
{
	if (q->norder == 0 || q->where.depth != 0) {
		query_fail(q, LG_EINVAL);
		return;
	}
	for (int i = 1; i < q->norder; i++) {
		if (q->desc[i] != q->desc[0]) {
			query_fail(q, LG_EINVAL);
			return;
		}
	}
	int first = query_reserve(q, q->norder);
	if (first < 0) {
		return;
	}
	for (int i = 0; i < q->norder; i++) {
		if (lg__field_param(q->model, q->order[i], last_row, NULL,
				    &q->params[q->nparams++]) != 0) {
			query_fail(q, LG_EINVAL);
			return;
		}
	}
	lg__where_row_cmp(&q->where, q->model, q->order, q->norder, q->desc[0] ? "<" : ">", first);
}

/* Renders kind into sql; appends LIMIT/OFFSET values after the filter's; *n = count. */
int lg__query_render(struct lg_query *q, enum lg__select_kind kind, struct lg_sqlbuf *sql, int *n)
{
	if (q->err != 0) {
		return q->err;
	}
	if (q->where.depth != 0) {
		return LG_EINVAL;
	}
	struct lg__select s = {.m = q->model,
			       .cols = q->select,
			       .where = &q->where,
			       .order = q->order,
			       .desc = q->desc,
			       .norder = q->norder};
	*n = q->nparams;
	if (kind == LG__SELECT_ROWS && q->limit >= 0) {
		q->params[*n] = lg_param_int64(q->limit);
		s.limit_param = ++*n;
	}
	if (kind == LG__SELECT_ROWS && q->offset > 0) {
		q->params[*n] = lg_param_int64(q->offset);
		s.offset_param = ++*n;
	}
	lg__sql_select(sql, &s, kind);
	return sql->err;
}

LG_API int lg_query_sql(struct lg_query *q, char *buf, size_t size)
{
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, NULL, 0);
	int n;
	int rc = lg__query_render(q, LG__SELECT_ROWS, &sql, &n);
	if (rc == 0) {
		rc = sql.len + 1 > size ? LG_ERANGE : 0;
		if (rc == 0) {
			memcpy(buf, sql.buf, sql.len + 1);
		}
	}
	lg__sql_free(&sql);
	return rc;
}

/* Renders and runs kind; *out gets the result. */
static int query_run(const struct lg_db *db, struct lg_query *q, enum lg__select_kind kind,
		     struct lg_result **out, struct lg_error *err)
{
	char buf[LG__STACK_SQL_READ];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	int n = 0;
	int rc = lg__query_render(q, kind, &sql, &n);
	if (rc != 0) {
		rc = lg__model_build_error(q->model, rc, err);
	} else {
		rc = lg__db_run(db, sql.buf, q->params, n,
				kind == LG__DELETE ? LG__DB_WRITE : LG__DB_READ, out, err);
	}
	lg__sql_free(&sql);
	return rc;
}

LG_API int lg_query_all(const struct lg_db *db, struct lg_query *q, struct lg_rows *out,
			struct lg_error *err)
{
	if (out->model != NULL && out->model != q->model) {
		return lg__model_build_error(q->model, LG_EINVAL, err);
	}
	struct lg_result *r = NULL;
	int rc = query_run(db, q, LG__SELECT_ROWS, &r, err);
	if (rc != 0) {
		return rc;
	}
	struct lg__plan plan;
	lg__plan_mask(&plan, q->model, q->select != 0 ? q->select : lg__model_all(q->model), r, 0);
	out->model = q->model;
	rc = lg__rows_append(out, q->model, r, &plan);
	if (rc != 0) {
		lg__error_set(err, rc, "model %s: decoding rows", q->model->table);
	}
	return rc;
}

LG_API int lg_query_first(const struct lg_db *db, struct lg_query *q, void *row,
			  struct lg_error *err)
{
	int64_t limit = q->limit;
	q->limit = 1;
	struct lg_result *r = NULL;
	int rc = query_run(db, q, LG__SELECT_ROWS, &r, err);
	q->limit = limit;
	if (rc == 0 && lg_result_rows(r) == 0) {
		rc = lg__error_set(err, LG_ENOTFOUND, "model %s: no matching row", q->model->table);
	}
	if (rc != 0) {
		lg_result_free(r);
		return rc;
	}
	/* The row takes the result: its strings are Borrowed from it until lg_row_clear. */
	struct lg__plan plan;
	lg__plan_mask(&plan, q->model, q->select != 0 ? q->select : lg__model_all(q->model), r, 0);
	rc = lg__row_take(q->model, &plan, r, 0, row);
	if (rc != 0) {
		lg__error_set(err, rc, "model %s: decoding a row", q->model->table);
	}
	return rc;
}

LG_API int lg_query_count(const struct lg_db *db, struct lg_query *q, int64_t *out,
			  struct lg_error *err)
{
	struct lg_result *r = NULL;
	int rc = query_run(db, q, LG__SELECT_COUNT, &r, err);
	if (rc == 0) {
		rc = lg_result_int64(r, 0, 0, out);
	}
	lg_result_free(r);
	return rc;
}

LG_API int lg_query_exists(const struct lg_db *db, struct lg_query *q, bool *out,
			   struct lg_error *err)
{
	struct lg_result *r = NULL;
	int rc = query_run(db, q, LG__SELECT_EXISTS, &r, err);
	if (rc == 0) {
		rc = lg_result_bool(r, 0, 0, out);
	}
	lg_result_free(r);
	return rc;
}

LG_API int lg_query_delete(const struct lg_db *db, struct lg_query *q, int64_t *affected,
			   struct lg_error *err)
{
	if (q->model != NULL && lg__where_matches_all(&q->where)) {
		return lg__error_set(
		    err, LG_EINVAL,
		    "model %s: delete refused: the filter matches every row (it has "
		    "no condition, or reduces to TRUE); lg_query_delete_all empties "
		    "the table on purpose",
		    q->model->table);
	}
	struct lg_result *r = NULL;
	int rc = query_run(db, q, LG__DELETE, &r, err);
	if (rc == 0 && affected != NULL) {
		*affected = lg_result_affected(r);
	}
	lg_result_free(r);
	return rc;
}

LG_API int lg_query_delete_all(const struct lg_db *db, const struct lg_model *m, int64_t *affected,
			       struct lg_error *err)
{
	lg_error_clear(err);
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	char buf[LG__STACK_SQL];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_puts(&sql, "DELETE FROM ");
	lg__sql_table(&sql, m);
	struct lg_result *r = NULL;
	int rc = lg__sql_text(&sql) == NULL
		     ? lg__model_build_error(m, sql.err, err)
		     : lg__db_run(db, sql.buf, NULL, 0, LG__DB_WRITE, &r, err);
	if (rc == 0 && affected != NULL) {
		*affected = lg_result_affected(r);
	}
	lg_result_free(r);
	lg__sql_free(&sql);
	return rc;
}
