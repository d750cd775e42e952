/*
 * PostgreSQL value codecs: strict text parsers, text formatters and big-endian binary access
 * (byte order through glibc's <endian.h>).
 *
 * Every parser validates its whole input before it writes an output argument, so a caller
 * never sees a half-decoded value. Character classes are spelled out instead of taken from
 * <ctype.h>, and floats go through strtod_l() with a private "C" locale, because an
 * application calling setlocale() must not change how server values are read. Calendar
 * arithmetic uses Howard Hinnant's days-from-civil algorithm (proleptic Gregorian,
 * astronomical years) on int64, so it covers the whole timestamp range without mktime(),
 * timegm() or the TZ environment.
 */
#include "pg_types.h"

#include "libguard/error.h"

#include <endian.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_SEC INT64_C(1000000)
/* 2000-01-01 minus 1970-01-01 in microseconds: the binary timestamp epoch shift. */
#define PG_EPOCH_SHIFT_US INT64_C(946684800000000)

bool lg__pg_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int pg_hex_value(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* Compares s[0..len) with the lowercase ASCII word, ignoring ASCII case. */
bool lg__pg_equal_nocase(const char *s, size_t len, const char *word)
{
	if (len != strlen(word)) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
		if (c != word[i]) {
			return false;
		}
	}
	return true;
}

int lg__pg_parse_int64(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (len > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == len) {
		return LG_EINVAL;
	}
	/* The magnitude accumulates unsigned: INT64_MIN's magnitude has no positive int64. */
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t mag = 0;
	int rc = 0;
	for (; i < len; i++) {
		if (!lg__pg_is_digit(s[i])) {
			return LG_EINVAL; /* Junk outranks overflow: the value is not a number. */
		}
		unsigned d = (unsigned)(s[i] - '0');
		if (mag > (limit - d) / 10) {
			rc = LG_ERANGE;
		} else {
			mag = mag * 10 + d;
		}
	}
	if (rc != 0) {
		return rc;
	}
	if (neg) {
		*out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	} else {
		*out = (int64_t)mag;
	}
	return 0;
}

/* Returns a process-wide "C" numeric locale, created once; concurrent first callers race
 * benignly and the loser frees its copy. */
static locale_t pg_c_locale(void)
{
	static _Atomic(locale_t) cached;
	locale_t loc = atomic_load_explicit(&cached, memory_order_acquire);
	if (loc != (locale_t)0) {
		return loc;
	}
	loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (loc == (locale_t)0) {
		return loc;
	}
	locale_t expected = (locale_t)0;
	if (!atomic_compare_exchange_strong(&cached, &expected, loc)) {
		freelocale(loc);
		loc = expected;
	}
	return loc;
}

size_t lg__pg_skip_digits(const char *s, size_t len, size_t i)
{
	while (i < len && lg__pg_is_digit(s[i])) {
		i++;
	}
	return i;
}

/* True if s is [+-](digits[.digits*] | .digits)([eE][+-]digits), which is what strtod()
 * must see: it would otherwise also take hex floats, "inf", "nan(...)" and leading blanks. */
bool lg__pg_is_decimal(const char *s, size_t len)
{
	size_t i = len > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
	size_t int_end = lg__pg_skip_digits(s, len, i);
	size_t digits = int_end - i;
	i = int_end;
	if (i < len && s[i] == '.') {
		size_t frac_end = lg__pg_skip_digits(s, len, i + 1);
		digits += frac_end - (i + 1);
		i = frac_end;
	}
	if (digits == 0) {
		return false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '-' || s[i] == '+')) {
			i++;
		}
		size_t exp_end = lg__pg_skip_digits(s, len, i);
		if (exp_end == i) {
			return false;
		}
		i = exp_end;
	}
	return i == len;
}

int lg__pg_parse_double(const char *s, size_t len, double *out)
{
	if (lg__pg_equal_nocase(s, len, "nan")) {
		*out = NAN;
		return 0;
	}
	if (lg__pg_equal_nocase(s, len, "infinity") || lg__pg_equal_nocase(s, len, "+infinity")) {
		*out = INFINITY;
		return 0;
	}
	if (lg__pg_equal_nocase(s, len, "-infinity")) {
		*out = -INFINITY;
		return 0;
	}
	char buf[128];
	if (len >= sizeof(buf) || !lg__pg_is_decimal(s, len)) {
		return LG_EINVAL;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	locale_t loc = pg_c_locale();
	if (loc == (locale_t)0) {
		return LG_ENOMEM;
	}
	errno = 0;
	double v = strtod_l(buf, NULL, loc);
	/* Same rule as float8in(): ERANGE with a subnormal result is fine, with 0 or ±HUGE_VAL
	 * the text named a value double cannot hold. */
	if (errno == ERANGE && (v == 0.0 || isinf(v))) {
		return LG_ERANGE;
	}
	*out = v;
	return 0;
}

int lg__pg_parse_bool(const char *s, size_t len, bool *out)
{
	if (len != 1 || (s[0] != 't' && s[0] != 'f')) {
		return LG_EINVAL;
	}
	*out = s[0] == 't';
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant, "chrono-Compatible Low-Level
 * Date Algorithms", days_from_civil). y is astronomical, m 1-12, d 1-31. */
int64_t lg__pg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned pg_days_in_month(int64_t y, unsigned m)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
	return m == 2 && leap ? 29 : days[m - 1];
}

bool lg__pg_scan_char(struct lg__pg_scan *sc, char c)
{
	if (sc->pos < sc->len && sc->s[sc->pos] == c) {
		sc->pos++;
		return true;
	}
	return false;
}

/* Reads between min and max decimal digits; *ndigits (may be NULL) gets the count. */
bool lg__pg_scan_num(struct lg__pg_scan *sc, size_t min, size_t max, int64_t *v, size_t *ndigits)
{
	size_t end = lg__pg_skip_digits(sc->s, sc->len, sc->pos);
	size_t n = end - sc->pos;
	if (n < min || n > max) {
		return false;
	}
	*v = 0;
	for (; sc->pos < end; sc->pos++) {
		*v = *v * 10 + (sc->s[sc->pos] - '0');
	}
	if (ndigits != NULL) {
		*ndigits = n;
	}
	return true;
}

/* Reads "[.f{1,6}]" as microseconds. */
bool lg__pg_scan_fraction(struct lg__pg_scan *sc, int64_t *us)
{
	size_t n = 0;
	*us = 0;
	if (!lg__pg_scan_char(sc, '.')) {
		return true;
	}
	if (!lg__pg_scan_num(sc, 1, 6, us, &n)) {
		return false;
	}
	for (; n < 6; n++) {
		*us *= 10;
	}
	return true;
}

/* Reads "+HH[:MM[:SS]]" as signed seconds east of UTC; the server caps offsets below 16 h. */
static bool pg_scan_offset(struct lg__pg_scan *sc, int64_t *secs)
{
	int64_t h, m = 0, s = 0;
	bool neg = lg__pg_scan_char(sc, '-');
	if (!neg && !lg__pg_scan_char(sc, '+')) {
		return false;
	}
	if (!lg__pg_scan_num(sc, 2, 2, &h, NULL) || h > 15) {
		return false;
	}
	if (lg__pg_scan_char(sc, ':') && (!lg__pg_scan_num(sc, 2, 2, &m, NULL) || m > 59)) {
		return false;
	}
	if (lg__pg_scan_char(sc, ':') && (!lg__pg_scan_num(sc, 2, 2, &s, NULL) || s > 59)) {
		return false;
	}
	*secs = (neg ? -1 : 1) * (h * 3600 + m * 60 + s);
	return true;
}

/* Reads "YYYY-MM-DD" with an optional " BC" era looked up at the end of the text, and
 * checks the day against the month; y gets the astronomical year. */
bool lg__pg_scan_date(struct lg__pg_scan *sc, int64_t *y, int64_t *mo, int64_t *d)
{
	if (!lg__pg_scan_num(sc, 4, 9, y, NULL) || !lg__pg_scan_char(sc, '-') ||
	    !lg__pg_scan_num(sc, 2, 2, mo, NULL) || !lg__pg_scan_char(sc, '-') ||
	    !lg__pg_scan_num(sc, 2, 2, d, NULL)) {
		return false;
	}
	/* "0000" is no year in either era: 1 BC directly precedes 1 AD. */
	if (*y == 0 || *mo < 1 || *mo > 12) {
		return false;
	}
	if (sc->len >= 3 && memcmp(sc->s + sc->len - 3, " BC", 3) == 0) {
		sc->len -= 3;
		*y = 1 - *y; /* N BC is astronomical year 1 - N. */
	}
	return *d >= 1 && *d <= pg_days_in_month(*y, (unsigned)*mo);
}

/* Reads "HH:MM:SS[.f{1,6}]+HH[:MM[:SS]]" as seconds since midnight UTC, which the offset may
 * push outside [0, one day), and a microsecond fraction. */
static bool pg_scan_time(struct lg__pg_scan *sc, int64_t *secs, int64_t *frac)
{
	int64_t h, mi, s, off;
	if (!lg__pg_scan_num(sc, 2, 2, &h, NULL) || !lg__pg_scan_char(sc, ':') ||
	    !lg__pg_scan_num(sc, 2, 2, &mi, NULL) || !lg__pg_scan_char(sc, ':') ||
	    !lg__pg_scan_num(sc, 2, 2, &s, NULL) || !lg__pg_scan_fraction(sc, frac) ||
	    !pg_scan_offset(sc, &off)) {
		return false;
	}
	/* The server never prints 24:00:00 or a leap second; it normalizes them on input. */
	if (h > 23 || mi > 59 || s > 59) {
		return false;
	}
	*secs = (h * 60 + mi) * 60 + s - off;
	return true;
}

/* Combines whole seconds and a fraction in [0, 1 s) into microseconds, or fails. */
bool lg__pg_secs_to_us(int64_t secs, int64_t frac, int64_t *us)
{
	/* Near INT64_MIN the whole second below an instant may not be representable in µs
	 * although the instant is: count from the second above instead. */
	if (secs < 0 && frac > 0) {
		secs += 1;
		frac -= US_PER_SEC;
	}
	return !__builtin_mul_overflow(secs, US_PER_SEC, us) &&
	       !__builtin_add_overflow(*us, frac, us);
}

int lg__pg_parse_timestamptz(const char *s, size_t len, int64_t *us_since_unix_epoch)
{
	if (lg__pg_equal_nocase(s, len, "infinity") || lg__pg_equal_nocase(s, len, "+infinity")) {
		*us_since_unix_epoch = LG__PG_TS_INFINITY;
		return 0;
	}
	if (lg__pg_equal_nocase(s, len, "-infinity")) {
		*us_since_unix_epoch = LG__PG_TS_NEG_INFINITY;
		return 0;
	}
	struct lg__pg_scan sc = {s, len, 0};
	int64_t y, mo, d, secs, frac, total;
	if (!lg__pg_scan_date(&sc, &y, &mo, &d) ||
	    !(lg__pg_scan_char(&sc, ' ') || lg__pg_scan_char(&sc, 'T')) ||
	    !pg_scan_time(&sc, &secs, &frac) || sc.pos != sc.len) {
		return LG_EINVAL;
	}
	/* Nine year digits keep days * 86400 far inside int64; only microseconds can overflow. */
	secs += lg__pg_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400;
	if (!lg__pg_secs_to_us(secs, frac, &total) || total == LG__PG_TS_INFINITY ||
	    total == LG__PG_TS_NEG_INFINITY) {
		return LG_ERANGE;
	}
	*us_since_unix_epoch = total;
	return 0;
}

int64_t lg__pg_timestamptz_from_binary(int64_t pg_us)
{
	if (pg_us == LG__PG_TS_INFINITY || pg_us == LG__PG_TS_NEG_INFINITY) {
		return pg_us;
	}
	if (pg_us > LG__PG_TS_INFINITY - 1 - PG_EPOCH_SHIFT_US) {
		return LG__PG_TS_INFINITY - 1;
	}
	return pg_us + PG_EPOCH_SHIFT_US;
}

int64_t lg__pg_timestamptz_to_binary(int64_t unix_us)
{
	if (unix_us == LG__PG_TS_INFINITY || unix_us == LG__PG_TS_NEG_INFINITY) {
		return unix_us;
	}
	if (unix_us < LG__PG_TS_NEG_INFINITY + 1 + PG_EPOCH_SHIFT_US) {
		return LG__PG_TS_NEG_INFINITY + 1;
	}
	return unix_us - PG_EPOCH_SHIFT_US;
}

int lg__pg_parse_uuid(const char *s, size_t len, uint8_t out[16])
{
	bool dashed = len == 36;
	if (!dashed && len != 32) {
		return LG_EINVAL;
	}
	uint8_t tmp[16] = {0};
	size_t nibble = 0;
	for (size_t i = 0; i < len; i++) {
		if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-') {
				return LG_EINVAL;
			}
			continue;
		}
		int v = pg_hex_value(s[i]);
		if (v < 0) {
			return LG_EINVAL;
		}
		tmp[nibble / 2] |= (uint8_t)(nibble % 2 == 0 ? v << 4 : v);
		nibble++;
	}
	memcpy(out, tmp, sizeof(tmp));
	return 0;
}

void lg__pg_format_uuid(const uint8_t in[16], char out[37])
{
	static const char digits[] = "0123456789abcdef";
	char *p = out;
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			*p++ = '-';
		}
		*p++ = digits[in[i] >> 4];
		*p++ = digits[in[i] & 0xf];
	}
	*p = '\0';
}

int lg__pg_binary_int(const char *p, size_t len, int64_t *out)
{
	/* memcpy copies from the possibly unaligned wire bytes and then reinterprets the bits;
	 * converting an out-of-range unsigned value to a signed type would be
	 * implementation-defined. */
	if (len == 2) {
		uint16_t u;
		int16_t v;
		memcpy(&u, p, sizeof(u));
		u = be16toh(u);
		memcpy(&v, &u, sizeof(v));
		*out = v;
	} else if (len == 4) {
		uint32_t u;
		int32_t v;
		memcpy(&u, p, sizeof(u));
		u = be32toh(u);
		memcpy(&v, &u, sizeof(v));
		*out = v;
	} else if (len == 8) {
		uint64_t u;
		memcpy(&u, p, sizeof(u));
		u = be64toh(u);
		memcpy(out, &u, sizeof(*out));
	} else {
		return LG_EINVAL;
	}
	return 0;
}

int lg__pg_binary_float(const char *p, size_t len, double *out)
{
	if (len == 4) {
		uint32_t u;
		float f;
		memcpy(&u, p, sizeof(u));
		u = be32toh(u);
		memcpy(&f, &u, sizeof(f));
		*out = f;
	} else if (len == 8) {
		uint64_t u;
		memcpy(&u, p, sizeof(u));
		u = be64toh(u);
		memcpy(out, &u, sizeof(*out));
	} else {
		return LG_EINVAL;
	}
	return 0;
}

void lg__pg_put_be64(uint8_t out[8], uint64_t v)
{
	v = htobe64(v);
	memcpy(out, &v, sizeof(v));
}

void lg__pg_put_be32(uint8_t out[4], uint32_t v)
{
	v = htobe32(v);
	memcpy(out, &v, sizeof(v));
}

void lg__pg_put_be16(uint8_t out[2], uint16_t v)
{
	v = htobe16(v);
	memcpy(out, &v, sizeof(v));
}
