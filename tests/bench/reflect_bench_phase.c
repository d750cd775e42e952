/*
 * reflect_bench's measured phases (the order and the report are in reflect_bench.c).
 *
 * - Anchor: writers flat out with no cluster running: what PostgreSQL takes with the capture
 *   triggers (changes/s = rows updated / first send .. last answer).
 * - Paced: open-loop writers at a target rate with latency tracking; after the last write it
 *   waits (<= 10 s) for the last keyspace events. Also the leader's counter deltas (changes
 *   per batch, its own mean trigger -> Redis latency) and its CPU use.
 * - Sustained: writers flat out for 2 x --seconds while the reflector drains; sustained
 *   changes/s = changes written / (first write .. outbox empty, polled every 20 ms); the drain
 *   rate after the writers stop is reported on its own.
 * - Max: paced with the sustained phase's statements at 0.9 x the sustained rate, then 0.7,
 *   0.5, 0.35 x until the reflector keeps up: its last event arrives within 500 ms of the
 *   last write, none missing.
 *
 * Also the small libpq helpers (rb_pg_*) the other files use.
 *
 * Failure modes: a writer connection that cannot be opened -> -1; the outbox not empty
 * within 120 s of the writers' end -> -1 (sustained); rb_stop -> -1 at the next check.
 * Failed statements and missing events are counted and reported, not fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reflect_bench.h"

#define RB_KEEPUP_TAIL_MS 500

static void phase_wait_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

PGconn *rb_pg_connect(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "reflect_bench: connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

int rb_pg_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
	if (rc != 0) {
		fprintf(stderr, "reflect_bench: %.60s: %s", sql, PQerrorMessage(c));
	}
	PQclear(r);
	return rc;
}

int64_t rb_pg_int(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int64_t v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	} else {
		fprintf(stderr, "reflect_bench: %.60s: %s", sql, PQerrorMessage(c));
	}
	PQclear(r);
	return v;
}

/*
 * Enough writer connections that each sends at most ~700 statements/s (a synchronous UPDATE
 * takes 0.5-1.5 ms on a busy 2-core machine), at least --writers.
 */
int rb_paced_writers(const struct rb_opts *o, double rate, int batch)
{
	int w = (int)(rate / batch / 700.0) + 1;
	return w < o->writers ? o->writers : w > 32 ? 32 : w;
}

/*
 * Single-row UPDATEs while that asks PostgreSQL for at most half the single-row commits/s it
 * took alone (the anchor), else the fewest rows per UPDATE that do.
 */
int rb_paced_batch(double rate, const struct rb_anchors *a)
{
	double commits = a->single > 0 ? a->single / 2 : 1000;
	int b = (int)(rate / commits);
	return (double)b * commits < rate ? b + 1 : b < 1 ? 1 : b;
}

/* The machine's CPU between two samples (busy seconds, monotonic µs) for changes. */
static void phase_cpu(struct rb_cpu *out, double busy0, uint64_t t0, double busy1, uint64_t t1,
		      uint64_t changes)
{
	memset(out, 0, sizeof(*out));
	if (busy0 < 0 || busy1 < busy0 || t1 <= t0 || changes == 0) {
		return;
	}
	out->busy_cores = (busy1 - busy0) / ((double)(t1 - t0) / 1e6);
	out->us_per_change = (busy1 - busy0) * 1e6 / (double)changes;
}

int rb_phase_anchor(struct rb_ctx *c, int writers, int batch, double *rate, struct rb_cpu *cpu)
{
	struct rb_load l = {.dsn = c->env->dsn,
			    .rows = c->o->rows,
			    .writers = writers,
			    .batch = batch,
			    .seconds = c->o->seconds};
	double busy0 = bench_machine_busy_s();
	uint64_t t0 = bench_now_us();
	int rc = rb_load_run(&l);
	if (cpu != NULL) {
		phase_cpu(cpu, busy0, t0, bench_machine_busy_s(), bench_now_us(), l.changes);
	}
	*rate = l.elapsed_s > 0 ? (double)l.changes / l.elapsed_s : 0;
	bench_lat_free(&l.rtt);
	if (!c->o->json) {
		printf("anchor: PostgreSQL + capture triggers alone, %d writers x %d rows/UPDATE: "
		       "%.0f changes/s (%llu errors)\n",
		       writers, batch, *rate, (unsigned long long)l.errors);
	}
	return rc == 0 && !rb_stop ? 0 : -1;
}

/* Mean of the leader's own latency histogram between two samples. */
static double phase_refl_mean(const struct rb_counters *a, const struct rb_counters *b)
{
	if (b->prop_count <= a->prop_count) {
		return 0;
	}
	return (b->prop_mean_ms * (double)b->prop_count - a->prop_mean_ms * (double)a->prop_count) /
	       (double)(b->prop_count - a->prop_count);
}

static void phase_print(const struct rb_paced *p)
{
	printf(
	    "propagation at %.0f/s (%d writers x %d rows/UPDATE): p50 %.2f ms, p99 %.2f ms, "
	    "max %.2f ms\n"
	    "  %llu changes at %.0f/s achieved (UPDATE p50 %.2f ms, worst lag %.1f ms); %llu "
	    "events, last %.0f ms after the last write; %llu missing, %llu unexpected, %llu "
	    "skipped, %llu errors\n"
	    "  leader: %.1f changes per batch, own mean %.2f ms (trigger -> Redis), CPU %.0f%%\n",
	    p->target, p->writers, p->batch, p->p50, p->p99, p->max, (unsigned long long)p->changes,
	    p->achieved, p->rtt_p50, p->lag_ms, (unsigned long long)p->received, p->tail_ms,
	    (unsigned long long)p->missing, (unsigned long long)p->unexpected,
	    (unsigned long long)p->skipped, (unsigned long long)p->errors, p->per_batch,
	    p->refl_mean_ms, 100 * p->leader_cpu);
}

int rb_phase_paced(struct rb_ctx *c, double rate, int batch, struct rb_paced *out)
{
	struct rb_track *t = c->track;
	struct rb_counters c0, c1;
	rb_track_reset(t);
	rb_env_counters(c->env, c->leader, &c0);
	double cpu0 = rb_env_node_cpu_s(c->env, c->leader);
	uint64_t t0 = bench_now_us();
	struct rb_load l = {.dsn = c->env->dsn,
			    .rows = c->o->rows,
			    .writers = rb_paced_writers(c->o, rate, batch),
			    .rate = rate,
			    .batch = batch,
			    .seconds = c->o->seconds,
			    .track = t};
	int rc = rb_load_run(&l);
	uint64_t deadline = bench_now_us() + 10000000;
	while (atomic_load(&t->in_flight) > 0 && bench_now_us() < deadline && !rb_stop) {
		phase_wait_ms(1);
	}
	uint64_t drained_us = bench_now_us();
	double cpu1 = rb_env_node_cpu_s(c->env, c->leader);
	rb_env_counters(c->env, c->leader, &c1);
	memset(out, 0, sizeof(*out));
	out->per_batch = c1.batches > c0.batches
			     ? (double)(c1.changes - c0.changes) / (double)(c1.batches - c0.batches)
			     : 0;
	out->refl_mean_ms = phase_refl_mean(&c0, &c1);
	out->leader_cpu = cpu0 >= 0 && cpu1 >= cpu0 ? (cpu1 - cpu0) / ((drained_us - t0) / 1e6) : 0;
	out->tail_ms = drained_us > l.last_us ? (double)(drained_us - l.last_us) / 1000.0 : 0;
	out->target = rate;
	out->batch = batch;
	out->writers = l.writers;
	out->changes = l.changes;
	out->errors = l.errors;
	out->achieved = l.elapsed_s > 0 ? (double)l.changes / l.elapsed_s : 0;
	out->rtt_p50 = bench_lat_pct_ms(&l.rtt, 50);
	out->lag_ms = (double)l.max_lag_us / 1000.0;
	out->missing = atomic_load(&t->in_flight);
	out->unexpected = atomic_load(&t->unexpected);
	out->skipped = atomic_load(&t->skipped);
	pthread_mutex_lock(&t->mu);
	out->received = t->lat.n;
	out->p50 = bench_lat_pct_ms(&t->lat, 50);
	out->p99 = bench_lat_pct_ms(&t->lat, 99);
	out->max = bench_lat_pct_ms(&t->lat, 100);
	pthread_mutex_unlock(&t->mu);
	bench_lat_free(&l.rtt);
	if (!c->o->json) {
		phase_print(out);
	}
	return rc == 0 && !rb_stop ? 0 : -1;
}

int rb_phase_sustained(struct rb_ctx *c, struct rb_sustained *s)
{
	memset(s, 0, sizeof(*s));
	rb_env_counters(c->env, c->leader, &s->before);
	double cpu0 = rb_env_node_cpu_s(c->env, c->leader);
	double busy0 = bench_machine_busy_s();
	double redis0 = rb_env_redis_cpu_s(c->env);
	uint64_t t0 = bench_now_us();
	struct rb_load l = {.dsn = c->env->dsn,
			    .rows = c->o->rows,
			    .writers = c->o->writers,
			    .batch = c->o->batch,
			    .seconds = 2 * c->o->seconds};
	if (rb_load_run(&l) != 0) {
		return -1;
	}
	double busy_stop = bench_machine_busy_s();
	uint64_t stop_us = bench_now_us();
	int64_t pending = rb_pg_int(c->pg, "SELECT count(*) FROM lifeguard.outbox");
	s->pending_at_stop = pending > 0 ? (uint64_t)pending : 0;
	uint64_t deadline = bench_now_us() + 120000000, empty_us = 0;
	while (empty_us == 0 && bench_now_us() < deadline && !rb_stop) {
		int64_t left = rb_pg_int(c->pg, "SELECT count(*) FROM (SELECT 1 FROM"
						" lifeguard.outbox LIMIT 1) AS o");
		if (left == 0) {
			empty_us = bench_now_us();
		} else {
			phase_wait_ms(20);
		}
	}
	double cpu1 = rb_env_node_cpu_s(c->env, c->leader);
	double busy1 = bench_machine_busy_s();
	double redis1 = rb_env_redis_cpu_s(c->env);
	rb_env_counters(c->env, c->leader, &s->after);
	bench_lat_free(&l.rtt);
	s->changes = l.changes;
	s->write_rate = l.elapsed_s > 0 ? (double)l.changes / l.elapsed_s : 0;
	if (empty_us == 0 || empty_us <= l.first_us) {
		fprintf(stderr, "reflect_bench: the outbox did not empty within 120 s\n");
		return -1;
	}
	phase_cpu(&s->cpu, busy0, t0, busy1, empty_us, l.changes);
	phase_cpu(&s->drain_cpu, busy_stop, stop_us, busy1, empty_us, s->pending_at_stop);
	if (l.changes > 0 && redis0 >= 0 && redis1 >= redis0) {
		s->redis_us_per_change = (redis1 - redis0) * 1e6 / (double)l.changes;
	}
	if (l.changes > 0 && cpu0 >= 0 && cpu1 >= cpu0) {
		s->leader_us_per_change = (cpu1 - cpu0) * 1e6 / (double)l.changes;
	}
	s->rate = (double)l.changes / ((double)(empty_us - l.first_us) / 1e6);
	s->drain_s = (double)(empty_us - l.last_us) / 1e6;
	s->drain_rate = s->drain_s > 0 ? (double)s->pending_at_stop / s->drain_s : 0;
	s->leader_cpu =
	    cpu0 >= 0 && cpu1 >= cpu0 ? (cpu1 - cpu0) / ((empty_us - l.first_us) / 1e6) : 0;
	return rb_stop ? -1 : 0;
}

int rb_phase_max(struct rb_ctx *c, double sustained, struct rb_paced *out, double *kept_up)
{
	static const double f[] = {0.9, 0.7, 0.5, 0.35};
	*kept_up = 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (rb_phase_paced(c, f[i] * sustained, c->o->batch, out) != 0) {
			return -1;
		}
		if (out->tail_ms <= RB_KEEPUP_TAIL_MS && out->missing == 0) {
			*kept_up = f[i] * sustained;
			break;
		}
	}
	return 0;
}
