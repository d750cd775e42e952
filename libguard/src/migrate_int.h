/*
 * Internals of the migration runner (libguard/migrate.h), in three parts:
 *   migrate_files.c  the directory, file names, file contents, splitting into statements and
 *                    mapping byte offsets to lines;
 *   migrate_db.c     the libpq connection: lock, tracking table, checksums, running a file;
 *   migrate.c        the public calls, which combine the two.
 */
#ifndef LG_MIGRATE_INT_H
#define LG_MIGRATE_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/migrate.h"

/* One statement of a file: where it starts and how long it is, in bytes. */
struct lg__mig_stmt {
	size_t offset;
	size_t len;
};

/* A file's contents, read whole and NUL-terminated. */
struct lg__mig_text {
	char *data;
	size_t len;
};

struct lg_migrate {
	char *conninfo;
	char *dir;
	char *table; /* "schema.table", checked to be plain identifiers */
	char *schema;
	void (*progress)(void *ud, const struct lg_migrate_event *ev);
	void *progress_ud;
	PGconn *pg;
	struct lg_migration *migs; /* sorted by version */
	size_t nmigs, capmigs;
	struct lg_migrate_failure fail;
	char *fail_file; /* Owned copy behind fail.file */
};

/* migrate_files.c */

/* Scans m->dir into m->migs (sorted, no duplicates). LG_EINVAL / LG_ESYS / LG_ENOMEM. */
int lg__mig_scan(struct lg_migrate *m, struct lg_error *err);

/* Reads path whole. LG_ESYS when unreadable, LG_EINVAL when it holds a NUL byte. */
int lg__mig_read(const char *path, struct lg__mig_text *out, struct lg_error *err);
void lg__mig_text_free(struct lg__mig_text *t);

/* True when text has the line "-- lifeguard: no-transaction". */
bool lg__mig_no_tx(const char *text);

/*
 * Splits text into statements with PostgreSQL's parser (on a thread with a large stack).
 * *out is Owned (lg__free), *n may be 0. A syntax error gives LG_EINVAL with *line set to the
 * line of the error and err->message the parser's message.
 */
int lg__mig_split(const char *text, struct lg__mig_stmt **out, size_t *n, int *line,
		  struct lg_error *err);

/* The 1-based line of byte offset off in text. */
int lg__mig_line_at(const char *text, size_t off);

/* The byte offset of the 1-based character position pos (UTF-8) in stmt of len bytes. */
size_t lg__mig_char_to_byte(const char *stmt, size_t len, long pos);

/* The offset of the first byte after leading whitespace and comments of stmt. */
size_t lg__mig_skip_blank(const char *stmt, size_t len);

/* migrate_db.c */

int lg__mig_connect(struct lg_migrate *m, struct lg_error *err);
/* Runs sql with n parameters (text, or binary where fmts says so; vals Borrowed). *out (may
 * be NULL) is an Owned PGresult. LG_ESERVER with the SQLSTATE, or LG_ECONNLOST. */
int lg__mig_exec(struct lg_migrate *m, const char *sql, int n, const char *const *vals,
		 const int *lens, const int *fmts, PGresult **out, struct lg_error *err);
int lg__mig_lock(struct lg_migrate *m, struct lg_error *err);
void lg__mig_unlock(struct lg_migrate *m);
/* Creates the schema and tracking table when missing (under the lock). */
int lg__mig_ensure_table(struct lg_migrate *m, struct lg_error *err);
/* Reads the tracking table into m->migs (adding MISSING entries); absent table = none. */
int lg__mig_load_applied(struct lg_migrate *m, struct lg_error *err);
/* The server's SHA-256 hex of len bytes. */
int lg__mig_checksum(struct lg_migrate *m, const char *data, size_t len, char out[65],
		     struct lg_error *err);
/*
 * Runs one file (the up file when up, else the down file) and writes or deletes the tracking
 * row; in one transaction unless the file is marked no-transaction. *ms gets the time taken.
 */
int lg__mig_run(struct lg_migrate *m, struct lg_migration *mg, bool up, int64_t *ms,
		struct lg_error *err);

/* Reads and splits one file of mg and checks its statements, without running anything. */
int lg__mig_check_file(struct lg_migrate *m, struct lg_migration *mg, const char *path,
		       struct lg_error *e);

/* migrate.c */

/* Records the failure of the current call (code and SQLSTATE from e) and returns e->code. */
int lg__mig_fail(struct lg_migrate *m, enum lg_migrate_fail_kind kind, int64_t version,
		 const char *file, int line, const struct lg_error *e);
/* The migration of version v, adding a MISSING entry when add and none exists (NULL on
 * allocation failure or when not found). */
struct lg_migration *lg__mig_find(struct lg_migrate *m, int64_t v, bool add);

#endif
