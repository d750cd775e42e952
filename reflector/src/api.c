/*
 * Endpoint handlers. Read-only endpoints answer at once from the node's state; membership
 * changes are admin endpoints (bearer token from admin_token, when set) that answer later
 * (members.c). Nothing here prints a secret: /status and /metrics are built from raft and FSM
 * state only.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_route.h"
#include "members.h"

#define API_MAX_PEERS 128

static const char api_json[] = "application/json";

static void api_reply_text(struct rf_http_exchange *x, int status, const char *ctype, char *text,
			   const char *extra)
{
	if (text == NULL) {
		static const char oom[] = "{\"error\":\"out of memory\"}";
		rf_http_reply(x, 503, api_json, oom, sizeof(oom) - 1, NULL);
		return;
	}
	rf_http_reply(x, status, ctype, text, strlen(text), extra);
	free(text);
}

static void api_error(struct rf_http_exchange *x, int status, const char *message,
		      const char *extra)
{
	json_t *o = json_pack("{s:s}", "error", message);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	api_reply_text(x, status, api_json, text, extra);
}

static char *api_peers_json(const struct rf_status *st)
{
	json_t *a = json_array();
	for (size_t i = 0; i < st->n_peers; i++) {
		const struct rf_status_peer *p = &st->peers[i];
		json_array_append_new(
		    a, json_pack("{s:I, s:s, s:o, s:s}", "id", (json_int_t)p->id, "raft_address",
				 p->raft_address, "http_address",
				 p->http_address[0] ? json_string(p->http_address) : json_null(),
				 "role", p->role));
	}
	json_t *o = json_pack("{s:o}", "members", a);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static void api_read(struct rf_node *n, struct rf_http_exchange *x, enum rf_route route)
{
	struct rf_status st;
	struct rf_status_peer *peers = calloc(API_MAX_PEERS, sizeof(*peers));
	if (peers == NULL) {
		api_reply_text(x, 503, api_json, NULL, NULL);
		return;
	}
	rf_node_status(n, &st, peers, API_MAX_PEERS);
	switch (route) {
	case RF_ROUTE_STATUS:
		api_reply_text(x, 200, api_json, rf_status_json(&st), NULL);
		break;
	case RF_ROUTE_LEADER:
		api_reply_text(x, strcmp(st.role, "leader") == 0 ? 200 : 503, api_json,
			       rf_status_json(&st), NULL);
		break;
	case RF_ROUTE_READYZ:
		if (st.ready && st.coherence != NULL && st.coherence->leading &&
		    st.coherence->stalled) {
			/* A leader that cannot make progress is not ready (coherence.c). */
			char reason[256];
			snprintf(reason, sizeof(reason), "leader cannot make progress: %s",
				 st.coherence->stall_reason);
			json_t *o = json_pack("{s:b, s:s}", "ready", 0, "reason", reason);
			api_reply_text(x, 503, api_json, json_dumps(o, JSON_COMPACT), NULL);
			json_decref(o);
			break;
		}
		api_reply_text(x, st.ready ? 200 : 503, api_json,
			       strdup(st.ready ? "{\"ready\":true}"
				      : !st.voter
					  ? "{\"ready\":false,\"reason\":\"not a voter\"}"
					  : "{\"ready\":false,\"reason\":\"no known leader\"}"),
			       NULL);
		break;
	case RF_ROUTE_METRICS:
		api_reply_text(x, 200, "text/plain; version=0.0.4; charset=utf-8",
			       rf_status_metrics(&st), NULL);
		break;
	case RF_ROUTE_MEMBERS_LIST:
		api_reply_text(x, 200, api_json, api_peers_json(&st), NULL);
		break;
	default:
		api_error(x, 500, "unrouted", NULL);
		break;
	}
	free(peers);
}

void rf_api_handle(void *data, struct rf_http_exchange *x, const struct rf_http_request *req)
{
	struct rf_node *n = data;
	struct rf_route_match m = rf_http_route(req);
	if (m.status == 404) {
		api_error(x, 404, "not found", NULL);
		return;
	}
	if (m.status == 405) {
		char allow[64];
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", m.allow);
		api_error(x, 405, "method not allowed", allow);
		return;
	}
	if (m.admin && !rf_http_bearer_ok(req, n->cfg->admin_token)) {
		api_error(x, 401, "a valid admin bearer token is required",
			  "WWW-Authenticate: Bearer realm=\"lifeguard-reflector\"\r\n");
		return;
	}
	switch (m.route) {
	case RF_ROUTE_HEALTHZ: {
		static const char ok[] = "{\"status\":\"ok\"}";
		rf_http_reply(x, 200, api_json, ok, sizeof(ok) - 1, NULL);
		return;
	}
	case RF_ROUTE_MEMBERS_ADD:
		rf_members_add(n, x, req->body, req->body_len);
		return;
	case RF_ROUTE_MEMBERS_REMOVE:
		rf_members_remove(n, x, m.member_id);
		return;
	default:
		api_read(n, x, m.route);
		return;
	}
}
