/*
 * Connecting by a host name with several addresses. Run by conn_hosts.sh in a private mount
 * namespace whose /etc/hosts names "lg-multi" as ::1 first (where the test PostgreSQL does not
 * listen: refused) and 127.0.0.1 second. Only the first resolved address used to be tried.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include <libguard/libguard.h>

#include "lg_test.h"

Test(conn_hosts, every_resolved_address_is_tried)
{
	struct lg_runtime *rt;
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	char dsn[512];
	snprintf(dsn, sizeof(dsn), "%s host=lg-multi", lg_test_pg_dsn());
	struct lg_conn_config cfg = {.conninfo = dsn};
	struct lg_conn *c = NULL;
	struct lg_error err;
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, &err), 0, "%s", err.message);
	struct lg_result *r = NULL;
	cr_assert_eq(lg_conn_query(c, "SELECT inet_server_addr()::text", NULL, 0, NULL, &r, &err),
		     0, "%s", err.message);
	const char *addr = NULL;
	cr_assert_eq(lg_result_text(r, 0, 0, &addr, NULL), 0);
	cr_assert_str_eq(addr, "127.0.0.1/32");
	lg_result_free(r);
	lg_conn_free(c);
	/* A name whose every address refuses still fails, naming the host once. */
	snprintf(dsn, sizeof(dsn), "%s host=lg-nowhere", lg_test_pg_dsn());
	cfg.conninfo = dsn;
	cr_assert_eq(lg_conn_new(rt, &cfg, &c, &err), LG_ECONNECT);
	cr_assert(strstr(err.message, "connect lg-nowhere:") != NULL, "%s", err.message);
	lg_runtime_free(rt);
}
