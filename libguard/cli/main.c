/*
 * `lifeguard`: the command-line tool of libguard. One binary with subcommands: `migrate`
 * (docs/migrations.md), `codegen` and `doctor` (docs/cli.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: lifeguard COMMAND [ARGS]\n"
	       "\n"
	       "commands:\n"
	       "  migrate new NAME                  create the next V_NAME.up.sql / .down.sql\n"
	       "  migrate up [--to V] [--dry-run]   apply pending migrations\n"
	       "  migrate down [--steps N]          revert the last N applied migrations\n"
	       "  migrate status [--json]           list migrations and their state\n"
	       "  migrate validate                  check files and applied checksums\n"
	       "  migrate redo                      revert and re-apply the last migration\n"
	       "  codegen --schema S --out DIR      model headers from the tables of S [--check]\n"
	       "  doctor --config F                 check the primary, replicas, Redis, reflector\n"
	       "\n"
	       "Run `lifeguard COMMAND --help` for its options.\n"
	       "Exit status: 0 success, 1 failure, 2 bad input.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_BAD_USE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "migrate") == 0) {
		return cli_migrate(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "codegen") == 0) {
		return cli_codegen(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "doctor") == 0) {
		return cli_doctor(argc - 1, argv + 1);
	}
	fprintf(stderr, "lifeguard: unknown command '%s' (try lifeguard --help)\n", argv[1]);
	return CLI_BAD_USE;
}
