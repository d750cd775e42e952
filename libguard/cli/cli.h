/*
 * The `lifeguard` command: shared declarations of its parts.
 *
 * Exit status, the same for every command: 0 success, 1 the work failed (a migration's
 * statement, a changed or missing applied file, a validation problem), 2 bad input (usage,
 * unknown option, unreadable directory, malformed file name, unreachable server). codegen
 * and doctor follow the same rule (1: drift found, a table cannot be generated, a check
 * failed).
 */
#ifndef LIFEGUARD_CLI_H
#define LIFEGUARD_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include <libguard/migrate.h>

#define CLI_OK      0
#define CLI_FAILED  1
#define CLI_BAD_USE 2

/* `lifeguard migrate ...`: argv[0] is "migrate". */
int cli_migrate(int argc, char **argv);

/* `lifeguard codegen ...`, `lifeguard doctor ...`: argv[0] is the command. */
int cli_codegen(int argc, char **argv);
int cli_doctor(int argc, char **argv);

/* After getopt_long returned c (':' a missing value, else an unknown option): a one-line
 * reason naming cmd; returns CLI_BAD_USE. */
int cli_bad_option(const char *cmd, int c, char **argv);
/* An operand a command does not take: a one-line reason; returns CLI_BAD_USE. */
int cli_bad_operand(const char *cmd, const char *arg);

/* The conninfo to use: flag (--dsn) when set, else $LIFEGUARD_DSN, else "" (PG* variables). */
const char *cli_dsn(const char *flag);

/* v[0..n) as a PostgreSQL text[] literal, every element quoted ("{}" for none); malloc'd,
 * exits on out of memory. */
char *cli_text_array(const char *const *v, size_t n);

/* A libpq connection, or NULL after a one-line reason on stderr. */
PGconn *cli_pg_connect(const char *conninfo);

/* Prints the status table, or its JSON document when json. Returns an exit status. */
int cli_print_status(const struct lg_migration *migs, size_t n, const char *dir, const char *table,
		     bool json);

/* Progress lines of up, down and redo (an lg_migrate_config progress callback). */
void cli_progress(void *ud, const struct lg_migrate_event *ev);

#endif
