/*
 * Read-your-writes sessions (db.h): the highest token seen, when it arrived, and the versions
 * of reflected rows written, plus the text form of tokens. Pure: no loop, no server.
 *
 * Versions live in a small open-addressing table keyed by (table, key), grown at 3/4 load;
 * only the highest version per key is kept. Out of memory when growing leaves the table as it
 * was and reports LG_ENOMEM: the caller then knows the version is not recorded.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "alloc_int.h"
#include "db_int.h"
#include "libguard/db.h"
#include "libguard/runtime.h"

struct session_ver {
	char *table; /* NULL: empty slot */
	char *key;
	int64_t version;
};

LG_API int lg_session_new(struct lg_session **out)
{
	struct lg_session *s = lg__calloc(1, sizeof(*s));
	if (s == NULL) {
		return LG_ENOMEM;
	}
	s->last_source = -2;
	*out = s;
	return 0;
}

LG_API void lg_session_free(struct lg_session *s)
{
	if (s == NULL) {
		return;
	}
	for (size_t i = 0; i < s->cap; i++) {
		lg__free(s->vers[i].table);
		lg__free(s->vers[i].key);
	}
	lg__free(s->vers);
	lg__free(s);
}

LG_API uint64_t lg_session_token(const struct lg_session *s)
{
	return s->token;
}

LG_API void lg_session_observe(struct lg_session *s, uint64_t token)
{
	if (token == 0) {
		return;
	}
	/* The time moves even when the token does not: a shared read that started before this
	 * call may predate the write behind the token. */
	s->token_ms = lg_now_ms();
	if (token > s->token) {
		s->token = token;
	}
}

void lg__session_pin(struct lg_session *s)
{
	s->pinned = true;
	s->token_ms = lg_now_ms();
}

void lg__session_token(struct lg_session *s, uint64_t token)
{
	/* A new token is above whatever write had left the session pinned to the primary. */
	s->pinned = false;
	lg_session_observe(s, token);
}

LG_API bool lg_session_may_share(const struct lg_session *s, uint64_t started_ms)
{
	return s == NULL || (s->token == 0 && !s->pinned) || started_ms > s->token_ms;
}

LG_API int lg_session_last_source(const struct lg_session *s)
{
	return s->last_source;
}

static size_t session_hash(const char *table, const char *key)
{
	uint64_t h = XXH3_64bits(table, strlen(table));
	return (size_t)XXH3_64bits_withSeed(key, strlen(key), h);
}

static struct session_ver *session_slot(struct session_ver *v, size_t cap, const char *table,
					const char *key)
{
	size_t i = session_hash(table, key) & (cap - 1);
	while (v[i].table != NULL &&
	       (strcmp(v[i].table, table) != 0 || strcmp(v[i].key, key) != 0)) {
		i = (i + 1) & (cap - 1);
	}
	return &v[i];
}

static int session_grow(struct lg_session *s)
{
	size_t cap = s->cap != 0 ? s->cap * 2 : 16;
	struct session_ver *v = lg__calloc(cap, sizeof(*v));
	if (v == NULL) {
		return LG_ENOMEM;
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (s->vers[i].table != NULL) {
			*session_slot(v, cap, s->vers[i].table, s->vers[i].key) = s->vers[i];
		}
	}
	lg__free(s->vers);
	s->vers = v;
	s->cap = cap;
	return 0;
}

LG_API int lg_session_note_version(struct lg_session *s, const char *table, const char *key,
				   int64_t version)
{
	if (s == NULL || table == NULL || key == NULL) {
		return LG_EINVAL;
	}
	if ((s->n + 1) * 4 > s->cap * 3 && session_grow(s) != 0) {
		return LG_ENOMEM;
	}
	struct session_ver *e = session_slot(s->vers, s->cap, table, key);
	if (e->table != NULL) {
		if (version > e->version) {
			e->version = version;
		}
		return 0;
	}
	char *t = lg__strdup(table);
	char *k = lg__strdup(key);
	if (t == NULL || k == NULL) {
		lg__free(t);
		lg__free(k);
		return LG_ENOMEM;
	}
	*e = (struct session_ver){t, k, version};
	s->n++;
	return 0;
}

LG_API int64_t lg_session_version(const struct lg_session *s, const char *table, const char *key)
{
	if (s == NULL || s->cap == 0 || table == NULL || key == NULL) {
		return 0;
	}
	const struct session_ver *e = session_slot(s->vers, s->cap, table, key);
	return e->table != NULL ? e->version : 0;
}

LG_API void lg_token_format(uint64_t token, char buf[LG_TOKEN_TEXT_SIZE])
{
	snprintf(buf, LG_TOKEN_TEXT_SIZE, "%" PRIX32 "/%" PRIX32, (uint32_t)(token >> 32),
		 (uint32_t)token);
}

/* One half of "X/Y": 1 to 8 hex digits. */
static const char *token_half(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	int n = 0;
	for (; n < 9; n++, p++) {
		int d = *p >= '0' && *p <= '9'   ? *p - '0'
			: *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
			: *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
						 : -1;
		if (d < 0) {
			break;
		}
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return n >= 1 && n <= 8 ? p : NULL;
}

LG_API int lg_token_parse(const char *text, uint64_t *out)
{
	uint32_t hi, lo;
	const char *p = text != NULL ? token_half(text, &hi) : NULL;
	if (p == NULL || *p != '/' || (p = token_half(p + 1, &lo)) == NULL || *p != '\0') {
		return LG_EINVAL;
	}
	*out = (uint64_t)hi << 32 | lo;
	return 0;
}
