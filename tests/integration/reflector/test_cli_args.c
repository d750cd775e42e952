/* The strict number parser behind the CLI's --id and --timeout-ms (cli_args.c). */
#include <stdint.h>

#include <criterion/criterion.h>

#include "cli_args.h"

Test(cli_args, accepts_plain_decimal_numbers_within_bounds)
{
	static const struct {
		const char *text;
		uint64_t min, max, want;
	} ok[] = {
	    {"1", 1, 10, 1},
	    {"10", 1, 10, 10},
	    {"0", 0, 5, 0},
	    {"007", 1, 10, 7},
	    {"9223372036854775807", 1, INT64_MAX, INT64_MAX},
	    {"18446744073709551615", 0, UINT64_MAX, UINT64_MAX},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 12345;
		cr_expect_eq(rf_cli_parse_uint(ok[i].text, ok[i].min, ok[i].max, &v), 0, "%s",
			     ok[i].text);
		cr_expect_eq(v, ok[i].want, "%s", ok[i].text);
	}
}

Test(cli_args, rejects_signs_blanks_suffixes_and_out_of_range)
{
	static const char *bad[] = {"",    "-1",  "+1",   " 1",
				    "1 ",  "5s",  "0x10", "1e3",
				    "1.0", "0",   "11",   "18446744073709551616",
				    "-0",  "\t5", "5\n",  "99999999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 77;
		cr_expect_eq(rf_cli_parse_uint(bad[i], 1, 10, &v), -1, "'%s'", bad[i]);
		cr_expect_eq(v, 77, "'%s' left the output alone", bad[i]);
	}
	uint64_t v = 0;
	cr_expect_eq(rf_cli_parse_uint("9223372036854775808", 1, INT64_MAX, &v), -1,
		     "above an int64 ceiling");
}
