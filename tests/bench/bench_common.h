/* Shared helpers of the benchmark programs: ephemeral services, latency sets, CPU time. */
#ifndef LG_BENCH_COMMON_H
#define LG_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Latencies in µs; grows as needed. */
struct bench_lat {
	uint32_t *v;
	size_t n;
	size_t cap;
};

void bench_lat_add(struct bench_lat *l, uint64_t us);
void bench_lat_merge(struct bench_lat *into, const struct bench_lat *from);
/* Percentile p (0..100) in ms; sorts in place. */
double bench_lat_pct_ms(struct bench_lat *l, double p);
void bench_lat_free(struct bench_lat *l);

uint64_t bench_now_us(void);
/* User + system CPU seconds of this process so far. */
double bench_cpu_s(void);
/*
 * Busy CPU seconds of the whole machine so far, summed over every CPU (/proc/stat: user, nice,
 * system, irq, softirq, steal), or -1. The difference of two samples over the wall time between
 * them is the number of cores kept busy, by every process.
 */
double bench_machine_busy_s(void);

/*
 * Starts an ephemeral PostgreSQL through scripts/services (found via $LG_SCRIPTS_DIR or the
 * source tree this program was built from) and fills dsn; bench_services_down() tears it down.
 */
bool bench_services_up(char *dsn, size_t size);
/*
 * Same, with Redis as well: fills dsn and *redis_port (on 127.0.0.1). On failure nothing is
 * left running. bench_services_down() tears both down.
 */
bool bench_services_up_redis(char *dsn, size_t size, int *redis_port);
void bench_services_down(void);

/*
 * A TCP port outside the ephemeral range that 127.0.0.1 can bind now and that this process
 * has not handed out before (up to 64 ports), or 0.
 */
unsigned bench_free_port(void);

/*
 * The lifeguard-reflector binary: $LG_REFLECTOR_BIN, else ../../reflector/lifeguard-reflector
 * next to this program in its build dir. Static storage.
 */
const char *bench_reflector_bin(void);

/* Runs a shell command, capturing up to size-1 bytes of stdout; returns the exit status. */
int bench_run(const char *cmd, char *out, size_t size);

/* The options most benchmarks share; the caller sets its defaults first. */
struct bench_opts {
	const char *dsn; /* NULL: start a throwaway server */
	int conns;
	int clients;
	int seconds;
	int rounds;
	bool json;
};

/*
 * Reads argv[*i] into o when it is --dsn DSN, --conns N, --clients M, --seconds S, --rounds R
 * or --json, and moves *i past its value; false for anything else (a program's own flag, or a
 * usage error). Ranges are the caller's to check.
 */
bool bench_opt(int argc, char **argv, int *i, struct bench_opts *o);

/* The median of v[0..n-1], n >= 1 (sorts v). */
double bench_median(double *v, int n);

#endif
