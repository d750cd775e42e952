/*
 * `lifeguard-reflector setup --config FILE` and `lifeguard-reflector reflect --config FILE
 * TABLE...`: install the lifeguard schema (the contract module's statements,
 * libguard/src/contract_schema.c) and enable reflection on tables.
 *
 * Both connect to the `postgres` conninfo of the configuration with libguard (a plain call
 * from main: the connection runs its own loop until each statement is done). setup runs every
 * statement in one transaction under an advisory lock, so two concurrent setups serialize
 * and a failure leaves nothing half-installed. reflect runs lifeguard.reflect() per table, each
 * in its own statement (one bad name does not undo the others) and reports each result.
 * Exit status: 0 success, 1 a database error (printed with its SQLSTATE), 2 bad usage or
 * configuration.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <libguard/libguard.h>

#include "cli.h"
#include "cli_args.h"
#include "config.h"
#include "schema.h"

static int schema_usage(void)
{
	fprintf(stderr, "usage: lifeguard-reflector setup [--config FILE]\n"
			"       lifeguard-reflector reflect [--config FILE] SCHEMA.TABLE...\n");
	return 2;
}

enum { SCHEMA_CONFIG = CLI_OPT_FIRST };

static const struct option schema_options[] = {
    {"config", required_argument, NULL, SCHEMA_CONFIG},
    {NULL, 0, NULL, 0},
};

/* Loads the configuration; collects positional arguments into tables (may be NULL). */
static int schema_load(int argc, char **argv, struct rf_config *cfg, const char **tables,
		       int *ntables)
{
	struct rf_config_flags flags = {0};
	int n = 0, c;
	rf_cli_getopt_begin();
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, schema_options, NULL)) != -1) {
		if (c == SCHEMA_CONFIG) {
			flags.config_path = optarg;
		} else if (c == 1 && tables != NULL) {
			tables[n++] = optarg;
		} else if (c == 1) {
			fprintf(stderr, "lifeguard-reflector: unexpected argument '%s'\n", optarg);
			return schema_usage();
		} else {
			rf_cli_option_error("lifeguard-reflector", c, argv);
			return schema_usage();
		}
	}
	/* getopt_long() stops at "--": what follows are table names, even with a leading '-'. */
	for (; optind < argc; optind++) {
		if (tables == NULL) {
			fprintf(stderr, "lifeguard-reflector: unexpected argument '%s'\n",
				argv[optind]);
			return schema_usage();
		}
		tables[n++] = argv[optind];
	}
	if (ntables != NULL) {
		*ntables = n;
	}
	struct rf_config_error err;
	if (rf_config_load(&flags, cfg, &err) != 0) {
		fprintf(stderr, "lifeguard-reflector: %s\n", err.message);
		return 2;
	}
	if (cfg->postgres == NULL || cfg->postgres[0] == '\0') {
		fprintf(stderr, "lifeguard-reflector: config: postgres: required (a libpq "
				"conninfo string)\n");
		rf_config_free(cfg);
		return 2;
	}
	return 0;
}

static int schema_connect(const struct rf_config *cfg, struct lg_runtime **rt,
			  struct lg_conn **conn)
{
	struct lg_error err;
	if (lg_runtime_new(NULL, NULL, rt) != 0) {
		fprintf(stderr, "lifeguard-reflector: out of memory\n");
		return 1;
	}
	struct lg_conn_config cc = {.conninfo = cfg->postgres, .connect_timeout_ms = 10000};
	if (lg_conn_new(*rt, &cc, conn, &err) != 0) {
		/* libguard's message names host and port, never the password. */
		fprintf(stderr, "lifeguard-reflector: postgres: %s\n", err.message);
		lg_runtime_free(*rt);
		return 1;
	}
	return 0;
}

static void schema_report(const char *what, const struct lg_error *err)
{
	fprintf(stderr, "lifeguard-reflector: %s: %s%s%s%s\n", what, err->message,
		err->sqlstate[0] ? " (SQLSTATE " : "", err->sqlstate, err->sqlstate[0] ? ")" : "");
}

int rf_cli_setup(int argc, char **argv)
{
	struct rf_config cfg;
	int rc = schema_load(argc, argv, &cfg, NULL, NULL);
	if (rc != 0) {
		return rc;
	}
	struct lg_runtime *rt;
	struct lg_conn *conn;
	rc = schema_connect(&cfg, &rt, &conn);
	rf_config_free(&cfg);
	if (rc != 0) {
		return rc;
	}
	struct lg_error err;
	struct lg_param key = lg_param_int64(RF_SCHEMA_LOCK_KEY);
	rc = lg_conn_exec(conn, "BEGIN", &err);
	rc =
	    rc ? rc
	       : lg_conn_query(conn, "SELECT pg_advisory_xact_lock($1)", &key, 1, NULL, NULL, &err);
	for (int i = 0; rc == 0 && rf_schema_setup_sql[i] != NULL; i++) {
		rc = lg_conn_exec(conn, rf_schema_setup_sql[i], &err);
	}
	rc = rc ? rc : lg_conn_exec(conn, "COMMIT", &err);
	if (rc != 0) {
		schema_report("setup", &err);
	} else {
		printf("lifeguard schema installed (outbox, version_seq, capture triggers, "
		       "lifeguard.reflect)\n");
	}
	lg_conn_free(conn);
	lg_runtime_free(rt);
	return rc == 0 ? 0 : 1;
}

int rf_cli_reflect(int argc, char **argv)
{
	const char *tables[argc > 0 ? argc : 1];
	int ntables = 0;
	struct rf_config cfg;
	int rc = schema_load(argc, argv, &cfg, tables, &ntables);
	if (rc != 0) {
		return rc;
	}
	if (ntables == 0) {
		rf_config_free(&cfg);
		return schema_usage();
	}
	struct lg_runtime *rt;
	struct lg_conn *conn;
	rc = schema_connect(&cfg, &rt, &conn);
	rf_config_free(&cfg);
	if (rc != 0) {
		return rc;
	}
	int failed = 0;
	for (int i = 0; i < ntables; i++) {
		struct lg_error err;
		struct lg_result *r = NULL;
		struct lg_param p = lg_param_text(tables[i]);
		if (lg_conn_query(conn, RF_SCHEMA_REFLECT_SQL, &p, 1, NULL, &r, &err) != 0) {
			schema_report(tables[i], &err);
			failed++;
			continue;
		}
		const char *cols = "";
		lg_result_text(r, 0, 0, &cols, NULL);
		printf("%s: reflected (key %s)\n", tables[i], cols);
		lg_result_free(r);
	}
	lg_conn_free(conn);
	lg_runtime_free(rt);
	return failed == 0 ? 0 : 1;
}
