/*
 * Unit tests for the timestamptz codecs in pg_types.c.
 *
 * Expected values come from two places independent of the code under test: vectors printed
 * by a real PostgreSQL 15 server with their exact epoch microseconds, and glibc's gmtime_r()
 * as a calendar oracle over the whole int64 microsecond range. Random cases use a fixed-seed
 * generator, so a failure reproduces.
 */
#include "pg_types.h"

#include "libguard/error.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define US_PER_SEC INT64_C(1000000)

/* splitmix64: small, full-period, good enough to spread test inputs. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static int64_t rng_range(uint64_t *state, int64_t lo, int64_t hi)
{
	uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
	uint64_t r = span == 0 ? rng_next(state) : rng_next(state) % span;
	return (int64_t)((uint64_t)lo + r);
}

/* snprintf that fails the test instead of truncating; returns the length written. */
__attribute__((format(printf, 3, 4))) static size_t fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < cap, "buffer too small for %s", f);
	return (size_t)n;
}

static int parse_ts(const char *s, int64_t *out)
{
	return lg__pg_parse_timestamptz(s, strlen(s), out);
}

/* Splits us into whole seconds and a non-negative microsecond remainder. */
static void split_us(int64_t us, int64_t *secs, int64_t *frac)
{
	*secs = us / US_PER_SEC;
	*frac = us % US_PER_SEC;
	if (*frac < 0) {
		*frac += US_PER_SEC;
		*secs -= 1;
	}
}

/* Writes "YYYY-MM-DD HH:MM:SS" of us in UTC using glibc's calendar, the oracle the codec
 * is checked against; returns the astronomical year. */
static long long oracle_datetime(int64_t us, char *buf, size_t cap)
{
	int64_t secs, frac;
	split_us(us, &secs, &frac);
	time_t t = (time_t)secs;
	struct tm tm;
	cr_assert(gmtime_r(&t, &tm) != NULL);
	long long year = (long long)tm.tm_year + 1900;
	fmt(buf, cap, "%04lld-%02d-%02d %02d:%02d:%02d", year > 0 ? year : 1 - year, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return year;
}

static void oracle_format(int64_t us, char *buf, size_t cap)
{
	char dt[64];
	int64_t secs, frac;
	split_us(us, &secs, &frac);
	long long year = oracle_datetime(us, dt, sizeof(dt));
	fmt(buf, cap, "%s.%06lld+00%s", dt, (long long)frac, year > 0 ? "" : " BC");
}

Test(pg_timestamptz, parses_vectors_printed_by_the_server)
{
	static const struct {
		const char *text;
		int64_t us;
	} cases[] = {
	    {"2024-03-10 08:00:00.123456+05:30", INT64_C(1710037800123456)},
	    {"2024-03-10T02:30:00.123456+00", INT64_C(1710037800123456)},
	    {"2024-01-01 14:00:00+14", INT64_C(1704067200000000)},
	    {"1899-12-31 20:15:09-03:44:51", INT64_C(-2208988800000000)},
	    {"0001-01-01 00:00:00+00", INT64_C(-62135596800000000)},
	    {"0001-12-31 23:59:59.999999+00 BC", INT64_C(-62135596800000001)},
	    {"0044-03-15 12:00:00+00 BC", INT64_C(-63517780800000000)},
	    {"4713-11-24 00:00:00+00 BC", INT64_C(-210835180800000000)},
	    {"10000-01-01 00:00:00+00", INT64_C(253402300800000000)},
	    {"294246-12-31 23:59:59.999999+00", INT64_C(9223371244799999999)},
	    {"1582-10-10 00:00:00+00", INT64_C(-12219724800000000)},
	    {"2000-02-29 12:00:00.5-12", INT64_C(951868800500000)},
	    {"1900-03-01 00:00:00+00", INT64_C(-2203891200000000)},
	    {"1969-12-31 23:59:59.999999+00", -1},
	    {"1970-01-01 00:00:00.000001+00", 1},
	    {"1969-12-31 23:59:59.5+00", -500000},
	    {"1970-01-01 00:00:00.05+00", 50000},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = 0;
		cr_expect_eq(parse_ts(cases[i].text, &v), 0, "%s", cases[i].text);
		cr_expect_eq(v, cases[i].us, "%s gave %" PRId64, cases[i].text, v);
	}
}

Test(pg_timestamptz, offsets_around_dst_transitions)
{
	int64_t a, b;
	/* New York springs forward at 2024-03-10 07:00 UTC: 01:59:59 EST is one second before
	 * 03:00:00 EDT, although the wall clocks are an hour apart. */
	cr_assert(parse_ts("2024-03-10 03:00:00-04", &a) == 0);
	cr_assert(parse_ts("2024-03-10 01:59:59-05", &b) == 0);
	cr_expect_eq(a - b, US_PER_SEC);
	/* The wall-clock hour that never happened still names an instant once offset. */
	cr_assert(parse_ts("2024-03-10 02:30:00-05", &a) == 0);
	cr_assert(parse_ts("2024-03-10 03:30:00-04", &b) == 0);
	cr_expect_eq(a, b);
	/* Falling back, 01:30 happens twice: the offsets tell the two apart. */
	cr_assert(parse_ts("2024-11-03 01:30:00-04", &a) == 0);
	cr_assert(parse_ts("2024-11-03 01:30:00-05", &b) == 0);
	cr_expect_eq(b - a, 3600 * US_PER_SEC);
	/* An offset can move the instant across a day, month and year boundary. */
	cr_assert(parse_ts("2024-01-01 00:00:00+15:59:59", &a) == 0);
	cr_assert(parse_ts("2023-12-31 08:00:01+00", &b) == 0);
	cr_expect_eq(a, b);
}

Test(pg_timestamptz, leap_years_in_both_eras)
{
	static const char *valid[] = {"2024-02-29 00:00:00+00",    "2000-02-29 00:00:00+00",
				      "0001-02-29 00:00:00+00 BC", "0005-02-29 00:00:00+00 BC",
				      "0401-02-29 00:00:00+00 BC", "10000-02-29 00:00:00+00"};
	static const char *invalid[] = {"2023-02-29 00:00:00+00",    "1900-02-29 00:00:00+00",
					"0002-02-29 00:00:00+00 BC", "0101-02-29 00:00:00+00 BC",
					"2024-04-31 00:00:00+00",    "2024-02-30 00:00:00+00"};
	int64_t v = 5;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		cr_expect_eq(parse_ts(valid[i], &v), 0, "%s", valid[i]);
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		cr_expect_eq(parse_ts(invalid[i], &v), LG_EINVAL, "%s", invalid[i]);
	}
	int64_t feb29, mar1;
	cr_assert(parse_ts("0001-02-29 00:00:00+00 BC", &feb29) == 0);
	cr_assert(parse_ts("0001-03-01 00:00:00+00 BC", &mar1) == 0);
	cr_expect_eq(mar1 - feb29, 86400 * US_PER_SEC, "1 BC is a leap year");
}

Test(pg_timestamptz, rejects_malformed_text)
{
	static const char *bad[] = {
	    "",
	    "2024-03-10",
	    "2024-03-10 02:30:00",
	    "2024-03-10 02:30:00Z",
	    "2024-03-10 02:30:00+0530",
	    "2024-03-10 02:30:00+5",
	    "2024-03-10 02:30:00+05:3",
	    "2024-03-10 02:30:00+16",
	    "2024-03-10 02:30:00+05:60",
	    "2024-03-10 02:30:00+05:30:60",
	    "2024-03-10 02:30:00+05:30:00:00",
	    "2024-03-10 02:30:00.+00",
	    "2024-03-10 02:30:00.1234567+00",
	    "2024-03-10 24:00:00+00",
	    "2024-03-10 23:60:00+00",
	    "2024-03-10 23:59:60+00",
	    "2024-13-01 00:00:00+00",
	    "2024-00-01 00:00:00+00",
	    "2024-01-00 00:00:00+00",
	    "2024-01-32 00:00:00+00",
	    "024-03-10 00:00:00+00",
	    "0000-01-01 00:00:00+00",
	    "0000-01-01 00:00:00+00 BC",
	    "2024-3-10 00:00:00+00",
	    "2024-03-10  00:00:00+00",
	    "2024-03-10 00:00:00+00 bc",
	    "2024-03-10 00:00:00+00BC",
	    "2024-03-10 00:00:00+00 AD",
	    "2024-03-10 00:00:00+00 ",
	    " 2024-03-10 00:00:00+00",
	    "1234567890-01-01 00:00:00+00",
	    "2024-03-10 00:00+00",
	    "infinityx",
	    "infinit",
	    "+2024-03-10 00:00:00+00",
	    "2024-03-10 00:00:00 +00",
	    "-2024-03-10 00:00:00+00",
	    "2024-03-10 00:00:00+00 BC BC",
	    "2024-03-10 00:00:00+-1",
	    "2024-03-10 00:00:00.1.2+00",
	    "2024-03-10 0:00:00+00",
	    "2024/03/10 00:00:00+00",
	    " BC",
	    "2024-03-10 00:00:00-00:",
	    "2024-03-10 00:00:00+00_BC",
	    "2024-03-10 00:00:00+00  BC",
	};
	int64_t v = 99;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(parse_ts(bad[i], &v), LG_EINVAL, "'%s'", bad[i]);
	}
	cr_expect_eq(v, 99, "untouched on error");
	cr_expect_eq(lg__pg_parse_timestamptz("2024-03-10 00:00:00+00 BC", 22, &v), 0, "slice");
	cr_expect_eq(v, INT64_C(1710028800000000));
}

Test(pg_timestamptz, infinities_and_int64_limits)
{
	int64_t v = 0;
	char text[64];
	cr_expect(parse_ts("infinity", &v) == 0 && v == INT64_MAX);
	cr_expect(parse_ts("-infinity", &v) == 0 && v == INT64_MIN);
	cr_expect(parse_ts("Infinity", &v) == 0 && v == INT64_MAX);
	/* The instants that would collide with the sentinels, and beyond, do not fit. */
	oracle_format(INT64_MAX, text, sizeof(text));
	cr_expect_str_eq(text, "294247-01-10 04:00:54.775807+00");
	cr_expect_eq(parse_ts(text, &v), LG_ERANGE, "%s", text);
	cr_expect(parse_ts("294247-01-10 04:00:54.775806+00", &v) == 0 && v == INT64_MAX - 1);
	cr_expect(parse_ts("294247-01-10 04:00:55+00:00:01", &v) == 0 && v == INT64_MAX - 775807);
	cr_expect_eq(parse_ts("294247-01-10 04:00:54-00:00:01", &v), LG_ERANGE);
	cr_expect_eq(parse_ts("294276-12-31 23:59:59.999999+00", &v), LG_ERANGE);
	cr_expect_eq(parse_ts("999999999-12-31 23:59:59+00", &v), LG_ERANGE);
	cr_expect_eq(parse_ts("999999999-12-31 23:59:59+00 BC", &v), LG_ERANGE);
	oracle_format(INT64_MIN, text, sizeof(text));
	cr_expect_eq(parse_ts(text, &v), LG_ERANGE, "%s", text);
	oracle_format(INT64_MIN + 1, text, sizeof(text));
	cr_expect(parse_ts(text, &v) == 0 && v == INT64_MIN + 1, "%s", text);
}

Test(pg_timestamptz, parses_known_instants_in_the_oracle_form)
{
	/* The same instants as gmtime_r() prints them with a six-digit fraction: the first check
	 * pins the oracle the random test below relies on, the second parses its form. */
	static const struct {
		int64_t us;
		const char *text;
	} cases[] = {
	    {0, "1970-01-01 00:00:00.000000+00"},
	    {-1, "1969-12-31 23:59:59.999999+00"},
	    {INT64_C(1710037800123456), "2024-03-10 02:30:00.123456+00"},
	    {INT64_C(-62135596800000001), "0001-12-31 23:59:59.999999+00 BC"},
	    {INT64_C(-63517780800000000), "0044-03-15 12:00:00.000000+00 BC"},
	    {INT64_C(253402300800000000), "10000-01-01 00:00:00.000000+00"},
	    {INT64_MAX - 1, "294247-01-10 04:00:54.775806+00"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[64];
		int64_t v = 0;
		oracle_format(cases[i].us, text, sizeof(text));
		cr_expect_str_eq(text, cases[i].text);
		cr_expect_eq(parse_ts(cases[i].text, &v), 0, "%s", cases[i].text);
		cr_expect_eq(v, cases[i].us, "%s gave %" PRId64, cases[i].text, v);
	}
}

Test(pg_timestamptz, parses_what_gmtime_formats)
{
	uint64_t seed = 3;
	for (int i = 0; i < 40000; i++) {
		/* Half the cases span the whole int64 range, half the years 1800-2200. */
		int64_t us =
		    i % 2 ? (int64_t)rng_next(&seed)
			  : rng_range(&seed, INT64_C(-5364662400000000), INT64_C(7258118400000000));
		if (us == INT64_MAX || us == INT64_MIN) {
			continue;
		}
		char text[64];
		int64_t back = 0;
		oracle_format(us, text, sizeof(text));
		cr_assert_eq(parse_ts(text, &back), 0, "%s", text);
		cr_assert_eq(back, us, "%s", text);
	}
}

/* Appends the server's trimmed fraction (".5", nothing for zero) to buf. */
static void append_server_fraction(char *buf, size_t cap, int64_t frac)
{
	if (frac == 0) {
		return;
	}
	char digits[8];
	fmt(digits, sizeof(digits), "%06lld", (long long)frac);
	for (size_t n = 6; digits[n - 1] == '0'; n--) {
		digits[n - 1] = '\0';
	}
	size_t len = strlen(buf);
	fmt(buf + len, cap - len, ".%s", digits);
}

Test(pg_timestamptz, parses_local_times_with_random_offsets)
{
	uint64_t seed = 4;
	for (int i = 0; i < 40000; i++) {
		int64_t us =
		    rng_range(&seed, INT64_C(-200000000000000000), INT64_C(200000000000000000));
		int64_t off_h = rng_range(&seed, 0, 15), off_m = 0, off_s = 0;
		int form = (int)rng_range(&seed, 0, 2);
		off_m = form > 0 ? rng_range(&seed, 0, 59) : 0;
		off_s = form > 1 ? rng_range(&seed, 0, 59) : 0;
		int64_t sign = rng_range(&seed, 0, 1) ? 1 : -1;
		int64_t off = sign * ((off_h * 60 + off_m) * 60 + off_s);
		char text[96];
		int64_t secs, frac, got = 0;
		split_us(us, &secs, &frac);
		long long year = oracle_datetime(us + off * US_PER_SEC, text, sizeof(text));
		append_server_fraction(text, sizeof(text), frac);
		size_t len = strlen(text);
		len += fmt(text + len, sizeof(text) - len, "%c%02lld", sign > 0 ? '+' : '-',
			   (long long)off_h);
		if (form > 0) {
			len += fmt(text + len, sizeof(text) - len, ":%02lld", (long long)off_m);
		}
		if (form > 1) {
			len += fmt(text + len, sizeof(text) - len, ":%02lld", (long long)off_s);
		}
		fmt(text + len, sizeof(text) - len, "%s", year > 0 ? "" : " BC");
		cr_assert_eq(parse_ts(text, &got), 0, "%s", text);
		cr_assert_eq(got, us, "%s: got %" PRId64 " want %" PRId64, text, got, us);
	}
}

Test(pg_timestamptz, binary_epoch_shift)
{
	const int64_t shift = INT64_C(946684800000000);
	cr_expect_eq(lg__pg_timestamptz_from_binary(0), shift);
	cr_expect_eq(lg__pg_timestamptz_to_binary(shift), 0);
	cr_expect_eq(lg__pg_timestamptz_to_binary(0), -shift);
	cr_expect_eq(lg__pg_timestamptz_to_binary(INT64_C(1710037800123456)),
		     INT64_C(763353000123456));
	cr_expect_eq(lg__pg_timestamptz_from_binary(INT64_MAX), INT64_MAX);
	cr_expect_eq(lg__pg_timestamptz_from_binary(INT64_MIN), INT64_MIN);
	cr_expect_eq(lg__pg_timestamptz_to_binary(INT64_MAX), INT64_MAX);
	cr_expect_eq(lg__pg_timestamptz_to_binary(INT64_MIN), INT64_MIN);
	/* Saturation keeps finite values finite. */
	cr_expect_eq(lg__pg_timestamptz_from_binary(INT64_MAX - 1), INT64_MAX - 1);
	cr_expect_eq(lg__pg_timestamptz_from_binary(INT64_MAX - shift - 1), INT64_MAX - 1);
	cr_expect_eq(lg__pg_timestamptz_from_binary(INT64_MAX - shift - 2), INT64_MAX - 2);
	cr_expect_eq(lg__pg_timestamptz_from_binary(INT64_MAX - shift), INT64_MAX - 1);
	cr_expect_eq(lg__pg_timestamptz_to_binary(INT64_MIN + 1), INT64_MIN + 1);
	cr_expect_eq(lg__pg_timestamptz_to_binary(INT64_MIN + shift), INT64_MIN + 1);
	cr_expect_eq(lg__pg_timestamptz_to_binary(INT64_MIN + shift + 2), INT64_MIN + 2);
	uint64_t seed = 5;
	for (int i = 0; i < 10000; i++) {
		int64_t pg = rng_range(&seed, INT64_MIN + 1, INT64_MAX - shift - 1);
		cr_assert_eq(lg__pg_timestamptz_to_binary(lg__pg_timestamptz_from_binary(pg)), pg);
	}
}
