/*
 * failover_bench: time-to-new-leader of a 3-node lifeguard-reflector cluster at default
 * settings (real processes, raft over TCP loopback).
 *
 *   failover_bench [--kills N] [--json] [--bin PATH]
 *
 * Per kill: wait until all three nodes agree on a leader; SIGKILL it; poll the two survivors'
 * GET /leader every 5 ms until one answers 200 with a higher term; that interval is one
 * sample. The killed node is restarted from its data dir and must rejoin before the next kill.
 * Prints the distribution (p50, p99, max; nearest-rank percentiles, so with 20 kills p99 is
 * the maximum). --json prints one object: {"kills", "p50_ms", "p99_ms", "max_ms", ...}.
 * Target (issue #4): p99 <= 2000 ms. The daemon is LG_REFLECTOR_BIN, --bin, or
 * ../../reflector/lifeguard-reflector relative to this executable (the meson build tree).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#include <jansson.h>

#include "config.h"
#include "http_client.h"

#define NODES   3
#define WAIT_MS 30000

struct bnode {
	char raft[RF_ADDR_MAX];
	char http[RF_ADDR_MAX];
	char config[PATH_MAX];
	char log[PATH_MAX];
	pid_t pid;
};

static struct bnode nodes[NODES];
static char root[] = "/tmp/lg-failover.XXXXXX";
static const char *bin;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static void cleanup(void)
{
	for (int i = 0; i < NODES; i++) {
		if (nodes[i].pid > 0) {
			kill(nodes[i].pid, SIGKILL);
			waitpid(nodes[i].pid, NULL, 0);
			nodes[i].pid = 0;
		}
	}
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (strncmp(root, "/tmp/lg-failover.", 17) == 0 && system(cmd) != 0) {
		fprintf(stderr, "failover_bench: could not remove %s\n", root);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	for (int i = 0; i < NODES; i++) {
		if (nodes[i].pid > 0) {
			kill(nodes[i].pid, SIGKILL);
		}
	}
	_exit(130);
}

static void die(const char *what)
{
	fprintf(stderr, "failover_bench: %s\n", what);
	cleanup();
	exit(1);
}

static void write_configs(void)
{
	json_t *peers = json_array();
	for (int i = 0; i < NODES; i++) {
		unsigned raft = bench_free_port();
		unsigned http = bench_free_port();
		if (raft == 0 || http == 0) {
			die("no free port");
		}
		snprintf(nodes[i].raft, sizeof(nodes[i].raft), "127.0.0.1:%u", raft);
		snprintf(nodes[i].http, sizeof(nodes[i].http), "127.0.0.1:%u", http);
		json_array_append_new(peers,
				      json_pack("{s:i, s:s, s:s}", "id", i + 1, "raft_address",
						nodes[i].raft, "http_address", nodes[i].http));
	}
	for (int i = 0; i < NODES; i++) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s/data%d", root, i + 1);
		snprintf(nodes[i].config, sizeof(nodes[i].config), "%s/node%d.json", root, i + 1);
		snprintf(nodes[i].log, sizeof(nodes[i].log), "%s/node%d.log", root, i + 1);
		/* Default settings: only identity, addresses and the data dir. */
		json_t *cfg =
		    json_pack("{s:i, s:s, s:O}", "node_id", i + 1, "data_dir", dir, "peers", peers);
		if (json_dump_file(cfg, nodes[i].config, JSON_INDENT(2)) != 0) {
			die("cannot write a config file");
		}
		json_decref(cfg);
	}
	json_decref(peers);
}

static void start(int i)
{
	pid_t pid = fork();
	if (pid < 0) {
		die("fork failed");
	}
	if (pid == 0) {
		int fd = open(nodes[i].log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "--config", nodes[i].config, (char *)NULL);
		_exit(127);
	}
	nodes[i].pid = pid;
}

/* GET path on node i: HTTP status (-1 unreachable); *term from the status body. */
static int get(int i, const char *path, int timeout_ms, int64_t *term, int64_t *leader)
{
	struct rf_http_response resp;
	char err[128];
	if (rf_http_fetch(nodes[i].http, "GET", path, NULL, NULL, 0, timeout_ms, &resp, err,
			  sizeof(err)) != 0) {
		return -1;
	}
	json_t *o = json_loadb(resp.body, resp.body_len, 0, NULL);
	json_int_t t = -1, l = 0;
	json_unpack(o, "{s:I}", "term", &t);
	json_unpack(o, "{s:{s:I}}", "leader", "id", &l);
	json_decref(o);
	if (term != NULL) {
		*term = t;
	}
	if (leader != NULL) {
		*leader = l;
	}
	int status = resp.status;
	rf_http_response_free(&resp);
	return status;
}

/* Waits until all nodes agree on one leader; returns its index and term. */
static int wait_agreed(int64_t *term)
{
	int64_t deadline = now_ms() + WAIT_MS;
	while (now_ms() < deadline) {
		int64_t lid = -1, lterm = -1;
		bool ok = true;
		for (int i = 0; i < NODES && ok; i++) {
			int64_t t, l;
			ok = get(i, "/status", 1000, &t, &l) == 200 && l > 0 &&
			     (lid == -1 || (l == lid && t == lterm));
			lid = l;
			lterm = t;
		}
		if (ok && get((int)lid - 1, "/leader", 1000, NULL, NULL) == 200) {
			*term = lterm;
			return (int)lid - 1;
		}
		sleep_ms(20);
	}
	die("the cluster did not agree on a leader (see the node logs)");
	return -1;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static int64_t percentile(const int64_t *sorted, int n, int pct)
{
	int rank = (pct * n + 99) / 100;
	return sorted[rank < 1 ? 0 : rank - 1];
}

/* One kill: returns the time to a new leader in ms. */
static int64_t one_kill(int k, int kills, bool quiet)
{
	int64_t term;
	int old = wait_agreed(&term);
	kill(nodes[old].pid, SIGKILL);
	int64_t t0 = now_ms();
	waitpid(nodes[old].pid, NULL, 0);
	nodes[old].pid = 0;
	int64_t elapsed = -1;
	while (elapsed < 0) {
		for (int i = 0; i < NODES && elapsed < 0; i++) {
			int64_t t;
			if (i != old && get(i, "/leader", 500, &t, NULL) == 200 && t > term) {
				elapsed = now_ms() - t0;
			}
		}
		if (elapsed < 0) {
			if (now_ms() - t0 > WAIT_MS) {
				die("no new leader within 30 s");
			}
			sleep_ms(5);
		}
	}
	if (!quiet) {
		fprintf(stderr, "kill %2d/%d: node %d (term %lld) -> new leader after %lld ms\n",
			k + 1, kills, old + 1, (long long)term, (long long)elapsed);
	}
	start(old); /* rejoins from its data dir; wait_agreed of the next round waits for it */
	return elapsed;
}

int main(int argc, char **argv)
{
	int kills = 20;
	bool as_json = false;
	bin = bench_reflector_bin();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--kills") == 0 && i + 1 < argc) {
			kills = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else if (strcmp(argv[i], "--bin") == 0 && i + 1 < argc) {
			bin = argv[++i];
		} else {
			fprintf(stderr,
				"usage: failover_bench [--kills N] [--json] [--bin PATH]\n");
			return 2;
		}
	}
	if (kills < 1 || kills > 1000 || access(bin, X_OK) != 0) {
		fprintf(stderr,
			"failover_bench: need 1..1000 kills and an executable daemon (%s)\n", bin);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	write_configs();
	for (int i = 0; i < NODES; i++) {
		start(i);
	}
	int64_t *samples = calloc((size_t)kills, sizeof(*samples));
	for (int k = 0; k < kills; k++) {
		samples[k] = one_kill(k, kills, false);
	}
	cleanup();
	int64_t sorted[1000];
	memcpy(sorted, samples, (size_t)kills * sizeof(*samples));
	qsort(sorted, (size_t)kills, sizeof(*sorted), cmp_i64);
	int64_t sum = 0;
	for (int k = 0; k < kills; k++) {
		sum += sorted[k];
	}
	int64_t p50 = percentile(sorted, kills, 50), p99 = percentile(sorted, kills, 99);
	if (as_json) {
		printf("{\"kills\": %d, \"p50_ms\": %lld, \"p99_ms\": %lld, \"max_ms\": %lld, "
		       "\"min_ms\": %lld, \"mean_ms\": %lld, \"target_p99_ms\": 2000, "
		       "\"election_timeout_ms\": %d, \"samples_ms\": [",
		       kills, (long long)p50, (long long)p99, (long long)sorted[kills - 1],
		       (long long)sorted[0], (long long)(sum / kills),
		       RF_DEFAULT_ELECTION_TIMEOUT_MS);
		for (int k = 0; k < kills; k++) {
			printf("%s%lld", k ? ", " : "", (long long)samples[k]);
		}
		printf("]}\n");
	} else {
		printf(
		    "failover_bench: %d leader kills on a 3-node cluster (election timeout %d ms, "
		    "heartbeat %d ms: defaults)\n",
		    kills, RF_DEFAULT_ELECTION_TIMEOUT_MS, RF_DEFAULT_HEARTBEAT_TIMEOUT_MS);
		printf("time to new leader: min %lld ms, p50 %lld ms, mean %lld ms, p99 %lld ms, "
		       "max %lld ms (target p99 <= 2000 ms: %s)\n",
		       (long long)sorted[0], (long long)p50, (long long)(sum / kills),
		       (long long)p99, (long long)sorted[kills - 1],
		       p99 <= 2000 ? "met" : "MISSED");
	}
	free(samples);
	return 0;
}
