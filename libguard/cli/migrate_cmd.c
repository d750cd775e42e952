/*
 * `lifeguard migrate SUBCOMMAND [OPTIONS]`: argument parsing and the calls into
 * libguard/migrate.h.
 *
 * Connection: --dsn CONNINFO, else $LIFEGUARD_DSN, else libpq's own PG* variables (an empty
 * conninfo). Directory: --dir DIR (default "migrations"). Every subcommand accepts only the
 * options that mean something to it, so a flag given to the wrong one is an error rather than
 * silently ignored.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_DSN = 0x100,
	OPT_DIR,
	OPT_TABLE,
	OPT_JSON,
	OPT_TO,
	OPT_DRY_RUN,
	OPT_STEPS,
	OPT_HELP,
};

/* Which options each subcommand takes, as bits of (opt - OPT_DSN). */
#define BIT(o)  (1u << ((o)-OPT_DSN))
#define COMMON  (BIT(OPT_DSN) | BIT(OPT_DIR) | BIT(OPT_TABLE) | BIT(OPT_HELP))
#define NEW_OPT (BIT(OPT_DIR) | BIT(OPT_HELP))

struct sub {
	const char *name;
	unsigned opts;
	int npos; /* positional arguments wanted */
	const char *usage;
};

static const struct sub subs[] = {
    {"new", NEW_OPT, 1, "migrate new NAME [--dir DIR]"},
    {"up", COMMON | BIT(OPT_TO) | BIT(OPT_DRY_RUN), 0, "migrate up [--to V] [--dry-run]"},
    {"down", COMMON | BIT(OPT_STEPS), 0, "migrate down [--steps N]"},
    {"status", COMMON | BIT(OPT_JSON), 0, "migrate status [--json]"},
    {"validate", COMMON, 0, "migrate validate"},
    {"redo", COMMON, 0, "migrate redo"},
};

static const struct option options[] = {
    {"dsn", required_argument, NULL, OPT_DSN},
    {"dir", required_argument, NULL, OPT_DIR},
    {"table", required_argument, NULL, OPT_TABLE},
    {"json", no_argument, NULL, OPT_JSON},
    {"to", required_argument, NULL, OPT_TO},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct args {
	const struct sub *sub;
	const char *dsn, *dir, *table, *pos;
	bool json, dry_run;
	int64_t to;
	unsigned steps;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lifeguard");
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		fprintf(f, "%s %s\n", i == 0 ? "" : "      lifeguard", subs[i].usage);
	}
	fprintf(f,
		"\noptions (all but new):\n"
		"  --dsn CONNINFO      libpq conninfo; default $LIFEGUARD_DSN, else PG* variables\n"
		"  --dir DIR           migrations directory (default: migrations)\n"
		"  --table S.T         tracking table (default: lifeguard.schema_migrations)\n"
		"  --help              this text\n"
		"\nFiles: V_name.up.sql and V_name.down.sql, V a positive integer. A file with\n"
		"the line '-- lifeguard: no-transaction' runs outside a transaction.\n"
		"Exit status: 0 success, 1 failure, 2 bad input.\n");
}

static bool parse_int(const char *s, int64_t min, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min) {
		return false;
	}
	*out = v;
	return true;
}

/* Returns -1 to go on, or an exit status. */
static int parse(int argc, char **argv, struct args *a)
{
	int c, npos = 0;
	/* "-": positional arguments come back as 1, in order; ":": a missing value is ':'.
	 * opterr = 0: the one-line reasons below replace getopt's own messages. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-:", options, NULL)) != -1) {
		if (c >= OPT_DSN && c <= OPT_HELP && !(a->sub->opts & BIT(c))) {
			fprintf(stderr, "lifeguard: migrate %s does not take --%s\n", a->sub->name,
				options[c - OPT_DSN].name);
			return CLI_BAD_USE;
		}
		int64_t v = 0;
		switch (c) {
		case 1:
			if (npos++ == a->sub->npos) {
				fprintf(stderr, "lifeguard: migrate %s: unexpected argument '%s'\n",
					a->sub->name, optarg);
				return CLI_BAD_USE;
			}
			a->pos = optarg;
			break;
		case OPT_DSN:
			a->dsn = optarg;
			break;
		case OPT_DIR:
			a->dir = optarg;
			break;
		case OPT_TABLE:
			a->table = optarg;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_DRY_RUN:
			a->dry_run = true;
			break;
		case OPT_TO:
		case OPT_STEPS:
			if (!parse_int(optarg, 1, &v) || (c == OPT_STEPS && v > 1000000)) {
				fprintf(stderr, "lifeguard: %s '%s': want a positive integer\n",
					c == OPT_TO ? "--to" : "--steps", optarg);
				return CLI_BAD_USE;
			}
			if (c == OPT_TO) {
				a->to = v;
			} else {
				a->steps = (unsigned)v;
			}
			break;
		case OPT_HELP:
			usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "lifeguard: %s needs a value\n", argv[optind - 1]);
			return CLI_BAD_USE;
		default:
			fprintf(stderr, "lifeguard: migrate %s: unknown option '%s'\n",
				a->sub->name, argv[optind - 1]);
			return CLI_BAD_USE;
		}
	}
	if (npos < a->sub->npos) {
		fprintf(stderr, "lifeguard: usage: lifeguard %s\n", a->sub->usage);
		return CLI_BAD_USE;
	}
	return -1;
}

/* One line on stderr: the reason, and the SQLSTATE when the server gave one. */
static void report(const struct lg_error *err)
{
	if (err->sqlstate[0] != '\0') {
		fprintf(stderr, "lifeguard: %s (SQLSTATE %s)\n", err->message, err->sqlstate);
	} else {
		fprintf(stderr, "lifeguard: %s\n", err->message);
	}
}

static int run_new(const struct args *a)
{
	struct lg_error err;
	char path[4096];
	int64_t v;
	if (lg_migrate_create(a->dir, a->pos, &v, path, sizeof(path), &err) != 0) {
		report(&err);
		return CLI_BAD_USE;
	}
	printf("created %s and its .down.sql (version %" PRId64 ")\n", path, v);
	return CLI_OK;
}

static int run_db(const struct args *a)
{
	const char *dsn = a->dsn != NULL ? a->dsn : getenv("LIFEGUARD_DSN");
	struct lg_migrate_config cfg = {
	    .conninfo = dsn,
	    .dir = a->dir,
	    .table = a->table,
	    .progress = cli_progress,
	};
	struct lg_migrate *m;
	struct lg_error err;
	if (lg_migrate_new(&cfg, &m, &err) != 0) {
		report(&err);
		return CLI_BAD_USE;
	}
	const char *name = a->sub->name;
	const struct lg_migration *migs = NULL;
	size_t n = 0;
	int rc;
	if (strcmp(name, "up") == 0) {
		rc = lg_migrate_up(m, a->to, a->dry_run, &err);
	} else if (strcmp(name, "down") == 0) {
		rc = lg_migrate_down(m, a->steps, &err);
	} else if (strcmp(name, "redo") == 0) {
		rc = lg_migrate_redo(m, &err);
	} else if (strcmp(name, "validate") == 0) {
		rc = lg_migrate_validate(m, &err);
	} else {
		rc = lg_migrate_status(m, &migs, &n, &err);
	}
	int status = CLI_OK;
	if (rc != 0) {
		report(&err);
		enum lg_migrate_fail_kind k = lg_migrate_last_failure(m)->kind;
		status = k == LG_MIGRATE_FAIL_INPUT ? CLI_BAD_USE : CLI_FAILED;
	} else if (migs != NULL || strcmp(name, "status") == 0) {
		status = cli_print_status(
		    migs, n, a->dir != NULL ? a->dir : "migrations",
		    a->table != NULL ? a->table : "lifeguard.schema_migrations", a->json);
	} else if (strcmp(name, "validate") == 0) {
		printf("ok: files parse, applied migrations match their files\n");
	}
	lg_migrate_free(m);
	return status;
}

int cli_migrate(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_BAD_USE : CLI_OK;
	}
	struct args a = {.steps = 1, .dir = "migrations"};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name) == 0) {
			a.sub = &subs[i];
		}
	}
	if (a.sub == NULL) {
		fprintf(stderr, "lifeguard: unknown migrate command '%s' (try --help)\n", argv[1]);
		return CLI_BAD_USE;
	}
	/* getopt_long sees "SUBCOMMAND OPTIONS...", SUBCOMMAND standing in for the program. */
	int rc = parse(argc - 1, argv + 1, &a);
	if (rc >= 0) {
		return rc;
	}
	return strcmp(a.sub->name, "new") == 0 ? run_new(&a) : run_db(&a);
}
