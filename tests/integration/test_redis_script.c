/*
 * Lua scripts against real Redis servers: the name comes from SCRIPT LOAD, SCRIPT FLUSH and a
 * restarted server load the script again, many coroutines share one SCRIPT LOAD, one script
 * serves two clients, a script that does not compile reports Redis's error.
 *
 * Every test runs its own redis-server (SCRIPT FLUSH, CONFIG RESETSTAT and restarts must not
 * disturb other tests) and counts the commands it received with INFO commandstats.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libguard/libguard.h>
#include <libguard/redis.h>

#include "lg_test.h"
#include "lg_test_loop.h"

#define ECHO_SCRIPT "return {KEYS[1], ARGV[1]}"

struct private_redis {
	char dir[128];
	int port;
};

/* Servers this test started, copied here (a failed assert leaves the test's stack): the
 * suite's .fini stops them even then. */
static struct private_redis started[2];

static void private_cleanup(void)
{
	for (int i = 0; i < 2; i++) {
		if (started[i].dir[0] != '\0') {
			lg_test_services("redis kill %s", started[i].dir);
			char cmd[512];
			snprintf(cmd, sizeof(cmd), "rm -rf %s", started[i].dir);
			if (system(cmd) != 0) {
				fprintf(stderr, "cannot remove %s\n", started[i].dir);
			}
			started[i].dir[0] = '\0';
		}
	}
}

TestSuite(redis_script, .fini = private_cleanup);

static void private_start(struct private_redis *pr)
{
	snprintf(pr->dir, sizeof(pr->dir), "/tmp/lg-redis-script.XXXXXX");
	cr_assert_not_null(mkdtemp(pr->dir));
	pr->port = lg_test_free_port();
	for (int i = 0; i < 2; i++) {
		if (started[i].dir[0] == '\0') {
			started[i] = *pr;
			break;
		}
	}
	cr_assert_eq(lg_test_services("redis start %s %d", pr->dir, pr->port), 0);
}

static struct lg_redis *connect_port(struct lg_runtime *rt, int port)
{
	struct lg_redis_config cfg = {.host = "127.0.0.1", .port = port};
	struct lg_redis *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &cfg, &r, &err), 0, "connect: %s", err.message);
	return r;
}

/* The number after field ("cmdstat_script|load:calls=") in INFO section; 0 when absent. */
static long long info_count(struct lg_redis *r, const char *section, const char *field)
{
	struct lg_redis_reply *rep;
	struct lg_error err;
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "INFO %s", section), 0, "%s",
		     err.message);
	long long n = 0;
	size_t flen = strlen(field);
	for (const char *p = rep->str; p != NULL; p = strchr(p, '\n'), p = p != NULL ? p + 1 : p) {
		if (strncmp(p, field, flen) == 0) {
			n = atoll(p + flen);
			break;
		}
	}
	lg_redis_reply_free(rep);
	return n;
}

static long long script_loads(struct lg_redis *r)
{
	return info_count(r, "commandstats", "cmdstat_script|load:calls=");
}

/* Commands that ran a script from its source or were refused for an unknown name. */
static void assert_no_eval_and_no_noscript(struct lg_redis *r)
{
	cr_assert_eq(info_count(r, "commandstats", "cmdstat_eval:calls="), 0);
	cr_assert_eq(info_count(r, "errorstats", "errorstat_NOSCRIPT:count="), 0);
}

static int eval_echo(struct lg_redis *r, struct lg_redis_script *s, const char *arg,
		     struct lg_error *err)
{
	const char *keys[] = {"k"};
	const char *args[] = {arg};
	struct lg_redis_reply *rep;
	int rc = lg_redis_eval(r, s, 1, keys, NULL, 1, args, NULL, NULL, &rep, err);
	if (rc == 0) {
		bool ok = rep->type == LG_REDIS_ARRAY && rep->elements == 2 &&
			  strcmp(rep->element[1].str, arg) == 0;
		lg_redis_reply_free(rep);
		rc = ok ? 0 : LG_EPROTO;
	}
	return rc;
}

static void eval_expect(struct lg_redis *r, struct lg_redis_script *s, const char *arg)
{
	struct lg_error err;
	cr_assert_eq(eval_echo(r, s, arg, &err), 0, "%s", err.message);
}

Test(redis_script, name_is_what_script_load_answers)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pr;
	private_start(&pr);
	struct lg_redis *r = connect_port(rt, pr.port);
	struct lg_redis_script s;
	struct lg_error err;
	cr_assert_eq(lg_redis_script_init(&s, ECHO_SCRIPT, &err), 0, "%s", err.message);
	cr_assert_str_eq(s.name, "", "named before any server was asked");

	eval_expect(r, &s, "first");
	cr_assert_eq(script_loads(r), 1);
	struct lg_redis_reply *rep;
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "SCRIPT EXISTS %s", s.name), 0);
	cr_assert_eq(rep->element[0].integer, 1, "Redis does not know %s", s.name);
	lg_redis_reply_free(rep);
	cr_assert_eq(lg_redis_command(r, NULL, &rep, &err, "SCRIPT LOAD %s", ECHO_SCRIPT), 0);
	cr_assert_str_eq(rep->str, s.name);
	lg_redis_reply_free(rep);

	/* Loaded on this connection: later calls send EVALSHA alone. */
	eval_expect(r, &s, "second");
	eval_expect(r, &s, "third");
	cr_assert_eq(script_loads(r), 2); /* ours and the test's own SCRIPT LOAD */
	cr_assert_eq(info_count(r, "commandstats", "cmdstat_evalsha:calls="), 3);
	assert_no_eval_and_no_noscript(r);
	lg_redis_free(r);
	runtime_free_checked(rt);
}

Test(redis_script, script_flush_loads_again_and_retries_once)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pr;
	private_start(&pr);
	struct lg_redis *r = connect_port(rt, pr.port);
	struct lg_redis_script s;
	cr_assert_eq(lg_redis_script_init(&s, ECHO_SCRIPT, NULL), 0);
	eval_expect(r, &s, "before");
	struct lg_error err;
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "SCRIPT FLUSH"), 0, "%s", err.message);
	eval_expect(r, &s, "after");
	cr_assert_eq(script_loads(r), 2);
	cr_assert_eq(info_count(r, "errorstats", "errorstat_NOSCRIPT:count="), 1);
	cr_assert_eq(info_count(r, "commandstats", "cmdstat_eval:calls="), 0);
	eval_expect(r, &s, "again");
	cr_assert_eq(script_loads(r), 2);

	/* A runtime error of the script is Redis's answer: not retried, not reloaded. */
	struct lg_redis_script bad;
	cr_assert_eq(lg_redis_script_init(&bad, "return redis.call('INCR', KEYS[1], 'x')", &err),
		     0);
	const char *keys[] = {"k"};
	cr_assert_eq(lg_redis_eval(r, &bad, 1, keys, NULL, 0, NULL, NULL, NULL, NULL, &err),
		     LG_ESERVER);
	cr_assert_not_null(strstr(err.message, "rong number of args"), "%s", err.message);
	cr_assert_eq(script_loads(r), 3);
	lg_redis_free(r);
	runtime_free_checked(rt);
}

Test(redis_script, restarted_server_gets_the_script_on_reconnect)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pr;
	private_start(&pr);
	struct lg_redis *r = connect_port(rt, pr.port);
	struct lg_redis_script s;
	cr_assert_eq(lg_redis_script_init(&s, ECHO_SCRIPT, NULL), 0);
	eval_expect(r, &s, "before");

	cr_assert_eq(lg_test_services("redis stop %s", pr.dir), 0);
	struct lg_error err;
	int rc = lg_redis_command(r, NULL, NULL, &err, "PING"); /* the client notices the loss */
	cr_assert(rc == LG_ECONNLOST || rc == LG_ECONNECT, "rc %d: %s", rc, err.message);
	cr_assert_eq(lg_test_services("redis start %s", pr.dir), 0);

	/* The new server has an empty script cache and fresh statistics. */
	eval_expect(r, &s, "after");
	cr_assert_eq(script_loads(r), 1);
	assert_no_eval_and_no_noscript(r);
	lg_redis_free(r);
	runtime_free_checked(rt);
}

#define CONCURRENT 1000

struct worker {
	struct lg_redis *r;
	struct lg_redis_script *s;
	char arg[16];
	int rc;
	struct lg_error err;
};

static void worker_run(void *arg)
{
	struct worker *w = arg;
	w->rc = eval_echo(w->r, w->s, w->arg, &w->err);
}

/* Runs one eval per worker, all started in the same loop turn; returns how many failed. */
static int run_workers(struct lg_runtime *rt, struct worker *w, int n)
{
	for (int i = 0; i < n; i++) {
		w[i].rc = -1;
		snprintf(w[i].arg, sizeof(w[i].arg), "w%d", i);
		cr_assert_eq(lg_coro_spawn(rt, worker_run, &w[i], NULL), 0);
	}
	cr_assert_eq(lg_runtime_run(rt), 0);
	int failed = 0;
	for (int i = 0; i < n; i++) {
		failed += w[i].rc != 0;
	}
	return failed;
}

Test(redis_script, concurrent_callers_share_one_script_load)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pr;
	private_start(&pr);
	struct lg_redis *r = connect_port(rt, pr.port);
	struct lg_redis_script s;
	cr_assert_eq(lg_redis_script_init(&s, ECHO_SCRIPT, NULL), 0);
	struct worker *w = calloc(CONCURRENT, sizeof(*w));
	for (int i = 0; i < CONCURRENT; i++) {
		w[i] = (struct worker){.r = r, .s = &s};
	}
	int failed = run_workers(rt, w, CONCURRENT);
	cr_assert_eq(failed, 0, "%d failed, e.g. %s", failed, w[0].err.message);
	cr_assert_eq(script_loads(r), 1);

	/* Every EVALSHA in flight is answered NOSCRIPT: one of them loads again, the others
	 * follow that load. */
	struct lg_error err;
	cr_assert_eq(lg_redis_command(r, NULL, NULL, &err, "SCRIPT FLUSH"), 0, "%s", err.message);
	failed = run_workers(rt, w, CONCURRENT);
	cr_assert_eq(failed, 0, "%d failed, e.g. %s", failed, w[0].err.message);
	cr_assert_eq(script_loads(r), 2);
	cr_assert_eq(info_count(r, "commandstats", "cmdstat_eval:calls="), 0);
	free(w);
	lg_redis_free(r);
	runtime_free_checked(rt);
}

Test(redis_script, one_script_serves_two_clients_of_two_servers)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pa, pb;
	private_start(&pa);
	private_start(&pb);
	struct lg_redis *ra = connect_port(rt, pa.port);
	struct lg_redis *rb = connect_port(rt, pb.port);
	struct lg_redis_script s;
	cr_assert_eq(lg_redis_script_init(&s, ECHO_SCRIPT, NULL), 0);
	for (int i = 0; i < 5; i++) {
		eval_expect(ra, &s, "a");
		eval_expect(rb, &s, "b");
	}
	/* Both clients at once, half of the coroutines each. */
	struct worker *w = calloc(CONCURRENT, sizeof(*w));
	for (int i = 0; i < CONCURRENT; i++) {
		w[i] = (struct worker){.r = i % 2 == 0 ? ra : rb, .s = &s};
	}
	int failed = run_workers(rt, w, CONCURRENT);
	cr_assert_eq(failed, 0, "%d failed, e.g. %s", failed, w[0].err.message);
	free(w);
	/* Each server was sent the script once, and never an EVALSHA it did not know. */
	cr_assert_eq(script_loads(ra), 1);
	cr_assert_eq(script_loads(rb), 1);
	assert_no_eval_and_no_noscript(ra);
	assert_no_eval_and_no_noscript(rb);
	lg_redis_free(ra);
	lg_redis_free(rb);
	runtime_free_checked(rt);
}

Test(redis_script, script_that_does_not_compile_reports_redis_error)
{
	struct lg_runtime *rt = runtime_on_own_loop();
	struct private_redis pr;
	private_start(&pr);
	struct lg_redis *r = connect_port(rt, pr.port);
	struct lg_redis_script bad;
	struct lg_error err;
	cr_assert_eq(lg_redis_script_init(&bad, "return (", &err), 0);
	cr_assert_eq(eval_echo(r, &bad, "x", &err), LG_ESERVER);
	cr_assert_not_null(strstr(err.message, "Error compiling script"), "%s", err.message);
	cr_assert_str_eq(bad.name, "");
	cr_assert_eq(script_loads(r), 1);

	/* Callers that wait for the same load get its error too, without loading again. */
	struct worker *w = calloc(CONCURRENT, sizeof(*w));
	for (int i = 0; i < CONCURRENT; i++) {
		w[i] = (struct worker){.r = r, .s = &bad};
	}
	cr_assert_eq(run_workers(rt, w, CONCURRENT), CONCURRENT);
	for (int i = 0; i < CONCURRENT; i++) {
		cr_assert_eq(w[i].rc, LG_ESERVER, "worker %d: rc %d", i, w[i].rc);
		cr_assert_not_null(strstr(w[i].err.message, "Error compiling script"), "%s",
				   w[i].err.message);
	}
	free(w);
	cr_assert_eq(script_loads(r), 2);
	cr_assert_eq(info_count(r, "commandstats", "cmdstat_evalsha:calls="), 0);

	/* Missing pieces are refused up front, not later in lg_redis_eval. */
	cr_assert_eq(lg_redis_script_init(&bad, NULL, &err), LG_EINVAL);
	cr_assert_not_null(strstr(err.message, "source"), "%s", err.message);
	cr_assert_eq(lg_redis_script_init(NULL, "return 1", NULL), LG_EINVAL);
	lg_redis_free(r);
	runtime_free_checked(rt);
}
