/*
 * Secure defaults of lifeguard-reflector, against real processes: open admin endpoints on a
 * network address are refused, the postgres and redis settings are checked at start without
 * their secrets showing up anywhere, and slow HTTP clients can neither keep a connection past
 * the request deadline nor lock a well-behaved client out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rf_harness.h"

#define WAIT_MS   30000
#define MAX_CONNS 256 /* RF_HTTP_MAX_CONNECTIONS */

static void teardown(void)
{
	rfh_cleanup();
}

TestSuite(secure, .fini = teardown, .timeout = 240);

/* Starts node 0 of a one-node cluster with extra config and flags; expects it to exit with
 * status 2 and returns its log (Owned). */
static char *start_expect_exit_2(struct rfh_cluster *c, json_t *extra, const char *const *argv)
{
	rfh_cluster_init(c, 1, 1, extra);
	rfh_start(c, 0, argv, NULL);
	int status = rfh_wait_exit(c, 0, WAIT_MS);
	char *log = rfh_read_file(c->nodes[0].log);
	cr_assert_not_null(log);
	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 2,
		  "status %d, log: %s", status, log);
	cr_assert(strstr(log, "\"event\":\"config.invalid\"") != NULL, "%s", log);
	return log;
}

Test(secure, http_on_a_network_address_needs_an_admin_token)
{
	static struct rfh_cluster c, ok; /* static: .fini reads them after a failed assert */
	char http[40];
	rfh_cluster_init(&c, 1, 1, NULL);
	snprintf(http, sizeof(http), "0.0.0.0:%s", strchr(c.nodes[0].http, ':') + 1);
	const char *argv[] = {"--http", http, NULL};
	char *log = start_expect_exit_2(&c, NULL, argv);
	cr_assert(strstr(log, "admin_token") != NULL, "%s", log);
	free(log);

	/* With a token the same address serves. */
	json_t *extra = json_pack("{s:s}", "admin_token", "a-token");
	rfh_cluster_init(&ok, 1, 1, extra);
	json_decref(extra);
	snprintf(http, sizeof(http), "0.0.0.0:%s", strchr(ok.nodes[0].http, ':') + 1);
	rfh_start(&ok, 0, argv, NULL);
	cr_assert_eq(rfh_wait_agreed_leader(&ok, 1, WAIT_MS, NULL), 0);
	rfh_signal(&ok, 0, SIGTERM);
	int status = rfh_wait_exit(&ok, 0, WAIT_MS);
	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	RFH_PASS();
}

Test(secure, bad_postgres_or_redis_settings_exit_2_without_their_secrets)
{
	static struct rfh_cluster c; /* one case at a time; each case's log is in its messages */
	static const struct {
		const char *postgres; /* NULL: redis_host is the bad value */
		const char *redis_host;
		const char *key;
		const char *secret;
	} cases[] = {
	    /* libpq quotes the bad escape, i.e. the password, in its message. */
	    {"postgresql://lg:Uri-Pct-S3cret%zz@127.0.0.1:5432/app", "127.0.0.1", "postgres",
	     "Uri-Pct-S3cret"},
	    /* ... and the word after which it missed "=". */
	    {"host=127.0.0.1 password=Kw Kw-Sp-S3cret", "127.0.0.1", "postgres", "Kw-Sp-S3cret"},
	    {"postgresql://lg:Uri-V6-S3cret@[::1/app", "127.0.0.1", "postgres", "Uri-V6-S3cret"},
	    {"host=127.0.0.1 passwrd=Typo-S3cret", "127.0.0.1", "postgres", "Typo-S3cret"},
	    {"host=127.0.0.1 password='Quo-S3cret", "127.0.0.1", "postgres", "Quo-S3cret"},
	    {NULL, "redis.internal", "redis.host", "Rd-Host-S3cret"},
	    {NULL, "10.0.0.1 6379", "redis.host", "Rd-Host-S3cret"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *extra = json_pack("{s:s, s:{s:s, s:i, s:s}}", "postgres",
					  cases[i].postgres != NULL ? cases[i].postgres
								    : "host=127.0.0.1 dbname=app",
					  "redis", "host", cases[i].redis_host, "port", 6379,
					  "password", "Rd-Host-S3cret");
		char *log = start_expect_exit_2(&c, extra, NULL);
		json_decref(extra);
		char want[40];
		snprintf(want, sizeof(want), "config: %s:", cases[i].key);
		cr_assert(strstr(log, want) != NULL, "case %zu: %s", i, log);
		cr_assert(strstr(log, cases[i].secret) == NULL, "case %zu leaked: %s", i, log);
		free(log);
		RFH_PASS(); /* this case passed: clean up quietly */
		rfh_cleanup();
	}
}

/* True when s holds needle. */
static bool contains(const char *s, const char *needle)
{
	return s != NULL && strstr(s, needle) != NULL;
}

Test(secure, postgres_passwords_in_every_spelling_stay_out_of_logs_and_status)
{
	static struct rfh_cluster c; /* one case at a time; assertions carry the log */
	/* Valid conninfos whose servers do not answer: the leader's coherence pipeline keeps
	 * trying and logging connect failures. Each spelling of the password is a secret: the
	 * decoded one (Pw-Dec-S3cret%) and the escaped one as written. */
	static const char *const conninfos[] = {
	    "postgresql://lg:Pw-Dec-S3cret%25@127.0.0.1:1/app?connect_timeout=1",
	    "host=127.0.0.1 port=1 user=lg password='Pw Quoted-S3cret' connect_timeout=1",
	};
	static const char *const secrets[][2] = {
	    {"Pw-Dec-S3cret", "S3cret%"},
	    {"Quoted-S3cret", "Pw Quoted"},
	};
	for (size_t i = 0; i < 2; i++) {
		json_t *extra = json_pack("{s:s, s:{s:s, s:i}, s:s, s:s}", "postgres", conninfos[i],
					  "redis", "host", "127.0.0.1", "port", 1, "log_level",
					  "debug", "admin_token", "Adm-S3cret");
		rfh_cluster_init(&c, 1, 1, extra);
		json_decref(extra);
		rfh_start_all(&c, 1);
		cr_assert_eq(rfh_wait_agreed_leader(&c, 1, WAIT_MS, NULL), 0);
		char *log = NULL;
		/* Wait (bounded) for the pipeline to have logged a failed attempt. */
		for (int k = 0; k < 200 && !contains(log, "coherence."); k++) {
			free(log);
			rfh_sleep_ms(50);
			log = rfh_read_file(c.nodes[0].log);
		}
		cr_assert(contains(log, "coherence."), "%s", log);
		char *status = NULL;
		cr_assert_eq(rfh_http(&c, 0, "GET", "/status", NULL, NULL, &status, 2000), 200);
		rfh_signal(&c, 0, SIGTERM);
		cr_assert_neq(rfh_wait_exit(&c, 0, WAIT_MS), -1);
		free(log);
		log = rfh_read_file(c.nodes[0].log);
		cr_assert(!contains(log, secrets[i][0]) && !contains(status, secrets[i][0]), "%s",
			  log);
		cr_assert(!contains(log, "Adm-S3cret") && !contains(status, "Adm-S3cret"));
		cr_assert(!contains(log, secrets[i][1]) && !contains(status, secrets[i][1]), "%s",
			  log);
		free(log);
		free(status);
		RFH_PASS(); /* this case passed: clean up quietly */
		rfh_cleanup();
	}
}

static int slow_connect(const char *address)
{
	char ip[16];
	unsigned port;
	cr_assert(sscanf(address, "%15[0-9.]:%u", ip, &port) == 2);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ip, &sa.sin_addr);
	cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

/* What the server did with a slow connection: nothing yet, answered 408, or closed. */
enum slow_state { SLOW_OPEN, SLOW_408, SLOW_CLOSED };

/* Sends one more byte of an unfinished header and looks for the server's verdict. */
static enum slow_state slow_step(int fd)
{
	char buf[512];
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, 0) > 0) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = '\0';
			return strncmp(buf, "HTTP/1.1 408", 12) == 0 ? SLOW_408 : SLOW_CLOSED;
		}
		return SLOW_CLOSED;
	}
	if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
		return SLOW_CLOSED;
	}
	return SLOW_OPEN;
}

static int slow_open(const char *address)
{
	static const char partial[] = "GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	int fd = slow_connect(address);
	cr_assert(send(fd, partial, sizeof(partial) - 1, MSG_NOSIGNAL) > 0);
	return fd;
}

Test(secure, slow_clients_neither_keep_connections_nor_lock_others_out)
{
	static struct rfh_cluster c;
	rfh_cluster_init(&c, 1, 1, NULL);
	const char *env[] = {"LIFEGUARD_HTTP_HEAD_TIMEOUT_MS=3000", NULL};
	rfh_start(&c, 0, NULL, env);
	cr_assert_eq(rfh_wait_agreed_leader(&c, 1, WAIT_MS, NULL), 0);
	const char *addr = c.nodes[0].http;

	/* Every slot taken by a client that sends its head one byte at a time, reconnecting
	 * whenever the server lets go, as an attacker would. */
	static int fds[MAX_CONNS];
	for (size_t i = 0; i < MAX_CONNS; i++) {
		fds[i] = slow_open(addr);
	}
	for (int round = 0; round < 3; round++) {
		rfh_sleep_ms(100);
		for (size_t i = 0; i < MAX_CONNS; i++) {
			if (slow_step(fds[i]) != SLOW_OPEN) {
				close(fds[i]);
				fds[i] = slow_open(addr);
			}
		}
	}

	/* A client that sends its request at once is still served. */
	int good = slow_connect(addr);
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	cr_assert(send(good, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(req) - 1));
	char answer[1024];
	size_t len = 0;
	for (;;) {
		struct pollfd p = {good, POLLIN, 0};
		if (poll(&p, 1, 10000) <= 0) {
			break;
		}
		ssize_t n = recv(good, answer + len, sizeof(answer) - 1 - len, 0);
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
	answer[len] = '\0';
	close(good);
	cr_assert(strncmp(answer, "HTTP/1.1 200", 12) == 0, "well-behaved client got: \"%s\"",
		  answer);

	/* No reconnecting now: each slow connection keeps trickling bytes, and the server closes
	 * every one of them once its request deadline passes (408, or closed when it was the
	 * one evicted). The bound is generous: 20 s against a 3 s deadline. */
	static enum slow_state state[MAX_CONNS];
	size_t open = MAX_CONNS, answered_408 = 0;
	for (int64_t end = rfh_now_ms() + 20000; open > 0 && rfh_now_ms() < end;) {
		rfh_sleep_ms(200);
		for (size_t i = 0; i < MAX_CONNS; i++) {
			if (state[i] == SLOW_OPEN && (state[i] = slow_step(fds[i])) != SLOW_OPEN) {
				open--;
				answered_408 += state[i] == SLOW_408;
			}
		}
	}
	for (size_t i = 0; i < MAX_CONNS; i++) {
		close(fds[i]);
	}
	cr_assert_eq(open, 0, "%zu slow connections were still open", open);
	cr_assert(answered_408 > 0, "no connection was answered 408");
	/* And the node still serves. */
	cr_assert_eq(rfh_http(&c, 0, "GET", "/healthz", NULL, NULL, NULL, 5000), 200);
	RFH_PASS();
}
