/*
 * A node's observable state and its two renderings: the /status JSON document and the
 * Prometheus text exposition for /metrics. Pure: the node fills struct rf_status from raft and
 * the FSM, this file only formats.
 */
#ifndef RF_STATUS_H
#define RF_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct rf_status_peer {
	uint64_t id;
	char raft_address[RF_ADDR_MAX];
	char http_address[RF_ADDR_MAX]; /* "" when unknown */
	const char *role;               /* "voter" / "standby" / "spare" (static) */
};

/* HTTP status codes counted separately; anything else counts as "other". */
#define RF_METRIC_CODES 15

struct rf_metrics {
	uint64_t http_requests[RF_METRIC_CODES + 1];
	uint64_t leader_changes; /* times the known leader (id, term) changed */
	uint64_t terms_led;      /* terms in which this node became leader */
	uint64_t member_changes_ok;
	uint64_t member_changes_failed;
	uint64_t fsm_rejected; /* committed commands the FSM could not decode */
};

struct rf_status {
	uint64_t node_id;
	const char *role; /* "leader" / "follower" / "candidate" / "unavailable" */
	bool voter;       /* this node votes in its latest known configuration */
	bool ready;       /* voter and a leader is known */
	bool shutting_down;
	uint64_t term;
	bool leader_known;
	struct rf_status_peer leader; /* valid when leader_known (role unused) */
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t last_log_index;
	const struct rf_status_peer *peers; /* Borrowed for the rendering call */
	size_t n_peers;
	uint64_t uptime_s;
	const char *version;
	/* Replicated state (the FSM): */
	uint64_t fsm_terms_recorded;      /* leader-term records applied */
	uint64_t fsm_last_term;           /* term of the latest record */
	uint64_t fsm_last_leader;         /* its leader */
	uint64_t fsm_members;             /* entries in the replicated member directory */
	uint64_t established_term;        /* term whose leadership this node confirmed, 0 = none */
	const struct rf_metrics *metrics; /* Borrowed */
};

/* Counts one HTTP response with this status code. */
void rf_metrics_count_http(struct rf_metrics *m, int code);

/* The /status document, NUL-terminated; Owned by the caller (free()). NULL on OOM. */
char *rf_status_json(const struct rf_status *st);

/* The /metrics text; Owned by the caller (free()). NULL on OOM. */
char *rf_status_metrics(const struct rf_status *st);

#endif
