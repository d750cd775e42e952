/*
 * Parameter constructors (libguard/param.h): values only, no connection. Binary values are
 * encoded in the wire formats of PostgreSQL's send functions (big-endian integers, IEEE
 * floats, timestamps as microseconds since 2000-01-01).
 */
#include <limits.h>
#include <string.h>

#include "libguard/param.h"
#include "pg_types.h"

/* Type OIDs from PostgreSQL's pg_type.dat. */
#define OID_BOOL        16
#define OID_BYTEA       17
#define OID_INT8        20
#define OID_INT4        23
#define OID_TEXT        25
#define OID_FLOAT8      701
#define OID_TIMESTAMPTZ 1184
#define OID_UUID        2950
#define OID_JSONB       3802

LG_API struct lg_param lg_param_null(void)
{
	struct lg_param p = {0};
	p.is_null = true;
	return p;
}

/* The Bind message carries lengths as int32: a longer value is marked invalid (length -1),
 * and the call refuses it with LG_EINVAL instead of sending a truncated length. */
static int param_length(size_t len)
{
	return len <= (size_t)INT_MAX ? (int)len : -1;
}

LG_API struct lg_param lg_param_textn(const char *s, size_t len)
{
	struct lg_param p = {0};
	p.value = s;
	p.length = param_length(len);
	p.is_null = s == NULL;
	p.needs_nul = true; /* libpq reads text parameters up to a NUL, ignoring lengths */
	return p;
}

LG_API struct lg_param lg_param_text(const char *s)
{
	struct lg_param p = lg_param_textn(s, s != NULL ? strlen(s) : 0);
	p.needs_nul = false; /* already terminated */
	return p;
}

static struct lg_param param_inline(uint32_t oid, const void *bytes, int len)
{
	struct lg_param p = {0};
	p.format = 1;
	p.oid = oid;
	p.is_inline = true;
	p.length = len;
	memcpy(p.inline_buf, bytes, (size_t)len);
	return p;
}

LG_API struct lg_param lg_param_int32(int32_t v)
{
	uint8_t b[4];
	lg__pg_put_be32(b, (uint32_t)v);
	return param_inline(OID_INT4, b, 4);
}

LG_API struct lg_param lg_param_int64(int64_t v)
{
	uint8_t b[8];
	lg__pg_put_be64(b, (uint64_t)v);
	return param_inline(OID_INT8, b, 8);
}

LG_API struct lg_param lg_param_double(double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	uint8_t b[8];
	lg__pg_put_be64(b, bits);
	return param_inline(OID_FLOAT8, b, 8);
}

LG_API struct lg_param lg_param_bool(bool v)
{
	uint8_t b = v ? 1 : 0;
	return param_inline(OID_BOOL, &b, 1);
}

LG_API struct lg_param lg_param_bytea(const void *data, size_t len)
{
	struct lg_param p = {0};
	p.value = data;
	p.length = param_length(len);
	p.format = 1;
	p.oid = OID_BYTEA;
	p.is_null = data == NULL && len > 0;
	return p;
}

LG_API struct lg_param lg_param_uuid(const uint8_t uuid[16])
{
	return param_inline(OID_UUID, uuid, 16);
}

LG_API struct lg_param lg_param_timestamptz(int64_t us_since_unix_epoch)
{
	uint8_t b[8];
	lg__pg_put_be64(b, (uint64_t)lg__pg_timestamptz_to_binary(us_since_unix_epoch));
	return param_inline(OID_TIMESTAMPTZ, b, 8);
}

LG_API struct lg_param lg_param_jsonb(const char *json)
{
	struct lg_param p = lg_param_text(json);
	p.oid = OID_JSONB;
	return p;
}
