/*
 * pool_bench: primary-key SELECTs on a 100k-row table (pgbench_accounts, scale 1), measured
 * in one run against the same PostgreSQL:
 *   A) libguard: M coroutines over an lg_pool of N pipelined connections (one thread);
 *   B) the usual C alternative: N threads, each with its own connection, blocking
 *      PQexecPrepared in a loop;
 *   C) pgbench -S -M prepared -c N, and a pgbench script with \startpipeline ... 10 selects
 *      ... \endpipeline (what this machine can do at all).
 * Prints queries/s, latency p50/p99, client CPU seconds per 100k queries (A and B) and the
 * ratios A/B and A/C-pipelined. Then the same A and B for writes (single-row UPDATE by key,
 * autocommit) and for a 90/10 read/write mix: write_* and mixed_* keys. A's reads are marked
 * LG_QUERY_SHARED_READ, so they share sync segments. classify_ns is what deciding that costs per
 * statement on the hot path: a hit in the connection's cache of parser verdicts (sql_cache.c),
 * timed in a loop.
 *
 *   pool_bench [--dsn DSN] [--conns N] [--clients M] [--seconds S] [--json]
 * Without --dsn it starts its own throwaway PostgreSQL through scripts/services.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libguard/libguard.h>

#include "bench_common.h"
#include "sql_parse.h"

#define BENCH_ROWS   100000
#define PGBENCH_PIPE 10

static unsigned segment_size; /* --segment; 0 = the pool's default */

static const char *select_sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
static const char *update_sql =
    "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = $1";
/* Share of statements that are the UPDATE: 0 (reads), 100 (writes) or 10 (the mix). */
static unsigned write_pct;

struct result {
	double qps;
	double p50;
	double p99;
	double cpu_per_100k;
};

/* A: libguard. */

struct a_state {
	struct lg_pool *pool;
	uint64_t end_us;
	uint64_t queries;
	uint64_t errors;
	struct bench_lat lat;
};

static void a_client(void *arg)
{
	struct a_state *s = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed;
	struct lg_query_opts read = {0, LG_QUERY_PREPARE | LG_QUERY_BINARY | LG_QUERY_SHARED_READ};
	struct lg_query_opts write = {0, LG_QUERY_PREPARE | LG_QUERY_BINARY};
	while (bench_now_us() < s->end_us) {
		seed = seed * 1103515245u + 12345u;
		struct lg_param p = lg_param_int32((int32_t)(seed % BENCH_ROWS) + 1);
		bool is_write = (seed >> 8) % 100 < write_pct;
		uint64_t t0 = bench_now_us();
		struct lg_result *r = NULL;
		if (lg_pool_query(s->pool, is_write ? update_sql : select_sql, &p, 1,
				  is_write ? &write : &read, &r, NULL) != 0 ||
		    (is_write ? lg_result_affected(r) : lg_result_rows(r)) != 1) {
			s->errors++;
		}
		lg_result_free(r);
		bench_lat_add(&s->lat, bench_now_us() - t0);
		s->queries++;
	}
}

static int run_a(const char *dsn, int conns, int clients, int seconds, struct result *out)
{
	struct lg_runtime *rt;
	struct lg_error err;
	if (lg_runtime_new(NULL, NULL, &rt) != 0) {
		return -1;
	}
	struct lg_pool_config cfg = {.conninfo = dsn,
				     .min_conns = (unsigned)conns,
				     .max_conns = (unsigned)conns,
				     .max_segment = segment_size,
				     .acquire_timeout_ms = 30000};
	struct a_state s = {0};
	if (lg_pool_new(rt, &cfg, &s.pool, &err) != 0) {
		fprintf(stderr, "pool_bench: A: %s\n", err.message);
		lg_runtime_free(rt);
		return -1;
	}
	double cpu0 = bench_cpu_s();
	uint64_t t0 = bench_now_us();
	s.end_us = t0 + (uint64_t)seconds * 1000000u;
	for (int i = 0; i < clients; i++) {
		lg_coro_spawn(rt, a_client, &s, NULL);
	}
	lg_runtime_run(rt);
	double secs = (double)(bench_now_us() - t0) / 1e6;
	double cpu = bench_cpu_s() - cpu0;
	out->qps = (double)s.queries / secs;
	out->p50 = bench_lat_pct_ms(&s.lat, 50);
	out->p99 = bench_lat_pct_ms(&s.lat, 99);
	out->cpu_per_100k = s.queries ? cpu / (double)s.queries * 100000.0 : 0;
	if (s.errors > 0) {
		fprintf(stderr, "pool_bench: A: %" PRIu64 " errors\n", s.errors);
	}
	bench_lat_free(&s.lat);
	lg_pool_free(s.pool);
	lg_runtime_free(rt);
	return 0;
}

/* The verdict lookup every statement pays (a cache hit), in ns. */
static double classify_ns(void)
{
	enum { N = 2000000 };
	struct lg__sql_cache *c = lg__sql_cache_new(0);
	if (c == NULL) {
		return 0;
	}
	(void)lg__sql_cache_get(c, select_sql, NULL);
	unsigned reads = 0;
	uint64_t t0 = bench_now_us();
	for (int i = 0; i < N; i++) {
		reads += lg__sql_is_read(lg__sql_cache_get(c, select_sql, NULL));
	}
	double ns = (double)(bench_now_us() - t0) * 1000.0 / N;
	lg__sql_cache_free(c);
	return reads == N ? ns : 0;
}

/* B: a thread per connection, blocking libpq. */

struct b_thread {
	const char *dsn;
	uint64_t end_us;
	uint64_t queries;
	uint64_t errors;
	struct bench_lat lat;
	pthread_t tid;
};

static void *b_main(void *arg)
{
	struct b_thread *t = arg;
	PGconn *c = PQconnectdb(t->dsn);
	if (PQstatus(c) != CONNECTION_OK) {
		t->errors++;
		PQfinish(c);
		return NULL;
	}
	PGresult *r = PQprepare(c, "sel", select_sql, 1, NULL);
	PQclear(r);
	r = PQprepare(c, "upd", update_sql, 1, NULL);
	PQclear(r);
	uint32_t seed = (uint32_t)(uintptr_t)t;
	while (bench_now_us() < t->end_us) {
		seed = seed * 1103515245u + 12345u;
		char id[16];
		snprintf(id, sizeof(id), "%u", seed % BENCH_ROWS + 1);
		const char *v[1] = {id};
		bool is_write = (seed >> 8) % 100 < write_pct;
		uint64_t t0 = bench_now_us();
		r = PQexecPrepared(c, is_write ? "upd" : "sel", 1, v, NULL, NULL, 1);
		if (is_write ? (PQresultStatus(r) != PGRES_COMMAND_OK ||
				strcmp(PQcmdTuples(r), "1") != 0)
			     : (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)) {
			t->errors++;
		}
		PQclear(r);
		bench_lat_add(&t->lat, bench_now_us() - t0);
		t->queries++;
	}
	PQfinish(c);
	return NULL;
}

static int run_b(const char *dsn, int conns, int seconds, struct result *out)
{
	struct b_thread *t = calloc((size_t)conns, sizeof(*t));
	double cpu0 = bench_cpu_s();
	uint64_t t0 = bench_now_us();
	for (int i = 0; i < conns; i++) {
		t[i].dsn = dsn;
		t[i].end_us = t0 + (uint64_t)seconds * 1000000u;
		pthread_create(&t[i].tid, NULL, b_main, &t[i]);
	}
	struct bench_lat all = {0};
	uint64_t queries = 0, errors = 0;
	for (int i = 0; i < conns; i++) {
		pthread_join(t[i].tid, NULL);
		queries += t[i].queries;
		errors += t[i].errors;
		bench_lat_merge(&all, &t[i].lat);
		bench_lat_free(&t[i].lat);
	}
	double secs = (double)(bench_now_us() - t0) / 1e6;
	double cpu = bench_cpu_s() - cpu0;
	out->qps = (double)queries / secs;
	out->p50 = bench_lat_pct_ms(&all, 50);
	out->p99 = bench_lat_pct_ms(&all, 99);
	out->cpu_per_100k = queries ? cpu / (double)queries * 100000.0 : 0;
	if (errors > 0) {
		fprintf(stderr, "pool_bench: B: %" PRIu64 " errors\n", errors);
	}
	bench_lat_free(&all);
	free(t);
	return 0;
}

/* C: pgbench, with per-transaction logs for the latency percentiles. */

static int run_pgbench(const char *dsn, int conns, int seconds, bool pipelined, struct result *out)
{
	char dir[] = "/tmp/lg-pgbench.XXXXXX";
	if (mkdtemp(dir) == NULL) {
		return -1;
	}
	char script[256] = "";
	if (pipelined) {
		snprintf(script, sizeof(script), "%s/pipe.sql", dir);
		FILE *f = fopen(script, "w");
		fprintf(f, "\\startpipeline\n");
		for (int i = 0; i < PGBENCH_PIPE; i++) {
			fprintf(f, "\\set aid random(1, %d)\n", BENCH_ROWS);
			fprintf(f, "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n");
		}
		fprintf(f, "\\endpipeline\n");
		fclose(f);
	}
	int jobs = conns < 2 ? conns : 2;
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && pgbench -n -M prepared -c %d -j %d -T %d -l --log-prefix=tx %s%s "
		 "'%s' 2>&1 | sed -n 's/^tps = \\([0-9.]*\\).*/\\1/p' | head -1",
		 dir, conns, jobs, seconds, pipelined ? "-f " : "-S", pipelined ? script : "", dsn);
	char tps[64] = "";
	int rc = bench_run(cmd, tps, sizeof(tps));
	double per_tx = pipelined ? PGBENCH_PIPE : 1;
	out->qps = atof(tps) * per_tx;
	struct bench_lat lat = {0};
	snprintf(cmd, sizeof(cmd), "cat '%s'/tx.* 2>/dev/null | awk '{print $3}'", dir);
	FILE *f = popen(cmd, "r");
	unsigned long us;
	while (f != NULL && fscanf(f, "%lu", &us) == 1) {
		bench_lat_add(&lat, us);
	}
	if (f != NULL) {
		pclose(f);
	}
	out->p50 = bench_lat_pct_ms(&lat, 50);
	out->p99 = bench_lat_pct_ms(&lat, 99);
	bench_lat_free(&lat);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	bench_run(cmd, NULL, 0);
	return rc == 0 && out->qps > 0 ? 0 : -1;
}

static int prepare_db(const char *dsn)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "pgbench -i -q -s 1 '%s' >/dev/null 2>&1", dsn);
	return bench_run(cmd, NULL, 0);
}

int main(int argc, char **argv)
{
	const char *dsn_arg = NULL;
	int conns = 8, clients = 1000, seconds = 5;
	bool json = false;
	const char *only = NULL; /* profile one side: "a" or "b" */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
			dsn_arg = argv[++i];
		} else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc) {
			conns = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc) {
			clients = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--segment") == 0 && i + 1 < argc) {
			segment_size = (unsigned)atoi(argv[++i]);
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else {
			fprintf(stderr, "usage: pool_bench [--dsn DSN] [--conns N] [--clients M] "
					"[--seconds S] [--json] [--only a|b] [--segment N]\n");
			return 2;
		}
	}
	if (conns < 1 || conns > 200 || clients < 1 || clients > 100000 || seconds < 1) {
		fprintf(stderr,
			"pool_bench: --conns 1..200, --clients 1..100000, --seconds >= 1\n");
		return 2;
	}
	char dsn[512];
	if (dsn_arg != NULL) {
		snprintf(dsn, sizeof(dsn), "%s", dsn_arg);
	} else if (!bench_services_up(dsn, sizeof(dsn))) {
		return 1;
	}
	int rc = 1;
	struct result a = {0}, b = {0}, c = {0}, cp = {0};
	struct result wa = {0}, wb = {0}, ma = {0}, mb = {0};
	if (prepare_db(dsn) != 0) {
		fprintf(stderr, "pool_bench: pgbench -i failed\n");
	} else if (only != NULL) {
		struct result *r = strcmp(only, "a") == 0 ? &a : &b;
		rc = strcmp(only, "a") == 0 ? run_a(dsn, conns, clients, seconds, r)
					    : run_b(dsn, conns, seconds, r);
		printf("%s: %.0f q/s, p50 %.3f ms, p99 %.3f ms, CPU %.3f s/100k\n", only, r->qps,
		       r->p50, r->p99, r->cpu_per_100k);
		if (dsn_arg == NULL) {
			bench_services_down();
		}
		return rc == 0 ? 0 : 1;
	} else if (run_a(dsn, conns, clients, seconds, &a) == 0 &&
		   run_b(dsn, conns, seconds, &b) == 0 &&
		   run_pgbench(dsn, conns, seconds, false, &c) == 0 &&
		   run_pgbench(dsn, conns, seconds, true, &cp) == 0) {
		/* Writes: every UPDATE in a sync segment of its own (autocommit meaning). */
		write_pct = 100;
		rc = run_a(dsn, conns, clients, seconds, &wa) | run_b(dsn, conns, seconds, &wb);
		write_pct = 10;
		rc |= run_a(dsn, conns, clients, seconds, &ma) | run_b(dsn, conns, seconds, &mb);
	}
	if (dsn_arg == NULL) {
		bench_services_down();
	}
	if (rc != 0) {
		return rc;
	}
	double a_over_b = b.qps > 0 ? a.qps / b.qps : 0;
	double cls_ns = classify_ns();
	double a_over_cp = cp.qps > 0 ? a.qps / cp.qps : 0;
	if (json) {
		printf("{\"conns\":%d,\"clients\":%d,\"seconds\":%d,"
		       "\"a_qps\":%.0f,\"a_p50_ms\":%.3f,\"a_p99_ms\":%.3f,"
		       "\"b_qps\":%.0f,\"b_p50_ms\":%.3f,\"b_p99_ms\":%.3f,"
		       "\"c_qps\":%.0f,\"c_p50_ms\":%.3f,\"c_p99_ms\":%.3f,"
		       "\"c_pipelined_qps\":%.0f,\"c_pipelined_p50_ms\":%.3f,"
		       "\"c_pipelined_p99_ms\":%.3f,"
		       "\"a_over_b\":%.3f,\"a_over_c_pipelined\":%.3f,"
		       "\"a_cpu_per_100k\":%.3f,\"b_cpu_per_100k\":%.3f,\"classify_ns\":%.1f,"
		       "\"write_a_qps\":%.0f,\"write_b_qps\":%.0f,\"write_a_over_b\":%.3f,"
		       "\"mixed_a_qps\":%.0f,\"mixed_b_qps\":%.0f,\"mixed_a_over_b\":%.3f,"
		       "\"write_a_cpu_per_100k\":%.3f,\"write_b_cpu_per_100k\":%.3f}\n",
		       conns, clients, seconds, a.qps, a.p50, a.p99, b.qps, b.p50, b.p99, c.qps,
		       c.p50, c.p99, cp.qps, cp.p50, cp.p99, a_over_b, a_over_cp, a.cpu_per_100k,
		       b.cpu_per_100k, cls_ns, wa.qps, wb.qps, wb.qps > 0 ? wa.qps / wb.qps : 0,
		       ma.qps, mb.qps, mb.qps > 0 ? ma.qps / mb.qps : 0, wa.cpu_per_100k,
		       wb.cpu_per_100k);
		return 0;
	}
	printf("pool_bench: primary-key SELECT on %d rows, %d connections, %d s each\n", BENCH_ROWS,
	       conns, seconds);
	printf("%-44s %12s %10s %10s %14s\n", "", "queries/s", "p50 ms", "p99 ms", "CPU s/100k");
	printf("%-44s %12.0f %10.3f %10.3f %14.3f\n", "A libguard pool, coroutines", a.qps, a.p50,
	       a.p99, a.cpu_per_100k);
	printf("%-44s %12.0f %10.3f %10.3f %14.3f\n", "B threads + blocking PQexecPrepared", b.qps,
	       b.p50, b.p99, b.cpu_per_100k);
	printf("%-44s %12.0f %10.3f %10.3f %14s\n", "C pgbench -S -M prepared", c.qps, c.p50, c.p99,
	       "-");
	printf("%-44s %12.0f %10.3f %10.3f %14s\n", "C pgbench pipelined (10 per sync, per tx)",
	       cp.qps, cp.p50, cp.p99, "-");
	printf("A/B = %.2f   A/C-pipelined = %.2f   (A clients: %d coroutines)\n", a_over_b,
	       a_over_cp, clients);
	printf("%-44s %12.0f %10.3f %10.3f %14.3f\n", "A writes (UPDATE by key, autocommit)",
	       wa.qps, wa.p50, wa.p99, wa.cpu_per_100k);
	printf("%-44s %12.0f %10.3f %10.3f %14.3f\n", "B writes", wb.qps, wb.p50, wb.p99,
	       wb.cpu_per_100k);
	printf("%-44s %12.0f %10.3f %10.3f %14.3f\n", "A 90/10 read/write", ma.qps, ma.p50, ma.p99,
	       ma.cpu_per_100k);
	printf("%-44s %12.0f %10.3f %10.3f %14.3f\n", "B 90/10 read/write", mb.qps, mb.p50, mb.p99,
	       mb.cpu_per_100k);
	printf("writes A/B = %.2f   mixed A/B = %.2f\n", wb.qps > 0 ? wa.qps / wb.qps : 0,
	       mb.qps > 0 ? ma.qps / mb.qps : 0);
	printf("classify: %.1f ns per statement (verdict cache hit)\n", cls_ns);
	return 0;
}
