/*
 * Read-your-writes tokens of the users service (pure: no loop, no sockets).
 *
 * A write answers with a Lifeguard-Token header: "lsn=<X/Y>;id=<id>;v=<version>" or
 * "lsn=<X/Y>;id=<id>;v=deleted". lsn is the write's lg_dbh token in pg_lsn text (the primary's
 * WAL position once the write had committed: every replica that replayed that far holds the
 * write; lg_token_format); id and v are the row the
 * write left (v the row's version column after the write). A read that sends the token back
 * is served only by a copy that holds the write: a replica past lsn, a cached row of id with
 * a version >= v (none for a delete), else the primary.
 */
#ifndef SVC_TOKEN_H
#define SVC_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct svc_token {
	bool set; /* false: the request carried no token */
	uint64_t lsn;
	int64_t id;
	int64_t version; /* meaningful unless deleted */
	bool deleted;
};

/* "" parses as no token. false: malformed (the request gets 400). */
bool svc_token_parse(const char *text, struct svc_token *out);
/* Writes the header value; false when it does not fit in len. */
bool svc_token_format(const struct svc_token *t, char *buf, size_t len);
/* An id in a URL or a list: a decimal in 1..INT64_MAX, no sign, no spaces. */
bool svc_id_parse(const char *text, size_t len, int64_t *out);

#endif
