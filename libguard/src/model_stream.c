/*
 * Streaming a query's rows with bounded memory (lg_query_each in query.h).
 *
 * Happy path: page k is "SELECT ... WHERE (<filter>) AND (pk...) > (<pk of the last row of
 * page k-1>) ORDER BY pk... LIMIT $n"; each row is handed to the callback, then the page is
 * freed and only the last row is kept for the next key. The primary key is unique, so every
 * row committed before the stream started and not changed meanwhile is seen exactly once.
 *
 * lg_query_stream instead declares a server-side cursor in a (pinned) transaction and
 * FETCHes batches from it: any ORDER BY works, and all rows come from one snapshot.
 *
 * Failure modes: a statement error ends the stream with that error (rows already delivered
 * stay delivered); the callback's nonzero return ends it with that value.
 */
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "libguard/query.h"
#include "model_int.h"

struct stream {
	const struct lg_db *db;
	struct lg_query *q;
	unsigned page;
	uint8_t pk[LG_MODEL_MAX_COLS];
	bool asc[LG_MODEL_MAX_COLS];
	int npk;
	struct lg_param *params; /* filter's, then the last key, then LIMIT */
	void *last;              /* a row struct; owns its lg_mem */
	bool have_last;
};

/* Fetches the next page into rows. */
static int stream_page(struct stream *s, struct lg_rows *rows, struct lg_error *err)
{
	struct lg_query *q = s->q;
	const struct lg_model *m = q->model;
	char wbuf[LG__STACK_SQL], sbuf[LG__STACK_SQL];
	struct lg_where w;
	lg__where_init(&w, wbuf, sizeof(wbuf));
	if (!lg__where_is_empty(&q->where)) {
		lg__sql_put(&w.sql, "(", 1);
		lg__sql_put(&w.sql, q->where.sql.buf, q->where.sql.len);
		lg__sql_put(&w.sql, ")", 1);
		w.empty[0] = false;
	}
	int n = q->nparams;
	memcpy(s->params, q->params, (size_t)n * sizeof(*s->params));
	if (s->have_last) {
		int first = n + 1;
		for (int i = 0; i < s->npk; i++) {
			(void)lg__field_param(m, s->pk[i], s->last, NULL, &s->params[n++]);
		}
		lg__where_row_cmp(&w, m, s->pk, s->npk, ">", first);
	}
	s->params[n++] = lg_param_int64(s->page);
	uint64_t cols = q->select != 0 ? q->select | lg__model_pk(m) : lg__model_all(m);
	struct lg__select sel = {.m = m,
				 .cols = cols,
				 .where = &w,
				 .order = s->pk,
				 .desc = (const bool[LG_MODEL_MAX_COLS]){false},
				 .norder = s->npk,
				 .limit_param = n};
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, sbuf, sizeof(sbuf));
	lg__sql_select(&sql, &sel, LG__SELECT_ROWS);
	if (w.sql.err != 0 && sql.err == 0) {
		sql.err = w.sql.err;
	}
	struct lg_result *r = NULL;
	int rc = lg__sql_text(&sql) == NULL
		     ? lg__model_build_error(m, sql.err, err)
		     : lg__db_run(s->db, sql.buf, s->params, n, LG__DB_READ, &r, err);
	if (rc == 0) {
		struct lg__plan plan;
		lg__plan_mask(&plan, m, cols, r, 0);
		rc = lg__rows_append(rows, m, r, &plan); /* rows keeps r */
	}
	lg__sql_free(&sql);
	lg__sql_free(&w.sql);
	return rc;
}

static int stream_run(struct stream *s, int (*fn)(void *ud, const void *row), void *ud,
		      struct lg_error *err)
{
	const struct lg_model *m = s->q->model;
	for (;;) {
		struct lg_rows rows = {0};
		int rc = stream_page(s, &rows, err);
		for (size_t i = 0; rc == 0 && i < rows.n; i++) {
			rc = fn(ud, lg_rows_at(&rows, i));
		}
		bool more = rc == 0 && rows.n == s->page;
		if (more) {
			/* Keep a copy of the last row as the next page's key. */
			lg_row_clear(m, s->last);
			rc = lg_row_copy(m, s->last, lg_rows_at(&rows, rows.n - 1));
			if (rc != 0) {
				lg__error_set(err, rc, "query: out of memory");
				more = false;
			}
			s->have_last = true;
		}
		lg_rows_free(&rows);
		if (!more) {
			return rc;
		}
	}
}

LG_API int lg_query_each(const struct lg_db *db, struct lg_query *q, unsigned page_size,
			 int (*fn)(void *ud, const void *row), void *ud, struct lg_error *err)
{
	if (q->err != 0 || q->norder != 0 || q->limit >= 0 || q->offset > 0 ||
	    q->where.depth != 0) {
		return lg__error_set(err, LG_EINVAL,
				     "query: lg_query_each needs a valid query without ORDER BY, "
				     "LIMIT or OFFSET");
	}
	const struct lg_model *m = q->model;
	struct stream s = {.db = db, .q = q, .page = page_size != 0 ? page_size : 1000};
	for (unsigned i = 0; i < m->ncols; i++) {
		if (m->cols[i].flags & LG_COL_PK) {
			s.pk[s.npk++] = (uint8_t)i;
		}
	}
	s.params = lg__malloc((size_t)(q->nparams + s.npk + 1) * sizeof(*s.params));
	s.last = lg__calloc(1, m->size);
	int rc = s.params == NULL || s.last == NULL
		     ? lg__error_set(err, LG_ENOMEM, "query: out of memory")
		     : stream_run(&s, fn, ud, err);
	if (s.last != NULL) {
		lg_row_clear(m, s.last);
	}
	lg__free(s.last);
	lg__free(s.params);
	return rc;
}

struct cursor {
	const struct lg_db *db;
	struct lg_query *q;
	unsigned batch;
	char name[40];
};

/* DECLAREs the cursor, FETCHes until a short batch, CLOSEs it. */
static int cursor_run(struct cursor *cu, int (*fn)(void *ud, const void *row), void *ud,
		      struct lg_error *err)
{
	const struct lg_model *m = cu->q->model;
	char buf[LG__STACK_SQL];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_puts(&sql, "DECLARE ");
	lg__sql_puts(&sql, cu->name);
	lg__sql_puts(&sql, " NO SCROLL CURSOR FOR ");
	int n = 0;
	int rc = lg__query_render(cu->q, LG__SELECT_ROWS, &sql, &n);
	rc = rc != 0 ? lg__model_build_error(m, rc, err)
		     : lg__db_run(cu->db, sql.buf, cu->q->params, n, 0, NULL, err);
	lg__sql_free(&sql);
	char fetch[80];
	snprintf(fetch, sizeof(fetch), "FETCH %u FROM %s", cu->batch, cu->name);
	uint64_t cols = cu->q->select != 0 ? cu->q->select : lg__model_all(m);
	bool more = rc == 0;
	while (more) {
		struct lg_result *r = NULL;
		struct lg_rows rows = {0};
		rc = lg__db_run(cu->db, fetch, NULL, 0, LG_QUERY_PREPARE, &r, err);
		if (rc == 0) {
			struct lg__plan plan;
			lg__plan_mask(&plan, m, cols, r, 0);
			rc = lg__rows_append(&rows, m, r, &plan); /* rows keeps r */
		}
		for (size_t i = 0; rc == 0 && i < rows.n; i++) {
			rc = fn(ud, lg_rows_at(&rows, i));
		}
		more = rc == 0 && rows.n == cu->batch;
		lg_rows_free(&rows);
	}
	if (rc == 0) {
		snprintf(fetch, sizeof(fetch), "CLOSE %s", cu->name);
		rc = lg__db_run(cu->db, fetch, NULL, 0, 0, NULL, err);
	}
	return rc;
}

LG_API int lg_query_stream(const struct lg_db *db, struct lg_query *q, unsigned batch,
			   int (*fn)(void *ud, const void *row), void *ud, struct lg_error *err)
{
	struct cursor cu = {.db = db, .q = q, .batch = batch != 0 ? batch : 1000};
	/* Unique among the streams open in one transaction: they live on distinct stacks. */
	snprintf(cu.name, sizeof(cu.name), "lg_cursor_%lx", (unsigned long)(uintptr_t)&cu);
	if (db->tx != NULL) {
		return cursor_run(&cu, fn, ud, err);
	}
	struct lg_tx *tx;
	struct lg_tx_opts opts = {.read_only = true};
	int rc = lg_pool_begin(db->pool, &opts, &tx, err);
	if (rc != 0) {
		return rc;
	}
	struct lg_db tdb = lg_db_tx(db, tx);
	cu.db = &tdb;
	rc = cursor_run(&cu, fn, ud, err);
	if (rc == 0) {
		return lg_tx_commit(tx, err);
	}
	struct lg_error ignored;
	lg_tx_rollback(tx, &ignored);
	return rc;
}
