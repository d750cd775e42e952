/*
 * Runtime membership changes, one at a time, on the leader (POST /members, DELETE /members/N).
 * Each request runs as a coroutine that answers the HTTP exchange when it is done.
 *
 * Add, happy path: check the id and address against the configuration -> raft_add (the
 * server joins as a spare) -> commit its directory entry (HTTP address) -> raft_assign voter
 * (raft first catches the new server's log up, in rounds) -> 200. A server already present
 * with the same address resumes where a previous attempt stopped, so retrying is safe.
 *
 * Remove, happy path: raft_assign standby (the server still receives this entry, so it learns
 * that it no longer votes and never campaigns again: a removed voter would otherwise keep
 * campaigning with its stale configuration) -> raft_remove -> forget its directory entry -> 200.
 * The leader does not remove itself: stop it with SIGTERM (it hands leadership off) and ask
 * the new leader.
 *
 * Failure modes (status, JSON {"error"}): not the leader 503 (with "leader" when known);
 * another change in progress 409; id/address conflict 409; unknown id 404; leadership lost
 * meanwhile 503; a step not committed before its deadline 504 (raft may still complete it:
 * retry to converge); node shutting down 503.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_server.h"
#include "log.h"
#include "members.h"
#include "raft_await.h"

#define MEMBERS_STEP_MS    10000
#define MEMBERS_PROMOTE_MS 60000

struct rf_member_op {
	struct rf_node *node;
	struct rf_http_exchange *x;
	bool add;
	struct rf_fsm_member m; /* add: the new member; remove: m.id */
};

static void members_reply(struct rf_member_op *op, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		rf_http_reply(op->x, 500, "application/json", "{}", 2, NULL);
		return;
	}
	rf_http_reply(op->x, status, "application/json", text, strlen(text), NULL);
	free(text);
}

static void members_fail(struct rf_member_op *op, int status, const char *what, int rc)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s%s%s", what, rc != 0 ? ": " : "",
		 rc != 0 ? rf_await_strerror(rc) : "");
	rf_log(RF_LOG_WARN, op->add ? "members.add" : "members.remove", "node %llu: %s",
	       (unsigned long long)op->m.id, msg);
	op->node->metrics.member_changes_failed++;
	members_reply(op, status, json_pack("{s:s}", "error", msg));
}

/* HTTP status for a failed step. */
static int members_status_of(int rc)
{
	switch (rc) {
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
	case RAFT_SHUTDOWN:
	case RF_AWAIT_CLOSING:
	case RF_AWAIT_CANCELED:
		return 503;
	case RAFT_CANTCHANGE:
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS:
	case RAFT_BADROLE:
		return 409;
	case RAFT_NOTFOUND:
	case RAFT_BADID:
		return 404;
	case RF_AWAIT_TIMEOUT:
		return 504;
	default:
		return 500;
	}
}

static const struct raft_server *members_find(const struct rf_node *n, uint64_t id)
{
	for (unsigned i = 0; i < n->raft.configuration.n; i++) {
		if (n->raft.configuration.servers[i].id == id) {
			return &n->raft.configuration.servers[i];
		}
	}
	return NULL;
}

/* Commits a directory command (member or forget). */
static int members_apply(struct rf_node *n, const struct rf_fsm_member *m, bool forget)
{
	struct raft_buffer buf;
	int rc = forget ? rf_fsm_encode_forget(m->id, &buf) : rf_fsm_encode_member(m, &buf);
	if (rc != 0) {
		return RF_AWAIT_NOMEM;
	}
	return rf_await_apply(n, &buf, lg_deadline_in(MEMBERS_STEP_MS), NULL);
}

static void members_add(struct rf_member_op *op)
{
	struct rf_node *n = op->node;
	const struct rf_fsm_member *m = &op->m;
	for (unsigned i = 0; i < n->raft.configuration.n; i++) {
		const struct raft_server *s = &n->raft.configuration.servers[i];
		if (s->id != m->id && strcmp(s->address, m->raft_address) == 0) {
			members_fail(op, 409, "raft_address is used by another member", 0);
			return;
		}
		if (s->id == m->id && strcmp(s->address, m->raft_address) != 0) {
			members_fail(op, 409, "id is a member with another raft_address", 0);
			return;
		}
	}
	int rc = 0;
	if (members_find(n, m->id) == NULL) {
		rc = rf_await_add(n, m->id, m->raft_address, lg_deadline_in(MEMBERS_STEP_MS));
		if (rc != 0) {
			members_fail(op, members_status_of(rc), "add", rc);
			return;
		}
	}
	rc = members_apply(n, m, false);
	if (rc != 0) {
		members_fail(op, members_status_of(rc), "directory entry", rc);
		return;
	}
	const struct raft_server *s = members_find(n, m->id);
	if (s == NULL) {
		members_fail(op, 409, "removed concurrently", 0);
		return;
	}
	if (s->role != RAFT_VOTER) {
		rc = rf_await_assign(n, m->id, RAFT_VOTER, lg_deadline_in(MEMBERS_PROMOTE_MS));
		if (rc != 0) {
			members_fail(op, members_status_of(rc), "promote to voter", rc);
			return;
		}
	}
	rf_log(RF_LOG_INFO, "members.add", "node %llu (%s) is a voter", (unsigned long long)m->id,
	       m->raft_address);
	n->metrics.member_changes_ok++;
	members_reply(op, 200,
		      json_pack("{s:{s:I, s:s, s:s, s:s}}", "member", "id", (json_int_t)m->id,
				"raft_address", m->raft_address, "http_address", m->http_address,
				"role", "voter"));
}

static void members_remove(struct rf_member_op *op)
{
	struct rf_node *n = op->node;
	uint64_t id = op->m.id;
	const struct raft_server *s = members_find(n, id);
	int rc;
	if (s == NULL && rf_fsm_member(&n->fsm, id) == NULL) {
		members_fail(op, 404, "no such member", 0);
		return;
	}
	if (s != NULL && s->role == RAFT_VOTER) {
		rc = rf_await_assign(n, id, RAFT_STANDBY, lg_deadline_in(MEMBERS_STEP_MS));
		if (rc != 0) {
			members_fail(op, members_status_of(rc), "demote to standby", rc);
			return;
		}
	}
	if (members_find(n, id) != NULL) {
		rc = rf_await_remove(n, id, lg_deadline_in(MEMBERS_STEP_MS));
		if (rc != 0) {
			members_fail(op, members_status_of(rc), "remove", rc);
			return;
		}
	}
	rc = members_apply(n, &op->m, true);
	if (rc != 0) {
		members_fail(op, members_status_of(rc), "forget directory entry", rc);
		return;
	}
	rf_log(RF_LOG_INFO, "members.remove", "node %llu removed", (unsigned long long)id);
	n->metrics.member_changes_ok++;
	members_reply(op, 200, json_pack("{s:I}", "removed", (json_int_t)id));
}

static void members_run(void *arg)
{
	struct rf_member_op *op = arg;
	if (op->add) {
		members_add(op);
	} else {
		members_remove(op);
	}
	op->node->member_op = NULL;
	free(op);
}

/* Checks shared by add and remove; replies and returns false when the request cannot start. */
static bool members_admit(struct rf_node *n, struct rf_http_exchange *x)
{
	if (!rf_node_is_leader(n)) {
		json_t *body = json_pack("{s:s}", "error", "not the leader");
		raft_id id = 0;
		const char *address = NULL;
		if (n->raft_initialized && !n->closing) {
			raft_leader(&n->raft, &id, &address);
		}
		if (id != 0) {
			json_object_set_new(body, "leader",
					    json_pack("{s:I, s:s}", "id", (json_int_t)id,
						      "http_address", rf_node_http_address(n, id)));
		}
		char *text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		rf_http_reply(x, 503, "application/json", text, text ? strlen(text) : 0, NULL);
		free(text);
		return false;
	}
	if (n->member_op != NULL) {
		static const char busy[] =
		    "{\"error\":\"another membership change is in progress\"}";
		rf_http_reply(x, 409, "application/json", busy, sizeof(busy) - 1, NULL);
		return false;
	}
	return true;
}

static void members_start(struct rf_node *n, struct rf_member_op *op)
{
	n->member_op = op;
	if (lg_coro_spawn(n->rt, members_run, op, NULL) != 0) {
		n->member_op = NULL;
		static const char oom[] = "{\"error\":\"out of memory\"}";
		rf_http_reply(op->x, 503, "application/json", oom, sizeof(oom) - 1, NULL);
		free(op);
	}
}

void rf_members_add(struct rf_node *n, struct rf_http_exchange *x, const char *body, size_t len)
{
	struct rf_fsm_member m;
	char err[200];
	if (rf_fsm_member_parse(body != NULL ? body : "", len, &m, err, sizeof(err)) != 0) {
		json_t *o = json_pack("{s:s}", "error", err);
		char *text = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		rf_http_reply(x, 400, "application/json", text, text ? strlen(text) : 0, NULL);
		free(text);
		return;
	}
	if (!members_admit(n, x)) {
		return;
	}
	struct rf_member_op *op = calloc(1, sizeof(*op));
	if (op == NULL) {
		rf_http_reply(x, 503, "application/json", "{}", 2, NULL);
		return;
	}
	op->node = n;
	op->x = x;
	op->add = true;
	op->m = m;
	members_start(n, op);
}

void rf_members_remove(struct rf_node *n, struct rf_http_exchange *x, uint64_t id)
{
	if (!members_admit(n, x)) {
		return;
	}
	if (id == n->cfg->node_id) {
		static const char self[] = "{\"error\":\"the leader does not remove itself: stop "
					   "it with SIGTERM (it hands "
					   "leadership off), then remove it on the new leader\"}";
		rf_http_reply(x, 409, "application/json", self, sizeof(self) - 1, NULL);
		return;
	}
	struct rf_member_op *op = calloc(1, sizeof(*op));
	if (op == NULL) {
		rf_http_reply(x, 503, "application/json", "{}", 2, NULL);
		return;
	}
	op->node = n;
	op->x = x;
	op->m.id = id;
	members_start(n, op);
}
