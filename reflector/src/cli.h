/* Operator subcommands of lifeguard-reflector (they talk HTTP to running nodes). */
#ifndef RF_CLI_H
#define RF_CLI_H

/* `status --url http://IP:PORT [--json] [--timeout-ms N]`. Returns the exit status. */
int rf_cli_status(int argc, char **argv);

/*
 * `members add --url URL --id N --raft ADDR --http ADDR` and `members remove --url URL --id N`.
 * The admin token comes from LIFEGUARD_ADMIN_TOKEN (not a flag: flags show in ps).
 * A follower's 503 names the leader; the request is then sent there.
 */
int rf_cli_members(int argc, char **argv);

/* `setup [--config FILE]`: installs the lifeguard schema in PostgreSQL (idempotent). */
int rf_cli_setup(int argc, char **argv);

/* `reflect [--config FILE] SCHEMA.TABLE...`: enables reflection on each table. */
int rf_cli_reflect(int argc, char **argv);

#endif
