/*
 * Test helpers shared by the tests that drive files and a libpq connection of their own
 * (the migration tests). Header-only: they assert with Criterion.
 */
#ifndef LG_TEST_FILES_H
#define LG_TEST_FILES_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Writes dir/fname from a printf format. */
/* (No format attribute: the files use positional %1$s, which -Wpedantic rejects.) */
static inline void lg_test_write_file(const char *dir, const char *fname, const char *fmt, ...)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, fname);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	cr_assert_eq(fclose(f), 0);
}

/* The first value of a query on pg, as an integer; -1 for NULL. */
static inline long long lg_test_pq_int(PGconn *pg, const char *fmt, ...)
{
	char sql[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(pg, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
	long long v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/*
 * Starts $LG_LIFEGUARD_BIN (set by meson) with args (NULL-terminated, at most 30, the
 * program name excluded); its stdout and stderr go to the files out and err.
 */
static inline pid_t lg_test_spawn_lifeguard(const char *const *args, const char *out,
					    const char *err)
{
	const char *argv[32] = {getenv("LG_LIFEGUARD_BIN")};
	cr_assert_not_null(argv[0], "LG_LIFEGUARD_BIN is not set (run through meson test)");
	for (int n = 1; *args != NULL && n < 31; n++) {
		argv[n] = *args++;
	}
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
			_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Teardown of the tests that own a schema and a directory with its stdout/stderr files:
 * drops schema (CASCADE), closes pg, removes the three paths. */
static inline void lg_test_cleanup(PGconn *pg, const char *schema, const char *dir, const char *out,
				   const char *err)
{
	char sql[256], cmd[512];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	PQclear(PQexec(pg, sql));
	PQfinish(pg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s' '%s'", dir, out, err);
	cr_assert_eq(system(cmd), 0);
}

/* The exit status of pid, asserting it exited rather than died of a signal. */
static inline int lg_test_wait_exit(pid_t pid)
{
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "lifeguard died of a signal");
	return WEXITSTATUS(st);
}

/* The first 64 KiB of a file, in a static buffer (overwritten by the next call). */
static inline char *lg_test_slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

#endif
