/* Read-your-writes tokens and ids: parsing and formatting (see svc_token.h). */
#include "svc_token.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <libguard/db.h>

bool svc_id_parse(const char *text, size_t len, int64_t *out)
{
	if (len == 0 || len > 19) {
		return false;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9') {
			return false;
		}
		v = v * 10 + (uint64_t)(text[i] - '0');
	}
	if (v == 0 || v > (uint64_t)INT64_MAX) {
		return false;
	}
	*out = (int64_t)v;
	return true;
}

bool svc_token_parse(const char *text, struct svc_token *out)
{
	memset(out, 0, sizeof(*out));
	if (text[0] == '\0') {
		return true;
	}
	char lsn[40], id[24], v[24];
	int used = -1;
	if (sscanf(text, "lsn=%39[0-9A-Fa-f/];id=%23[0-9];v=%23[0-9a-z]%n", lsn, id, v, &used) !=
		3 ||
	    used < 0 || text[used] != '\0') {
		return false;
	}
	if (lg_token_parse(lsn, &out->lsn) != 0 || !svc_id_parse(id, strlen(id), &out->id)) {
		return false;
	}
	if (strcmp(v, "deleted") == 0) {
		out->deleted = true;
	} else if (!svc_id_parse(v, strlen(v), &out->version)) {
		return false;
	}
	out->set = true;
	return true;
}

bool svc_token_format(const struct svc_token *t, char *buf, size_t len)
{
	char v[24];
	snprintf(v, sizeof(v), "%" PRId64, t->version);
	int n =
	    snprintf(buf, len, "lsn=%" PRIX32 "/%" PRIX32 ";id=%" PRId64 ";v=%s",
		     (uint32_t)(t->lsn >> 32), (uint32_t)t->lsn, t->id, t->deleted ? "deleted" : v);
	return n > 0 && (size_t)n < len;
}
