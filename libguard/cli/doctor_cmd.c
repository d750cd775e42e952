/*
 * `lifeguard doctor --config F [--dsn CONNINFO] [--json]`: reads the configuration, runs every
 * check (doctor_checks.c) and prints one line per check. Exit status: 0 every check ok or
 * warn, 1 a check failed, 2 bad input (usage, unreadable or invalid configuration).
 *
 * F is either the doctor's own file, which names the reflector's configuration file and adds
 * the libguard-side settings, or a reflector configuration file alone (then the settings
 * below keep their defaults and the fence TTL check warns that no lag bound is set):
 *   {"reflector_config": "reflector.json",       relative to F's directory
 *    "primary": "conninfo",                       default: the reflector's "postgres"
 *    "replicas": ["conninfo", ...],
 *    "replica_lag_bound_ms": 5000,
 *    "fill_deadline_ms": 1000,                    lg_cache_config's default
 *    "reflected_tables": ["public.users", ...],   default: every table with capture triggers
 *    "outbox": {"warn_rows": 1000, "fail_rows": 100000, "warn_age_s": 10, "fail_age_s": 300},
 *    "timeout_ms": 3000}
 * The reflector file is read exactly as the reflector reads it (rf_config_load, with its
 * LIFEGUARD_* environment overrides): Redis, the nodes (peers' http_address), fence_ttl_ms.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "doctor.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lifeguard doctor --config F [--dsn CONNINFO] [--json]\n"
		"\n"
		"Checks the primary, the replicas, Redis (eviction policy, persistence), the\n"
		"reflector cluster (GET /status of every node), the fence TTL against the replica\n"
		"lag bound plus the fill deadline, the reflected tables' triggers and the outbox\n"
		"backlog. One line per check: ok, warn or fail.\n"
		"\n"
		"options:\n"
		"  --config F          the doctor's file or a reflector configuration file\n"
		"                      (docs/cli.md describes both)\n"
		"  --dsn CONNINFO      the primary; default: the file's, then $LIFEGUARD_DSN,\n"
		"                      then PG* variables\n"
		"  --json              one JSON document instead of lines\n"
		"  --help              this text\n"
		"\nExit status: 0 no check failed, 1 a check failed, 2 bad input.\n");
}

void doc_line(struct doc_report *r, enum doc_level level, const char *check, const char *fmt, ...)
{
	static const char *const names[] = {"ok", "warn", "fail"};
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	r->counts[level]++;
	if (r->json != NULL) {
		json_t *o = json_object();
		json_object_set_new(o, "check", json_string(check));
		json_object_set_new(o, "status", json_string(names[level]));
		json_object_set_new(o, "detail", json_string(detail));
		json_array_append_new(r->json, o);
		return;
	}
	printf("%-4s  %s: %s\n", names[level], check, detail);
	fflush(stdout);
}

/* The doctor's own settings, over the defaults; -1 after a one-line reason. */
static int get_int(json_t *o, const char *key, int64_t min, int64_t *out)
{
	json_t *v = json_object_get(o, key);
	if (v == NULL) {
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min) {
		fprintf(stderr, "lifeguard: doctor: %s: want an integer >= %lld\n", key,
			(long long)min);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static int get_strings(json_t *o, const char *key, const char **out, size_t *n)
{
	json_t *v = json_object_get(o, key), *e;
	size_t i;
	if (v == NULL) {
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > DOC_MAX_LIST) {
		fprintf(stderr, "lifeguard: doctor: %s: want an array of at most %d strings\n", key,
			DOC_MAX_LIST);
		return -1;
	}
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e)) {
			fprintf(stderr, "lifeguard: doctor: %s[%zu]: want a string\n", key, i);
			return -1;
		}
		out[i] = json_string_value(e);
	}
	*n = json_array_size(v);
	return 0;
}

static const char *const doctor_keys[] = {
    "reflector_config", "primary",          "replicas", "replica_lag_bound_ms",
    "fill_deadline_ms", "reflected_tables", "outbox",   "timeout_ms",
};

static int doctor_settings(json_t *root, struct doc_config *c)
{
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		size_t i = 0;
		while (i < sizeof(doctor_keys) / sizeof(doctor_keys[0]) &&
		       strcmp(doctor_keys[i], key) != 0) {
			i++;
		}
		if (i == sizeof(doctor_keys) / sizeof(doctor_keys[0])) {
			fprintf(stderr, "lifeguard: doctor: unknown key \"%s\" (docs/cli.md)\n",
				key);
			return -1;
		}
	}
	json_t *p = json_object_get(root, "primary");
	if (p != NULL && !json_is_string(p)) {
		fprintf(stderr, "lifeguard: doctor: primary: want a conninfo string\n");
		return -1;
	}
	if (p != NULL) {
		c->primary = json_string_value(p);
	}
	json_t *ob = json_object_get(root, "outbox");
	if (ob != NULL && !json_is_object(ob)) {
		fprintf(stderr, "lifeguard: doctor: outbox: want an object\n");
		return -1;
	}
	if (get_strings(root, "replicas", c->replicas, &c->nreplicas) != 0 ||
	    get_strings(root, "reflected_tables", c->tables, &c->ntables) != 0 ||
	    get_int(root, "replica_lag_bound_ms", 0, &c->lag_bound_ms) != 0 ||
	    get_int(root, "fill_deadline_ms", 1, &c->fill_deadline_ms) != 0 ||
	    get_int(root, "timeout_ms", 1, &c->timeout_ms) != 0) {
		return -1;
	}
	if (ob != NULL && (get_int(ob, "warn_rows", 0, &c->outbox_warn_rows) != 0 ||
			   get_int(ob, "fail_rows", 0, &c->outbox_fail_rows) != 0 ||
			   get_int(ob, "warn_age_s", 0, &c->outbox_warn_age_s) != 0 ||
			   get_int(ob, "fail_age_s", 0, &c->outbox_fail_age_s) != 0)) {
		return -1;
	}
	return 0;
}

/* What the reflector's file says; its strings are copied into keep (freed at exit). */
static int reflector_settings(const char *path, struct doc_config *c, struct rf_config *rf)
{
	struct rf_config_flags flags = {.config_path = path};
	struct rf_config_error err = {0};
	if (rf_config_load(&flags, rf, &err) != 0) {
		fprintf(stderr, "lifeguard: doctor: reflector configuration %s: %s\n", path,
			err.message);
		return -1;
	}
	if (c->primary == NULL) {
		c->primary = rf->postgres;
	}
	c->redis_host = rf->redis.host != NULL ? rf->redis.host : "127.0.0.1";
	c->redis_port = rf->redis.port != 0 ? (int)rf->redis.port : 6379;
	c->redis_db = (int)rf->redis.db;
	c->redis_password = rf->redis.password;
	c->fence_ttl_ms = rf->fence_ttl_ms;
	for (size_t i = 0; i < rf->n_peers && c->nnodes < DOC_MAX_LIST; i++) {
		if (rf->peers[i].http_address[0] != '\0') {
			c->nodes[c->nnodes++] = rf->peers[i].http_address;
		}
	}
	if (rf->n_peers == 0 && rf->http_address[0] != '\0') {
		c->nodes[c->nnodes++] = rf->http_address;
	}
	return 0;
}

int cli_doctor(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"dsn", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *dsn = NULL;
	bool json = false;
	int ch;
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			dsn = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_bad_option("doctor", ch, argv);
		}
	}
	if (optind < argc) {
		return cli_bad_operand("doctor", argv[optind]);
	}
	if (config == NULL) {
		fprintf(stderr, "lifeguard: doctor needs --config F (try --help)\n");
		return CLI_BAD_USE;
	}
	json_error_t jerr;
	json_t *root = json_load_file(config, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL || !json_is_object(root)) {
		fprintf(stderr, "lifeguard: doctor: %s: %s\n", config,
			root == NULL ? jerr.text : "want a JSON object");
		json_decref(root);
		return CLI_BAD_USE;
	}
	struct doc_config c = {
	    .lag_bound_ms = -1,
	    .fill_deadline_ms = 1000,
	    .outbox_warn_rows = 1000,
	    .outbox_fail_rows = 100000,
	    .outbox_warn_age_s = 10,
	    .outbox_fail_age_s = 300,
	    .timeout_ms = 3000,
	};
	struct rf_config rf = {0};
	char rf_path[4096];
	int rc = CLI_OK;
	json_t *ref = json_object_get(root, "reflector_config");
	if (ref == NULL) {
		/* A reflector configuration file on its own. */
		snprintf(rf_path, sizeof(rf_path), "%s", config);
	} else if (!json_is_string(ref) || doctor_settings(root, &c) != 0) {
		if (!json_is_string(ref)) {
			fprintf(stderr, "lifeguard: doctor: reflector_config: want a file name\n");
		}
		rc = CLI_BAD_USE;
	} else if (json_string_value(ref)[0] == '/') {
		snprintf(rf_path, sizeof(rf_path), "%s", json_string_value(ref));
	} else {
		char copy[4096];
		snprintf(copy, sizeof(copy), "%s", config);
		snprintf(rf_path, sizeof(rf_path), "%s/%s", dirname(copy), json_string_value(ref));
	}
	if (rc == CLI_OK && reflector_settings(rf_path, &c, &rf) != 0) {
		rc = CLI_BAD_USE;
	}
	if (rc == CLI_OK) {
		if (dsn != NULL || c.primary == NULL) {
			c.primary = cli_dsn(dsn);
		}
		struct doc_report r = {.json = json ? json_array() : NULL};
		doc_check_postgres(&c, &r);
		doc_check_redis(&c, &r);
		doc_check_reflector(&c, &r);
		doc_check_fence_ttl(&c, &r);
		if (json) {
			json_t *out = json_object();
			json_object_set_new(out, "checks", r.json);
			json_object_set_new(out, "ok", json_integer(r.counts[DOC_OK]));
			json_object_set_new(out, "warn", json_integer(r.counts[DOC_WARN]));
			json_object_set_new(out, "fail", json_integer(r.counts[DOC_FAIL]));
			json_dumpf(out, stdout, JSON_INDENT(2));
			printf("\n");
			json_decref(out);
		} else {
			printf("%d ok, %d warn, %d fail\n", r.counts[DOC_OK], r.counts[DOC_WARN],
			       r.counts[DOC_FAIL]);
		}
		rc = r.counts[DOC_FAIL] > 0 ? CLI_FAILED : CLI_OK;
	}
	rf_config_free(&rf);
	json_decref(root);
	return rc;
}
