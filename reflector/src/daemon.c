/*
 * Process lifecycle.
 *
 * Happy path: create the data dir and lock it (one process per data dir) -> one uv loop,
 * with a libguard runtime on it -> start the raft node -> start HTTP -> watch SIGTERM and
 * SIGINT -> run the loop.
 * Shutdown on the first SIGTERM/SIGINT:
 *   1. hand-off: a leader transfers leadership to the most up-to-date voter and waits until
 *      raft reports the outcome (at most an election timeout); HTTP keeps serving meanwhile;
 *   2. then, together: raft_close (fails pending raft requests, so membership coroutines
 *      answer 503) and the HTTP server stop (busy connections get their answer first);
 *   3. when both finished, the signal watchers close, the loop runs dry, the runtime is freed
 *      (no coroutine is left: all of them waited on raft or on their deadline) -> exit 0.
 * Further signals during shutdown are logged and ignored.
 *
 * Failure modes: data dir cannot be created or is locked by another process, raft cannot
 * start, HTTP cannot listen -> logged, whatever started is closed the same way, exit 1.
 * An empty data dir while a peer knows the cluster (node.c) -> exit 3: re-add with --join.
 * SIGKILL at any moment is safe: raft's data dir is the durable state, and the next start
 * loads it (RAFT_CANTBOOTSTRAP then tells a restart from a first start).
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libguard/runtime.h>

#include "api.h"
#include "coherence.h"
#include "http_server.h"
#include "log.h"

struct daemon {
	uv_loop_t loop;
	struct lg_runtime *rt;
	const struct rf_config *cfg;
	struct rf_node node;
	struct rf_coherence *coherence;
	struct rf_leader_hooks user_hooks; /* the caller's, chained after the pipeline's */
	struct rf_http_server *http;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	bool signals_started;
	bool stopping;
	int pending; /* shutdown parts still running */
	int exit_code;
};

/* mkdir -p */
static int daemon_mkdirs(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
				return -1;
			}
			*p = '/';
		}
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
		return -1;
	}
	struct stat st;
	if (stat(buf, &st) != 0) {
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* Creates and locks data_dir; returns the lock fd or -1 (logged). */
static int daemon_lock_dir(const char *dir)
{
	if (daemon_mkdirs(dir) != 0) {
		rf_log(RF_LOG_ERROR, "daemon.data_dir", "data_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/lifeguard-reflector.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rf_log(RF_LOG_ERROR, "daemon.data_dir", "data_dir lock %s: %s", path,
		       strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		rf_log(RF_LOG_ERROR, "daemon.data_dir",
		       "data_dir %s is in use by another lifeguard-reflector process", dir);
		close(fd);
		return -1;
	}
	return fd;
}

static void daemon_on_signal_closed(uv_handle_t *h)
{
	(void)h;
}

static void daemon_part_done(struct daemon *d)
{
	if (--d->pending > 0) {
		return;
	}
	if (d->signals_started) {
		uv_close((uv_handle_t *)&d->sigterm, daemon_on_signal_closed);
		uv_close((uv_handle_t *)&d->sigint, daemon_on_signal_closed);
		d->signals_started = false;
	}
	rf_log(RF_LOG_INFO, "daemon.stopped", "raft closed, HTTP closed");
}

static void daemon_on_http_stopped(void *data)
{
	struct daemon *d = data;
	d->http = NULL;
	daemon_part_done(d);
}

static void daemon_on_node_closed(struct rf_node *n)
{
	daemon_part_done(n->data);
}

/* Step 2: close raft and HTTP together. */
static void daemon_close_all(struct daemon *d)
{
	d->pending = 1;
	if (d->http != NULL) {
		d->pending++;
		rf_http_server_stop(d->http, daemon_on_http_stopped, d);
	}
	if (d->node.raft_initialized) {
		d->pending++;
		rf_node_close(&d->node, daemon_on_node_closed);
	}
	daemon_part_done(d);
}

static void daemon_on_handoff(struct rf_node *n)
{
	daemon_close_all(n->data);
}

static void daemon_on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	if (d->stopping) {
		rf_log(RF_LOG_INFO, "daemon.signal", "%s: already shutting down",
		       strsignal(signum));
		return;
	}
	d->stopping = true;
	rf_log(RF_LOG_INFO, "daemon.signal", "%s: shutting down", strsignal(signum));
	rf_node_handoff(&d->node, daemon_on_handoff);
}

static void daemon_log_config(const struct rf_config *cfg)
{
	rf_log(RF_LOG_INFO, "daemon.config",
	       "node %llu raft %s http %s data_dir %s peers %zu%s; postgres %s, redis %s, "
	       "admin_token %s, key_prefix %s",
	       (unsigned long long)cfg->node_id, cfg->raft_address, cfg->http_address,
	       cfg->data_dir, cfg->n_peers, cfg->join ? " (joining)" : "",
	       cfg->postgres != NULL ? "set" : "unset", cfg->redis.set ? "set" : "unset",
	       cfg->admin_token != NULL ? "set" : "unset (admin endpoints are open)",
	       cfg->key_prefix);
}

static void daemon_became_leader(void *data, uint64_t term)
{
	struct daemon *d = data;
	rf_coherence_became_leader(d->coherence, term);
	if (d->user_hooks.became_leader != NULL) {
		d->user_hooks.became_leader(d->user_hooks.data, term);
	}
}

static void daemon_lost_leadership(void *data, uint64_t term)
{
	struct daemon *d = data;
	rf_coherence_lost_leadership(d->coherence, term);
	if (d->user_hooks.lost_leadership != NULL) {
		d->user_hooks.lost_leadership(d->user_hooks.data, term);
	}
}

/* Starts node and HTTP; on failure sets exit_code 1 and closes what started. */
static void daemon_start(struct daemon *d, const struct rf_leader_hooks *user_hooks)
{
	char err[512];
	if (user_hooks != NULL) {
		d->user_hooks = *user_hooks;
	}
	struct rf_leader_hooks hooks = {d, daemon_became_leader, daemon_lost_leadership};
	int rc = rf_node_start(&d->node, &d->loop, d->rt, d->cfg, &hooks, err, sizeof(err));
	if (rc != 0) {
		rf_log(RF_LOG_ERROR, "daemon.start", "%s", err);
		d->exit_code = rc == RF_NODE_MUST_REJOIN ? 3 : 1;
		d->node.data = d;
		daemon_close_all(d);
		return;
	}
	d->node.data = d;
	d->node.coherence = rf_coherence_stats(d->coherence);
	if (rf_http_server_start(&d->loop, d->cfg->http_address, d->cfg->http_head_timeout_ms,
				 rf_api_handle, &d->node, &d->node.metrics, &d->http, err,
				 sizeof(err)) != 0) {
		rf_log(RF_LOG_ERROR, "daemon.start", "%s", err);
		d->exit_code = 1;
		d->http = NULL;
		daemon_close_all(d);
		return;
	}
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sigint);
	d->sigterm.data = d;
	d->sigint.data = d;
	uv_signal_start(&d->sigterm, daemon_on_signal, SIGTERM);
	uv_signal_start(&d->sigint, daemon_on_signal, SIGINT);
	d->signals_started = true;
	rf_log(RF_LOG_INFO, "daemon.ready", "serving HTTP on %s", d->cfg->http_address);
}

int rf_daemon_run(const struct rf_config *cfg, const struct rf_leader_hooks *hooks)
{
	rf_log_setup(cfg->log_level, cfg->node_id);
	signal(SIGPIPE, SIG_IGN);
	rf_config_register_secrets(cfg);
	daemon_log_config(cfg);
	int lock_fd = daemon_lock_dir(cfg->data_dir);
	if (lock_fd < 0) {
		return 1;
	}
	struct daemon *d = calloc(1, sizeof(*d));
	if (d == NULL || uv_loop_init(&d->loop) != 0) {
		free(d);
		close(lock_fd);
		return 1;
	}
	d->cfg = cfg;
	if (lg_runtime_new(&d->loop, NULL, &d->rt) != 0) {
		rf_log(RF_LOG_ERROR, "daemon.start", "libguard runtime: out of memory");
		uv_loop_close(&d->loop);
		free(d);
		close(lock_fd);
		return 1;
	}
	if (rf_coherence_new(d->rt, cfg, &d->coherence) != 0) {
		rf_log(RF_LOG_ERROR, "daemon.start", "coherence pipeline: out of memory");
		lg_runtime_free(d->rt);
		uv_loop_close(&d->loop);
		free(d);
		close(lock_fd);
		return 1;
	}
	rf_coherence_attach(d->coherence, &d->node); /* fencing tokens go through raft */
	daemon_start(d, hooks);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	lg_runtime_free(d->rt);
	rf_coherence_free(d->coherence);
	rf_node_free(&d->node);
	int rc = uv_loop_close(&d->loop);
	if (rc != 0) {
		rf_log(RF_LOG_ERROR, "daemon.exit", "loop not empty at exit: %s", uv_strerror(rc));
		d->exit_code = 1;
	}
	int code = d->exit_code;
	free(d);
	close(lock_fd);
	rf_log(RF_LOG_INFO, "daemon.exit", "exit status %d", code);
	return code;
}
