/*
 * The contract's Redis keys and values (contract.h), and the client-side canonical text of
 * the key types whose plain spellings a few lines of C can settle exactly.
 *
 * Client-side canonicalization handles only spellings whose canonical form is certain:
 * decimal integers with optional blanks and sign (PostgreSQL's int2/int4/int8 input in
 * base 10), the 32-hex-digit uuid with or without its four hyphens in the standard places,
 * and the usual boolean words. Anything else (another accepted form, or an invalid one) is
 * answered LG__CONTRACT_ASK_DB: the database parses it with the contract's settings and
 * either renders it or refuses it with its own error, so the client never accepts a key the
 * database would reject, nor rejects one it would accept.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "contract.h"

/* Appends s, escaping '\' and ':' when escape; false when it does not fit. */
static bool key_append(char *buf, size_t size, size_t *n, const char *s, bool escape)
{
	for (; *s != '\0'; s++) {
		bool special = escape && (*s == ':' || *s == '\\');
		if (*n + (special ? 2 : 1) >= size) {
			return false;
		}
		if (special) {
			buf[(*n)++] = '\\';
		}
		buf[(*n)++] = *s;
	}
	return true;
}

LG_API int lg_cache_key(char *buf, size_t size, const char *prefix, const char *table,
			const char *const *parts, size_t nparts)
{
	if (buf == NULL || size == 0 || prefix == NULL || prefix[0] == '\0' || table == NULL ||
	    table[0] == '\0' || parts == NULL || nparts == 0) {
		return LG_EINVAL;
	}
	size_t n = 0;
	bool ok = key_append(buf, size, &n, prefix, false) &&
		  key_append(buf, size, &n, ":", false) && key_append(buf, size, &n, table, false);
	for (size_t i = 0; ok && i < nparts; i++) {
		if (parts[i] == NULL) {
			buf[0] = '\0';
			return LG_EINVAL;
		}
		ok = key_append(buf, size, &n, ":", false) &&
		     key_append(buf, size, &n, parts[i], true);
	}
	buf[ok ? n : 0] = '\0';
	return ok ? 0 : LG_ERANGE;
}

int lg__contract_table_fence(char *buf, size_t size, const char *fence_prefix, const char *table)
{
	if (fence_prefix == NULL || fence_prefix[0] == '\0' || table == NULL || table[0] == '\0') {
		return LG_EINVAL;
	}
	int n = snprintf(buf, size, "%s:%s", fence_prefix, table);
	return n >= 0 && (size_t)n < size ? 0 : LG_ERANGE;
}

bool lg__contract_glob_escape(char *buf, size_t size, const char *s)
{
	size_t n = 0;
	for (; *s != '\0'; s++) {
		bool special = strchr("*?[]\\", *s) != NULL;
		if (n + (special ? 2 : 1) >= size) {
			return false;
		}
		if (special) {
			buf[n++] = '\\';
		}
		buf[n++] = *s;
	}
	buf[n] = '\0';
	return true;
}

int lg__contract_table_match(char *buf, size_t size, const char *prefix, const char *table)
{
	char key[1024];
	if (lg_cache_key(key, sizeof(key), prefix, table, (const char *const[]){"*"}, 1) != 0) {
		return LG_ERANGE;
	}
	/* Escape everything, then turn the trailing "\*" back into the wildcard. */
	if (!lg__contract_glob_escape(buf, size, key)) {
		return LG_ERANGE;
	}
	size_t len = strlen(buf);
	buf[len - 2] = '*';
	buf[len - 1] = '\0';
	return 0;
}

/* ---- Values ---- */

static const char value_head[] = "{\"v\":";
static const char value_mid[] = ",\"row\":";

size_t lg__contract_value_len(int64_t version, size_t row_len)
{
	char digits[24];
	int d = snprintf(digits, sizeof(digits), "%" PRId64, version);
	return sizeof(value_head) - 1 + (size_t)d + sizeof(value_mid) - 1 + row_len + 1;
}

size_t lg__contract_value_write(char *buf, int64_t version, const char *row, size_t row_len)
{
	int h = sprintf(buf, "{\"v\":%" PRId64 ",\"row\":", version);
	memcpy(buf + h, row, row_len);
	buf[(size_t)h + row_len] = '}';
	buf[(size_t)h + row_len + 1] = '\0';
	return (size_t)h + row_len + 1;
}

/* The version written at v[i..end): the index after its digits, 0 when there is none. */
static size_t value_version(const char *v, size_t i, size_t end, int64_t *version)
{
	bool neg = i < end && v[i] == '-';
	i += neg;
	uint64_t n = 0;
	size_t start = i;
	for (; i < end && v[i] >= '0' && v[i] <= '9' && i - start < 19; i++) {
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (i == start || n > (uint64_t)INT64_MAX) {
		return 0;
	}
	*version = neg ? -(int64_t)n : (int64_t)n;
	return i;
}

bool lg__contract_value_parse(const char *v, size_t len, int64_t *version, const char **row,
			      size_t *row_len)
{
	size_t hl = sizeof(value_head) - 1;
	size_t ml = sizeof(value_mid) - 1;
	if (v == NULL || len < hl + 1 + ml + 1 || memcmp(v, value_head, hl) != 0 ||
	    v[len - 1] != '}') {
		return false;
	}
	int64_t n = 0;
	size_t i = value_version(v, hl, len, &n);
	if (i == 0 || len - i < ml + 2 || memcmp(v + i, value_mid, ml) != 0) {
		return false;
	}
	*version = n;
	*row = v + i + ml;
	*row_len = len - 1 - (i + ml);
	return true;
}

static const char absent_tail[] = ",\"absent\":true}";

size_t lg__contract_absent_write(char *buf, size_t size, int64_t version)
{
	int n = snprintf(buf, size, "%s%" PRId64 "%s", value_head, version, absent_tail);
	return n < 0 ? size : (size_t)n;
}

bool lg__contract_absent_parse(const char *v, size_t len, int64_t *version)
{
	size_t hl = sizeof(value_head) - 1;
	size_t tl = sizeof(absent_tail) - 1;
	if (v == NULL || len < hl + 1 + tl || memcmp(v, value_head, hl) != 0 ||
	    memcmp(v + len - tl, absent_tail, tl) != 0) {
		return false;
	}
	return value_version(v, hl, len - tl, version) == len - tl;
}

/* ---- Canonical text, client side ---- */

enum lg__contract_kind lg__contract_kind(const char *type)
{
	static const struct {
		const char *type;
		enum lg__contract_kind kind;
	} kinds[] = {
	    {"smallint", LG__KEY_INT2},
	    {"integer", LG__KEY_INT4},
	    {"bigint", LG__KEY_INT8},
	    {"uuid", LG__KEY_UUID},
	    {"boolean", LG__KEY_BOOL},
	    {"text", LG__KEY_TEXT},
	    {"character varying", LG__KEY_TEXT},
	};
	for (size_t i = 0; type != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(type, kinds[i].type) == 0) {
			return kinds[i].kind;
		}
	}
	return LG__KEY_DB;
}

/* n's digits into out, preceded by '-' when neg: the length, or 0 when size is too small. */
static size_t digits_text(char *out, size_t size, uint64_t n, bool neg)
{
	char tmp[20];
	size_t d = 0;
	do {
		tmp[d++] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	size_t len = d + neg;
	if (len + 1 > size) {
		return 0;
	}
	size_t o = 0;
	if (neg) {
		out[o++] = '-';
	}
	while (d > 0) {
		out[o++] = tmp[--d];
	}
	out[o] = '\0';
	return len;
}

size_t lg__contract_int_text(char *out, size_t size, int64_t v)
{
	uint64_t n = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	return digits_text(out, size, n, v < 0);
}

static bool canon_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Decimal integer with optional blanks around and a sign, within [min, max]. */
static int canon_int(const char *in, int64_t min, int64_t max, char *out, size_t size)
{
	const char *p = in;
	while (canon_blank(*p)) {
		p++;
	}
	bool neg = *p == '-';
	p += *p == '-' || *p == '+';
	const char *digits = p;
	uint64_t n = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > ((uint64_t)INT64_MAX + 1 - (uint64_t)(*p - '0')) / 10) {
			return LG__CONTRACT_ASK_DB; /* out of range: the database says so */
		}
		n = n * 10 + (uint64_t)(*p - '0');
	}
	while (canon_blank(*p)) {
		p++;
	}
	if (p == digits || *p != '\0' || digits[0] < '0' || digits[0] > '9') {
		return LG__CONTRACT_ASK_DB;
	}
	if ((!neg && n > (uint64_t)max) || (neg && n > (uint64_t)(-(min + 1)) + 1)) {
		return LG__CONTRACT_ASK_DB;
	}
	return digits_text(out, size, n, neg && n != 0) != 0 ? 0 : LG_ERANGE;
}

static int canon_hex(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 32 hex digits, alone or with hyphens after digits 8, 12, 16 and 20. */
static int canon_uuid(const char *in, char *out, size_t size)
{
	size_t len = strlen(in);
	bool hyphens = len == 36;
	if ((len != 32 && !hyphens) || size < 37) {
		return size < 37 && (len == 32 || hyphens) ? LG_ERANGE : LG__CONTRACT_ASK_DB;
	}
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		bool dash_here = hyphens && (i == 8 || i == 13 || i == 18 || i == 23);
		if (dash_here != (in[i] == '-') || (!dash_here && canon_hex(in[i]) < 0)) {
			return LG__CONTRACT_ASK_DB;
		}
		if (!hyphens && (i == 8 || i == 12 || i == 16 || i == 20)) {
			out[o++] = '-';
		}
		out[o++] = dash_here ? '-' : "0123456789abcdef"[canon_hex(in[i])];
	}
	out[o] = '\0';
	return 0;
}

static int canon_bool(const char *in, char *out, size_t size)
{
	static const char *const yes[] = {"t", "true", "y", "yes", "on", "1"};
	static const char *const no[] = {"f", "false", "n", "no", "off", "0"};
	if (size < 2) {
		return LG_ERANGE;
	}
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(in, yes[i]) == 0 || strcasecmp(in, no[i]) == 0) {
			out[0] = strcasecmp(in, yes[i]) == 0 ? 't' : 'f';
			out[1] = '\0';
			return 0;
		}
	}
	return LG__CONTRACT_ASK_DB;
}

int lg__contract_canon(enum lg__contract_kind kind, const char *in, char *out, size_t size)
{
	switch (kind) {
	case LG__KEY_INT2:
		return canon_int(in, INT16_MIN, INT16_MAX, out, size);
	case LG__KEY_INT4:
		return canon_int(in, INT32_MIN, INT32_MAX, out, size);
	case LG__KEY_INT8:
		return canon_int(in, INT64_MIN, INT64_MAX, out, size);
	case LG__KEY_UUID:
		return canon_uuid(in, out, size);
	case LG__KEY_BOOL:
		return canon_bool(in, out, size);
	case LG__KEY_TEXT: {
		size_t len = strlen(in);
		if (len >= size) {
			return LG_ERANGE;
		}
		memcpy(out, in, len + 1);
		return 0;
	}
	case LG__KEY_DB:
		break;
	}
	return LG__CONTRACT_ASK_DB;
}
