/*
 * The connection rules every `lifeguard` command shares: --dsn CONNINFO, else
 * $LIFEGUARD_DSN, else libpq's own PG* variables (an empty conninfo).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *cli_dsn(const char *flag)
{
	if (flag != NULL) {
		return flag;
	}
	const char *env = getenv("LIFEGUARD_DSN");
	return env != NULL ? env : "";
}

PGconn *cli_pg_connect(const char *conninfo)
{
	PGconn *pg = PQconnectdb(conninfo);
	if (pg == NULL) {
		fprintf(stderr, "lifeguard: out of memory connecting to PostgreSQL\n");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		/* libpq's message may span lines: keep the first. */
		const char *msg = PQerrorMessage(pg);
		size_t len = strcspn(msg, "\n");
		fprintf(stderr, "lifeguard: cannot connect to PostgreSQL: %.*s\n", (int)len, msg);
		PQfinish(pg);
		return NULL;
	}
	PQclear(PQexec(pg, "SET client_min_messages = warning"));
	return pg;
}
