/*
 * cache_bench: single-key finds by primary key (lg_model_find_cached) from M coroutines on
 * one runtime, over 10,000 rows of a table with lg_version, measured in one run:
 *   hit      every find answered by Redis (keys filled first), decoded into the struct;
 *   primary  the same finds with the cache bypassed, on a pool of the primary;
 *   replica  the same on a pool of a streaming replica (--replica-dsn; skipped without one);
 * and, as anchors, redis-benchmark -t get at the same concurrency against the same Redis,
 * without pipelining and with -P 16. Prints queries/s and p99 of each, this process' CPU
 * per find (hits and primary), and the ratios hit/primary and hit/redis-pipelined.
 *
 *   cache_bench [--dsn DSN --redis-port P [--replica-dsn DSN]] [--clients M] [--conns N]
 *               [--seconds S] [--json]
 * Without --dsn it uses $LG_TEST_PG_DSN, $LG_TEST_REDIS_PORT and the first of
 * $LG_TEST_REPLICA_PORTS (scripts/services up ENV --replicas 1), else it starts its own
 * PostgreSQL and Redis through scripts/services (no replica).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>

#include "bench_common.h"

#define ROWS 10000

#define BU_COLUMNS(X)                                                                              \
	X(bu, id, LG_INT64, LG_COL_PK)                                                             \
	X(bu, name, LG_TEXT, LG_COL_NULLABLE)                                                      \
	X(bu, email, LG_TEXT, LG_COL_NULLABLE)                                                     \
	X(bu, n, LG_INT32, LG_COL_NULLABLE)                                                        \
	X(bu, lg_version, LG_INT64, LG_COL_NULLABLE)
LG_MODEL_DECLARE(bu, BU_COLUMNS);
LG_MODEL_DEFINE(bu, "public", "cache_bench_users", BU_COLUMNS);

struct result {
	double qps;
	double p99;
	double cpu_us; /* this process' CPU per find */
	uint64_t hits;
};

struct phase {
	struct lg_db db;
	struct lg_cache *cache;
	bool bypass;
	uint64_t end_us;
	uint64_t finds;
	uint64_t errors;
	uint64_t hits;
	struct bench_lat lat;
};

static void client(void *arg)
{
	struct phase *p = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed;
	struct bu row = {0};
	while (bench_now_us() < p->end_us) {
		seed = seed * 1103515245u + 12345u;
		struct lg_param key = lg_param_int64((int64_t)((seed >> 4) % ROWS) + 1);
		struct lg_find_opts o = {.bypass = p->bypass};
		uint64_t t0 = bench_now_us();
		if (lg_model_find_cached(&p->db, p->cache, &bu_model, &key, &o, &row, NULL) != 0) {
			p->errors++;
		}
		bench_lat_add(&p->lat, bench_now_us() - t0);
		p->hits += o.from_cache;
		p->finds++;
	}
	lg_row_clear(&bu_model, &row);
}

static void run_phase(struct lg_runtime *rt, struct phase *p, int clients, int seconds,
		      struct result *out)
{
	double cpu0 = bench_cpu_s();
	uint64_t t0 = bench_now_us();
	p->end_us = t0 + (uint64_t)seconds * 1000000u;
	for (int i = 0; i < clients; i++) {
		lg_coro_spawn(rt, client, p, NULL);
	}
	lg_runtime_run(rt);
	double secs = (double)(bench_now_us() - t0) / 1e6;
	out->qps = (double)p->finds / secs;
	out->cpu_us = p->finds > 0 ? (bench_cpu_s() - cpu0) * 1e6 / (double)p->finds : 0;
	out->p99 = bench_lat_pct_ms(&p->lat, 99);
	out->hits = p->hits;
	if (p->errors > 0) {
		fprintf(stderr, "cache_bench: %" PRIu64 " errors\n", p->errors);
	}
	bench_lat_free(&p->lat);
}

/* redis-benchmark -t get at the given concurrency and pipeline depth: GET/s, or 0. */
static double redis_get_qps(int port, int clients, int pipeline)
{
	char cmd[256];
	char out[4096];
	snprintf(
	    cmd, sizeof(cmd),
	    "redis-benchmark -h 127.0.0.1 -p %d -t get -c %d -P %d -n %d -r %d --csv 2>/dev/null",
	    port, clients, pipeline, pipeline > 1 ? 4000000 : 400000, ROWS);
	if (bench_run(cmd, out, sizeof(out)) != 0) {
		return 0;
	}
	const char *line = strstr(out, "\"GET\",\"");
	return line != NULL ? strtod(line + 7, NULL) : 0;
}

static int exec_sql(struct lg_pool *pool, const char *sql)
{
	struct lg_error err;
	if (lg_pool_exec(pool, sql, &err) != 0) {
		fprintf(stderr, "cache_bench: %s: %s\n", sql, err.message);
		return -1;
	}
	return 0;
}

/* The table, filled on the primary; waits until the replica shows it. */
static int prepare(struct lg_pool *primary, struct lg_pool *replica)
{
	if (exec_sql(primary, "DROP TABLE IF EXISTS cache_bench_users") != 0 ||
	    exec_sql(primary, "CREATE TABLE cache_bench_users (id int8 PRIMARY KEY, name text,"
			      " email text, n int4, lg_version int8)") != 0 ||
	    exec_sql(primary, "INSERT INTO cache_bench_users SELECT g, 'user ' || g,"
			      " 'user' || g || '@example.com', g % 100, g"
			      " FROM generate_series(1, 10000) g") != 0) {
		return -1;
	}
	for (int i = 0; replica != NULL && i < 600; i++) {
		struct lg_result *r = NULL;
		int64_t n = 0;
		if (lg_pool_query(replica, "SELECT count(*) FROM cache_bench_users", NULL, 0, NULL,
				  &r, NULL) == 0 &&
		    lg_result_int64(r, 0, 0, &n) == 0 && n == ROWS) {
			lg_result_free(r);
			return 0;
		}
		lg_result_free(r);
		usleep(100000);
	}
	return replica == NULL ? 0 : -1;
}

struct opts {
	char dsn[1024];
	char replica_dsn[1024];
	int redis_port;
	int clients;
	int conns;
	int seconds;
	bool json;
};

static void parse_args(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";
		if (strcmp(argv[i], "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(argv[i], "--dsn") == 0) {
			snprintf(o->dsn, sizeof(o->dsn), "%s", v);
		} else if (strcmp(argv[i], "--replica-dsn") == 0) {
			snprintf(o->replica_dsn, sizeof(o->replica_dsn), "%s", v);
		} else if (strcmp(argv[i], "--redis-port") == 0) {
			o->redis_port = atoi(v);
		} else if (strcmp(argv[i], "--clients") == 0) {
			o->clients = atoi(v);
		} else if (strcmp(argv[i], "--conns") == 0) {
			o->conns = atoi(v);
		} else if (strcmp(argv[i], "--seconds") == 0) {
			o->seconds = atoi(v);
		} else {
			fprintf(stderr, "cache_bench: unknown argument %s\n", argv[i]);
			exit(2);
		}
		i++;
	}
	const char *env_dsn = getenv("LG_TEST_PG_DSN");
	const char *env_redis = getenv("LG_TEST_REDIS_PORT");
	const char *env_replicas = getenv("LG_TEST_REPLICA_PORTS");
	if (o->dsn[0] == '\0' && env_dsn != NULL && env_redis != NULL) {
		snprintf(o->dsn, sizeof(o->dsn), "%s", env_dsn);
		o->redis_port = atoi(env_redis);
		if (env_replicas != NULL && atoi(env_replicas) > 0) {
			snprintf(o->replica_dsn, sizeof(o->replica_dsn),
				 "host=127.0.0.1 port=%d user=postgres dbname=postgres",
				 atoi(env_replicas));
		}
	}
}

struct run {
	struct opts *o;
	struct lg_runtime *rt;
	struct result hit, primary, replica;
	int rc;
};

static struct lg_pool *open_pool(struct lg_runtime *rt, const char *dsn, int conns)
{
	struct lg_pool_config cfg = {.conninfo = dsn,
				     .min_conns = (unsigned)conns,
				     .max_conns = (unsigned)conns,
				     .acquire_timeout_ms = 30000};
	struct lg_pool *p = NULL;
	struct lg_error err;
	if (lg_pool_new(rt, &cfg, &p, &err) != 0) {
		fprintf(stderr, "cache_bench: %s\n", err.message);
		return NULL;
	}
	return p;
}

/* Fills every key once (8 coroutines), so that the hit phase only hits. */
struct warm {
	struct phase *p;
	int64_t next;
};

static void warm_client(void *arg)
{
	struct warm *w = arg;
	struct bu row = {0};
	while (w->next <= ROWS) {
		struct lg_param key = lg_param_int64(w->next++);
		(void)lg_model_find_cached(&w->p->db, w->p->cache, &bu_model, &key, NULL, &row,
					   NULL);
	}
	lg_row_clear(&bu_model, &row);
}

static int run_all(struct run *r)
{
	struct opts *o = r->o;
	struct lg_pool *primary = open_pool(r->rt, o->dsn, o->conns);
	struct lg_pool *replica =
	    o->replica_dsn[0] != '\0' ? open_pool(r->rt, o->replica_dsn, o->conns) : NULL;
	struct lg_redis *redis = NULL;
	struct lg_cache *cache = NULL;
	struct lg_error err;
	struct lg_redis_config rc = {.host = "127.0.0.1", .port = o->redis_port};
	struct lg_cache_config cc = {.pool = primary, .redis = NULL};
	struct lg_cache_policy pol = {.ttl_ms = 600000};
	int rc_ = -1;
	if (primary == NULL || (o->replica_dsn[0] != '\0' && replica == NULL) ||
	    prepare(primary, replica) != 0 || lg_redis_new(r->rt, &rc, &redis, &err) != 0) {
		goto out;
	}
	cc.redis = redis;
	if (lg_cache_new(&cc, &cache, &err) != 0 ||
	    lg_cache_policy_set(cache, &bu_model, &pol, &err) != 0) {
		goto out;
	}
	struct phase hit = {.db = {.pool = primary}, .cache = cache};
	struct warm w = {&hit, 1};
	for (int i = 0; i < 8; i++) {
		lg_coro_spawn(r->rt, warm_client, &w, NULL);
	}
	lg_runtime_run(r->rt);
	run_phase(r->rt, &hit, o->clients, o->seconds, &r->hit);
	struct phase prim = {.db = {.pool = primary}, .cache = cache, .bypass = true};
	run_phase(r->rt, &prim, o->clients, o->seconds, &r->primary);
	if (replica != NULL) {
		struct phase rep = {.db = {.pool = replica}, .cache = cache, .bypass = true};
		run_phase(r->rt, &rep, o->clients, o->seconds, &r->replica);
	}
	rc_ = 0;
out:
	if (rc_ != 0 && redis == NULL) {
		fprintf(stderr, "cache_bench: setup failed\n");
	}
	lg_cache_free(cache);
	lg_redis_free(redis);
	lg_pool_free(replica);
	lg_pool_free(primary);
	return rc_;
}

static void print(const struct opts *o, const struct run *r, double get, double get_p)
{
	double over_primary = r->primary.qps > 0 ? r->hit.qps / r->primary.qps : 0;
	double over_pipe = get_p > 0 ? r->hit.qps / get_p : 0;
	bool rep = o->replica_dsn[0] != '\0';
	if (o->json) {
		char replica[32];
		snprintf(replica, sizeof(replica), "%.0f", r->replica.qps);
		printf("{\"clients\": %d, \"conns\": %d, \"seconds\": %d, \"hit_qps\": %.0f,"
		       " \"primary_qps\": %.0f, \"replica_qps\": %s, \"redis_get_qps\": %.0f,"
		       " \"redis_get_pipelined_qps\": %.0f, \"hit_over_primary\": %.2f,"
		       " \"hit_over_redis_pipelined\": %.3f, \"hit_p99_ms\": %.2f,"
		       " \"primary_p99_ms\": %.2f, \"replica_p99_ms\": %.2f,"
		       " \"hit_client_cpu_us\": %.1f, \"primary_client_cpu_us\": %.1f}\n",
		       o->clients, o->conns, o->seconds, r->hit.qps, r->primary.qps,
		       rep ? replica : "null", get, get_p, over_primary, over_pipe, r->hit.p99,
		       r->primary.p99, r->replica.p99, r->hit.cpu_us, r->primary.cpu_us);
		return;
	}
	printf("cache hits       %10.0f finds/s  p99 %.2f ms  %.1f us CPU/find\n", r->hit.qps,
	       r->hit.p99, r->hit.cpu_us);
	printf("primary (bypass) %10.0f finds/s  p99 %.2f ms  %.1f us CPU/find\n", r->primary.qps,
	       r->primary.p99, r->primary.cpu_us);
	if (rep) {
		printf("replica (bypass) %10.0f finds/s  p99 %.2f ms\n", r->replica.qps,
		       r->replica.p99);
	}
	printf("redis-benchmark GET %10.0f/s, -P 16: %.0f/s\n", get, get_p);
	printf("hit/primary %.2f, hit/redis-pipelined %.3f\n", over_primary, over_pipe);
}

int main(int argc, char **argv)
{
	struct opts o = {.clients = 1000, .conns = 8, .seconds = 5};
	parse_args(argc, argv, &o);
	bool own = o.dsn[0] == '\0';
	if (own && !bench_services_up_redis(o.dsn, sizeof(o.dsn), &o.redis_port)) {
		fprintf(stderr, "cache_bench: cannot start services\n");
		return 1;
	}
	struct run r = {.o = &o};
	int rc = lg_runtime_new(NULL, NULL, &r.rt) == 0 ? run_all(&r) : -1;
	lg_runtime_free(r.rt);
	double get = rc == 0 ? redis_get_qps(o.redis_port, o.clients, 1) : 0;
	double get_p = rc == 0 ? redis_get_qps(o.redis_port, o.clients, 16) : 0;
	if (own) {
		bench_services_down();
	}
	if (rc != 0) {
		return 1;
	}
	print(&o, &r, get, get_p);
	return 0;
}
