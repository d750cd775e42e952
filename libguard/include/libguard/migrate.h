/*
 * Schema migrations: numbered SQL files applied once each, tracked in a table.
 *
 * A directory holds V_name.up.sql and (optionally) V_name.down.sql, V a positive integer.
 * Applied migrations are recorded in a tracking table (lifeguard.schema_migrations by
 * default: version, name, checksum, applied_at, execution_ms), created when missing. The
 * checksum is the SHA-256 of the up file, computed by the server (sha256()); an applied
 * migration whose file changed since is refused.
 *
 * Each migration runs in its own transaction: BEGIN, the file's statements one by one, the
 * tracking row, COMMIT. A file holding the line "-- lifeguard: no-transaction" runs statement
 * by statement in autocommit instead (CREATE INDEX CONCURRENTLY), and its tracking row is
 * written after the last statement. Files are split into statements with PostgreSQL's own
 * parser (libpg_query), so a failure names the file, the line and the SQLSTATE.
 *
 * Runners that change the database hold a session advisory lock on a dedicated connection
 * for the whole run, so many processes migrating at once (replicas at start-up) apply each
 * migration exactly once: the others wait, then find it applied.
 *
 * These calls block the calling thread (they use libpq synchronously on a connection of
 * their own): call them at start-up before serving, or from a thread, never from a coroutine
 * (LG_EINVAL there). Details: docs/migrations.md.
 */
#ifndef LIBGUARD_MIGRATE_H
#define LIBGUARD_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_migrate;

/* Where a migration stands. */
enum lg_migration_state {
	LG_MIGRATION_PENDING = 0, /* a file, no tracking row */
	LG_MIGRATION_APPLIED,     /* a tracking row whose checksum matches its file */
	LG_MIGRATION_CHANGED,     /* applied, but the up file changed since */
	LG_MIGRATION_MISSING,     /* a tracking row without its up file */
};

/* One migration, as found on disk and in the tracking table. */
struct lg_migration {
	int64_t version;
	const char *name;      /* Borrowed from the lg_migrate */
	const char *up_path;   /* Borrowed; NULL when the file is missing */
	const char *down_path; /* Borrowed; NULL when there is no down file */
	bool no_transaction;   /* the up file says "-- lifeguard: no-transaction" */
	enum lg_migration_state state;
	char checksum[65];         /* SHA-256 hex of the up file; "" until compared or missing */
	char applied_checksum[65]; /* as recorded; "" when pending */
	int64_t applied_at_us;     /* microseconds since 1970-01-01 UTC; 0 when pending */
	int64_t execution_ms;      /* as recorded; 0 when pending */
};

/* What the runner is doing, for progress output. */
enum lg_migrate_event_kind {
	LG_MIGRATE_APPLIED = 0, /* an up file ran and was recorded */
	LG_MIGRATE_REVERTED,    /* a down file ran and the record was deleted */
	LG_MIGRATE_WOULD_APPLY, /* dry run: this one is pending */
};

struct lg_migrate_event {
	enum lg_migrate_event_kind kind;
	const struct lg_migration *migration; /* Borrowed for the callback */
	int64_t elapsed_ms;
};

/* Why the last call failed, beyond its LG_E* code. */
enum lg_migrate_fail_kind {
	LG_MIGRATE_FAIL_NONE = 0,
	LG_MIGRATE_FAIL_INPUT,    /* bad directory, file name, file or argument */
	LG_MIGRATE_FAIL_CONNECT,  /* the server could not be reached */
	LG_MIGRATE_FAIL_CHECKSUM, /* an applied migration's file changed */
	LG_MIGRATE_FAIL_MISSING,  /* an applied migration has no file (or no down file) */
	LG_MIGRATE_FAIL_SQL,      /* a statement of a migration failed */
	LG_MIGRATE_FAIL_DB,       /* the tracking table or the lock failed */
};

struct lg_migrate_failure {
	enum lg_migrate_fail_kind kind;
	int64_t version;  /* the migration concerned; 0 when none */
	const char *file; /* Borrowed from the lg_migrate: the failing file, or NULL */
	int line;         /* 1-based line of the failing statement in file; 0 when unknown */
	char sqlstate[6]; /* "" when not a server error */
};

struct lg_migrate_config {
	/* libpq conninfo (keywords or URI). Copied. NULL or "" = libpq's PG* variables. */
	const char *conninfo;
	const char *dir; /* Copied. NULL = "migrations". */
	/* Tracking table, "schema.table" of plain lower-case identifiers. Copied.
	 * NULL = "lifeguard.schema_migrations". */
	const char *table;
	/* Called after each migration (and per pending one in a dry run); NULL = silent. */
	void (*progress)(void *ud, const struct lg_migrate_event *ev);
	void *progress_ud; /* Borrowed until lg_migrate_free */
};

/*
 * Reads the directory (every *.sql file in it must be a well-formed migration name; other
 * files are ignored) and connects. config is Borrowed for the call (its strings are Copied).
 * On success *out is Owned by the caller and released with lg_migrate_free(). Errors: LG_EINVAL
 * (bad name, duplicate version, bad table name, called from a coroutine), LG_ESYS (directory
 * unreadable), LG_ECONNECT (server unreachable), LG_ENOMEM. err names the file or the server.
 */
LG_API int lg_migrate_new(const struct lg_migrate_config *config, struct lg_migrate **out,
			  struct lg_error *err);

/* Closes the connection and frees m. NULL is a no-op. */
LG_API void lg_migrate_free(struct lg_migrate *m);

/*
 * Applies every pending migration with a version up to `to` (0 = all), in version order,
 * under the lock. Refuses (before running anything) when an applied migration's file changed
 * or is missing. A failing migration is rolled back (a no-transaction one keeps the
 * statements that completed) and reported as "FILE:LINE: message" with its SQLSTATE in
 * err->sqlstate. dry_run only reports what would run (no lock, nothing created).
 * Errors: LG_ESERVER (a statement), LG_EINVAL (changed checksum, a statement refused before
 * sending, syntax error), LG_ENOTFOUND (an applied migration's file is missing),
 * LG_ECONNLOST, LG_ESYS; lg_migrate_last_failure() tells which file, line and why.
 */
LG_API int lg_migrate_up(struct lg_migrate *m, int64_t to, bool dry_run, struct lg_error *err);

/* Reverts the `steps` highest-numbered applied migrations with their down files, under the
 * lock, each in its own transaction unless its down file says no-transaction. Fewer are
 * reverted when fewer are applied. A missing down file fails with LG_EINVAL. */
LG_API int lg_migrate_down(struct lg_migrate *m, unsigned steps, struct lg_error *err);

/* Reverts the highest applied migration and applies it again, under one lock. */
LG_API int lg_migrate_redo(struct lg_migrate *m, struct lg_error *err);

/*
 * Every migration known on disk or in the tracking table, by version. *out is Borrowed from m
 * until the next call on m. A missing tracking table means nothing is applied.
 */
LG_API int lg_migrate_status(struct lg_migrate *m, const struct lg_migration **out, size_t *n,
			     struct lg_error *err);

/*
 * Checks without changing anything: every file splits into statements (a syntax error is
 * reported as FILE:LINE), and every applied migration has its file, unchanged.
 */
LG_API int lg_migrate_validate(struct lg_migrate *m, struct lg_error *err);

/* Why the last failed call on m failed (Borrowed from m until the next call). */
LG_API const struct lg_migrate_failure *lg_migrate_last_failure(const struct lg_migrate *m);

/*
 * Creates V_name.up.sql and V_name.down.sql in dir (Borrowed; created when missing), V one
 * more than the highest version there (1 in an empty directory), each with a comment header.
 * name (Borrowed): letters, digits, '_' and '-'. *version (may be NULL) gets V; up_path (may be
 * NULL, size path_size) gets the up file's path. No database involved. Errors: LG_EINVAL, LG_ESYS.
 */
LG_API int lg_migrate_create(const char *dir, const char *name, int64_t *version, char *up_path,
			     size_t path_size, struct lg_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_MIGRATE_H */
