/*
 * What every `lifeguard` command shares: the connection rules (--dsn CONNINFO, else
 * $LIFEGUARD_DSN, else libpq's own PG* variables: an empty conninfo) and the one-line
 * reasons for bad options.
 */
#include <getopt.h>
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

int cli_bad_option(const char *cmd, int c, char **argv)
{
	if (c == ':') {
		fprintf(stderr, "lifeguard: %s needs a value\n", argv[optind - 1]);
	} else {
		fprintf(stderr, "lifeguard: %s: unknown option '%s'\n", cmd, argv[optind - 1]);
	}
	return CLI_BAD_USE;
}

int cli_bad_operand(const char *cmd, const char *arg)
{
	fprintf(stderr, "lifeguard: %s: unexpected argument '%s'\n", cmd, arg);
	return CLI_BAD_USE;
}

char *cli_text_array(const char *const *v, size_t n)
{
	size_t len = 3;
	for (size_t i = 0; i < n; i++) {
		len += 2 * strlen(v[i]) + 3;
	}
	char *s = malloc(len), *p = s;
	if (s == NULL) {
		fprintf(stderr, "lifeguard: out of memory\n");
		exit(CLI_FAILED);
	}
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0) {
			*p++ = ',';
		}
		*p++ = '"';
		for (const char *q = v[i]; *q != '\0'; q++) {
			if (*q == '"' || *q == '\\') {
				*p++ = '\\';
			}
			*p++ = *q;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return s;
}
