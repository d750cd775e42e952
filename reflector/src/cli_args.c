/* Command-line helpers (see cli_args.h). */
#include "cli_args.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

void rf_cli_getopt_begin(void)
{
	/* optind 0 rather than 1 makes glibc reinitialize its whole scan state. */
	optind = 0;
	opterr = 0;
}

int rf_cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	/* strtoull() alone skips blanks, takes a sign and stops at the first non-digit; a
	 * leading digit plus a check that it used the whole text leaves only plain numbers. */
	if (text[0] < '0' || text[0] > '9') {
		return -1;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (*end != '\0' || errno == ERANGE || v < min || v > max) {
		return -1;
	}
	*out = v;
	return 0;
}

void rf_cli_option_error(const char *prefix, int rc, char *const *argv)
{
	/* getopt_long() has stepped over a long option's element before it fails, so that is
	 * argv[optind - 1]. An unknown short option is different: optind stays on its element
	 * while more letters follow ("-xy"), so the letter in optopt names it. optopt holds a
	 * long option's code when that option was given a value it does not take, and 0 for an
	 * unknown or ambiguous long option. */
	if (rc == ':') {
		fprintf(stderr, "%s: option '%s' needs a value\n", prefix, argv[optind - 1]);
	} else if (optopt >= CLI_OPT_FIRST) {
		fprintf(stderr, "%s: option '%s' takes no value\n", prefix, argv[optind - 1]);
	} else if (optopt != 0) {
		fprintf(stderr, "%s: unknown option '-%c'\n", prefix, (char)optopt);
	} else {
		fprintf(stderr, "%s: unknown option '%s'\n", prefix, argv[optind - 1]);
	}
}

int rf_cli_unexpected(const char *prefix, int rc, char *const *argv)
{
	if (rc == 1) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prefix, optarg);
	} else {
		rf_cli_option_error(prefix, rc, argv);
	}
	return -1;
}

int rf_cli_no_operands(const char *prefix, int argc, char *const *argv)
{
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prefix, argv[optind]);
		return -1;
	}
	return 0;
}
