/*
 * "host:port" parsing for peers by name (hostport.c).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "hostport.h"

static bool ok(const char *text, bool allow_any)
{
	char host[RF_HOSTPORT_MAX];
	unsigned port = 0;
	return rf_hostport_parse(text, allow_any, host, &port) == 0;
}

Test(hostport, accepts_ipv4_literals_and_dns_names)
{
	char host[RF_HOSTPORT_MAX];
	unsigned port = 0;
	cr_assert_eq(rf_hostport_parse("10.0.0.1:7000", false, host, &port), 0);
	cr_assert_str_eq(host, "10.0.0.1");
	cr_assert_eq(port, 7000);
	const char *name =
	    "lifeguard-reflector-1.lifeguard-reflector-headless.prod.svc.cluster.local";
	char text[RF_HOSTPORT_MAX];
	snprintf(text, sizeof(text), "%s:7000", name);
	cr_assert_eq(rf_hostport_parse(text, false, host, &port), 0);
	cr_assert_str_eq(host, name);
	cr_assert(ok("localhost:1", false));
	cr_assert(ok("a:65535", false));
	cr_assert(ok("0.0.0.0:8080", true));
	cr_assert(rf_hostport_is_ipv4("10.0.0.1:7000"));
	cr_assert(!rf_hostport_is_ipv4("node-1:7000"));
}

Test(hostport, rejects_bad_names_ports_and_any)
{
	const char *bad[] = {
	    "",           "node",         ":7000",      "node:",       "node:0",
	    "node:65536", "node:70a",     "-node:7000", "node-:7000",  "a..b:7000",
	    ".a:7000",    "a.:7000",      "a_b:7000",   "a b:7000",    "10.0.0.256:7000",
	    "1.2.3:7000", "0.0.0.0:7000", "[::1]:7000", "node:123456",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert(!ok(bad[i], false), "accepted \"%s\"", bad[i]);
	}
	char label[80];
	memset(label, 'a', 64);
	snprintf(label + 64, sizeof(label) - 64, ":7000");
	cr_assert(!ok(label, false), "a 64-character label");
	char longname[300];
	size_t n = 0;
	while (n < 254) {
		n += (size_t)snprintf(longname + n, sizeof(longname) - n, "abcdefghi.");
	}
	snprintf(longname + n, sizeof(longname) - n, "x:7000");
	cr_assert(!ok(longname, false), "a name over 253 characters");
}
