/*
 * Codecs of date, time, timestamp (without time zone) and interval.
 *
 * The text parsers read what the server prints with DateStyle ISO and IntervalStyle postgres
 * (PostgreSQL 15 documentation, sections 8.5.2 and 8.5.5) and reject anything else with
 * LG_EINVAL, like the timestamptz parser in pg_types.c whose scanners they share. Values that
 * are well formed but do not fit give LG_ERANGE. Every parser checks its whole input before
 * it writes an output argument.
 *
 * Binary dates count days from 2000-01-01 (date_send); the C representation counts from
 * 1970-01-01 like the timestamps, 10,957 days earlier.
 */
#include "pg_types.h"

#include "libguard/error.h"

#include <limits.h>
#include <string.h>

#define US_PER_SEC INT64_C(1000000)
/* 2000-01-01 minus 1970-01-01 in days. */
#define PG_EPOCH_SHIFT_DAYS 10957

static int time_word(const char *s, size_t len, int64_t inf, int64_t *out)
{
	if (lg__pg_equal_nocase(s, len, "infinity") || lg__pg_equal_nocase(s, len, "+infinity")) {
		*out = inf;
		return 0;
	}
	if (lg__pg_equal_nocase(s, len, "-infinity")) {
		*out = -inf - 1;
		return 0;
	}
	return LG_EINVAL;
}

int lg__pg_parse_date(const char *s, size_t len, int32_t *days_since_unix_epoch)
{
	int64_t v;
	if (time_word(s, len, INT32_MAX, &v) == 0) {
		*days_since_unix_epoch = (int32_t)v;
		return 0;
	}
	struct lg__pg_scan sc = {s, len, 0};
	int64_t y, mo, d;
	if (!lg__pg_scan_date(&sc, &y, &mo, &d) || sc.pos != sc.len) {
		return LG_EINVAL;
	}
	v = lg__pg_days_from_civil(y, (unsigned)mo, (unsigned)d);
	if (v < LG__PG_DATE_MIN || v >= LG__PG_DATE_END) {
		return LG_ERANGE;
	}
	*days_since_unix_epoch = (int32_t)v;
	return 0;
}

/* Reads "HH:MM:SS[.f{1,6}]" as microseconds since midnight: 00:00:00 to 24:00:00. */
static bool scan_clock(struct lg__pg_scan *sc, int64_t *us)
{
	int64_t h, mi, s, frac;
	if (!lg__pg_scan_num(sc, 2, 2, &h, NULL) || !lg__pg_scan_char(sc, ':') ||
	    !lg__pg_scan_num(sc, 2, 2, &mi, NULL) || !lg__pg_scan_char(sc, ':') ||
	    !lg__pg_scan_num(sc, 2, 2, &s, NULL) || !lg__pg_scan_fraction(sc, &frac)) {
		return false;
	}
	if (h > 24 || mi > 59 || s > 59) {
		return false;
	}
	*us = ((h * 60 + mi) * 60 + s) * US_PER_SEC + frac;
	return *us <= LG__PG_TIME_MAX;
}

int lg__pg_parse_time(const char *s, size_t len, int64_t *us_since_midnight)
{
	struct lg__pg_scan sc = {s, len, 0};
	int64_t us;
	if (!scan_clock(&sc, &us) || sc.pos != sc.len) {
		return LG_EINVAL;
	}
	*us_since_midnight = us;
	return 0;
}

int lg__pg_parse_timestamp(const char *s, size_t len, int64_t *us_since_unix_epoch)
{
	if (time_word(s, len, INT64_MAX, us_since_unix_epoch) == 0) {
		return 0;
	}
	struct lg__pg_scan sc = {s, len, 0};
	int64_t y, mo, d, us, total;
	if (!lg__pg_scan_date(&sc, &y, &mo, &d) || !lg__pg_scan_char(&sc, ' ') ||
	    !scan_clock(&sc, &us) || us == LG__PG_TIME_MAX || sc.pos != sc.len) {
		return LG_EINVAL;
	}
	int64_t secs = lg__pg_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400;
	if (!lg__pg_secs_to_us(secs, 0, &total) || __builtin_add_overflow(total, us, &total) ||
	    total == LG__PG_TS_INFINITY || total < LG__PG_TS_MIN) {
		return LG_ERANGE;
	}
	*us_since_unix_epoch = total;
	return 0;
}

/* Reads an optional sign; true for minus. */
static bool scan_sign(struct lg__pg_scan *sc)
{
	if (lg__pg_scan_char(sc, '-')) {
		return true;
	}
	(void)lg__pg_scan_char(sc, '+');
	return false;
}

/* Reads a unit word after "N ": the singular or the plural form. */
static bool scan_unit(struct lg__pg_scan *sc, const char *unit)
{
	size_t n = strlen(unit);
	if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, unit, n) != 0) {
		return false;
	}
	sc->pos += n;
	(void)lg__pg_scan_char(sc, 's');
	return true;
}

/* Reads "[+-]H+:MM:SS[.f]" of an interval: hours may have many digits. */
static int scan_interval_clock(struct lg__pg_scan *sc, int64_t *us)
{
	bool neg = scan_sign(sc);
	int64_t h, mi, s, frac, v;
	if (!lg__pg_scan_num(sc, 1, 18, &h, NULL) || !lg__pg_scan_char(sc, ':') ||
	    !lg__pg_scan_num(sc, 2, 2, &mi, NULL) || !lg__pg_scan_char(sc, ':') ||
	    !lg__pg_scan_num(sc, 2, 2, &s, NULL) || !lg__pg_scan_fraction(sc, &frac) || mi > 59 ||
	    s > 59) {
		return LG_EINVAL;
	}
	/* INT64_MIN µs prints as -2562047788:00:54.775808: build the magnitude negated so that it
	 * fits. */
	if (__builtin_mul_overflow(h, -3600 * US_PER_SEC, &v) ||
	    __builtin_sub_overflow(v, (mi * 60 + s) * US_PER_SEC + frac, &v) ||
	    (!neg && v == INT64_MIN)) {
		return LG_ERANGE;
	}
	*us = neg ? v : -v;
	return 0;
}

/* Reads one "N unit" part into months or days. */
static int scan_interval_part(struct lg__pg_scan *sc, int64_t *months, int64_t *days)
{
	bool neg = scan_sign(sc);
	int64_t n;
	if (!lg__pg_scan_num(sc, 1, 10, &n, NULL) || !lg__pg_scan_char(sc, ' ')) {
		return LG_EINVAL;
	}
	n = neg ? -n : n;
	if (scan_unit(sc, "year")) {
		*months += n * 12;
	} else if (scan_unit(sc, "mon")) {
		*months += n;
	} else if (scan_unit(sc, "day")) {
		*days += n;
	} else {
		return LG_EINVAL;
	}
	return 0;
}

int lg__pg_parse_interval(const char *s, size_t len, int32_t *months, int32_t *days, int64_t *us)
{
	struct lg__pg_scan sc = {s, len, 0};
	int64_t mo = 0, d = 0, t = 0;
	int rc = 0;
	bool any = false;
	while (rc == 0 && sc.pos < sc.len) {
		if (any && !lg__pg_scan_char(&sc, ' ')) {
			return LG_EINVAL;
		}
		/* The clock part has a ':' after its hours; the others a blank after the number. */
		size_t digits = lg__pg_skip_digits(
		    sc.s, sc.len,
		    sc.pos + (sc.pos < sc.len && (sc.s[sc.pos] == '-' || sc.s[sc.pos] == '+')));
		if (digits < sc.len && sc.s[digits] == ':') {
			rc = scan_interval_clock(&sc, &t);
			if (rc == 0 && sc.pos != sc.len) {
				return LG_EINVAL;
			}
		} else {
			rc = scan_interval_part(&sc, &mo, &d);
		}
		any = true;
	}
	if (rc != 0) {
		return rc;
	}
	if (!any) {
		return LG_EINVAL;
	}
	if (mo < INT32_MIN || mo > INT32_MAX || d < INT32_MIN || d > INT32_MAX) {
		return LG_ERANGE;
	}
	*months = (int32_t)mo;
	*days = (int32_t)d;
	*us = t;
	return 0;
}

int32_t lg__pg_date_from_binary(int32_t pg_days)
{
	if (pg_days == INT32_MAX || pg_days == INT32_MIN) {
		return pg_days;
	}
	/* The server's dates end well below INT32_MAX - 10957; saturate anything beyond. */
	if (pg_days > INT32_MAX - 1 - PG_EPOCH_SHIFT_DAYS) {
		return INT32_MAX - 1;
	}
	return pg_days + PG_EPOCH_SHIFT_DAYS;
}

bool lg__pg_date_to_binary(int32_t unix_days, int32_t *pg_days)
{
	if (unix_days == INT32_MAX || unix_days == INT32_MIN) {
		*pg_days = unix_days;
		return true;
	}
	if (unix_days < LG__PG_DATE_MIN || unix_days >= LG__PG_DATE_END) {
		return false;
	}
	*pg_days = unix_days - PG_EPOCH_SHIFT_DAYS;
	return true;
}
