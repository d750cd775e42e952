/* Internal helpers shared by the ORM's model_*.c files. */
#ifndef LG_MODEL_INT_H
#define LG_MODEL_INT_H

#include "libguard/conn.h"
#include "libguard/model.h"
#include "libguard/pool.h"
#include "libguard/query.h"

#include "query_build.h"

/* Runs sql on db (pool or transaction) after calling the on_sql hook. */
/* Query flags of the ORM's statements: its reads share sync segments, its writes do not. */
#define LG__DB_READ  (LG_QUERY_PREPARE | LG_QUERY_SHARED_READ)
#define LG__DB_WRITE LG_QUERY_PREPARE

int lg__db_run(const struct lg_db *db, const char *sql, const struct lg_param *params, int n,
	       unsigned flags, struct lg_result **out, struct lg_error *err);

/* The NULL bit mask and Owned memory block of a row. */
uint64_t *lg__row_nulls(const struct lg_model *m, void *row);
void **lg__row_mem(const struct lg_model *m, void *row);

/*
 * The bound parameter for column col of row (Borrowing the row's strings until the
 * statement returns). LG_EINVAL when the value is NULL but the column is not nullable, or a
 * string field is a NULL pointer without its NULL bit.
 */
int lg__field_param(const struct lg_model *m, unsigned col, const void *row, struct lg_param *out);

/* Parameters for the columns in mask of row, appended at out[*n]. */
int lg__row_params(const struct lg_model *m, uint64_t mask, const void *row, struct lg_param *out,
		   int *n);

/*
 * Decodes row ri of r into dst (zeroed first; its old lg_mem must already be released).
 * map[k] is the model column of result column k + skip, or -1 to ignore it. Strings go to
 * the arena of rows when given, else to a new lg_mem block of dst.
 */
int lg__row_decode(const struct lg_model *m, struct lg_result *r, int ri, const int *map, int ncols,
		   int skip, void *dst, struct lg_rows *rows);

/* map for a result whose columns are exactly the columns of mask, in model order. */
int lg__map_mask(const struct lg_model *m, uint64_t mask, int *map);
/* map by result column names. */
void lg__map_names(const struct lg_model *m, const struct lg_result *r, int skip, int *map);

/* Appends every row of r to out (which must be for m). */
int lg__rows_append(struct lg_rows *out, const struct lg_model *m, struct lg_result *r,
		    const int *map, int skip);
/* Grows out by one zeroed row and returns it. */
void *lg__rows_push(struct lg_rows *out, const struct lg_model *m);

/* Renders q as a statement of kind into sql; LIMIT/OFFSET values are written after the
 * filter's parameters, *n = the parameter count. */
int lg__query_render(struct lg_query *q, enum lg__select_kind kind, struct lg_sqlbuf *sql, int *n);

/* Sets err for a failed SQL build of m. */
int lg__model_build_error(const struct lg_model *m, int code, struct lg_error *err);

#define LG__STACK_PARAMS 32
#define LG__STACK_SQL    1024

#endif
