/*
 * Query results: rows and columns by index or name, NULLs, and typed accessors.
 *
 * Accessors work on text and binary result columns alike and check the column's type:
 * asking for an int64 from a text column gives LG_ETYPE, a NULL value gives LG_ENULL, an
 * index out of range LG_EINVAL. Pointers returned are Borrowed until lg_result_free().
 */
#ifndef LIBGUARD_RESULT_H
#define LIBGUARD_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_result;

/* Frees r; NULL is a no-op. */
LG_API void lg_result_free(struct lg_result *r);

LG_API int lg_result_rows(const struct lg_result *r);
LG_API int lg_result_cols(const struct lg_result *r);
/* Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT ..., 0 if not reported. */
LG_API int64_t lg_result_affected(const struct lg_result *r);
/* The command tag ("INSERT 0 1"). */
LG_API const char *lg_result_command(const struct lg_result *r);
LG_API const char *lg_result_col_name(const struct lg_result *r, int col);
/* Column index of name, or -1. */
LG_API int lg_result_col_index(const struct lg_result *r, const char *name);
/* Type OID of col (0 if out of range). */
LG_API uint32_t lg_result_col_type(const struct lg_result *r, int col);
LG_API bool lg_result_is_null(const struct lg_result *r, int row, int col);

/* int2, int4, int8 (and oid). */
LG_API int lg_result_int64(const struct lg_result *r, int row, int col, int64_t *out);
/* float4, float8 (and numeric in text format, rounded). */
LG_API int lg_result_double(const struct lg_result *r, int row, int col, double *out);
LG_API int lg_result_bool(const struct lg_result *r, int row, int col, bool *out);
/*
 * The value as text: any text-format column, and text-like binary columns (text, varchar,
 * name, json, jsonb — without jsonb's version byte). *len (may be NULL) gets the length.
 * numeric is returned as its exact decimal text.
 */
LG_API int lg_result_text(const struct lg_result *r, int row, int col, const char **out,
			  size_t *len);
/* bytea contents (decoded from the text form when needed; may contain zero bytes). */
LG_API int lg_result_bytea(struct lg_result *r, int row, int col, const uint8_t **out, size_t *len);
/* timestamptz (and timestamp, read as UTC) as microseconds since 1970-01-01 UTC;
 * infinity / -infinity give INT64_MAX / INT64_MIN. */
LG_API int lg_result_timestamptz(const struct lg_result *r, int row, int col, int64_t *out);
LG_API int lg_result_uuid(const struct lg_result *r, int row, int col, uint8_t out[16]);

/* The same accessors by column name: LG_ENOTFOUND for an unknown name. */
LG_API int lg_result_int64_by_name(const struct lg_result *r, int row, const char *name,
				   int64_t *out);
LG_API int lg_result_text_by_name(const struct lg_result *r, int row, const char *name,
				  const char **out, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_RESULT_H */
