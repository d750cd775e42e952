/*
 * lifeguard-reflector entry point.
 *
 *   lifeguard-reflector [--config FILE] [--node-id N] [--raft ADDR] [--http ADDR]
 *                       [--data-dir DIR] [--join]
 *   lifeguard-reflector status --url http://IP:PORT [--json]
 *   lifeguard-reflector members add|remove ...
 *   lifeguard-reflector setup [--config FILE]
 *   lifeguard-reflector reflect [--config FILE] SCHEMA.TABLE...
 *   lifeguard-reflector audit [--config FILE] [--table SCHEMA.TABLE] [--sample N]
 *
 * Exit status: 0 after a graceful shutdown; 1 when the node cannot start; 2 for an invalid or
 * missing setting (the message names the key) or a usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "cli_args.h"
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
	    "       lifeguard-reflector audit [--config FILE] [--table SCHEMA.TABLE] [--sample N]\n"
	    "       lifeguard-reflector --version\n"
	    "Every config key can be set with LIFEGUARD_<KEY>; flags win over the environment,\n"
	    "which wins over the file.\n");
	return out == stdout ? 0 : 2;
}

/* --config, then one option per FLAG row of config_keys.h. */
enum {
	MAIN_CONFIG = CLI_OPT_FIRST,
#define CFG_ROW_FLAG(name, kind, secret, flag) MAIN_##name,
	RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_ROW_FLAG, CFG_IGNORE_UINT)
#undef CFG_ROW_FLAG
};

static const struct option main_options[] = {
    {"config", required_argument, NULL, MAIN_CONFIG},
#define CFG_ROW_FLAG(name, kind, secret, flag) {flag, CFG_FLAG_ARG_##kind, NULL, MAIN_##name},
    RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_ROW_FLAG, CFG_IGNORE_UINT)
#undef CFG_ROW_FLAG
	{NULL, 0, NULL, 0},
};

/* Fills f from "--name VALUE" or "--name=VALUE" flags. Values stay text: the config module
 * validates them together with the file and the environment, and names the flag. */
static int main_parse(int argc, char **argv, struct rf_config_flags *f)
{
	int c;
	rf_cli_getopt_begin();
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, main_options, NULL)) != -1) {
		switch (c) {
		case MAIN_CONFIG:
			f->config_path = optarg;
			break;
#define CFG_ROW_FLAG(name, kind, secret, flag)                                                     \
	case MAIN_##name:                                                                          \
		CFG_FLAG_SET_##kind(f->name);                                                      \
		break;
			RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_ROW_FLAG, CFG_IGNORE_UINT)
#undef CFG_ROW_FLAG
		case 1:
			fprintf(stderr, "lifeguard-reflector: unexpected argument '%s'\n", optarg);
			return -1;
		default:
			rf_cli_option_error("lifeguard-reflector", c, argv);
			return -1;
		}
	}
	/* getopt_long() stops at "--"; what follows is no option either. */
	if (optind < argc) {
		fprintf(stderr, "lifeguard-reflector: unexpected argument '%s'\n", argv[optind]);
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
	if (argc > 1 && strcmp(argv[1], "audit") == 0) {
		return rf_cli_audit(argc - 1, argv + 1);
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
