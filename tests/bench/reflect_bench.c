/*
 * reflect_bench: commit-to-Redis propagation latency and sustained throughput of a 3-node
 * lifeguard-reflector cluster, against this machine's own limits, in one run.
 *
 *   reflect_bench [--seconds N] [--json] [--reflector PATH] [--rows N] [--writers N]
 *                 [--batch N] [--audit-keys-per-s N] [--keep]
 * --audit-keys-per-s sets the nodes' audit rate (default: the daemon's), to see what it costs.
 *
 * Steps (each phase lasts --seconds, default 5):
 *   1. Ephemeral PostgreSQL + Redis (scripts/services), table public.bench (--rows rows, default
 *      20000) reflected with `setup` + `reflect`.
 *   2. NOTIFY alone (no cluster yet): pg_notify() at 1k/s timed by a LISTEN connection.
 *   3. Anchors (no cluster yet): what PostgreSQL takes with the capture triggers, writers flat
 *      out: --writers connections x --batch rows per UPDATE (the sustained phase's pattern),
 *      then single-row UPDATEs (what caps the paced phases' commits/s). The outbox is then
 *      emptied.
 *   4. Every row cached in Redis (v 0); the cluster starts; wait for a leader that listens.
 *   5. Keyspace events on; 1 s of warm-up at 1k/s (not counted: script loading, statement
 *      preparation, catalog reads); paced UPDATEs at 1k/s, then 5k/s: latency per change = keyspace
 *      event of its key - UPDATE sent (one monotonic clock, one process). Single-row UPDATEs
 *      unless that would ask PostgreSQL for more than half its single-row anchor rate (then
 *      the fewest rows per UPDATE that do not: on 2 cores, 5k/s runs as 3-5 rows per UPDATE).
 *   6. Sustained (events off): writers flat out for 2 x --seconds; sustained changes/s =
 *      changes written / (first write .. outbox empty); sustained_over_concurrent_writes is
 *      that over the writers' own rate meanwhile (1.0: the reflector kept pace with the
 *      writers it shares the machine with). Also the drain rate once the writers stop, and
 *      the leader's counter deltas from GET /status. The whole machine's CPU
 *      (/proc/stat, every process) is sampled over the anchor, the sustained phase and the
 *      drain: CPU µs per change for writing alone, writing and reflecting, and reflecting
 *      alone; Redis' (INFO cpu) and the leader's share. sustained_over_anchor_cpu_ceiling is
 *      the best sustained_over_anchor the cores allow at the sustained phase's cost per
 *      change: when the anchor alone keeps every core busy, writers and reflector share
 *      those cores, and no reflector that costs CPU reaches 1.0.
 *   7. Latency again with the sustained phase's statements, paced at 0.9 x the sustained rate,
 *      stepping down (0.7, 0.5, 0.35) until the reflector keeps up: its last event arrives
 *      within 500 ms of the last write.
 * Prints human-readable lines, or with --json one object with notify_p50_ms, notify_p99_ms,
 * p50_ms_at_1k, p99_ms_at_1k, p99_ms_at_5k, sustained_changes_per_s, sustained_over_anchor,
 * the CPU figures and more. Targets: p99 <= 5 ms at 1k changes/s, <= 15 ms at 5k changes/s,
 * sustained_over_anchor >= 1.0.
 *
 * Failure modes: a step that fails prints why on stderr and the run exits 1; SIGINT/SIGTERM
 * stop the phases and exit 130. Either way the daemons are killed and the services torn down
 * (a second signal only kills the daemons). --keep keeps the node logs. The daemon is
 * --reflector, LG_REFLECTOR_BIN, or ../../reflector/lifeguard-reflector next to this program.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reflect_bench.h"

volatile sig_atomic_t rb_stop;
static struct rb_env env;

static void on_signal(int sig)
{
	(void)sig;
	if (rb_stop) {
		rb_env_kill_nodes(&env);
		_exit(130);
	}
	rb_stop = 1;
}

static int parse(int argc, char **argv, struct rb_opts *o)
{
	for (int i = 1; i < argc; i++) {
		bool more = i + 1 < argc;
		if (strcmp(argv[i], "--seconds") == 0 && more) {
			o->seconds = atof(argv[++i]);
		} else if (strcmp(argv[i], "--rows") == 0 && more) {
			o->rows = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--writers") == 0 && more) {
			o->writers = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--batch") == 0 && more) {
			o->batch = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--audit-keys-per-s") == 0 && more) {
			env.audit_keys_per_s = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--reflector") == 0 && more) {
			env.bin = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			o->json = true;
		} else if (strcmp(argv[i], "--keep") == 0) {
			env.keep = true;
		} else {
			return -1;
		}
	}
	bool ok = o->seconds >= 1 && o->seconds <= 600 && o->rows >= 1000 && o->rows <= 10000000 &&
		  o->writers >= 1 && o->writers <= 64 && o->batch >= 1 && o->batch <= 1000 &&
		  env.audit_keys_per_s >= -1 && access(env.bin, X_OK) == 0;
	return ok ? 0 : -1;
}

struct results {
	struct rb_notify notify;
	struct rb_anchors anchors;
	struct rb_paced at_1k, at_5k, at_max;
	struct rb_sustained sustained;
	double kept_up; /* highest paced rate the reflector kept up with, 0 = none tried */
};

static void set_real(json_t *j, const char *key, double v)
{
	json_object_set_new(j, key, json_real(v));
}

static void set_int(json_t *j, const char *key, int64_t v)
{
	json_object_set_new(j, key, json_integer((json_int_t)v));
}

static int cpu_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/*
 * The best sustained_over_anchor this machine allows at the sustained phase's cost per change:
 * every core busy for nothing but writing and reflecting (cores / CPU per change), over the
 * anchor. Writing and reflecting share the cores, so when the anchor alone keeps every core
 * busy, no reflector that costs CPU can reach 1.0. 0 when unknown.
 */
static double cpu_ceiling(const struct results *r)
{
	double per = r->sustained.cpu.us_per_change;
	if (per <= 0 || r->anchors.batched <= 0) {
		return 0;
	}
	return (double)cpu_cores() * 1e6 / per / r->anchors.batched;
}

static json_t *report_json(const struct rb_opts *o, struct results *r)
{
	const struct rb_sustained *s = &r->sustained;
	json_t *j = json_object();
	set_real(j, "notify_p50_ms", bench_lat_pct_ms(&r->notify.lat, 50));
	set_real(j, "notify_p99_ms", bench_lat_pct_ms(&r->notify.lat, 99));
	set_int(j, "notify_sent", (int64_t)r->notify.sent);
	set_int(j, "notify_received", (int64_t)r->notify.received);
	set_real(j, "p50_ms_at_1k", r->at_1k.p50);
	set_real(j, "p99_ms_at_1k", r->at_1k.p99);
	set_real(j, "p50_ms_at_5k", r->at_5k.p50);
	set_real(j, "p99_ms_at_5k", r->at_5k.p99);
	set_real(j, "sustained_changes_per_s", s->rate);
	set_real(j, "max_ms_at_1k", r->at_1k.max);
	set_real(j, "max_ms_at_5k", r->at_5k.max);
	set_real(j, "rate_at_1k", r->at_1k.achieved);
	set_real(j, "rate_at_5k", r->at_5k.achieved);
	set_int(j, "batch_at_1k", r->at_1k.batch);
	set_int(j, "batch_at_5k", r->at_5k.batch);
	set_real(j, "leader_cpu_at_1k", r->at_1k.leader_cpu);
	set_real(j, "leader_cpu_at_5k", r->at_5k.leader_cpu);
	set_real(j, "changes_per_batch_at_1k", r->at_1k.per_batch);
	set_real(j, "changes_per_batch_at_5k", r->at_5k.per_batch);
	set_int(j, "missing_events",
		(int64_t)(r->at_1k.missing + r->at_5k.missing + r->at_max.missing));
	set_real(j, "max_rate_kept_up", r->kept_up);
	set_real(j, "rate_at_max", r->at_max.achieved);
	set_real(j, "p50_ms_at_max", r->at_max.p50);
	set_real(j, "p99_ms_at_max", r->at_max.p99);
	set_real(j, "write_rate_anchor", r->anchors.batched);
	set_real(j, "write_rate_anchor_single_row", r->anchors.single);
	set_real(j, "write_rate_concurrent", s->write_rate);
	set_real(j, "sustained_over_anchor",
		 r->anchors.batched > 0 ? s->rate / r->anchors.batched : 0);
	set_real(j, "sustained_over_concurrent_writes",
		 s->write_rate > 0 ? s->rate / s->write_rate : 0);
	set_int(j, "sustained_changes", (int64_t)s->changes);
	set_int(j, "cpu_cores", cpu_cores());
	set_real(j, "anchor_busy_cores", r->anchors.batched_cpu.busy_cores);
	set_real(j, "sustained_busy_cores", s->cpu.busy_cores);
	set_real(j, "cpu_us_per_change_anchor", r->anchors.batched_cpu.us_per_change);
	set_real(j, "cpu_us_per_change_sustained", s->cpu.us_per_change);
	set_real(j, "cpu_us_per_change_drain", s->drain_cpu.us_per_change);
	set_real(j, "redis_cpu_us_per_change", s->redis_us_per_change);
	set_real(j, "leader_cpu_us_per_change", s->leader_us_per_change);
	set_real(j, "sustained_over_anchor_cpu_ceiling", cpu_ceiling(r));
	set_real(j, "drain_changes_per_s", s->drain_rate);
	set_real(j, "leader_cpu_sustained", s->leader_cpu);
	set_int(j, "leader_changes_delta", s->after.changes - s->before.changes);
	set_int(j, "leader_batches_delta", s->after.batches - s->before.batches);
	set_int(j, "leader_notifications_delta", s->after.notifications - s->before.notifications);
	set_int(j, "leader_errors_delta", s->after.errors - s->before.errors);
	json_object_set_new(j, "leader_term_changed",
			    json_boolean(s->after.term != s->before.term));
	set_real(j, "seconds", o->seconds);
	set_int(j, "writers", o->writers);
	set_int(j, "batch", o->batch);
	json_object_set_new(j, "target_p99_ms_at_1k_met", json_boolean(r->at_1k.p99 <= 5.0));
	json_object_set_new(j, "target_p99_ms_at_5k_met", json_boolean(r->at_5k.p99 <= 15.0));
	json_object_set_new(j, "target_sustained_met",
			    json_boolean(r->anchors.batched > 0 && s->rate >= r->anchors.batched));
	return j;
}

static void report(const struct rb_opts *o, struct results *r)
{
	const struct rb_sustained *s = &r->sustained;
	if (o->json) {
		json_t *j = report_json(o, r);
		json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
		printf("\n");
		json_decref(j);
		return;
	}
	int64_t dchanges = s->after.changes - s->before.changes;
	int64_t dbatches = s->after.batches - s->before.batches;
	double over_anchor = r->anchors.batched > 0 ? s->rate / r->anchors.batched : 0;
	printf("sustained: %llu changes, %.0f changes/s first write -> outbox empty; writers "
	       "meanwhile %.0f/s (sustained/that %.2f); sustained/anchor %.2f (target >= 1.0: %s); "
	       "drain after the writers stopped: %llu pending in %.2f s = %.0f/s; leader CPU "
	       "%.0f%%\n",
	       (unsigned long long)s->changes, s->rate, s->write_rate,
	       s->write_rate > 0 ? s->rate / s->write_rate : 0, over_anchor,
	       over_anchor >= 1.0 ? "met" : "MISSED", (unsigned long long)s->pending_at_stop,
	       s->drain_s, s->drain_rate, 100 * s->leader_cpu);
	printf("  machine CPU (every process, %d cores): anchor %.2f cores busy, %.1f µs per "
	       "change; sustained %.2f cores busy, %.1f µs per change (writing and reflecting); "
	       "best sustained/anchor at that cost with every core busy: %.2f; of it Redis %.1f "
	       "µs, the leader %.1f µs; reflecting alone (the drain) %.1f µs per change\n",
	       cpu_cores(), r->anchors.batched_cpu.busy_cores, r->anchors.batched_cpu.us_per_change,
	       s->cpu.busy_cores, s->cpu.us_per_change, cpu_ceiling(r), s->redis_us_per_change,
	       s->leader_us_per_change, s->drain_cpu.us_per_change);
	printf("  leader counters: changes +%lld, batches +%lld (%.0f per batch), notifications "
	       "+%lld, errors +%lld, term %s\n",
	       (long long)dchanges, (long long)dbatches,
	       dbatches ? (double)dchanges / (double)dbatches : 0,
	       (long long)(s->after.notifications - s->before.notifications),
	       (long long)(s->after.errors - s->before.errors),
	       s->after.term == s->before.term ? "unchanged" : "CHANGED");
	printf("max rate kept up with (last event within 500 ms of the last write): %.0f/s "
	       "(0: not even at 0.35 x sustained); p50 %.2f ms, p99 %.2f ms there\n",
	       r->kept_up, r->at_max.p50, r->at_max.p99);
	printf("target p99 <= 5 ms at 1k/s: %s; p99 <= 15 ms at 5k/s: %s\n",
	       r->at_1k.p99 <= 5.0 ? "met" : "MISSED", r->at_5k.p99 <= 15.0 ? "met" : "MISSED");
}

/* Steps 1-3, without the cluster. */
static int run_baseline(struct rb_ctx *c, struct results *r)
{
	const struct rb_opts *o = c->o;
	if (rb_env_up(&env) != 0 || rb_env_schema(&env, o->rows) != 0 ||
	    (c->pg = rb_pg_connect(env.dsn)) == NULL ||
	    rb_notify_run(env.dsn, 1000, o->seconds, &r->notify) != 0 || rb_stop) {
		return -1;
	}
	if (!o->json) {
		printf("NOTIFY alone at 1k/s: p50 %.3f ms, p99 %.3f ms (%llu/%llu received)\n",
		       bench_lat_pct_ms(&r->notify.lat, 50), bench_lat_pct_ms(&r->notify.lat, 99),
		       (unsigned long long)r->notify.received, (unsigned long long)r->notify.sent);
	}
	r->anchors.single_writers = rb_paced_writers(o, 5000, 1);
	if (rb_phase_anchor(c, o->writers, o->batch, &r->anchors.batched,
			    &r->anchors.batched_cpu) != 0 ||
	    rb_phase_anchor(c, r->anchors.single_writers, 1, &r->anchors.single, NULL) != 0) {
		return -1;
	}
	/* The cluster starts from an empty outbox and a vacuumed table. */
	return rb_pg_exec(c->pg, "TRUNCATE lifeguard.outbox") == 0 &&
		       rb_pg_exec(c->pg, "VACUUM ANALYZE " RB_TABLE) == 0
		   ? 0
		   : -1;
}

/* Steps 4-7: the cluster. */
static int run_cluster(struct rb_ctx *c, struct results *r)
{
	const struct rb_opts *o = c->o;
	struct rb_sub *sub = NULL;
	int rc = -1;
	if (rb_env_fill(&env, o->rows) != 0 || rb_env_cluster_start(&env) != 0 ||
	    (c->leader = rb_env_leader(&env, 30000)) < 0 ||
	    rb_env_keyspace_events(&env, "K$") != 0 ||
	    rb_sub_start(env.redis_port, c->track, &sub) != 0) {
		goto out;
	}
	if (!o->json) {
		printf("cluster up: leader node%d; %d rows cached\n", c->leader + 1, o->rows);
	}
	/* Warm-up, not measured: the first second after an election loads the Lua scripts
	 * (one SCRIPT LOAD each), prepares statements and reads the catalog. Steady state is
	 * what the percentiles describe. */
	struct rb_opts warm_opts = *o;
	warm_opts.seconds = 1;
	struct rb_ctx warm = *c;
	warm.o = &warm_opts;
	struct rb_paced scratch;
	if (!o->json) {
		printf("warm-up (1 s at 1k/s, not counted):\n");
	}
	if (rb_phase_paced(&warm, 1000, rb_paced_batch(1000, &r->anchors), &scratch) != 0 ||
	    rb_phase_paced(c, 1000, rb_paced_batch(1000, &r->anchors), &r->at_1k) != 0 ||
	    rb_phase_paced(c, 5000, rb_paced_batch(5000, &r->anchors), &r->at_5k) != 0 ||
	    rb_env_keyspace_events(&env, "") != 0 || rb_phase_sustained(c, &r->sustained) != 0 ||
	    rb_env_keyspace_events(&env, "K$") != 0 ||
	    rb_phase_max(c, r->sustained.rate, &r->at_max, &r->kept_up) != 0) {
		goto out;
	}
	rc = 0;
out:
	rb_sub_stop(sub);
	return rc;
}

int main(int argc, char **argv)
{
	struct rb_opts o = {.seconds = 5, .rows = 20000, .writers = 4, .batch = 20};
	env.bin = bench_reflector_bin();
	env.audit_keys_per_s = -1;
	if (parse(argc, argv, &o) != 0) {
		fprintf(stderr,
			"usage: reflect_bench [--seconds N] [--json] [--reflector PATH] "
			"[--rows N] [--writers N] [--batch N] [--audit-keys-per-s N] [--keep]\n"
			"(daemon: %s; needs 1..600 s, >= 1000 rows, 1..64 writers, "
			"1..1000 rows per UPDATE)\n",
			env.bin);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up as phases end */
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	static struct results r;
	struct rb_track track;
	struct rb_ctx c = {.o = &o, .env = &env, .track = &track, .leader = -1};
	int rc = rb_track_init(&track, o.rows);
	if (rc == 0) {
		rc = run_baseline(&c, &r);
	}
	if (rc == 0) {
		rc = run_cluster(&c, &r);
	}
	if (rc == 0) {
		report(&o, &r);
	}
	PQfinish(c.pg);
	rb_track_close(&track);
	bench_lat_free(&r.notify.lat);
	rb_env_log_summary(&env, stderr);
	rb_env_down(&env);
	return rb_stop ? 130 : rc == 0 ? 0 : 1;
}
