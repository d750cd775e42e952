/*
 * Pure codecs for PostgreSQL wire values: the row decoder and the parameter builder use them
 * to turn what the server sends into C values and back.
 *
 * Nothing here includes libpq or libuv, so every function is tested with plain byte strings.
 * Text inputs are (pointer, length) pairs that need not be NUL-terminated, because callers
 * hand in slices of larger buffers as well as PQgetvalue() strings.
 *
 * The text parsers accept what the server prints (PostgreSQL 15 documentation, chapter 8,
 * per type "Output" paragraphs) with DateStyle ISO, and reject anything else with LG_EINVAL: a
 * surprise in a server value means a misconfigured session, and failing loudly beats silently
 * misreading a timestamp. Well-formed values that do not fit the C type give LG_ERANGE. On any
 * error the output arguments are left untouched. bytea text is not decoded here: pg_result.c hands
 * it to libpq's PQunescapeBytea().
 */
#ifndef LG_PG_TYPES_H
#define LG_PG_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Timestamps are int64 microseconds since 1970-01-01 00:00:00 UTC; these two values stand
 * for PostgreSQL's 'infinity' and '-infinity'. */
#define LG__PG_TS_INFINITY     INT64_MAX
#define LG__PG_TS_NEG_INFINITY INT64_MIN

/* Parses the text form of int2, int4 or int8: an optional sign and one or more decimal
 * digits, nothing else (no blanks, no underscores). Covers INT64_MIN. s is Borrowed. */
int lg__pg_parse_int64(const char *s, size_t len, int64_t *out);

/* Parses the text form of float4 or float8: a decimal number with optional exponent, or
 * NaN, Infinity, -Infinity (case-insensitive). Independent of the process locale. Overflow
 * and underflow to zero give LG_ERANGE, as in the server's float8in(); subnormals parse.
 * Inputs longer than 127 bytes give LG_EINVAL (the server never prints more than ~25).
 * float4 text yields the double nearest the printed decimal ("0.1" gives 0.1, not the
 * float4 0.1f widened), which is the value a user sees in psql. */
int lg__pg_parse_double(const char *s, size_t len, double *out);

/* Parses the text form of boolean: exactly "t" or "f". */
int lg__pg_parse_bool(const char *s, size_t len, bool *out);

/*
 * Parses the ISO DateStyle text of timestamptz: "YYYY-MM-DD HH:MM:SS[.f{1,6}]+HH[:MM[:SS]]"
 * with an optional " BC" suffix, years of four or more digits, and "infinity"/"-infinity"
 * (mapped to the LG__PG_TS_* sentinels). A 'T' is accepted in place of the blank. Year N BC
 * is astronomical year 1-N; calendar arithmetic is proleptic Gregorian and never consults
 * the process time zone. Finite instants outside the int64 microsecond range, or landing on
 * a sentinel value, give LG_ERANGE (this cuts off the server's last 30 years, 294247-294276).
 */
int lg__pg_parse_timestamptz(const char *s, size_t len, int64_t *us_since_unix_epoch);

/* Convert between the binary wire format (µs since 2000-01-01, the server's
 * timestamptz_send) and µs since 1970-01-01. Sentinels pass unchanged; finite values that
 * would overflow saturate to the largest or smallest finite value. */
int64_t lg__pg_timestamptz_from_binary(int64_t pg_us);
int64_t lg__pg_timestamptz_to_binary(int64_t unix_us);

/* Parses a uuid: canonical 8-4-4-4-12 hex digits or 32 hex digits without dashes, either
 * case. */
int lg__pg_parse_uuid(const char *s, size_t len, uint8_t out[16]);

/* Writes in as the lowercase canonical form, NUL-terminated. */
void lg__pg_format_uuid(const uint8_t in[16], char out[37]);

/* Reads a big-endian two's complement int2, int4 or int8 (len 2, 4 or 8, else LG_EINVAL),
 * sign-extended. p is Borrowed. */
int lg__pg_binary_int(const char *p, size_t len, int64_t *out);

/* Reads a big-endian IEEE 754 float4 or float8 (len 4 or 8, else LG_EINVAL). */
int lg__pg_binary_float(const char *p, size_t len, double *out);

/* Write v big-endian, the byte order of every binary parameter. */
void lg__pg_put_be64(uint8_t out[8], uint64_t v);
void lg__pg_put_be32(uint8_t out[4], uint32_t v);
void lg__pg_put_be16(uint8_t out[2], uint16_t v);

/* ---- date, time, timestamp, interval (pg_types_time.c) ---------------------------------- */

/* Dates are int32 days since 1970-01-01; INT32_MAX / INT32_MIN stand for 'infinity' and
 * '-infinity'. The server's finite range, in those days, is [LG__PG_DATE_MIN, LG__PG_DATE_END)
 * (4714-11-24 BC to 5874897-12-31). */
#define LG__PG_DATE_INFINITY     INT32_MAX
#define LG__PG_DATE_NEG_INFINITY INT32_MIN
#define LG__PG_DATE_MIN          INT32_C(-2440588)
#define LG__PG_DATE_END          INT32_C(2145042906)
/* The first finite timestamp (4714-11-24 00:00 BC) in µs since 1970-01-01. */
#define LG__PG_TS_MIN INT64_C(-210866803200000000)
/* The largest time of day (24:00:00) in µs. */
#define LG__PG_TIME_MAX INT64_C(86400000000)

/* Parses "YYYY-MM-DD" with an optional " BC", or infinity / -infinity. A date outside the
 * server's range gives LG_ERANGE. */
int lg__pg_parse_date(const char *s, size_t len, int32_t *days_since_unix_epoch);
/* Parses "HH:MM:SS[.f{1,6}]" (time without time zone), 00:00:00 to 24:00:00. */
int lg__pg_parse_time(const char *s, size_t len, int64_t *us_since_midnight);
/* Parses the ISO text of timestamp without time zone: "YYYY-MM-DD HH:MM:SS[.f{1,6}]" with an
 * optional " BC", or infinity / -infinity (LG__PG_TS_* sentinels). */
int lg__pg_parse_timestamp(const char *s, size_t len, int64_t *us_since_unix_epoch);
/* Parses the interval text of IntervalStyle postgres (the default): "[N year[s]] [N mon[s]]
 * [N day[s]] [[+-]H:MM:SS[.f{1,6}]]", each part signed on its own, e.g.
 * "-1 years +2 mons -3 days +04:05:06.5" or "00:00:00". Other styles give LG_EINVAL, parts
 * that overflow their field LG_ERANGE. */
int lg__pg_parse_interval(const char *s, size_t len, int32_t *months, int32_t *days, int64_t *us);

/* Binary date (days since 2000-01-01) to and from days since 1970-01-01. The sentinels pass
 * unchanged. to_binary returns false for a finite date outside the server's range. */
int32_t lg__pg_date_from_binary(int32_t pg_days);
bool lg__pg_date_to_binary(int32_t unix_days, int32_t *pg_days);

/* ---- numeric, inet, arrays (pg_types_misc.c) ------------------------------------------ */

/* True if s is numeric text the server reads exactly as written: [+-]digits[.digits]
 * [e[+-]digits] (digits on at least one side of the point), or NaN, Infinity, -Infinity in
 * any case. No blanks. */
bool lg__pg_numeric_valid(const char *s, size_t len);

/* Parses inet or cidr text: an IPv4 or IPv6 address with an optional "/bits". family gets 4 or
 * 6, bits the netmask length (32 or 128 without "/"), addr the address (v4 in addr[0..3],
 * the rest zero). */
int lg__pg_parse_inet(const char *s, size_t len, uint8_t *family, uint8_t *bits, uint8_t addr[16]);

/*
 * Splits the text of a one-dimensional array ("{a,\"b c\",NULL}") into its elements: fn is
 * called for each with the element's text, unquoted and unescaped into buf (the caller's,
 * at least len + 1 bytes, NUL-terminated per element), or with NULL for an SQL NULL. A
 * multidimensional array, explicit bounds ("[0:1]={...}") or malformed text give LG_EINVAL;
 * a non-zero return of fn stops the split and is returned.
 */
int lg__pg_array_split(const char *s, size_t len, char *buf,
		       int (*fn)(void *ud, const char *elem, size_t elen), void *ud);

/* ---- Shared by the codec files ------------------------------------------------------------ */

/* A read position in a text value. */
struct lg__pg_scan {
	const char *s;
	size_t len;
	size_t pos;
};

bool lg__pg_is_digit(char c);
/* Compares s[0..len) with the lowercase ASCII word, ignoring ASCII case. */
bool lg__pg_equal_nocase(const char *s, size_t len, const char *word);
size_t lg__pg_skip_digits(const char *s, size_t len, size_t i);
/* [+-](digits[.digits*] | .digits)([eE][+-]digits) */
bool lg__pg_is_decimal(const char *s, size_t len);
/* Days since 1970-01-01 of a proleptic Gregorian date (astronomical year y). */
int64_t lg__pg_days_from_civil(int64_t y, unsigned m, unsigned d);
bool lg__pg_scan_char(struct lg__pg_scan *sc, char c);
/* Reads between min and max decimal digits; *ndigits (may be NULL) gets the count. */
bool lg__pg_scan_num(struct lg__pg_scan *sc, size_t min, size_t max, int64_t *v, size_t *ndigits);
/* Reads "[.f{1,6}]" as microseconds. */
bool lg__pg_scan_fraction(struct lg__pg_scan *sc, int64_t *us);
/* Reads "YYYY-MM-DD" with an optional " BC" era looked up at the end of the text (which it
 * then cuts off), and checks the day against the month; y gets the astronomical year. */
bool lg__pg_scan_date(struct lg__pg_scan *sc, int64_t *y, int64_t *mo, int64_t *d);
/* Whole seconds and a fraction in [0, 1 s) as microseconds, or false on overflow. */
bool lg__pg_secs_to_us(int64_t secs, int64_t frac, int64_t *us);

#endif
