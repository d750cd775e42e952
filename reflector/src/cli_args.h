/*
 * Command-line helpers shared by main() and the subcommands: strict numbers and the messages
 * for options glibc's getopt_long() rejects. Pure: no libuv, so the unit suite links it.
 *
 * Every caller runs getopt_long() with CLI_OPTSTRING: no short options, arguments returned in
 * order as option code 1 (so POSIXLY_CORRECT cannot change what a command line means), and
 * ':' for a missing value so the caller can tell it from an unknown option. Long options use
 * codes from CLI_OPT_FIRST up, which no short option can collide with.
 */
#ifndef RF_CLI_ARGS_H
#define RF_CLI_ARGS_H

#include <stdint.h>

#define CLI_OPTSTRING "-:"
#define CLI_OPT_FIRST 256

/* Prepares getopt_long() for a new command line: resets its position and turns off its own
 * messages, which would name argv[0] (a path or a subcommand), in favour of
 * rf_cli_option_error(). */
void rf_cli_getopt_begin(void);

/*
 * Parses text as a decimal number in [min, max] into *out. Only digits are accepted: no sign,
 * blanks or suffix, so "-1" and "5s" fail instead of reading as 2^64 - 1 and 5. Returns 0, or
 * -1 (nothing written).
 */
int rf_cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/*
 * Prints why getopt_long() returned rc ('?' or ':') for the element it just read, as
 * "prefix: unknown option '--x'", "prefix: option '--x' needs a value" or "prefix: option
 * '--x=1' takes no value", on stderr. Reads getopt's optind and optopt, so call it right
 * after the getopt_long() call.
 */
void rf_cli_option_error(const char *prefix, int rc, char *const *argv);

/*
 * For the getopt_long() results a command does not handle: 1 (an operand, in optarg) prints
 * "prefix: unexpected argument 'x'", anything else what rf_cli_option_error() prints. Always
 * returns -1.
 */
int rf_cli_unexpected(const char *prefix, int rc, char *const *argv);

/* After the getopt_long() loop of a command without operands: 0 when nothing is left (what
 * follows "--" included), else -1 with "prefix: unexpected argument 'x'" on stderr. */
int rf_cli_no_operands(const char *prefix, int argc, char *const *argv);

#endif
