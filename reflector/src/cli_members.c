/*
 * `lifeguard-reflector members add|remove`: membership changes from the command line, on top
 * of POST /members and DELETE /members/<id>.
 *
 * Sends the request to --url; when that node answers 503 naming the leader, sends it once more
 * to the leader's HTTP address. Prints the JSON answer; exit status 0 on HTTP 200, 1 on any
 * other answer or when no node answered, 2 on usage errors. The admin token is read from
 * LIFEGUARD_ADMIN_TOKEN and sent as "Authorization: Bearer".
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_args.h"
#include "http_client.h"

#define CLI_TIMEOUT_MS 70000 /* a promotion may take many catch-up rounds */

static int cli_members_usage(void)
{
	fprintf(stderr,
		"usage: lifeguard-reflector members add --url http://IP:PORT --id N --raft IP:PORT "
		"--http IP:PORT\n"
		"       lifeguard-reflector members remove --url http://IP:PORT --id N\n"
		"(the admin token, if the cluster has one, is read from LIFEGUARD_ADMIN_TOKEN)\n");
	return 2;
}

/* The leader's HTTP address from a 503 answer, if it names one. */
static int cli_leader_hint(const struct rf_http_response *resp, char address[RF_ADDR_MAX])
{
	json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
	const char *http = NULL;
	int rc = -1;
	if (json_unpack(o, "{s:{s:s}}", "leader", "http_address", &http) == 0 &&
	    strlen(http) < RF_ADDR_MAX && http[0] != '\0') {
		strcpy(address, http);
		rc = 0;
	}
	json_decref(o);
	return rc;
}

static int cli_send(const char *address, const char *method, const char *path, const char *body)
{
	char headers[700] = "";
	const char *token = getenv("LIFEGUARD_ADMIN_TOKEN");
	if (token != NULL && token[0] != '\0') {
		if (strlen(token) > 512) {
			fprintf(stderr, "members: LIFEGUARD_ADMIN_TOKEN is too long\n");
			return 1;
		}
		snprintf(headers, sizeof(headers),
			 "Authorization: Bearer %s\r\nContent-Type: application/json\r\n", token);
	} else {
		snprintf(headers, sizeof(headers), "Content-Type: application/json\r\n");
	}
	char target[RF_ADDR_MAX];
	snprintf(target, sizeof(target), "%s", address);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct rf_http_response resp;
		char err[128];
		if (rf_http_fetch(target, method, path, headers, body, body ? strlen(body) : 0,
				  CLI_TIMEOUT_MS, &resp, err, sizeof(err)) != 0) {
			fprintf(stderr, "members: %s: %s\n", target, err);
			return 1;
		}
		char leader[RF_ADDR_MAX];
		if (resp.status == 503 && attempt == 0 && cli_leader_hint(&resp, leader) == 0 &&
		    strcmp(leader, target) != 0) {
			fprintf(stderr, "members: %s is not the leader; asking %s\n", target,
				leader);
			strcpy(target, leader);
			rf_http_response_free(&resp);
			continue;
		}
		printf("%s\n", resp.body);
		int ok = resp.status == 200;
		if (!ok) {
			fprintf(stderr, "members: %s answered HTTP %d\n", target, resp.status);
		}
		rf_http_response_free(&resp);
		return ok ? 0 : 1;
	}
	return 1;
}

enum { MEMBERS_URL = CLI_OPT_FIRST, MEMBERS_ID, MEMBERS_RAFT, MEMBERS_HTTP };

static const struct option members_options[] = {
    {"url", required_argument, NULL, MEMBERS_URL},
    {"id", required_argument, NULL, MEMBERS_ID},
    {"raft", required_argument, NULL, MEMBERS_RAFT},
    {"http", required_argument, NULL, MEMBERS_HTTP},
    {NULL, 0, NULL, 0},
};

struct members_args {
	const char *url, *id, *raft, *http;
};

/* Reads the flags after "add" or "remove" (argv[0]); 0, or -1 after printing why. */
static int members_parse(int argc, char **argv, struct members_args *a)
{
	int c;
	rf_cli_getopt_begin();
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, members_options, NULL)) != -1) {
		switch (c) {
		case MEMBERS_URL:
			a->url = optarg;
			break;
		case MEMBERS_ID:
			a->id = optarg;
			break;
		case MEMBERS_RAFT:
			a->raft = optarg;
			break;
		case MEMBERS_HTTP:
			a->http = optarg;
			break;
		case 1:
			fprintf(stderr, "members: unexpected argument '%s'\n", optarg);
			return -1;
		default:
			rf_cli_option_error("members", c, argv);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "members: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

int rf_cli_members(int argc, char **argv)
{
	if (argc < 2) {
		return cli_members_usage();
	}
	bool add = strcmp(argv[1], "add") == 0;
	if (!add && strcmp(argv[1], "remove") != 0) {
		return cli_members_usage();
	}
	struct members_args a = {NULL, NULL, NULL, NULL};
	if (members_parse(argc - 1, argv + 1, &a) != 0) {
		return cli_members_usage();
	}
	if (a.url == NULL || a.id == NULL || (add && (a.raft == NULL || a.http == NULL))) {
		return cli_members_usage();
	}
	char address[RF_ADDR_MAX];
	if (rf_http_url_address(a.url, address) != 0) {
		fprintf(stderr, "members: --url must look like http://10.0.0.1:8080, not '%s'\n",
			a.url);
		return 2;
	}
	/* Ids are positive JSON integers on the wire, hence the int64 ceiling. */
	uint64_t n = 0;
	if (rf_cli_parse_uint(a.id, 1, INT64_MAX, &n) != 0) {
		fprintf(stderr, "members: --id must be a whole number from 1 to %lld, not '%s'\n",
			(long long)INT64_MAX, a.id);
		return 2;
	}
	if (!add) {
		char path[64];
		snprintf(path, sizeof(path), "/members/%llu", (unsigned long long)n);
		return cli_send(address, "DELETE", path, NULL);
	}
	json_t *o = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)n, "raft_address", a.raft,
			      "http_address", a.http);
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	int rc = body != NULL ? cli_send(address, "POST", "/members", body) : 1;
	free(body);
	return rc;
}
