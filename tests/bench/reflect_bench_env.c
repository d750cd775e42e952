/*
 * reflect_bench's environment: ephemeral PostgreSQL + Redis, the bench table, the cache fill,
 * and a 3-node lifeguard-reflector cluster on loopback (same approach as failover_bench).
 *
 * Happy path: rb_env_up (scripts/services up, temp dir, node configs on free ports) ->
 * rb_env_schema (table + rows, `setup`, `reflect` through the daemon's CLI) -> rb_env_fill ->
 * rb_env_cluster_start -> rb_env_leader (a node answers 200 on /leader and its coherence
 * session listens) -> ... -> rb_env_down (SIGKILL the daemons, services down, rm the dir).
 *
 * Failure modes: every step prints what failed on stderr and returns -1 (rb_env_leader: -1
 * after its timeout or on rb_stop); the caller then calls rb_env_down, which is idempotent and
 * safe after a partial rb_env_up. rb_env_kill_nodes only calls kill(2): the signal handler uses it.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "http_client.h"
#include "reflect_bench.h"

#define RB_FILL_TTL_MS 3600000
#define RB_FILL_PIPE   1000

static void env_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int env_write_configs(struct rb_env *e)
{
	json_t *peers = json_array();
	for (int i = 0; i < RB_NODES; i++) {
		unsigned rp = bench_free_port(), hp = bench_free_port();
		if (rp == 0 || hp == 0) {
			json_decref(peers);
			fprintf(stderr, "reflect_bench: no free port\n");
			return -1;
		}
		snprintf(e->nodes[i].raft, sizeof(e->nodes[i].raft), "127.0.0.1:%u", rp);
		snprintf(e->nodes[i].http, sizeof(e->nodes[i].http), "127.0.0.1:%u", hp);
		json_array_append_new(peers, json_pack("{s:i, s:s, s:s}", "id", i + 1,
						       "raft_address", e->nodes[i].raft,
						       "http_address", e->nodes[i].http));
	}
	int rc = 0;
	for (int i = 0; i < RB_NODES && rc == 0; i++) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s/data%d", e->root, i + 1);
		snprintf(e->nodes[i].config, sizeof(e->nodes[i].config), "%s/node%d.json", e->root,
			 i + 1);
		snprintf(e->nodes[i].log, sizeof(e->nodes[i].log), "%s/node%d.log", e->root, i + 1);
		/* Default raft and coherence settings: identity, addresses, data dir, services. */
		json_t *cfg = json_pack("{s:i, s:s, s:O, s:s, s:{s:s, s:i}}", "node_id", i + 1,
					"data_dir", dir, "peers", peers, "postgres", e->dsn,
					"redis", "host", "127.0.0.1", "port", e->redis_port);
		if (cfg != NULL && e->audit_keys_per_s >= 0) {
			json_object_set_new(cfg, "audit_keys_per_s",
					    json_integer(e->audit_keys_per_s));
		}
		if (cfg == NULL || json_dump_file(cfg, e->nodes[i].config, JSON_INDENT(2)) != 0) {
			fprintf(stderr, "reflect_bench: cannot write %s\n", e->nodes[i].config);
			rc = -1;
		}
		json_decref(cfg);
	}
	json_decref(peers);
	return rc;
}

int rb_env_up(struct rb_env *e)
{
	snprintf(e->root, sizeof(e->root), "/tmp/lg-reflect.XXXXXX");
	if (mkdtemp(e->root) == NULL) {
		perror("reflect_bench: mkdtemp");
		e->root[0] = '\0';
		return -1;
	}
	if (!bench_services_up_redis(e->dsn, sizeof(e->dsn), &e->redis_port)) {
		return -1;
	}
	return env_write_configs(e);
}

/* Runs `daemon SUB --config node1.json TAIL`; prints its output on failure. */
static int env_cli(struct rb_env *e, const char *sub, const char *tail)
{
	char cmd[PATH_MAX * 3];
	char out[4096];
	snprintf(cmd, sizeof(cmd), "'%s' %s --config '%s' %s 2>&1", e->bin, sub, e->nodes[0].config,
		 tail);
	int rc = bench_run(cmd, out, sizeof(out));
	if (rc != 0) {
		fprintf(stderr, "reflect_bench: `lifeguard-reflector %s` failed (%d):\n%s", sub, rc,
			out);
		return -1;
	}
	return 0;
}

int rb_env_schema(struct rb_env *e, int rows)
{
	PGconn *c = rb_pg_connect(e->dsn);
	if (c == NULL) {
		return -1;
	}
	char fill[256];
	snprintf(fill, sizeof(fill),
		 "INSERT INTO " RB_TABLE " SELECT g, 0, repeat('x', 64)"
		 " FROM generate_series(1, %d) AS g",
		 rows);
	int rc = rb_pg_exec(c, "SET client_min_messages = warning");
	if (rc == 0) {
		rc = rb_pg_exec(c, "DROP TABLE IF EXISTS " RB_TABLE);
	}
	if (rc == 0) {
		rc = rb_pg_exec(c, "CREATE TABLE " RB_TABLE " (id int PRIMARY KEY,"
				   " n bigint NOT NULL, pad text NOT NULL)");
	}
	if (rc == 0) {
		rc = rb_pg_exec(c, fill);
	}
	if (rc == 0) {
		rc = env_cli(e, "setup", "");
	}
	if (rc == 0) {
		rc = env_cli(e, "reflect", RB_TABLE);
	}
	if (rc == 0) {
		rc = rb_pg_exec(c, "VACUUM ANALYZE " RB_TABLE);
	}
	PQfinish(c);
	return rc;
}

static redisContext *env_redis(struct rb_env *e)
{
	struct timeval tv = {5, 0};
	redisContext *r = redisConnectWithTimeout("127.0.0.1", e->redis_port, tv);
	if (r == NULL || r->err != 0) {
		fprintf(stderr, "reflect_bench: redis connect: %s\n", r ? r->errstr : "no memory");
		redisFree(r);
		return NULL;
	}
	return r;
}

/* Every row cached as the reflector would cache it now ({"v":<lg_version>,"row":<to_jsonb>}),
 * so the leader's audit finds nothing stale (a made-up value would be, rightly). */
int rb_env_fill(struct rb_env *e, int rows)
{
	redisContext *r = env_redis(e);
	PGconn *c = rb_pg_connect(e->dsn);
	PGresult *res = c != NULL ? PQexec(c, "SELECT id, format('{\"v\":%s,\"row\":%s}',"
					      " COALESCE(lg_version, 0), to_jsonb(b)::text)"
					      " FROM " RB_TABLE " b ORDER BY id")
				  : NULL;
	if (r == NULL || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQntuples(res) < rows) {
		fprintf(stderr, "reflect_bench: fill: cannot read the rows: %s\n",
			c != NULL ? PQerrorMessage(c) : "no connection");
		PQclear(res);
		PQfinish(c);
		redisFree(r);
		return -1;
	}
	int rc = 0;
	for (int first = 1; first <= rows && rc == 0; first += RB_FILL_PIPE) {
		int last = first + RB_FILL_PIPE - 1 < rows ? first + RB_FILL_PIPE - 1 : rows;
		for (int id = first; id <= last; id++) {
			redisAppendCommand(r, "SET " RB_KEY_PREFIX "%s %s PX %d",
					   PQgetvalue(res, id - 1, 0), PQgetvalue(res, id - 1, 1),
					   RB_FILL_TTL_MS);
		}
		for (int id = first; id <= last && rc == 0; id++) {
			redisReply *rep = NULL;
			if (redisGetReply(r, (void **)&rep) != REDIS_OK || rep == NULL ||
			    rep->type == REDIS_REPLY_ERROR) {
				fprintf(stderr, "reflect_bench: fill: %s\n",
					rep ? rep->str : r->errstr);
				rc = -1;
			}
			freeReplyObject(rep);
		}
	}
	PQclear(res);
	PQfinish(c);
	redisFree(r);
	return rc;
}

int rb_env_keyspace_events(struct rb_env *e, const char *flags)
{
	redisContext *r = env_redis(e);
	if (r == NULL) {
		return -1;
	}
	redisReply *rep = redisCommand(r, "CONFIG SET notify-keyspace-events %s", flags);
	int rc = rep != NULL && rep->type == REDIS_REPLY_STATUS ? 0 : -1;
	if (rc != 0) {
		fprintf(stderr, "reflect_bench: CONFIG SET: %s\n", rep ? rep->str : r->errstr);
	}
	freeReplyObject(rep);
	redisFree(r);
	return rc;
}

double rb_env_redis_cpu_s(struct rb_env *e)
{
	redisContext *r = env_redis(e);
	if (r == NULL) {
		return -1;
	}
	redisReply *rep = redisCommand(r, "INFO cpu");
	double cpu = -1;
	if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
		const char *u = strstr(rep->str, "used_cpu_user:");
		const char *s = strstr(rep->str, "used_cpu_sys:");
		if (u != NULL && s != NULL) {
			cpu =
			    atof(u + strlen("used_cpu_user:")) + atof(s + strlen("used_cpu_sys:"));
		}
	}
	freeReplyObject(rep);
	redisFree(r);
	return cpu;
}

int rb_env_cluster_start(struct rb_env *e)
{
	for (int i = 0; i < RB_NODES; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("reflect_bench: fork");
			return -1;
		}
		if (pid == 0) {
			int fd =
			    open(e->nodes[i].log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execl(e->bin, e->bin, "--config", e->nodes[i].config, (char *)NULL);
			_exit(127);
		}
		e->nodes[i].pid = pid;
	}
	return 0;
}

/* GET path on node i: HTTP status (-1 unreachable), body parsed into *body (may be NULL). */
static int env_get(struct rb_env *e, int i, const char *path, json_t **body)
{
	struct rf_http_response resp;
	char err[128];
	if (rf_http_fetch(e->nodes[i].http, "GET", path, NULL, NULL, 0, 1000, &resp, err,
			  sizeof(err)) != 0) {
		return -1;
	}
	if (body != NULL) {
		*body = json_loadb(resp.body, resp.body_len, 0, NULL);
	}
	int status = resp.status;
	rf_http_response_free(&resp);
	return status;
}

int rb_env_leader(struct rb_env *e, int timeout_ms)
{
	uint64_t deadline = bench_now_us() + (uint64_t)timeout_ms * 1000u;
	while (!rb_stop && bench_now_us() < deadline) {
		for (int i = 0; i < RB_NODES; i++) {
			json_t *o = NULL;
			int listening = 0;
			if (env_get(e, i, "/leader", &o) == 200 &&
			    json_unpack(o, "{s:{s:b}}", "postgres", "listening", &listening) == 0 &&
			    listening) {
				json_decref(o);
				return i;
			}
			json_decref(o);
		}
		env_sleep_ms(50);
	}
	fprintf(stderr, "reflect_bench: no leader with a listening coherence session (logs: %s)\n",
		e->root);
	return -1;
}

int rb_env_counters(struct rb_env *e, int node, struct rb_counters *out)
{
	json_t *o = NULL;
	memset(out, 0, sizeof(*out));
	int leading = 0;
	json_int_t v[10] = {0};
	double mean = 0;
	int rc =
	    env_get(e, node, "/status", &o) == 200 &&
		    json_unpack(o,
				"{s:{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
				" s:{s:I, s:F}}",
				"counters", "leading", &leading, "term", &v[0], "changes", &v[1],
				"keys", &v[2], "batches", &v[3], "errors", &v[4], "notifications",
				&v[5], "refreshed", &v[6], "kept", &v[7], "fenced", &v[8],
				"propagation", "count", &v[9], "mean_ms", &mean) == 0
		? 0
		: -1;
	json_decref(o);
	out->leading = leading;
	out->term = v[0];
	out->changes = v[1];
	out->keys = v[2];
	out->batches = v[3];
	out->errors = v[4];
	out->notifications = v[5];
	out->refreshed = v[6];
	out->kept = v[7];
	out->fenced = v[8];
	out->prop_count = v[9];
	out->prop_mean_ms = mean;
	return rc;
}

void rb_env_log_summary(struct rb_env *e, FILE *out)
{
	for (int i = 0; i < RB_NODES; i++) {
		FILE *f = fopen(e->nodes[i].log, "r");
		if (f == NULL) {
			continue;
		}
		char line[2048];
		int warn = 0, shown = 0;
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strstr(line, "\"level\":\"warn\"") == NULL &&
			    strstr(line, "\"level\":\"error\"") == NULL) {
				continue;
			}
			if (shown++ < 5) {
				fprintf(out, "  node%d: %.300s%s", i + 1, line,
					strchr(line, '\n') ? "" : "\n");
			}
			warn++;
		}
		fclose(f);
		fprintf(out, "node%d log: %d warn/error lines\n", i + 1, warn);
	}
}

double rb_env_node_cpu_s(struct rb_env *e, int node)
{
	char path[64];
	char buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)e->nodes[node].pid);
	FILE *f = fopen(path, "r");
	size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f != NULL) {
		fclose(f);
	}
	buf[n] = '\0';
	/* Fields after the parenthesized command name: state is field 3, utime 14, stime 15. */
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (p == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
		return -1;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void rb_env_kill_nodes(struct rb_env *e)
{
	for (int i = 0; i < RB_NODES; i++) {
		if (e->nodes[i].pid > 0) {
			kill(e->nodes[i].pid, SIGKILL);
		}
	}
}

void rb_env_down(struct rb_env *e)
{
	rb_env_kill_nodes(e);
	for (int i = 0; i < RB_NODES; i++) {
		if (e->nodes[i].pid > 0) {
			waitpid(e->nodes[i].pid, NULL, 0);
			e->nodes[i].pid = 0;
		}
	}
	bench_services_down();
	if (e->root[0] != '\0' && !e->keep && strncmp(e->root, "/tmp/lg-reflect.", 16) == 0) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
		if (system(cmd) != 0) {
			fprintf(stderr, "reflect_bench: could not remove %s\n", e->root);
		}
	} else if (e->root[0] != '\0') {
		fprintf(stderr, "reflect_bench: node logs kept in %s\n", e->root);
	}
	e->root[0] = '\0';
}
