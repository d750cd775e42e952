/*
 * Host name and port parsing (RFC 1123 section 2.1 host names, IPv4 dotted quads).
 */
#include "hostport.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

/* A DNS host name: dot-separated labels of [A-Za-z0-9-], 1-63 each, no '-' at either end. */
static bool hostport_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 253) {
		return false;
	}
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-') {
				return false;
			}
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-') {
			return false;
		}
		if (c == '-' && label == 0) {
			return false;
		}
		if (++label > 63) {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

static int hostport_port(const char *p, unsigned *port)
{
	unsigned long v = 0;
	if (*p == '\0' || strlen(p) > 5) {
		return -1;
	}
	for (; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p)) {
			return -1;
		}
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535) {
		return -1;
	}
	*port = (unsigned)v;
	return 0;
}

int rf_hostport_parse(const char *text, bool allow_any, char host[RF_HOSTPORT_MAX], unsigned *port)
{
	const char *colon = strrchr(text, ':');
	if (colon == NULL || colon == text || (size_t)(colon - text) >= RF_HOSTPORT_MAX) {
		return -1;
	}
	size_t len = (size_t)(colon - text);
	memcpy(host, text, len);
	host[len] = '\0';
	if (hostport_port(colon + 1, port) != 0) {
		return -1;
	}
	struct in_addr in;
	if (inet_pton(AF_INET, host, &in) == 1) {
		return !allow_any && in.s_addr == htonl(INADDR_ANY) ? -1 : 0;
	}
	/* All digits and dots but not a valid quad (e.g. "10.0.0.256"): a typo, not a name. */
	if (strspn(host, "0123456789.") == len) {
		return -1;
	}
	return hostport_name_ok(host, len) ? 0 : -1;
}

bool rf_hostport_is_ipv4(const char *text)
{
	char host[RF_HOSTPORT_MAX];
	unsigned port;
	struct in_addr in;
	return rf_hostport_parse(text, true, host, &port) == 0 &&
	       inet_pton(AF_INET, host, &in) == 1;
}
