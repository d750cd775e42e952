/* /metrics of the users service, in the Prometheus text format 0.0.4. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "svc_api.h"

static void metric(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One family per metric, each with a sample per pool (families must not interleave). */
static void pool_metrics(FILE *f, const struct svc_store *st)
{
	const char *role[2] = {"primary", "replica"};
	struct lg_pool_stats s[2];
	int n = svc_store_replica(st) != NULL ? 2 : 1;
	lg_pool_get_stats(svc_store_primary(st), &s[0]);
	if (n == 2) {
		lg_pool_get_stats(svc_store_replica(st), &s[1]);
	}
	metric(f, "users_service_pool_conns", "gauge", "Open connections by pool and state.");
	for (int i = 0; i < n; i++) {
		fprintf(f, "users_service_pool_conns{pool=\"%s\",state=\"busy\"} %u\n", role[i],
			s[i].conns_busy);
		fprintf(f, "users_service_pool_conns{pool=\"%s\",state=\"idle\"} %u\n", role[i],
			s[i].conns_idle);
		fprintf(f, "users_service_pool_conns{pool=\"%s\",state=\"connecting\"} %u\n",
			role[i], s[i].conns_connecting);
	}
	metric(f, "users_service_pool_waiters", "gauge", "Callers waiting for a connection.");
	for (int i = 0; i < n; i++) {
		fprintf(f, "users_service_pool_waiters{pool=\"%s\"} %u\n", role[i], s[i].waiters);
	}
	metric(f, "users_service_pool_statements_total", "counter", "Statements by result.");
	for (int i = 0; i < n; i++) {
		fprintf(
		    f,
		    "users_service_pool_statements_total{pool=\"%s\",result=\"ok\"} %" PRIu64
		    "\nusers_service_pool_statements_total{pool=\"%s\",result=\"failed\"} %" PRIu64
		    "\n",
		    role[i], s[i].statements_ok, role[i], s[i].statements_failed);
	}
	metric(f, "users_service_pool_conns_lost_total", "counter", "Connections lost.");
	for (int i = 0; i < n; i++) {
		fprintf(f, "users_service_pool_conns_lost_total{pool=\"%s\"} %" PRIu64 "\n",
			role[i], s[i].conns_lost);
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
	       "Redis errors, coalesced misses.");
	fprintf(f, "users_service_cache_total{event=\"hit\"} %" PRIu64 "\n", c.hits);
	fprintf(f, "users_service_cache_total{event=\"miss\"} %" PRIu64 "\n", c.misses);
	fprintf(f, "users_service_cache_total{event=\"fill\"} %" PRIu64 "\n", c.fills);
	fprintf(f, "users_service_cache_total{event=\"fill_refused\"} %" PRIu64 "\n",
		c.fills_refused);
	fprintf(f, "users_service_cache_total{event=\"fill_late\"} %" PRIu64 "\n", c.fills_late);
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
	metric(f, "users_service_token_reads_redirected_total", "counter",
	       "Reads with a token that a copy could not serve yet (the next source answered).");
	fprintf(f, "users_service_token_reads_redirected_total{copy=\"cache\"} %" PRIu64 "\n",
		s->token_cache_stale);
	fprintf(f, "users_service_token_reads_redirected_total{copy=\"replica\"} %" PRIu64 "\n",
		s->token_replica_behind);
	metric(f, "users_service_replica_retries_total", "counter",
	       "Replica reads that failed and were answered by the primary.");
	fprintf(f, "users_service_replica_retries_total %" PRIu64 "\n", s->replica_retries);
	if (!s->replica_configured) {
		return;
	}
	metric(f, "users_service_replica_lag_bytes", "gauge",
	       "WAL bytes between the primary's position and the replica's replay position.");
	fprintf(f, "users_service_replica_lag_bytes %" PRIu64 "\n", s->lag_bytes);
	metric(f, "users_service_replica_replay_age_seconds", "gauge",
	       "Age of the last transaction the replica replayed (grows when the primary idles).");
	fprintf(f, "users_service_replica_replay_age_seconds %.3f\n", s->replay_age_s);
	metric(f, "users_service_replica_healthy", "gauge",
	       "1 when the last lag sample is recent and under the bound (reads may use it).");
	fprintf(f, "users_service_replica_healthy %d\n", s->replica_healthy);
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
	pool_metrics(f, api->store);
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
