/*
 * Type round trips through real PostgreSQL, read back in text and in binary result format:
 * NULLs, unicode, bytea with zero bytes, int64 extremes, floats, bool, numeric as text,
 * timestamptz (incl. infinity and dates around DST changes), uuid, json/jsonb.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <libguard/libguard.h>

#include "lg_test.h"

static struct lg_runtime *rt;
static struct lg_conn *conn;

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_conn_config cfg = {.conninfo = lg_test_pg_dsn()};
	struct lg_error err;
	cr_assert_eq(lg_conn_new(rt, &cfg, &conn, &err), 0, "%s", err.message);
}

static void teardown(void)
{
	lg_conn_free(conn);
	lg_runtime_free(rt);
}

static struct lg_result *select_one(const char *sql, const struct lg_param *p, int n, bool binary)
{
	struct lg_result *r = NULL;
	struct lg_error err;
	struct lg_query_opts opts = {0, binary ? LG_QUERY_BINARY : 0};
	cr_assert_eq(lg_conn_query(conn, sql, p, n, &opts, &r, &err), 0, "%s: %s", sql,
		     err.message);
	cr_assert_eq(lg_result_rows(r), 1);
	return r;
}

TestSuite(types, .init = setup, .fini = teardown);

Test(types, int64_extremes_and_small_ints)
{
	int64_t cases[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX};
	for (int b = 0; b < 2; b++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct lg_param p = lg_param_int64(cases[i]);
			struct lg_result *r = select_one(
			    "SELECT $1::int8, ($1 % 1000)::int2, ($1 % 100000)::int4", &p, 1, b);
			int64_t v8, v2, v4;
			cr_assert_eq(lg_result_int64(r, 0, 0, &v8), 0);
			cr_assert_eq(lg_result_int64(r, 0, 1, &v2), 0);
			cr_assert_eq(lg_result_int64(r, 0, 2, &v4), 0);
			cr_assert_eq(v8, cases[i]);
			cr_assert_eq(v2, cases[i] % 1000);
			cr_assert_eq(v4, cases[i] % 100000);
			double d;
			cr_assert_eq(lg_result_double(r, 0, 0, &d), LG_ETYPE);
			lg_result_free(r);
		}
	}
}

Test(types, nulls_are_explicit)
{
	for (int b = 0; b < 2; b++) {
		struct lg_param p[2] = {lg_param_null(), lg_param_text(NULL)};
		struct lg_result *r = select_one("SELECT $1::int8, $2::text, ''::text", p, 2, b);
		int64_t v = 99;
		const char *s;
		cr_assert(lg_result_is_null(r, 0, 0));
		cr_assert_eq(lg_result_int64(r, 0, 0, &v), LG_ENULL);
		cr_assert_eq(v, 99);
		cr_assert(lg_result_is_null(r, 0, 1));
		cr_assert_eq(lg_result_text(r, 0, 1, &s, NULL), LG_ENULL);
		cr_assert(!lg_result_is_null(r, 0, 2), "empty string is not NULL");
		size_t len = 9;
		cr_assert_eq(lg_result_text(r, 0, 2, &s, &len), 0);
		cr_assert_eq(len, 0);
		cr_assert_eq(lg_result_int64(r, 5, 0, &v), LG_EINVAL);
		lg_result_free(r);
	}
}

Test(types, unicode_text_and_json)
{
	const char *text = "zażółć gęślą jaźń — 東京 — 🐘 \"quoted\" 'single' \\ back";
	const char *json = "{\"name\": \"🐘\", \"list\": [1, 2.5, null, true], \"nested\": {}}";
	for (int b = 0; b < 2; b++) {
		struct lg_param p[2] = {lg_param_text(text), lg_param_jsonb(json)};
		struct lg_result *r = select_one(
		    "SELECT $1::text, $2::jsonb, $2::jsonb->>'name', length($1)", p, 2, b);
		const char *s;
		size_t len;
		cr_assert_eq(lg_result_text(r, 0, 0, &s, &len), 0);
		cr_assert_eq(len, strlen(text));
		cr_assert_eq(memcmp(s, text, len), 0);
		cr_assert_eq(lg_result_text(r, 0, 1, &s, &len), 0);
		cr_assert_not_null(strstr(s, "\"list\": [1, 2.5, null, true]"), "%.*s", (int)len,
				   s);
		cr_assert_eq(lg_result_text(r, 0, 2, &s, &len), 0);
		cr_assert_str_eq(s, "🐘");
		int64_t chars;
		cr_assert_eq(lg_result_int64(r, 0, 3, &chars), 0);
		int64_t code_points = 0;
		for (const char *c = text; *c != '\0'; c++) {
			code_points += ((unsigned char)*c & 0xC0) != 0x80;
		}
		cr_assert_eq(chars, code_points, "characters, not bytes: %lld", (long long)chars);
		cr_assert_lt(code_points, (int64_t)strlen(text));
		lg_result_free(r);
	}
}

Test(types, bytea_with_zero_bytes)
{
	uint8_t data[300];
	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)(i * 37);
	}
	data[0] = 0;
	data[150] = 0;
	data[299] = 0;
	for (int b = 0; b < 2; b++) {
		struct lg_param p = lg_param_bytea(data, sizeof(data));
		struct lg_result *r =
		    select_one("SELECT $1::bytea, length($1), ''::bytea", &p, 1, b);
		const uint8_t *out;
		size_t len;
		cr_assert_eq(lg_result_bytea(r, 0, 0, &out, &len), 0);
		cr_assert_eq(len, sizeof(data));
		cr_assert_eq(memcmp(out, data, len), 0);
		const uint8_t *again;
		cr_assert_eq(lg_result_bytea(r, 0, 0, &again, &len), 0);
		cr_assert_eq(again, out, "decoded once, kept with the result");
		cr_assert_eq(lg_result_bytea(r, 0, 2, &out, &len), 0);
		cr_assert_eq(len, 0);
		int64_t n;
		cr_assert_eq(lg_result_int64(r, 0, 1, &n), 0);
		cr_assert_eq(n, 300);
		lg_result_free(r);
	}
}

Test(types, floats_bool_numeric)
{
	double cases[] = {0.0, -0.0, 1.5, -2.25e300, 4.9e-324, INFINITY, -INFINITY};
	for (int b = 0; b < 2; b++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct lg_param p[2] = {lg_param_double(cases[i]), lg_param_bool(i % 2)};
			struct lg_result *r = select_one(
			    "SELECT $1::float8, $2::bool, "
			    "'123456789012345678901234567890.000000001'::numeric, 'NaN'::float8",
			    p, 2, b);
			double d;
			bool flag;
			cr_assert_eq(lg_result_double(r, 0, 0, &d), 0);
			cr_assert_eq(memcmp(&d, &cases[i], sizeof(d)), 0, "%g vs %g", d, cases[i]);
			cr_assert_eq(lg_result_bool(r, 0, 1, &flag), 0);
			cr_assert_eq(flag, (bool)(i % 2));
			cr_assert_eq(lg_result_double(r, 0, 3, &d), 0);
			cr_assert(isnan(d));
			const char *s;
			if (!b) {
				cr_assert_eq(lg_result_text(r, 0, 2, &s, NULL), 0);
				cr_assert_str_eq(s, "123456789012345678901234567890.000000001");
			} else {
				/* numeric has no text form in binary results: asked as text it says
				 * so. */
				cr_assert_eq(lg_result_text(r, 0, 2, &s, NULL), LG_ETYPE);
			}
			lg_result_free(r);
		}
	}
}

Test(types, timestamptz_round_trips_across_dst_and_infinity)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(conn, "SET TimeZone = 'America/New_York'", &err), 0);
	/* 2024-03-10 06:59:59.999999 UTC is 01:59:59 EST; one microsecond later is 03:00 EDT. */
	int64_t cases[] = {
	    1710053999999999LL,   1710054000000000LL,   1730613600000000LL, 0,        -1,
	    -62135596800000000LL, 253402300799999999LL, INT64_MAX,          INT64_MIN};
	for (int b = 0; b < 2; b++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct lg_param p = lg_param_timestamptz(cases[i]);
			struct lg_result *r =
			    select_one("SELECT $1::timestamptz, "
				       "extract(epoch from $1::timestamptz)::text",
				       &p, 1, b);
			int64_t got;
			cr_assert_eq(lg_result_timestamptz(r, 0, 0, &got), 0);
			cr_assert_eq(got, cases[i], "case %zu (%s): %lld", i, b ? "bin" : "text",
				     (long long)got);
			lg_result_free(r);
		}
	}
	struct lg_result *r = select_one("SELECT '2024-11-03 01:30:00-04'::timestamptz - "
					 "'2024-11-03 01:30:00-05'::timestamptz < interval '0'",
					 NULL, 0, false);
	bool earlier;
	cr_assert_eq(lg_result_bool(r, 0, 0, &earlier), 0);
	cr_assert(earlier);
	lg_result_free(r);
}

Test(types, uuid_both_formats)
{
	uint8_t u[16] = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
			 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00};
	for (int b = 0; b < 2; b++) {
		struct lg_param p = lg_param_uuid(u);
		struct lg_result *r = select_one("SELECT $1::uuid, $1::uuid::text", &p, 1, b);
		uint8_t out[16];
		cr_assert_eq(lg_result_uuid(r, 0, 0, out), 0);
		cr_assert_eq(memcmp(out, u, 16), 0);
		const char *s;
		cr_assert_eq(lg_result_text(r, 0, 1, &s, NULL), 0);
		cr_assert_str_eq(s, "123e4567-e89b-12d3-a456-426614174000");
		cr_assert_eq(lg_result_uuid(r, 0, 1, out), LG_ETYPE);
		lg_result_free(r);
	}
}

Test(types, table_round_trip_with_affected_rows)
{
	struct lg_error err;
	cr_assert_eq(lg_conn_exec(conn,
				  "CREATE TEMP TABLE t (id serial PRIMARY KEY, n int8, "
				  "s text, b bytea, ts timestamptz, u uuid, j jsonb)",
				  &err),
		     0, "%s", err.message);
	uint8_t raw[4] = {0, 1, 0, 2};
	uint8_t u[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct lg_param p[6] = {lg_param_int64(INT64_MIN), lg_param_text("ünï"),
				lg_param_bytea(raw, 4),    lg_param_timestamptz(1700000000123456LL),
				lg_param_uuid(u),          lg_param_jsonb("[1,{\"a\":null}]")};
	struct lg_result *r;
	cr_assert_eq(
	    lg_conn_query(conn,
			  "INSERT INTO t (n, s, b, ts, u, j) VALUES ($1, $2, $3, $4, $5, $6),"
			  " (NULL, NULL, NULL, NULL, NULL, NULL) RETURNING id",
			  p, 6, NULL, &r, &err),
	    0, "%s", err.message);
	cr_assert_eq(lg_result_affected(r), 2);
	cr_assert_str_eq(lg_result_command(r), "INSERT 0 2");
	lg_result_free(r);
	for (int b = 0; b < 2; b++) {
		struct lg_query_opts opts = {0, b ? LG_QUERY_BINARY : 0};
		cr_assert_eq(lg_conn_query(conn, "SELECT n, s, b, ts, u, j FROM t ORDER BY id",
					   NULL, 0, &opts, &r, &err),
			     0);
		cr_assert_eq(lg_result_rows(r), 2);
		cr_assert_eq(lg_result_cols(r), 6);
		cr_assert_str_eq(lg_result_col_name(r, 3), "ts");
		int64_t n, ts;
		const uint8_t *bytes;
		size_t len;
		uint8_t uu[16];
		const char *s;
		cr_assert_eq(lg_result_int64(r, 0, 0, &n), 0);
		cr_assert_eq(n, INT64_MIN);
		cr_assert_eq(lg_result_text(r, 0, 1, &s, NULL), 0);
		cr_assert_str_eq(s, "ünï");
		cr_assert_eq(lg_result_bytea(r, 0, 2, &bytes, &len), 0);
		cr_assert_eq(len, 4);
		cr_assert_eq(memcmp(bytes, raw, 4), 0);
		cr_assert_eq(lg_result_timestamptz(r, 0, 3, &ts), 0);
		cr_assert_eq(ts, 1700000000123456LL);
		cr_assert_eq(lg_result_uuid(r, 0, 4, uu), 0);
		cr_assert_eq(memcmp(uu, u, 16), 0);
		cr_assert_eq(lg_result_text(r, 0, 5, &s, NULL), 0);
		cr_assert_str_eq(s, "[1, {\"a\": null}]");
		for (int col = 0; col < 6; col++) {
			cr_assert(lg_result_is_null(r, 1, col));
		}
		lg_result_free(r);
	}
}

Test(types, text_of_explicit_length_is_not_read_past_and_nul_is_refused)
{
	/* "abcXYZ" with only 3 bytes meant: libpq alone would send all six. */
	char buf[6] = {'a', 'b', 'c', 'X', 'Y', 'Z'};
	struct lg_param p = lg_param_textn(buf, 3);
	struct lg_result *r = select_one("SELECT $1::text, length($1::text)", &p, 1, false);
	const char *s;
	size_t len;
	cr_assert_eq(lg_result_text(r, 0, 0, &s, &len), 0);
	cr_assert_eq(len, 3);
	cr_assert_str_eq(s, "abc");
	lg_result_free(r);
	char nul[3] = {'a', '\0', 'b'};
	struct lg_param bad = lg_param_textn(nul, 3);
	struct lg_error err;
	cr_assert_eq(lg_conn_query(conn, "SELECT $1::text", &bad, 1, NULL, NULL, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "$1"), "%s", err.message);
}

/* The Bind message carries parameter lengths as int32. A length past it used to be cast to
 * int: 4 GiB + 5 bytes went out as 5 bytes, silently truncated. Now it is refused before
 * anything is sent (the values below are never read). */
Test(types, parameters_longer_than_the_protocol_allows_are_refused)
{
	static const char small[8] = "abcdefg";
	size_t huge[] = {(size_t)INT_MAX + 1, ((size_t)1 << 32) + 5};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		struct lg_param ps[2] = {lg_param_textn(small, huge[i]),
					 lg_param_bytea(small, huge[i])};
		for (int k = 0; k < 2; k++) {
			struct lg_error err;
			struct lg_result *r = NULL;
			int rc =
			    lg_conn_query(conn, "SELECT length($1)", &ps[k], 1, NULL, &r, &err);
			cr_assert_eq(rc, LG_EINVAL, "length %zu, kind %d: rc %d", huge[i], k, rc);
			cr_assert(strstr(err.message, "2 GiB") != NULL, "%s", err.message);
			cr_assert_null(r);
		}
	}
	/* The largest allowed length is still accepted in the type (not sent here). */
	cr_assert_eq(lg_param_textn(small, 7).length, 7);
}
