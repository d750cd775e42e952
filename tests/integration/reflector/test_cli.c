/*
 * Command-line parsing of lifeguard-reflector, against the real binary: every flag spelling
 * ("--flag VALUE" and "--flag=VALUE"), strict numbers, and usage errors that exit 2 naming
 * the argument. No cluster runs: a command that parses sends its request to a loopback port
 * that is bound but not listening, so it is refused at once and the command exits 1.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rf_harness.h"

static void teardown(void)
{
	rfh_cleanup();
}

TestSuite(cli_args, .fini = teardown, .timeout = 120);

/* A loopback URL that refuses connections; *fd keeps its port reserved until closed. */
static void refusing_url(char *url, size_t cap, int *fd)
{
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(*fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	cr_assert(bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(getsockname(*fd, (struct sockaddr *)&sa, &len) == 0);
	snprintf(url, cap, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
}

/* Runs the binary with args (NULL-terminated) and returns its exit code; out gets stdout and
 * stderr. */
static int run(const char *const *args, char *out, size_t cap)
{
	const char *argv[16] = {rfh_bin()};
	size_t n = 1;
	for (; args[n - 1] != NULL; n++) {
		cr_assert(n + 1 < sizeof(argv) / sizeof(argv[0]));
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;
	int status = rfh_run(argv, NULL, out, cap, 60000);
	cr_assert(status != -1 && WIFEXITED(status), "%s did not exit: %s", args[0], out);
	return WEXITSTATUS(status);
}

Test(cli_args, member_ids_must_be_plain_positive_numbers)
{
	char url[64], out[4096];
	int fd;
	refusing_url(url, sizeof(url), &fd);
	static const char *bad[] = {
	    "-1", "0", "5s", "+5", " 5", "", "0x5", "9223372036854775808", "18446744073709551616"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *const argv[] = {"members", "remove", "--url", url,
					    "--id",    bad[i],   NULL};
		cr_expect_eq(run(argv, out, sizeof(out)), 2, "--id '%s': %s", bad[i], out);
		char want[160];
		snprintf(want, sizeof(want),
			 "--id must be a whole number from 1 to "
			 "9223372036854775807, not '%s'",
			 bad[i]);
		cr_expect(strstr(out, want) != NULL, "--id '%s': %s", bad[i], out);
	}
	const char *add[] = {"members", "add",    "--url",          url,      "--id",
			     "-1",      "--raft", "127.0.0.1:7001", "--http", "127.0.0.1:8001",
			     NULL};
	cr_expect_eq(run(add, out, sizeof(out)), 2, "%s", out);
	close(fd);
	RFH_PASS();
}

Test(cli_args, status_timeouts_must_be_plain_positive_numbers)
{
	char url[64], out[4096];
	int fd;
	refusing_url(url, sizeof(url), &fd);
	static const char *bad[] = {"5s", "-1", "0", "", "1e3", " 5", "2147483648"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *const argv[] = {"status", "--url", url, "--timeout-ms", bad[i], NULL};
		cr_expect_eq(run(argv, out, sizeof(out)), 2, "--timeout-ms '%s': %s", bad[i], out);
		char want[160];
		snprintf(want, sizeof(want),
			 "--timeout-ms must be a whole number from 1 to "
			 "2147483647, not '%s'",
			 bad[i]);
		cr_expect(strstr(out, want) != NULL, "--timeout-ms '%s': %s", bad[i], out);
	}
	close(fd);
	RFH_PASS();
}

Test(cli_args, both_spellings_of_every_subcommand_flag_reach_the_node)
{
	char url[64], eq_url[80], out[4096];
	int fd;
	refusing_url(url, sizeof(url), &fd);
	snprintf(eq_url, sizeof(eq_url), "--url=%s", url);
	const char *address = url + strlen("http://");
	const char *const cases[][12] = {
	    {"status", "--url", url, "--timeout-ms", "500", "--json", NULL},
	    {"status", eq_url, "--timeout-ms=500", NULL},
	    {"members", "remove", "--url", url, "--id", "5", NULL},
	    {"members", "remove", "--id=5", eq_url, NULL},
	    {"members", "add", "--url", url, "--id", "4", "--raft", "127.0.0.1:7004", "--http",
	     "127.0.0.1:8004", NULL},
	    {"members", "add", eq_url, "--id=4", "--raft=127.0.0.1:7004", "--http=127.0.0.1:8004",
	     NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Exit 1 naming the address: the command line parsed and a request was tried. */
		cr_expect_eq(run(cases[i], out, sizeof(out)), 1, "case %zu: %s", i, out);
		cr_expect(strstr(out, address) != NULL, "case %zu: %s", i, out);
	}
	close(fd);
	RFH_PASS();
}

Test(cli_args, config_flag_in_both_spellings)
{
	static const char path[] = "/nonexistent/rf-cli.json";
	char out[4096];
	const char *const cases[][8] = {
	    {"--config", path, NULL},
	    {"--config=/nonexistent/rf-cli.json", NULL},
	    {"--join", "--node-id", "3", "--config", path, NULL},
	    {"setup", "--config", path, NULL},
	    {"setup", "--config=/nonexistent/rf-cli.json", NULL},
	    {"reflect", "--config", path, "public.t", NULL},
	    {"reflect", "public.t", "--config=/nonexistent/rf-cli.json", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Exit 2 from reading the file named by the flag. */
		cr_expect_eq(run(cases[i], out, sizeof(out)), 2, "case %zu: %s", i, out);
		cr_expect(strstr(out, "cannot read /nonexistent/rf-cli.json") != NULL,
			  "case %zu: %s", i, out);
	}
	RFH_PASS();
}

Test(cli_args, usage_errors_exit_2_naming_the_argument)
{
	char url[64], out[4096];
	int fd;
	refusing_url(url, sizeof(url), &fd);
	const struct {
		const char *argv[8];
		const char *want;
	} cases[] = {
	    {{"--bogus", NULL}, "unknown option '--bogus'"},
	    {{"-x", NULL}, "unknown option '-x'"},
	    {{"--config", NULL}, "option '--config' needs a value"},
	    {{"--join=yes", NULL}, "option '--join=yes' takes no value"},
	    {{"stray", NULL}, "unexpected argument 'stray'"},
	    {{"--join", "--", "stray", NULL}, "unexpected argument 'stray'"},
	    {{"status", "--url", NULL}, "option '--url' needs a value"},
	    {{"status", "--url", url, "--verbose", NULL}, "unknown option '--verbose'"},
	    {{"status", "--url", url, "extra", NULL}, "unexpected argument 'extra'"},
	    {{"status", "--url", "localhost", NULL}, "--url must look like"},
	    {{"members", "remove", "--url", url, "--id", NULL}, "needs a value"},
	    {{"members", "remove", "--url", url, "--id", "5", "--bogus", NULL},
	     "unknown option '--bogus'"},
	    {{"members", "add", "--url", url, "--id", "4", NULL}, "usage:"},
	    {{"members", "rename", NULL}, "usage:"},
	    {{"setup", "extra", NULL}, "unexpected argument 'extra'"},
	    {{"reflect", "--bogus", NULL}, "unknown option '--bogus'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_expect_eq(run(cases[i].argv, out, sizeof(out)), 2, "case %zu: %s", i, out);
		cr_expect(strstr(out, cases[i].want) != NULL, "case %zu: %s", i, out);
	}
	close(fd);
	RFH_PASS();
}
