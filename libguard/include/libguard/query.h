/*
 * libguard ORM query builder: filters, ordering, paging, counting, streaming.
 *
 *	struct lg_query q;
 *	lg_query_init(&q, &user_model);
 *	lg_query_eq(&q, user_col_email, lg_param_text("x"));   -- conditions are ANDed
 *	lg_query_or(&q);                                        -- ( ... OR ... )
 *	    lg_query_lt(&q, user_col_id, lg_param_int64(10));
 *	    lg_query_is_null(&q, user_col_name);
 *	lg_query_end(&q);
 *	lg_query_order(&q, user_col_id, false);
 *	lg_query_limit(&q, 50);
 *	lg_query_all(&db, &q, &rows, &err);                     -- or first/count/exists/...
 *	lg_query_close(&q);
 *
 * Column arguments are the model's m##_col_<name> values; a column outside the model, an
 * unbalanced group or too many nested groups make the query fail with LG_EINVAL when run
 * (errors are sticky, so building code needs no checks). Values are Borrowed lg_params
 * (strings must outlive the query run) and always travel as bound parameters.
 *
 * A struct lg_query lives on the caller's stack and must not be copied once built on (it
 * points into itself); lg_query_close releases what it spilled to the heap.
 */
#ifndef LIBGUARD_QUERY_H
#define LIBGUARD_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "libguard/conn.h"
#include "libguard/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LG_QUERY_MAX_ORDER     8
#define LG_QUERY_INLINE_PARAMS 16
#define LG_QUERY_INLINE_SQL    384

struct lg_query {
	const struct lg_model *model;
	uint64_t select; /* columns to load (LG_COL bits); 0 = all */
	int64_t limit;   /* < 0: none */
	int64_t offset;  /* <= 0: none */
	int norder;
	uint8_t order[LG_QUERY_MAX_ORDER];
	bool desc[LG_QUERY_MAX_ORDER];
	int err; /* sticky LG_E* from building */
	/* Internal: the WHERE text and its parameters. */
	struct lg_where where;
	struct lg_param *params;
	int nparams;
	int cap;
	struct lg_param params_inline[LG_QUERY_INLINE_PARAMS];
	char where_inline[LG_QUERY_INLINE_SQL];
};

LG_API void lg_query_init(struct lg_query *q, const struct lg_model *m);
LG_API void lg_query_close(struct lg_query *q);

/* Comparisons: "col" <op> $n. */
LG_API void lg_query_eq(struct lg_query *q, unsigned col, struct lg_param v);
LG_API void lg_query_ne(struct lg_query *q, unsigned col, struct lg_param v);
LG_API void lg_query_lt(struct lg_query *q, unsigned col, struct lg_param v);
LG_API void lg_query_le(struct lg_query *q, unsigned col, struct lg_param v);
LG_API void lg_query_gt(struct lg_query *q, unsigned col, struct lg_param v);
LG_API void lg_query_ge(struct lg_query *q, unsigned col, struct lg_param v);
LG_API void lg_query_like(struct lg_query *q, unsigned col, struct lg_param pattern);
LG_API void lg_query_ilike(struct lg_query *q, unsigned col, struct lg_param pattern);
/* "col" IN ($a, $b, ...) with n values (Borrowed array); n == 0 matches nothing. */
LG_API void lg_query_in(struct lg_query *q, unsigned col, const struct lg_param *v, int n);
LG_API void lg_query_is_null(struct lg_query *q, unsigned col);
LG_API void lg_query_not_null(struct lg_query *q, unsigned col);

/* Groups: conditions until the matching lg_query_end() are joined by AND / OR, or form
 * NOT (... AND ...). Groups nest (up to 7 deep). An empty OR group is FALSE, others TRUE. */
LG_API void lg_query_and(struct lg_query *q);
LG_API void lg_query_or(struct lg_query *q);
LG_API void lg_query_not(struct lg_query *q);
LG_API void lg_query_end(struct lg_query *q);

/* ORDER BY col [DESC], in call order (up to 8). */
LG_API void lg_query_order(struct lg_query *q, unsigned col, bool desc);
LG_API void lg_query_limit(struct lg_query *q, int64_t n);
LG_API void lg_query_offset(struct lg_query *q, int64_t n);
/* Loads only the columns of mask (LG_COL bits; the others read as NULL: zero, with their
 * lg_null bit set). */
LG_API void lg_query_select(struct lg_query *q, uint64_t mask);

/*
 * Keyset pagination: adds (order columns) > (their values in last_row) — or < when the
 * order is descending — so the next page starts right after last_row. Needs an ORDER BY
 * over columns that are unique together (e.g. the key) in one direction, and must be called
 * outside any group. last_row is Borrowed until the query has run.
 */
LG_API void lg_query_after(struct lg_query *q, const void *last_row);

/*
 * The SQL text the query would send for rows (Borrowed into buf, NUL-terminated); LG_EINVAL
 * for a broken query, LG_ERANGE when buf is too small. For logs and tests.
 */
LG_API int lg_query_sql(struct lg_query *q, char *buf, size_t size);

/* Appends the matching rows to *out (out->model must be q's model or NULL). */
LG_API int lg_query_all(const struct lg_db *db, struct lg_query *q, struct lg_rows *out,
			struct lg_error *err);
/* The first matching row into *row (LIMIT 1); LG_ENOTFOUND if none. */
LG_API int lg_query_first(const struct lg_db *db, struct lg_query *q, void *row,
			  struct lg_error *err);
LG_API int lg_query_count(const struct lg_db *db, struct lg_query *q, int64_t *out,
			  struct lg_error *err);
LG_API int lg_query_exists(const struct lg_db *db, struct lg_query *q, bool *out,
			   struct lg_error *err);
/* DELETE FROM t WHERE <filter>. A filter that matches every row -- no condition, or one that
 * reduces to TRUE, such as NOT (x IN ()) -- is refused with LG_EINVAL before anything is
 * sent; emptying a table takes lg_query_delete_all. */
LG_API int lg_query_delete(const struct lg_db *db, struct lg_query *q, int64_t *affected,
			   struct lg_error *err);
/* DELETE FROM t: every row, on purpose. */
LG_API int lg_query_delete_all(const struct lg_db *db, const struct lg_model *m, int64_t *affected,
			       struct lg_error *err);

/*
 * Streams every matching row to fn without materializing the result: pages of page_size
 * rows (0 = 1,000) fetched by keyset pagination over the primary key (the query must not
 * have its own ORDER BY, LIMIT or OFFSET: LG_EINVAL). fn gets each row (Borrowed for the
 * call) and returns 0 to go on or anything else to stop; that value is returned. Memory
 * stays bounded by one page. Rows committed concurrently may or may not be seen.
 */
LG_API int lg_query_each(const struct lg_db *db, struct lg_query *q, unsigned page_size,
			 int (*fn)(void *ud, const void *row), void *ud, struct lg_error *err);

/*
 * Streams the rows of any query (ORDER BY, LIMIT and OFFSET allowed) through a server-side
 * cursor: DECLARE ... NO SCROLL CURSOR FOR <query> inside a transaction, then FETCH batch
 * rows (0 = 1,000) at a time, each handed to fn as in lg_query_each. With db->tx set the
 * cursor lives in that transaction; otherwise a read-only transaction is pinned for the
 * stream and ended afterwards. Memory stays bounded by one batch; the rows come from one
 * snapshot.
 */
LG_API int lg_query_stream(const struct lg_db *db, struct lg_query *q, unsigned batch,
			   int (*fn)(void *ud, const void *row), void *ud, struct lg_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_QUERY_H */
