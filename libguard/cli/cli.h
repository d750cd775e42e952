/*
 * The `lifeguard` command: shared declarations of its parts.
 *
 * Exit status, the same for every command: 0 success, 1 the work failed (a migration's
 * statement, a changed or missing applied file, a validation problem), 2 bad input (usage,
 * unknown option, unreadable directory, malformed file name, unreachable server).
 */
#ifndef LIFEGUARD_CLI_H
#define LIFEGUARD_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <libguard/migrate.h>

#define CLI_OK      0
#define CLI_FAILED  1
#define CLI_BAD_USE 2

/* `lifeguard migrate ...`: argv[0] is "migrate". */
int cli_migrate(int argc, char **argv);

/* Prints the status table, or its JSON document when json. Returns an exit status. */
int cli_print_status(const struct lg_migration *migs, size_t n, const char *dir, const char *table,
		     bool json);

/* Progress lines of up, down and redo (an lg_migrate_config progress callback). */
void cli_progress(void *ud, const struct lg_migrate_event *ev);

#endif
