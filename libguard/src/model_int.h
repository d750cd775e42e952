/* Internal helpers shared by the ORM's model_*.c files. */
#ifndef LG_MODEL_INT_H
#define LG_MODEL_INT_H

#include "libguard/conn.h"
#include "libguard/model.h"
#include "libguard/pool.h"
#include "libguard/query.h"

#include "pg_result_int.h"
#include "query_build.h"

/* Query flags of the ORM's statements: its reads share sync segments, its writes do not. */
#define LG__DB_READ  (LG_QUERY_PREPARE | LG_QUERY_SHARED_READ)
#define LG__DB_WRITE LG_QUERY_PREPARE

/* A statement of db through its database handle (db.c): shared reads routed by replica lag
 * and db->session, everything else to the primary with a token for the session. */
int lg__db_route(const struct lg_db *db, const char *sql, const struct lg_param *params, int n,
		 const struct lg_query_opts *o, struct lg_result **out, struct lg_error *err);

/* Records in db->session (if any) the lg_version an ORM write left on row (db_orm.c);
 * deleted: the row is gone. */
void lg__session_note_row(const struct lg_db *db, const struct lg_model *m, const void *row,
			  bool deleted);

/* Runs sql on db (pool or transaction) after calling the on_sql hook. Inline: every ORM
 * statement passes here, and a frame of its own is one more stack line to touch again when
 * the coroutine resumes from the wait for the result. */
static inline int lg__db_run(const struct lg_db *db, const char *sql, const struct lg_param *params,
			     int n, unsigned flags, struct lg_result **out, struct lg_error *err)
{
	if (db->on_sql != NULL) {
		db->on_sql(db->on_sql_ud, sql, n);
	}
	struct lg_query_opts o = {
	    .deadline = db->timeout_ms != 0 ? lg_deadline_in(db->timeout_ms) : 0,
	    .flags = flags,
	};
	if (db->tx != NULL) {
		return lg_tx_query(db->tx, sql, params, n, &o, out, err);
	}
	return db->dbh != NULL ? lg__db_route(db, sql, params, n, &o, out, err)
			       : lg_pool_query(db->pool, sql, params, n, &o, out, err);
}

/* Scratch memory of one statement's parameters (inet and array values): zero-initialize,
 * release with lg__enc_free once the statement has returned. */
struct lg__enc {
	void *head;
};
void lg__enc_free(struct lg__enc *enc);

/* The parameter of a field of type t beyond the basic ones (model_values.c): LG_EINVAL for a
 * value the server cannot hold, or an inet / array field without enc. */
int lg__value_param(enum lg_type t, const void *field, struct lg__enc *enc, struct lg_param *out);
/* Decodes a non-NULL cell of type t beyond the basic ones into field f (LG_ENULL for NULL);
 * array storage is allocated with r. */
int lg__value_decode(enum lg_type t, struct lg_result *r, int ri, int k, char *f);
/* Deep copies of such fields (lg_row_copy): the bytes a copy needs (a multiple of
 * LG__COPY_ALIGN), and the copy itself into mem, which it returns advanced. */
#define LG__COPY_ALIGN _Alignof(max_align_t)
size_t lg__value_copy_size(enum lg_type t, const void *field);
char *lg__value_copy(enum lg_type t, void *field, char *mem);

/* lg__result_keep: a block of n bytes freed with r, aligned for any type (pg_result_int.h). */

/* The NULL bit mask and Owned memory block of a row. */
uint64_t *lg__row_nulls(const struct lg_model *m, void *row);
void **lg__row_mem(const struct lg_model *m, void *row);

/*
 * The bound parameter for column col of row (Borrowing the row's strings until the
 * statement returns). LG_EINVAL when the value is NULL but the column is not nullable, or a
 * string field is a NULL pointer without its NULL bit, or a value the column's type cannot
 * hold. inet and array values are built in enc (NULL: such columns give LG_EINVAL).
 */
int lg__field_param(const struct lg_model *m, unsigned col, const void *row, struct lg__enc *enc,
		    struct lg_param *out);

/* Sets err for a failed lg__row_params / lg__field_param (rc) over the columns of mask of
 * row, naming the first column that cannot be bound and why; returns LG_EINVAL or
 * LG_ENOMEM. */
int lg__bad_value(const struct lg_model *m, uint64_t mask, const void *row, int rc,
		  struct lg_error *err);

/* Parameters for the columns in mask of row, appended at out[*n]. */
int lg__row_params(const struct lg_model *m, uint64_t mask, const void *row, struct lg__enc *enc,
		   struct lg_param *out, int *n);

/*
 * How the columns of one result fill a model's row struct (model_decode.c), worked out once
 * per result: the model columns it fills, and where each is in the result. Small on purpose:
 * it lives on the stack of every read, and each coroutine's stack is touched again when it
 * resumes with its result.
 */
struct lg__plan {
	uint64_t cols;    /* model columns filled (LG_COL bits) */
	int skip;         /* without k: the j-th of cols is result column skip + j */
	const int16_t *k; /* else k[i] is the result column of model column i */
};

/* For a result whose columns from skip on are the columns of mask, in model order (a result
 * with fewer columns fills the first ones). */
void lg__plan_mask(struct lg__plan *p, const struct lg_model *m, uint64_t mask,
		   const struct lg_result *r, int skip);
/* By result column names, into k (the caller's storage); result columns without a model
 * column are ignored. */
void lg__plan_names(struct lg__plan *p, int16_t k[LG_MODEL_MAX_COLS], const struct lg_model *m,
		    const struct lg_result *r);

/* Releases what a row's lg_mem holds: a block of copies, or a result (tagged pointer). */
void lg__row_mem_release(void *mem);

/* Decodes row ri of r into dst (zeroed first; lg_mem left NULL), strings Borrowed from r. */
int lg__row_decode(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r, int ri,
		   void *dst);
/* Releases row's old lg_mem, decodes row ri into it and hands r to the row (its lg_mem): the
 * strings stay valid until lg_row_clear. r is taken in every case: freed now on failure, or
 * when the columns decoded include no string (lg_mem then stays NULL). */
int lg__row_take(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r, int ri,
		 void *row);
/* Same, but the row gets its own block of copies; r stays the caller's. */
int lg__row_decode_copy(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r,
			int ri, void *row);

/* Appends every row of r to out (which must be for m), or none on error. r is taken in
 * every case: out keeps it until lg_rows_free when its rows Borrow strings from it, else
 * (no rows, no string column, an error) it is freed now. */
int lg__rows_append(struct lg_rows *out, const struct lg_model *m, struct lg_result *r,
		    const struct lg__plan *p);

/* Renders q as a statement of kind into sql; LIMIT/OFFSET values are written after the
 * filter's parameters, *n = the parameter count. */
int lg__query_render(struct lg_query *q, enum lg__select_kind kind, struct lg_sqlbuf *sql, int *n);

/* Sets err for a failed SQL build of m. */
int lg__model_build_error(const struct lg_model *m, int code, struct lg_error *err);

#define LG__STACK_PARAMS 32
#define LG__STACK_SQL    1024
/* The stack buffer of the builder's reads, which wait for their result on it: a deeper stack
 * touches more pages on every resume of every waiting coroutine, and that cost several times
 * the instructions of the ORM (orm_bench). Longer statements move to the heap. */
#define LG__STACK_SQL_READ 256

#endif
