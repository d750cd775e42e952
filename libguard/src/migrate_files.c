/*
 * The migrations directory: file names, contents, statements and lines.
 *
 * Every *.sql file in the directory must be named V_name.up.sql or V_name.down.sql (V a
 * positive integer without leading zeros, name of letters, digits, '_' and '-'): a misspelt
 * file would otherwise be skipped silently, which is worse than refusing to run. Other files
 * (a README, editor backups) are ignored.
 *
 * Statements are found with libpg_query's pg_query_split_with_parser, PostgreSQL's own
 * grammar, so semicolons inside strings, dollar-quoted bodies and comments are handled as the
 * server would. The parser recurses and has no stack guard; like sql_parse.c it runs on a
 * thread with a large stack, which also frees libpg_query's per-thread memory when it ends.
 */
#include "migrate_int.h"

#include <dirent.h>
#include <errno.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

#define SPLIT_STACK (64u * 1024u * 1024u)

/* Parses "V_name.up.sql" / "V_name.down.sql"; *name_len bytes of fname + *name_off. */
static bool parse_name(const char *fname, int64_t *v, bool *up, size_t *name_off, size_t *name_len)
{
	const char *p = fname;
	if (*p < '1' || *p > '9') {
		return false;
	}
	int64_t x = 0;
	while (*p >= '0' && *p <= '9') {
		if (x > (INT64_MAX - 9) / 10) {
			return false;
		}
		x = x * 10 + (*p++ - '0');
	}
	if (*p++ != '_') {
		return false;
	}
	const char *name = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
	       *p == '_' || *p == '-') {
		p++;
	}
	if (p == name) {
		return false;
	}
	if (strcmp(p, ".up.sql") == 0) {
		*up = true;
	} else if (strcmp(p, ".down.sql") == 0) {
		*up = false;
	} else {
		return false;
	}
	*v = x;
	*name_off = (size_t)(name - fname);
	*name_len = (size_t)(p - name);
	return true;
}

static char *path_join(const char *dir, const char *fname)
{
	size_t n = strlen(dir) + strlen(fname) + 2;
	char *s = lg__malloc(n);
	if (s != NULL) {
		snprintf(s, n, "%s/%s", dir, fname);
	}
	return s;
}

static int add_file(struct lg_migrate *m, const char *fname, struct lg_error *err)
{
	int64_t v;
	bool up;
	size_t off, len;
	if (!parse_name(fname, &v, &up, &off, &len)) {
		return lg__error_set(err, LG_EINVAL,
				     "%s/%s: malformed migration file name (want V_name.up.sql or "
				     "V_name.down.sql, V a positive integer)",
				     m->dir, fname);
	}
	struct lg_migration *mg = lg__mig_find(m, v, true);
	char *path = path_join(m->dir, fname);
	if (mg == NULL || path == NULL) {
		lg__free(path);
		return lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
	}
	const char **slot = up ? &mg->up_path : &mg->down_path;
	bool same_name = mg->name == NULL ||
			 (strlen(mg->name) == len && memcmp(mg->name, fname + off, len) == 0);
	if (*slot != NULL || !same_name) {
		int rc =
		    lg__error_set(err, LG_EINVAL, "%s: version %lld is used twice (also by %s)",
				  path, (long long)v, *slot != NULL ? *slot : mg->name);
		lg__free(path);
		return rc;
	}
	if (mg->name == NULL) {
		char *nm = lg__malloc(len + 1);
		if (nm == NULL) {
			lg__free(path);
			return lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
		}
		memcpy(nm, fname + off, len);
		nm[len] = '\0';
		mg->name = nm;
	}
	*slot = path;
	return 0;
}

int lg__mig_scan(struct lg_migrate *m, struct lg_error *err)
{
	DIR *d = opendir(m->dir);
	if (d == NULL) {
		return lg__error_set(err, LG_ESYS, "migrations directory %s: %s", m->dir,
				     strerror(errno));
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] == '.' || n < 4 || strcmp(e->d_name + n - 4, ".sql") != 0) {
			continue;
		}
		rc = add_file(m, e->d_name, err);
	}
	closedir(d);
	for (size_t i = 0; rc == 0 && i < m->nmigs; i++) {
		struct lg_migration *mg = &m->migs[i];
		if (mg->up_path == NULL) {
			return lg__error_set(err, LG_EINVAL, "%s: a down file without its up file",
					     mg->down_path);
		}
		/* Read now so that status can show the mode, and an unreadable file is found
		 * before anything runs. */
		struct lg__mig_text t;
		rc = lg__mig_read(mg->up_path, &t, err);
		if (rc == 0) {
			mg->no_transaction = lg__mig_no_tx(t.data);
			lg__mig_text_free(&t);
		}
	}
	return rc;
}

int lg__mig_read(const char *path, struct lg__mig_text *out, struct lg_error *err)
{
	*out = (struct lg__mig_text){0};
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return lg__error_set(err, LG_ESYS, "%s: %s", path, strerror(errno));
	}
	size_t cap = 4096, len = 0;
	char *buf = lg__malloc(cap);
	int rc = 0;
	while (buf != NULL) {
		if (cap - len < 2) {
			char *nb = lg__realloc(buf, cap * 2);
			if (nb == NULL) {
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0) {
			break;
		}
	}
	if (buf == NULL || cap - len < 1) {
		rc = lg__error_set(err, LG_ENOMEM, "%s: out of memory", path);
	} else if (ferror(f)) {
		rc = lg__error_set(err, LG_ESYS, "%s: read failed", path);
	} else if (memchr(buf, '\0', len) != NULL) {
		rc = lg__error_set(err, LG_EINVAL, "%s: holds a NUL byte, not SQL text", path);
	}
	fclose(f);
	if (rc != 0) {
		lg__free(buf);
		return rc;
	}
	buf[len] = '\0';
	*out = (struct lg__mig_text){buf, len};
	return 0;
}

void lg__mig_text_free(struct lg__mig_text *t)
{
	lg__free(t->data);
	*t = (struct lg__mig_text){0};
}

bool lg__mig_no_tx(const char *text)
{
	static const char mark[] = "-- lifeguard: no-transaction";
	for (const char *line = text; *line != '\0';) {
		const char *end = strchr(line, '\n');
		size_t n = end != NULL ? (size_t)(end - line) : strlen(line);
		/* Trailing blanks and a CR (files edited on Windows) do not count. */
		while (n > 0 &&
		       (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r')) {
			n--;
		}
		if (n == sizeof(mark) - 1 && memcmp(line, mark, n) == 0) {
			return true;
		}
		if (end == NULL) {
			break;
		}
		line = end + 1;
	}
	return false;
}

struct split_job {
	const char *text;
	PgQuerySplitResult r;
};

static void *split_thread(void *arg)
{
	struct split_job *job = arg;
	job->r = pg_query_split_with_parser(job->text);
	return NULL;
}

int lg__mig_split(const char *text, struct lg__mig_stmt **out, size_t *n, int *line,
		  struct lg_error *err)
{
	*out = NULL;
	*n = 0;
	*line = 0;
	struct split_job job = {text, {0}};
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0) {
		return lg__error_set(err, LG_ESYS, "migrations: no thread for the parser");
	}
	int rc = pthread_attr_setstacksize(&attr, SPLIT_STACK);
	if (rc == 0) {
		rc = pthread_create(&t, &attr, split_thread, &job);
	}
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		return lg__error_set(err, LG_ESYS, "migrations: no thread for the parser: %s",
				     strerror(rc));
	}
	pthread_join(t, NULL);
	if (job.r.error != NULL) {
		/* cursorpos is a 1-based character position in the whole text. */
		size_t off = lg__mig_char_to_byte(text, strlen(text), job.r.error->cursorpos);
		*line = lg__mig_line_at(text, off);
		rc = lg__error_set(err, LG_EINVAL, "%s", job.r.error->message);
		lg__error_set_sqlstate(err, "42601");
	} else if (job.r.n_stmts > 0) {
		*out = lg__calloc((size_t)job.r.n_stmts, sizeof(**out));
		if (*out == NULL) {
			rc = lg__error_set(err, LG_ENOMEM, "migrations: out of memory");
		}
		for (int i = 0; *out != NULL && i < job.r.n_stmts; i++) {
			(*out)[i].offset = (size_t)job.r.stmts[i]->stmt_location;
			/* A length of 0 means "to the end of the text" in libpg_query. */
			size_t len = (size_t)job.r.stmts[i]->stmt_len;
			(*out)[i].len = len != 0 ? len : strlen(text) - (*out)[i].offset;
		}
		*n = *out != NULL ? (size_t)job.r.n_stmts : 0;
	}
	pg_query_free_split_result(job.r);
	return rc;
}

int lg__mig_line_at(const char *text, size_t off)
{
	int line = 1;
	for (size_t i = 0; i < off && text[i] != '\0'; i++) {
		line += text[i] == '\n';
	}
	return line;
}

size_t lg__mig_char_to_byte(const char *stmt, size_t len, long pos)
{
	size_t i = 0;
	/* Characters are counted as UTF-8 lead bytes: continuation bytes are 10xxxxxx. */
	for (long c = 1; i < len && c < pos; c++) {
		i++;
		while (i < len && ((unsigned char)stmt[i] & 0xC0u) == 0x80u) {
			i++;
		}
	}
	return i;
}

size_t lg__mig_skip_blank(const char *stmt, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (stmt[i] == ' ' || stmt[i] == '\t' || stmt[i] == '\n' || stmt[i] == '\r') {
			i++;
		} else if (i + 1 < len && stmt[i] == '-' && stmt[i + 1] == '-') {
			while (i < len && stmt[i] != '\n') {
				i++;
			}
		} else if (i + 1 < len && stmt[i] == '/' && stmt[i + 1] == '*') {
			const char *end = strstr(stmt + i + 2, "*/");
			i = end != NULL && (size_t)(end - stmt) + 2 <= len
				? (size_t)(end - stmt) + 2
				: len;
		} else {
			break;
		}
	}
	return i;
}
