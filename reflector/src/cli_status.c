/*
 * `lifeguard-reflector status`: the cluster as an operator wants to see it.
 *
 * Asks the given node for /status, takes the peer list from its configuration, then asks every
 * peer's HTTP address for its own /status (sequentially, each bounded by the timeout), and
 * prints one line per peer (role, term, leader, indexes) with unreachable peers marked as
 * such, plus a summary: the leader, how many peers answered, whether they agree on leader and
 * term. Exit status: 0 when the given node answered, 1 when it did not, 2 on usage errors.
 */
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_args.h"
#include "http_client.h"

#define CLI_MAX_PEERS 128

struct cli_peer {
	json_int_t id;
	char raft[RF_ADDR_MAX];
	char http[RF_ADDR_MAX];
	json_t *status; /* Owned; NULL when unreachable */
	char error[128];
};

static json_t *cli_fetch_status(const char *address, int timeout_ms, char *err, size_t errlen)
{
	struct rf_http_response resp;
	if (rf_http_fetch(address, "GET", "/status", NULL, NULL, 0, timeout_ms, &resp, err,
			  errlen) != 0) {
		return NULL;
	}
	json_t *o = json_loadb(resp.body, resp.body_len, 0, NULL);
	if (resp.status != 200 || !json_is_object(o)) {
		snprintf(err, errlen, "HTTP %d, not a status document", resp.status);
		json_decref(o);
		o = NULL;
	}
	rf_http_response_free(&resp);
	return o;
}

static json_int_t cli_int(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static const char *cli_str(const json_t *o, const char *key, const char *def)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : def;
}

/* Collects the peers of the configuration seen by first. */
static size_t cli_peers(const json_t *first, const char *first_address, struct cli_peer *out)
{
	size_t n = 0, i;
	json_t *p;
	json_array_foreach(json_object_get(first, "peers"), i, p)
	{
		if (n == CLI_MAX_PEERS) {
			break;
		}
		struct cli_peer *c = &out[n++];
		memset(c, 0, sizeof(*c));
		c->id = cli_int(p, "id");
		snprintf(c->raft, sizeof(c->raft), "%s", cli_str(p, "raft_address", "?"));
		snprintf(c->http, sizeof(c->http), "%s", cli_str(p, "http_address", ""));
	}
	if (n == 0) { /* a node that has no configuration yet (joining): show it alone */
		memset(out, 0, sizeof(*out));
		out->id = cli_int(first, "node_id");
		snprintf(out->raft, sizeof(out->raft), "?");
		snprintf(out->http, sizeof(out->http), "%s", first_address);
		n = 1;
	}
	return n;
}

static void cli_print_table(struct cli_peer *peers, size_t n)
{
	printf("%-4s %-12s %-6s %-7s %-8s %-8s %-6s %-22s %-22s\n", "ID", "ROLE", "TERM", "LEADER",
	       "COMMIT", "APPLIED", "VOTER", "RAFT", "HTTP");
	for (size_t i = 0; i < n; i++) {
		struct cli_peer *c = &peers[i];
		if (c->status == NULL) {
			printf("%-4lld %-12s %-6s %-7s %-8s %-8s %-6s %-22s %-22s %s\n",
			       (long long)c->id, "unreachable", "-", "-", "-", "-", "-", c->raft,
			       c->http[0] ? c->http : "(unknown)", c->error);
			continue;
		}
		const json_t *leader = json_object_get(c->status, "leader");
		char leader_id[24] = "none";
		if (json_is_object(leader)) {
			snprintf(leader_id, sizeof(leader_id), "%lld",
				 (long long)cli_int(leader, "id"));
		}
		printf("%-4lld %-12s %-6lld %-7s %-8lld %-8lld %-6s %-22s %-22s\n",
		       (long long)c->id, cli_str(c->status, "role", "?"),
		       (long long)cli_int(c->status, "term"), leader_id,
		       (long long)cli_int(c->status, "commit_index"),
		       (long long)cli_int(c->status, "applied_index"),
		       json_is_true(json_object_get(c->status, "voter")) ? "yes" : "no", c->raft,
		       c->http);
	}
}

static void cli_print_summary(const char *via, struct cli_peer *peers, size_t n)
{
	size_t up = 0, leaders = 0;
	json_int_t leader = -1, term = -1;
	bool agree = true;
	for (size_t i = 0; i < n; i++) {
		if (peers[i].status == NULL) {
			continue;
		}
		up++;
		const json_t *l = json_object_get(peers[i].status, "leader");
		json_int_t lid = json_is_object(l) ? cli_int(l, "id") : 0;
		json_int_t t = cli_int(peers[i].status, "term");
		if (strcmp(cli_str(peers[i].status, "role", ""), "leader") == 0) {
			leaders++;
		}
		if (leader == -1) {
			leader = lid;
			term = t;
		} else if (lid != leader || t != term) {
			agree = false;
		}
	}
	if (leader > 0) {
		printf(
		    "cluster via %s: leader node %lld in term %lld; %zu/%zu peers reachable; %s\n",
		    via, (long long)leader, (long long)term, up, n,
		    agree && leaders == 1 ? "all reachable peers agree"
					  : "peers DISAGREE (election in progress?)");
	} else {
		printf("cluster via %s: NO LEADER known; %zu/%zu peers reachable\n", via, up, n);
	}
}

static void cli_print_json(struct cli_peer *peers, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:I, s:s, s:s}", "id", peers[i].id, "raft_address",
				      peers[i].raft, "http_address", peers[i].http);
		if (peers[i].status != NULL) {
			json_object_set(o, "status", peers[i].status);
		} else {
			json_object_set_new(o, "error", json_string(peers[i].error));
		}
		json_array_append_new(a, o);
	}
	char *text = json_dumps(a, JSON_INDENT(2));
	json_decref(a);
	if (text != NULL) {
		puts(text);
		free(text);
	}
}

enum { STATUS_URL = CLI_OPT_FIRST, STATUS_JSON, STATUS_TIMEOUT };

static const struct option status_options[] = {
    {"url", required_argument, NULL, STATUS_URL},
    {"json", no_argument, NULL, STATUS_JSON},
    {"timeout-ms", required_argument, NULL, STATUS_TIMEOUT},
    {NULL, 0, NULL, 0},
};

static int status_usage(void)
{
	fprintf(
	    stderr,
	    "usage: lifeguard-reflector status --url http://IP:PORT [--json] [--timeout-ms N]\n");
	return 2;
}

int rf_cli_status(int argc, char **argv)
{
	const char *url = NULL, *timeout = NULL;
	bool as_json = false;
	int c;
	rf_cli_getopt_begin();
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, status_options, NULL)) != -1) {
		switch (c) {
		case STATUS_URL:
			url = optarg;
			break;
		case STATUS_JSON:
			as_json = true;
			break;
		case STATUS_TIMEOUT:
			timeout = optarg;
			break;
		case 1:
			fprintf(stderr, "status: unexpected argument '%s'\n", optarg);
			return status_usage();
		default:
			rf_cli_option_error("status", c, argv);
			return status_usage();
		}
	}
	if (optind < argc) {
		fprintf(stderr, "status: unexpected argument '%s'\n", argv[optind]);
		return status_usage();
	}
	char address[RF_ADDR_MAX];
	if (url == NULL || rf_http_url_address(url, address) != 0) {
		fprintf(stderr, "status: --url must look like http://10.0.0.1:8080\n");
		return 2;
	}
	uint64_t t = 1000;
	if (timeout != NULL && rf_cli_parse_uint(timeout, 1, INT_MAX, &t) != 0) {
		fprintf(stderr,
			"status: --timeout-ms must be a whole number from 1 to %d, not '%s'\n",
			INT_MAX, timeout);
		return 2;
	}
	int timeout_ms = (int)t;
	char err[128];
	json_t *first = cli_fetch_status(address, timeout_ms, err, sizeof(err));
	if (first == NULL) {
		fprintf(stderr, "status: %s: %s\n", address, err);
		return 1;
	}
	static struct cli_peer peers[CLI_MAX_PEERS];
	size_t n = cli_peers(first, address, peers);
	for (size_t i = 0; i < n; i++) {
		if (peers[i].id == cli_int(first, "node_id")) {
			peers[i].status = json_incref(first);
		} else if (peers[i].http[0] == '\0') {
			snprintf(peers[i].error, sizeof(peers[i].error), "HTTP address unknown");
		} else {
			peers[i].status = cli_fetch_status(peers[i].http, timeout_ms,
							   peers[i].error, sizeof(peers[i].error));
		}
	}
	if (as_json) {
		cli_print_json(peers, n);
	} else {
		cli_print_summary(address, peers, n);
		cli_print_table(peers, n);
	}
	for (size_t i = 0; i < n; i++) {
		json_decref(peers[i].status);
	}
	json_decref(first);
	return 0;
}
