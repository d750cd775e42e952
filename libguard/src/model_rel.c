/*
 * Batch writes and relation loading.
 *
 * lg_model_insert_many: rows go out as multi-row INSERT ... VALUES statements, chunked so a
 * statement never exceeds the Bind message's 65,535 parameters (COPY cannot run on the
 * pipelined connections). On a pool the chunks share one pinned transaction: all or none.
 *
 * Relations: the keys of a whole batch of source rows are sent as ONE array parameter
 * ("col" = ANY($1::int8[])), so loading a relation for n parents is one statement, never n.
 * The array travels in its text form (PostgreSQL documentation 8.15.6, "Array Input and
 * Output Syntax"): every element double-quoted with backslash-escaped quotes and backslashes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "model_int.h"
#include "pg_types.h"

#define BATCH_MAX_ROWS  1000
#define MAX_BIND_PARAMS 65535

static int insert_chunk(const struct lg_db *db, const struct lg_model *m, char *rows, size_t n,
			uint64_t cols, bool returning, struct lg_error *err)
{
	int per = __builtin_popcountll(cols);
	struct lg__enc enc = {NULL};
	struct lg_param *p = lg__malloc(n * (size_t)per * sizeof(*p));
	struct lg_sqlbuf sql;
	lg__sql_init(&sql, NULL, 0);
	lg__sql_insert(&sql, m, cols, n, returning);
	int rc = p == NULL ? LG_ENOMEM : sql.err;
	if (rc != 0) {
		rc = lg__model_build_error(m, rc, err);
		goto out;
	}
	int np = 0;
	for (size_t i = 0; i < n; i++) {
		rc = lg__row_params(m, cols, rows + i * m->size, &enc, p, &np);
		if (rc != 0) {
			rc = lg__bad_value(m, cols, rows + i * m->size, rc, err);
			if (err != NULL) {
				char msg[sizeof(err->message)];
				snprintf(msg, sizeof(msg), "%s", err->message);
				lg__error_set(err, rc, "%s (insert: row %zu)", msg, i);
			}
			goto out;
		}
	}
	struct lg_result *r = NULL;
	rc = lg__db_run(db, sql.buf, p, np, 0, &r, err);
	if (rc == 0 && returning) {
		struct lg__plan plan;
		lg__plan_mask(&plan, m, lg__model_all(m), r, 0);
		/* INSERT ... VALUES RETURNING yields rows in VALUES order. The caller's rows
		 * outlive r, each on its own: they get copies. */
		for (int i = 0; i < lg_result_rows(r) && (size_t)i < n && rc == 0; i++) {
			rc = lg__row_decode_copy(m, &plan, r, i, rows + (size_t)i * m->size);
		}
		if (rc != 0) {
			lg__error_set(err, rc, "model %s: insert: decoding", m->table);
		}
	}
	lg_result_free(r);
out:
	lg__enc_free(&enc);
	lg__free(p);
	lg__sql_free(&sql);
	return rc;
}

struct many_args {
	const struct lg_model *m;
	char *rows;
	size_t n;
	bool returning;
	const struct lg_db *db;
};

static int insert_many_in(const struct lg_db *db, struct many_args *a, struct lg_error *err)
{
	uint64_t cols = lg__model_insertable(a->m);
	size_t per = (size_t)__builtin_popcountll(cols);
	if (per == 0) {
		return lg__error_set(err, LG_EINVAL, "model %s: no insertable column", a->m->table);
	}
	size_t chunk = MAX_BIND_PARAMS / per;
	if (chunk > BATCH_MAX_ROWS) {
		chunk = BATCH_MAX_ROWS;
	}
	for (size_t i = 0; i < a->n; i += chunk) {
		size_t k = a->n - i < chunk ? a->n - i : chunk;
		int rc =
		    insert_chunk(db, a->m, a->rows + i * a->m->size, k, cols, a->returning, err);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

static int insert_many_tx(struct lg_tx *tx, void *arg, struct lg_error *err)
{
	struct many_args *a = arg;
	struct lg_db db = lg_db_tx(a->db, tx);
	return insert_many_in(&db, a, err);
}

LG_API int lg_model_insert_many(const struct lg_db *db, const struct lg_model *m, void *rows,
				size_t n, bool returning, struct lg_error *err)
{
	if (lg__model_check(m) != 0) {
		return lg__model_build_error(m, LG_EINVAL, err);
	}
	if (n == 0) {
		return 0;
	}
	struct many_args a = {m, rows, n, returning, db};
	if (db->tx != NULL) {
		return insert_many_in(db, &a, err);
	}
	/* One attempt: a retry would re-run inserts whose RETURNING rows were decoded. */
	return lg_pool_run_tx(db->pool, NULL, insert_many_tx, &a, 1, err);
}

/* Appends the array-literal element for column col of row, or nothing when NULL. */
static void key_element(struct lg_sqlbuf *s, const struct lg_model *m, unsigned col,
			const void *row, bool *first)
{
	const struct lg_model_col *c = &m->cols[col];
	if ((*lg__row_nulls(m, (void *)(uintptr_t)row) >> col) & 1u) {
		return;
	}
	const char *f = (const char *)row + c->offset;
	char tmp[40];
	const char *text = tmp;
	switch (c->type) {
	case LG_INT32:
		snprintf(tmp, sizeof(tmp), "%" PRId32, *(const int32_t *)(const void *)f);
		break;
	case LG_INT64:
		snprintf(tmp, sizeof(tmp), "%" PRId64, *(const int64_t *)(const void *)f);
		break;
	case LG_UUID:
		lg__pg_format_uuid(((const struct lg_uuid *)(const void *)f)->b, tmp);
		break;
	default:
		text = *(const char *const *)(const void *)f;
		break;
	}
	if (text == NULL) {
		return;
	}
	lg__sql_puts(s, *first ? "\"" : ",\"");
	*first = false;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			lg__sql_put(s, "\\", 1);
		}
		lg__sql_put(s, p, 1);
	}
	lg__sql_put(s, "\"", 1);
}

static int keys_literal(struct lg_sqlbuf *s, const struct lg_model *m, unsigned col,
			const void *src, size_t n)
{
	if (col >= m->ncols || lg__type_array_name(m->cols[col].type) == NULL) {
		return LG_EINVAL;
	}
	bool first = true;
	lg__sql_put(s, "{", 1);
	for (size_t i = 0; i < n; i++) {
		key_element(s, m, col, (const char *)src + i * m->size, &first);
	}
	lg__sql_put(s, "}", 1);
	return s->err;
}

/* Index of the source row whose key text equals key, or SIZE_MAX. */
static size_t owner_of(const struct lg_model *m, unsigned col, const void *src, size_t n,
		       const char *key)
{
	for (size_t i = 0; i < n; i++) {
		struct lg_sqlbuf s;
		char b[LG__STACK_SQL];
		lg__sql_init(&s, b, sizeof(b));
		bool first = true;
		key_element(&s, m, col, (const char *)src + i * m->size, &first);
		/* key_element quotes and escapes; compare against the same form of key. */
		struct lg_sqlbuf k;
		char kb[LG__STACK_SQL];
		lg__sql_init(&k, kb, sizeof(kb));
		lg__sql_put(&k, "\"", 1);
		for (const char *p = key; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\') {
				lg__sql_put(&k, "\\", 1);
			}
			lg__sql_put(&k, p, 1);
		}
		lg__sql_put(&k, "\"", 1);
		bool eq =
		    s.err == 0 && k.err == 0 && s.len == k.len && memcmp(s.buf, k.buf, s.len) == 0;
		lg__sql_free(&s);
		lg__sql_free(&k);
		if (eq) {
			return i;
		}
	}
	return SIZE_MAX;
}

/* The source rows of a many-to-many load, to tell each loaded row's owner. */
struct m2m_src {
	const struct lg_model *m;
	const void *rows;
	size_t n;
	unsigned col;
};

/* out->owner for the rows r is about to append: its first column is the source key. Read
 * before the append, which may release r (a target without strings keeps no result). */
static int set_owners(struct lg_rows *out, struct lg_result *r, const struct m2m_src *s)
{
	size_t nr = (size_t)lg_result_rows(r);
	size_t *owner = nr != 0 ? lg__realloc(out->owner, (out->n + nr) * sizeof(size_t)) : NULL;
	if (nr != 0 && owner == NULL) {
		return LG_ENOMEM;
	}
	for (size_t i = 0; i < nr; i++) {
		const char *key = "";
		(void)lg_result_text(r, (int)i, 0, &key, NULL);
		owner[out->n + i] = owner_of(s->m, s->col, s->rows, s->n, key);
	}
	out->owner = nr != 0 ? owner : out->owner;
	return 0;
}

/* Runs the relation statement and appends its rows to out (with their owners for m2m). */
static int run_related(const struct lg_db *db, const struct lg_model *target, struct lg_sqlbuf *sql,
		       struct lg_sqlbuf *keys, const struct m2m_src *m2m, struct lg_rows *out,
		       struct lg_error *err)
{
	if (lg__sql_text(sql) == NULL) {
		return lg__model_build_error(target, sql->err, err);
	}
	struct lg_param p = lg_param_textn(keys->buf, keys->len);
	struct lg_result *r = NULL;
	int rc = lg__db_run(db, sql->buf, &p, 1, LG__DB_READ, &r, err);
	if (rc != 0) {
		return rc;
	}
	if (m2m != NULL && set_owners(out, r, m2m) != 0) {
		lg_result_free(r);
		return lg__error_set(err, LG_ENOMEM, "model %s: out of memory", target->table);
	}
	struct lg__plan plan;
	lg__plan_mask(&plan, target, lg__model_all(target), r, m2m != NULL ? 1 : 0);
	rc = lg__rows_append(out, target, r, &plan);
	if (rc != 0) {
		lg__error_set(err, rc, "model %s: decoding related rows", target->table);
	}
	return rc;
}

LG_API int lg_model_load_related(const struct lg_db *db, const struct lg_model *target,
				 unsigned target_col, const struct lg_model *src_model,
				 const void *src, size_t n, unsigned src_col, struct lg_rows *out,
				 struct lg_error *err)
{
	if (lg__model_check(target) != 0 || lg__model_check(src_model) != 0 ||
	    (out->model != NULL && out->model != target)) {
		return lg__model_build_error(target, LG_EINVAL, err);
	}
	out->model = target;
	struct lg_sqlbuf keys, sql;
	char kbuf[LG__STACK_SQL], sbuf[LG__STACK_SQL];
	lg__sql_init(&keys, kbuf, sizeof(kbuf));
	lg__sql_init(&sql, sbuf, sizeof(sbuf));
	int rc = keys_literal(&keys, src_model, src_col, src, n);
	lg__sql_related(&sql, target, target_col);
	rc = rc != 0 ? lg__model_build_error(target, rc, err)
		     : run_related(db, target, &sql, &keys, NULL, out, err);
	lg__sql_free(&keys);
	lg__sql_free(&sql);
	return rc;
}

LG_API int lg_model_load_many_to_many(const struct lg_db *db, const struct lg_model *target,
				      unsigned target_col, const struct lg_model *join,
				      unsigned join_src_col, unsigned join_target_col,
				      const struct lg_model *src_model, const void *src, size_t n,
				      unsigned src_col, struct lg_rows *out, struct lg_error *err)
{
	if (lg__model_check(target) != 0 || lg__model_check(join) != 0 ||
	    lg__model_check(src_model) != 0 || (out->model != NULL && out->model != target)) {
		return lg__model_build_error(target, LG_EINVAL, err);
	}
	out->model = target;
	struct lg_sqlbuf keys, sql;
	char kbuf[LG__STACK_SQL], sbuf[LG__STACK_SQL];
	lg__sql_init(&keys, kbuf, sizeof(kbuf));
	lg__sql_init(&sql, sbuf, sizeof(sbuf));
	int rc = keys_literal(&keys, src_model, src_col, src, n);
	lg__sql_m2m(&sql, target, target_col, join, join_src_col, join_target_col);
	struct m2m_src m2m = {src_model, src, n, src_col};
	rc = rc != 0 ? lg__model_build_error(target, rc, err)
		     : run_related(db, target, &sql, &keys, &m2m, out, err);
	lg__sql_free(&keys);
	lg__sql_free(&sql);
	return rc;
}
