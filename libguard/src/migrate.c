/*
 * The public migration calls (libguard/migrate.h).
 *
 * Every call that changes the database takes the advisory lock first and reads the tracking
 * table only once it holds it: a runner that waited for another one then sees what that one
 * applied, which is what makes concurrent runners apply each migration exactly once. Before
 * running anything, applied migrations are checked against their files (the server's
 * SHA-256 of each up file), so a changed or missing file stops the run with nothing done.
 */
#include "migrate_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "libguard/runtime.h"

#define DEFAULT_DIR   "migrations"
#define DEFAULT_TABLE "lifeguard.schema_migrations"

int lg__mig_fail(struct lg_migrate *m, enum lg_migrate_fail_kind kind, int64_t version,
		 const char *file, int line, const struct lg_error *e)
{
	lg__free(m->fail_file);
	m->fail_file = file != NULL ? lg__strdup(file) : NULL;
	m->fail = (struct lg_migrate_failure){kind, version, m->fail_file, line, ""};
	snprintf(m->fail.sqlstate, sizeof(m->fail.sqlstate), "%s", e->sqlstate);
	return e->code;
}

struct lg_migration *lg__mig_find(struct lg_migrate *m, int64_t v, bool add)
{
	size_t i = 0;
	while (i < m->nmigs && m->migs[i].version < v) {
		i++;
	}
	if (i < m->nmigs && m->migs[i].version == v) {
		return &m->migs[i];
	}
	if (!add) {
		return NULL;
	}
	if (m->nmigs == m->capmigs) {
		size_t cap = m->capmigs != 0 ? m->capmigs * 2 : 16;
		struct lg_migration *nm = lg__realloc(m->migs, cap * sizeof(*nm));
		if (nm == NULL) {
			return NULL;
		}
		m->migs = nm;
		m->capmigs = cap;
	}
	memmove(&m->migs[i + 1], &m->migs[i], (m->nmigs - i) * sizeof(*m->migs));
	m->nmigs++;
	m->migs[i] = (struct lg_migration){.version = v};
	return &m->migs[i];
}

/* "schema.table" of plain lower-case identifiers: they are put into SQL text unquoted. */
static bool table_ok(const char *t)
{
	const char *dot = strchr(t, '.');
	if (dot == NULL || dot == t || dot[1] == '\0' || strlen(t) > 127) {
		return false;
	}
	for (const char *p = t; *p != '\0'; p++) {
		bool start = p == t || p == dot + 1;
		bool alpha = (*p >= 'a' && *p <= 'z') || *p == '_';
		if (p != dot && !(alpha || (!start && *p >= '0' && *p <= '9'))) {
			return false;
		}
	}
	return strchr(dot + 1, '.') == NULL;
}

void lg_migrate_free(struct lg_migrate *m)
{
	if (m == NULL) {
		return;
	}
	if (m->pg != NULL) {
		PQfinish(m->pg);
	}
	for (size_t i = 0; i < m->nmigs; i++) {
		lg__free((void *)m->migs[i].name);
		lg__free((void *)m->migs[i].up_path);
		lg__free((void *)m->migs[i].down_path);
	}
	lg__free(m->migs);
	lg__free(m->conninfo);
	lg__free(m->dir);
	lg__free(m->table);
	lg__free(m->schema);
	lg__free(m->fail_file);
	lg__free(m);
}

int lg_migrate_new(const struct lg_migrate_config *cfg, struct lg_migrate **out,
		   struct lg_error *err)
{
	*out = NULL;
	lg_error_clear(err);
	if (lg_coro_self() != NULL) {
		return lg__error_set(
		    err, LG_EINVAL,
		    "migrations block the thread: call lg_migrate_* outside coroutines");
	}
	const char *table = cfg->table != NULL ? cfg->table : DEFAULT_TABLE;
	if (!table_ok(table)) {
		return lg__error_set(
		    err, LG_EINVAL,
		    "tracking table '%s': want schema.table of lower-case letters, "
		    "digits and '_'",
		    table);
	}
	struct lg_migrate *m = lg__calloc(1, sizeof(*m));
	if (m == NULL) {
		return lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
	}
	m->conninfo = lg__strdup(cfg->conninfo != NULL ? cfg->conninfo : "");
	m->dir = lg__strdup(cfg->dir != NULL ? cfg->dir : DEFAULT_DIR);
	m->table = lg__strdup(table);
	m->schema = lg__strdup(table);
	m->progress = cfg->progress;
	m->progress_ud = cfg->progress_ud;
	if (m->conninfo == NULL || m->dir == NULL || m->table == NULL || m->schema == NULL) {
		lg_migrate_free(m);
		return lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
	}
	*strchr(m->schema, '.') = '\0';
	int rc = lg__mig_scan(m, err);
	if (rc == 0) {
		rc = lg__mig_connect(m, err);
	}
	if (rc != 0) {
		lg_migrate_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

const struct lg_migrate_failure *lg_migrate_last_failure(const struct lg_migrate *m)
{
	return &m->fail;
}

/* Starts a call: forgets the last failure. Errors are built in *local when err is NULL. */
static struct lg_error *begin(struct lg_migrate *m, struct lg_error *err, struct lg_error *local)
{
	lg__free(m->fail_file);
	m->fail_file = NULL;
	m->fail = (struct lg_migrate_failure){0};
	struct lg_error *e = err != NULL ? err : local;
	lg_error_clear(e);
	return e;
}

/* Other failures (the lock, the tracking table): recorded when nothing more precise was. */
static int fail_db(struct lg_migrate *m, int rc, struct lg_error *e)
{
	if (rc != 0 && m->fail.kind == LG_MIGRATE_FAIL_NONE) {
		lg__mig_fail(m, LG_MIGRATE_FAIL_DB, 0, NULL, 0, e);
	}
	return rc;
}

/*
 * Compares every applied migration with its file, setting CHANGED / MISSING states. Returns
 * the first problem (as an error) when report, else only the states.
 */
static int verify(struct lg_migrate *m, bool report, struct lg_error *e)
{
	int first = 0;
	for (size_t i = 0; i < m->nmigs; i++) {
		struct lg_migration *mg = &m->migs[i];
		int rc = 0;
		if (mg->state == LG_MIGRATION_MISSING && first == 0 && report) {
			lg__error_set(e, LG_ENOTFOUND,
				      "migration %" PRId64 " (%s) is applied but its up file is "
				      "missing from %s",
				      mg->version, mg->name, m->dir);
			first = lg__mig_fail(m, LG_MIGRATE_FAIL_MISSING, mg->version, NULL, 0, e);
		}
		if (mg->state != LG_MIGRATION_APPLIED) {
			continue;
		}
		struct lg__mig_text t;
		rc = lg__mig_read(mg->up_path, &t, e);
		if (rc == 0) {
			rc = lg__mig_checksum(m, t.data, t.len, mg->checksum, e);
			lg__mig_text_free(&t);
		}
		if (rc != 0) {
			return first != 0 ? first : fail_db(m, rc, e);
		}
		if (strcmp(mg->checksum, mg->applied_checksum) == 0) {
			continue;
		}
		mg->state = LG_MIGRATION_CHANGED;
		if (first == 0 && report) {
			lg__error_set(
			    e, LG_EINVAL,
			    "%s: changed after it was applied (checksum %.12s... recorded, "
			    "%.12s... now); restore it and write a new migration instead",
			    mg->up_path, mg->applied_checksum, mg->checksum);
			first = lg__mig_fail(m, LG_MIGRATE_FAIL_CHECKSUM, mg->version, mg->up_path,
					     0, e);
		}
	}
	return first;
}

static void emit(struct lg_migrate *m, enum lg_migrate_event_kind kind,
		 const struct lg_migration *mg, int64_t ms)
{
	if (m->progress != NULL) {
		struct lg_migrate_event ev = {kind, mg, ms};
		m->progress(m->progress_ud, &ev);
	}
}

static int apply(struct lg_migrate *m, struct lg_migration *mg, struct lg_error *e)
{
	int64_t ms;
	int rc = lg__mig_run(m, mg, true, &ms, e);
	if (rc == 0) {
		mg->state = LG_MIGRATION_APPLIED;
		memcpy(mg->applied_checksum, mg->checksum, sizeof(mg->checksum));
		mg->execution_ms = ms;
		emit(m, LG_MIGRATE_APPLIED, mg, ms);
	}
	return rc;
}

static int revert(struct lg_migrate *m, struct lg_migration *mg, struct lg_error *e)
{
	int64_t ms;
	int rc = lg__mig_run(m, mg, false, &ms, e);
	if (rc == 0) {
		mg->state = LG_MIGRATION_PENDING;
		mg->applied_checksum[0] = '\0';
		emit(m, LG_MIGRATE_REVERTED, mg, ms);
	}
	return rc;
}

/* Takes the lock, reads the tracking table and checks it against the files. */
static int lock_and_load(struct lg_migrate *m, bool create, struct lg_error *e)
{
	int rc = lg__mig_lock(m, e);
	if (rc == 0 && create) {
		rc = lg__mig_ensure_table(m, e);
	}
	if (rc == 0) {
		rc = lg__mig_load_applied(m, e);
	}
	if (rc == 0) {
		rc = verify(m, true, e);
	}
	return fail_db(m, rc, e);
}

int lg_migrate_up(struct lg_migrate *m, int64_t to, bool dry_run, struct lg_error *err)
{
	struct lg_error local, *e = begin(m, err, &local);
	if (to < 0) {
		lg__error_set(e, LG_EINVAL, "--to %" PRId64 ": want a positive version", to);
		return lg__mig_fail(m, LG_MIGRATE_FAIL_INPUT, 0, NULL, 0, e);
	}
	int rc = dry_run ? fail_db(m, lg__mig_load_applied(m, e), e) : lock_and_load(m, true, e);
	if (rc == 0 && dry_run) {
		rc = verify(m, true, e);
	}
	for (size_t i = 0; rc == 0 && i < m->nmigs; i++) {
		struct lg_migration *mg = &m->migs[i];
		if (mg->state != LG_MIGRATION_PENDING || (to != 0 && mg->version > to)) {
			continue;
		}
		if (dry_run) {
			emit(m, LG_MIGRATE_WOULD_APPLY, mg, 0);
		} else {
			rc = apply(m, mg, e);
		}
	}
	if (!dry_run) {
		lg__mig_unlock(m);
	}
	return rc;
}

static struct lg_migration *highest_applied(struct lg_migrate *m)
{
	for (size_t i = m->nmigs; i > 0; i--) {
		if (m->migs[i - 1].state == LG_MIGRATION_APPLIED) {
			return &m->migs[i - 1];
		}
	}
	return NULL;
}

int lg_migrate_down(struct lg_migrate *m, unsigned steps, struct lg_error *err)
{
	struct lg_error local, *e = begin(m, err, &local);
	int rc = lock_and_load(m, false, e);
	for (unsigned k = 0; rc == 0 && k < steps; k++) {
		struct lg_migration *mg = highest_applied(m);
		if (mg == NULL) {
			break;
		}
		rc = revert(m, mg, e);
	}
	lg__mig_unlock(m);
	return rc;
}

int lg_migrate_redo(struct lg_migrate *m, struct lg_error *err)
{
	struct lg_error local, *e = begin(m, err, &local);
	int rc = lock_and_load(m, false, e);
	struct lg_migration *mg = rc == 0 ? highest_applied(m) : NULL;
	if (rc == 0 && mg == NULL) {
		lg__error_set(e, LG_ENOTFOUND, "redo: no applied migration");
		rc = lg__mig_fail(m, LG_MIGRATE_FAIL_INPUT, 0, NULL, 0, e);
	}
	if (rc == 0) {
		rc = revert(m, mg, e);
	}
	if (rc == 0) {
		rc = apply(m, mg, e);
	}
	lg__mig_unlock(m);
	return rc;
}

int lg_migrate_status(struct lg_migrate *m, const struct lg_migration **out, size_t *n,
		      struct lg_error *err)
{
	struct lg_error local, *e = begin(m, err, &local);
	*out = NULL;
	*n = 0;
	int rc = fail_db(m, lg__mig_load_applied(m, e), e);
	if (rc == 0) {
		rc = verify(m, false, e);
	}
	if (rc == 0) {
		*out = m->migs;
		*n = m->nmigs;
	}
	return rc;
}

int lg_migrate_validate(struct lg_migrate *m, struct lg_error *err)
{
	struct lg_error local, *e = begin(m, err, &local);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < m->nmigs; i++) {
		struct lg_migration *mg = &m->migs[i];
		if (mg->up_path != NULL) {
			rc = lg__mig_check_file(m, mg, mg->up_path, e);
		}
		if (rc == 0 && mg->down_path != NULL) {
			rc = lg__mig_check_file(m, mg, mg->down_path, e);
		}
	}
	if (rc == 0) {
		rc = fail_db(m, lg__mig_load_applied(m, e), e);
	}
	if (rc == 0) {
		rc = verify(m, true, e);
	}
	return rc;
}
