/*
 * Leader session: what a node does when it becomes leader, as one coroutine per term.
 *
 * Happy path:
 *   1. The watcher sees RAFT_LEADER in term T and spawns the session coroutine.
 *   2. It commits the term record {"op":"term","term":T,"leader":id}. Raft commits entries of
 *      earlier terms only together with one of the current term (Raft paper section 5.4.2,
 *      dissertation section 3.6.2); once it is applied here, this node's FSM holds every
 *      committed entry, and the log shows which terms had a working leader.
 *   3. It completes the replicated member directory: configuration members without a
 *      directory entry get one from the config file's peers (bootstrap members start that
 *      way).
 *   4. Leadership is established: hooks.became_leader(T).
 * When the watcher sees the node leave the leader state (or at shutdown), it calls
 * hooks.lost_leadership(T) if step 4 happened, and cancels the coroutine if still running.
 *
 * Failure modes: the term record cannot be committed (quorum lost; raft then steps down and
 * fails the request with RAFT_LEADERSHIPLOST, or the deadline of 4 election timeouts passes):
 * the session retries while this node still leads in T, and ends otherwise, without calling
 * any hook. A directory entry that fails is logged and retried at the next term.
 *
 * Ownership: the session is Owned by its coroutine once spawned; the node holds a Borrowed
 * pointer that the coroutine clears when it finishes. If spawning fails, the node keeps
 * leading without the session (logged): raft itself is unaffected.
 */
#include <stdlib.h>
#include <string.h>

#include "fencing.h"
#include "log.h"
#include "node.h"
#include "raft_await.h"

struct rf_leader_session {
	struct rf_node *node;
	uint64_t term;
	bool running;
	bool ended; /* the node no longer leads in term */
	bool established;
};

static bool leader_still(const struct rf_leader_session *s)
{
	struct rf_node *n = s->node;
	return !s->ended && !n->closing && raft_state(&n->raft) == RAFT_LEADER &&
	       n->raft.current_term == s->term;
}

static int leader_commit_term(struct rf_leader_session *s)
{
	struct rf_node *n = s->node;
	uint64_t wait_ms = 4 * (uint64_t)n->cfg->election_timeout_ms;
	while (leader_still(s)) {
		struct raft_buffer buf;
		if (rf_fsm_encode_term(s->term, n->cfg->node_id, &buf) != 0) {
			return -1;
		}
		int rc = rf_await_apply(n, &buf, lg_deadline_in(wait_ms), NULL);
		if (rc == 0) {
			return 0;
		}
		rf_log(RF_LOG_WARN, "leader.term", "term %llu record not committed: %s",
		       (unsigned long long)s->term, rf_await_strerror(rc));
		if (rc == RF_AWAIT_CANCELED || rc == RF_AWAIT_CLOSING) {
			return -1;
		}
		if (lg_sleep(n->cfg->heartbeat_timeout_ms) != 0) {
			return -1;
		}
	}
	return -1;
}

/* A configuration member with no directory entry whose address the config file knows. */
static const struct rf_peer *leader_missing_entry(const struct rf_node *n)
{
	for (unsigned i = 0; i < n->raft.configuration.n; i++) {
		const struct raft_server *srv = &n->raft.configuration.servers[i];
		const struct rf_peer *p = rf_config_peer(n->cfg, srv->id);
		if (rf_fsm_member(&n->fsm, srv->id) == NULL && p != NULL &&
		    strcmp(p->raft_address, srv->address) == 0) {
			return p;
		}
	}
	return NULL;
}

/* Adds directory entries for configuration members that have none (step 3). */
static void leader_fill_directory(struct rf_leader_session *s)
{
	struct rf_node *n = s->node;
	const struct rf_peer *p;
	/* Rescan after each wait: the configuration may change meanwhile. */
	while (leader_still(s) && (p = leader_missing_entry(n)) != NULL) {
		struct rf_fsm_member m;
		memset(&m, 0, sizeof(m));
		m.id = p->id;
		memcpy(m.raft_address, p->raft_address, RF_ADDR_MAX);
		memcpy(m.http_address, p->http_address, RF_ADDR_MAX);
		struct raft_buffer buf;
		if (rf_fsm_encode_member(&m, &buf) != 0) {
			return;
		}
		uint64_t wait_ms = 4 * (uint64_t)n->cfg->election_timeout_ms;
		void *result = RF_FSM_OK;
		int rc = rf_await_apply(n, &buf, lg_deadline_in(wait_ms), &result);
		if (rc != 0 || result != RF_FSM_OK) {
			rf_log(RF_LOG_WARN, "leader.directory", "member %llu entry: %s",
			       (unsigned long long)m.id,
			       rc != 0 ? rf_await_strerror(rc) : "rejected by the state machine");
			return;
		}
	}
}

static void leader_run(void *arg)
{
	struct rf_leader_session *s = arg;
	struct rf_node *n = s->node;
	if (leader_commit_term(s) == 0 && leader_still(s)) {
		leader_fill_directory(s);
	}
	if (leader_still(s)) {
		s->established = true;
		n->established_term = s->term;
		rf_log(RF_LOG_INFO, "leader.established", "leading in term %llu",
		       (unsigned long long)s->term);
		if (n->hooks.became_leader != NULL) {
			n->hooks.became_leader(n->hooks.data, s->term);
		}
	}
	s->running = false;
	if (s->ended) {
		free(s); /* the node already let go of it */
	}
}

int rf_fencing_take(struct rf_node *n, uint64_t term, uint64_t floor, uint64_t *token)
{
	uint64_t wait_ms = 4 * (uint64_t)n->cfg->election_timeout_ms;
	while (!n->closing && raft_state(&n->raft) == RAFT_LEADER && n->raft.current_term == term) {
		/* Every entry of earlier terms is applied here (the term record of this term is),
		 * so fsm.token is the highest token any leader took; a record from this term that
		 * raced us is seen as RF_FSM_TOKEN_LOW and retried above it. */
		uint64_t k = (n->fsm.token > floor ? n->fsm.token : floor) + 1;
		struct raft_buffer buf;
		if (rf_fsm_encode_token(term, k, &buf) != 0) {
			return -1;
		}
		void *result = RF_FSM_OK;
		int rc = rf_await_apply(n, &buf, lg_deadline_in(wait_ms), &result);
		if (rc == 0 && result == RF_FSM_OK) {
			*token = k;
			rf_log(RF_LOG_INFO, "leader.token",
			       "term %llu holds fencing token %llu (Redis held %llu)",
			       (unsigned long long)term, (unsigned long long)k,
			       (unsigned long long)floor);
			return 0;
		}
		if (rc == 0 && result == RF_FSM_TOKEN_LOW) {
			continue; /* fsm.token moved meanwhile */
		}
		if (rc == 0) {
			return -1;
		}
		rf_log(RF_LOG_WARN, "leader.token", "term %llu: token %llu not committed: %s",
		       (unsigned long long)term, (unsigned long long)k, rf_await_strerror(rc));
		if (rc == RF_AWAIT_CANCELED || rc == RF_AWAIT_CLOSING ||
		    lg_sleep(n->cfg->heartbeat_timeout_ms) != 0) {
			return -1;
		}
	}
	return -1;
}

void rf__leader_started(struct rf_node *n, uint64_t term)
{
	if (n->session != NULL) {
		rf__leader_ended(n);
	}
	struct rf_leader_session *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		rf_log(RF_LOG_ERROR, "leader.session",
		       "out of memory: term %llu runs without a session", (unsigned long long)term);
		return;
	}
	s->node = n;
	s->term = term;
	s->running = true;
	/* Joined by nobody: the session ends by itself (see rf__leader_ended). */
	if (lg_coro_spawn(n->rt, leader_run, s, NULL) != 0) {
		rf_log(RF_LOG_ERROR, "leader.session",
		       "cannot spawn: term %llu runs without a session", (unsigned long long)term);
		free(s);
		return;
	}
	n->session = s;
}

void rf__leader_ended(struct rf_node *n)
{
	struct rf_leader_session *s = n->session;
	if (s == NULL) {
		return;
	}
	n->session = NULL;
	s->ended = true;
	if (s->established) {
		n->established_term = 0;
		rf_log(RF_LOG_INFO, "leader.lost", "no longer leading in term %llu",
		       (unsigned long long)s->term);
		if (n->hooks.lost_leadership != NULL) {
			n->hooks.lost_leadership(n->hooks.data, s->term);
		}
	}
	if (!s->running) {
		free(s);
	}
	/* A running session sees ended at its next step (its raft requests fail with
	 * RAFT_LEADERSHIPLOST when raft stepped down) and frees itself. */
}
