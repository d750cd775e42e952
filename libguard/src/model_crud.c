/*
 * ORM CRUD: find by key, insert (one row from a change set, or many rows as multi-row
 * VALUES), update of changed columns with optimistic locking, delete by key, upsert, and the
 * raw-SQL escape hatch.
 *
 * Every statement is generated into a stack buffer by the pure builder (query_build*.c) and
 * sent as a prepared statement with bound parameters. Failure modes:
 *   - an invalid model, identifier or NULL in a NOT NULL column: LG_EINVAL, nothing sent;
 *   - no row for the key: LG_ENOTFOUND;
 *   - an update whose version no longer matches: LG_ESERVER with SQLSTATE 40001 (the lost
 *     update is not applied; lg_pool_run_tx retries it as a serialization failure);
 *   - anything from the pool (LG_ESERVER with the server's SQLSTATE, LG_ECONNLOST ...).
 */
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "model_int.h"

/* Runs sql, then decodes the single returned row (if any) into row. *found tells. */
static int run_into_row(const struct lg_db *db, const struct lg_model *m, const char *sql,
			unsigned flags, const struct lg_param *p, int n, void *row, bool *found,
			struct lg_error *err)
{
	struct lg_result *r = NULL;
	int rc = lg__db_run(db, sql, p, n, flags, &r, err);
	if (rc != 0) {
		return rc;
	}
	*found = lg_result_rows(r) > 0;
	if (!*found) {
		lg_result_free(r);
		return 0;
	}
	struct lg__plan plan;
	lg__plan_mask(&plan, m, lg__model_all(m), r, 0);
	/* The parameters may borrow the row's old strings: released only now, by the take. */
	rc = lg__row_take(m, &plan, r, 0, row);
	if (rc != 0) {
		lg__error_set(err, rc, "model %s: decoding a row: %s", m->table, lg_strerror(rc));
	}
	return rc;
}

/* Runs find-by-key sql into out: LG_ENOTFOUND when no row has the key. */
static int find_run(const struct lg_db *db, const struct lg_model *m, const char *sql, int npk,
		    const struct lg_param *key, void *out, struct lg_error *err)
{
	bool found = false;
	int rc = run_into_row(db, m, sql, LG__DB_READ, key, npk, out, &found, err);
	if (rc == 0 && !found) {
		rc = lg__error_set(err, LG_ENOTFOUND, "model %s: no row with that key", m->table);
	}
	return rc;
}

/* lg_model_find for a model without a cache: renders the statement on the stack. Kept out
 * of line so that the cached path's frame stays small (see struct lg__plan). */
static __attribute__((noinline)) int find_uncached(const struct lg_db *db, const struct lg_model *m,
						   const struct lg_param *key, void *out,
						   struct lg_error *err)
{
	char buf[LG__STACK_SQL];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_find(&sql, m);
	int rc =
	    lg__sql_text(&sql) == NULL
		? lg__model_build_error(m, sql.err, err)
		: find_run(db, m, sql.buf, __builtin_popcountll(lg__model_pk(m)), key, out, err);
	lg__sql_free(&sql);
	return rc;
}

LG_API int lg_model_find(const struct lg_db *db, const struct lg_model *m,
			 const struct lg_param *key, void *out, struct lg_error *err)
{
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	/* A cached model sends its statement straight from the cache: nothing is built. */
	const struct lg__model_cache *c = lg__model_cached(m);
	return c != NULL ? find_run(db, m, c->text + c->find.off, c->npk, key, out, err)
			 : find_uncached(db, m, key, out, err);
}

LG_API int lg_model_reload(const struct lg_db *db, const struct lg_model *m, void *row,
			   struct lg_error *err)
{
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	struct lg_param key[LG_MODEL_MAX_COLS];
	int n = 0;
	int rc = lg__row_params(m, lg__model_pk(m), row, NULL, key, &n);
	if (rc != 0) {
		return lg__bad_value(m, lg__model_pk(m), row, rc, err);
	}
	return lg_model_find(db, m, key, row, err);
}

/* Builds sql with build(), binds the row's cols, runs, decodes the returned row. */
static int write_one(const struct lg_db *db, struct lg_changes *c, struct lg_sqlbuf *sql,
		     uint64_t cols, uint64_t tail, bool *found, struct lg_error *err)
{
	const struct lg_model *m = c->model;
	if (lg__sql_text(sql) == NULL) {
		return lg__model_build_error(m, sql->err, err);
	}
	struct lg_param p[2 * LG_MODEL_MAX_COLS];
	struct lg__enc enc = {NULL};
	int n = 0;
	int rc = lg__row_params(m, cols, c->row, &enc, p, &n);
	if (rc == 0) {
		rc = lg__row_params(m, tail, c->row, &enc, p, &n);
	}
	int v = lg__model_version_col(m);
	if (rc == 0 && v >= 0 && (tail & LG_COL_BIT((unsigned)v)) == 0 && tail != 0) {
		/* UPDATE: the version is the last parameter, after the key. */
		rc = lg__field_param(m, (unsigned)v, c->row, &enc, &p[n++]);
	}
	uint64_t bound = cols | tail | (v >= 0 ? LG_COL_BIT((unsigned)v) : 0);
	rc = rc != 0 ? lg__bad_value(m, bound, c->row, rc, err)
		     : run_into_row(db, m, sql->buf, LG__DB_WRITE, p, n, c->row, found, err);
	lg__enc_free(&enc);
	if (rc == 0 && *found) {
		c->changed = 0;
		lg__session_note_row(db, m, c->row, false);
	}
	return rc;
}

LG_API int lg_model_insert(const struct lg_db *db, struct lg_changes *c, struct lg_error *err)
{
	const struct lg_model *m = c->model;
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	char buf[LG__STACK_SQL];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_insert(&sql, m, c->changed, 1, true);
	bool found = false;
	int rc = write_one(db, c, &sql, c->changed, 0, &found, err);
	lg__sql_free(&sql);
	return rc;
}

LG_API int lg_model_update(const struct lg_db *db, struct lg_changes *c, struct lg_error *err)
{
	const struct lg_model *m = c->model;
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	int v = lg__model_version_col(m);
	uint64_t set = c->changed & ~lg__model_pk(m);
	if (v >= 0) {
		set &= ~LG_COL_BIT((unsigned)v);
	}
	if (set == 0) {
		return 0; /* nothing changed: nothing to send */
	}
	char buf[LG__STACK_SQL];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_update(&sql, m, set);
	bool found = false;
	int rc = write_one(db, c, &sql, set, lg__model_pk(m), &found, err);
	lg__sql_free(&sql);
	if (rc != 0 || found) {
		return rc;
	}
	if (v < 0) {
		return lg__error_set(err, LG_ENOTFOUND, "model %s: update: no row with that key",
				     m->table);
	}
	/* Tell a lost update from a missing row: one more statement, on the failure path. */
	struct lg_param key[LG_MODEL_MAX_COLS];
	int n = 0;
	(void)lg__row_params(m, lg__model_pk(m), c->row, NULL, key, &n);
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_find(&sql, m);
	struct lg_result *r = NULL;
	rc = lg__sql_text(&sql) != NULL ? lg__db_run(db, sql.buf, key, n, LG__DB_READ, &r, err)
					: lg__model_build_error(m, sql.err, err);
	lg__sql_free(&sql);
	if (rc != 0) {
		return rc;
	}
	bool exists = lg_result_rows(r) > 0;
	lg_result_free(r);
	if (!exists) {
		return lg__error_set(err, LG_ENOTFOUND, "model %s: update: no row with that key",
				     m->table);
	}
	lg__error_set(err, LG_ESERVER,
		      "model %s: optimistic lock: the row changed since it was read (version "
		      "%lld); update not applied",
		      m->table,
		      (long long)*(const int64_t *)((const char *)c->row + m->cols[v].offset));
	lg__error_set_sqlstate(err, "40001");
	return LG_ESERVER;
}

LG_API int lg_model_delete(const struct lg_db *db, const struct lg_model *m, const void *row,
			   struct lg_error *err)
{
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	struct lg_param key[LG_MODEL_MAX_COLS];
	int n = 0;
	int rc = lg__row_params(m, lg__model_pk(m), row, NULL, key, &n);
	if (rc != 0) {
		return lg__bad_value(m, lg__model_pk(m), row, rc, err);
	}
	char buf[LG__STACK_SQL];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_delete_pk(&sql, m);
	struct lg_result *r = NULL;
	rc = lg__sql_text(&sql) != NULL ? lg__db_run(db, sql.buf, key, n, LG__DB_WRITE, &r, err)
					: lg__model_build_error(m, sql.err, err);
	lg__sql_free(&sql);
	if (rc == 0 && lg_result_affected(r) == 0) {
		rc = lg__error_set(err, LG_ENOTFOUND, "model %s: delete: no row with that key",
				   m->table);
	}
	if (rc == 0) {
		lg__session_note_row(db, m, row, true);
	}
	lg_result_free(r);
	return rc;
}

LG_API int lg_model_upsert(const struct lg_db *db, struct lg_changes *c, enum lg_conflict on,
			   bool *applied, struct lg_error *err)
{
	const struct lg_model *m = c->model;
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	if ((c->changed & lg__model_pk(m)) != lg__model_pk(m)) {
		return lg__error_set(err, LG_EINVAL, "model %s: upsert needs every key column set",
				     m->table);
	}
	char buf[LG__STACK_SQL];
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, buf, sizeof(buf));
	lg__sql_upsert(&sql, m, c->changed, on == LG_ON_CONFLICT_UPDATE);
	bool found = false;
	int rc = write_one(db, c, &sql, c->changed, 0, &found, err);
	lg__sql_free(&sql);
	if (applied != NULL) {
		*applied = rc == 0 && found;
	}
	return rc;
}

LG_API int lg_model_raw(const struct lg_db *db, const struct lg_model *m, const char *sql,
			const struct lg_param *params, int nparams, struct lg_rows *out,
			struct lg_error *err)
{
	if (lg__model_check(m) != 0 || (out->model != NULL && out->model != m)) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	struct lg_result *r = NULL;
	int rc = lg__db_run(db, sql, params, nparams, LG_QUERY_PREPARE, &r, err);
	if (rc != 0) {
		return rc;
	}
	struct lg__plan plan;
	int16_t k[LG_MODEL_MAX_COLS];
	lg__plan_names(&plan, k, m, r);
	out->model = m;
	rc = lg__rows_append(out, m, r, &plan);
	if (rc != 0) {
		lg__error_set(err, rc, "model %s: raw: decoding rows: %s", m->table,
			      lg_strerror(rc));
	}
	return rc;
}
