/*
 * Rendering of struct rf_status. The JSON field names are an interface (operators, the Helm
 * chart and `lifeguard-reflector status` read them): add fields, never rename.
 */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const int status_codes[RF_METRIC_CODES] = {200, 202, 400, 401, 404, 405, 409, 413,
						  414, 415, 421, 431, 500, 503, 504};

void rf_metrics_count_http(struct rf_metrics *m, int code)
{
	for (size_t i = 0; i < RF_METRIC_CODES; i++) {
		if (status_codes[i] == code) {
			m->http_requests[i]++;
			return;
		}
	}
	m->http_requests[RF_METRIC_CODES]++;
}

const double rf_prop_bucket_ms[RF_PROP_BUCKETS - 1] = {1,   2,   5,    10,   25,   50,   100,
						       250, 500, 1000, 2500, 5000, 10000};

bool rf_outbox_sample_stale(const struct rf_coherence_stats *c, uint64_t now_ms)
{
	return !c->leading ||
	       now_ms > c->outbox_sampled_ms +
			    (c->outbox_stale_after_ms ? c->outbox_stale_after_ms : 10000);
}

void rf_coherence_observe(struct rf_coherence_stats *s, double ms)
{
	size_t i = 0;
	while (i < RF_PROP_BUCKETS - 1 && ms > rf_prop_bucket_ms[i]) {
		i++;
	}
	s->prop_buckets[i]++;
	s->prop_sum_ms += ms;
	s->prop_count++;
}

#define COH_COUNTERS(X)                                                                            \
	X(changes)                                                                                 \
	X(keys)                                                                                    \
	X(refreshed)                                                                               \
	X(fenced)                                                                                  \
	X(tombstoned)                                                                              \
	X(kept)                                                                                    \
	X(truncates)                                                                               \
	X(rejected_stale)                                                                          \
	X(malformed)                                                                               \
	X(errors)                                                                                  \
	X(batches)                                                                                 \
	X(notifications)                                                                           \
	X(stalls)                                                                                  \
	X(token_raises)                                                                            \
	X(redis_errors)                                                                            \
	X(redis_restarts)                                                                          \
	X(invalidated)                                                                             \
	X(sequence_raises)                                                                         \
	X(audit_checked)                                                                           \
	X(audit_stale)

/* The coherence fields of /status: postgres, redis, outbox, counters, propagation. */
static void status_coherence(json_t *o, const struct rf_coherence_stats *c, uint64_t now_ms)
{
	static const struct rf_coherence_stats none;
	if (c == NULL) {
		c = &none;
	}
	json_t *pg = json_object();
	json_object_set_new(pg, "connected", json_boolean(c->pg_connected));
	json_object_set_new(pg, "listening", json_boolean(c->pg_listening));
	json_object_set_new(o, "postgres", pg);
	json_t *redis = json_object();
	json_object_set_new(redis, "connected", json_boolean(c->redis_connected));
	if (c->redis_info_known) {
		json_object_set_new(redis, "evicted_keys",
				    json_integer((json_int_t)c->redis_evicted_keys));
		json_object_set_new(redis, "maxmemory_policy",
				    json_string(c->redis_maxmemory_policy));
	}
	json_object_set_new(o, "redis", redis);
	if (c->outbox_known) {
		json_t *ob = json_object();
		uint64_t age = now_ms > c->outbox_sampled_ms ? now_ms - c->outbox_sampled_ms : 0;
		json_object_set_new(ob, "pending", json_integer((json_int_t)c->outbox_pending));
		json_object_set_new(ob, "oldest_age_s", json_real(c->outbox_oldest_age_s));
		json_object_set_new(ob, "notify_queue_usage", json_real(c->notify_queue_usage));
		json_object_set_new(ob, "sample_age_ms", json_integer((json_int_t)age));
		json_object_set_new(ob, "stale", json_boolean(rf_outbox_sample_stale(c, now_ms)));
		json_object_set_new(o, "outbox", ob);
	} else {
		json_object_set_new(o, "outbox", json_null());
	}
	json_t *co = json_object();
	json_object_set_new(co, "leading", json_boolean(c->leading));
	json_object_set_new(co, "term", json_integer((json_int_t)c->session_term));
	json_object_set_new(co, "token", json_integer((json_int_t)c->token));
	json_object_set_new(co, "stalled", json_boolean(c->stalled));
	json_object_set_new(co, "stall_reason",
			    c->stalled ? json_string(c->stall_reason) : json_null());
	json_object_set_new(co, "audit_oldest_stale_s", json_real(c->audit_oldest_stale_s));
#define X(name) json_object_set_new(co, #name, json_integer((json_int_t)c->name));
	COH_COUNTERS(X)
#undef X
	json_object_set_new(o, "counters", co);
	json_t *prop = json_object();
	json_object_set_new(prop, "count", json_integer((json_int_t)c->prop_count));
	json_object_set_new(prop, "mean_ms",
			    json_real(c->prop_count ? c->prop_sum_ms / (double)c->prop_count : 0));
	json_object_set_new(o, "propagation", prop);
}

static json_t *status_peer(const struct rf_status_peer *p, bool with_role)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer((json_int_t)p->id));
	json_object_set_new(o, "raft_address", json_string(p->raft_address));
	json_object_set_new(o, "http_address",
			    p->http_address[0] != '\0' ? json_string(p->http_address)
						       : json_null());
	if (with_role) {
		json_object_set_new(o, "role", json_string(p->role));
	}
	return o;
}

char *rf_status_json(const struct rf_status *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "node_id", json_integer((json_int_t)st->node_id));
	json_object_set_new(o, "role", json_string(st->role));
	json_object_set_new(o, "term", json_integer((json_int_t)st->term));
	json_object_set_new(o, "leader",
			    st->leader_known ? status_peer(&st->leader, false) : json_null());
	json_object_set_new(o, "commit_index", json_integer((json_int_t)st->commit_index));
	json_object_set_new(o, "applied_index", json_integer((json_int_t)st->applied_index));
	json_object_set_new(o, "last_log_index", json_integer((json_int_t)st->last_log_index));
	json_t *peers = json_array();
	for (size_t i = 0; i < st->n_peers; i++) {
		json_array_append_new(peers, status_peer(&st->peers[i], true));
	}
	json_object_set_new(o, "peers", peers);
	json_object_set_new(o, "voter", json_boolean(st->voter));
	json_object_set_new(o, "ready", json_boolean(st->ready));
	json_object_set_new(o, "shutting_down", json_boolean(st->shutting_down));
	json_object_set_new(o, "uptime_s", json_integer((json_int_t)st->uptime_s));
	json_object_set_new(o, "version", json_string(st->version));
	json_object_set_new(o, "leadership_term", json_integer((json_int_t)st->established_term));
	json_object_set_new(
	    o, "leader_changes",
	    json_integer((json_int_t)(st->metrics ? st->metrics->leader_changes : 0)));
	json_t *fsm = json_object();
	json_object_set_new(fsm, "terms_recorded",
			    json_integer((json_int_t)st->fsm_terms_recorded));
	json_object_set_new(fsm, "last_term", json_integer((json_int_t)st->fsm_last_term));
	json_object_set_new(fsm, "last_leader", json_integer((json_int_t)st->fsm_last_leader));
	json_object_set_new(fsm, "members", json_integer((json_int_t)st->fsm_members));
	json_object_set_new(o, "cluster_state", fsm);
	status_coherence(o, st->coherence, st->now_ms);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* A growable text buffer for the exposition format. */
struct mbuf {
	char *p;
	size_t len;
	size_t cap;
	bool oom;
};

static void mbuf_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	for (int attempt = 0; attempt < 2 && !b->oom; attempt++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n;
		char *grown = realloc(b->p, cap);
		if (grown == NULL) {
			b->oom = true;
			return;
		}
		b->p = grown;
		b->cap = cap;
	}
}

static void metric(struct mbuf *b, const char *name, const char *type, const char *help,
		   uint64_t value)
{
	mbuf_printf(b,
		    "# HELP lifeguard_reflector_%s %s\n# TYPE lifeguard_reflector_%s %s\n"
		    "lifeguard_reflector_%s %llu\n",
		    name, help, name, type, name, (unsigned long long)value);
}

static void metrics_http(struct mbuf *b, const struct rf_metrics *m)
{
	mbuf_printf(b, "# HELP lifeguard_reflector_http_requests_total HTTP responses sent, by "
		       "status code.\n# TYPE lifeguard_reflector_http_requests_total counter\n");
	for (size_t i = 0; i <= RF_METRIC_CODES; i++) {
		if (m->http_requests[i] == 0) {
			continue;
		}
		if (i < RF_METRIC_CODES) {
			mbuf_printf(b,
				    "lifeguard_reflector_http_requests_total{code=\"%d\"} %llu\n",
				    status_codes[i], (unsigned long long)m->http_requests[i]);
		} else {
			mbuf_printf(
			    b, "lifeguard_reflector_http_requests_total{code=\"other\"} %llu\n",
			    (unsigned long long)m->http_requests[i]);
		}
	}
}

static void metrics_coherence(struct mbuf *b, const struct rf_coherence_stats *c, uint64_t now_ms)
{
	static const struct rf_coherence_stats none;
	if (c == NULL) {
		c = &none;
	}
	metric(b, "postgres_connected", "gauge",
	       "1 if the leader session has a PostgreSQL connection.", c->pg_connected);
	metric(b, "postgres_listening", "gauge", "1 if LISTEN lifeguard is active.",
	       c->pg_listening);
	metric(b, "redis_connected", "gauge", "1 if the last Redis command reached the server.",
	       c->redis_connected);
	if (c->redis_info_known) {
		metric(b, "redis_evicted_keys", "gauge",
		       "Keys Redis evicted (INFO evicted_keys); evicted fences weaken coherence.",
		       c->redis_evicted_keys);
	}
	metric(b, "coherence_leading", "gauge", "1 while this node runs the outbox consumer.",
	       c->leading);
	metric(b, "stalled", "gauge",
	       "1 while the leader's batches keep failing (it cannot make progress).", c->stalled);
	metric(b, "fencing_token", "gauge", "The leader session's fencing token (0 = none).",
	       c->token);
	mbuf_printf(b,
		    "# HELP lifeguard_reflector_audit_oldest_stale_seconds The longest a stale "
		    "key found by the audit had been stale.\n"
		    "# TYPE lifeguard_reflector_audit_oldest_stale_seconds gauge\n"
		    "lifeguard_reflector_audit_oldest_stale_seconds %.3f\n",
		    c->audit_oldest_stale_s);
	if (c->outbox_known) {
		metric(b, "outbox_sample_stale", "gauge",
		       "1 if the outbox figures are old (no leader session sampling them).",
		       rf_outbox_sample_stale(c, now_ms));
		metric(b, "outbox_pending", "gauge", "Outbox rows waiting (sampled by the leader).",
		       c->outbox_pending);
		mbuf_printf(
		    b,
		    "# HELP lifeguard_reflector_outbox_oldest_age_seconds Age of the oldest "
		    "outbox row.\n# TYPE lifeguard_reflector_outbox_oldest_age_seconds gauge\n"
		    "lifeguard_reflector_outbox_oldest_age_seconds %.3f\n"
		    "# HELP lifeguard_reflector_notify_queue_usage "
		    "pg_notification_queue_usage() on the primary.\n"
		    "# TYPE lifeguard_reflector_notify_queue_usage gauge\n"
		    "lifeguard_reflector_notify_queue_usage %.6f\n",
		    c->outbox_oldest_age_s, c->notify_queue_usage);
	}
#define X(name) metric(b, #name "_total", "counter", "Coherence pipeline: " #name ".", c->name);
	COH_COUNTERS(X)
#undef X
	/* Prometheus base unit: seconds (the buckets are kept in ms, exact integers). */
	mbuf_printf(b, "# HELP lifeguard_reflector_propagation_seconds Change captured in "
		       "PostgreSQL to Redis written, in seconds.\n"
		       "# TYPE lifeguard_reflector_propagation_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t i = 0; i < RF_PROP_BUCKETS; i++) {
		cum += c->prop_buckets[i];
		if (i < RF_PROP_BUCKETS - 1) {
			mbuf_printf(
			    b, "lifeguard_reflector_propagation_seconds_bucket{le=\"%g\"} %llu\n",
			    rf_prop_bucket_ms[i] / 1000.0, (unsigned long long)cum);
		} else {
			mbuf_printf(
			    b, "lifeguard_reflector_propagation_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
		}
	}
	mbuf_printf(b,
		    "lifeguard_reflector_propagation_seconds_sum %.6f\n"
		    "lifeguard_reflector_propagation_seconds_count %llu\n",
		    c->prop_sum_ms / 1000.0, (unsigned long long)c->prop_count);
}

char *rf_status_metrics(const struct rf_status *st)
{
	static const struct rf_metrics none;
	const struct rf_metrics *m = st->metrics != NULL ? st->metrics : &none;
	struct mbuf b = {malloc(4096), 0, 4096, false};
	if (b.p == NULL) {
		return NULL;
	}
	b.p[0] = '\0';
	mbuf_printf(&b,
		    "# HELP lifeguard_reflector_info Build and identity of this node.\n"
		    "# TYPE lifeguard_reflector_info gauge\n"
		    "lifeguard_reflector_info{version=\"%s\",node_id=\"%llu\"} 1\n",
		    st->version, (unsigned long long)st->node_id);
	metric(&b, "is_leader", "gauge", "1 if this node is the raft leader.",
	       strcmp(st->role, "leader") == 0);
	metric(&b, "term", "gauge", "Current raft term.", st->term);
	metric(&b, "leader_changes_total", "counter",
	       "Times this node observed a new leader (id or term).", m->leader_changes);
	metric(&b, "terms_led_total", "counter", "Terms in which this node became leader.",
	       m->terms_led);
	metric(&b, "leader_known", "gauge", "1 if this node knows the current leader.",
	       st->leader_known);
	metric(&b, "voter", "gauge", "1 if this node votes in its latest known configuration.",
	       st->voter);
	metric(&b, "commit_index", "gauge", "Highest raft log index known to be committed.",
	       st->commit_index);
	metric(&b, "applied_index", "gauge", "Highest raft log index applied to the FSM.",
	       st->applied_index);
	metric(&b, "last_log_index", "gauge", "Index of the last entry in the local raft log.",
	       st->last_log_index);
	metric(&b, "peers", "gauge", "Servers in the latest known raft configuration.",
	       st->n_peers);
	metric(&b, "uptime_seconds", "gauge", "Seconds since the process started.", st->uptime_s);
	metric(&b, "fsm_rejected_commands_total", "counter",
	       "Committed commands the state machine could not decode.", m->fsm_rejected);
	mbuf_printf(&b,
		    "# HELP lifeguard_reflector_member_changes_total Membership changes handled "
		    "by this node as leader.\n# TYPE lifeguard_reflector_member_changes_total "
		    "counter\nlifeguard_reflector_member_changes_total{result=\"ok\"} %llu\n"
		    "lifeguard_reflector_member_changes_total{result=\"error\"} %llu\n",
		    (unsigned long long)m->member_changes_ok,
		    (unsigned long long)m->member_changes_failed);
	metrics_http(&b, m);
	metrics_coherence(&b, st->coherence, st->now_ms);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
