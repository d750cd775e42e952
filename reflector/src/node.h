/*
 * One reflector node: a raft server (libraft 0.15 + raft_uv TCP transport) with the
 * reflector's FSM, on a libuv loop shared with the HTTP server and a libguard runtime.
 *
 * libraft 0.15 has no state-change callback: the node polls raft_state(), the term and the
 * known leader from a uv_prepare_t, i.e. once per loop turn right before the loop blocks, and
 * turns what changed into metrics, log lines and the leadership hooks.
 */
#ifndef RF_NODE_H
#define RF_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include <libguard/runtime.h>

#include "config.h"
#include "fsm.h"
#include "status.h"

/*
 * Where the leader's work plugs in (the coherence pipeline of the next issue). Both run on the
 * loop thread. became_leader(term) runs in a coroutine of the node's runtime once this node's
 * leadership in term is confirmed: its term record is committed, so every entry of earlier
 * terms is applied locally. It may spawn coroutines and must return promptly. Every side
 * effect must be fenced with term (an old leader can still believe it leads for a moment).
 * lost_leadership(term) runs from the loop (not a coroutine) as soon as the node sees that it
 * no longer leads in term (stepped down, higher term seen, shutdown); it is called only after
 * a became_leader for the same term.
 */
struct rf_leader_hooks {
	void *data;
	void (*became_leader)(void *data, uint64_t term);
	void (*lost_leadership)(void *data, uint64_t term);
};

/* rf_node_start: empty data dir while a cluster exists (the daemon exits with status 3). */
#define RF_NODE_MUST_REJOIN (-2)

struct rf_leader_session; /* leader.c */
struct rf_member_op;      /* members.c */

struct rf_node {
	uv_loop_t *loop;             /* Borrowed */
	struct lg_runtime *rt;       /* Borrowed */
	const struct rf_config *cfg; /* Borrowed; outlives the node */
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct rf_fsm fsm;
	uv_prepare_t watch;
	struct rf_leader_hooks hooks;
	struct rf_metrics metrics;
	const struct rf_coherence_stats *coherence; /* Borrowed from the daemon; may be NULL */
	uint64_t started_ms;
	const char *version; /* static */

	/* What the watcher saw last. */
	int last_state;
	uint64_t last_term;
	uint64_t last_leader_id;
	uint64_t last_leader_term;
	uint64_t established_term; /* term of the confirmed leadership, 0 = none */

	struct rf_leader_session *session; /* current leadership, if any */
	struct rf_member_op *member_op;    /* the membership change in progress, if any */

	bool raft_initialized; /* raft_init succeeded: raft_close is required */
	bool closing;          /* no new raft requests from now on */
	struct raft_transfer transfer;
	void (*transfer_cb)(struct rf_node *n);
	void (*close_cb)(struct rf_node *n);
	void *data; /* for the owner */
};

/*
 * Starts the node: raft_uv on cfg->data_dir (must exist), bootstrap from cfg->peers unless
 * cfg->join (RAFT_CANTBOOTSTRAP on restart is expected), timeouts, pre-vote, raft_start, and
 * the state watcher. hooks (may be NULL) is Copied. On failure returns -1 with a sentence in
 * errbuf; if n->raft_initialized is then true the caller must still rf_node_close() it.
 * Returns RF_NODE_MUST_REJOIN (nothing started) when the data dir holds no raft state, join
 * is off and a peer knows an existing cluster: bootstrapping again would forget votes.
 */
int rf_node_start(struct rf_node *n, uv_loop_t *loop, struct lg_runtime *rt,
		  const struct rf_config *cfg, const struct rf_leader_hooks *hooks, char *errbuf,
		  size_t errlen);

/*
 * Fills st with the node's current state. peers (capacity cap) receives the configuration;
 * st->peers points into it (Borrowed by st).
 */
void rf_node_status(struct rf_node *n, struct rf_status *st, struct rf_status_peer *peers,
		    size_t cap);

/* The HTTP address of server id from the FSM directory or the config peers; "" if unknown. */
const char *rf_node_http_address(const struct rf_node *n, uint64_t id);

/*
 * Graceful hand-off before shutdown: when this node leads and another voter exists, asks raft
 * to transfer leadership (raft_transfer to the most up-to-date voter). cb runs exactly once
 * from the loop when the transfer completed or gave up (raft's election timeout), or
 * immediately on a later loop turn when there was nothing to transfer.
 */
void rf_node_handoff(struct rf_node *n, void (*cb)(struct rf_node *n));

/*
 * Ends leadership duties (lost_leadership hook), cancels coroutines doing raft work, closes
 * raft, the raft_uv I/O and transport, and the watcher; cb runs from the loop when every
 * handle of the node is closed. The FSM stays readable until rf_node_free().
 */
void rf_node_close(struct rf_node *n, void (*cb)(struct rf_node *n));

/* Releases the FSM. After rf_node_close's callback, or when raft_init never succeeded. */
void rf_node_free(struct rf_node *n);

/* True when this node leads right now. */
bool rf_node_is_leader(struct rf_node *n);

/* Leader session (leader.c): called by the watcher. */
void rf__leader_started(struct rf_node *n, uint64_t term);
void rf__leader_ended(struct rf_node *n);

#endif
