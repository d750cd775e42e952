/*
 * `lifeguard-reflector audit --config FILE [--table SCHEMA.TABLE] [--sample N]`: the leader's
 * continuous verification (audit.c), run once: compares up to N cached keys (default 1000;
 * of one table with --table) with their rows on the primary and prints one line per stale
 * key, then a summary. It only reads: Redis and PostgreSQL are left as they are.
 *
 * Exit status: 0 no stale key, 1 at least one stale key, 2 bad usage or configuration,
 * 3 PostgreSQL or Redis failed (nothing conclusive).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <libguard/libguard.h>

#include "audit.h"
#include "cli_args.h"
#include "coh_int.h"
#include "config.h"
#include "log.h"

static int audit_usage(void)
{
	fprintf(stderr, "usage: lifeguard-reflector audit [--config FILE] [--table SCHEMA.TABLE]"
			" [--sample N]\n");
	return 2;
}

enum { AUDIT_CONFIG = CLI_OPT_FIRST, AUDIT_TABLE, AUDIT_SAMPLE };

static const struct option audit_options[] = {
    {"config", required_argument, NULL, AUDIT_CONFIG},
    {"table", required_argument, NULL, AUDIT_TABLE},
    {"sample", required_argument, NULL, AUDIT_SAMPLE},
    {NULL, 0, NULL, 0},
};

static int audit_parse(int argc, char **argv, struct rf_config_flags *flags, const char **table,
		       uint64_t *sample)
{
	int c;
	rf_cli_getopt_begin();
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, audit_options, NULL)) != -1) {
		switch (c) {
		case AUDIT_CONFIG:
			flags->config_path = optarg;
			break;
		case AUDIT_TABLE:
			*table = optarg;
			break;
		case AUDIT_SAMPLE:
			if (rf_cli_parse_uint(optarg, 1, 100000000, sample) != 0) {
				fprintf(stderr, "lifeguard-reflector: --sample: must be an integer "
						"from 1 to 100000000\n");
				return -1;
			}
			break;
		default:
			return rf_cli_unexpected("lifeguard-reflector", c, argv);
		}
	}
	return rf_cli_no_operands("lifeguard-reflector", argc, argv);
}

/* Rounds until the sample is checked or the keyspace was walked once. */
static int audit_run(struct rf_coh_session *s, const char *table, uint64_t sample,
		     uint64_t *checked, uint64_t *stale)
{
	struct rf_audit_state a;
	memset(&a, 0, sizeof(a));
	a.report = stdout;
	int rc = COH_OK;
	for (;;) {
		uint64_t left = sample - *checked;
		struct rf_audit_round round;
		rc = rf__coh_audit(s, &a, table, left < 1000 ? (size_t)left : 1000, &round);
		if (rc != COH_OK) {
			break;
		}
		*checked += round.checked;
		*stale += round.stale;
		if (round.wrapped || *checked >= sample) {
			break;
		}
		rf_audit_state_free(&a); /* the CLI reports each key once */
	}
	rf_audit_state_free(&a);
	return rc;
}

int rf_cli_audit(int argc, char **argv)
{
	struct rf_config_flags flags = {0};
	const char *table = NULL;
	uint64_t sample = 1000;
	if (audit_parse(argc, argv, &flags, &table, &sample) != 0) {
		return audit_usage();
	}
	struct rf_config cfg;
	struct rf_config_error cerr;
	if (rf_config_load(&flags, &cfg, &cerr) != 0) {
		fprintf(stderr, "lifeguard-reflector: %s\n", cerr.message);
		return 2;
	}
	if (cfg.postgres == NULL || !cfg.redis.set) {
		fprintf(stderr,
			"lifeguard-reflector: config: postgres and redis are both required\n");
		rf_config_free(&cfg);
		return 2;
	}
	rf_log_setup(RF_LOG_WARN, cfg.node_id);
	rf_config_register_secrets(&cfg);
	struct lg_runtime *rt = NULL;
	struct rf_coherence *coh = NULL;
	if (lg_runtime_new(NULL, NULL, &rt) != 0 || rf_coherence_new(rt, &cfg, &coh) != 0) {
		fprintf(stderr, "lifeguard-reflector: out of memory\n");
		lg_runtime_free(rt);
		rf_config_free(&cfg);
		return 3;
	}
	struct rf_coh_session *s = rf__coh_session_open(coh);
	uint64_t checked = 0;
	uint64_t stale = 0;
	int rc = s != NULL ? audit_run(s, table, sample, &checked, &stale) : COH_RETRY;
	if (s != NULL) {
		rf__coh_session_release(s);
	}
	lg_runtime_free(rt);
	rf_coherence_free(coh);
	rf_config_free(&cfg);
	if (rc != COH_OK) {
		fprintf(stderr, "lifeguard-reflector: audit: PostgreSQL or Redis failed (see the "
				"log lines above); nothing conclusive\n");
		return 3;
	}
	printf("checked %llu cached keys%s%s: %llu stale\n", (unsigned long long)checked,
	       table != NULL ? " of " : "", table != NULL ? table : "", (unsigned long long)stale);
	return stale > 0 ? 1 : 0;
}
