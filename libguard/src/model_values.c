/*
 * The ORM's value types beyond the basic ones (model.h's type table): date, time, timestamp,
 * interval, numeric, enum, inet and arrays. Parameters of fields and of filters, and decoding
 * of result cells into fields.
 *
 * Parameters: date, time, timestamp and interval are binary and fit the parameter's inline
 * bytes; numeric is text of type numeric, validated first, so that a typo fails here rather
 * than as a server error, and an enum label is text whose type the server infers. inet and
 * arrays are binary values built in the statement's scratch (struct lg__enc), freed when the
 * statement has returned: inet_send / array_send layouts, PostgreSQL 15
 * src/backend/utils/adt/network.c and arrayfuncs.c.
 *
 * Results: the ORM reads text results; the cell's type is checked against the field's, then
 * its text is parsed strictly (pg_types*.c). Array elements need storage the text does not
 * have (a C array, NUL-terminated strings): it is allocated with the result
 * (lg__result_keep), so it lives exactly as long as the strings that point into the result.
 */
#include <string.h>

#include "alloc_int.h"
#include "model_int.h"
#include "pg_oid.h"
#include "pg_types.h"

/* ---- Parameters ------------------------------------------------------------------------ */

/* The binary constructors of param.h with another type: the wire layouts agree (date_send
 * and int4send, time_send / timestamp_send and int8send, 16 inline bytes for interval). */
static struct lg_param param_as(struct lg_param p, uint32_t oid)
{
	p.oid = oid;
	return p;
}

/* A parameter the sending call and the query builder refuse with LG_EINVAL (param.h). */
static struct lg_param param_invalid(uint32_t oid)
{
	struct lg_param p = param_as(lg_param_null(), oid);
	p.is_null = false;
	p.length = -1;
	return p;
}

LG_API struct lg_param lg_param_date(int32_t days_since_1970)
{
	int32_t pg;
	if (!lg__pg_date_to_binary(days_since_1970, &pg)) {
		return param_invalid(LG__OID_DATE);
	}
	return param_as(lg_param_int32(pg), LG__OID_DATE);
}

LG_API struct lg_param lg_param_time(int64_t us_since_midnight)
{
	if (us_since_midnight < 0 || us_since_midnight > LG_TIME_MAX) {
		return param_invalid(LG__OID_TIME);
	}
	return param_as(lg_param_int64(us_since_midnight), LG__OID_TIME);
}

LG_API struct lg_param lg_param_timestamp(int64_t us_since_1970)
{
	/* Finite values below the server's first timestamp are refused, never saturated. */
	if (us_since_1970 != LG_TIMESTAMP_NEG_INFINITY && us_since_1970 < LG__PG_TS_MIN) {
		return param_invalid(LG__OID_TIMESTAMP);
	}
	return param_as(lg_param_int64(lg__pg_timestamptz_to_binary(us_since_1970)),
			LG__OID_TIMESTAMP);
}

LG_API struct lg_param lg_param_interval(struct lg_interval v)
{
	/* interval_send: time (int8 µs), day (int4), month (int4). */
	uint8_t b[16];
	lg__pg_put_be64(b, (uint64_t)v.us);
	lg__pg_put_be32(b + 8, (uint32_t)v.days);
	lg__pg_put_be32(b + 12, (uint32_t)v.months);
	return param_as(lg_param_uuid(b), LG__OID_INTERVAL);
}

LG_API struct lg_param lg_param_numeric(const char *decimal)
{
	if (decimal == NULL) {
		return lg_param_null();
	}
	if (!lg__pg_numeric_valid(decimal, strlen(decimal))) {
		return param_invalid(LG__OID_NUMERIC);
	}
	struct lg_param p = lg_param_text(decimal);
	p.oid = LG__OID_NUMERIC;
	return p;
}

LG_API struct lg_param lg_param_enum(const char *label)
{
	return lg_param_text(label); /* OID 0: the server infers the enum type */
}

/* A block of the statement's scratch: freed by lg__enc_free. */
struct enc_block {
	struct enc_block *next;
	max_align_t data[];
};

static uint8_t *enc_alloc(struct lg__enc *enc, size_t n)
{
	struct enc_block *b = lg__malloc(sizeof(*b) + n);
	if (b == NULL) {
		return NULL;
	}
	b->next = enc->head;
	enc->head = b;
	return (uint8_t *)b->data;
}

void lg__enc_free(struct lg__enc *enc)
{
	while (enc->head != NULL) {
		struct enc_block *b = enc->head;
		enc->head = b->next;
		lg__free(b);
	}
}

static struct lg_param param_borrowed(uint32_t oid, const uint8_t *v, size_t len)
{
	struct lg_param p = {0};
	p.value = v;
	p.length = len <= (size_t)INT32_MAX ? (int)len : -1;
	p.format = 1;
	p.oid = oid;
	return p;
}

static int inet_param(const struct lg_inet *v, struct lg__enc *enc, struct lg_param *out)
{
	size_t nb = v->family == LG_INET_V4 ? 4 : 16;
	if ((v->family != LG_INET_V4 && v->family != LG_INET_V6) || v->bits > nb * 8) {
		return LG_EINVAL;
	}
	uint8_t *b = enc != NULL ? enc_alloc(enc, 4 + nb) : NULL;
	if (b == NULL) {
		return enc != NULL ? LG_ENOMEM : LG_EINVAL;
	}
	/* inet_send: family (PGSQL_AF_INET 2, PGSQL_AF_INET6 3), bits, is_cidr, length, bytes. */
	b[0] = v->family == LG_INET_V4 ? 2 : 3;
	b[1] = v->bits;
	b[2] = 0;
	b[3] = (uint8_t)nb;
	memcpy(b + 4, v->addr, nb);
	*out = param_borrowed(LG__OID_INET, b, 4 + nb);
	return 0;
}

/* What encoding an array type needs: element OID, array OID, element size in the field's C
 * array, and the wire size of an element (0 = variable: text). */
struct array_kind {
	uint32_t elem_oid, array_oid;
	size_t csize, wsize;
};

static bool array_kind(enum lg_type t, struct array_kind *k)
{
	switch (t) {
	case LG_INT32_ARRAY:
		*k = (struct array_kind){LG__OID_INT4, LG__OID_INT4_ARRAY, sizeof(int32_t), 4};
		return true;
	case LG_INT64_ARRAY:
		*k = (struct array_kind){LG__OID_INT8, LG__OID_INT8_ARRAY, sizeof(int64_t), 8};
		return true;
	case LG_FLOAT64_ARRAY:
		*k = (struct array_kind){LG__OID_FLOAT8, LG__OID_FLOAT8_ARRAY, sizeof(double), 8};
		return true;
	case LG_BOOL_ARRAY:
		*k = (struct array_kind){LG__OID_BOOL, LG__OID_BOOL_ARRAY, sizeof(bool), 1};
		return true;
	case LG_TEXT_ARRAY:
		*k = (struct array_kind){LG__OID_TEXT, LG__OID_TEXT_ARRAY, sizeof(char *), 0};
		return true;
	case LG_UUID_ARRAY:
		*k = (struct array_kind){LG__OID_UUID, LG__OID_UUID_ARRAY, sizeof(struct lg_uuid),
					 16};
		return true;
	default:
		return false;
	}
}

/* Every array struct has the layout of this one (model.h's LG__ARRAY_STRUCT). */
struct any_array {
	const void *v;
	const bool *nulls;
	size_t n;
};

/* Wire bytes of element i (not NULL). */
static void array_put_elem(const struct array_kind *k, const struct any_array *a, size_t i,
			   uint8_t *out)
{
	const char *e = (const char *)a->v + i * k->csize;
	uint64_t u = 0;
	switch (k->wsize) {
	case 0: {
		const char *s = *(const char *const *)(const void *)e;
		memcpy(out, s, strlen(s));
		return;
	}
	case 1:
		out[0] = *(const bool *)(const void *)e ? 1 : 0;
		return;
	case 4:
		lg__pg_put_be32(out, (uint32_t) * (const int32_t *)(const void *)e);
		return;
	case 8:
		memcpy(&u, e, 8); /* int64 and double bits alike */
		lg__pg_put_be64(out, u);
		return;
	default:
		memcpy(out, e, 16);
		return;
	}
}

static bool array_elem_null(const struct any_array *a, size_t i)
{
	return a->nulls != NULL && a->nulls[i];
}

/* The wire size of the array (array_send), or 0 when an element is invalid. */
static size_t array_wire_size(const struct array_kind *k, const struct any_array *a)
{
	size_t total = 20; /* ndim, flags, element type, one dimension and its lower bound */
	for (size_t i = 0; i < a->n; i++) {
		size_t es = k->wsize;
		if (array_elem_null(a, i)) {
			es = 0;
		} else if (es == 0) {
			const char *s = ((const char *const *)a->v)[i];
			if (s == NULL) {
				return 0; /* NULL must be explicit: the nulls flag */
			}
			es = strlen(s);
		}
		if (__builtin_add_overflow(total, 4 + es, &total)) {
			return 0;
		}
	}
	return total;
}

static int array_param(enum lg_type t, const void *field, struct lg__enc *enc, struct lg_param *out)
{
	struct array_kind k;
	struct any_array a;
	memcpy(&a, field, sizeof(a));
	if (!array_kind(t, &k) || enc == NULL || (a.n > 0 && a.v == NULL) || a.n > INT32_MAX) {
		return LG_EINVAL;
	}
	size_t total = array_wire_size(&k, &a);
	if (total == 0 || total > INT32_MAX) {
		return LG_EINVAL;
	}
	uint8_t *b = enc_alloc(enc, total);
	if (b == NULL) {
		return LG_ENOMEM;
	}
	bool has_null = false;
	for (size_t i = 0; i < a.n && !has_null; i++) {
		has_null = array_elem_null(&a, i);
	}
	/* An empty array has no dimensions. */
	lg__pg_put_be32(b, a.n > 0 ? 1 : 0);
	lg__pg_put_be32(b + 4, has_null ? 1 : 0);
	lg__pg_put_be32(b + 8, k.elem_oid);
	size_t off = 12;
	if (a.n > 0) {
		lg__pg_put_be32(b + 12, (uint32_t)a.n);
		lg__pg_put_be32(b + 16, 1);
		off = 20;
	}
	for (size_t i = 0; i < a.n; i++) {
		if (array_elem_null(&a, i)) {
			lg__pg_put_be32(b + off, UINT32_MAX); /* length -1 */
			off += 4;
			continue;
		}
		size_t es = k.wsize != 0 ? k.wsize : strlen(((const char *const *)a.v)[i]);
		lg__pg_put_be32(b + off, (uint32_t)es);
		array_put_elem(&k, &a, i, b + off + 4);
		off += 4 + es;
	}
	*out = param_borrowed(k.array_oid, b, off);
	return 0;
}

int lg__value_param(enum lg_type t, const void *field, struct lg__enc *enc, struct lg_param *out)
{
	switch (t) {
	case LG_DATE:
		*out = lg_param_date(*(const int32_t *)field);
		break;
	case LG_TIME:
		*out = lg_param_time(*(const int64_t *)field);
		break;
	case LG_TIMESTAMP:
		*out = lg_param_timestamp(*(const int64_t *)field);
		break;
	case LG_INTERVAL:
		*out = lg_param_interval(*(const struct lg_interval *)field);
		break;
	case LG_NUMERIC:
	case LG_ENUM: {
		const char *s = *(const char *const *)field;
		if (s == NULL) {
			return LG_EINVAL; /* NULL must be explicit: the column's NULL bit */
		}
		*out = t == LG_NUMERIC ? lg_param_numeric(s) : lg_param_enum(s);
		break;
	}
	case LG_INET:
		return inet_param(field, enc, out);
	default:
		return array_param(t, field, enc, out);
	}
	return out->length < 0 ? LG_EINVAL : 0;
}
