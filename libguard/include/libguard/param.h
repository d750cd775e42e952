/*
 * Statement parameters: a value type, independent of any connection. The ORM, the cache and
 * the reflector build parameters with these constructors; libguard/conn.h and pool.h send
 * them.
 *
 * A parameter Borrows the memory it points at (value) until the call that sends it returns;
 * small binary values (integers, floats, booleans, UUIDs, timestamps) are copied inline. A
 * value longer than the protocol's int32 length (2 GiB - 1) is marked invalid and the
 * sending call fails with LG_EINVAL before anything is sent.
 */
#ifndef LIBGUARD_PARAM_H
#define LIBGUARD_PARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A bound parameter. Build it with the lg_param_* constructors below. */
struct lg_param {
	const void *value; /* Borrowed until the call returns; unused for inline values */
	int length;        /* bytes */
	int format;        /* 0 text, 1 binary */
	uint32_t oid;      /* type OID; 0 lets the server infer it */
	bool is_null;
	bool is_inline; /* value lives in inline_buf */
	bool needs_nul; /* text of explicit length: copied and terminated when sent */
	unsigned char inline_buf[16];
};

LG_API struct lg_param lg_param_null(void);
LG_API struct lg_param lg_param_text(const char *s); /* NUL-terminated UTF-8 */
/* len bytes of s, which need not be NUL-terminated (text may not contain NUL bytes:
 * such a parameter fails the call with LG_EINVAL). */
LG_API struct lg_param lg_param_textn(const char *s, size_t len);
LG_API struct lg_param lg_param_int32(int32_t v); /* int4 */
LG_API struct lg_param lg_param_int64(int64_t v); /* int8 */
LG_API struct lg_param lg_param_double(double v); /* float8 */
LG_API struct lg_param lg_param_bool(bool v);
LG_API struct lg_param lg_param_bytea(const void *data, size_t len);
LG_API struct lg_param lg_param_uuid(const uint8_t uuid[16]);
LG_API struct lg_param lg_param_timestamptz(int64_t us_since_unix_epoch);
LG_API struct lg_param lg_param_jsonb(const char *json); /* text JSON, sent as jsonb */

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_PARAM_H */
