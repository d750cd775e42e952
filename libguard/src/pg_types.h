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

#endif
