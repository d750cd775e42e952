/*
 * Membership: a 5-node cluster survives two failures; a node added at runtime becomes a
 * voter; a removed node stops voting (and never campaigns or leads afterwards).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "rf_harness.h"

#define WAIT_MS 30000
#define TOKEN   "adm1n-t0ken-for-tests"
#define AUTH    "Authorization: Bearer " TOKEN "\r\n"

static void teardown(void)
{
	rfh_cleanup();
}

TestSuite(members, .fini = teardown, .timeout = 300);

Test(members, five_nodes_survive_two_failures)
{
	static struct rfh_cluster c; /* static: .fini reads it after a failed assert */
	rfh_cluster_init(&c, 5, 5, NULL);
	rfh_start_all(&c, 5);
	uint64_t term = 0;
	int leader = rfh_wait_agreed_leader(&c, 5, WAIT_MS, &term);
	cr_assert(leader >= 0);
	/* Kill the leader and one follower. */
	size_t victim = (size_t)(leader + 1) % 5;
	rfh_kill(&c, (size_t)leader);
	rfh_kill(&c, victim);
	uint64_t new_term = 0;
	int fresh = rfh_wait_agreed_leader(&c, 5, WAIT_MS, &new_term);
	cr_assert(fresh >= 0, "3 of 5 did not elect a leader");
	cr_assert_neq(fresh, leader);
	cr_assert_neq((size_t)fresh, victim);
	cr_assert_gt(new_term, term);
	/* The survivors still commit: the new term record is applied on all three. */
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	size_t applied = 0;
	while (applied < 3 && rfh_now_ms() < deadline) {
		applied = 0;
		for (size_t i = 0; i < 5; i++) {
			if (c.nodes[i].pid <= 0) {
				continue;
			}
			json_t *st = rfh_status(&c, i, 1000);
			applied += st != NULL &&
				   rfh_int(st, "cluster_state.last_term") == (int64_t)new_term;
			json_decref(st);
		}
		rfh_sleep_ms(50);
	}
	for (size_t i = 0; i < 5 && applied < 3; i++) {
		json_t *st = c.nodes[i].pid > 0 ? rfh_status(&c, i, 1000) : NULL;
		char *text = st != NULL ? json_dumps(st, JSON_COMPACT) : NULL;
		fprintf(stderr, "node %zu: %s\n", i + 1, text != NULL ? text : "(down)");
		free(text);
		json_decref(st);
	}
	cr_assert_eq(applied, 3, "new term %llu", (unsigned long long)new_term);
	RFH_PASS();
}

/* The role of server id in node i's configuration ("" when absent). */
static const char *role_in(struct rfh_cluster *c, size_t i, uint64_t id, char *buf, size_t cap)
{
	json_t *st = rfh_status(c, i, 1000);
	cr_assert_not_null(st);
	size_t k;
	json_t *p;
	buf[0] = '\0';
	json_array_foreach(json_object_get(st, "peers"), k, p)
	{
		if (rfh_int(p, "id") == (int64_t)id) {
			snprintf(buf, cap, "%s", json_string_value(json_object_get(p, "role")));
		}
	}
	json_decref(st);
	return buf;
}

Test(members, a_node_added_at_runtime_votes_and_a_removed_one_stops)
{
	static struct rfh_cluster c; /* static: .fini reads it after a failed assert */
	json_t *extra = json_pack("{s:s}", "admin_token", TOKEN);
	rfh_cluster_init(&c, 4, 3, extra); /* node 4 joins */
	json_decref(extra);
	rfh_start_all(&c, 4);
	int leader = rfh_wait_agreed_leader(&c, 3, WAIT_MS, NULL);
	cr_assert(leader >= 0);
	json_t *st = rfh_status(&c, 3, 1000);
	cr_assert_not_null(st);
	cr_assert(!json_is_true(json_object_get(st, "voter")));
	cr_assert_eq(json_array_size(json_object_get(st, "peers")), 0);
	json_decref(st);
	cr_assert_eq(rfh_http(&c, 3, "GET", "/readyz", NULL, NULL, NULL, 1000), 503);

	char body[200];
	snprintf(body, sizeof(body), "{\"id\":4,\"raft_address\":\"%s\",\"http_address\":\"%s\"}",
		 c.nodes[3].raft, c.nodes[3].http);
	/* Admin endpoints need the token. */
	cr_assert_eq(rfh_http(&c, (size_t)leader, "POST", "/members", NULL, body, NULL, 5000), 401);
	cr_assert_eq(rfh_http(&c, (size_t)leader, "POST", "/members",
			      "Authorization: Bearer wrong\r\n", body, NULL, 5000),
		     401);
	/* A follower refuses and names the leader. */
	size_t follower = (size_t)(leader + 1) % 3;
	char *answer = NULL;
	cr_assert_eq(rfh_http(&c, follower, "POST", "/members", AUTH, body, &answer, 5000), 503);
	json_t *hint = json_loads(answer, 0, NULL);
	free(answer);
	cr_assert_eq(rfh_int(hint, "leader.id"), (int64_t)c.nodes[leader].id, "no leader hint");
	json_decref(hint);

	cr_assert_eq(rfh_http(&c, (size_t)leader, "POST", "/members", AUTH, body, &answer, 70000),
		     200, "%s", answer ? answer : "");
	free(answer);
	cr_assert(rfh_wait_voter(&c, 3, true, WAIT_MS), "node 4 did not become a voter");
	char role[16];
	for (size_t i = 0; i < 4; i++) {
		cr_assert_str_eq(role_in(&c, i, 4, role, sizeof(role)), "voter", "on node %zu",
				 i + 1);
	}
	cr_assert_eq(rfh_http(&c, 3, "GET", "/readyz", NULL, NULL, NULL, 1000), 200);
	/* Adding again is idempotent; the CLI sent to a follower follows the leader hint and
	 * takes the token from the environment. */
	char url[64];
	snprintf(url, sizeof(url), "http://%s", c.nodes[follower].http);
	const char *add[] = {rfh_bin(),       "members", "add",    "--url",         url,
			     "--id",          "4",       "--raft", c.nodes[3].raft, "--http",
			     c.nodes[3].http, NULL};
	const char *token_env[] = {"LIFEGUARD_ADMIN_TOKEN=" TOKEN, NULL};
	char out[4096];
	int status = rfh_run(add, token_env, out, sizeof(out), 80000);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
	cr_assert(strstr(out, "is not the leader; asking") != NULL, "%s", out);
	cr_assert(strstr(out, "\"role\":\"voter\"") != NULL, "%s", out);
	status = rfh_run(add, NULL, out, sizeof(out), 80000); /* no token */
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", out);
	cr_assert(strstr(out, "HTTP 401") != NULL, "%s", out);

	/* Remove it again. */
	cr_assert_eq(rfh_http(&c, (size_t)leader, "DELETE", "/members/4", NULL, NULL, NULL, 5000),
		     401);
	cr_assert_eq(
	    rfh_http(&c, (size_t)leader, "DELETE", "/members/4", AUTH, NULL, &answer, 30000), 200,
	    "%s", answer ? answer : "");
	free(answer);
	cr_assert_eq(rfh_http(&c, (size_t)leader, "DELETE", "/members/9", AUTH, NULL, NULL, 30000),
		     404);
	for (size_t i = 0; i < 3; i++) {
		int64_t deadline = rfh_now_ms() + WAIT_MS;
		while (role_in(&c, i, 4, role, sizeof(role))[0] != '\0' &&
		       rfh_now_ms() < deadline) {
			rfh_sleep_ms(50);
		}
		cr_assert_str_eq(role, "", "node %zu still lists node 4", i + 1);
	}
	/* Node 4 learnt that it no longer votes. */
	cr_assert(rfh_wait_voter(&c, 3, false, WAIT_MS));
	cr_assert_str_eq(role_in(&c, 3, 4, role, sizeof(role)), "standby");
	cr_assert_eq(rfh_http(&c, 3, "GET", "/readyz", NULL, NULL, NULL, 1000), 503);

	/* Kill the leader: the two remaining voters elect one of themselves; node 4 never
	 * campaigns (it would need votes it cannot get, and must not try). */
	rfh_kill(&c, (size_t)leader);
	int fresh = rfh_wait_agreed_leader(&c, 3, WAIT_MS, NULL);
	cr_assert(fresh >= 0 && fresh != leader);
	st = rfh_status(&c, 3, 1000);
	cr_assert_not_null(st);
	cr_assert_str_eq(json_string_value(json_object_get(st, "role")), "follower");
	json_decref(st);
	char *m = NULL;
	cr_assert_eq(rfh_http(&c, 3, "GET", "/metrics", NULL, NULL, &m, 1000), 200);
	cr_assert(strstr(m, "lifeguard_reflector_terms_led_total 0\n") != NULL, "%s", m);
	free(m);
	RFH_PASS();
}
