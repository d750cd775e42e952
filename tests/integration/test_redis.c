/*
 * The Redis client against real servers: binary-safe commands, many coroutines over one
 * pipelined client, connect failures (refused, deadline, AUTH), command deadlines, a server
 * killed mid-command and restarted, close with commands in flight. Every test leaves its loop
 * empty. Scripts (SCRIPT LOAD, EVALSHA) are tested in test_redis_script.c.
 *
 * The shared Redis ($LG_TEST_REDIS_PORT) is only read and written under keys unique to the
 * test process; tests that kill or reconfigure a server start a private one.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>
#include <libguard/redis.h>

#include "lg_test.h"
#include "lg_test_loop.h"

static int shared_port(void)
{
	const char *p = getenv("LG_TEST_REDIS_PORT");
	cr_assert_not_null(p, "LG_TEST_REDIS_PORT is not set (scripts/services up)");
	return atoi(p);
}

static struct lg_redis *connect_port(struct lg_runtime *rt, int port)
{
	struct lg_redis_config cfg = {
	    .host = "127.0.0.1", .port = port, .connect_timeout_ms = 10000};
	struct lg_redis *r = NULL;
	struct lg_error err;
	int rc = lg_redis_new(rt, &cfg, &r, &err);
	cr_assert_eq(rc, 0, "connect: %s", err.message);
	return r;
}

/* A private redis-server on a free port in a fresh dir; extra is appended to its flags. */
struct private_redis {
	char dir[128];
	int port;
};

/* Servers this test started, copied here (a failed assert leaves the test's stack): the
 * suite's .fini stops them even then. */
static struct private_redis started[4];

static void private_kill_dir(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "if [ -f %s/redis.pid ]; then kill -9 $(cat %s/redis.pid) 2>/dev/null; fi; "
		 "sleep 0.1; rm -rf %s",
		 dir, dir, dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot remove %s\n", dir);
	}
}

static void private_cleanup(void)
{
	for (int i = 0; i < 4; i++) {
		if (started[i].dir[0] != '\0') {
			private_kill_dir(started[i].dir);
			started[i].dir[0] = '\0';
		}
	}
}

TestSuite(redis, .fini = private_cleanup);

static void private_start(struct private_redis *pr, const char *extra)
{
	snprintf(pr->dir, sizeof(pr->dir), "/tmp/lg-redis-test.XXXXXX");
	cr_assert_not_null(mkdtemp(pr->dir));
	pr->port = lg_test_free_port();
	for (int i = 0; i < 4; i++) {
		if (started[i].dir[0] == '\0') {
			started[i] = *pr;
			break;
		}
	}
	if (extra == NULL) {
		cr_assert_eq(lg_test_services("redis start %s %d", pr->dir, pr->port), 0);
		return;
	}
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "cd / && redis-server --port %d --bind 127.0.0.1 --dir %s --daemonize yes "
		 "--pidfile %s/redis.pid --logfile %s/redis.log --save '' --appendonly no %s && "
		 "for i in $(seq 100); do redis-cli -p %d %s ping 2>/dev/null | grep -q -e PONG "
		 "-e NOAUTH && exit 0; sleep 0.1; done; exit 1",
		 pr->port, pr->dir, pr->dir, pr->dir, extra, pr->port,
		 strstr(extra, "requirepass") != NULL ? "--no-auth-warning" : "");
	cr_assert_eq(system(cmd), 0, "cannot start redis: %s", cmd);
}

static void private_stop(struct private_redis *pr)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(started[i].dir, pr->dir) == 0) {
			started[i].dir[0] = '\0';
		}
	}
	private_kill_dir(pr->dir);
}

static char key_prefix[64];

static const char *key(const char *name)
{
	static char buf[8][128];
	static int next;
	char *k = buf[next++ % 8];
	if (key_prefix[0] == '\0') {
		snprintf(key_prefix, sizeof(key_prefix), "lgtest:%d:%llu", (int)getpid(),
			 (unsigned long long)lg_now_ms());
	}
	snprintf(k, 128, "%s:%s", key_prefix, name);
	return k;
}

Test(redis, set_get_binary_values_with_zero_bytes)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_redis *r = connect_port(rt, shared_port());
	struct lg_error err;
	const char value[] = {'a', '\0', 'b', '\0', '\0', 'c', (char)0xff};
	const char *k = key("bin");
	const char *argv[] = {"SET", k, value};
	size_t lens[] = {3, strlen(k), sizeof(value)};
	struct lg_redis_reply *rep;
	cr_assert_eq(lg_redis_commandv(r, NULL, 3, argv, lens, &rep, &err), 0, "%s", err.message);
	cr_assert_eq(rep->type, LG_REDIS_STATUS);
	cr_assert_str_eq(rep->str, "OK");
	lg_redis_reply_free(rep);

	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "GET %b", k, strlen(k)), 0, "%s",
		     err.message);
	cr_assert_eq(rep->type, LG_REDIS_STRING);
	cr_assert_eq(rep->len, sizeof(value));
	cr_assert_eq(memcmp(rep->str, value, sizeof(value)), 0);
	lg_redis_reply_free(rep);

	/* A binary key through %b, an array reply, a nil and a server error. */
	const char bkey[] = {'k', '\0', 'x'};
	cr_assert_eq(
	    lg_redis_command(r, NULL, NULL, &err, "SET %b%b v2", k, strlen(k), bkey, sizeof(bkey)),
	    0, "%s", err.message);
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "MGET %s %b%b %s:missing", k, k,
				      strlen(k), bkey, sizeof(bkey), k),
		     0, "%s", err.message);
	cr_assert_eq(rep->type, LG_REDIS_ARRAY);
	cr_assert_eq(rep->elements, 3);
	cr_assert_eq(rep->element[0].len, sizeof(value));
	cr_assert_str_eq(rep->element[1].str, "v2");
	cr_assert_eq(rep->element[2].type, LG_REDIS_NIL);
	lg_redis_reply_free(rep);
	rep = (struct lg_redis_reply *)1;
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "INCR %s", k), LG_ESERVER);
	cr_assert_null(rep);
	cr_assert_not_null(strstr(err.message, "not an integer"), "%s", err.message);
	/* Commands that would break one reply per command are refused up front. */
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "subscribe ch"), LG_EINVAL);
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "CLIENT REPLY OFF"), LG_EINVAL);
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "MONITOR"), LG_EINVAL);
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "CLIENT GETNAME"), 0, "%s", err.message);
	lg_redis_reply_free(rep);
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "DEL %s %b%b", k, k, strlen(k), bkey,
				      sizeof(bkey)),
		     0);
	lg_redis_free(r);
	runtime_free_checked(rt);
}

#define MANY 10000

struct many_ctx {
	struct lg_redis *r;
	int index;
	long long incr_seen;
	int failures;
	char msg[256];
};

static void many_worker(void *arg)
{
	struct many_ctx *c = arg;
	struct lg_error err;
	struct lg_redis_reply *rep;
	char own[32];
	snprintf(own, sizeof(own), "%d", c->index);
	if (lg_redis_command(c->r, NULL, &rep, &err, "INCR %s", key("counter")) != 0 ||
	    rep->type != LG_REDIS_INTEGER) {
		c->failures++;
		snprintf(c->msg, sizeof(c->msg), "INCR: %.200s", err.message);
		return;
	}
	c->incr_seen = rep->integer;
	lg_redis_reply_free(rep);
	/* Each coroutine writes and reads back its own value: a misrouted reply shows. */
	char k[128];
	snprintf(k, sizeof(k), "%s:%d", key("own"), c->index);
	if (lg_redis_command(c->r, NULL, NULL, &err, "SET %s %s EX 60", k, own) != 0 ||
	    lg_redis_command(c->r, NULL, &rep, &err, "GET %s", k) != 0) {
		c->failures++;
		snprintf(c->msg, sizeof(c->msg), "SET/GET: %.200s", err.message);
		return;
	}
	if (rep->type != LG_REDIS_STRING || strcmp(rep->str, own) != 0) {
		c->failures++;
		snprintf(c->msg, sizeof(c->msg), "coroutine %d got %s", c->index,
			 rep->str != NULL ? rep->str : "(not a string)");
	}
	lg_redis_reply_free(rep);
}

Test(redis, ten_thousand_coroutines_share_one_client)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_redis *r = connect_port(rt, shared_port());
	struct many_ctx *ctx = calloc(MANY, sizeof(*ctx));
	for (int i = 0; i < MANY; i++) {
		ctx[i].r = r;
		ctx[i].index = i;
		cr_assert_eq(lg_coro_spawn(rt, many_worker, &ctx[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	char *seen = calloc(MANY + 1, 1);
	for (int i = 0; i < MANY; i++) {
		cr_assert_eq(ctx[i].failures, 0, "%s", ctx[i].msg);
		cr_assert(ctx[i].incr_seen >= 1 && ctx[i].incr_seen <= MANY, "INCR gave %lld",
			  ctx[i].incr_seen);
		cr_assert_eq(seen[ctx[i].incr_seen], 0, "INCR value %lld seen twice",
			     ctx[i].incr_seen);
		seen[ctx[i].incr_seen] = 1;
	}
	free(seen);
	free(ctx);
	struct lg_error err;
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "DEL %s", key("counter")), 0);
	lg_redis_free(r);
	runtime_free_checked(rt);
}

static void eval_expect(struct lg_redis *r, struct lg_redis_script *s, const char *arg)
{
	const char *keys[] = {key("evalkey")};
	const char *args[] = {arg};
	struct lg_redis_reply *rep;
	struct lg_error err;
	cr_assert_eq(lg_redis_eval(r, s, 1, keys, NULL, 1, args, NULL, NULL, &rep, &err), 0, "%s",
		     err.message);
	cr_assert_eq(rep->type, LG_REDIS_ARRAY);
	cr_assert_eq(rep->elements, 2);
	cr_assert_str_eq(rep->element[0].str, keys[0]);
	cr_assert_str_eq(rep->element[1].str, arg);
	lg_redis_reply_free(rep);
}

Test(redis, refused_port_and_bad_host_give_clear_errors)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_redis_config cfg = {.host = "127.0.0.1", .port = lg_test_free_port()};
	struct lg_redis *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), LG_ECONNECT, "%s", err.message);
	cr_assert_null(r);
	cr_assert_not_null(strstr(err.message, "refused"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "127.0.0.1"), "%s", err.message);

	cfg.host = "localhost";
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "IP literal"), "%s", err.message);
	runtime_free_checked(rt);
}

Test(redis, connect_deadline_on_a_silent_server)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	int port;
	int fd = lg_test_blackhole_listen(&port);
	cr_assert_geq(fd, 0);
	struct lg_redis_config cfg = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 200};
	struct lg_redis *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), LG_ETIMEDOUT, "%s", err.message);
	cr_assert_not_null(strstr(err.message, "200 ms"), "%s", err.message);
	runtime_free_checked(rt);
	close(fd);
}

Test(redis, blpop_deadline_then_client_still_works)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_redis *r = connect_port(rt, shared_port());
	struct lg_redis_reply *rep;
	struct lg_error err;
	/* Redis keeps the connection blocked for 1 s; we stop waiting much earlier. */
	cr_assert_eq(lg_redis_command(r, &(struct lg_redis_opts){lg_deadline_in(50)}, &rep, &err,
				      "BLPOP %s 1", key("emptylist")),
		     LG_ETIMEDOUT);
	cr_assert_not_null(strstr(err.message, "deadline"), "%s", err.message);
	/* Queued behind the BLPOP: its late nil reply is discarded, ours comes next. */
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "SET %s after", key("after")), 0, "%s",
		     err.message);
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "GET %s", key("after")), 0, "%s",
		     err.message);
	cr_assert_str_eq(rep->str, "after");
	lg_redis_reply_free(rep);
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "DEL %s", key("after")), 0);
	lg_redis_free(r);
	runtime_free_checked(rt);
}

#define KILL_QUEUED 20

struct kill_ctx {
	struct lg_redis *r;
	struct private_redis *pr;
	int rc;
	struct lg_error err;
	int queued_rc[KILL_QUEUED];
	int queued_done;
};

static void kill_blpop(void *arg)
{
	struct kill_ctx *c = arg;
	c->rc = lg_redis_command(c->r, &(struct lg_redis_opts){LG_DEADLINE_NONE}, NULL, &c->err,
				 "BLPOP %s 0", key("never"));
}

/* Queued behind the blocked BLPOP: in flight when the server dies. */
static void kill_queued(void *arg)
{
	struct kill_ctx *c = arg;
	int i = c->queued_done++;
	struct lg_error err;
	c->queued_rc[i] = lg_redis_command(c->r, &(struct lg_redis_opts){LG_DEADLINE_NONE}, NULL,
					   &err, "INCR %s", key("queued"));
}

static void kill_killer(void *arg)
{
	struct kill_ctx *c = arg;
	/* Let the BLPOP be written and reach the server first. */
	for (int i = 0; i < 20; i++) {
		lg_sleep(5);
	}
	lg_test_services("redis kill %s", c->pr->dir);
}

Test(redis, server_killed_mid_command_then_restart_and_reconnect)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pr;
	private_start(&pr, NULL);
	struct lg_redis *r = connect_port(rt, pr.port);
	struct lg_redis_script s;
	cr_assert_eq(lg_redis_script_init(&s, "return {KEYS[1], ARGV[1]}", NULL), 0);
	eval_expect(r, &s, "before"); /* loaded on the server that is about to die */

	struct kill_ctx c = {.r = r, .pr = &pr, .rc = -1};
	cr_assert_eq(lg_coro_spawn(rt, kill_blpop, &c, NULL), 0);
	for (int i = 0; i < KILL_QUEUED; i++) {
		cr_assert_eq(lg_coro_spawn(rt, kill_queued, &c, NULL), 0);
	}
	cr_assert_eq(lg_coro_spawn(rt, kill_killer, &c, NULL), 0);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_assert_eq(c.rc, LG_ECONNLOST, "rc %d: %s", c.rc, c.err.message);
	cr_assert_not_null(strstr(c.err.message, "connection lost"), "%s", c.err.message);
	for (int i = 0; i < KILL_QUEUED; i++) {
		cr_assert_eq(c.queued_rc[i], LG_ECONNLOST, "queued %d: rc %d", i, c.queued_rc[i]);
	}

	/* While the server is down, a command tries to reconnect and says why it cannot. */
	struct lg_error err;
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "PING"), LG_ECONNECT, "%s", err.message);
	cr_assert_not_null(strstr(err.message, "refused"), "%s", err.message);
	/* The breaker is open: the next command fails at once, without an attempt of its own. */
	struct lg_redis_stats st;
	lg_redis_get_stats(r, &st);
	cr_assert_eq(st.breaker, LG_REDIS_BREAKER_OPEN);
	uint64_t attempts = st.connect_attempts;
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "PING"), LG_ECONNECT, "%s", err.message);
	cr_assert_not_null(strstr(err.message, "unavailable"), "%s", err.message);
	lg_redis_get_stats(r, &st);
	cr_assert_eq(st.connect_attempts, attempts);

	cr_assert_eq(lg_test_services("redis start %s", pr.dir), 0);
	lg_redis_get_stats(r, &st);
	usleep((useconds_t)(st.retry_in_ms + 1) * 1000); /* the backoff passes */
	struct lg_redis_reply *rep;
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "PING"), 0, "%s", err.message);
	cr_assert_str_eq(rep->str, "PONG");
	lg_redis_reply_free(rep);
	eval_expect(r, &s, "after"); /* loaded again on the new connection */
	/* A fresh client connects too. */
	struct lg_redis *r2 = connect_port(rt, pr.port);
	lg_redis_free(r2);
	lg_redis_free(r);
	runtime_free_checked(rt);
	private_stop(&pr);
}

Test(redis, auth_failure_message_and_auth_with_select)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pr;
	private_start(&pr, "--requirepass s3cret");
	struct lg_redis_config cfg = {.host = "127.0.0.1", .port = pr.port, .password = "wrong"};
	struct lg_redis *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), LG_ECONNECT, "%s", err.message);
	cr_assert_null(r);
	cr_assert_not_null(strstr(err.message, "AUTH failed"), "%s", err.message);
	cr_assert(strstr(err.message, "WRONGPASS") != NULL ||
		      strstr(err.message, "invalid password") != NULL,
		  "%s", err.message);

	/* Without a password the handshake's PING is refused: the connect says so. */
	cfg.password = NULL;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), LG_ECONNECT, "%s", err.message);
	cr_assert_not_null(strstr(err.message, "NOAUTH"), "%s", err.message);

	cfg.password = "s3cret";
	cfg.db = 3;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), 0, "%s", err.message);
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "SET indb3 yes"), 0, "%s", err.message);
	cfg.db = 0;
	struct lg_redis *r0;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r0, &err), 0, "%s", err.message);
	struct lg_redis_reply *rep;
	cr_assert_eq(lg_redis_command(r0, NULL, &rep, &err, "EXISTS indb3"), 0, "%s", err.message);
	cr_assert_eq(rep->integer, 0, "SELECT was not applied");
	lg_redis_reply_free(rep);
	lg_redis_free(r0);
	lg_redis_free(r);

	cfg.db = 99; /* out of range: SELECT fails the connect */
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), LG_ECONNECT, "%s", err.message);
	cr_assert_not_null(strstr(err.message, "SELECT failed"), "%s", err.message);
	runtime_free_checked(rt);
	private_stop(&pr);
}

#define INFLIGHT 50

struct close_ctx {
	struct lg_redis *r;
	int rc[INFLIGHT];
	int done;
};

struct close_worker {
	struct close_ctx *c;
	int i;
};

static void close_worker(void *arg)
{
	struct close_worker *w = arg;
	struct lg_error err;
	/* The first blocks the connection server-side, the rest queue behind it. */
	if (w->i == 0) {
		w->c->rc[0] = lg_redis_command(w->c->r, &(struct lg_redis_opts){LG_DEADLINE_NONE},
					       NULL, &err, "BLPOP %s 0", key("closelist"));
	} else {
		w->c->rc[w->i] = lg_redis_command(
		    w->c->r, &(struct lg_redis_opts){LG_DEADLINE_NONE}, NULL, &err, "PING");
	}
	w->c->done++;
}

static void close_closer(void *arg)
{
	struct close_ctx *c = arg;
	for (int i = 0; i < 20; i++) {
		lg_sleep(5);
	}
	lg_redis_free(c->r);
}

Test(redis, close_with_commands_in_flight_cancels_them)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct close_ctx c = {.r = connect_port(rt, shared_port())};
	struct close_worker w[INFLIGHT];
	for (int i = 0; i < INFLIGHT; i++) {
		c.rc[i] = -1;
		w[i] = (struct close_worker){&c, i};
		cr_assert_eq(lg_coro_spawn(rt, close_worker, &w[i], NULL), 0);
	}
	cr_assert_eq(lg_coro_spawn(rt, close_closer, &c, NULL), 0);
	cr_assert_eq(lg_runtime_run(rt), 0);
	cr_assert_eq(c.done, INFLIGHT);
	for (int i = 0; i < INFLIGHT; i++) {
		cr_assert_eq(c.rc[i], LG_ECANCELED, "command %d: rc %d", i, c.rc[i]);
	}
	runtime_free_checked(rt);
}

Test(redis, runtime_free_closes_an_open_client)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_redis *r = connect_port(rt, shared_port());
	struct lg_error err;
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "PING"), 0, "%s", err.message);
	runtime_free_checked(rt); /* the runtime closes r */
}

struct cancel_ctx {
	struct lg_redis *r;
	struct lg_coro *victim;
	int rc;
};

static void cancel_victim(void *arg)
{
	struct cancel_ctx *c = arg;
	struct lg_error err;
	c->rc = lg_redis_command(c->r, &(struct lg_redis_opts){LG_DEADLINE_NONE}, NULL, &err,
				 "BLPOP %s 1", key("cancellist"));
}

static void cancel_canceller(void *arg)
{
	struct cancel_ctx *c = arg;
	lg_sleep(20); /* the BLPOP is sent by now, or still waiting: both must cancel */
	lg_coro_cancel(c->victim);
}

Test(redis, default_command_timeout_and_cancellation)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct lg_redis_config cfg = {
	    .host = "127.0.0.1", .port = shared_port(), .command_timeout_ms = 50};
	struct lg_redis *r;
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), 0, "%s", err.message);
	/* deadline 0: the client's default applies. */
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "BLPOP %s 1", key("deflist")),
		     LG_ETIMEDOUT);

	/* A canceled coroutine leaves its command at once; the late reply is dropped. */
	struct cancel_ctx c = {.r = r, .rc = -1};
	cr_assert_eq(lg_coro_spawn(rt, cancel_victim, &c, &c.victim), 0);
	cr_assert_eq(lg_coro_spawn(rt, cancel_canceller, &c, NULL), 0);
	cr_assert_eq(lg_coro_join(c.victim, LG_DEADLINE_NONE), 0);
	cr_assert_eq(c.rc, LG_ECANCELED, "rc %d", c.rc);
	cr_assert_eq(lg_runtime_run(rt), 0);

	struct lg_redis_reply *rep;
	cr_assert_eq(lg_redis_command(r, &(struct lg_redis_opts){LG_DEADLINE_NONE}, &rep, &err,
				      "ECHO %s", "still here"),
		     0, "%s", err.message);
	cr_assert_str_eq(rep->str, "still here");
	lg_redis_reply_free(rep);
	lg_redis_free(r);
	runtime_free_checked(rt);
}
