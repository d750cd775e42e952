/*
 * Codecs of numeric text, inet / cidr text and one-dimensional array text.
 *
 * numeric is never converted: the ORM keeps its exact decimal text, and this file only checks
 * that a value is text the server reads as exactly that number (PostgreSQL 15 documentation,
 * section 8.1.2). inet text is read with inet_pton(3), the C library's strict parser, after the
 * optional "/bits" is split off. Array text follows section 8.15.6: braces, commas, elements in
 * double quotes when they need them, backslash escapes inside quotes, and an unquoted NULL.
 */
#include "pg_types.h"

#include "libguard/error.h"

#include <arpa/inet.h>
#include <string.h>

bool lg__pg_numeric_valid(const char *s, size_t len)
{
	if (lg__pg_equal_nocase(s, len, "nan") || lg__pg_equal_nocase(s, len, "infinity") ||
	    lg__pg_equal_nocase(s, len, "+infinity") || lg__pg_equal_nocase(s, len, "-infinity")) {
		return true;
	}
	return lg__pg_is_decimal(s, len);
}

int lg__pg_parse_inet(const char *s, size_t len, uint8_t *family, uint8_t *bits, uint8_t addr[16])
{
	char buf[64];
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	/* A NUL inside would end the text inet_pton reads early. */
	if (alen == 0 || alen >= sizeof(buf) || memchr(s, '\0', alen) != NULL) {
		return LG_EINVAL;
	}
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	uint8_t tmp[16] = {0};
	uint8_t fam = 6, max = 128;
	if (memchr(buf, ':', alen) == NULL) {
		fam = 4;
		max = 32;
	}
	if (inet_pton(fam == 4 ? AF_INET : AF_INET6, buf, tmp) != 1) {
		return LG_EINVAL;
	}
	int64_t b = max;
	if (slash != NULL) {
		struct lg__pg_scan sc = {s, len, alen + 1};
		if (!lg__pg_scan_num(&sc, 1, 3, &b, NULL) || sc.pos != len || b > max) {
			return LG_EINVAL;
		}
	}
	*family = fam;
	*bits = (uint8_t)b;
	memcpy(addr, tmp, sizeof(tmp));
	return 0;
}

/* Reads one element at sc (up to the next ',' or '}'), unescaped into out; *is_null for an
 * unquoted NULL. */
static int array_elem(struct lg__pg_scan *sc, char *out, size_t *olen, bool *is_null)
{
	size_t n = 0;
	*is_null = false;
	if (lg__pg_scan_char(sc, '"')) {
		for (;;) {
			if (sc->pos >= sc->len) {
				return LG_EINVAL;
			}
			char c = sc->s[sc->pos++];
			if (c == '"') {
				break;
			}
			if (c == '\\') {
				if (sc->pos >= sc->len) {
					return LG_EINVAL;
				}
				c = sc->s[sc->pos++];
			}
			if (c == '\0') {
				return LG_EINVAL; /* never in text; it would cut the C string */
			}
			out[n++] = c;
		}
	} else {
		while (sc->pos < sc->len && sc->s[sc->pos] != ',' && sc->s[sc->pos] != '}') {
			char c = sc->s[sc->pos++];
			if (c == '"' || c == '\\' || c == '{' || c == '\0') {
				return LG_EINVAL;
			}
			out[n++] = c;
		}
		if (n == 0) {
			return LG_EINVAL; /* the server quotes an empty string */
		}
		*is_null = lg__pg_equal_nocase(out, n, "null");
	}
	out[n] = '\0';
	*olen = n;
	return 0;
}

int lg__pg_array_split(const char *s, size_t len, char *buf,
		       int (*fn)(void *ud, const char *elem, size_t elen), void *ud)
{
	struct lg__pg_scan sc = {s, len, 0};
	if (!lg__pg_scan_char(&sc, '{')) {
		return LG_EINVAL; /* also "[0:1]={...}": bounds other than 1 are not kept */
	}
	if (lg__pg_scan_char(&sc, '}')) {
		return sc.pos == len ? 0 : LG_EINVAL;
	}
	for (;;) {
		size_t n = 0;
		bool is_null;
		int rc = array_elem(&sc, buf, &n, &is_null);
		if (rc == 0) {
			rc = fn(ud, is_null ? NULL : buf, n);
		}
		if (rc != 0) {
			return rc;
		}
		if (lg__pg_scan_char(&sc, '}')) {
			return sc.pos == len ? 0 : LG_EINVAL;
		}
		if (!lg__pg_scan_char(&sc, ',')) {
			return LG_EINVAL;
		}
	}
}
