/* Cluster harness (see rf_harness.h). */
#include "rf_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "http_client.h"

#define RFH_MAX_CHILDREN 64
#define RFH_MAX_CLUSTERS 4

static pid_t rfh_children[RFH_MAX_CHILDREN];
static struct rfh_cluster *rfh_clusters[RFH_MAX_CLUSTERS];
static bool rfh_passed;
static unsigned rfh_seed;
static unsigned rfh_ports_used[4 * RFH_MAX_NODES * RFH_MAX_CLUSTERS];
static size_t rfh_n_ports;

int64_t rfh_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rfh_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

void rfh_pass(void)
{
	rfh_passed = true;
}

const char *rfh_bin(void)
{
	const char *bin = getenv("LG_REFLECTOR_BIN");
	cr_assert(bin != NULL && bin[0] != '\0', "LG_REFLECTOR_BIN is not set");
	return bin;
}

static void rfh_register(pid_t pid)
{
	for (size_t i = 0; i < RFH_MAX_CHILDREN; i++) {
		if (rfh_children[i] == 0) {
			rfh_children[i] = pid;
			return;
		}
	}
	cr_assert_fail("too many children");
}

static void rfh_unregister(pid_t pid)
{
	for (size_t i = 0; i < RFH_MAX_CHILDREN; i++) {
		if (rfh_children[i] == pid) {
			rfh_children[i] = 0;
		}
	}
}

/* A port in [20000, 32000) that 127.0.0.1 can bind now (outside the ephemeral range). */
static unsigned rfh_free_port(void)
{
	if (rfh_seed == 0) {
		rfh_seed = (unsigned)getpid() * 2654435761u ^ (unsigned)rfh_now_ms();
	}
	for (int attempt = 0; attempt < 1000; attempt++) {
		unsigned port = 20000 + (unsigned)(rand_r(&rfh_seed) % 12000);
		bool taken = false;
		for (size_t k = 0; k < rfh_n_ports; k++) {
			taken |= rfh_ports_used[k] == port;
		}
		if (taken) {
			continue;
		}
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok && rfh_n_ports < sizeof(rfh_ports_used) / sizeof(rfh_ports_used[0])) {
			rfh_ports_used[rfh_n_ports++] = port;
			return port;
		}
	}
	cr_assert_fail("no free port");
	return 0;
}

static void rfh_write_config(struct rfh_cluster *c, size_t i, json_t *extra)
{
	struct rfh_node *nd = &c->nodes[i];
	json_t *peers = json_array();
	for (size_t k = 0; k < c->n; k++) {
		json_array_append_new(peers,
				      json_pack("{s:I, s:s, s:s}", "id", (json_int_t)c->nodes[k].id,
						"raft_address", c->nodes[k].raft, "http_address",
						c->nodes[k].http));
	}
	json_t *cfg = json_pack("{s:I, s:s, s:o}", "node_id", (json_int_t)nd->id, "data_dir",
				nd->dir, "peers", peers);
	if (nd->join) {
		json_object_set_new(cfg, "join", json_true());
	}
	if (extra != NULL) {
		json_object_update(cfg, extra);
	}
	cr_assert(json_dump_file(cfg, nd->config, JSON_INDENT(2)) == 0);
	json_decref(cfg);
}

void rfh_cluster_init(struct rfh_cluster *c, size_t n, size_t n_bootstrap, json_t *extra)
{
	cr_assert(n <= RFH_MAX_NODES && n_bootstrap <= n);
	memset(c, 0, sizeof(*c));
	snprintf(c->root, sizeof(c->root), "/tmp/rf-test.XXXXXX");
	cr_assert(mkdtemp(c->root) != NULL);
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		struct rfh_node *nd = &c->nodes[i];
		nd->id = i + 1;
		snprintf(nd->raft, sizeof(nd->raft), "127.0.0.1:%u", rfh_free_port());
		snprintf(nd->http, sizeof(nd->http), "127.0.0.1:%u", rfh_free_port());
		snprintf(nd->dir, sizeof(nd->dir), "%s/data%zu", c->root, i + 1);
		snprintf(nd->config, sizeof(nd->config), "%s/node%zu.json", c->root, i + 1);
		snprintf(nd->log, sizeof(nd->log), "%s/node%zu.log", c->root, i + 1);
		nd->join = i >= n_bootstrap;
	}
	for (size_t i = 0; i < n; i++) {
		rfh_write_config(c, i, extra);
	}
	for (size_t k = 0; k < RFH_MAX_CLUSTERS; k++) {
		if (rfh_clusters[k] == NULL) {
			rfh_clusters[k] = c;
			return;
		}
	}
	cr_assert_fail("too many clusters");
}

static pid_t rfh_spawn(const char *const *argv, const char *const *env_extra, const char *log)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0) {
			dup2(devnull, 0);
		}
		for (size_t k = 0; env_extra != NULL && env_extra[k] != NULL; k++) {
			putenv((char *)env_extra[k]);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	rfh_register(pid);
	return pid;
}

pid_t rfh_start(struct rfh_cluster *c, size_t i, const char *const *argv_extra,
		const char *const *env_extra)
{
	struct rfh_node *nd = &c->nodes[i];
	cr_assert(nd->pid == 0, "node %zu already running", i + 1);
	const char *argv[16] = {rfh_bin(), "--config", nd->config};
	size_t k = 3;
	for (size_t j = 0; argv_extra != NULL && argv_extra[j] != NULL && k < 15; j++) {
		argv[k++] = argv_extra[j];
	}
	argv[k] = NULL;
	nd->pid = rfh_spawn(argv, env_extra, nd->log);
	return nd->pid;
}

void rfh_start_all(struct rfh_cluster *c, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		rfh_start(c, i, NULL, NULL);
	}
}

void rfh_signal(struct rfh_cluster *c, size_t i, int sig)
{
	cr_assert(c->nodes[i].pid > 0, "node %zu is not running", i + 1);
	kill(c->nodes[i].pid, sig);
}

int rfh_wait_exit(struct rfh_cluster *c, size_t i, int timeout_ms)
{
	struct rfh_node *nd = &c->nodes[i];
	int64_t deadline = rfh_now_ms() + timeout_ms;
	while (nd->pid > 0) {
		int status;
		pid_t r = waitpid(nd->pid, &status, WNOHANG);
		if (r == nd->pid) {
			rfh_unregister(nd->pid);
			nd->pid = 0;
			return status;
		}
		if (rfh_now_ms() > deadline) {
			return -1;
		}
		rfh_sleep_ms(10);
	}
	return -1;
}

void rfh_kill(struct rfh_cluster *c, size_t i)
{
	struct rfh_node *nd = &c->nodes[i];
	if (nd->pid <= 0) {
		return;
	}
	kill(nd->pid, SIGCONT); /* a stopped process must run to die promptly */
	kill(nd->pid, SIGKILL);
	waitpid(nd->pid, NULL, 0);
	rfh_unregister(nd->pid);
	nd->pid = 0;
}

static void rfh_dump_log(const char *path)
{
	char *text = rfh_read_file(path);
	if (text == NULL) {
		return;
	}
	size_t len = strlen(text);
	const char *from = len > 6000 ? text + len - 6000 : text;
	fprintf(stderr, "---- %s (tail) ----\n%s\n", path, from);
	free(text);
}

void rfh_cleanup(void)
{
	for (size_t i = 0; i < RFH_MAX_CHILDREN; i++) {
		if (rfh_children[i] > 0) {
			kill(rfh_children[i], SIGCONT);
			kill(rfh_children[i], SIGKILL);
			waitpid(rfh_children[i], NULL, 0);
			rfh_children[i] = 0;
		}
	}
	for (size_t k = 0; k < RFH_MAX_CLUSTERS; k++) {
		struct rfh_cluster *c = rfh_clusters[k];
		if (c == NULL) {
			continue;
		}
		for (size_t i = 0; i < c->n && !rfh_passed; i++) {
			rfh_dump_log(c->nodes[i].log);
		}
		if ((rfh_passed || getenv("RF_TEST_KEEP") == NULL) &&
		    strncmp(c->root, "/tmp/rf-test.", 13) == 0 && strchr(c->root, '\'') == NULL) {
			char cmd[300];
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->root);
			if (system(cmd) != 0) {
				fprintf(stderr, "cleanup: could not remove %s\n", c->root);
			}
		}
		rfh_clusters[k] = NULL;
	}
}

int rfh_run(const char *const *argv, const char *const *env_extra, char *out, size_t cap,
	    int timeout_ms)
{
	char path[] = "/tmp/rf-run.XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	close(fd);
	pid_t pid = rfh_spawn(argv, env_extra, path);
	int64_t deadline = rfh_now_ms() + timeout_ms;
	int status = -1;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			break;
		}
		if (rfh_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			status = -1;
			break;
		}
		rfh_sleep_ms(10);
	}
	rfh_unregister(pid);
	char *text = rfh_read_file(path);
	unlink(path);
	snprintf(out, cap, "%s", text != NULL ? text : "");
	free(text);
	return status;
}

int rfh_http(const struct rfh_cluster *c, size_t i, const char *method, const char *path,
	     const char *headers, const char *req_body, char **body, int timeout_ms)
{
	struct rf_http_response resp;
	char err[128];
	if (body != NULL) {
		*body = NULL;
	}
	if (rf_http_fetch(c->nodes[i].http, method, path, headers, req_body,
			  req_body != NULL ? strlen(req_body) : 0, timeout_ms, &resp, err,
			  sizeof(err)) != 0) {
		return -1;
	}
	if (body != NULL) {
		*body = resp.body;
	} else {
		rf_http_response_free(&resp);
	}
	return resp.status;
}

json_t *rfh_status(const struct rfh_cluster *c, size_t i, int timeout_ms)
{
	char *body;
	int status = rfh_http(c, i, "GET", "/status", NULL, NULL, &body, timeout_ms);
	json_t *o = status == 200 ? json_loads(body, 0, NULL) : NULL;
	free(body);
	return o;
}

int64_t rfh_int(const json_t *o, const char *path)
{
	char key[64];
	const char *dot = strchr(path, '.');
	if (dot != NULL) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		return rfh_int(json_object_get(o, key), dot + 1);
	}
	const json_t *v = json_object_get(o, path);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* One poll: the leader index if exactly one running node leads and all agree, else -1. */
static int rfh_poll_leader(const struct rfh_cluster *c, size_t count, uint64_t *term)
{
	int leader = -1;
	int64_t lid = -1, lterm = -1;
	for (size_t i = 0; i < count; i++) {
		if (c->nodes[i].pid <= 0) {
			continue;
		}
		json_t *st = rfh_status(c, i, 1000);
		if (st == NULL) {
			return -1;
		}
		const char *role = json_string_value(json_object_get(st, "role"));
		int64_t id = rfh_int(st, "leader.id");
		int64_t t = rfh_int(st, "term");
		bool leads = role != NULL && strcmp(role, "leader") == 0;
		json_decref(st);
		if (id <= 0 || (lid != -1 && (id != lid || t != lterm))) {
			return -1;
		}
		lid = id;
		lterm = t;
		if (leads) {
			if (leader != -1) {
				return -1;
			}
			leader = (int)i;
		}
	}
	if (leader < 0 || c->nodes[leader].id != (uint64_t)lid) {
		return -1;
	}
	if (rfh_http(c, (size_t)leader, "GET", "/leader", NULL, NULL, NULL, 1000) != 200) {
		return -1;
	}
	if (term != NULL) {
		*term = (uint64_t)lterm;
	}
	return leader;
}

bool rfh_wait_voter(const struct rfh_cluster *c, size_t i, bool want, int timeout_ms)
{
	int64_t deadline = rfh_now_ms() + timeout_ms;
	while (rfh_now_ms() < deadline) {
		json_t *st = rfh_status(c, i, 1000);
		bool ok = st != NULL && json_is_true(json_object_get(st, "voter")) == want &&
			  rfh_int(st, "leader.id") > 0;
		json_decref(st);
		if (ok) {
			return true;
		}
		rfh_sleep_ms(50);
	}
	return false;
}

int rfh_wait_agreed_leader(const struct rfh_cluster *c, size_t count, int timeout_ms,
			   uint64_t *term)
{
	int64_t deadline = rfh_now_ms() + timeout_ms;
	do {
		int leader = rfh_poll_leader(c, count, term);
		if (leader >= 0) {
			return leader;
		}
		rfh_sleep_ms(50);
	} while (rfh_now_ms() < deadline);
	return -1;
}

char *rfh_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return NULL;
	}
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			char *grown = realloc(buf, cap * 2);
			if (grown == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = grown;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf != NULL) {
		buf[len] = '\0';
	}
	return buf;
}
