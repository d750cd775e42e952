/*
 * What `lifeguard migrate` prints: progress lines, and the status as a table or as JSON.
 *
 * The JSON document is built with jansson rather than by hand so that names and paths with
 * quotes or non-ASCII bytes stay valid JSON. Its shape (one object):
 *   {"dir": ..., "table": ..., "applied": N, "pending": N, "changed": N, "missing": N,
 *    "migrations": [{"version", "name", "state", "no_transaction", "up_file", "down_file",
 *                    "checksum", "applied_checksum", "applied_at", "execution_ms"}]}
 * with state one of "pending", "applied", "changed", "missing", and null for what is unknown.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <time.h>

#include "cli.h"

static const char *state_name(enum lg_migration_state s)
{
	switch (s) {
	case LG_MIGRATION_APPLIED:
		return "applied";
	case LG_MIGRATION_CHANGED:
		return "changed";
	case LG_MIGRATION_MISSING:
		return "missing";
	default:
		return "pending";
	}
}

void cli_progress(void *ud, const struct lg_migrate_event *ev)
{
	(void)ud;
	const char *what = ev->kind == LG_MIGRATE_APPLIED    ? "applied"
			   : ev->kind == LG_MIGRATE_REVERTED ? "reverted"
							     : "would apply";
	if (ev->kind == LG_MIGRATE_WOULD_APPLY) {
		printf("%s %" PRId64 " %s%s\n", what, ev->migration->version, ev->migration->name,
		       ev->migration->no_transaction ? " (no transaction)" : "");
	} else {
		printf("%s %" PRId64 " %s (%" PRId64 " ms)\n", what, ev->migration->version,
		       ev->migration->name, ev->elapsed_ms);
	}
	fflush(stdout);
}

/* applied_at as ISO 8601 UTC with seconds. */
static void iso_time(int64_t us, char *buf, size_t size)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *migration_json(const struct lg_migration *mg)
{
	char when[32];
	bool applied = mg->state != LG_MIGRATION_PENDING;
	iso_time(mg->applied_at_us, when, sizeof(when));
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(mg->version));
	json_object_set_new(o, "name", json_string(mg->name));
	json_object_set_new(o, "state", json_string(state_name(mg->state)));
	json_object_set_new(o, "no_transaction", json_boolean(mg->no_transaction));
	json_object_set_new(o, "up_file", str_or_null(mg->up_path));
	json_object_set_new(o, "down_file", str_or_null(mg->down_path));
	json_object_set_new(o, "checksum", str_or_null(mg->checksum));
	json_object_set_new(o, "applied_checksum", str_or_null(mg->applied_checksum));
	json_object_set_new(o, "applied_at", applied ? json_string(when) : json_null());
	json_object_set_new(o, "execution_ms",
			    applied ? json_integer(mg->execution_ms) : json_null());
	return o;
}

static int print_json(const struct lg_migration *migs, size_t n, const char *dir, const char *table,
		      const size_t counts[4])
{
	json_t *root = json_object(), *list = json_array();
	json_object_set_new(root, "dir", json_string(dir));
	json_object_set_new(root, "table", json_string(table));
	for (int s = 0; s < 4; s++) {
		json_object_set_new(root, state_name((enum lg_migration_state)s),
				    json_integer((json_int_t)counts[s]));
	}
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(list, migration_json(&migs[i]));
	}
	json_object_set_new(root, "migrations", list);
	int rc = json_dumpf(root, stdout, JSON_INDENT(2)) == 0 ? CLI_OK : CLI_FAILED;
	json_decref(root);
	printf("\n");
	return rc;
}

int cli_print_status(const struct lg_migration *migs, size_t n, const char *dir, const char *table,
		     bool json)
{
	size_t counts[4] = {0};
	for (size_t i = 0; i < n; i++) {
		counts[migs[i].state]++;
	}
	if (json) {
		return print_json(migs, n, dir, table, counts);
	}
	printf("%-10s %-8s %-20s %s\n", "VERSION", "STATE", "APPLIED AT", "NAME");
	for (size_t i = 0; i < n; i++) {
		char when[32] = "-";
		if (migs[i].state != LG_MIGRATION_PENDING) {
			iso_time(migs[i].applied_at_us, when, sizeof(when));
		}
		printf("%-10" PRId64 " %-8s %-20s %s%s\n", migs[i].version,
		       state_name(migs[i].state), when, migs[i].name,
		       migs[i].no_transaction ? " (no transaction)" : "");
	}
	printf("%zu applied, %zu pending, %zu changed, %zu missing (%s in %s)\n", counts[1],
	       counts[0], counts[2], counts[3], dir, table);
	return CLI_OK;
}
