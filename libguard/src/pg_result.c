/*
 * Result accessors over a PGresult: bounds, NULL and type checks, then decoding of the text
 * or binary form (decoders in pg_types.c, and libpq's PQunescapeBytea() for bytea text). bytea
 * in text form is decoded on first access and kept with the result, so the returned pointer
 * lives as long as the result.
 *
 * A result may also be a "local row" (lg__result_row_new): one row in text format built on
 * the client, in a single block with its cells and their bytes. The cache decodes cached
 * rows through it, so a cached row reads exactly as a row from the server, without the
 * half-dozen allocations of a PGresult.
 */
#include "pg_result_int.h"

#include <stddef.h>
#include <string.h>

#include "alloc_int.h"
#include "pg_types.h"

/* Type OIDs from PostgreSQL's pg_type.dat. */
enum {
	OID_BOOL = 16,
	OID_BYTEA = 17,
	OID_NAME = 19,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_OID = 26,
	OID_JSON = 114,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_BPCHAR = 1042,
	OID_VARCHAR = 1043,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184,
	OID_NUMERIC = 1700,
	OID_UUID = 2950,
	OID_JSONB = 3802,
};

struct bytea_cell {
	struct bytea_cell *next;
	int row;
	int col;
	size_t len;
	_Alignas(max_align_t) uint8_t data[]; /* aligned for lg__result_keep */
};

/* A cell of a local row. */
struct local_cell {
	const char *name;
	Oid type;
	bool null;
	const char *v; /* NUL-terminated, in the block */
	size_t len;
};

struct lg_result {
	PGresult *pg; /* NULL: a local row */
	struct bytea_cell *decoded;
	int ncols;                /* local row */
	struct local_cell *cells; /* local row: ncols cells */
	char *arena;              /* local row: room for the cells' bytes */
	size_t arena_used, arena_size;
};

struct lg_result *lg__result_row_new(int ncols, size_t bytes)
{
	size_t head = sizeof(struct lg_result);
	head += (_Alignof(struct local_cell) - head % _Alignof(struct local_cell)) %
		_Alignof(struct local_cell);
	if (ncols < 0 || (size_t)ncols > 4096 || bytes > SIZE_MAX / 2) {
		return NULL;
	}
	size_t cells = (size_t)ncols * sizeof(struct local_cell);
	char *block = lg__malloc(head + cells + bytes);
	if (block == NULL) {
		return NULL;
	}
	struct lg_result *r = (struct lg_result *)(void *)block;
	memset(r, 0, sizeof(*r));
	r->ncols = ncols;
	r->cells = (struct local_cell *)(void *)(block + head);
	r->arena = block + head + cells;
	r->arena_size = bytes;
	for (int i = 0; i < ncols; i++) {
		r->cells[i] = (struct local_cell){.name = "", .null = true};
	}
	return r;
}

void lg__result_row_col(struct lg_result *r, int col, const char *name, uint32_t type)
{
	r->cells[col].name = name;
	r->cells[col].type = type;
}

char *lg__result_row_room(struct lg_result *r, size_t *avail)
{
	*avail = r->arena_size - r->arena_used;
	return r->arena + r->arena_used;
}

void lg__result_row_set(struct lg_result *r, int col, size_t len)
{
	struct local_cell *c = &r->cells[col];
	c->null = false;
	c->v = r->arena + r->arena_used;
	c->len = len;
	r->arena[r->arena_used + len] = '\0';
	r->arena_used += len + 1;
}

struct lg_result *lg__result_wrap(PGresult *pg)
{
	struct lg_result *r = lg__calloc(1, sizeof(*r));
	if (r != NULL) {
		r->pg = pg;
	}
	return r;
}

LG_API void lg_result_free(struct lg_result *r)
{
	if (r == NULL) {
		return;
	}
	while (r->decoded != NULL) {
		struct bytea_cell *next = r->decoded->next;
		lg__free(r->decoded);
		r->decoded = next;
	}
	PQclear(r->pg);
	lg__free(r); /* a local row's cells and bytes are in this block */
}

void *lg__result_keep(struct lg_result *r, size_t n)
{
	/* A cell of the bytea list that no lookup matches (row -1): freed with the result. */
	struct bytea_cell *cell = lg__malloc(sizeof(*cell) + n);
	if (cell == NULL) {
		return NULL;
	}
	cell->row = -1;
	cell->col = -1;
	cell->len = n;
	cell->next = r->decoded;
	r->decoded = cell;
	return cell->data;
}

LG_API int lg_result_rows(const struct lg_result *r)
{
	return r->pg != NULL ? PQntuples(r->pg) : 1;
}

LG_API int lg_result_cols(const struct lg_result *r)
{
	return r->pg != NULL ? PQnfields(r->pg) : r->ncols;
}

LG_API int64_t lg_result_affected(const struct lg_result *r)
{
	const char *n = r->pg != NULL ? PQcmdTuples(r->pg) : NULL;
	int64_t v = 0;
	if (n == NULL || n[0] == '\0' || lg__pg_parse_int64(n, strlen(n), &v) != 0) {
		return 0;
	}
	return v;
}

LG_API const char *lg_result_command(const struct lg_result *r)
{
	return r->pg != NULL ? PQcmdStatus(r->pg) : "SELECT 1";
}

LG_API const char *lg_result_col_name(const struct lg_result *r, int col)
{
	if (r->pg == NULL) {
		return col >= 0 && col < r->ncols ? r->cells[col].name : NULL;
	}
	return PQfname(r->pg, col);
}

LG_API int lg_result_col_index(const struct lg_result *r, const char *name)
{
	/* Exact match first: PQfnumber folds unquoted names to lower case. */
	for (int i = 0; i < lg_result_cols(r); i++) {
		if (strcmp(lg_result_col_name(r, i), name) == 0) {
			return i;
		}
	}
	return -1;
}

LG_API uint32_t lg_result_col_type(const struct lg_result *r, int col)
{
	if (col < 0 || col >= lg_result_cols(r)) {
		return 0;
	}
	return r->pg != NULL ? PQftype(r->pg, col) : r->cells[col].type;
}

static bool result_in_range(const struct lg_result *r, int row, int col)
{
	return row >= 0 && col >= 0 && row < lg_result_rows(r) && col < lg_result_cols(r);
}

static bool result_null(const struct lg_result *r, int row, int col)
{
	return r->pg != NULL ? PQgetisnull(r->pg, row, col) != 0 : r->cells[col].null;
}

LG_API bool lg_result_is_null(const struct lg_result *r, int row, int col)
{
	return !result_in_range(r, row, col) || result_null(r, row, col);
}

/* A non-NULL cell: its bytes, their format and the column's type. */
struct result_cell {
	const char *v;
	size_t len;
	bool bin;
	Oid type;
};

/* Bounds and NULL checks shared by every accessor; fills *c on success. */
static int result_cell(const struct lg_result *r, int row, int col, struct result_cell *c)
{
	if (!result_in_range(r, row, col)) {
		return LG_EINVAL;
	}
	if (result_null(r, row, col)) {
		return LG_ENULL;
	}
	if (r->pg == NULL) {
		c->v = r->cells[col].v;
		c->len = r->cells[col].len;
		c->bin = false;
		c->type = r->cells[col].type;
		return 0;
	}
	c->v = PQgetvalue(r->pg, row, col);
	c->len = (size_t)PQgetlength(r->pg, row, col);
	c->bin = PQfformat(r->pg, col) == 1;
	c->type = PQftype(r->pg, col);
	return 0;
}

LG_API int lg_result_int64(const struct lg_result *r, int row, int col, int64_t *out)
{
	struct result_cell c;
	int rc = result_cell(r, row, col, &c);
	if (rc != 0) {
		return rc;
	}
	Oid t = c.type;
	if (t == OID_OID) {
		int64_t u;
		rc = c.bin ? lg__pg_binary_int(c.v, c.len, &u) : lg__pg_parse_int64(c.v, c.len, &u);
		*out = c.bin ? (int64_t)(uint32_t)u : u;
		return rc;
	}
	if (t != OID_INT2 && t != OID_INT4 && t != OID_INT8) {
		return LG_ETYPE;
	}
	return c.bin ? lg__pg_binary_int(c.v, c.len, out) : lg__pg_parse_int64(c.v, c.len, out);
}

LG_API int lg_result_double(const struct lg_result *r, int row, int col, double *out)
{
	struct result_cell c;
	int rc = result_cell(r, row, col, &c);
	if (rc != 0) {
		return rc;
	}
	Oid t = c.type;
	if (t == OID_FLOAT4 || t == OID_FLOAT8) {
		return c.bin ? lg__pg_binary_float(c.v, c.len, out)
			     : lg__pg_parse_double(c.v, c.len, out);
	}
	if (t == OID_NUMERIC && !c.bin) {
		return lg__pg_parse_double(c.v, c.len, out);
	}
	return LG_ETYPE;
}

LG_API int lg_result_bool(const struct lg_result *r, int row, int col, bool *out)
{
	struct result_cell c;
	int rc = result_cell(r, row, col, &c);
	if (rc != 0) {
		return rc;
	}
	if (c.type != OID_BOOL) {
		return LG_ETYPE;
	}
	if (c.bin) {
		if (c.len != 1) {
			return LG_EINVAL;
		}
		*out = c.v[0] != 0;
		return 0;
	}
	return lg__pg_parse_bool(c.v, c.len, out);
}

static bool result_textlike(Oid t)
{
	return t == OID_TEXT || t == OID_VARCHAR || t == OID_BPCHAR || t == OID_NAME ||
	       t == OID_JSON || t == OID_JSONB;
}

LG_API int lg_result_text(const struct lg_result *r, int row, int col, const char **out,
			  size_t *len)
{
	struct result_cell c;
	int rc = result_cell(r, row, col, &c);
	if (rc != 0) {
		return rc;
	}
	if (c.bin) {
		Oid t = c.type;
		if (!result_textlike(t)) {
			return LG_ETYPE;
		}
		if (t == OID_JSONB) {
			/* Binary jsonb is a version byte (1) followed by the JSON text. */
			if (c.len < 1 || c.v[0] != 1) {
				return LG_EINVAL;
			}
			c.v++;
			c.len--;
		}
	}
	*out = c.v;
	if (len != NULL) {
		*len = c.len;
	}
	return 0;
}

LG_API int lg_result_bytea(struct lg_result *r, int row, int col, const uint8_t **out, size_t *len)
{
	struct result_cell c;
	int rc = result_cell(r, row, col, &c);
	if (rc != 0) {
		return rc;
	}
	if (c.type != OID_BYTEA) {
		return LG_ETYPE;
	}
	if (c.bin) {
		*out = (const uint8_t *)c.v;
		*len = c.len;
		return 0;
	}
	for (struct bytea_cell *cell = r->decoded; cell != NULL; cell = cell->next) {
		if (cell->row == row && cell->col == col) {
			*out = cell->data;
			*len = cell->len;
			return 0;
		}
	}
	/* PQgetvalue() text always ends in NUL, as PQunescapeBytea() needs. libpq decodes both
	 * bytea_output formats but does not reject malformed text; the server never sends any.
	 * The bytes are copied into a block of our own so that lg_set_allocator() still owns
	 * every allocation a result holds, and libpq's malloc() block goes straight back. */
	size_t n = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)c.v, &n);
	if (raw == NULL) {
		return LG_ENOMEM;
	}
	struct bytea_cell *cell = lg__malloc(sizeof(*cell) + n + 1);
	if (cell == NULL) {
		PQfreemem(raw);
		return LG_ENOMEM;
	}
	memcpy(cell->data, raw, n);
	cell->data[n] = 0;
	cell->len = n;
	PQfreemem(raw);
	cell->row = row;
	cell->col = col;
	cell->next = r->decoded;
	r->decoded = cell;
	*out = cell->data;
	*len = cell->len;
	return 0;
}

LG_API int lg_result_timestamptz(const struct lg_result *r, int row, int col, int64_t *out)
{
	struct result_cell c;
	int rc = result_cell(r, row, col, &c);
	if (rc != 0) {
		return rc;
	}
	Oid t = c.type;
	if (t != OID_TIMESTAMPTZ && t != OID_TIMESTAMP) {
		return LG_ETYPE;
	}
	if (c.bin) {
		int64_t pg_us;
		rc = c.len == 8 ? lg__pg_binary_int(c.v, c.len, &pg_us) : LG_EINVAL;
		if (rc == 0) {
			*out = lg__pg_timestamptz_from_binary(pg_us);
		}
		return rc;
	}
	return lg__pg_parse_timestamptz(c.v, c.len, out);
}

LG_API int lg_result_uuid(const struct lg_result *r, int row, int col, uint8_t out[16])
{
	struct result_cell c;
	int rc = result_cell(r, row, col, &c);
	if (rc != 0) {
		return rc;
	}
	if (c.type != OID_UUID) {
		return LG_ETYPE;
	}
	if (c.bin) {
		if (c.len != 16) {
			return LG_EINVAL;
		}
		memcpy(out, c.v, 16);
		return 0;
	}
	return lg__pg_parse_uuid(c.v, c.len, out);
}

LG_API int lg_result_int64_by_name(const struct lg_result *r, int row, const char *name,
				   int64_t *out)
{
	int col = lg_result_col_index(r, name);
	return col < 0 ? LG_ENOTFOUND : lg_result_int64(r, row, col, out);
}

LG_API int lg_result_text_by_name(const struct lg_result *r, int row, const char *name,
				  const char **out, size_t *len)
{
	int col = lg_result_col_index(r, name);
	return col < 0 ? LG_ENOTFOUND : lg_result_text(r, row, col, out, len);
}
