/*
 * Result rows decoded into model structs, and the lg_rows container.
 *
 * A plan, built once per result, says which model columns a result fills and where each is
 * in the result (a column mask, and an index array only for results matched by name), so
 * decoding never looks names up per row. Each cell is read once through the typed
 * lg_result accessor of the column's model type; NULL arrives as LG_ENULL and sets the
 * column's bit in lg_null, the field stays zero. A model column the result does not have
 * (a narrower select list, raw SQL, a table without the column) is NULL too. A page is decoded
 * column by column, so the type dispatch happens once per column rather than once per cell.
 *
 * Strings and byte strings are not copied: fields point into the result (libpq ends every
 * value with a NUL), and the result is kept by whoever owns the rows. An lg_rows keeps its
 * results in rows->arena until lg_rows_free; a single row keeps its result in lg_mem, tagged
 * by the low bit (blocks from lg__malloc are aligned, so that bit is free) to tell it from a
 * block of copies made by lg_row_copy. Rows without string columns keep no result, as they
 * kept no block before. Rows that must outlive the call on their own (lg_model_insert_many's
 * caller-owned arrays) get copies.
 */
#include <string.h>

#include "alloc_int.h"
#include "model_int.h"

static void *mem_of_result(struct lg_result *r)
{
	return (void *)((uintptr_t)r | 1u);
}

void lg__row_mem_release(void *mem)
{
	if (mem == NULL) {
		return;
	}
	if ((uintptr_t)mem & 1u) {
		lg_result_free((struct lg_result *)((uintptr_t)mem & ~(uintptr_t)1u));
	} else {
		lg__free(mem);
	}
}

void lg__plan_mask(struct lg__plan *p, const struct lg_model *m, uint64_t mask,
		   const struct lg_result *r, int skip)
{
	int avail = lg_result_cols(r) - skip;
	mask &= lg__model_all(m);
	/* A result with fewer columns than mask fills the first ones. */
	for (int n = avail < (int)m->ncols ? __builtin_popcountll(mask) : 0; n > avail && mask != 0;
	     n--) {
		mask &= ~(UINT64_C(1) << (63 - __builtin_clzll(mask)));
	}
	p->cols = mask;
	p->skip = skip;
	p->k = NULL;
}

void lg__plan_names(struct lg__plan *p, int16_t k[LG_MODEL_MAX_COLS], const struct lg_model *m,
		    const struct lg_result *r)
{
	int nc = lg_result_cols(r);
	p->cols = 0;
	p->skip = 0;
	p->k = k;
	for (int j = 0; j < nc && j <= INT16_MAX; j++) {
		const char *name = lg_result_col_name(r, j);
		for (unsigned i = 0; name != NULL && i < m->ncols; i++) {
			if (strcmp(m->cols[i].name, name) == 0) {
				p->cols |= LG_COL_BIT(i);
				k[i] = (int16_t)j; /* a repeated name: the last column wins */
				break;
			}
		}
	}
}

/* One column of a run of rows: where the column's cells are and where they go. Decoding a
 * page column by column reads the plan once per column instead of once per cell. */
struct column_run {
	struct lg_result *r;
	int first; /* result row of the first row struct */
	int nr;
	int k;          /* result column */
	char *f;        /* the field in the first row struct */
	size_t size;    /* row struct size */
	ptrdiff_t null; /* from the field to the row's lg_null */
	uint64_t bit;
};

static int int32_cell(struct lg_result *r, int ri, int k, int32_t *out)
{
	int64_t v;
	int rc = lg_result_int64(r, ri, k, &v);
	if (rc == 0 && (v < INT32_MIN || v > INT32_MAX)) {
		rc = LG_ERANGE;
	}
	if (rc == 0) {
		*out = (int32_t)v;
	}
	return rc;
}

/* One cell into field f; LG_ENULL leaves f untouched. Always inlined: as a call it cost
 * about 20 instructions per cell in callgrind, more than the switch it wraps. */
static inline __attribute__((always_inline)) int cell_fill(enum lg_type t, struct lg_result *r,
							   int ri, int k, char *f)
{
	switch (t) {
	case LG_INT32:
		return int32_cell(r, ri, k, (int32_t *)(void *)f);
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
	case LG_TEXT:
	case LG_JSONB:
		return lg_result_text(r, ri, k, (const char **)(void *)f, NULL);
	case LG_BYTEA:
		return lg_result_bytea(r, ri, k, &((struct lg_bytes *)(void *)f)->data,
				       &((struct lg_bytes *)(void *)f)->len);
	default: /* the newer types: model_values_read.c */
		return lg__value_decode(t, r, ri, k, f);
	}
}

/* The cells of one column of a run of rows; a NULL sets the column's bit in that row's
 * lg_null and leaves the zeroed field. The run is read into locals so that they stay in
 * registers across the accessor calls. */
static inline __attribute__((always_inline)) int column_loop(enum lg_type t,
							     const struct column_run *c)
{
	char *f = c->f;
	const size_t size = c->size;
	const ptrdiff_t null = c->null;
	const uint64_t bit = c->bit;
	for (int ri = c->first, end = ri + c->nr; ri < end; ri++, f += size) {
		int rc = cell_fill(t, c->r, ri, c->k, f);
		if (rc == LG_ENULL) {
			*(uint64_t *)(void *)(f + null) |= bit;
		} else if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* column_loop with t a constant in each case, so that the compiler folds cell_fill's switch
 * out of the loop: a loop per type, chosen once per column. */
static int column_fill(enum lg_type t, const struct column_run *c)
{
	switch (t) {
	case LG_INT32:
		return column_loop(LG_INT32, c);
	case LG_INT64:
		return column_loop(LG_INT64, c);
	case LG_FLOAT64:
		return column_loop(LG_FLOAT64, c);
	case LG_BOOL:
		return column_loop(LG_BOOL, c);
	case LG_UUID:
		return column_loop(LG_UUID, c);
	case LG_TIMESTAMPTZ:
		return column_loop(LG_TIMESTAMPTZ, c);
	case LG_TEXT:
	case LG_JSONB:
		return column_loop(LG_TEXT, c);
	case LG_BYTEA:
		return column_loop(LG_BYTEA, c);
	default:
		return column_loop(t, c);
	}
}

/* Result column of model column i, the ord-th column of the plan. */
static inline int plan_k(const struct lg__plan *p, unsigned i, int ord)
{
	return p->k != NULL ? p->k[i] : p->skip + ord;
}

/* Result row ri into the zeroed row struct dst: cell by cell, which for a single row costs
 * less than setting up a run per column. */
static int row_fill(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r, int ri,
		    char *dst)
{
	/* Model columns the result does not have read as NULL, not as a zero value. */
	uint64_t nulls = lg__model_all(m) & ~p->cols;
	int ord = 0;
	for (uint64_t b = p->cols; b != 0; b &= b - 1, ord++) {
		unsigned i = (unsigned)__builtin_ctzll(b);
		const struct lg_model_col *c = &m->cols[i];
		int rc = cell_fill(c->type, r, ri, plan_k(p, i, ord), dst + c->offset);
		if (rc == LG_ENULL) {
			nulls |= LG_COL_BIT(i);
		} else if (rc != 0) {
			return rc;
		}
	}
	memcpy(dst + m->null_offset, &nulls, sizeof(nulls));
	return 0;
}

/* Result rows first..first+nr-1 into the nr zeroed row structs at dst, column by column. */
static int rows_fill(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r,
		     int first, int nr, char *dst)
{
	if (nr == 1) {
		return row_fill(m, p, r, first, dst);
	}
	uint64_t absent = lg__model_all(m) & ~p->cols;
	for (int i = 0; absent != 0 && i < nr; i++) {
		memcpy(dst + (size_t)i * m->size + m->null_offset, &absent, sizeof(absent));
	}
	int ord = 0;
	for (uint64_t b = p->cols; b != 0; b &= b - 1, ord++) {
		unsigned i = (unsigned)__builtin_ctzll(b);
		const struct lg_model_col *c = &m->cols[i];
		struct column_run run = {
		    .r = r,
		    .first = first,
		    .nr = nr,
		    .k = plan_k(p, i, ord),
		    .f = dst + c->offset,
		    .size = m->size,
		    .null = (ptrdiff_t)m->null_offset - (ptrdiff_t)c->offset,
		    .bit = LG_COL_BIT(i),
		};
		int rc = column_fill(c->type, &run);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

static bool plan_borrows(const struct lg_model *m, const struct lg__plan *p)
{
	const struct lg__model_cache *c = lg__model_cached(m);
	if (c != NULL) {
		return (c->strings & p->cols) != 0;
	}
	for (uint64_t b = p->cols; b != 0; b &= b - 1) {
		if (lg__type_is_string(m->cols[__builtin_ctzll(b)].type)) {
			return true;
		}
	}
	return false;
}

int lg__row_decode(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r, int ri,
		   void *dst)
{
	memset(dst, 0, m->size);
	int rc = rows_fill(m, p, r, ri, 1, dst);
	if (rc != 0) {
		memset(dst, 0, m->size);
	}
	return rc;
}

int lg__row_take(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r, int ri,
		 void *row)
{
	lg__row_mem_release(*lg__row_mem(m, row));
	int rc = lg__row_decode(m, p, r, ri, row);
	if (rc != 0 || !plan_borrows(m, p)) {
		lg_result_free(r);
		return rc;
	}
	*lg__row_mem(m, row) = mem_of_result(r);
	return 0;
}

int lg__row_decode_copy(const struct lg_model *m, const struct lg__plan *p, struct lg_result *r,
			int ri, void *row)
{
	lg__row_mem_release(*lg__row_mem(m, row));
	int rc = lg__row_decode(m, p, r, ri, row);
	/* In place: the fields still point into r while their copies are made. */
	return rc != 0 ? rc : lg_row_copy(m, row, row);
}

/* What rows->arena holds beyond its first result: a chain of these, ending in a tagged
 * result pointer. One result per query is the common case and costs no allocation. */
struct rows_hold {
	void *next;
	struct lg_result *r;
};

static void rows_release(void *p)
{
	while (p != NULL && !((uintptr_t)p & 1u)) {
		struct rows_hold *h = p;
		p = h->next;
		lg_result_free(h->r);
		lg__free(h);
	}
	if (p != NULL) {
		lg__row_mem_release(p);
	}
}

int lg__rows_append(struct lg_rows *out, const struct lg_model *m, struct lg_result *r,
		    const struct lg__plan *p)
{
	int nr = lg_result_rows(r);
	if (nr == 0) {
		lg_result_free(r);
		return 0;
	}
	if (out->n + (size_t)nr > out->cap) {
		/* One allocation for the whole result instead of doubling steps. */
		void *nd = lg__realloc(out->data, (out->n + (size_t)nr) * m->size);
		if (nd == NULL) {
			lg_result_free(r);
			return LG_ENOMEM;
		}
		out->data = nd;
		out->cap = out->n + (size_t)nr;
	}
	/* The hold is made before decoding so that nothing can fail after it: a result is
	 * appended whole or not at all. */
	bool keep = plan_borrows(m, p);
	struct rows_hold *h = NULL;
	if (keep && out->arena != NULL && (h = lg__malloc(sizeof(*h))) == NULL) {
		lg_result_free(r);
		return LG_ENOMEM;
	}
	char *rows = (char *)out->data + out->n * m->size;
	memset(rows, 0, (size_t)nr * m->size);
	int rc = rows_fill(m, p, r, 0, nr, rows);
	if (rc != 0 || !keep) {
		lg__free(h);
		lg_result_free(r);
		if (rc != 0) {
			return rc;
		}
	} else if (h != NULL) {
		h->next = out->arena;
		h->r = r;
		out->arena = h;
	} else {
		out->arena = mem_of_result(r);
	}
	out->model = m;
	out->n += (size_t)nr;
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
	/* Container rows Borrow from the held results; a row given its own lg_mem by the
	 * caller (lg_row_copy into it) is still released. */
	size_t size = rows->n != 0 ? rows->model->size : 0;
	char *mem_at = rows->n != 0 ? (char *)rows->data + rows->model->mem_offset : NULL;
	for (size_t i = 0; i < rows->n; i++, mem_at += size) {
		void *mem;
		memcpy(&mem, mem_at, sizeof(mem));
		lg__row_mem_release(mem);
	}
	rows_release(rows->arena);
	rows->arena = NULL;
	lg__free(rows->data);
	lg__free(rows->owner);
	rows->data = NULL;
	rows->owner = NULL;
	rows->n = rows->cap = 0;
}
