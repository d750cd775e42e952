/*
 * The versions an ORM write through a session leaves behind (db.h, lg_session_version): for
 * a model with an "lg_version" column (a reflected table's version, which the ORM's
 * RETURNING then reads back in the same statement), the row's version under the model's
 * table name and the key's canonical text. A delete records the highest version there is:
 * its own version is not returned, and no cached value of the row may serve the session
 * afterwards. Keys of types whose canonical text is not certain on the client (anything but
 * integers, text and uuids) and key parts longer than 63 bytes are not recorded; reads of them rely
 * on the LSN token alone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "db_int.h"
#include "libguard/cache_contract.h"
#include "model_int.h"

#define ORM_KEY_TEXT 512

/* The canonical text of key column c of row into buf; false when not certain here. */
static bool orm_key_part(const struct lg_model_col *c, const void *row, char *buf, size_t size)
{
	const char *f = (const char *)row + c->offset;
	switch (c->type) {
	case LG_INT32:
		snprintf(buf, size, "%" PRId32, *(const int32_t *)(const void *)f);
		return true;
	case LG_INT64:
		snprintf(buf, size, "%" PRId64, *(const int64_t *)(const void *)f);
		return true;
	case LG_TEXT: {
		const char *s = *(const char *const *)(const void *)f;
		return s != NULL && (size_t)snprintf(buf, size, "%s", s) < size;
	}
	case LG_UUID: {
		const uint8_t *b = ((const struct lg_uuid *)(const void *)f)->b;
		size_t n = 0;
		for (int i = 0; i < 16; i++) {
			n += (size_t)snprintf(buf + n, size - n, "%s%02x",
					      i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "",
					      b[i]);
		}
		return true;
	}
	default:
		return false;
	}
}

void lg__session_note_row(const struct lg_db *db, const struct lg_model *m, const void *row,
			  bool deleted)
{
	if (db->session == NULL) {
		return;
	}
	int vcol = -1;
	for (unsigned i = 0; i < m->ncols; i++) {
		if (m->cols[i].type == LG_INT64 && strcmp(m->cols[i].name, "lg_version") == 0) {
			vcol = (int)i;
		}
	}
	uint64_t nulls = *lg__row_nulls(m, (void *)(uintptr_t)row);
	if (vcol < 0 || (!deleted && (nulls >> vcol) & 1u)) {
		return;
	}
	char parts_buf[LG_MODEL_MAX_COLS][64];
	const char *parts[LG_MODEL_MAX_COLS];
	size_t n = 0;
	for (unsigned i = 0; i < m->ncols; i++) {
		if ((m->cols[i].flags & LG_COL_PK) &&
		    !orm_key_part(&m->cols[i], row, parts_buf[n], sizeof(parts_buf[n]))) {
			return;
		}
		if (m->cols[i].flags & LG_COL_PK) {
			parts[n] = parts_buf[n];
			n++;
		}
	}
	char table[160];
	char key[ORM_KEY_TEXT];
	bool schema = m->schema != NULL && m->schema[0] != '\0';
	snprintf(table, sizeof(table), "%s%s%s", schema ? m->schema : "", schema ? "." : "",
		 m->table);
	/* The cache key's <pk> part: what follows "p:t:". */
	if (n == 0 || lg_cache_key(key, sizeof(key), "p", "t", parts, n) != 0) {
		return;
	}
	int64_t v =
	    deleted ? INT64_MAX
		    : *(const int64_t *)(const void *)((const char *)row + m->cols[vcol].offset);
	/* Out of memory: not recorded; the LSN token still holds for replica reads. */
	(void)lg_session_note_version(db->session, table, key + 4, v);
}
