/*
 * Unit tests for the codecs of date, time, timestamp, interval (pg_types_time.c) and of
 * numeric, inet and array text (pg_types_misc.c). Accepted inputs are values a PostgreSQL 15
 * server printed; rejected ones are near misses a misconfigured session or a corrupt value
 * could produce. Every rejection must leave the output untouched.
 */
#include "pg_types.h"

#include "libguard/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static int date(const char *s, int32_t *out)
{
	return lg__pg_parse_date(s, strlen(s), out);
}

Test(pg_date, reads_what_the_server_prints)
{
	int32_t d = 0;
	cr_assert_eq(date("1970-01-01", &d), 0);
	cr_assert_eq(d, 0);
	cr_assert_eq(date("2000-01-01", &d), 0);
	cr_assert_eq(d, 10957);
	cr_assert_eq(date("1969-12-31", &d), 0);
	cr_assert_eq(d, -1);
	cr_assert_eq(date("2024-02-29", &d), 0);
	cr_assert_eq(date("0001-01-01 BC", &d), 0); /* astronomical year 0 */
	cr_assert_eq(d, -719528);
	cr_assert_eq(date("4714-11-24 BC", &d), 0); /* the server's first day */
	cr_assert_eq(d, LG__PG_DATE_MIN);
	cr_assert_eq(date("5874897-12-31", &d), 0); /* and its last */
	cr_assert_eq(d, LG__PG_DATE_END - 1);
	cr_assert_eq(date("infinity", &d), 0);
	cr_assert_eq(d, LG__PG_DATE_INFINITY);
	cr_assert_eq(date("-infinity", &d), 0);
	cr_assert_eq(d, LG__PG_DATE_NEG_INFINITY);
}

Test(pg_date, rejects_near_misses)
{
	const char *bad[] = {
	    "2000-1-01",     "2000-02-30",         "2023-02-29", "2000-01-01 ", " 2000-01-01",
	    "2000-01-01 AD", "0000-01-01",         "2000/01/01", "20000101",    "",
	    "infinit",       "2000-01-01 00:00:00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int32_t d = 42;
		cr_assert_eq(date(bad[i], &d), LG_EINVAL, "'%s'", bad[i]);
		cr_assert_eq(d, 42);
	}
	int32_t d = 42;
	cr_assert_eq(date("4714-11-23 BC", &d), LG_ERANGE);
	cr_assert_eq(date("5874898-01-01", &d), LG_ERANGE);
	cr_assert_eq(d, 42);
}

Test(pg_date, binary_epoch_and_range)
{
	int32_t pg = 0;
	cr_assert(lg__pg_date_to_binary(10957, &pg));
	cr_assert_eq(pg, 0);
	cr_assert_eq(lg__pg_date_from_binary(0), 10957);
	cr_assert(lg__pg_date_to_binary(INT32_MAX, &pg) && pg == INT32_MAX);
	cr_assert(lg__pg_date_to_binary(INT32_MIN, &pg) && pg == INT32_MIN);
	cr_assert_eq(lg__pg_date_from_binary(INT32_MIN), INT32_MIN);
	cr_assert(!lg__pg_date_to_binary(LG__PG_DATE_MIN - 1, &pg));
	cr_assert(!lg__pg_date_to_binary(LG__PG_DATE_END, &pg));
	cr_assert(lg__pg_date_to_binary(LG__PG_DATE_END - 1, &pg));
}

static int tod(const char *s, int64_t *out)
{
	return lg__pg_parse_time(s, strlen(s), out);
}

Test(pg_time, midnight_to_midnight)
{
	int64_t t = 0;
	cr_assert_eq(tod("00:00:00", &t), 0);
	cr_assert_eq(t, 0);
	cr_assert_eq(tod("13:14:15.000016", &t), 0);
	cr_assert_eq(t, INT64_C(47655000016));
	cr_assert_eq(tod("23:59:59.999999", &t), 0);
	cr_assert_eq(t, LG__PG_TIME_MAX - 1);
	cr_assert_eq(tod("24:00:00", &t), 0);
	cr_assert_eq(t, LG__PG_TIME_MAX);
	const char *bad[] = {
	    "24:00:00.000001", "24:00:01",    "25:00:00",         "12:60:00", "12:00",
	    "1:00:00",         "12:00:00+01", "12:00:00.1234567", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = 42;
		cr_assert_eq(tod(bad[i], &t), LG_EINVAL, "'%s'", bad[i]);
		cr_assert_eq(t, 42);
	}
}

static int ts(const char *s, int64_t *out)
{
	return lg__pg_parse_timestamp(s, strlen(s), out);
}

Test(pg_timestamp, wall_clock_without_zone)
{
	int64_t v = 0;
	cr_assert_eq(ts("2000-01-01 00:00:00", &v), 0);
	cr_assert_eq(v, INT64_C(946684800000000));
	cr_assert_eq(ts("1969-12-31 23:59:59.999999", &v), 0);
	cr_assert_eq(v, -1);
	cr_assert_eq(ts("4714-11-24 00:00:00 BC", &v), 0);
	cr_assert_eq(v, LG__PG_TS_MIN);
	cr_assert_eq(ts("infinity", &v), 0);
	cr_assert_eq(v, INT64_MAX);
	cr_assert_eq(ts("-infinity", &v), 0);
	cr_assert_eq(v, INT64_MIN);
	const char *bad[] = {"2000-01-01 00:00:00+00", "2000-01-01T00:00:00", "2000-01-01",
			     "2000-01-01 24:00:00", "2000-01-01 00:00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 42;
		cr_assert_eq(ts(bad[i], &v), LG_EINVAL, "'%s'", bad[i]);
		cr_assert_eq(v, 42);
	}
	cr_assert_eq(ts("4714-11-23 23:59:59.999999 BC", &v), LG_ERANGE);
}

struct iv {
	int32_t months, days;
	int64_t us;
};

static int interval(const char *s, struct iv *out)
{
	return lg__pg_parse_interval(s, strlen(s), &out->months, &out->days, &out->us);
}

Test(pg_interval, postgres_style_parts)
{
	struct {
		const char *text;
		struct iv v;
	} ok[] = {
	    {"00:00:00", {0, 0, 0}},
	    {"1 year", {12, 0, 0}},
	    {"1 year 2 mons 3 days 04:05:06.5", {14, 3, INT64_C(14706500000)}},
	    {"-1 years -2 mons +3 days -04:00:05.000006", {-14, 3, -INT64_C(14405000006)}},
	    {"-1 days +02:03:00", {0, -1, INT64_C(7380000000)}},
	    {"1 mon", {1, 0, 0}},
	    {"-00:00:00.000001", {0, 0, -1}},
	    {"2562047788:00:54.775807", {0, 0, INT64_MAX}},
	    {"-2562047788:00:54.775808", {0, 0, INT64_MIN}},
	    {"-178956970 years -8 mons -2147483648 days", {INT32_MIN, INT32_MIN, 0}},
	    {"178956970 years 7 mons 2147483647 days", {INT32_MAX, INT32_MAX, 0}},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct iv v = {7, 7, 7};
		cr_assert_eq(interval(ok[i].text, &v), 0, "'%s'", ok[i].text);
		cr_assert(v.months == ok[i].v.months && v.days == ok[i].v.days &&
			      v.us == ok[i].v.us,
			  "'%s': %d %d %lld", ok[i].text, v.months, v.days, (long long)v.us);
	}
}

Test(pg_interval, other_styles_and_overflow_are_refused)
{
	const char *bad[] = {"P1Y2M",     "@ 1 year", "1 week", "",    "1 days  1 mons",
			     "1 years 1", "1 day 1",  "01:02",  "1-2", "00:00:00 1 day",
			     "1 day,",    " 1 day"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct iv v = {7, 7, 7};
		cr_assert_eq(interval(bad[i], &v), LG_EINVAL, "'%s'", bad[i]);
		cr_assert(v.months == 7 && v.days == 7 && v.us == 7);
	}
	struct iv v = {7, 7, 7};
	cr_assert_eq(interval("2562047788:00:54.775808", &v), LG_ERANGE);
	cr_assert_eq(interval("178956970 years 8 mons", &v), LG_ERANGE);
	cr_assert_eq(interval("2147483648 days", &v), LG_ERANGE);
	cr_assert(v.months == 7 && v.days == 7 && v.us == 7);
}

Test(pg_numeric, exact_text_only)
{
	const char *ok[] = {
	    "0",   "-1",  "+1.5",     "123456789012345678901234567890.000000000000000001",
	    ".5",  "5.",  "1e10",     "-1.5E-3",
	    "NaN", "nan", "Infinity", "-Infinity"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert(lg__pg_numeric_valid(ok[i], strlen(ok[i])), "'%s'", ok[i]);
	}
	const char *bad[] = {"",   " 1", "1 ", "1,5", "1.2.3", "0x10", "--1",
			     "1e", "e5", ".",  "inf", "1_000", "١"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert(!lg__pg_numeric_valid(bad[i], strlen(bad[i])), "'%s'", bad[i]);
	}
}

Test(pg_inet, v4_v6_and_prefixes)
{
	uint8_t fam = 0, bits = 0, addr[16];
	const char *s = "10.1.2.3";
	cr_assert_eq(lg__pg_parse_inet(s, strlen(s), &fam, &bits, addr), 0);
	cr_assert(fam == 4 && bits == 32 && memcmp(addr, "\x0a\x01\x02\x03", 4) == 0);
	s = "2001:db8::1/64";
	cr_assert_eq(lg__pg_parse_inet(s, strlen(s), &fam, &bits, addr), 0);
	cr_assert(fam == 6 && bits == 64 && addr[0] == 0x20 && addr[15] == 1);
	s = "0.0.0.0/0";
	cr_assert_eq(lg__pg_parse_inet(s, strlen(s), &fam, &bits, addr), 0);
	cr_assert(fam == 4 && bits == 0);
	const char *bad[] = {"10.1.2.3/33", "1.2.3", "::1/129",  "fe80::1%eth0", "1.2.3.4/",
			     "1.2.3.4/-1",  "",      "1.2.3.4 ", "/24",          "::1/0x10"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fam = 9;
		cr_assert_eq(lg__pg_parse_inet(bad[i], strlen(bad[i]), &fam, &bits, addr),
			     LG_EINVAL, "'%s'", bad[i]);
		cr_assert_eq(fam, 9);
	}
}

/* Collects array elements as "text|text|<NULL>|". */
static int collect(void *ud, const char *elem, size_t elen)
{
	char *out = ud;
	cr_assert(elem == NULL || strlen(elem) == elen);
	strcat(out, elem != NULL ? elem : "<NULL>");
	strcat(out, "|");
	return 0;
}

static int split(const char *s, char *out)
{
	char buf[256];
	out[0] = '\0';
	return lg__pg_array_split(s, strlen(s), buf, collect, out);
}

Test(pg_array, splits_quoted_and_null_elements)
{
	char out[512];
	cr_assert_eq(split("{}", out), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(split("{1,-2,NULL}", out), 0);
	cr_assert_str_eq(out, "1|-2|<NULL>|");
	cr_assert_eq(split("{plain,\"\",\"a,b\",\"quote \\\" and \\\\ back\",NULL,\"NULL\","
			   "\"{x}\",\" pad \"}",
			   out),
		     0);
	cr_assert_str_eq(out, "plain||a,b|quote \" and \\ back|<NULL>|NULL|{x}| pad |");
	cr_assert_eq(split("{null,Null}", out), 0);
	cr_assert_str_eq(out, "<NULL>|<NULL>|");
	const char *bad[] = {"{a,b", "{{1,2},{3,4}}", "[0:1]={1,2}", "{a,,b}", "{a}x", "{,}",
			     "a,b",  "{\"a}",         "{a\"b}",      "",       "{a,}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(split(bad[i], out), LG_EINVAL, "'%s'", bad[i]);
	}
}

static int stop_at_two(void *ud, const char *elem, size_t elen)
{
	(void)elem;
	(void)elen;
	return ++*(int *)ud == 2 ? LG_ERANGE : 0;
}

Test(pg_types_misc, embedded_nul_bytes_are_refused)
{
	/* Found by fuzz_pg_types: a NUL would cut an element or an address short. */
	char out[64], buf[64];
	out[0] = '\0';
	static const char arr[] = "{\"a\0b\",c}";
	cr_assert_eq(lg__pg_array_split(arr, sizeof(arr) - 1, buf, collect, out), LG_EINVAL);
	static const char arr2[] = "{a\0b}";
	cr_assert_eq(lg__pg_array_split(arr2, sizeof(arr2) - 1, buf, collect, out), LG_EINVAL);
	static const char ip[] = "1.2.3.4\0/8";
	uint8_t fam = 9, bits, addr[16];
	cr_assert_eq(lg__pg_parse_inet(ip, sizeof(ip) - 1, &fam, &bits, addr), LG_EINVAL);
	cr_assert_eq(fam, 9);
}

Test(pg_array, a_callback_error_stops_the_split)
{
	char buf[16];
	int seen = 0;
	const char *s = "{1,2,3}";
	cr_assert_eq(lg__pg_array_split(s, strlen(s), buf, stop_at_two, &seen), LG_ERANGE);
	cr_assert_eq(seen, 2);
}
