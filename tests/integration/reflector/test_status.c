/* Rendering of /status and /metrics, and the JSON-lines logger. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "log.h"
#include "status.h"

static struct rf_status sample(struct rf_metrics *m, struct rf_status_peer *peers)
{
	memset(peers, 0, 2 * sizeof(*peers));
	peers[0].id = 1;
	strcpy(peers[0].raft_address, "10.0.0.1:7000");
	strcpy(peers[0].http_address, "10.0.0.1:8000");
	peers[0].role = "voter";
	peers[1].id = 2;
	strcpy(peers[1].raft_address, "10.0.0.2:7000");
	peers[1].role = "standby";
	struct rf_status st;
	memset(&st, 0, sizeof(st));
	st.node_id = 1;
	st.role = "leader";
	st.voter = true;
	st.ready = true;
	st.term = 9;
	st.leader_known = true;
	st.leader = peers[0];
	st.commit_index = 40;
	st.applied_index = 39;
	st.last_log_index = 41;
	st.peers = peers;
	st.n_peers = 2;
	st.uptime_s = 12;
	st.version = "0.1.0";
	st.fsm_terms_recorded = 3;
	st.fsm_last_term = 9;
	st.fsm_last_leader = 1;
	st.fsm_members = 2;
	st.established_term = 9;
	st.metrics = m;
	return st;
}

Test(status, json_document)
{
	struct rf_metrics m;
	memset(&m, 0, sizeof(m));
	m.leader_changes = 4;
	struct rf_status_peer peers[2];
	struct rf_status st = sample(&m, peers);
	char *text = rf_status_json(&st);
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	cr_assert_not_null(o, "%s: %s", jerr.text, text);
	cr_assert_eq(json_integer_value(json_object_get(o, "node_id")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(o, "role")), "leader");
	cr_assert_eq(json_integer_value(json_object_get(o, "term")), 9);
	json_t *leader = json_object_get(o, "leader");
	cr_assert_eq(json_integer_value(json_object_get(leader, "id")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(leader, "raft_address")),
			 "10.0.0.1:7000");
	cr_assert_str_eq(json_string_value(json_object_get(leader, "http_address")),
			 "10.0.0.1:8000");
	cr_assert_eq(json_integer_value(json_object_get(o, "commit_index")), 40);
	cr_assert_eq(json_integer_value(json_object_get(o, "applied_index")), 39);
	json_t *p = json_object_get(o, "peers");
	cr_assert_eq(json_array_size(p), 2);
	cr_assert(json_is_null(json_object_get(json_array_get(p, 1), "http_address")));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(p, 1), "role")),
			 "standby");
	cr_assert_eq(json_integer_value(json_object_get(o, "uptime_s")), 12);
	cr_assert_str_eq(json_string_value(json_object_get(o, "version")), "0.1.0");
	cr_assert_eq(json_integer_value(json_object_get(o, "leader_changes")), 4);
	cr_assert_eq(json_integer_value(
			 json_object_get(json_object_get(o, "cluster_state"), "terms_recorded")),
		     3);
	json_decref(o);
	free(text);

	st.leader_known = false;
	st.role = "candidate";
	text = rf_status_json(&st);
	o = json_loads(text, 0, NULL);
	cr_assert(json_is_null(json_object_get(o, "leader")));
	json_decref(o);
	free(text);
}

Test(status, metrics_text)
{
	struct rf_metrics m;
	memset(&m, 0, sizeof(m));
	rf_metrics_count_http(&m, 200);
	rf_metrics_count_http(&m, 200);
	rf_metrics_count_http(&m, 404);
	rf_metrics_count_http(&m, 418);
	m.leader_changes = 5;
	struct rf_status_peer peers[2];
	struct rf_status st = sample(&m, peers);
	char *text = rf_status_metrics(&st);
	static const char *const want[] = {
	    "# TYPE lifeguard_reflector_is_leader gauge\nlifeguard_reflector_is_leader 1\n",
	    "lifeguard_reflector_term 9\n",
	    ("# TYPE lifeguard_reflector_leader_changes_total counter\n"
	     "lifeguard_reflector_leader_changes_total 5\n"),
	    "lifeguard_reflector_http_requests_total{code=\"200\"} 2\n",
	    "lifeguard_reflector_http_requests_total{code=\"404\"} 1\n",
	    "lifeguard_reflector_http_requests_total{code=\"other\"} 1\n",
	    "lifeguard_reflector_commit_index 40\n",
	    "lifeguard_reflector_peers 2\n",
	    "lifeguard_reflector_info{version=\"0.1.0\",node_id=\"1\"} 1\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_assert(strstr(text, want[i]) != NULL, "missing %s in\n%s", want[i], text);
	}
	cr_assert(strstr(text, "code=\"500\"") == NULL, "zero counters are left out");
	/* Every non-comment line is "name{labels} value". */
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (line[0] == '#') {
			continue;
		}
		cr_assert(strncmp(line, "lifeguard_reflector_", 20) == 0, "%s", line);
		char *space = strrchr(line, ' ');
		cr_assert(space != NULL && space[1] >= '0' && space[1] <= '9', "%s", line);
	}
	free(text);
	st.role = "follower";
	text = rf_status_metrics(&st);
	cr_assert(strstr(text, "lifeguard_reflector_is_leader 0\n"));
	free(text);
}

/* The histogram is kept in ms but exported in Prometheus base units (seconds); /status keeps
 * its JSON field mean_ms. */
Test(status, propagation_histogram_in_seconds)
{
	struct rf_metrics m;
	memset(&m, 0, sizeof(m));
	struct rf_coherence_stats c;
	memset(&c, 0, sizeof(c));
	rf_coherence_observe(&c, 3);
	rf_coherence_observe(&c, 1500);
	rf_coherence_observe(&c, 20000);
	struct rf_status_peer peers[2];
	struct rf_status st = sample(&m, peers);
	st.coherence = &c;
	char *text = rf_status_metrics(&st);
	static const char *const want[] = {
	    "# TYPE lifeguard_reflector_propagation_seconds histogram\n",
	    "lifeguard_reflector_propagation_seconds_bucket{le=\"0.001\"} 0\n",
	    "lifeguard_reflector_propagation_seconds_bucket{le=\"0.002\"} 0\n",
	    "lifeguard_reflector_propagation_seconds_bucket{le=\"0.005\"} 1\n",
	    "lifeguard_reflector_propagation_seconds_bucket{le=\"1\"} 1\n",
	    "lifeguard_reflector_propagation_seconds_bucket{le=\"2.5\"} 2\n",
	    "lifeguard_reflector_propagation_seconds_bucket{le=\"10\"} 2\n",
	    "lifeguard_reflector_propagation_seconds_bucket{le=\"+Inf\"} 3\n",
	    "lifeguard_reflector_propagation_seconds_sum 21.503000\n",
	    "lifeguard_reflector_propagation_seconds_count 3\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_assert(strstr(text, want[i]) != NULL, "missing %s in\n%s", want[i], text);
	}
	cr_assert(strstr(text, "_ms") == NULL, "a metric name carries a unit:\n%s", text);
	free(text);
	text = rf_status_json(&st);
	json_t *o = json_loads(text, 0, NULL);
	cr_assert_not_null(o, "%s", text);
	json_t *prop = json_object_get(o, "propagation");
	cr_assert_eq(json_integer_value(json_object_get(prop, "count")), 3);
	double mean = json_real_value(json_object_get(prop, "mean_ms"));
	cr_assert(mean > 7167.6 && mean < 7167.7, "mean_ms %f", mean);
	json_decref(o);
	free(text);
}

Test(log, lines_are_json_objects)
{
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	rf_log_set_stream(f);
	rf_log_setup(RF_LOG_INFO, 7);
	rf_log(RF_LOG_DEBUG, "x.hidden", "below the level");
	rf_log(RF_LOG_WARN, "x.quote", "a \"quoted\"\nline\twith \\ and \x01");
	char big[3000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	rf_log(RF_LOG_ERROR, "x.big", "%s\"", big);
	rf_log_set_stream(NULL);
	rewind(f);
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		cr_assert_not_null(o, "%s: %s", jerr.text, line);
		cr_assert_eq(json_integer_value(json_object_get(o, "node")), 7);
		cr_assert_not_null(json_object_get(o, "ts"));
		if (n == 0) {
			cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "warn");
			cr_assert_str_eq(json_string_value(json_object_get(o, "msg")),
					 "a \"quoted\"\nline\twith \\ and \x01");
		} else {
			cr_assert_str_eq(json_string_value(json_object_get(o, "event")), "x.big");
		}
		json_decref(o);
		n++;
	}
	cr_assert_eq(n, 2);
	fclose(f);
	rf_log_setup(RF_LOG_INFO, 0);
}

/* Logs msg at error level into a temporary file and returns the one line written, parsed;
 * raw gets the line's text. */
static json_t *log_one_line(uint64_t node, const char *event, const char *msg, char *raw,
			    size_t cap)
{
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	rf_log_set_stream(f);
	rf_log_setup(RF_LOG_INFO, node);
	rf_log(RF_LOG_ERROR, event, "%s", msg);
	rf_log_set_stream(NULL);
	rf_log_setup(RF_LOG_INFO, 0);
	rewind(f);
	size_t n = fread(raw, 1, cap - 1, f);
	raw[n] = '\0';
	fclose(f);
	cr_assert(n > 0 && n < cap - 1 && raw[n - 1] == '\n', "%s", raw);
	cr_assert_eq(strchr(raw, '\n'), raw + n - 1, "exactly one line: %s", raw);
	json_error_t jerr;
	json_t *o = json_loads(raw, 0, &jerr);
	cr_assert_not_null(o, "%s: %s", jerr.text, raw);
	return o;
}

Test(log, invalid_utf8_becomes_question_marks_in_valid_json)
{
	char raw[8192];
	json_t *o =
	    log_one_line(7, "x.utf8",
			 "bad \xff\xfe, cut \xc3, overlong \xc0\xaf, surrogate \xed\xa0\x80,"
			 " past U+10FFFF \xf4\x90\x80\x80; good \xc3\xa9\xe2\x82\xac\xf0\x9f"
			 "\x98\x80",
			 raw, sizeof(raw));
	cr_expect_str_eq(json_string_value(json_object_get(o, "msg")),
			 "bad ??, cut ?, overlong ??, surrogate ???, past U+10FFFF ????; good "
			 "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	/* The field names and their order are the documented format. */
	cr_expect(strncmp(raw, "{\"ts\":\"", 7) == 0, "%s", raw);
	cr_expect(strstr(raw,
			 "\",\"level\":\"error\",\"node\":7,\"event\":\"x.utf8\",\"msg\":\"bad "
			 "??") != NULL,
		  "%s", raw);
	cr_expect_eq(json_object_size(o), 5);
	json_decref(o);
	o = log_one_line(0, "x.\xff", "no node yet", raw, sizeof(raw));
	cr_expect_eq(json_object_get(o, "node"), NULL, "%s", raw);
	cr_expect_str_eq(json_string_value(json_object_get(o, "event")), "x.?");
	json_decref(o);
}

Test(log, a_message_longer_than_the_buffer_is_cut_into_one_valid_line)
{
	/* 1500 two-byte characters: the 1024-byte buffer cuts the 512th in half. */
	char msg[3001], raw[8192];
	for (size_t i = 0; i < 1500; i++) {
		memcpy(msg + 2 * i, "\xc3\xa9", 2);
	}
	msg[3000] = '\0';
	json_t *o = log_one_line(3, "x.long", msg, raw, sizeof(raw));
	const char *got = json_string_value(json_object_get(o, "msg"));
	cr_assert_not_null(got);
	cr_expect_eq(strlen(got), 1023);
	cr_expect(strncmp(got, msg, 1022) == 0);
	cr_expect_eq(got[1022], '?', "the half character");
	json_decref(o);
	/* Every byte escaped (6 output bytes per input byte) still makes one line. */
	memset(msg, '\x01', 3000);
	o = log_one_line(3, "x.long", msg, raw, sizeof(raw));
	cr_expect_eq(strlen(json_string_value(json_object_get(o, "msg"))), 1023);
	json_decref(o);
}
