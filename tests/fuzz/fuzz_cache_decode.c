/*
 * libFuzzer harness for the decoder of cached rows (cache_json.c): the JSON text of a cached
 * value's "row" into a model struct through the one-block local result. Beyond not crashing
 * or reading past the value (ASan), a decode that succeeds must give text fields that are
 * NUL-terminated inside the bytes the value could produce, decode the same twice, and leave
 * nothing behind once the row is cleared (LeakSanitizer); one that fails must leave the
 * previous row's values as they were or cleared, never half-freed.
 */
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "libguard/model.h"

#define FZ_COLUMNS(X)                                                                              \
	X(fz, id, LG_INT64, LG_COL_PK)                                                             \
	X(fz, name, LG_TEXT, LG_COL_NULLABLE)                                                      \
	X(fz, n, LG_INT32, LG_COL_NULLABLE)                                                        \
	X(fz, f, LG_FLOAT64, LG_COL_NULLABLE)                                                      \
	X(fz, ok, LG_BOOL, LG_COL_NULLABLE)                                                        \
	X(fz, u, LG_UUID, LG_COL_NULLABLE)                                                         \
	X(fz, ts, LG_TIMESTAMPTZ, LG_COL_NULLABLE)                                                 \
	X(fz, doc, LG_JSONB, LG_COL_NULLABLE)                                                      \
	X(fz, tags, LG_TEXT_ARRAY, LG_COL_NULLABLE)                                                \
	X(fz, ints, LG_INT64_ARRAY, LG_COL_NULLABLE)                                               \
	X(fz, amount, LG_NUMERIC, LG_COL_NULLABLE)                                                 \
	X(fz, day, LG_DATE, LG_COL_NULLABLE)
LG_MODEL_DECLARE(fz, FZ_COLUMNS);
LG_MODEL_DEFINE(fz, "public", "fz", FZ_COLUMNS);

static void check_text(const char *s, size_t max)
{
	if (s != NULL && strnlen(s, max + 1) > max) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *json = (const char *)data;
	struct fz a = {0};
	struct fz b = {0};
	int rc = lg__cache_decode(&fz_model, json, size, &a);
	if (rc == 0) {
		check_text(a.name, size);
		check_text(a.doc, size);
		if (lg__cache_decode(&fz_model, json, size, &b) != 0 || a.id != b.id ||
		    a.n != b.n || a.ok != b.ok || a.ts != b.ts || a.lg_null != b.lg_null ||
		    (a.name != NULL) != (b.name != NULL) ||
		    (a.name != NULL && strcmp(a.name, b.name) != 0)) {
			abort();
		}
		/* Decoding again into a used row releases what it held. */
		if (lg__cache_decode(&fz_model, json, size, &a) != 0) {
			abort();
		}
	}
	lg_row_clear(&fz_model, &a);
	lg_row_clear(&fz_model, &b);
	return 0;
}
