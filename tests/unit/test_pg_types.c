/*
 * Unit tests for the scalar, uuid and binary codecs in pg_types.c (timestamps are in
 * test_pg_timestamptz.c, bytea text decoding in test_pg_bytea.c).
 *
 * Expected values are hand-built encodings and values printed by a real PostgreSQL 15
 * server, and random round trips check the parsers against the C library's own printf().
 * Random cases use a fixed-seed generator, so a failure reproduces.
 */
#include "pg_types.h"

#include "libguard/error.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: small, full-period, good enough to spread test inputs. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static int parse_i64(const char *s, int64_t *out)
{
	return lg__pg_parse_int64(s, strlen(s), out);
}

static int parse_dbl(const char *s, double *out)
{
	return lg__pg_parse_double(s, strlen(s), out);
}

Test(pg_int64, accepts_every_valid_form)
{
	static const struct {
		const char *text;
		int64_t value;
	} cases[] = {
	    {"0", 0},
	    {"-0", 0},
	    {"+7", 7},
	    {"-123", -123},
	    {"32767", 32767},
	    {"-2147483648", INT32_MIN},
	    {"000000000000000000000000042", 42},
	    {"9223372036854775807", INT64_MAX},
	    {"-9223372036854775808", INT64_MIN},
	    {"+9223372036854775807", INT64_MAX},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = 1;
		cr_expect_eq(parse_i64(cases[i].text, &v), 0, "%s", cases[i].text);
		cr_expect_eq(v, cases[i].value, "%s gave %" PRId64, cases[i].text, v);
	}
}

Test(pg_int64, rejects_overflow_and_junk_without_touching_out)
{
	static const char *range[] = {"9223372036854775808", "-9223372036854775809",
				      "18446744073709551616", "99999999999999999999999"};
	static const char *junk[] = {
	    "",    "-",   "+",   " 1",    "1 ",  "1a",       "0x10",
	    "1.0", "--1", "1e3", "1_000", "+-1", "\xd9\xa1", "99999999999999999999x"};
	int64_t v = 77;
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		cr_expect_eq(parse_i64(range[i], &v), LG_ERANGE, "%s", range[i]);
	}
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		cr_expect_eq(parse_i64(junk[i], &v), LG_EINVAL, "'%s'", junk[i]);
	}
	cr_expect_eq(lg__pg_parse_int64("12\0", 3, &v), LG_EINVAL, "embedded NUL");
	cr_expect_eq(v, 77);
}

Test(pg_int64, honours_length_of_unterminated_slice)
{
	int64_t v = 0;
	cr_assert_eq(lg__pg_parse_int64("12345", 3, &v), 0);
	cr_expect_eq(v, 123);
	cr_expect_eq(lg__pg_parse_int64("-5", 1, &v), LG_EINVAL);
}

Test(pg_int64, random_values_round_trip)
{
	uint64_t seed = 1;
	char buf[32];
	for (int i = 0; i < 20000; i++) {
		int64_t want = (int64_t)rng_next(&seed) >> (rng_next(&seed) % 64);
		int64_t got = 0;
		snprintf(buf, sizeof(buf), "%" PRId64, want);
		cr_assert_eq(parse_i64(buf, &got), 0, "%s", buf);
		cr_assert_eq(got, want, "%s", buf);
	}
}

Test(pg_double, parses_server_output)
{
	double v = 0;
	cr_expect(parse_dbl("1.5", &v) == 0 && v == 1.5);
	cr_expect(parse_dbl("0.1", &v) == 0 && v == 0.1);
	cr_expect(parse_dbl("-0", &v) == 0 && v == 0.0 && signbit(v));
	cr_expect(parse_dbl("1e+100", &v) == 0 && v == 1e100);
	cr_expect(parse_dbl("1e-05", &v) == 0 && v == 1e-5);
	cr_expect(parse_dbl("1.7976931348623157e+308", &v) == 0 && v == 1.7976931348623157e308);
	cr_expect(parse_dbl("5e-324", &v) == 0 && v == 5e-324, "subnormals are accepted");
	cr_expect(parse_dbl(".5", &v) == 0 && v == 0.5);
	cr_expect(parse_dbl("7.", &v) == 0 && v == 7.0);
	cr_expect(parse_dbl("NaN", &v) == 0 && isnan(v));
	cr_expect(parse_dbl("nan", &v) == 0 && isnan(v));
	cr_expect(parse_dbl("Infinity", &v) == 0 && isinf(v) && v > 0);
	cr_expect(parse_dbl("-Infinity", &v) == 0 && isinf(v) && v < 0);
	cr_expect(parse_dbl("+INFINITY", &v) == 0 && isinf(v) && v > 0);
}

Test(pg_double, rejects_range_and_junk)
{
	static const char *range[] = {"1e309", "-1e309", "1e-400", "-1e-400"};
	static const char *junk[] = {"",       " 1",  "1 ",        "1.5x", "0x1p3", "inf",  "-inf",
				     "nan(1)", "1e",  "e5",        ".",    "-",     "1..2", "1e+-2",
				     "++1",    "1,5", "Infinityx", "-NaN", "1e5.0"};
	double v = 42;
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		cr_expect_eq(parse_dbl(range[i], &v), LG_ERANGE, "%s", range[i]);
	}
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		cr_expect_eq(parse_dbl(junk[i], &v), LG_EINVAL, "'%s'", junk[i]);
	}
	char big[200];
	memset(big, '1', sizeof(big));
	cr_expect_eq(lg__pg_parse_double(big, sizeof(big), &v), LG_EINVAL, "too long");
	cr_expect_eq(lg__pg_parse_double("2.5", 1, &v), 0, "slice");
	cr_expect_eq(v, 2.0);
}

/* Switches LC_NUMERIC to a locale with a decimal comma: an installed one, else one compiled
 * with localedef into dir (the Debian "locales" package ships the sources). */
static bool use_comma_locale(char *dir, bool *made_dir)
{
	static const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (setlocale(LC_NUMERIC, names[i]) != NULL) {
			return true;
		}
	}
	char cmd[256];
	if (mkdtemp(dir) == NULL) {
		return false;
	}
	*made_dir = true;
	snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1",
		 dir);
	if (system(cmd) != 0 || setenv("LOCPATH", dir, 1) != 0) {
		return false;
	}
	return setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
}

Test(pg_double, ignores_process_locale)
{
	char dir[] = "/tmp/lg_unit_locale_XXXXXX";
	char cmd[64];
	bool made_dir = false;
	bool ok = use_comma_locale(dir, &made_dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (made_dir) {
		cr_assert_eq(system(cmd), 0);
	}
	if (!ok) {
		cr_skip_test("no locale with a decimal comma is available");
	}
	cr_assert_eq(strtod("1.5", NULL), 1.0, "the locale really uses a decimal comma");
	double v = 0;
	cr_expect_eq(parse_dbl("1.5", &v), 0);
	cr_expect_eq(v, 1.5);
	cr_expect_eq(parse_dbl("1,5", &v), LG_EINVAL);
}

Test(pg_double, random_bit_patterns_round_trip)
{
	uint64_t seed = 2;
	char buf[64];
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = rng_next(&seed);
		double want, got = 0;
		memcpy(&want, &bits, sizeof(want));
		if (!isfinite(want)) {
			continue;
		}
		snprintf(buf, sizeof(buf), "%.17g", want);
		cr_assert_eq(parse_dbl(buf, &got), 0, "%s", buf);
		cr_assert(memcmp(&got, &want, sizeof(got)) == 0, "%s", buf);
	}
}

Test(pg_bool, only_t_and_f)
{
	bool b = false;
	cr_expect(lg__pg_parse_bool("t", 1, &b) == 0 && b);
	cr_expect(lg__pg_parse_bool("f", 1, &b) == 0 && !b);
	cr_expect(lg__pg_parse_bool("tf", 1, &b) == 0 && b, "length wins");
	static const char *bad[] = {"", "T", "F", "true", "false", "1", "0", "tt", "y"};
	b = true;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(lg__pg_parse_bool(bad[i], strlen(bad[i]), &b), LG_EINVAL, "%s",
			     bad[i]);
	}
	cr_expect(b, "untouched on error");
}

Test(pg_uuid, parses_both_cases_and_both_shapes)
{
	static const uint8_t want[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
					 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
	static const char *forms[] = {
	    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
	    "a0EEbc99-9C0b-4eF8-Bb6d-6BB9bd380A11", "a0eebc999c0b4ef8bb6d6bb9bd380a11"};
	for (size_t i = 0; i < 4; i++) {
		uint8_t got[16] = {0};
		cr_expect_eq(lg__pg_parse_uuid(forms[i], strlen(forms[i]), got), 0, "%s", forms[i]);
		cr_expect(memcmp(got, want, 16) == 0, "%s", forms[i]);
	}
	char out[37];
	lg__pg_format_uuid(want, out);
	cr_expect_str_eq(out, forms[0]);
}

Test(pg_uuid, rejects_malformed_and_round_trips)
{
	static const char *bad[] = {"",
				    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
				    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
				    "a0eebc999-c0b-4ef8-bb6d-6bb9bd380a11",
				    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
				    "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1}",
				    "a0eebc99_9c0b_4ef8_bb6d_6bb9bd380a11",
				    "a0eebc99-9c0b-4ef8-bb6d6bb9-bd380a11",
				    "a0eebc999c0b4ef8bb6d6bb9bd380a1-",
				    " 0eebc999c0b4ef8bb6d6bb9bd380a11"};
	uint8_t got[16] = {7};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(lg__pg_parse_uuid(bad[i], strlen(bad[i]), got), LG_EINVAL, "%s",
			     bad[i]);
	}
	cr_expect_eq(got[0], 7, "untouched on error");
	uint64_t seed = 6;
	for (int i = 0; i < 2000; i++) {
		uint8_t in[16], back[16];
		char text[37];
		for (int j = 0; j < 16; j++) {
			in[j] = (uint8_t)rng_next(&seed);
		}
		lg__pg_format_uuid(in, text);
		cr_assert_eq(strlen(text), 36);
		cr_assert_eq(lg__pg_parse_uuid(text, 36, back), 0, "%s", text);
		cr_assert(memcmp(in, back, 16) == 0, "%s", text);
	}
}

Test(pg_binary, reads_sign_extended_big_endian_ints)
{
	int64_t v = 0;
	cr_expect(lg__pg_binary_int("\xff\xfe", 2, &v) == 0 && v == -2);
	cr_expect(lg__pg_binary_int("\x7f\xff", 2, &v) == 0 && v == 32767);
	cr_expect(lg__pg_binary_int("\x80\x00", 2, &v) == 0 && v == -32768);
	cr_expect(lg__pg_binary_int("\x80\x00\x00\x00", 4, &v) == 0 && v == INT32_MIN);
	cr_expect(lg__pg_binary_int("\x00\x00\x01\x00", 4, &v) == 0 && v == 256);
	cr_expect(lg__pg_binary_int("\x80\0\0\0\0\0\0\0", 8, &v) == 0 && v == INT64_MIN);
	cr_expect(lg__pg_binary_int("\x7f\xff\xff\xff\xff\xff\xff\xff", 8, &v) == 0 &&
		  v == INT64_MAX);
	cr_expect(lg__pg_binary_int("\x00\x00\x00\x00\xff\xff\xff\xff", 8, &v) == 0 &&
		  v == INT64_C(4294967295));
	v = 3;
	for (size_t len = 0; len <= 9; len++) {
		if (len != 2 && len != 4 && len != 8) {
			cr_expect_eq(lg__pg_binary_int("\1\2\3\4\5\6\7\10\11", len, &v), LG_EINVAL,
				     "len %zu", len);
		}
	}
	cr_expect_eq(v, 3);
	uint64_t seed = 7;
	for (int i = 0; i < 10000; i++) {
		uint64_t u = rng_next(&seed);
		uint8_t buf[8];
		int64_t want;
		memcpy(&want, &u, sizeof(want));
		lg__pg_put_be64(buf, u);
		cr_assert(lg__pg_binary_int((const char *)buf, 8, &v) == 0 && v == want);
		lg__pg_put_be32(buf, (uint32_t)u);
		cr_assert(lg__pg_binary_int((const char *)buf, 4, &v) == 0 &&
			  v == (int32_t)(uint32_t)u);
		lg__pg_put_be16(buf, (uint16_t)u);
		cr_assert(lg__pg_binary_int((const char *)buf, 2, &v) == 0 &&
			  v == (int16_t)(uint16_t)u);
	}
}

Test(pg_binary, writers_are_big_endian_and_floats_decode)
{
	uint8_t b[8];
	lg__pg_put_be64(b, UINT64_C(0x0102030405060708));
	cr_expect(memcmp(b, "\1\2\3\4\5\6\7\10", 8) == 0);
	lg__pg_put_be32(b, 0xa1b2c3d4u);
	cr_expect(memcmp(b, "\xa1\xb2\xc3\xd4", 4) == 0);
	lg__pg_put_be16(b, 0xbeefu);
	cr_expect(memcmp(b, "\xbe\xef", 2) == 0);
	double d = 0;
	cr_expect(lg__pg_binary_float("\x3f\xc0\x00\x00", 4, &d) == 0 && d == 1.5);
	cr_expect(lg__pg_binary_float("\x3d\xcc\xcc\xcd", 4, &d) == 0 && d == (double)0.1f);
	cr_expect(lg__pg_binary_float("\x80\0\0\0\0\0\0\0", 8, &d) == 0 && d == 0 && signbit(d));
	cr_expect(lg__pg_binary_float("\x3f\xb9\x99\x99\x99\x99\x99\x9a", 8, &d) == 0 && d == 0.1);
	cr_expect(lg__pg_binary_float("\x7f\xf8\0\0\0\0\0\0", 8, &d) == 0 && isnan(d));
	cr_expect(lg__pg_binary_float("\xff\x80\0\0", 4, &d) == 0 && isinf(d) && d < 0);
	d = 9;
	cr_expect_eq(lg__pg_binary_float("\0\0", 2, &d), LG_EINVAL);
	cr_expect_eq(lg__pg_binary_float("\0\0\0\0\0\0\0\0\0", 9, &d), LG_EINVAL);
	cr_expect_eq(d, 9);
}
