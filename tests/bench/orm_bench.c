/*
 * orm_bench: what the ORM costs on top of libguard's raw query calls. Two query shapes on a
 * 100k-row table, each run through the ORM and through lg_pool_query with the very same SQL
 * text and parameters, in the same run, on the same pool:
 *   find_by_pk: lg_model_find vs lg_pool_query + reading every column with lg_result_*;
 *   page:       lg_query (eq + order + limit 20) + lg_query_all vs lg_pool_query + reading
 *               every column of every row.
 * Phases alternate ORM / raw for --rounds rounds to spread machine noise over both sides.
 * Prints q/s of both and ratio = orm/raw (1.0 = free; the target is >= 0.95), the client CPU
 * per query of each side (steadier than q/s on a shared machine), and what the ORM adds:
 * orm_extra_us = ORM CPU per query minus raw CPU per query, taken per round (an ORM phase
 * and the raw phase next to it) and reported as the median of the rounds, which one noisy
 * phase cannot drag; for page also per row. The _mean keys come from the totals.
 *
 * Under valgrind --tool=callgrind each phase is dumped on its own ("find_by_pk orm 2345
 * queries" in the dump's description), so instruction counts per query of one shape and
 * side can be read without the setup, the other phases or the process start-up.
 *
 *   orm_bench [--dsn DSN] [--conns N] [--clients M] [--seconds S] [--rounds R] [--json]
 * Without --dsn it starts its own throwaway PostgreSQL through scripts/services.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libguard/libguard.h>
#include <libguard/model.h>
#include <libguard/query.h>

#include "bench_common.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif

#define ROWS 100000
#define PAGE 20

#define BU_COLUMNS(X)                                                                              \
	X(bu, id, LG_INT64, LG_COL_PK)                                                             \
	X(bu, email, LG_TEXT, 0)                                                                   \
	X(bu, name, LG_TEXT, LG_COL_NULLABLE)                                                      \
	X(bu, score, LG_INT32, 0)
LG_MODEL_DECLARE(bu, BU_COLUMNS);
LG_MODEL_DEFINE(bu, "public", "orm_bench_users", BU_COLUMNS);

enum shape { FIND, PAGE_Q };

struct run {
	struct lg_pool *pool;
	struct lg_db db;
	enum shape shape;
	bool orm;
	uint64_t end_us;
	uint64_t queries;
	uint64_t errors;
	char find_sql[512];
	char page_sql[512];
};

static void build_page(struct lg_query *q, int64_t score)
{
	lg_query_init(q, &bu_model);
	bu_query_eq(q, bu_col_score, lg_param_int32((int32_t)score));
	bu_query_order(q, bu_col_id, false);
	lg_query_limit(q, PAGE);
}

/* Reads every column of row i the way a raw-API user would. */
static int raw_read(struct lg_result *r, int i)
{
	int64_t id, score;
	const char *email, *name;
	int rc = lg_result_int64(r, i, 0, &id) | lg_result_text(r, i, 1, &email, NULL) |
		 lg_result_int64(r, i, 3, &score);
	if (!lg_result_is_null(r, i, 2)) {
		rc |= lg_result_text(r, i, 2, &name, NULL);
	}
	return rc;
}

static int one_query(struct run *s, uint32_t seed)
{
	int64_t key = (int64_t)(seed % ROWS) + 1;
	/* Flagged as the ORM flags its reads. */
	struct lg_query_opts o = {0, LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	struct lg_result *r = NULL;
	int rc = 0;
	if (s->shape == FIND && s->orm) {
		struct bu row = {0};
		struct lg_param p = lg_param_int64(key);
		rc = lg_model_find(&s->db, &bu_model, &p, &row, NULL);
		lg_row_clear(&bu_model, &row);
	} else if (s->shape == FIND) {
		struct lg_param p = lg_param_int64(key);
		rc = lg_pool_query(s->pool, s->find_sql, &p, 1, &o, &r, NULL);
		rc = rc != 0 ? rc : lg_result_rows(r) != 1 ? -1 : raw_read(r, 0);
	} else if (s->orm) {
		struct lg_query q;
		build_page(&q, key % 1000);
		struct lg_rows rows = {0};
		rc = lg_query_all(&s->db, &q, &rows, NULL);
		rc = rc != 0 ? rc : rows.n != PAGE ? -1 : 0;
		lg_rows_free(&rows);
		lg_query_close(&q);
	} else {
		struct lg_param p[2] = {lg_param_int32((int32_t)(key % 1000)),
					lg_param_int64(PAGE)};
		rc = lg_pool_query(s->pool, s->page_sql, p, 2, &o, &r, NULL);
		rc = rc != 0 ? rc : lg_result_rows(r) != PAGE ? -1 : 0;
		for (int i = 0; rc == 0 && i < lg_result_rows(r); i++) {
			rc = raw_read(r, i);
		}
	}
	lg_result_free(r);
	return rc;
}

static void client(void *arg)
{
	struct run *s = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed;
	while (bench_now_us() < s->end_us) {
		seed = seed * 1103515245u + 12345u;
		if (one_query(s, seed >> 4) != 0) {
			s->errors++;
		}
		s->queries++;
	}
}

static const char *const shape_names[2] = {"find_by_pk", "page"};

/* Returns q/s; sets *cpu to this process's CPU seconds per query. */
static double phase(struct lg_runtime *rt, struct run *s, int clients, int seconds, double *cpu)
{
	s->queries = 0;
#ifdef HAVE_CALLGRIND
	CALLGRIND_ZERO_STATS;
#endif
	double c0 = bench_cpu_s();
	uint64_t t0 = bench_now_us();
	s->end_us = t0 + (uint64_t)seconds * 1000000u;
	for (int i = 0; i < clients; i++) {
		lg_coro_spawn(rt, client, s, NULL);
	}
	lg_runtime_run(rt);
	*cpu = (bench_cpu_s() - c0) / (double)(s->queries ? s->queries : 1);
#ifdef HAVE_CALLGRIND
	if (RUNNING_ON_VALGRIND) {
		char what[96];
		snprintf(what, sizeof(what), "%s %s %" PRIu64 " queries", shape_names[s->shape],
			 s->orm ? "orm" : "raw", s->queries);
		CALLGRIND_DUMP_STATS_AT(what);
	}
#endif
	return (double)s->queries * 1e6 / (double)(bench_now_us() - t0);
}

static int prepare_db(struct lg_pool *pool)
{
	struct lg_error err;
	const char *sql[] = {
	    "DROP TABLE IF EXISTS orm_bench_users",
	    "CREATE TABLE orm_bench_users (id int8 PRIMARY KEY, email text NOT NULL, name text, "
	    "score int4 NOT NULL)",
	    "INSERT INTO orm_bench_users SELECT g, 'user' || g || '@example.com', "
	    "CASE WHEN g % 3 = 0 THEN NULL ELSE 'Name ' || g END, g % 1000 "
	    "FROM generate_series(1, 100000) g",
	    "CREATE INDEX ON orm_bench_users (score, id)",
	    "ANALYZE orm_bench_users",
	};
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (lg_pool_exec(pool, sql[i], &err) != 0) {
			fprintf(stderr, "orm_bench: %s: %s\n", sql[i], err.message);
			return -1;
		}
	}
	return 0;
}

struct pair {
	double orm;
	double raw;
	double orm_cpu_us; /* client CPU per query, over all rounds */
	double raw_cpu_us;
	double extra_us_median; /* ORM minus raw CPU per query: median of the rounds */
	double ratio_median;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of v[0..n-1] (sorts v). */
static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int measure(const char *dsn, int conns, int clients, int seconds, int rounds,
		   struct pair out[2], uint64_t *errors)
{
	struct lg_runtime *rt;
	struct lg_pool *pool;
	struct lg_error err;
	if (lg_runtime_new(NULL, NULL, &rt) != 0) {
		return -1;
	}
	struct lg_pool_config cfg = {
	    .conninfo = dsn, .min_conns = (unsigned)conns, .max_conns = (unsigned)conns};
	if (lg_pool_new(rt, &cfg, &pool, &err) != 0) {
		fprintf(stderr, "orm_bench: pool: %s\n", err.message);
		lg_runtime_free(rt);
		return -1;
	}
	int rc = prepare_db(pool);
	struct run *s = calloc(1, sizeof(*s));
	double *extra = calloc((size_t)rounds, sizeof(double));
	double *ratio = calloc((size_t)rounds, sizeof(double));
	if (s == NULL || extra == NULL || ratio == NULL) {
		fprintf(stderr, "orm_bench: out of memory\n");
		free(s);
		free(extra);
		free(ratio);
		lg_pool_free(pool);
		lg_runtime_free(rt);
		return -1;
	}
	s->pool = pool;
	s->db = (struct lg_db){.pool = pool};
	/* The raw side sends exactly the SQL the ORM generates. */
	snprintf(
	    s->find_sql, sizeof(s->find_sql),
	    "SELECT \"id\", \"email\", \"name\", \"score\" FROM \"public\".\"orm_bench_users\" "
	    "WHERE \"id\" = $1");
	struct lg_query q;
	build_page(&q, 0);
	if (lg_query_sql(&q, s->page_sql, sizeof(s->page_sql)) != 0) {
		rc = -1;
	}
	lg_query_close(&q);
	for (int shape = 0; rc == 0 && shape < 2; shape++) {
		s->shape = (enum shape)shape;
		/* An uncounted second of each side first: whichever side went first used to pay
		 * for the cold start (statements prepared and classified per connection, table
		 * pages read in, the server busy after loading the table) and lost ~10% against
		 * itself when both sides ran the raw calls. */
		double warm;
		for (int side = 0; side < 2; side++) {
			s->orm = side == 0;
			(void)phase(rt, s, clients, 1, &warm);
		}
		double orm = 0, raw = 0, orm_cpu = 0, raw_cpu = 0;
		for (int r = 0; r < rounds; r++) {
			/* ABBA order, so a trend in machine load hits both sides alike. */
			double cpu[2]; /* [orm?] */
			s->orm = r % 2 == 0;
			double a = phase(rt, s, clients, seconds, &cpu[s->orm]);
			s->orm = !s->orm;
			double b = phase(rt, s, clients, seconds, &cpu[s->orm]);
			double o = r % 2 == 0 ? a : b, w = r % 2 == 0 ? b : a;
			orm += o;
			raw += w;
			orm_cpu += cpu[1];
			raw_cpu += cpu[0];
			extra[r] = (cpu[1] - cpu[0]) * 1e6;
			ratio[r] = o / w;
		}
		out[shape].orm = orm / rounds;
		out[shape].raw = raw / rounds;
		out[shape].orm_cpu_us = orm_cpu * 1e6 / rounds;
		out[shape].raw_cpu_us = raw_cpu * 1e6 / rounds;
		out[shape].extra_us_median = median(extra, rounds);
		out[shape].ratio_median = median(ratio, rounds);
	}
	*errors = s->errors;
	free(s);
	free(extra);
	free(ratio);
	lg_pool_free(pool);
	lg_runtime_free(rt);
	return rc;
}

int main(int argc, char **argv)
{
	const char *dsn_arg = NULL;
	int conns = 4, clients = 256, seconds = 2, rounds = 2;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
			dsn_arg = argv[++i];
		} else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc) {
			conns = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc) {
			clients = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else {
			fprintf(stderr, "usage: orm_bench [--dsn DSN] [--conns N] [--clients M] "
					"[--seconds S] [--rounds R] [--json]\n");
			return 2;
		}
	}
	if (conns < 1 || conns > 200 || clients < 1 || clients > 100000 || seconds < 1 ||
	    rounds < 1) {
		fprintf(stderr, "orm_bench: --conns 1..200, --clients 1..100000, --seconds >= 1, "
				"--rounds >= 1\n");
		return 2;
	}
	char dsn[512];
	if (dsn_arg != NULL) {
		snprintf(dsn, sizeof(dsn), "%s", dsn_arg);
	} else if (!bench_services_up(dsn, sizeof(dsn))) {
		return 1;
	}
	struct pair p[2] = {{0}};
	uint64_t errors = 0;
	int rc = measure(dsn, conns, clients, seconds, rounds, p, &errors);
	if (dsn_arg == NULL) {
		bench_services_down();
	}
	if (rc != 0) {
		return 1;
	}
	const char *const *names = shape_names;
	if (json) {
		printf("{");
		for (int i = 0; i < 2; i++) {
			printf("%s\"%s\": {\"orm_qps\": %.0f, \"raw_qps\": %.0f, \"ratio\": %.3f, "
			       "\"orm_cpu_us_per_q\": %.2f, \"raw_cpu_us_per_q\": %.2f, "
			       "\"ratio_median\": %.3f, \"orm_extra_us\": %.3f, "
			       "\"orm_extra_us_mean\": %.3f",
			       i ? ", " : "", names[i], p[i].orm, p[i].raw, p[i].orm / p[i].raw,
			       p[i].orm_cpu_us, p[i].raw_cpu_us, p[i].ratio_median,
			       p[i].extra_us_median, p[i].orm_cpu_us - p[i].raw_cpu_us);
			if (i == PAGE_Q) {
				printf(", \"orm_extra_us_per_row\": %.3f",
				       p[i].extra_us_median / PAGE);
			}
			printf("}");
		}
		printf(", \"errors\": %" PRIu64 "}\n", errors);
	} else {
		printf("orm_bench: %d connections, %d coroutines, %d x %d s per side\n", conns,
		       clients, rounds, seconds);
		for (int i = 0; i < 2; i++) {
			printf("  %-10s  ORM %9.0f q/s   raw %9.0f q/s   ratio %.3f (ORM cost "
			       "%.1f%%)   client CPU/query ORM %.2f us, raw %.2f us, ORM adds "
			       "%.3f us (median of rounds; %.3f us per row)\n",
			       names[i], p[i].orm, p[i].raw, p[i].orm / p[i].raw,
			       100.0 * (1.0 - p[i].orm / p[i].raw), p[i].orm_cpu_us,
			       p[i].raw_cpu_us, p[i].extra_us_median,
			       p[i].extra_us_median / (i == PAGE_Q ? PAGE : 1));
		}
		printf("  errors: %" PRIu64 "\n", errors);
	}
	return errors == 0 ? 0 : 1;
}
