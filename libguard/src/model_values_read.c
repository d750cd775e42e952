/*
 * Result cells of the ORM's newer value types (model_values.c) into row fields, and deep
 * copies of those fields for lg_row_copy.
 *
 * A cell's column type is checked against the field's type (a date column does not fill a
 * time field), then its text is parsed strictly: a value that does not fit fails the read
 * with LG_EINVAL or LG_ERANGE, never truncated. Enum types have no fixed OID: an enum field
 * takes the text of any column. An array is split twice: once to count its elements and the
 * bytes its strings need, once to fill one block allocated with the result, which then holds
 * the C array, the NULL flags and the strings.
 */
#include <string.h>

#include "alloc_int.h"
#include "model_int.h"
#include "pg_oid.h"
#include "pg_types.h"

/* Whether a column of type oid fills a field of type t. */
static bool type_fits(enum lg_type t, uint32_t oid)
{
	switch (t) {
	case LG_DATE:
		return oid == LG__OID_DATE;
	case LG_TIME:
		return oid == LG__OID_TIME;
	case LG_TIMESTAMP:
		return oid == LG__OID_TIMESTAMP;
	case LG_INTERVAL:
		return oid == LG__OID_INTERVAL;
	case LG_INET:
		return oid == LG__OID_INET || oid == LG__OID_CIDR;
	case LG_INT32_ARRAY:
		return oid == LG__OID_INT4_ARRAY || oid == LG__OID_INT2_ARRAY;
	case LG_INT64_ARRAY:
		return oid == LG__OID_INT8_ARRAY || oid == LG__OID_INT4_ARRAY ||
		       oid == LG__OID_INT2_ARRAY;
	case LG_FLOAT64_ARRAY:
		return oid == LG__OID_FLOAT8_ARRAY || oid == LG__OID_FLOAT4_ARRAY;
	case LG_BOOL_ARRAY:
		return oid == LG__OID_BOOL_ARRAY;
	case LG_TEXT_ARRAY:
		return oid == LG__OID_TEXT_ARRAY || oid == LG__OID_VARCHAR_ARRAY ||
		       oid == LG__OID_BPCHAR_ARRAY;
	case LG_UUID_ARRAY:
		return oid == LG__OID_UUID_ARRAY;
	default:
		return true; /* numeric text is validated instead; enum OIDs vary */
	}
}

/* Element size in the C array of an array type. */
static size_t elem_csize(enum lg_type t)
{
	switch (t) {
	case LG_INT32_ARRAY:
		return sizeof(int32_t);
	case LG_INT64_ARRAY:
		return sizeof(int64_t);
	case LG_FLOAT64_ARRAY:
		return sizeof(double);
	case LG_BOOL_ARRAY:
		return sizeof(bool);
	case LG_TEXT_ARRAY:
		return sizeof(char *);
	default:
		return sizeof(struct lg_uuid);
	}
}

static size_t align_up(size_t n)
{
	return (n + LG__COPY_ALIGN - 1) / LG__COPY_ALIGN * LG__COPY_ALIGN;
}

/* Two passes over one array's elements: count, then fill. */
struct array_fill {
	enum lg_type t;
	size_t n;     /* elements seen */
	size_t bytes; /* string bytes, NULs included */
	bool has_null;
	char *v;       /* fill pass: the C array */
	bool *nulls;   /* fill pass: the flags, or NULL */
	char *strings; /* fill pass: where the next string goes */
};

static int elem_parse(enum lg_type t, const char *s, size_t len, void *out)
{
	int64_t i;
	int rc;
	switch (t) {
	case LG_INT32_ARRAY:
		rc = lg__pg_parse_int64(s, len, &i);
		if (rc == 0 && (i < INT32_MIN || i > INT32_MAX)) {
			rc = LG_ERANGE;
		}
		if (rc == 0) {
			*(int32_t *)out = (int32_t)i;
		}
		return rc;
	case LG_INT64_ARRAY:
		return lg__pg_parse_int64(s, len, out);
	case LG_FLOAT64_ARRAY:
		return lg__pg_parse_double(s, len, out);
	case LG_BOOL_ARRAY:
		return lg__pg_parse_bool(s, len, out);
	default:
		return lg__pg_parse_uuid(s, len, ((struct lg_uuid *)out)->b);
	}
}

static int array_count(void *ud, const char *elem, size_t elen)
{
	struct array_fill *a = ud;
	a->n++;
	if (elem == NULL) {
		a->has_null = true;
	} else if (a->t == LG_TEXT_ARRAY) {
		a->bytes += elen + 1;
	}
	return 0;
}

static int array_put(void *ud, const char *elem, size_t elen)
{
	struct array_fill *a = ud;
	char *slot = a->v + a->n * elem_csize(a->t);
	size_t i = a->n++;
	if (elem == NULL) {
		a->nulls[i] = true; /* the slot stays zero */
		return 0;
	}
	if (a->t != LG_TEXT_ARRAY) {
		return elem_parse(a->t, elem, elen, slot);
	}
	memcpy(a->strings, elem, elen + 1);
	memcpy(slot, &a->strings, sizeof(char *));
	a->strings += elen + 1;
	return 0;
}

static int array_decode(enum lg_type t, struct lg_result *r, const char *s, size_t len, char *f)
{
	char stack[256];
	char *buf = len < sizeof(stack) ? stack : lg__malloc(len + 1);
	if (buf == NULL) {
		return LG_ENOMEM;
	}
	struct array_fill a = {.t = t};
	int rc = lg__pg_array_split(s, len, buf, array_count, &a);
	size_t csize = elem_csize(t);
	char *block = NULL;
	if (rc == 0 && a.n > 0) {
		size_t vbytes = align_up(a.n * csize);
		size_t total = vbytes + (a.has_null ? a.n : 0) + a.bytes;
		block = lg__result_keep(r, total);
		rc = block == NULL ? LG_ENOMEM : 0;
		if (rc == 0) {
			memset(block, 0, total);
			a.v = block;
			a.nulls = a.has_null ? (bool *)(void *)(block + vbytes) : NULL;
			a.strings = block + vbytes + (a.has_null ? a.n : 0);
			size_t n = a.n;
			a.n = 0;
			rc = lg__pg_array_split(s, len, buf, array_put, &a);
			a.n = n;
		}
	}
	if (buf != stack) {
		lg__free(buf);
	}
	if (rc == 0) {
		/* Every array struct has this layout (model.h's LG__ARRAY_STRUCT). */
		struct lg_array_int32 out = {(const int32_t *)(void *)a.v, a.nulls, a.n};
		memcpy(f, &out, sizeof(out));
	}
	return rc;
}

int lg__value_decode(enum lg_type t, struct lg_result *r, int ri, int k, char *f)
{
	const char *s;
	size_t len;
	int rc = lg_result_text(r, ri, k, &s, &len);
	if (rc != 0) {
		return rc;
	}
	if (!type_fits(t, lg_result_col_type(r, k))) {
		return LG_ETYPE;
	}
	switch (t) {
	case LG_DATE:
		return lg__pg_parse_date(s, len, (int32_t *)(void *)f);
	case LG_TIME:
		return lg__pg_parse_time(s, len, (int64_t *)(void *)f);
	case LG_TIMESTAMP:
		return lg__pg_parse_timestamp(s, len, (int64_t *)(void *)f);
	case LG_INTERVAL: {
		struct lg_interval *iv = (struct lg_interval *)(void *)f;
		return lg__pg_parse_interval(s, len, &iv->months, &iv->days, &iv->us);
	}
	case LG_NUMERIC:
		if (!lg__pg_numeric_valid(s, len)) {
			return LG_EINVAL;
		}
		*(const char **)(void *)f = s;
		return 0;
	case LG_ENUM:
		*(const char **)(void *)f = s;
		return 0;
	case LG_INET: {
		struct lg_inet *in = (struct lg_inet *)(void *)f;
		return lg__pg_parse_inet(s, len, &in->family, &in->bits, in->addr);
	}
	default:
		return array_decode(t, r, s, len, f);
	}
}

static bool is_array(enum lg_type t)
{
	return t >= LG_INT32_ARRAY && t <= LG_UUID_ARRAY;
}

size_t lg__value_copy_size(enum lg_type t, const void *field)
{
	if (!is_array(t)) {
		return 0;
	}
	struct lg_array_int32 a;
	memcpy(&a, field, sizeof(a));
	size_t total = align_up(a.n * elem_csize(t)) + (a.nulls != NULL ? a.n : 0);
	for (size_t i = 0; t == LG_TEXT_ARRAY && i < a.n; i++) {
		const char *s = ((const char *const *)(const void *)a.v)[i];
		total += s != NULL ? strlen(s) + 1 : 0;
	}
	return align_up(total);
}

char *lg__value_copy(enum lg_type t, void *field, char *mem)
{
	struct lg_array_int32 a;
	memcpy(&a, field, sizeof(a));
	if (!is_array(t) || a.n == 0) {
		return mem;
	}
	char *start = mem;
	size_t vbytes = a.n * elem_csize(t);
	memcpy(mem, a.v, vbytes);
	a.v = (const int32_t *)(void *)mem;
	mem += align_up(vbytes);
	if (a.nulls != NULL) {
		memcpy(mem, a.nulls, a.n);
		a.nulls = (const bool *)mem;
		mem += a.n;
	}
	for (size_t i = 0; t == LG_TEXT_ARRAY && i < a.n; i++) {
		char **slot = (char **)(void *)((char *)(uintptr_t)a.v + i * sizeof(char *));
		if (*slot != NULL) {
			size_t n = strlen(*slot) + 1;
			memcpy(mem, *slot, n);
			*slot = mem;
			mem += n;
		}
	}
	memcpy(field, &a, sizeof(a));
	return start + align_up((size_t)(mem - start));
}
