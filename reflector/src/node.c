/*
 * Node lifecycle: start, watch, hand-off, close.
 *
 * Start order (canonical raft 0.15): our transport (raft_transport.c: peers by host name,
 * resolved on every connection attempt) -> raft_uv_init(dir) -> raft_init -> raft_bootstrap
 * with every configured peer as a voter (skipped with join; RAFT_CANTBOOTSTRAP means the data
 * dir already holds a cluster: a restart, which is normal) -> timeouts and pre-vote ->
 * raft_start (loads the log and snapshot from the data dir, replays committed entries into
 * the FSM) -> the watcher starts.
 *
 * Membership safety: a data dir without raft state is either a first start or a wiped one. A
 * wiped voter that bootstrapped again would rejoin with no memory of the votes it cast, which
 * allows two leaders in one term. So before bootstrapping into an empty data dir the node asks
 * every other configured peer for /status; when one of them has seen an election (term > 1)
 * or committed past the bootstrap entry, a cluster exists and the node refuses to start
 * (RF_NODE_MUST_REJOIN): the operator removes the member and re-adds it with --join. Peers
 * that do not answer do not count: on a first start nobody answers or everybody is fresh.
 *
 * Watch: every loop turn compare raft_state(), the term and raft_leader() with what was seen
 * last; a new (leader, term) counts a leader change; becoming leader starts a leader session
 * (leader.c), leaving the leader state ends it.
 *
 * Hand-off: raft_transfer to the voter whose log matches best; raft calls back when it sees
 * the target lead, or after an election timeout.
 *
 * Close: end the session, raft_close (fails pending requests
 * with RAFT_LEADERSHIPLOST), and in its callback raft_uv_close + raft_uv_tcp_close (they free
 * memory; the transport's handles are already closed by then), then close the watcher.
 *
 * Failure modes at start: raft_uv_init (missing/unusable dir, locked), raft_init, bootstrap
 * (other than CANTBOOTSTRAP), raft_start (corrupt log, FSM restore failure, address in use):
 * -1 with raft's message; an empty data dir while a peer knows the cluster:
 * RF_NODE_MUST_REJOIN. Nothing fails later: I/O errors surface as raft state changes.
 */
#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "http_client.h"
#include "log.h"
#include "raft_transport.h"

#define NODE_PEER_CHECK_MS 1500 /* per peer, for the empty data dir check */

static const char *node_role_name(int state)
{
	switch (state) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	default:
		return "unavailable";
	}
}

static const char *node_server_role(int role)
{
	switch (role) {
	case RAFT_VOTER:
		return "voter";
	case RAFT_STANDBY:
		return "standby";
	default:
		return "spare";
	}
}

const char *rf_node_http_address(const struct rf_node *n, uint64_t id)
{
	const struct rf_fsm_member *m = rf_fsm_member(&n->fsm, id);
	if (m != NULL) {
		return m->http_address;
	}
	const struct rf_peer *p = rf_config_peer(n->cfg, id);
	return p != NULL ? p->http_address : "";
}

bool rf_node_is_leader(struct rf_node *n)
{
	return n->raft_initialized && !n->closing && raft_state(&n->raft) == RAFT_LEADER;
}

static void node_observe_leader(struct rf_node *n, uint64_t term)
{
	raft_id id = 0;
	const char *address = NULL;
	raft_leader(&n->raft, &id, &address);
	if (id == 0 || (id == n->last_leader_id && term == n->last_leader_term)) {
		return;
	}
	n->metrics.leader_changes++;
	n->last_leader_id = id;
	n->last_leader_term = term;
	rf_log(RF_LOG_INFO, "raft.leader", "leader is node %llu (%s) in term %llu",
	       (unsigned long long)id, address != NULL ? address : "?", (unsigned long long)term);
}

static void node_on_watch(uv_prepare_t *h)
{
	struct rf_node *n = h->data;
	if (n->closing) {
		return;
	}
	int state = raft_state(&n->raft);
	uint64_t term = n->raft.current_term;
	if (state != n->last_state || term != n->last_term) {
		rf_log(state == RAFT_LEADER ? RF_LOG_INFO : RF_LOG_DEBUG, "raft.state",
		       "%s in term %llu (was %s in term %llu)", node_role_name(state),
		       (unsigned long long)term, node_role_name(n->last_state),
		       (unsigned long long)n->last_term);
		if (n->last_state == RAFT_LEADER) {
			rf__leader_ended(n);
		}
		if (state == RAFT_LEADER) {
			n->metrics.terms_led++;
			rf__leader_started(n, term);
		}
		n->last_state = state;
		n->last_term = term;
	}
	node_observe_leader(n, term);
	n->metrics.fsm_rejected = n->fsm.rejected;
}

static int node_bootstrap(struct rf_node *n, char *errbuf, size_t errlen)
{
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	int rv = 0;
	/* Same configuration on every node; order by id so that it is byte-identical too. */
	uint64_t prev = 0;
	for (size_t k = 0; k < n->cfg->n_peers && rv == 0; k++) {
		const struct rf_peer *next = NULL;
		for (size_t i = 0; i < n->cfg->n_peers; i++) {
			const struct rf_peer *p = &n->cfg->peers[i];
			if (p->id > prev && (next == NULL || p->id < next->id)) {
				next = p;
			}
		}
		rv = raft_configuration_add(&conf, next->id, next->raft_address, RAFT_VOTER);
		prev = next->id;
	}
	if (rv == 0) {
		rv = raft_bootstrap(&n->raft, &conf);
	}
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP) {
		rf_log(RF_LOG_INFO, "raft.restart", "data dir holds a cluster state: rejoining");
		return 0;
	}
	if (rv != 0) {
		snprintf(errbuf, errlen, "raft: bootstrap: %s", raft_errmsg(&n->raft));
		return -1;
	}
	rf_log(RF_LOG_INFO, "raft.bootstrap", "bootstrapped a %zu-voter configuration",
	       n->cfg->n_peers);
	return 0;
}

/* True when dir holds raft state: raft_uv writes metadata1/metadata2 at bootstrap. */
static bool node_has_state(const char *dir)
{
	char path[4096];
	const char *names[] = {"metadata1", "metadata2"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (access(path, F_OK) == 0) {
			return true;
		}
	}
	return false;
}

/* Whether the peer's /status shows a cluster past its bootstrap (an election, a commit). */
static bool node_peer_knows_cluster(const struct rf_peer *p, uint64_t *term)
{
	struct rf_http_response resp;
	char err[128];
	if (rf_http_fetch(p->http_address, "GET", "/status", NULL, NULL, 0, NODE_PEER_CHECK_MS,
			  &resp, err, sizeof(err)) != 0) {
		rf_log(RF_LOG_DEBUG, "raft.bootstrap", "peer %llu (%s) did not answer: %s",
		       (unsigned long long)p->id, p->http_address, err);
		return false;
	}
	json_t *o = resp.status == 200 ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
	json_int_t t = 0;
	json_int_t commit = 0;
	bool knows = json_unpack(o, "{s:I, s:I}", "term", &t, "commit_index", &commit) == 0 &&
		     (t > 1 || commit > 1);
	json_decref(o);
	rf_http_response_free(&resp);
	*term = (uint64_t)t;
	return knows;
}

/*
 * Refuses to bootstrap an empty data dir into a cluster that already exists (see the top of
 * the file). Returns 0 when bootstrapping is safe, RF_NODE_MUST_REJOIN otherwise.
 */
static int node_check_empty_dir(struct rf_node *n, char *errbuf, size_t errlen)
{
	const struct rf_config *cfg = n->cfg;
	if (node_has_state(cfg->data_dir)) {
		return 0;
	}
	for (size_t i = 0; i < cfg->n_peers; i++) {
		const struct rf_peer *p = &cfg->peers[i];
		uint64_t term = 0;
		if (p->id == cfg->node_id || !node_peer_knows_cluster(p, &term)) {
			continue;
		}
		snprintf(
		    errbuf, errlen,
		    "raft: data dir %s is empty but node %llu (%s) knows an existing cluster "
		    "(term %llu): this node may have lost its raft state and must not bootstrap "
		    "again. Remove it (lifeguard-reflector members remove --id %llu) and re-add "
		    "it (members add), then start it with --join",
		    cfg->data_dir, (unsigned long long)p->id, p->http_address,
		    (unsigned long long)term, (unsigned long long)cfg->node_id);
		return RF_NODE_MUST_REJOIN;
	}
	return 0;
}

/* raft_uv_init and raft_init; on failure undoes what was done. */
static int node_init_raft(struct rf_node *n, char *errbuf, size_t errlen)
{
	const struct rf_config *cfg = n->cfg;
	int rv = rf_raft_transport_init(&n->transport, n->loop, RF_TRANSPORT_CONNECT_TIMEOUT_MS);
	if (rv != 0) {
		snprintf(errbuf, errlen, "raft: transport init: %s", n->transport.errmsg);
		return -1;
	}
	rv = raft_uv_init(&n->io, n->loop, cfg->data_dir, &n->transport);
	if (rv != 0) {
		snprintf(errbuf, errlen, "raft: data dir %s: %s", cfg->data_dir, n->io.errmsg);
		rf_raft_transport_close(&n->transport);
		return -1;
	}
	/* A restarted peer is redialed sooner than raft's 1 s default. */
	raft_uv_set_connect_retry_delay(&n->io, 250);
	rf_fsm_init(&n->fsm);
	rv = raft_init(&n->raft, &n->io, &n->fsm.iface, cfg->node_id, cfg->raft_address);
	if (rv != 0) {
		snprintf(errbuf, errlen, "raft: init: %s", raft_errmsg(&n->raft));
		raft_uv_close(&n->io);
		rf_raft_transport_close(&n->transport);
		rf_fsm_close(&n->fsm);
		return -1;
	}
	n->raft.data = n;
	n->raft_initialized = true;
	return 0;
}

int rf_node_start(struct rf_node *n, uv_loop_t *loop, struct lg_runtime *rt,
		  const struct rf_config *cfg, const struct rf_leader_hooks *hooks, char *errbuf,
		  size_t errlen)
{
	memset(n, 0, sizeof(*n));
	n->loop = loop;
	n->rt = rt;
	n->cfg = cfg;
	n->version = RF_VERSION;
	n->started_ms = uv_now(loop);
	if (hooks != NULL) {
		n->hooks = *hooks;
	}
	if (!cfg->join) {
		int rc = node_check_empty_dir(n, errbuf, errlen);
		if (rc != 0) {
			return rc;
		}
	}
	if (node_init_raft(n, errbuf, errlen) != 0) {
		return -1;
	}
	if (!cfg->join && node_bootstrap(n, errbuf, errlen) != 0) {
		return -1;
	}
	raft_set_election_timeout(&n->raft, cfg->election_timeout_ms);
	raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_timeout_ms);
	raft_set_pre_vote(&n->raft, true);
	raft_set_snapshot_threshold(&n->raft, cfg->snapshot_threshold);
	raft_set_snapshot_trailing(
	    &n->raft, cfg->snapshot_threshold < 256 ? cfg->snapshot_threshold / 2 : 128);
	int rv = raft_start(&n->raft);
	if (rv != 0) {
		snprintf(errbuf, errlen, "raft: start: %s", raft_errmsg(&n->raft));
		return -1;
	}
	uv_prepare_init(loop, &n->watch);
	n->watch.data = n;
	uv_prepare_start(&n->watch, node_on_watch);
	n->last_state = RAFT_UNAVAILABLE;
	rf_log(RF_LOG_INFO, "raft.start",
	       "raft started on %s (data dir %s, election timeout %u ms, heartbeat %u ms%s)",
	       cfg->raft_address, cfg->data_dir, cfg->election_timeout_ms,
	       cfg->heartbeat_timeout_ms, cfg->join ? ", joining" : "");
	return 0;
}

void rf_node_status(struct rf_node *n, struct rf_status *st, struct rf_status_peer *peers,
		    size_t cap)
{
	struct raft *r = &n->raft;
	memset(st, 0, sizeof(*st));
	st->node_id = n->cfg->node_id;
	st->version = n->version;
	st->uptime_s = (uv_now(n->loop) - n->started_ms) / 1000;
	st->metrics = &n->metrics;
	st->coherence = n->coherence;
	st->now_ms = lg_now_ms();
	st->shutting_down = n->closing;
	st->fsm_terms_recorded = n->fsm.terms_recorded;
	st->fsm_last_term = n->fsm.last_term;
	st->fsm_last_leader = n->fsm.last_leader;
	st->fsm_members = n->fsm.n_members;
	st->established_term = n->established_term;
	st->peers = peers;
	if (!n->raft_initialized || n->closing) {
		st->role = "unavailable";
		return;
	}
	st->role = node_role_name(raft_state(r));
	st->term = r->current_term;
	st->commit_index = r->commit_index;
	st->applied_index = raft_last_applied(r);
	st->last_log_index = raft_last_index(r);
	for (unsigned i = 0; i < r->configuration.n && st->n_peers < cap; i++) {
		const struct raft_server *s = &r->configuration.servers[i];
		struct rf_status_peer *p = &peers[st->n_peers++];
		p->id = s->id;
		snprintf(p->raft_address, sizeof(p->raft_address), "%s", s->address);
		snprintf(p->http_address, sizeof(p->http_address), "%s",
			 rf_node_http_address(n, s->id));
		p->role = node_server_role(s->role);
		if (s->id == r->id && s->role == RAFT_VOTER) {
			st->voter = true;
		}
	}
	raft_id id = 0;
	const char *address = NULL;
	raft_leader(r, &id, &address);
	if (id != 0) {
		st->leader_known = true;
		st->leader.id = id;
		snprintf(st->leader.raft_address, sizeof(st->leader.raft_address), "%s",
			 address != NULL ? address : "");
		snprintf(st->leader.http_address, sizeof(st->leader.http_address), "%s",
			 rf_node_http_address(n, id));
	}
	st->ready = st->voter && st->leader_known;
}

static void node_on_transfer(struct raft_transfer *req)
{
	struct rf_node *n = req->data;
	raft_id id = 0;
	const char *address = NULL;
	raft_leader(&n->raft, &id, &address);
	rf_log(RF_LOG_INFO, "raft.handoff", "leadership transfer finished: leader is %s%llu",
	       id == 0 ? "unknown " : "node ", (unsigned long long)id);
	void (*cb)(struct rf_node *) = n->transfer_cb;
	n->transfer_cb = NULL;
	cb(n);
}

/* The voter (not us) with the highest match index, i.e. the one that can take over now. */
static raft_id node_pick_successor(struct raft *r)
{
	raft_id best = 0;
	raft_index best_match = 0;
	for (unsigned i = 0; i < r->configuration.n; i++) {
		const struct raft_server *s = &r->configuration.servers[i];
		if (s->id == r->id || s->role != RAFT_VOTER) {
			continue;
		}
		raft_index match = r->leader_state.progress[i].match_index;
		if (best == 0 || match > best_match) {
			best = s->id;
			best_match = match;
		}
	}
	return best;
}

static void node_on_idle_handoff(uv_timer_t *t)
{
	struct rf_node *n = t->data;
	uv_close((uv_handle_t *)t, (uv_close_cb)free);
	void (*cb)(struct rf_node *) = n->transfer_cb;
	n->transfer_cb = NULL;
	cb(n);
}

void rf_node_handoff(struct rf_node *n, void (*cb)(struct rf_node *n))
{
	n->transfer_cb = cb;
	if (rf_node_is_leader(n)) {
		raft_id to = node_pick_successor(&n->raft);
		n->transfer.data = n;
		int rv = to != 0 ? raft_transfer(&n->raft, &n->transfer, to, node_on_transfer)
				 : RAFT_NOTFOUND;
		if (rv == 0) {
			rf_log(RF_LOG_INFO, "raft.handoff", "transferring leadership to node %llu",
			       (unsigned long long)to);
			return;
		}
		if (to == 0) {
			rf_log(RF_LOG_INFO, "raft.handoff", "no other voter to hand leadership to");
		} else {
			rf_log(RF_LOG_WARN, "raft.handoff", "cannot transfer leadership: %s",
			       raft_strerror(rv));
		}
	}
	/* Nothing to hand off: call back on a later loop turn, as promised. */
	uv_timer_t *t = malloc(sizeof(*t));
	if (t == NULL) {
		n->transfer_cb = NULL;
		cb(n);
		return;
	}
	uv_timer_init(n->loop, t);
	t->data = n;
	uv_timer_start(t, node_on_idle_handoff, 0, 0);
}

static void node_closed(struct rf_node *n)
{
	void (*cb)(struct rf_node *) = n->close_cb;
	n->close_cb = NULL;
	if (cb != NULL) {
		cb(n);
	}
}

static void node_on_watch_closed(uv_handle_t *h)
{
	node_closed(h->data);
}

static void node_on_raft_closed(struct raft *r)
{
	struct rf_node *n = r->data;
	raft_uv_close(&n->io);
	rf_raft_transport_close(&n->transport);
	n->raft_initialized = false;
	if (n->watch.data == n) { /* the watcher exists once raft_start succeeded */
		uv_close((uv_handle_t *)&n->watch, node_on_watch_closed);
		return;
	}
	node_closed(n);
}

void rf_node_close(struct rf_node *n, void (*cb)(struct rf_node *n))
{
	n->close_cb = cb;
	if (!n->closing && n->last_state == RAFT_LEADER) {
		rf__leader_ended(n);
	}
	n->closing = true; /* coroutines doing raft work see this after raft_close fails them */
	if (n->watch.data == n) {
		uv_prepare_stop(&n->watch);
	}
	n->raft.data = n;
	raft_close(&n->raft, node_on_raft_closed);
}

void rf_node_free(struct rf_node *n)
{
	rf_fsm_close(&n->fsm);
}
