/* Test support (see lg_test.h). */
#include "lg_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *lg_test_pg_dsn(void)
{
	const char *dsn = getenv("LG_TEST_PG_DSN");
	if (dsn == NULL || dsn[0] == '\0') {
		fprintf(stderr, "LG_TEST_PG_DSN is not set: run the suite through scripts/test\n");
		abort();
	}
	return dsn;
}

static int test_bound_socket(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		return -1;
	}
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int lg_test_free_port(void)
{
	int port = 0;
	int fd = test_bound_socket(&port);
	if (fd >= 0) {
		close(fd);
	}
	return port;
}

int lg_test_blackhole_listen(int *port)
{
	int fd = test_bound_socket(port);
	if (fd >= 0 && listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int lg_test_services(const char *fmt, ...)
{
	const char *scripts = getenv("LG_SCRIPTS_DIR");
	if (scripts == NULL) {
		fprintf(stderr, "LG_SCRIPTS_DIR is not set: run the suite through scripts/test\n");
		abort();
	}
	char args[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s/services' %s >/dev/null 2>&1", scripts, args);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/* A fresh temp dir and a free port for a private instance. */
static bool test_pg_prepare(struct lg_test_pg *pg)
{
	char tmpl[] = "/tmp/lg-test-pg.XXXXXX";
	if (mkdtemp(tmpl) == NULL) {
		return false;
	}
	snprintf(pg->dir, sizeof(pg->dir), "%s/data", tmpl);
	pg->port = lg_test_free_port();
	snprintf(pg->dsn, sizeof(pg->dsn), "host=127.0.0.1 port=%d user=postgres dbname=postgres",
		 pg->port);
	/* The postgres user must be able to reach the data dir inside the temp dir. */
	return chmod(tmpl, 0755) == 0;
}

bool lg_test_pg_start(struct lg_test_pg *pg)
{
	return test_pg_prepare(pg) && lg_test_services("pg start '%s' %d", pg->dir, pg->port) == 0;
}

bool lg_test_pg_replica_start(struct lg_test_pg *pg)
{
	const char *primary = getenv("LG_TEST_PG_PORT");
	if (primary == NULL || primary[0] == '\0') {
		fprintf(stderr, "LG_TEST_PG_PORT is not set: run the suite through scripts/test\n");
		abort();
	}
	return test_pg_prepare(pg) &&
	       lg_test_services("pg replica '%s' %d %s", pg->dir, pg->port, primary) == 0;
}

bool lg_test_pg_stop(struct lg_test_pg *pg, const char *mode)
{
	return lg_test_services("pg stop '%s' %s", pg->dir, mode) == 0;
}

bool lg_test_pg_restart(struct lg_test_pg *pg)
{
	return lg_test_services("pg start '%s' %d", pg->dir, pg->port) == 0;
}

void lg_test_pg_destroy(struct lg_test_pg *pg)
{
	lg_test_services("pg stop '%s' immediate", pg->dir);
	char parent[256];
	snprintf(parent, sizeof(parent), "%s", pg->dir);
	char *slash = strrchr(parent, '/');
	if (slash != NULL) {
		*slash = '\0';
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", parent);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", parent);
		}
	}
}

void lg_test_private_destroy(char *redis_dir, char *replica_dir, struct lg_test_pg *pg,
			     bool *pg_started)
{
	if (redis_dir != NULL && redis_dir[0] != '\0') {
		lg_test_services("redis kill '%s'", redis_dir);
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", redis_dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", redis_dir);
		}
		redis_dir[0] = '\0';
	}
	if (replica_dir != NULL && replica_dir[0] != '\0') {
		lg_test_services("pg stop '%s' immediate", replica_dir);
		replica_dir[0] = '\0';
	}
	if (pg != NULL && pg_started != NULL && *pg_started) {
		lg_test_pg_destroy(pg);
		*pg_started = false;
	}
}
