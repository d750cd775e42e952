/*
 * End to end: the users service (libguard/examples/users_service) over HTTP, with a private
 * PostgreSQL primary, a streaming replica, a private Redis and a 3-process reflector cluster,
 * while the reflector leader is killed (SIGKILL) twice and restarted.
 *
 * Load: USV_CLIENTS client threads, each with its own identity, for the whole run. A client
 * mostly reads GET /users/:id of a shared id (never deleted) or of one of its own users, and
 * sometimes updates a shared user (PUT), creates a user of its own (POST) or deletes one of
 * its own (DELETE). Every read carries the Lifeguard-Token of the client's last write.
 *
 * The checker logs every response (client, op, id, status, version, source, floors, times)
 * to a file and verifies each read of id against two floors, as ranks: a version v is rank v,
 * "deleted" (404) is the highest rank, since ids are never reused.
 *
 * 1. Own write: when the client's last write was to id, a read must rank at least what that
 *    write answered (its version, or deleted). The token carries exactly that write.
 * 2. Processed change: just before sending the read, the client reads, in one statement on
 *    the primary, the row's current version and whether lifeguard.outbox holds a row for its
 *    key. The capture trigger inserts the outbox row in the writer's own transaction, and the
 *    leader deletes it in the claim transaction that commits only after the batch's Redis
 *    scripts ran (docs/data-contract.md, "How the leader uses them"). So when that snapshot
 *    shows version v (or no row) and no outbox row for the key, every change up to v (or the
 *    delete) was committed and processed by a leader before the read started, and the
 *    guarantee ("The guarantee", same document) says no later read returns an older row: the
 *    read must rank at least v (deleted). With an outbox row pending, the floor is only the
 *    own-write one (the reflector had not processed the newest change). A deleted row whose
 *    delete is still in the outbox gives no floor either.
 * Besides, a shared id is never deleted, so 404 for it is a violation.
 *
 * Reads without Cache-Control: no-cache are checked: they go to Redis, or on a miss to the
 * primary, or -- when the cached row is older than the caller's own write -- to the replica
 * once it replayed the write's LSN, else the primary. (A read with no-cache may be served by
 * a replica within the lag bound: its staleness is bounded by that, not by the reflector, so
 * it is not what rule 2 checks; docs/read-path.md.)
 *
 * The checker itself is checked at the end: a value older than the row is planted in Redis
 * behind the reflector's back, and the same check must report exactly that read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "lg_test.h"
#include "rf_harness.h"

#define WAIT_MS      60000
#define USV_CLIENTS  8
#define USV_SHARED   40
#define USV_OWN_MAX  64
#define RANK_DELETED INT64_MAX

extern char **environ;

static struct lg_test_pg pg;
static bool pg_started;
static char replica_dir[200];
static char redis_dir[256];
static int redis_port;
static struct rfh_cluster cluster;
static pid_t svc_pid;
static int svc_port;
static char log_path[300];
static FILE *log_file;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stop_load;
static atomic_long violations;
static int64_t shared_ids[USV_SHARED];

static void teardown(void)
{
	atomic_store(&stop_load, true);
	if (svc_pid > 0) {
		kill(svc_pid, SIGKILL);
		waitpid(svc_pid, NULL, 0);
		svc_pid = 0;
	}
	rfh_cleanup();
	if (log_file != NULL) {
		fclose(log_file);
		log_file = NULL;
	}
	lg_test_private_destroy(redis_dir, replica_dir, &pg, &pg_started);
}

TestSuite(users_service, .fini = teardown);

/* ---- A blocking HTTP client (one request per connection) ------------------------------- */

struct reply {
	int status; /* -1: no answer */
	char source[32];
	char token[256];
	json_t *body; /* NULL when empty or not JSON */
};

static void header_value(const char *head, const char *name, char *out, size_t cap)
{
	out[0] = '\0';
	size_t n = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
			const char *v = p + 3 + n;
			v += strspn(v, " ");
			size_t len = strcspn(v, "\r");
			snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), v);
			return;
		}
	}
}

static struct reply http(const char *method, const char *path, const char *headers,
			 const char *body)
{
	struct reply r = {.status = -1};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)svc_port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	struct timeval tv = {30, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return r;
	}
	char req[2048];
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s"
			 "Content-Length: %zu\r\n\r\n%s",
			 method, path, headers ? headers : "", body ? strlen(body) : 0,
			 body ? body : "");
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return r;
	}
	char buf[16384];
	size_t len = 0;
	ssize_t got;
	while (len < sizeof(buf) - 1 && (got = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)got;
	}
	close(fd);
	buf[len] = '\0';
	char *end = strstr(buf, "\r\n\r\n");
	if (end == NULL || sscanf(buf, "HTTP/1.1 %d", &r.status) != 1) {
		r.status = -1;
		return r;
	}
	*end = '\0';
	header_value(buf, "Lifeguard-Source", r.source, sizeof(r.source));
	header_value(buf, "Lifeguard-Token", r.token, sizeof(r.token));
	r.body = json_loads(end + 4, 0, NULL);
	return r;
}

static int64_t reply_int(const struct reply *r, const char *key)
{
	json_t *v = json_object_get(r->body, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* ---- The checker ---------------------------------------------------------------------- */

/* The processed-change floor of id (see the header): a rank, or 0 for none. */
static int64_t processed_floor(PGconn *db, int64_t id)
{
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	const char *params[] = {idtext};
	PGresult *res = PQexecParams(
	    db,
	    "SELECT (SELECT version FROM quickstart.users WHERE id = $1::int8),"
	    " EXISTS (SELECT 1 FROM lifeguard.outbox WHERE table_name = 'quickstart.users'"
	    " AND pk = jsonb_build_array($1::text))",
	    1, NULL, params, NULL, NULL, 0);
	int64_t floor = 0;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 1), "f") == 0) {
		floor = PQgetisnull(res, 0, 0) ? RANK_DELETED : atoll(PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return floor;
}

struct client {
	int n;
	PGconn *db;
	unsigned seed;
	char token[256];
	int64_t last_id, last_rank; /* the client's last write (id 0: none yet) */
	int64_t own[USV_OWN_MAX];
	int nown;
	long reads, writes, by_source[3], errors;
	long write_status[6]; /* by status class: [2] 2xx, [4] 4xx, [5] 5xx and no answer */
};

/* One checked read of id; returns false (and logs VIOLATION) when a floor is broken. */
static bool checked_read(struct client *c, int64_t id, bool shared)
{
	int64_t t0 = rfh_now_ms();
	int64_t floor = processed_floor(c->db, id);
	int64_t own = c->last_id == id ? c->last_rank : 0;
	char path[64], hdr[300] = "";
	snprintf(path, sizeof(path), "/users/%" PRId64, id);
	if (c->token[0] != '\0') {
		snprintf(hdr, sizeof(hdr), "Lifeguard-Token: %s\r\n", c->token);
	}
	struct reply r = http("GET", path, hdr, NULL);
	int64_t t1 = rfh_now_ms();
	int64_t rank = r.status == 200   ? reply_int(&r, "version")
		       : r.status == 404 ? RANK_DELETED
					 : -1;
	const char *why = NULL;
	if (rank < 0) {
		why = "no valid answer";
	} else if (rank < own) {
		why = "older than the caller's own last write";
	} else if (rank < floor) {
		why = "older than a change the reflector had processed";
	} else if (shared && rank == RANK_DELETED) {
		why = "a shared user (never deleted) read as absent";
	}
	pthread_mutex_lock(&log_mu);
	fprintf(log_file,
		"%" PRId64 " %" PRId64 " client=%d GET id=%" PRId64 " status=%d version=%" PRId64
		" source=%s own_floor=%" PRId64 " processed_floor=%" PRId64 " token=%s%s%s\n",
		t0, t1, c->n, id, r.status, rank, r.source[0] ? r.source : "-", own, floor,
		c->token[0] ? c->token : "-", why ? " VIOLATION: " : "", why ? why : "");
	pthread_mutex_unlock(&log_mu);
	c->reads++;
	c->by_source[strcmp(r.source, "cache") == 0     ? 0
		     : strcmp(r.source, "replica") == 0 ? 1
							: 2]++;
	json_decref(r.body);
	return why == NULL;
}

/* A write; on success the client's token and last write follow it. */
static void client_write(struct client *c, const char *method, const char *path, const char *body)
{
	int64_t t0 = rfh_now_ms();
	struct reply r = http(method, path, NULL, body);
	pthread_mutex_lock(&log_mu);
	fprintf(log_file,
		"%" PRId64 " %" PRId64 " client=%d %s %s status=%d version=%" PRId64 " token=%s\n",
		t0, rfh_now_ms(), c->n, method, path, r.status, reply_int(&r, "version"),
		r.token[0] ? r.token : "-");
	pthread_mutex_unlock(&log_mu);
	c->writes++;
	c->write_status[r.status >= 200 && r.status < 500 ? r.status / 100 : 5]++;
	bool ok = r.status == 200 || r.status == 201 || r.status == 204;
	if (ok && r.token[0] != '\0') {
		snprintf(c->token, sizeof(c->token), "%s", r.token);
		const char *id = strstr(r.token, ";id=");
		c->last_id = id ? atoll(id + 4) : 0;
		c->last_rank = r.status == 204 ? RANK_DELETED : reply_int(&r, "version");
		if (r.status == 201 && c->nown < USV_OWN_MAX) {
			c->own[c->nown++] = c->last_id;
		}
	} else if (!ok || r.token[0] == '\0') {
		c->errors++; /* a write that failed (or answered without a token) is not relied on
			      */
	}
	json_decref(r.body);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char path[64], body[128];
	while (!atomic_load(&stop_load)) {
		unsigned op = (unsigned)rand_r(&c->seed) % 100;
		if (op < 25) {
			int64_t id = shared_ids[rand_r(&c->seed) % USV_SHARED];
			snprintf(path, sizeof(path), "/users/%" PRId64, id);
			snprintf(body, sizeof(body), "{\"name\": \"client %d write %ld\"}", c->n,
				 c->writes);
			client_write(c, "PUT", path, body);
		} else if (op < 28) {
			snprintf(body, sizeof(body), "{\"email\": \"c%d-%ld@example.com\"}", c->n,
				 c->writes);
			client_write(c, "POST", "/users", body);
		} else if (op < 30 && c->nown > 0) {
			snprintf(path, sizeof(path), "/users/%" PRId64,
				 c->own[rand_r(&c->seed) % (unsigned)c->nown]);
			client_write(c, "DELETE", path, NULL);
		} else if (op < 45 && c->nown > 0) {
			if (!checked_read(c, c->own[rand_r(&c->seed) % (unsigned)c->nown], false)) {
				atomic_fetch_add(&violations, 1);
			}
		} else if (!checked_read(c, shared_ids[rand_r(&c->seed) % USV_SHARED], true)) {
			atomic_fetch_add(&violations, 1);
		}
	}
	return NULL;
}

/* ---- Environment ------------------------------------------------------------------------ */

static void sql(PGconn *db, const char *q)
{
	PGresult *r = PQexec(db, q);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%.80s: %s", q,
		  PQresultErrorMessage(r));
	PQclear(r);
}

static void cli(const char *cmd, const char *arg)
{
	const char *argv[] = {rfh_bin(), cmd, "--config", cluster.nodes[0].config, arg, NULL};
	char out[4096];
	int st = rfh_run(argv, NULL, out, sizeof(out), WAIT_MS);
	cr_assert_eq(st, 0, "%s %s: %s", cmd, arg != NULL ? arg : "", out);
}

/* Primary, replica, Redis, the quickstart schema (its migration file), quickstart.users
 * reflected, the cluster started. Returns a connection to the primary. */
static PGconn *env_start(void)
{
	pg_started = true;
	cr_assert(lg_test_pg_start(&pg), "private PostgreSQL");
	snprintf(replica_dir, sizeof(replica_dir), "%.*s/replica",
		 (int)(strrchr(pg.dir, '/') - pg.dir), pg.dir);
	int replica_port = lg_test_free_port();
	cr_assert_eq(lg_test_services("pg replica '%s' %d %d", replica_dir, replica_port, pg.port),
		     0, "streaming replica");
	char tmpl[] = "/tmp/usv-e2e-redis.XXXXXX";
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(redis_dir, sizeof(redis_dir), "%s", tmpl);
	redis_port = lg_test_free_port();
	cr_assert_eq(lg_test_services("redis start '%s' %d", redis_dir, redis_port), 0);

	PGconn *db = PQconnectdb(pg.dsn);
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	char *schema = rfh_read_file(getenv("LG_USERS_SERVICE_SCHEMA"));
	cr_assert_not_null(schema, "LG_USERS_SERVICE_SCHEMA names the quickstart migration");
	sql(db, "SET client_min_messages = warning");
	sql(db, schema);
	free(schema);

	json_t *extra = json_pack("{ss s{sssi} si}", "postgres", pg.dsn, "redis", "host",
				  "127.0.0.1", "port", redis_port, "poll_interval_ms", 200);
	rfh_cluster_init(&cluster, 3, 3, extra);
	json_decref(extra);
	cli("setup", NULL);
	cli("reflect", "quickstart.users");
	rfh_start_all(&cluster, 3);
	cr_assert_geq(rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL), 0, "no leader");

	/* The service, with cache and replica. */
	svc_port = lg_test_free_port();
	char listen[32], primary[300], replica[200], redis[32], logp[320];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", svc_port);
	snprintf(primary, sizeof(primary), "%s", pg.dsn);
	snprintf(replica, sizeof(replica), "host=127.0.0.1 port=%d user=postgres dbname=postgres",
		 replica_port);
	snprintf(redis, sizeof(redis), "127.0.0.1:%d", redis_port);
	snprintf(logp, sizeof(logp), "%s/users_service.log", cluster.root);
	const char *bin = getenv("LG_USERS_SERVICE_BIN");
	cr_assert_not_null(bin, "LG_USERS_SERVICE_BIN");
	char *const argv[] = {(char *)bin, "--listen", listen,    "--primary", primary,
			      "--replica", replica,    "--redis", redis,       NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	cr_assert_eq(posix_spawn(&svc_pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	struct reply r = {.status = -1};
	while (r.status != 200 && rfh_now_ms() < deadline) {
		rfh_sleep_ms(100);
		json_decref(r.body);
		r = http("GET", "/healthz", NULL, NULL);
	}
	json_decref(r.body);
	cr_assert_eq(r.status, 200, "the service did not come up (log: %s)", logp);
	return db;
}

static int64_t leader_kill_restart(void)
{
	int leader = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
	cr_assert_geq(leader, 0, "no leader before the kill");
	rfh_kill(&cluster, (size_t)leader);
	int64_t t = rfh_now_ms();
	int next = rfh_wait_agreed_leader(&cluster, 3, WAIT_MS, NULL);
	cr_assert_geq(next, 0, "no new leader after killing node %d", leader);
	rfh_start(&cluster, (size_t)leader, NULL, NULL);
	return rfh_now_ms() - t;
}

Test(users_service, reads_stay_fresh_while_the_leader_is_killed, .timeout = 600)
{
	PGconn *db = env_start();
	char logdir[] = "/tmp/usv-e2e-log.XXXXXX";
	cr_assert_not_null(mkdtemp(logdir));
	snprintf(log_path, sizeof(log_path), "%s/responses.log", logdir);
	log_file = fopen(log_path, "w");
	cr_assert_not_null(log_file);
	for (int i = 0; i < USV_SHARED; i++) {
		char body[64];
		snprintf(body, sizeof(body), "{\"email\": \"shared%d@example.com\"}", i);
		struct reply r = http("POST", "/users", NULL, body);
		cr_assert_eq(r.status, 201, "seed POST: %d", r.status);
		shared_ids[i] = reply_int(&r, "id");
		json_decref(r.body);
	}

	static struct client clients[USV_CLIENTS];
	pthread_t th[USV_CLIENTS];
	for (int i = 0; i < USV_CLIENTS; i++) {
		clients[i] = (struct client){.n = i, .seed = (unsigned)(rfh_now_ms() + i)};
		clients[i].db = PQconnectdb(pg.dsn);
		cr_assert_eq(PQstatus(clients[i].db), CONNECTION_OK);
		cr_assert_eq(pthread_create(&th[i], NULL, client_main, &clients[i]), 0);
	}
	rfh_sleep_ms(3000);
	int64_t failover1 = leader_kill_restart();
	rfh_sleep_ms(3000);
	int64_t failover2 = leader_kill_restart();
	rfh_sleep_ms(3000);
	atomic_store(&stop_load, true);
	long reads = 0, writes = 0, src[3] = {0}, wst[6] = {0};
	for (int i = 0; i < USV_CLIENTS; i++) {
		pthread_join(th[i], NULL);
		PQfinish(clients[i].db);
		reads += clients[i].reads;
		writes += clients[i].writes;
		for (int k = 0; k < 3; k++) {
			src[k] += clients[i].by_source[k];
		}
		for (int k = 0; k < 6; k++) {
			wst[k] += clients[i].write_status[k];
		}
	}
	fflush(log_file);
	fprintf(stderr,
		"users_service e2e: %ld reads (cache %ld, replica %ld, primary %ld), %ld writes "
		"(2xx %ld, 4xx %ld: 404 deleting a deleted user, 409 a contended update; 5xx or "
		"no answer %ld), failovers %" PRId64 " ms and %" PRId64 " ms, %ld violations; "
		"log %s\n",
		reads, src[0], src[1], src[2], writes, wst[2], wst[4], wst[5], failover1, failover2,
		atomic_load(&violations), log_path);
	if (atomic_load(&violations) != 0) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "grep -m 20 VIOLATION '%s' >&2", log_path);
		(void)system(cmd);
	}
	cr_assert_eq(atomic_load(&violations), 0, "reads broke a floor (log: %s)", log_path);
	cr_assert_gt(reads, 100);
	cr_assert_gt(writes, 20);
	cr_assert_eq(wst[5], 0, "writes failed on the server side (log: %s)", log_path);
	cr_assert_gt(src[0], 0, "no read was served by the cache");

	/* The checker can fail: a value older than the row, planted behind the reflector's back,
	 * is reported. The outbox is empty first, so the processed floor is the row's version. */
	int64_t id = shared_ids[0];
	struct client probe = {.n = 99, .db = db};
	int64_t deadline = rfh_now_ms() + WAIT_MS;
	while (processed_floor(db, id) == 0 && rfh_now_ms() < deadline) {
		rfh_sleep_ms(100);
	}
	cr_assert_gt(processed_floor(db, id), 1, "shared user %" PRId64 " was written", id);
	cr_assert(checked_read(&probe, id, true), "a fresh read passes");
	probe.by_source[0] = 0;
	redisContext *rc = redisConnect("127.0.0.1", redis_port);
	cr_assert(rc != NULL && rc->err == 0);
	redisReply *rep = redisCommand(rc,
				       "SET lifeguard:model:quickstart.users:%" PRId64
				       " {\"v\":1,\"row\":{\"id\":%" PRId64
				       ",\"email\":\"old\",\"name\":null,\"version\":1}}",
				       id, id);
	cr_assert(rep != NULL && rep->type == REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	bool passed = checked_read(&probe, id, true);
	rep = redisCommand(rc, "DEL lifeguard:model:quickstart.users:%" PRId64, id);
	freeReplyObject(rep);
	redisFree(rc);
	cr_assert(!passed, "the checker must report the planted old value");
	cr_assert_eq(probe.by_source[0], 1, "the planted value was served from the cache");
	PQfinish(db);
	fclose(log_file);
	log_file = NULL;
	unlink(log_path); /* kept, with its directory, only when the test fails */
	rmdir(logdir);
	RFH_PASS();
}

/* ---- The HTTP server itself: pipelining, bursts, half-closes ------------------------------ */

/* Sends all of req on a new connection, optionally half-closes, and reads until EOF. */
static char *http_raw(const char *req, size_t len, bool half_close, size_t *got_len)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)svc_port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	struct timeval tv = {30, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	size_t sent = 0;
	size_t have = 0;
	while (sent < len) { /* the server may pause reading: keep draining replies meanwhile */
		ssize_t w = send(fd, req + sent, len - sent, MSG_DONTWAIT);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		cr_assert(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "send: %s",
			  strerror(errno));
		ssize_t r = recv(fd, buf + have, cap - 1 - have, 0);
		cr_assert_gt(r, 0, "the server stopped answering during the burst");
		have += (size_t)r;
	}
	if (half_close) {
		shutdown(fd, SHUT_WR);
	}
	ssize_t r;
	while (have < cap - 1 && (r = recv(fd, buf + have, cap - 1 - have, 0)) > 0) {
		have += (size_t)r;
	}
	close(fd);
	buf[have] = '\0';
	*got_len = have;
	return buf;
}

/* The status codes of the replies in buf, in order. */
static size_t statuses(const char *buf, int *out, size_t max)
{
	size_t n = 0;
	for (const char *p = strstr(buf, "HTTP/1.1 "); p != NULL && n < max;
	     p = strstr(p + 9, "HTTP/1.1 ")) {
		out[n++] = atoi(p + 9);
	}
	return n;
}

Test(users_service, pipelined_bursts_and_half_closed_requests_are_all_answered, .timeout = 300)
{
	PGconn *db = env_start();
	struct reply made = http("POST", "/users", NULL, "{\"email\": \"burst@example.com\"}");
	cr_assert_eq(made.status, 201);
	int64_t id = reply_int(&made, "id");
	json_decref(made.body);

	/* 2,000 keep-alive requests in one stream (about 90 KiB: more than the server buffers
	 * while a handler runs), alternating an existing and a missing id, then one that asks
	 * to close. Every one is answered, in order. */
	enum { N = 2000 };
	size_t cap = (size_t)(N + 1) * 128;
	char *req = malloc(cap);
	size_t len = 0;
	for (int i = 0; i < N; i++) {
		len += (size_t)snprintf(req + len, cap - len,
					"GET /users/%" PRId64 " HTTP/1.1\r\nHost: t\r\n\r\n",
					i % 2 == 0 ? id : id + 1000000);
	}
	len += (size_t)snprintf(
	    req + len, cap - len,
	    "GET /users/%" PRId64 " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", id);
	size_t got = 0;
	char *buf = http_raw(req, len, false, &got);
	static int st[N + 8];
	size_t n = statuses(buf, st, N + 8);
	cr_assert_eq(n, (size_t)N + 1, "%zu replies to %d pipelined requests", n, N + 1);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(st[i], i % 2 == 0 || i == N ? 200 : 404, "reply %zu: %d", i, st[i]);
	}
	free(buf);

	/* A client that half-closes right after its request still gets the reply. Whether the
	 * server sees the EOF before or after its handler finished is a race, so 100 rounds, half
	 * of them read from the database (no-cache), which gives the EOF more time to arrive. */
	for (int round = 0; round < 100; round++) {
		len = (size_t)snprintf(req, cap,
				       "GET /users/%" PRId64 " HTTP/1.1\r\nHost: t\r\n%s\r\n", id,
				       round % 2 == 0 ? "Cache-Control: no-cache\r\n" : "");
		buf = http_raw(req, len, true, &got);
		n = statuses(buf, st, 4);
		cr_assert_eq(n, 1, "round %d: half-closed request: %zu replies: %s", round, n, buf);
		cr_assert_eq(st[0], 200);
		cr_assert_not_null(strstr(buf, "burst@example.com"), "the reply's body: %s", buf);
		free(buf);
	}

	/* Three requests at once, then a half-close: three replies, then the close. */
	len = 0;
	for (int i = 0; i < 3; i++) {
		len += (size_t)snprintf(req + len, cap - len,
					"GET /users/%" PRId64 " HTTP/1.1\r\nHost: t\r\n%s\r\n", id,
					i == 0 ? "Cache-Control: no-cache\r\n" : "");
	}
	buf = http_raw(req, len, true, &got);
	n = statuses(buf, st, 8);
	cr_assert_eq(n, 3, "three requests, then a half-close: %zu replies: %s", n, buf);
	free(buf);

	/* Garbage after a good request: the good one is answered, then 400 and close. */
	len = (size_t)snprintf(
	    req, cap, "GET /users/%" PRId64 " HTTP/1.1\r\nHost: t\r\n\r\n\x01\x02 garbage\r\n\r\n",
	    id);
	buf = http_raw(req, len, false, &got);
	n = statuses(buf, st, 4);
	cr_assert_eq(n, 2, "%zu replies: %s", n, buf);
	cr_assert_eq(st[0], 200);
	cr_assert_eq(st[1], 400);
	free(buf);
	free(req);
	PQfinish(db);
}
