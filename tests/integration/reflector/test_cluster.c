/*
 * lifeguard-reflector clusters of real processes on loopback: election, agreement, failover
 * after kill -9, SIGSTOP of the leader, restart of every node from its data dir.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rf_harness.h"

#define WAIT_MS 30000

static void teardown(void)
{
	rfh_cleanup();
}

TestSuite(cluster, .fini = teardown, .timeout = 240);

/* Metrics text of node i; Owned. */
static char *metrics_of(struct rfh_cluster *c, size_t i)
{
	char *body = NULL;
	cr_assert_eq(rfh_http(c, i, "GET", "/metrics", NULL, NULL, &body, 2000), 200);
	return body;
}

Test(cluster, three_nodes_elect_one_leader_and_agree)
{
	static struct rfh_cluster c; /* static: .fini reads it after a failed assert */
	rfh_cluster_init(&c, 3, 3, NULL);
	rfh_start_all(&c, 3);
	uint64_t term = 0;
	int leader = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &term);
	cr_assert(leader >= 0, "no agreed leader");
	cr_assert_gt(term, 0);

	/* The leader's first act is committing its term record: wait until all applied it. */
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	size_t caught_up = 0;
	while (caught_up < 3 && rfh_now_ms() < deadline) {
		caught_up = 0;
		for (size_t i = 0; i < 3; i++) {
			json_t *st = rfh_status(&c, i, 1000);
			if (st != NULL && rfh_int(st, "cluster_state.last_term") == (int64_t)term &&
			    rfh_int(st, "cluster_state.members") == 3) {
				caught_up++;
			}
			json_decref(st);
		}
		rfh_sleep_ms(50);
	}
	cr_assert_eq(caught_up, 3, "term record or member directory not applied everywhere");

	int leaders = 0;
	for (size_t i = 0; i < 3; i++) {
		json_t *st = rfh_status(&c, i, 1000);
		cr_assert_not_null(st);
		cr_assert_eq(rfh_int(st, "node_id"), (int64_t)c.nodes[i].id);
		cr_assert_eq(rfh_int(st, "leader.id"), (int64_t)c.nodes[leader].id);
		cr_assert_str_eq(json_string_value(json_object_get(json_object_get(st, "leader"),
								   "http_address")),
				 c.nodes[leader].http);
		cr_assert_eq(rfh_int(st, "cluster_state.last_leader"), (int64_t)c.nodes[leader].id);
		cr_assert_eq(json_array_size(json_object_get(st, "peers")), 3);
		cr_assert(json_is_true(json_object_get(st, "voter")));
		cr_assert_geq(rfh_int(st, "commit_index"), 5); /* config + term + 3 directory */
		cr_assert_str_eq(json_string_value(json_object_get(st, "version")), "0.1.0");
		json_decref(st);
		int code = rfh_http(&c, i, "GET", "/leader", NULL, NULL, NULL, 1000);
		leaders += code == 200;
		cr_assert_eq(code, (int)i == leader ? 200 : 503);
		cr_assert_eq(rfh_http(&c, i, "GET", "/readyz", NULL, NULL, NULL, 1000), 200);
		cr_assert_eq(rfh_http(&c, i, "GET", "/healthz", NULL, NULL, NULL, 1000), 200);
		char *m = metrics_of(&c, i);
		cr_assert(strstr(m, (int)i == leader ? "lifeguard_reflector_is_leader 1\n"
						     : "lifeguard_reflector_is_leader 0\n"),
			  "%s", m);
		char line[80];
		snprintf(line, sizeof(line), "lifeguard_reflector_term %llu\n",
			 (unsigned long long)term);
		cr_assert(strstr(m, line) != NULL, "%s", m);
		cr_assert(strstr(m, "lifeguard_reflector_fsm_rejected_commands_total 0\n"));
		cr_assert(strstr(m, "lifeguard_reflector_http_requests_total{code=\"200\"}"));
		free(m);
	}
	cr_assert_eq(leaders, 1);

	/* Graceful stop of everyone: exit 0 (and, under ASan, no leak report). */
	for (size_t i = 0; i < 3; i++) {
		rfh_signal(&c, i, SIGTERM);
	}
	for (size_t i = 0; i < 3; i++) {
		int status = rfh_wait_exit(&c, i, WAIT_MS);
		cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "node %zu: status %d", i + 1, status);
	}
	RFH_PASS();
}

Test(cluster, kill9_of_the_leader_elects_a_new_one)
{
	static struct rfh_cluster c; /* static: .fini reads it after a failed assert */
	rfh_cluster_init(&c, 3, 3, NULL);
	rfh_start_all(&c, 3);
	uint64_t term = 0;
	int old = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &term);
	cr_assert(old >= 0);

	rfh_kill(&c, (size_t)old);
	int64_t t0 = rfh_now_ms();
	int fresh = -1;
	uint64_t new_term = 0;
	while (fresh < 0 && rfh_now_ms() - t0 < WAIT_MS) {
		for (size_t i = 0; i < 3 && fresh < 0; i++) {
			if ((int)i == old) {
				continue;
			}
			char *body = NULL;
			if (rfh_http(&c, i, "GET", "/leader", NULL, NULL, &body, 1000) == 200) {
				json_t *st = json_loads(body, 0, NULL);
				new_term = (uint64_t)rfh_int(st, "term");
				json_decref(st);
				fresh = (int)i;
			}
			free(body);
		}
		if (fresh < 0) {
			rfh_sleep_ms(10);
		}
	}
	int64_t elapsed = rfh_now_ms() - t0;
	cr_assert(fresh >= 0, "no new leader");
	fprintf(stderr, "cluster/kill9: new leader node %llu after %lld ms (term %llu -> %llu)\n",
		(unsigned long long)c.nodes[fresh].id, (long long)elapsed, (unsigned long long)term,
		(unsigned long long)new_term);
	cr_assert_gt(new_term, term);

	uint64_t agreed_term = 0;
	int agreed = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &agreed_term);
	cr_assert_eq(agreed, fresh);

	/* The killed node restarts from its data dir and follows the new leader. */
	rfh_start(&c, (size_t)old, NULL, NULL);
	agreed = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &agreed_term);
	cr_assert(agreed >= 0);
	json_t *st = rfh_status(&c, (size_t)old, 1000);
	cr_assert_not_null(st);
	cr_assert_str_eq(json_string_value(json_object_get(st, "role")), "follower");
	cr_assert_geq(rfh_int(st, "term"), (int64_t)new_term);
	json_decref(st);
	RFH_PASS();
}

/* Records who answered 200 on /leader in which term; fails on two nodes in one term. */
struct leader_log {
	uint64_t term[256];
	uint64_t node[256];
	size_t n;
};

static void leader_log_poll(struct rfh_cluster *c, struct leader_log *log)
{
	for (size_t i = 0; i < 3; i++) {
		char *body = NULL;
		int code = rfh_http(c, i, "GET", "/leader", NULL, NULL, &body, 150);
		if (code == 200) {
			json_t *st = json_loads(body, 0, NULL);
			uint64_t term = (uint64_t)rfh_int(st, "term");
			json_decref(st);
			bool seen = false;
			for (size_t k = 0; k < log->n; k++) {
				if (log->term[k] == term) {
					cr_assert_eq(
					    log->node[k], c->nodes[i].id,
					    "two leaders in term %llu: nodes %llu and %llu",
					    (unsigned long long)term,
					    (unsigned long long)log->node[k],
					    (unsigned long long)c->nodes[i].id);
					seen = true;
				}
			}
			if (!seen && log->n < 256) {
				log->term[log->n] = term;
				log->node[log->n++] = c->nodes[i].id;
			}
		}
		free(body);
	}
}

Test(cluster, sigstop_of_the_leader_never_yields_two_leaders_in_one_term)
{
	static struct rfh_cluster c; /* static: .fini reads it after a failed assert */
	rfh_cluster_init(&c, 3, 3, NULL);
	rfh_start_all(&c, 3);
	uint64_t term = 0;
	int old = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &term);
	cr_assert(old >= 0);
	struct leader_log log = {.n = 0};
	leader_log_poll(&c, &log);

	rfh_signal(&c, (size_t)old, SIGSTOP);
	int fresh = -1;
	uint64_t new_term = 0;
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	while (fresh < 0 && rfh_now_ms() < deadline) {
		leader_log_poll(&c, &log);
		for (size_t k = 0; k < log.n; k++) {
			if (log.term[k] > term) {
				fresh = (int)log.node[k] - 1;
				new_term = log.term[k];
			}
		}
	}
	cr_assert(fresh >= 0 && fresh != old, "no new leader while the old one is stopped");

	rfh_signal(&c, (size_t)old, SIGCONT);
	/* The old leader learns the higher term and steps down. */
	bool stepped_down = false;
	deadline = rfh_now_ms() + WAIT_MS;
	while (!stepped_down && rfh_now_ms() < deadline) {
		leader_log_poll(&c, &log);
		json_t *st = rfh_status(&c, (size_t)old, 1000);
		if (st != NULL) {
			const char *role = json_string_value(json_object_get(st, "role"));
			stepped_down = strcmp(role, "leader") != 0 &&
				       rfh_int(st, "term") >= (int64_t)new_term &&
				       rfh_int(st, "leader.id") > 0;
		}
		json_decref(st);
	}
	cr_assert(stepped_down, "the old leader did not step down");
	for (int k = 0; k < 10; k++) {
		leader_log_poll(&c, &log); /* keep watching for a while after the return */
	}
	uint64_t final_term = 0;
	cr_assert(rfh_wait_agreed_leader(&c, 3, WAIT_MS, &final_term) >= 0);
	cr_assert_geq(final_term, new_term);
	fprintf(stderr, "cluster/sigstop: %zu (term, leader) pairs observed, final term %llu\n",
		log.n, (unsigned long long)final_term);
	RFH_PASS();
}

/* Per-node snapshot of what must survive a restart. */
struct durable {
	int64_t commit;
	int64_t terms_recorded;
	int64_t members;
};

Test(cluster, restart_of_all_nodes_from_their_data_dirs)
{
	static struct rfh_cluster c; /* static: .fini reads it after a failed assert */
	/* A tiny snapshot threshold makes raft snapshot the FSM and restore it on restart. */
	json_t *extra = json_pack("{s:i}", "snapshot_threshold", 4);
	rfh_cluster_init(&c, 3, 3, extra);
	json_decref(extra);
	rfh_start_all(&c, 3);
	uint64_t term = 0;
	cr_assert(rfh_wait_agreed_leader(&c, 3, WAIT_MS, &term) >= 0);

	/* Let the directory entries commit everywhere, then remember the state. */
	struct durable before[3];
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	bool settled = false;
	while (!settled && rfh_now_ms() < deadline) {
		settled = true;
		for (size_t i = 0; i < 3; i++) {
			json_t *st = rfh_status(&c, i, 1000);
			cr_assert_not_null(st);
			before[i].commit = rfh_int(st, "applied_index");
			before[i].terms_recorded = rfh_int(st, "cluster_state.terms_recorded");
			before[i].members = rfh_int(st, "cluster_state.members");
			settled &= before[i].members == 3 && before[i].commit >= 5 &&
				   before[i].commit == rfh_int(st, "commit_index");
			json_decref(st);
		}
		rfh_sleep_ms(50);
	}
	cr_assert(settled, "state did not settle");

	/* Two die hard, one stops gracefully: every path must come back. */
	rfh_kill(&c, 0);
	rfh_kill(&c, 1);
	rfh_signal(&c, 2, SIGTERM);
	cr_assert_neq(rfh_wait_exit(&c, 2, WAIT_MS), -1);
	char snap[400];
	snprintf(snap, sizeof(snap), "ls %s/data*/snapshot-* >/dev/null 2>&1", c.root);
	cr_assert_eq(system(snap), 0, "no raft snapshot was written");

	rfh_start_all(&c, 3);
	uint64_t new_term = 0;
	int leader = rfh_wait_agreed_leader(&c, 3, WAIT_MS, &new_term);
	cr_assert(leader >= 0);
	cr_assert_gt(new_term, term);
	deadline = rfh_now_ms() + WAIT_MS;
	size_t ok = 0;
	while (ok < 3 && rfh_now_ms() < deadline) {
		ok = 0;
		for (size_t i = 0; i < 3; i++) {
			json_t *st = rfh_status(&c, i, 1000);
			if (st != NULL &&
			    rfh_int(st, "cluster_state.last_term") == (int64_t)new_term &&
			    rfh_int(st, "applied_index") > before[i].commit) {
				/* Same cluster, log intact: everything from before is still
				 * applied, plus the new term's record. */
				cr_assert_eq(rfh_int(st, "cluster_state.members"), 3);
				cr_assert_geq(rfh_int(st, "cluster_state.terms_recorded"),
					      before[i].terms_recorded + 1);
				cr_assert_eq(json_array_size(json_object_get(st, "peers")), 3);
				ok++;
			}
			json_decref(st);
		}
		rfh_sleep_ms(50);
	}
	cr_assert_eq(ok, 3, "not every node restored its state and applied the new term");
	for (size_t i = 0; i < 3; i++) {
		char *m = metrics_of(&c, i);
		cr_assert(strstr(m, "lifeguard_reflector_fsm_rejected_commands_total 0\n"), "%s",
			  m);
		free(m);
	}
	RFH_PASS();
}
