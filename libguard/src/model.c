/*
 * ORM plumbing: where statements run (pool or pinned transaction, with the on_sql hook),
 * struct fields as bound parameters, releasing and copying rows, and change sets. Decoding
 * lives in model_decode.c.
 */
#include <assert.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "model_int.h"

LG_API struct lg_db lg_db_tx(const struct lg_db *base, struct lg_tx *tx)
{
	struct lg_db db = *base;
	db.tx = tx;
	return db;
}

LG_API int lg_db_query(const struct lg_db *db, const char *sql, const struct lg_param *params,
		       int nparams, struct lg_result **out, struct lg_error *err)
{
	return lg__db_run(db, sql, params, nparams, LG_QUERY_PREPARE, out, err);
}

uint64_t *lg__row_nulls(const struct lg_model *m, void *row)
{
	return (uint64_t *)((char *)row + m->null_offset);
}

void **lg__row_mem(const struct lg_model *m, void *row)
{
	return (void **)((char *)row + m->mem_offset);
}

LG_API void lg_row_clear(const struct lg_model *m, void *row)
{
	if (row == NULL) {
		return;
	}
	lg__row_mem_release(*lg__row_mem(m, row));
	memset(row, 0, m->size);
}

static bool is_null_at(const struct lg_model *m, unsigned i, const void *row)
{
	return (*lg__row_nulls(m, (void *)(uintptr_t)row) >> i) & 1u;
}

/* The bytes a string field of row needs in a copy (0 when NULL or fixed-size); arrays are
 * counted apart (lg__value_copy_size), since their blocks need alignment. */
static size_t field_size(const struct lg_model *m, unsigned i, const void *row)
{
	const struct lg_model_col *c = &m->cols[i];
	const char *f = (const char *)row + c->offset;
	if (!lg__type_is_string(c->type) || c->type >= LG_INT32_ARRAY || is_null_at(m, i, row)) {
		return 0;
	}
	if (c->type == LG_BYTEA) {
		return ((const struct lg_bytes *)(const void *)f)->len + 1;
	}
	const char *s = *(const char *const *)(const void *)f;
	return s != NULL ? strlen(s) + 1 : 0;
}

static size_t array_size(const struct lg_model *m, unsigned i, const void *row)
{
	const struct lg_model_col *c = &m->cols[i];
	return is_null_at(m, i, row) ? 0
				     : lg__value_copy_size(c->type, (const char *)row + c->offset);
}

LG_API int lg_row_copy(const struct lg_model *m, void *dst, const void *src)
{
	size_t total = 0;
	for (unsigned i = 0; i < m->ncols; i++) {
		total += array_size(m, i, src) + field_size(m, i, src);
	}
	char *mem = total != 0 ? lg__malloc(total) : NULL;
	if (total != 0 && mem == NULL) {
		memset(dst, 0, m->size);
		return LG_ENOMEM;
	}
	memmove(dst, src, m->size);
	*lg__row_mem(m, dst) = mem;
	/* Arrays first: their sizes keep the block aligned for the next one. */
	for (unsigned i = 0; i < m->ncols; i++) {
		if (array_size(m, i, dst) != 0) {
			mem = lg__value_copy(m->cols[i].type, (char *)dst + m->cols[i].offset, mem);
		}
	}
	for (unsigned i = 0; i < m->ncols; i++) {
		size_t n = field_size(m, i, dst);
		if (n == 0) {
			continue;
		}
		char *f = (char *)dst + m->cols[i].offset;
		if (m->cols[i].type == LG_BYTEA) {
			struct lg_bytes *b = (struct lg_bytes *)(void *)f;
			if (b->len > 0) {
				memcpy(mem, b->data, b->len);
			}
			mem[b->len] = '\0';
			b->data = (const uint8_t *)mem;
		} else {
			const char **s = (const char **)(void *)f;
			memcpy(mem, *s, n);
			*s = mem;
		}
		mem += n;
	}
	return 0;
}

int lg__model_build_error(const struct lg_model *m, int code, struct lg_error *err)
{
	return lg__error_set(err, code, "model %s: %s", m != NULL && m->table ? m->table : "?",
			     code == LG_ENOMEM
				 ? "out of memory building SQL"
				 : "invalid identifier, column, filter or filter value");
}

#define FIELD(row, c, type) (*(const type *)((const char *)(row) + (c)->offset))

int lg__field_param(const struct lg_model *m, unsigned col, const void *row, struct lg__enc *enc,
		    struct lg_param *out)
{
	const struct lg_model_col *c = &m->cols[col];
	bool is_null = (*lg__row_nulls(m, (void *)(uintptr_t)row) >> col) & 1u;
	if (is_null) {
		if (!(c->flags & LG_COL_NULLABLE)) {
			return LG_EINVAL;
		}
		*out = lg_param_null();
		return 0;
	}
	switch (c->type) {
	case LG_INT32:
		*out = lg_param_int32(FIELD(row, c, int32_t));
		return 0;
	case LG_INT64:
		*out = lg_param_int64(FIELD(row, c, int64_t));
		return 0;
	case LG_FLOAT64:
		*out = lg_param_double(FIELD(row, c, double));
		return 0;
	case LG_BOOL:
		*out = lg_param_bool(FIELD(row, c, bool));
		return 0;
	case LG_UUID:
		*out = lg_param_uuid(FIELD(row, c, struct lg_uuid).b);
		return 0;
	case LG_TIMESTAMPTZ:
		*out = lg_param_timestamptz(FIELD(row, c, int64_t));
		return 0;
	case LG_BYTEA: {
		struct lg_bytes b = FIELD(row, c, struct lg_bytes);
		if (b.data == NULL && b.len > 0) {
			return LG_EINVAL;
		}
		/* A NULL pointer would be sent as SQL NULL: use a real empty value. */
		*out = lg_param_bytea(b.data != NULL ? (const void *)b.data : "", b.len);
		return 0;
	}
	case LG_TEXT:
	case LG_JSONB: {
		const char *s = FIELD(row, c, char *);
		if (s == NULL) {
			return LG_EINVAL; /* NULL must be explicit: the column's NULL bit */
		}
		*out = c->type == LG_JSONB ? lg_param_jsonb(s) : lg_param_text(s);
		return 0;
	}
	default: /* the newer types: model_values.c */
		return lg__value_param(c->type, (const char *)row + c->offset, enc, out);
	}
}

int lg__bad_value(const struct lg_model *m, uint64_t mask, const void *row, int rc,
		  struct lg_error *err)
{
	if (rc == LG_ENOMEM) {
		return lg__error_set(err, rc, "model %s: out of memory binding values", m->table);
	}
	/* The error path only: bind the columns again, one by one, to name the first bad one. */
	for (unsigned i = 0; i < m->ncols; i++) {
		struct lg__enc enc = {NULL};
		struct lg_param p;
		int bad = (mask & LG_COL_BIT(i)) ? lg__field_param(m, i, row, &enc, &p) : 0;
		lg__enc_free(&enc);
		if (bad == LG_ENOMEM) {
			return lg__error_set(err, bad, "model %s: out of memory binding values",
					     m->table);
		}
		if (bad == 0) {
			continue;
		}
		const char *f = (const char *)row + m->cols[i].offset;
		bool null_value =
		    is_null_at(m, i, row) ||
		    (lg__type_is_string(m->cols[i].type) && m->cols[i].type < LG_INT32_ARRAY &&
		     m->cols[i].type != LG_BYTEA && *(const char *const *)(const void *)f == NULL);
		return lg__error_set(err, LG_EINVAL, "model %s: column %s: %s", m->table,
				     m->cols[i].name,
				     null_value ? "NULL (pointer or NULL bit) in a NOT NULL column"
						: "a value the column's type cannot hold (out of "
						  "range or malformed)");
	}
	return lg__error_set(err, LG_EINVAL, "model %s: a value cannot be bound", m->table);
}

int lg__row_params(const struct lg_model *m, uint64_t mask, const void *row, struct lg__enc *enc,
		   struct lg_param *out, int *n)
{
	for (unsigned i = 0; i < m->ncols; i++) {
		if (mask & LG_COL_BIT(i)) {
			int rc = lg__field_param(m, i, row, enc, &out[*n]);
			if (rc != 0) {
				return rc;
			}
			(*n)++;
		}
	}
	return 0;
}

LG_API void lg_changes_init(struct lg_changes *c, const struct lg_model *m, void *row)
{
	c->model = m;
	c->row = row;
	c->changed = 0;
}

LG_API void *lg_changes_row(struct lg_changes *c, const struct lg_model *m)
{
	/* A setter of another model on this change set is a programming error. */
	assert(c->model == m);
	(void)m;
	return c->row;
}

LG_API void lg_changes_mark(struct lg_changes *c, unsigned col, bool is_null)
{
	uint64_t *nulls = lg__row_nulls(c->model, c->row);
	c->changed |= LG_COL_BIT(col);
	if (is_null) {
		*nulls |= LG_COL_BIT(col);
	} else {
		*nulls &= ~LG_COL_BIT(col);
	}
}
