/*
 * Result rows decoded into model structs, and the lg_rows container.
 *
 * A decode reads each cell once through the lg_result accessors (NULL arrives as LG_ENULL,
 * so there is no separate NULL test per cell), then copies the row's strings and byte
 * strings into one block: the row's own lg_mem for single-row reads, or the arena of an
 * lg_rows (8 KiB blocks shared by many rows) for listings, so a page of rows costs a couple
 * of allocations instead of one per row. NULLs set the column's bit in lg_null; the field
 * stays zero.
 */
#include <string.h>

#include "alloc_int.h"
#include "model_int.h"

static bool type_is_varlen(enum lg_type t)
{
	return t == LG_TEXT || t == LG_JSONB || t == LG_NUMERIC || t == LG_BYTEA;
}

/* Fixed-size column k of row ri into the field. */
static int decode_fixed(const struct lg_model_col *c, struct lg_result *r, int ri, int k, void *dst)
{
	char *f = (char *)dst + c->offset;
	int rc;
	int64_t v;
	switch (c->type) {
	case LG_INT32:
		rc = lg_result_int64(r, ri, k, &v);
		if (rc == 0 && (v < INT32_MIN || v > INT32_MAX)) {
			rc = LG_ERANGE;
		}
		if (rc == 0) {
			*(int32_t *)(void *)f = (int32_t)v;
		}
		return rc;
	case LG_INT64:
		return lg_result_int64(r, ri, k, (int64_t *)(void *)f);
	case LG_FLOAT64:
		return lg_result_double(r, ri, k, (double *)(void *)f);
	case LG_BOOL:
		return lg_result_bool(r, ri, k, (bool *)(void *)f);
	case LG_UUID:
		return lg_result_uuid(r, ri, k, ((struct lg_uuid *)(void *)f)->b);
	case LG_TIMESTAMPTZ:
		return lg_result_timestamptz(r, ri, k, (int64_t *)(void *)f);
	default:
		return LG_ETYPE;
	}
}

static int cell_bytes(const struct lg_model_col *c, struct lg_result *r, int ri, int k,
		      const void **p, size_t *len)
{
	if (c->type == LG_BYTEA) {
		return lg_result_bytea(r, ri, k, (const uint8_t **)p, len);
	}
	return lg_result_text(r, ri, k, (const char **)p, len);
}

#define ARENA_BLOCK 8192

struct arena_block {
	struct arena_block *next;
	size_t used;
	size_t cap;
	char data[];
};

static char *rows_arena_alloc(struct lg_rows *rows, size_t n)
{
	struct arena_block *b = rows->arena;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		struct arena_block *nb = lg__malloc(sizeof(*nb) + cap);
		if (nb == NULL) {
			return NULL;
		}
		nb->next = b;
		nb->used = 0;
		nb->cap = cap;
		rows->arena = nb;
		b = nb;
	}
	char *p = b->data + b->used;
	b->used += n;
	return p;
}

/* Copies the variable-length cells (vp/vl, one pass over the result) into one block. */
static int decode_varlen(const struct lg_model *m, const int *map, int ncols, uint64_t nulls,
			 const void **vp, const size_t *vl, size_t total, void *dst,
			 struct lg_rows *rows)
{
	char *mem = rows != NULL ? rows_arena_alloc(rows, total) : lg__malloc(total);
	if (mem == NULL) {
		return LG_ENOMEM;
	}
	if (rows == NULL) {
		*lg__row_mem(m, dst) = mem;
	}
	for (int k = 0; k < ncols; k++) {
		if (map[k] < 0 || (nulls & LG_COL((unsigned)map[k])) ||
		    !type_is_varlen(m->cols[map[k]].type)) {
			continue;
		}
		const struct lg_model_col *c = &m->cols[map[k]];
		memcpy(mem, vp[k], vl[k]);
		mem[vl[k]] = '\0';
		char *f = (char *)dst + c->offset;
		if (c->type == LG_BYTEA) {
			struct lg_bytes b = {(const uint8_t *)mem, vl[k]};
			memcpy(f, &b, sizeof(b));
		} else {
			const char *str = mem;
			memcpy(f, &str, sizeof(str));
		}
		mem += vl[k] + 1;
	}
	return 0;
}

int lg__row_decode(const struct lg_model *m, struct lg_result *r, int ri, const int *map, int ncols,
		   int skip, void *dst, struct lg_rows *rows)
{
	memset(dst, 0, m->size);
	uint64_t nulls = 0;
	size_t total = 0;
	const void *vp[LG_MODEL_MAX_COLS];
	size_t vl[LG_MODEL_MAX_COLS];
	if (ncols > LG_MODEL_MAX_COLS) {
		ncols = LG_MODEL_MAX_COLS; /* extra result columns cannot map to the model */
	}
	for (int k = 0; k < ncols; k++) {
		if (map[k] < 0) {
			continue;
		}
		const struct lg_model_col *c = &m->cols[map[k]];
		bool varlen = type_is_varlen(c->type);
		/* Accessors report NULL as LG_ENULL: no separate NULL test per cell. */
		int rc = varlen ? cell_bytes(c, r, ri, k + skip, &vp[k], &vl[k])
				: decode_fixed(c, r, ri, k + skip, dst);
		if (rc == LG_ENULL) {
			nulls |= LG_COL((unsigned)map[k]);
			continue;
		}
		if (rc != 0) {
			return rc;
		}
		if (varlen) {
			total += vl[k] + 1;
		}
	}
	*lg__row_nulls(m, dst) = nulls;
	return total == 0 ? 0 : decode_varlen(m, map, ncols, nulls, vp, vl, total, dst, rows);
}

void *lg__rows_push(struct lg_rows *out, const struct lg_model *m)
{
	if (out->n == out->cap) {
		size_t cap = out->cap < 16 ? 16 : out->cap * 2;
		void *nd = lg__realloc(out->data, cap * m->size);
		if (nd == NULL) {
			return NULL;
		}
		out->data = nd;
		out->cap = cap;
	}
	out->model = m;
	void *row = (char *)out->data + out->n * m->size;
	memset(row, 0, m->size);
	out->n++;
	return row;
}

int lg__rows_append(struct lg_rows *out, const struct lg_model *m, struct lg_result *r,
		    const int *map, int skip)
{
	int nr = lg_result_rows(r);
	int nc = lg_result_cols(r) - skip;
	if (out->n + (size_t)nr > out->cap && nr > 0) {
		/* One allocation for the whole result instead of doubling steps. */
		void *nd = lg__realloc(out->data, (out->n + (size_t)nr) * m->size);
		if (nd == NULL) {
			return LG_ENOMEM;
		}
		out->data = nd;
		out->cap = out->n + (size_t)nr;
	}
	for (int i = 0; i < nr; i++) {
		void *row = lg__rows_push(out, m);
		if (row == NULL) {
			return LG_ENOMEM;
		}
		int rc = lg__row_decode(m, r, i, map, nc, skip, row, out);
		if (rc != 0) {
			lg_row_clear(m, row);
			out->n--;
			return rc;
		}
	}
	return 0;
}

/* The bytes a string field of row needs in a copy (0 when NULL or fixed-size). */
static size_t field_size(const struct lg_model *m, unsigned i, const void *row)
{
	const struct lg_model_col *c = &m->cols[i];
	const char *f = (const char *)row + c->offset;
	if (!type_is_varlen(c->type) || ((*lg__row_nulls(m, (void *)(uintptr_t)row) >> i) & 1u)) {
		return 0;
	}
	if (c->type == LG_BYTEA) {
		return ((const struct lg_bytes *)(const void *)f)->len + 1;
	}
	const char *s = *(const char *const *)(const void *)f;
	return s != NULL ? strlen(s) + 1 : 0;
}

LG_API int lg_row_copy(const struct lg_model *m, void *dst, const void *src)
{
	size_t total = 0;
	for (unsigned i = 0; i < m->ncols; i++) {
		total += field_size(m, i, src);
	}
	char *mem = total != 0 ? lg__malloc(total) : NULL;
	if (total != 0 && mem == NULL) {
		memset(dst, 0, m->size);
		return LG_ENOMEM;
	}
	memmove(dst, src, m->size);
	*lg__row_mem(m, dst) = mem;
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

LG_API void *lg_rows_at(const struct lg_rows *rows, size_t i)
{
	return i < rows->n ? (char *)rows->data + i * rows->model->size : NULL;
}

LG_API void lg_rows_free(struct lg_rows *rows)
{
	if (rows == NULL) {
		return;
	}
	for (size_t i = 0; i < rows->n; i++) {
		lg__free(*lg__row_mem(rows->model, lg_rows_at(rows, i)));
	}
	for (struct arena_block *b = rows->arena, *next; b != NULL; b = next) {
		next = b->next;
		lg__free(b);
	}
	rows->arena = NULL;
	lg__free(rows->data);
	lg__free(rows->owner);
	rows->data = NULL;
	rows->owner = NULL;
	rows->n = rows->cap = 0;
}
