/*
 * lifeguard-reflector entry point.
 *
 *   lifeguard-reflector [--config FILE] [--node-id N] [--raft ADDR] [--http ADDR]
 *                       [--data-dir DIR] [--join]
 *   lifeguard-reflector status --url http://IP:PORT [--json]
 *   lifeguard-reflector members add|remove ...
 *   lifeguard-reflector setup [--config FILE]
 *   lifeguard-reflector reflect [--config FILE] SCHEMA.TABLE...
 *
 * Exit status: 0 after a graceful shutdown; 1 when the node cannot start; 2 for an invalid or
 * missing setting (the message names the key) or a usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

static int main_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: lifeguard-reflector [--config FILE] [--node-id N] [--raft IP:PORT]\n"
	    "                           [--http IP:PORT] [--data-dir DIR] [--join]\n"
	    "       lifeguard-reflector status --url http://IP:PORT [--json]\n"
	    "       lifeguard-reflector members add --url URL --id N --raft IP:PORT --http "
	    "IP:PORT\n"
	    "       lifeguard-reflector members remove --url URL --id N\n"
	    "       lifeguard-reflector setup [--config FILE]\n"
	    "       lifeguard-reflector reflect [--config FILE] SCHEMA.TABLE...\n"
	    "       lifeguard-reflector --version\n"
	    "Every config key can be set with LIFEGUARD_<KEY>; flags win over the environment,\n"
	    "which wins over the file.\n");
	return out == stdout ? 0 : 2;
}

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past what it used. */
static bool main_flag(int argc, char **argv, int *i, const char *name, const char **value)
{
	size_t len = strlen(name);
	if (strncmp(argv[*i], name, len) != 0) {
		return false;
	}
	if (argv[*i][len] == '=') {
		*value = argv[*i] + len + 1;
		return true;
	}
	if (argv[*i][len] == '\0' && *i + 1 < argc) {
		*value = argv[++*i];
		return true;
	}
	return false;
}

static int main_parse(int argc, char **argv, struct rf_config_flags *f)
{
	for (int i = 1; i < argc; i++) {
		if (main_flag(argc, argv, &i, "--config", &f->config_path) ||
		    main_flag(argc, argv, &i, "--node-id", &f->node_id) ||
		    main_flag(argc, argv, &i, "--raft", &f->raft_address) ||
		    main_flag(argc, argv, &i, "--http", &f->http_address) ||
		    main_flag(argc, argv, &i, "--data-dir", &f->data_dir)) {
			continue;
		}
		if (strcmp(argv[i], "--join") == 0) {
			f->join = true;
			continue;
		}
		fprintf(stderr, "lifeguard-reflector: unknown or incomplete argument '%s'\n",
			argv[i]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "status") == 0) {
		return rf_cli_status(argc - 1, argv + 1);
	}
	if (argc > 1 && strcmp(argv[1], "setup") == 0) {
		return rf_cli_setup(argc - 1, argv + 1);
	}
	if (argc > 1 && strcmp(argv[1], "reflect") == 0) {
		return rf_cli_reflect(argc - 1, argv + 1);
	}
	if (argc > 1 && strcmp(argv[1], "members") == 0) {
		return rf_cli_members(argc - 1, argv + 1);
	}
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		return main_usage(stdout);
	}
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("lifeguard-reflector %s\n", RF_VERSION);
		return 0;
	}
	struct rf_config_flags flags = {0};
	if (main_parse(argc, argv, &flags) != 0) {
		return main_usage(stderr);
	}
	struct rf_config cfg;
	struct rf_config_error err;
	if (rf_config_load(&flags, &cfg, &err) != 0) {
		rf_log(RF_LOG_ERROR, "config.invalid", "%s", err.message);
		return 2;
	}
	int code = rf_daemon_run(&cfg, NULL);
	rf_config_free(&cfg);
	return code;
}
