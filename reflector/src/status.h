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

/* Propagation-latency histogram: upper bounds in ms (the last bucket is +Inf); /metrics
 * exports it in seconds (lifeguard_reflector_propagation_seconds). */
#define RF_PROP_BUCKETS 14
extern const double rf_prop_bucket_ms[RF_PROP_BUCKETS - 1];

/*
 * The coherence pipeline's state (coherence.c): counters since the process started, the
 * current leader session's connections, and the outbox as last sampled by the leader.
 */
struct rf_coherence_stats {
	bool leading;          /* a leader session is running */
	uint64_t session_term; /* its raft term, 0 = none */
	uint64_t token;        /* its fencing token (reflector/src/fencing.h), 0 = none yet */
	/* Progress: a leader whose turns keep failing for RF_STALL_MS is stalled (/readyz 503). */
	bool stalled;
	uint64_t failing_since_ms;      /* lg_now_ms() of the first failure in a row, 0 = none */
	char stall_reason[160];         /* what failed last (no secrets: libguard messages) */
	uint64_t outbox_stale_after_ms; /* a sample older than this is shown as stale */
	bool pg_connected;              /* the session's pool has an open connection */
	bool pg_listening;              /* LISTEN lifeguard is active on the dedicated connection */
	bool redis_connected;           /* the last Redis command reached the server */
	bool redis_info_known;          /* the two fields below were sampled */
	uint64_t redis_evicted_keys;    /* INFO stats evicted_keys: evicted fences weaken the
					 * guarantee (see README, "Coherence") */
	char redis_maxmemory_policy[32]; /* INFO memory maxmemory_policy */
	bool outbox_known;               /* the fields below were sampled by this node */
	uint64_t outbox_pending;
	double outbox_oldest_age_s;
	double notify_queue_usage;   /* pg_notification_queue_usage(), 0..1 */
	uint64_t outbox_sampled_ms;  /* lg_now_ms() of the sample */
	uint64_t changes;            /* outbox rows processed (deleted after their Redis work) */
	uint64_t keys;               /* distinct keys among them */
	uint64_t refreshed;          /* cached keys overwritten with a newer row */
	uint64_t fenced;             /* uncached keys fenced instead */
	uint64_t tombstoned;         /* cached keys turned into tombstones */
	uint64_t kept;               /* Redis already held this version or a newer one */
	uint64_t truncates;          /* TRUNCATE events (table fence + tombstone sweep) */
	uint64_t rejected_stale;     /* writes refused because a newer raft term holds Redis */
	uint64_t malformed;          /* outbox rows moved to lifeguard.outbox_dead */
	uint64_t errors;             /* failed batches (rolled back, retried later) */
	uint64_t batches;            /* committed batches */
	uint64_t notifications;      /* NOTIFY wake-ups received */
	uint64_t stalls;             /* times the leader became stalled */
	uint64_t token_raises;       /* tokens taken again because Redis held a higher one */
	uint64_t redis_errors;       /* Redis failures of a batch (retried with backoff) */
	uint64_t redis_restarts;     /* Redis run id changes seen (restart, maybe older data) */
	uint64_t invalidated;        /* keys deleted because they may hold older data */
	uint64_t sequence_raises;    /* version sequence found below Redis' mark and raised */
	uint64_t audit_checked;      /* cached keys compared with their row */
	uint64_t audit_stale;        /* of those, keys older (or other) than a processed row */
	double audit_oldest_stale_s; /* the longest a stale key found was stale, 0 = none */
	uint64_t prop_buckets[RF_PROP_BUCKETS];
	double prop_sum_ms;
	uint64_t prop_count;
};

/* How long a leader may fail in a row before it reports a stall. */
#define RF_STALL_MS 5000

/* Whether the outbox sample is too old to describe the outbox now. */
bool rf_outbox_sample_stale(const struct rf_coherence_stats *c, uint64_t now_ms);

/* Adds one propagation latency (ms) to the histogram. */
void rf_coherence_observe(struct rf_coherence_stats *s, double ms);

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
	const struct rf_coherence_stats *coherence; /* Borrowed; NULL = not running */
	uint64_t now_ms;                            /* lg_now_ms() when filled, for sample ages */
};

/* Counts one HTTP response with this status code. */
void rf_metrics_count_http(struct rf_metrics *m, int code);

/* The /status document, NUL-terminated; Owned by the caller (free()). NULL on OOM. */
char *rf_status_json(const struct rf_status *st);

/* The /metrics text; Owned by the caller (free()). NULL on OOM. */
char *rf_status_metrics(const struct rf_status *st);

#endif
