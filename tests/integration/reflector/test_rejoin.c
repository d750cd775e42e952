/*
 * Membership safety and peers by name, with real daemons:
 * - a node restarted with a wiped data dir refuses to bootstrap again (exit 3, a message that
 *   says how to re-add it) while its peers know the cluster; removed and re-added with --join
 *   it becomes a voter again;
 * - a cluster configured with host names ("localhost:PORT") forms, and survives a leader kill.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "rf_harness.h"

#define WAIT_MS 30000
#define TOKEN   "adm1n-t0ken-for-rejoin"
#define AUTH    "Authorization: Bearer " TOKEN "\r\n"

static void teardown(void)
{
	rfh_cleanup();
}

TestSuite(rejoin, .fini = teardown, .timeout = 300);

/* Runs a shell command line; returns its exit status. */
static int sh(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(rejoin, a_wiped_node_refuses_to_bootstrap_and_rejoins_when_re_added)
{
	static struct rfh_cluster c; /* static: .fini reads it after a failed assert */
	json_t *extra = json_pack("{s:s}", "admin_token", TOKEN);
	rfh_cluster_init(&c, 3, 3, extra);
	json_decref(extra);
	rfh_start_all(&c, 3);
	int leader = rfh_wait_agreed_leader(&c, 3, WAIT_MS, NULL);
	cr_assert(leader >= 0);
	size_t victim = (size_t)(leader + 1) % 3;

	/* The victim loses its raft state. */
	rfh_kill(&c, victim);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", c.nodes[victim].dir,
		 c.nodes[victim].dir);
	cr_assert_eq(sh(cmd), 0);

	/* Restarted as it was, it must not bootstrap: exit 3 with the way out in the log. */
	rfh_start(&c, victim, NULL, NULL);
	int status = rfh_wait_exit(&c, victim, WAIT_MS);
	cr_assert_neq(status, -1, "a wiped node kept running (it bootstrapped again)");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3, "wait status %d", status);
	char *log = rfh_read_file(c.nodes[victim].log);
	cr_assert_not_null(log);
	cr_assert_not_null(strstr(log, "members remove"), "%s", log);
	cr_assert_not_null(strstr(log, "--join"), "%s", log);
	free(log);

	/* The way out: remove it, start it with --join, add it back; it votes again. */
	char path[64];
	snprintf(path, sizeof(path), "/members/%llu", (unsigned long long)c.nodes[victim].id);
	char *answer = NULL;
	int code = rfh_http(&c, (size_t)leader, "DELETE", path, AUTH, NULL, &answer, 30000);
	cr_assert_eq(code, 200, "remove: %d %s", code, answer ? answer : "");
	free(answer);
	const char *join[] = {"--join", NULL};
	rfh_start(&c, victim, join, NULL);
	char body[200];
	snprintf(
	    body, sizeof(body), "{\"id\":%llu,\"raft_address\":\"%s\",\"http_address\":\"%s\"}",
	    (unsigned long long)c.nodes[victim].id, c.nodes[victim].raft, c.nodes[victim].http);
	answer = NULL;
	code = rfh_http(&c, (size_t)leader, "POST", "/members", AUTH, body, &answer, 70000);
	cr_assert_eq(code, 200, "add: %d %s", code, answer ? answer : "");
	free(answer);
	cr_assert(rfh_wait_voter(&c, victim, true, WAIT_MS),
		  "the re-added node did not become a voter");
	RFH_PASS();
}

Test(rejoin, a_first_start_of_every_node_still_bootstraps)
{
	static struct rfh_cluster c;
	rfh_cluster_init(&c, 3, 3, NULL);
	rfh_start_all(&c, 3);
	cr_assert(rfh_wait_agreed_leader(&c, 3, WAIT_MS, NULL) >= 0);
	RFH_PASS();
}

/* Rewrites every raft address "127.0.0.1:P" in node i's config file as "localhost:P". */
static void use_names(struct rfh_cluster *c, size_t i)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd),
		 "sed -i 's/\\(\"raft_address\": *\"\\)127\\.0\\.0\\.1:/\\1localhost:/g' '%s'",
		 c->nodes[i].config);
	cr_assert_eq(sh(cmd), 0);
}

Test(rejoin, peers_by_host_name_form_a_cluster_and_re_elect)
{
	static struct rfh_cluster c;
	rfh_cluster_init(&c, 3, 3, NULL);
	for (size_t i = 0; i < 3; i++) {
		use_names(&c, i);
	}
	rfh_start_all(&c, 3);
	uint64_t term = 0;
	int leader = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &term);
	cr_assert(leader >= 0, "no leader with peers by name");
	json_t *st = rfh_status(&c, (size_t)leader, 1000);
	cr_assert_not_null(st);
	const char *addr =
	    json_string_value(json_object_get(json_object_get(st, "leader"), "raft_address"));
	cr_assert(addr != NULL && strncmp(addr, "localhost:", 10) == 0, "leader address %s",
		  addr ? addr : "(none)");
	json_decref(st);
	rfh_kill(&c, (size_t)leader);
	uint64_t next = 0;
	int fresh = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &next);
	cr_assert(fresh >= 0 && fresh != leader, "no re-election with peers by name");
	cr_assert_gt(next, term);
	/* The old leader comes back under its name and follows. */
	rfh_start(&c, (size_t)leader, NULL, NULL);
	cr_assert(rfh_wait_voter(&c, (size_t)leader, true, WAIT_MS));
	RFH_PASS();
}
