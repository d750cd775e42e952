/*
 * token_bench: what a read-your-writes token costs a write through the database handle. The
 * same single-row UPDATEs (random ids among 10,000 rows, so writers rarely wait for each
 * other's row locks) in three ways, in the same run, on the same primary pool:
 *   none:      lg_pool_query, no token;
 *   separate:  lg_pool_query, then SELECT pg_current_wal_insert_lsn() as a second statement
 *              once the write is confirmed (how lg_dbh_write took its token before the token
 *              read was pipelined: a second round trip per write);
 *   pipelined: lg_dbh_write with a session, the token read sent behind the write in the same
 *              flush on the same connection.
 * And the same for transactions (BEGIN, the UPDATE, COMMIT): lg_tx_commit; lg_tx_commit then
 * the separate token read; lg_dbh_commit.
 * Phases rotate the order of the sides each round so a trend in machine load hits all alike.
 * Prints writes/s of each side and the ratios pipelined/none, separate/none and
 * pipelined/separate (the medians of the rounds' ratios, steadier on a shared machine).
 *
 *   token_bench [--dsn DSN] [--conns N] [--clients M] [--seconds S] [--rounds R] [--json]
 * Without --dsn it starts its own throwaway PostgreSQL through scripts/services.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libguard/db.h>
#include <libguard/libguard.h>

#include "bench_common.h"

#define ROWS  10000
#define SIDES 3

enum side { NONE, SEPARATE, PIPELINED };
enum shape { WRITE, TX };

static const char *const shape_names[2] = {"write", "tx"};

static const char update_sql[] = "UPDATE token_bench SET v = v + 1 WHERE id = $1";
static const char token_sql[] = "SELECT pg_current_wal_insert_lsn()::text";

struct run {
	struct lg_pool *pool;
	struct lg_dbh *h;
	enum shape shape;
	enum side side;
	uint64_t end_us;
	uint64_t writes;
	uint64_t errors;
	uint64_t zero_tokens;
};

/* The old way: the token as a statement of its own after the confirmed write. */
static int separate_token(struct lg_pool *pool, uint64_t *token)
{
	struct lg_query_opts o = {.flags = LG_QUERY_PREPARE | LG_QUERY_SHARED_READ};
	struct lg_result *r = NULL;
	const char *t;
	int rc = lg_pool_query(pool, token_sql, NULL, 0, &o, &r, NULL);
	if (rc == 0 && (lg_result_text(r, 0, 0, &t, NULL) != 0 || lg_token_parse(t, token) != 0)) {
		rc = -1;
	}
	lg_result_free(r);
	return rc;
}

static int one_write(struct run *s, struct lg_session *session, int64_t id)
{
	struct lg_param p = lg_param_int64(id);
	struct lg_query_opts o = {.flags = LG_QUERY_PREPARE};
	uint64_t token = 1;
	int rc;
	if (s->shape == WRITE) {
		if (s->side == PIPELINED) {
			rc = lg_dbh_write(s->h, session, update_sql, &p, 1, &o, NULL, &token, NULL);
		} else {
			rc = lg_pool_query(s->pool, update_sql, &p, 1, &o, NULL, NULL);
		}
	} else {
		struct lg_tx *tx;
		rc = lg_pool_begin(s->pool, NULL, &tx, NULL);
		if (rc != 0) {
			return rc;
		}
		rc = lg_tx_query(tx, update_sql, &p, 1, &o, NULL, NULL);
		if (rc != 0) {
			lg_tx_rollback(tx, NULL);
			return rc;
		}
		rc = s->side == PIPELINED ? lg_dbh_commit(s->h, session, tx, &token, NULL)
					  : lg_tx_commit(tx, NULL);
	}
	if (rc == 0 && s->side == SEPARATE) {
		rc = separate_token(s->pool, &token);
	}
	s->zero_tokens += rc == 0 && token == 0;
	return rc;
}

static void client(void *arg)
{
	struct run *s = arg;
	struct lg_session *session = NULL;
	if (lg_session_new(&session) != 0) {
		s->errors++;
		return;
	}
	uint32_t seed = (uint32_t)(uintptr_t)&seed;
	while (bench_now_us() < s->end_us) {
		seed = seed * 1103515245u + 12345u;
		if (one_write(s, session, (int64_t)((seed >> 4) % ROWS) + 1) != 0) {
			s->errors++;
		}
		s->writes++;
	}
	lg_session_free(session);
}

/* Returns writes/s. */
static double phase(struct lg_runtime *rt, struct run *s, int clients, int seconds)
{
	s->writes = 0;
	uint64_t t0 = bench_now_us();
	s->end_us = t0 + (uint64_t)seconds * 1000000u;
	for (int i = 0; i < clients; i++) {
		lg_coro_spawn(rt, client, s, NULL);
	}
	lg_runtime_run(rt);
	return (double)s->writes * 1e6 / (double)(bench_now_us() - t0);
}

static int prepare_db(struct lg_pool *pool)
{
	struct lg_error err;
	const char *sql[] = {
	    "DROP TABLE IF EXISTS token_bench",
	    "CREATE TABLE token_bench (id int8 PRIMARY KEY, v int8 NOT NULL)",
	    "INSERT INTO token_bench SELECT g, 0 FROM generate_series(1, 10000) g",
	    "ANALYZE token_bench",
	};
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (lg_pool_exec(pool, sql[i], &err) != 0) {
			fprintf(stderr, "token_bench: %s: %s\n", sql[i], err.message);
			return -1;
		}
	}
	return 0;
}

struct result {
	double qps[SIDES];     /* mean of the rounds */
	double pipe_over_none; /* medians of the rounds' ratios */
	double sep_over_none;
	double pipe_over_sep;
};

static void measure_shape(struct lg_runtime *rt, struct run *s, int clients, int seconds,
			  int rounds, double *scratch, struct result *out)
{
	/* An uncounted second of each side first (statements prepared per connection). */
	for (int side = 0; side < SIDES; side++) {
		s->side = (enum side)side;
		(void)phase(rt, s, clients, 1);
	}
	double *q = scratch; /* [round][side] */
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < SIDES; k++) {
			int side = (r + k) % SIDES;
			s->side = (enum side)side;
			q[r * SIDES + side] = phase(rt, s, clients, seconds);
		}
	}
	double *ratio = scratch + rounds * SIDES;
	memset(out, 0, sizeof(*out));
	for (int side = 0; side < SIDES; side++) {
		for (int r = 0; r < rounds; r++) {
			out->qps[side] += q[r * SIDES + side] / rounds;
		}
	}
	for (int r = 0; r < rounds; r++) {
		ratio[r] = q[r * SIDES + PIPELINED] / q[r * SIDES + NONE];
	}
	out->pipe_over_none = bench_median(ratio, rounds);
	for (int r = 0; r < rounds; r++) {
		ratio[r] = q[r * SIDES + SEPARATE] / q[r * SIDES + NONE];
	}
	out->sep_over_none = bench_median(ratio, rounds);
	for (int r = 0; r < rounds; r++) {
		ratio[r] = q[r * SIDES + PIPELINED] / q[r * SIDES + SEPARATE];
	}
	out->pipe_over_sep = bench_median(ratio, rounds);
}

static int measure(const char *dsn, int conns, int clients, int seconds, int rounds,
		   struct result out[2], struct run *totals)
{
	struct lg_runtime *rt;
	struct lg_pool *pool;
	struct lg_dbh *h;
	struct lg_error err;
	if (lg_runtime_new(NULL, NULL, &rt) != 0) {
		return -1;
	}
	struct lg_pool_config cfg = {
	    .conninfo = dsn, .min_conns = (unsigned)conns, .max_conns = (unsigned)conns};
	if (lg_pool_new(rt, &cfg, &pool, &err) != 0) {
		fprintf(stderr, "token_bench: pool: %s\n", err.message);
		lg_runtime_free(rt);
		return -1;
	}
	struct lg_dbh_config hc = {.primary = pool};
	if (lg_dbh_new(rt, &hc, &h, &err) != 0) {
		fprintf(stderr, "token_bench: dbh: %s\n", err.message);
		lg_pool_free(pool);
		lg_runtime_free(rt);
		return -1;
	}
	int rc = prepare_db(pool);
	double *scratch = calloc((size_t)rounds * (SIDES + 1), sizeof(double));
	if (scratch == NULL) {
		rc = -1;
	}
	*totals = (struct run){.pool = pool, .h = h};
	for (int shape = 0; rc == 0 && shape < 2; shape++) {
		totals->shape = (enum shape)shape;
		measure_shape(rt, totals, clients, seconds, rounds, scratch, &out[shape]);
	}
	struct lg_dbh_stats st;
	lg_dbh_get_stats(h, &st);
	if (st.token_failures != 0) {
		fprintf(stderr, "token_bench: %" PRIu64 " token failures\n", st.token_failures);
		totals->errors += st.token_failures;
	}
	free(scratch);
	lg_dbh_free(h);
	lg_pool_free(pool);
	lg_runtime_free(rt);
	return rc;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {.conns = 4, .clients = 64, .seconds = 2, .rounds = 3};
	for (int i = 1; i < argc; i++) {
		if (!bench_opt(argc, argv, &i, &o)) {
			fprintf(stderr, "usage: token_bench [--dsn DSN] [--conns N] [--clients M] "
					"[--seconds S] [--rounds R] [--json]\n");
			return 2;
		}
	}
	if (o.conns < 1 || o.conns > 200 || o.clients < 1 || o.clients > 100000 || o.seconds < 1 ||
	    o.rounds < 1 || o.rounds > 1000) {
		fprintf(stderr, "token_bench: --conns 1..200, --clients 1..100000, --seconds >= 1, "
				"--rounds 1..1000\n");
		return 2;
	}
	int conns = o.conns, clients = o.clients, seconds = o.seconds, rounds = o.rounds;
	bool json = o.json;
	char dsn[512];
	if (o.dsn != NULL) {
		snprintf(dsn, sizeof(dsn), "%s", o.dsn);
	} else if (!bench_services_up(dsn, sizeof(dsn))) {
		return 1;
	}
	struct result res[2];
	struct run totals = {0};
	int rc = measure(dsn, conns, clients, seconds, rounds, res, &totals);
	if (o.dsn == NULL) {
		bench_services_down();
	}
	if (rc != 0) {
		return 1;
	}
	if (json) {
		printf("{");
		for (int i = 0; i < 2; i++) {
			printf("%s\"%s\": {\"none_qps\": %.0f, \"separate_qps\": %.0f, "
			       "\"pipelined_qps\": %.0f, \"pipelined_over_none\": %.3f, "
			       "\"separate_over_none\": %.3f, \"pipelined_over_separate\": %.3f}",
			       i ? ", " : "", shape_names[i], res[i].qps[NONE],
			       res[i].qps[SEPARATE], res[i].qps[PIPELINED], res[i].pipe_over_none,
			       res[i].sep_over_none, res[i].pipe_over_sep);
		}
		printf(", \"errors\": %" PRIu64 ", \"zero_tokens\": %" PRIu64 "}\n", totals.errors,
		       totals.zero_tokens);
	} else {
		printf("token_bench: %d connections, %d coroutines, %d x %d s per side\n", conns,
		       clients, rounds, seconds);
		for (int i = 0; i < 2; i++) {
			printf(
			    "  %-5s  none %8.0f/s   separate %8.0f/s   pipelined %8.0f/s   "
			    "pipelined/none %.3f   separate/none %.3f   pipelined/separate %.3f\n",
			    shape_names[i], res[i].qps[NONE], res[i].qps[SEPARATE],
			    res[i].qps[PIPELINED], res[i].pipe_over_none, res[i].sep_over_none,
			    res[i].pipe_over_sep);
		}
		printf("  errors: %" PRIu64 ", zero tokens: %" PRIu64 "\n", totals.errors,
		       totals.zero_tokens);
	}
	return totals.errors == 0 && totals.zero_tokens == 0 ? 0 : 1;
}
