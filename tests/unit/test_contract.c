/*
 * The contract module's pure parts (libguard/src/contract.h): client-side canonical key text,
 * keys, SCAN patterns, values, answer words and the SQL the reads use. The comparison with
 * PostgreSQL's own output is tests/integration/test_contract_fuzz.c.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "contract.h"

static const char *canon(enum lg__contract_kind kind, const char *in)
{
	static char out[64];
	int rc = lg__contract_canon(kind, in, out, sizeof(out));
	return rc == 0 ? out : rc == LG__CONTRACT_ASK_DB ? "<db>" : "<err>";
}

Test(contract, integers_in_plain_spellings_are_canonical_client_side)
{
	cr_assert_str_eq(canon(LG__KEY_INT8, "01"), "1");
	cr_assert_str_eq(canon(LG__KEY_INT8, "+1"), "1");
	cr_assert_str_eq(canon(LG__KEY_INT8, " -0 "), "0");
	cr_assert_str_eq(canon(LG__KEY_INT8, "-9223372036854775808"), "-9223372036854775808");
	cr_assert_str_eq(canon(LG__KEY_INT8, "9223372036854775807"), "9223372036854775807");
	cr_assert_str_eq(canon(LG__KEY_INT4, "-002147483648"), "-2147483648");
	cr_assert_str_eq(canon(LG__KEY_INT2, "\t32767\n"), "32767");
	/* Out of range, other forms and garbage are the database's to judge. */
	cr_assert_str_eq(canon(LG__KEY_INT8, "9223372036854775808"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT4, "2147483648"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT2, "-32769"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT8, "1.0"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT8, "0x10"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT8, ""), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT8, "+"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT8, "1 2"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_INT8, "99999999999999999999999"), "<db>");
}

Test(contract, uuids_booleans_and_text)
{
	cr_assert_str_eq(canon(LG__KEY_UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
			 "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
	cr_assert_str_eq(canon(LG__KEY_UUID, "A0EEBC999C0B4EF8BB6D6BB9BD380A11"),
			 "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
	cr_assert_str_eq(canon(LG__KEY_UUID, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_UUID, "a0eebc99-9c0b4ef8-bb6d-6bb9bd380a11-"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_UUID, "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_BOOL, "TRUE"), "t");
	cr_assert_str_eq(canon(LG__KEY_BOOL, "off"), "f");
	cr_assert_str_eq(canon(LG__KEY_BOOL, "0"), "f");
	cr_assert_str_eq(canon(LG__KEY_BOOL, "tr"), "<db>");
	cr_assert_str_eq(canon(LG__KEY_TEXT, "a:b\\c"), "a:b\\c");
	cr_assert_str_eq(canon(LG__KEY_DB, "2024-01-01"), "<db>");
	char small[4];
	cr_assert_eq(lg__contract_canon(LG__KEY_TEXT, "abcd", small, sizeof(small)), LG_ERANGE);
	cr_assert_eq(lg__contract_kind("bigint"), LG__KEY_INT8);
	cr_assert_eq(lg__contract_kind("character varying"), LG__KEY_TEXT);
	cr_assert_eq(lg__contract_kind("character varying(10)"), LG__KEY_DB);
	cr_assert_eq(lg__contract_kind("timestamp with time zone"), LG__KEY_DB);
	cr_assert_eq(lg__contract_kind("numeric"), LG__KEY_DB);
}

Test(contract, keys_fences_and_scan_patterns)
{
	char buf[128];
	const char *parts[] = {"a:b", "c\\d"};
	cr_assert_eq(lg_cache_key(buf, sizeof(buf), "lifeguard:model", "public.t", parts, 2), 0);
	cr_assert_str_eq(buf, "lifeguard:model:public.t:a\\:b:c\\\\d");
	cr_assert_eq(lg__contract_table_fence(buf, sizeof(buf), "lifeguard:fence", "public.t"), 0);
	cr_assert_str_eq(buf, "lifeguard:fence:public.t");
	cr_assert_eq(lg__contract_table_fence(buf, 8, "lifeguard:fence", "public.t"), LG_ERANGE);
	cr_assert_eq(lg__contract_table_match(buf, sizeof(buf), "pre*fix", "public.\"a*[b]?\""), 0);
	cr_assert_str_eq(buf, "pre\\*fix:public.\"a\\*\\[b\\]\\?\":*");
}

Test(contract, values_round_trip_and_foreign_values_are_not_rows)
{
	const char *row = "{\"id\": 1}";
	char buf[64];
	size_t len = lg__contract_value_write(buf, 42, row, strlen(row));
	cr_assert_str_eq(buf, "{\"v\":42,\"row\":{\"id\": 1}}");
	cr_assert_eq(len, strlen(buf));
	cr_assert_eq(lg__contract_value_len(42, strlen(row)), len);
	int64_t v = 0;
	const char *json = NULL;
	size_t json_len = 0;
	cr_assert(lg__contract_value_parse(buf, len, &v, &json, &json_len));
	cr_assert_eq(v, 42);
	cr_assert_eq(json_len, strlen(row));
	cr_assert_eq(memcmp(json, row, json_len), 0);
	len = lg__contract_value_write(buf, INT64_MIN + 1, "{}", 2);
	cr_assert(lg__contract_value_parse(buf, len, &v, &json, &json_len));
	cr_assert_eq(v, INT64_MIN + 1);
	static const char *const foreign[] = {"{\"v\":5,\"deleted\":true}",
					      "{\"v\":,\"row\":{}}",
					      "{\"v\":5,\"row\":}",
					      "{\"v\":99999999999999999999,\"row\":{}}",
					      "[1]",
					      "",
					      "{\"v\":5}"};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		cr_assert_not(
		    lg__contract_value_parse(foreign[i], strlen(foreign[i]), &v, &json, &json_len),
		    "%s", foreign[i]);
	}
}

Test(contract, answer_words)
{
	static const char *const words[] = {"cached",     "fenced", "refreshed", "kept",
					    "tombstoned", "filled", "late"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		enum lg__contract_answer a = lg__contract_answer(words[i]);
		cr_assert_neq(a, LG__ANSWER_OTHER, "%s", words[i]);
		cr_assert_str_eq(lg__contract_answer_word(a), words[i]);
	}
	cr_assert_eq(lg__contract_answer(NULL), LG__ANSWER_OTHER);
	cr_assert_eq(lg__contract_answer("STALETERM x"), LG__ANSWER_OTHER);
}

Test(contract, read_statements_parse_settings_dependent_types_with_fixed_settings)
{
	const struct lg__contract_col cols[] = {
	    {"id", "bigint", LG__KEY_INT8},
	    {"at", "timestamp(3) with time zone", LG__KEY_DB},
	};
	char sql[1024];
	size_t need = lg__contract_read_one_sql(NULL, 0, "public.\"T\"", cols, 2);
	cr_assert_eq(lg__contract_read_one_sql(sql, sizeof(sql), "public.\"T\"", cols, 2), need);
	cr_assert_str_eq(sql, "SELECT to_jsonb(t)::text, t.lg_version, format('%s', t.\"id\"), "
			      "lifeguard.key_text(t.\"at\") FROM public.\"T\" t WHERE t.\"id\" = "
			      "($1)::bigint AND t.\"at\" = CAST(lifeguard.key_in($2, "
			      "NULL::timestamp(3) with time zone) AS timestamp(3) with time zone)");
	char small[16];
	cr_assert_eq(lg__contract_read_one_sql(small, sizeof(small), "public.\"T\"", cols, 2),
		     need);
	cr_assert_eq(strlen(small), sizeof(small) - 1);
	lg__contract_canon_sql(sql, sizeof(sql), cols, 2);
	cr_assert_str_eq(sql, "SELECT format('%s', ($1)::bigint), "
			      "lifeguard.key_text(CAST(lifeguard.key_in($2, NULL::timestamp(3) "
			      "with time zone) AS timestamp(3) with time zone))");
}
