/*
 * lg_migrate_create: the next pair of migration files.
 *
 * The version is one more than the highest in the directory, not a timestamp: versions then
 * read as the order they apply in, and two developers who both add migration 7 on different
 * branches get a duplicate-version error from the scan instead of a silent interleaving.
 * Files are created with O_EXCL, so a racing `new` fails rather than overwriting.
 */
#include "migrate_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc_int.h"
#include "error_int.h"

static int write_new(const char *path, const char *body, struct lg_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		return lg__error_set(err, LG_ESYS, "%s: %s", path, strerror(errno));
	}
	size_t len = strlen(body), done = 0;
	while (done < len) {
		ssize_t w = write(fd, body + done, len - done);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w < 0) {
			int rc = lg__error_set(err, LG_ESYS, "%s: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			return rc;
		}
		done += (size_t)w;
	}
	if (close(fd) != 0) {
		int rc = lg__error_set(err, LG_ESYS, "%s: %s", path, strerror(errno));
		unlink(path);
		return rc;
	}
	return 0;
}

static bool name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 200) {
		return false;
	}
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-')) {
			return false;
		}
	}
	return true;
}

static int create_pair(const char *dir, const char *name, int64_t v, char *up_path,
		       size_t path_size, struct lg_error *err)
{
	size_t n = strlen(dir) + strlen(name) + 48;
	char *up = lg__malloc(n), *down = lg__malloc(n), *body = lg__malloc(n + 512);
	int rc = 0;
	if (up == NULL || down == NULL || body == NULL) {
		rc = lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
		goto out;
	}
	snprintf(up, n, "%s/%" PRId64 "_%s.up.sql", dir, v, name);
	snprintf(down, n, "%s/%" PRId64 "_%s.down.sql", dir, v, name);
	snprintf(
	    body, n + 512,
	    "-- Migration %" PRId64 " (%s), applied by `lifeguard migrate up`.\n"
	    "-- It runs in a transaction of its own. For statements that cannot (CREATE INDEX\n"
	    "-- CONCURRENTLY), put this exact line in the file: -- lifeguard: no-transaction\n"
	    "-- Do not edit it once applied anywhere: write a new migration instead.\n\n",
	    v, name);
	rc = write_new(up, body, err);
	if (rc != 0) {
		goto out;
	}
	snprintf(body, n + 512,
		 "-- Undoes migration %" PRId64 " (%s), run by `lifeguard migrate down`.\n\n", v,
		 name);
	rc = write_new(down, body, err);
	if (rc != 0) {
		unlink(up);
		goto out;
	}
	if (up_path != NULL && path_size > 0) {
		snprintf(up_path, path_size, "%s", up);
	}
out:
	lg__free(up);
	lg__free(down);
	lg__free(body);
	return rc;
}

int lg_migrate_create(const char *dir, const char *name, int64_t *version, char *up_path,
		      size_t path_size, struct lg_error *err)
{
	lg_error_clear(err);
	if (!name_ok(name)) {
		return lg__error_set(
		    err, LG_EINVAL, "migration name '%s': want letters, digits, '_' and '-'", name);
	}
	/* The first migration may create its directory (one level, like `mkdir dir`). */
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		return lg__error_set(err, LG_ESYS, "migrations directory %s: %s", dir,
				     strerror(errno));
	}
	/* The scan checks every existing name too: a new file next to a broken one would only
	 * postpone the error. */
	struct lg_migrate m = {.dir = (char *)dir};
	int rc = lg__mig_scan(&m, err);
	int64_t v = m.nmigs > 0 ? m.migs[m.nmigs - 1].version + 1 : 1;
	for (size_t i = 0; i < m.nmigs; i++) {
		lg__free((void *)m.migs[i].name);
		lg__free((void *)m.migs[i].up_path);
		lg__free((void *)m.migs[i].down_path);
	}
	lg__free(m.migs);
	if (rc == 0) {
		rc = create_pair(dir, name, v, up_path, path_size, err);
	}
	if (rc == 0 && version != NULL) {
		*version = v;
	}
	return rc;
}
