/*
 * "host:port" strings for raft and HTTP peers: an IPv4 literal or a DNS host name. Pure.
 */
#ifndef RF_HOSTPORT_H
#define RF_HOSTPORT_H

#include <stdbool.h>

/* "host:port" with a host name of up to 253 characters, plus NUL. */
#define RF_HOSTPORT_MAX 264

/*
 * Splits "host:port" where host is an IPv4 literal or a DNS host name (RFC 1123 labels of
 * letters, digits and '-', 1-63 characters each, dot separated, at most 253 characters) and
 * port is 1-65535. host must hold RF_HOSTPORT_MAX bytes. allow_any: whether 0.0.0.0 is
 * acceptable (a bind address, not one peers can dial). Returns 0 or -1.
 */
int rf_hostport_parse(const char *text, bool allow_any, char host[RF_HOSTPORT_MAX], unsigned *port);

/* True when text is "a.b.c.d:port" (no name to resolve). */
bool rf_hostport_is_ipv4(const char *text);

#endif
