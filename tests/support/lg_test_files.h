/*
 * Test helpers shared by the tests that drive files and a libpq connection of their own
 * (the migration tests). Header-only: they assert with Criterion.
 */
#ifndef LG_TEST_FILES_H
#define LG_TEST_FILES_H

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
