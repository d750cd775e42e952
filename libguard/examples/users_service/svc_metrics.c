/* /metrics of the users service, in the Prometheus text format 0.0.4. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "svc_api.h"

static void metric(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void pool_metrics(FILE *f, const struct lg_pool *pool)
{
	struct lg_pool_stats s;
	lg_pool_get_stats(pool, &s);
	metric(f, "users_service_pool_conns", "gauge", "Open connections of the primary pool.");
	fprintf(f, "users_service_pool_conns{state=\"busy\"} %u\n", s.conns_busy);
	fprintf(f, "users_service_pool_conns{state=\"idle\"} %u\n", s.conns_idle);
	fprintf(f, "users_service_pool_conns{state=\"connecting\"} %u\n", s.conns_connecting);
	metric(f, "users_service_pool_waiters", "gauge", "Callers waiting for a connection.");
	fprintf(f, "users_service_pool_waiters %u\n", s.waiters);
	metric(f, "users_service_pool_statements_total", "counter", "Statements by result.");
	fprintf(f, "users_service_pool_statements_total{result=\"ok\"} %" PRIu64 "\n",
		s.statements_ok);
	fprintf(f, "users_service_pool_statements_total{result=\"failed\"} %" PRIu64 "\n",
		s.statements_failed);
	metric(f, "users_service_pool_conns_lost_total", "counter", "Connections lost.");
	fprintf(f, "users_service_pool_conns_lost_total %" PRIu64 "\n", s.conns_lost);
	metric(f, "users_service_pool_acquire_timeouts_total", "counter",
	       "Callers that gave up waiting for a connection.");
	fprintf(f, "users_service_pool_acquire_timeouts_total %" PRIu64 "\n", s.acquire_timeouts);
}

/* The database handle: primary fallbacks and, per replica, lag and health. */
static void route_metrics(FILE *f, const struct lg_dbh *dbh)
{
	struct lg_dbh_stats h;
	lg_dbh_get_stats(dbh, &h);
	metric(f, "users_service_primary_reads_total", "counter",
	       "Reads the handle sent to the primary, by why (a fallback after a failed replica "
	       "read, a token no replica had replayed, or no replica within the bounds).");
	fprintf(f, "users_service_primary_reads_total{why=\"fallback\"} %" PRIu64 "\n",
		h.fallback_reads);
	fprintf(f, "users_service_primary_reads_total{why=\"token\"} %" PRIu64 "\n", h.token_reads);
	fprintf(f, "users_service_primary_reads_total{why=\"other\"} %" PRIu64 "\n",
		h.primary_reads - h.fallback_reads - h.token_reads);
	metric(f, "users_service_token_failures_total", "counter",
	       "Confirmed writes whose token could not be read (answered without a token).");
	fprintf(f, "users_service_token_failures_total %" PRIu64 "\n", h.token_failures);
	if (h.nreplicas == 0) {
		return;
	}
	struct lg_dbh_replica_stats r[LG_DBH_MAX_REPLICAS];
	size_t n = 0;
	for (size_t i = 0; i < h.nreplicas && i < LG_DBH_MAX_REPLICAS; i++) {
		n += lg_dbh_replica_stats(dbh, i, &r[n]) == 0;
	}
	struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"users_service_replica_lag_bytes", "gauge",
	     "WAL bytes between the primary's position and the replica's replay position."},
	    {"users_service_replica_lag_seconds", "gauge",
	     "Replay age while the replica is behind (0 when level)."},
	    {"users_service_replica_healthy", "gauge",
	     "1 while the replica answers its lag samples as a standby."},
	    {"users_service_replica_reads_total", "counter", "Reads served by the replica."},
	    {"users_service_replica_read_failures_total", "counter",
	     "Reads that failed on the replica (then answered by the primary)."},
	};
	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		metric(f, fam[k].name, fam[k].type, fam[k].help);
		for (size_t i = 0; i < n; i++) {
			uint64_t v[] = {r[i].lag_bytes, r[i].lag_ms, r[i].healthy, r[i].reads,
					r[i].read_failures};
			if (k == 1) {
				fprintf(f, "%s{replica=\"%s\"} %.3f\n", fam[k].name, r[i].name,
					(double)v[k] / 1000.0);
			} else {
				fprintf(f, "%s{replica=\"%s\"} %" PRIu64 "\n", fam[k].name,
					r[i].name, v[k]);
			}
		}
	}
}

static void cache_metrics(FILE *f, const struct lg_cache *cache, const struct lg_redis *redis)
{
	struct lg_cache_stats c;
	struct lg_redis_stats r;
	lg_cache_get_stats(cache, &c);
	lg_redis_get_stats(redis, &r);
	metric(f, "users_service_cache_total", "counter",
	       "lg_cache events: hits, misses, fills, refused fills (fenced or kept), late fills, "
	       "absent-marker hits and fills, bypassed finds, Redis errors, coalesced misses.");
	fprintf(f, "users_service_cache_total{event=\"hit\"} %" PRIu64 "\n", c.hits);
	fprintf(f, "users_service_cache_total{event=\"miss\"} %" PRIu64 "\n", c.misses);
	fprintf(f, "users_service_cache_total{event=\"fill\"} %" PRIu64 "\n", c.fills);
	fprintf(f, "users_service_cache_total{event=\"fill_refused\"} %" PRIu64 "\n",
		c.fills_refused);
	fprintf(f, "users_service_cache_total{event=\"fill_late\"} %" PRIu64 "\n", c.fills_late);
	fprintf(f, "users_service_cache_total{event=\"absent_hit\"} %" PRIu64 "\n", c.absent_hits);
	fprintf(f, "users_service_cache_total{event=\"absent_fill\"} %" PRIu64 "\n",
		c.absent_fills);
	fprintf(f, "users_service_cache_total{event=\"bypassed\"} %" PRIu64 "\n", c.bypassed);
	fprintf(f, "users_service_cache_total{event=\"redis_error\"} %" PRIu64 "\n",
		c.redis_errors);
	fprintf(f, "users_service_cache_total{event=\"coalesced\"} %" PRIu64 "\n", c.coalesced);
	metric(f, "users_service_redis_breaker_open", "gauge",
	       "1 while the Redis circuit breaker is open (calls fail fast to the database).");
	fprintf(f, "users_service_redis_breaker_open %d\n", r.breaker == LG_REDIS_BREAKER_OPEN);
	metric(f, "users_service_redis_connect_attempts_total", "counter",
	       "Redis connection attempts.");
	fprintf(f, "users_service_redis_connect_attempts_total %" PRIu64 "\n", r.connect_attempts);
	metric(f, "users_service_redis_fast_failures_total", "counter",
	       "Calls failed at once while the breaker was open.");
	fprintf(f, "users_service_redis_fast_failures_total %" PRIu64 "\n", r.fast_failures);
}

static void read_metrics(FILE *f, const struct svc_store_stats *s)
{
	metric(f, "users_service_reads_total", "counter", "User reads by where they were served.");
	for (int i = 0; i < SVC_SRC__COUNT; i++) {
		fprintf(f, "users_service_reads_total{source=\"%s\"} %" PRIu64 "\n",
			svc_source_name((enum svc_source)i), s->reads[i]);
	}
	metric(
	    f, "users_service_token_cache_stale_total", "counter",
	    "Cached rows older than the caller's own write (not served; the database answered).");
	fprintf(f, "users_service_token_cache_stale_total %" PRIu64 "\n", s->token_cache_stale);
}

char *svc_metrics_render(const struct svc_api *api, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	if (f == NULL) {
		return NULL;
	}
	struct svc_store_stats s;
	svc_store_get_stats(api->store, &s);
	pool_metrics(f, svc_store_primary(api->store));
	route_metrics(f, svc_store_dbh(api->store));
	if (svc_store_cache(api->store) != NULL) {
		cache_metrics(f, svc_store_cache(api->store), svc_store_redis(api->store));
	}
	read_metrics(f, &s);
	metric(f, "users_service_responses_total", "counter", "HTTP responses by status class.");
	for (int i = 2; i < 6; i++) {
		fprintf(f, "users_service_responses_total{code=\"%dxx\"} %" PRIu64 "\n", i,
			api->responses[i]);
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
