/*
 * The runtime drift check: a model descriptor compared with the live table (lg_model_check,
 * model.h). One catalog statement reads the table's columns; every difference that would make
 * the ORM's statements fail or lose data is reported, naming the column:
 *   - the table does not exist (LG_ENOTFOUND);
 *   - a model column is missing from the table;
 *   - a model column's type does not hold the table's type (the pairs are those of
 *     `lifeguard codegen`: docs/cli.md);
 *   - nullability differs (the model says NOT NULL and the table allows NULL, or the reverse);
 *   - primary key membership differs;
 *   - a NOT NULL table column without a default is missing from the model (inserts fail).
 * Every mismatch is LG_ETYPE; the message lists them, the first ones first when it is full.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error_int.h"
#include "libguard/param.h"
#include "model_int.h"
#include "query_build.h"

/* PostgreSQL types (base types of pg_catalog, or array element types) each model type holds. */
static const char *const type_names[] = {
    [LG_INT32] = "int2 int4",
    [LG_INT64] = "int8",
    [LG_FLOAT64] = "float4 float8",
    [LG_BOOL] = "bool",
    [LG_TEXT] = "text varchar bpchar",
    [LG_BYTEA] = "bytea",
    [LG_UUID] = "uuid",
    [LG_TIMESTAMPTZ] = "timestamptz",
    [LG_JSONB] = "jsonb json",
    [LG_NUMERIC] = "numeric",
    [LG_DATE] = "date",
    [LG_TIME] = "time",
    [LG_TIMESTAMP] = "timestamp",
    [LG_INTERVAL] = "interval",
    [LG_ENUM] = "",
    [LG_INET] = "inet",
    [LG_INT32_ARRAY] = "int4",
    [LG_INT64_ARRAY] = "int8",
    [LG_FLOAT64_ARRAY] = "float8",
    [LG_BOOL_ARRAY] = "bool",
    [LG_TEXT_ARRAY] = "text varchar",
    [LG_UUID_ARRAY] = "uuid",
};

static bool is_array_type(enum lg_type t)
{
	return t >= LG_INT32_ARRAY && t <= LG_UUID_ARRAY;
}

/* Whether word is one of the space-separated words of list. */
static bool in_list(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
			return true;
		}
	}
	return false;
}

/*
 * Columns 0..8: table exists, name, format_type, base type name, base typtype, base type is
 * in pg_catalog, element type name (arrays) or NULL, NOT NULL, in the primary key, has a
 * default (or is generated or identity).
 */
static const char *const check_sql =
    "SELECT r.oid IS NOT NULL, a.attname, format_type(a.atttypid, a.atttypmod), bt.typname,"
    " bt.typtype, bt.typnamespace = 'pg_catalog'::regnamespace, et.typname, a.attnotnull,"
    " COALESCE(a.attnum = ANY (i.indkey::int2[]), false),"
    " a.atthasdef OR a.attgenerated <> '' OR a.attidentity <> ''"
    " FROM (SELECT to_regclass($1) AS oid) r"
    " LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " LEFT JOIN pg_type t ON t.oid = a.atttypid"
    " LEFT JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype"
    " ELSE t.oid END"
    " LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'"
    " AND et.typnamespace = 'pg_catalog'::regnamespace"
    " LEFT JOIN pg_index i ON i.indrelid = r.oid AND i.indisprimary"
    " ORDER BY a.attnum";

/* Whether model type t holds the column of result row i. */
static bool type_holds(enum lg_type t, const struct lg_result *r, int i)
{
	const char *typname = NULL, *typtype = NULL, *elem = NULL;
	bool catalog = false;
	(void)lg_result_text(r, i, 3, &typname, NULL);
	(void)lg_result_text(r, i, 4, &typtype, NULL);
	(void)lg_result_bool(r, i, 5, &catalog);
	if (!lg_result_is_null(r, i, 6)) {
		(void)lg_result_text(r, i, 6, &elem, NULL);
	}
	if ((unsigned)t >= sizeof(type_names) / sizeof(type_names[0]) || typname == NULL) {
		return false;
	}
	if (t == LG_ENUM) {
		return typtype != NULL && strcmp(typtype, "e") == 0;
	}
	if (is_array_type(t)) {
		return elem != NULL && in_list(type_names[t], elem);
	}
	return elem == NULL && catalog && in_list(type_names[t], typname);
}

/* Appends one problem to the message (the first ones win when it is full). */
static void __attribute__((format(printf, 3, 4)))
note(struct lg_error *err, int *n, const char *fmt, ...)
{
	if (err != NULL) {
		size_t len = strlen(err->message);
		if (*n > 0 && len + 2 < sizeof(err->message)) {
			memcpy(err->message + len, "; ", 3);
			len += 2;
		}
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message + len, sizeof(err->message) - len, fmt, ap);
		va_end(ap);
	}
	++*n;
}

static const char *type_label(enum lg_type t)
{
	static const char *const names[] = {
	    [LG_INT32] = "LG_INT32",
	    [LG_INT64] = "LG_INT64",
	    [LG_FLOAT64] = "LG_FLOAT64",
	    [LG_BOOL] = "LG_BOOL",
	    [LG_TEXT] = "LG_TEXT",
	    [LG_BYTEA] = "LG_BYTEA",
	    [LG_UUID] = "LG_UUID",
	    [LG_TIMESTAMPTZ] = "LG_TIMESTAMPTZ",
	    [LG_JSONB] = "LG_JSONB",
	    [LG_NUMERIC] = "LG_NUMERIC",
	    [LG_DATE] = "LG_DATE",
	    [LG_TIME] = "LG_TIME",
	    [LG_TIMESTAMP] = "LG_TIMESTAMP",
	    [LG_INTERVAL] = "LG_INTERVAL",
	    [LG_ENUM] = "LG_ENUM",
	    [LG_INET] = "LG_INET",
	    [LG_INT32_ARRAY] = "LG_INT32_ARRAY",
	    [LG_INT64_ARRAY] = "LG_INT64_ARRAY",
	    [LG_FLOAT64_ARRAY] = "LG_FLOAT64_ARRAY",
	    [LG_BOOL_ARRAY] = "LG_BOOL_ARRAY",
	    [LG_TEXT_ARRAY] = "LG_TEXT_ARRAY",
	    [LG_UUID_ARRAY] = "LG_UUID_ARRAY",
	};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) && names[t] != NULL ? names[t] : "?";
}

/* Compares model column c with result row i. */
static void check_col(const struct lg_model_col *c, const struct lg_result *r, int i,
		      struct lg_error *err, int *n)
{
	bool notnull = false, pk = false;
	const char *sql_type = NULL;
	(void)lg_result_text(r, i, 2, &sql_type, NULL);
	(void)lg_result_bool(r, i, 7, &notnull);
	(void)lg_result_bool(r, i, 8, &pk);
	if (!type_holds(c->type, r, i)) {
		note(err, n, "column %s: the model has %s, the table %s", c->name,
		     type_label(c->type), sql_type != NULL ? sql_type : "?");
	}
	if (notnull && (c->flags & LG_COL_NULLABLE)) {
		note(err, n, "column %s: the model allows NULL, the table is NOT NULL", c->name);
	} else if (!notnull && !(c->flags & LG_COL_NULLABLE)) {
		note(err, n, "column %s: the table allows NULL, the model does not", c->name);
	}
	if (pk != ((c->flags & LG_COL_PK) != 0)) {
		note(err, n, "column %s: %s", c->name,
		     pk ? "in the table's primary key, not the model's"
			: "in the model's primary key, not the table's");
	}
}

LG_API int lg_model_check(const struct lg_db *db, const struct lg_model *m, struct lg_error *err)
{
	lg_error_clear(err);
	char stack[256];
	struct lg_sqlbuf name;
	lg__sql_init(&name, stack, sizeof(stack));
	lg__sql_table(&name, m);
	const char *qname = lg__sql_text(&name);
	if (qname == NULL) {
		int code = name.err;
		lg__sql_free(&name);
		return lg__error_set(err, code, "model of table %s: invalid table name",
				     m->table != NULL ? m->table : "(null)");
	}
	struct lg_param p = lg_param_text(qname);
	struct lg_result *r = NULL;
	int rc = lg_db_query(db, check_sql, &p, 1, &r, err);
	if (rc != 0) {
		lg__sql_free(&name);
		return rc;
	}
	bool exists = false;
	(void)lg_result_bool(r, 0, 0, &exists);
	if (!exists) {
		rc =
		    lg__error_set(err, LG_ENOTFOUND, "model check: table %s does not exist", qname);
		lg_result_free(r);
		lg__sql_free(&name);
		return rc;
	}
	int rows = lg_result_rows(r), problems = 0;
	if (err != NULL) {
		snprintf(err->message, sizeof(err->message), "model check of %s: ", qname);
	}
	for (unsigned k = 0; k < m->ncols; k++) {
		int i = 0;
		for (const char *col = NULL; i < rows; i++) {
			if (lg_result_text(r, i, 1, &col, NULL) == 0 &&
			    strcmp(col, m->cols[k].name) == 0) {
				break;
			}
		}
		if (i == rows) {
			note(err, &problems, "column %s: missing from the table", m->cols[k].name);
		} else {
			check_col(&m->cols[k], r, i, err, &problems);
		}
	}
	for (int i = 0; i < rows; i++) {
		const char *col = NULL;
		bool notnull = false, has_default = false;
		(void)lg_result_text(r, i, 1, &col, NULL);
		(void)lg_result_bool(r, i, 7, &notnull);
		(void)lg_result_bool(r, i, 9, &has_default);
		unsigned k = 0;
		while (col != NULL && k < m->ncols && strcmp(col, m->cols[k].name) != 0) {
			k++;
		}
		if (col != NULL && k == m->ncols && notnull && !has_default) {
			note(err, &problems,
			     "column %s: NOT NULL without a default in the table, missing from the "
			     "model (inserts fail)",
			     col);
		}
	}
	lg_result_free(r);
	lg__sql_free(&name);
	if (problems == 0) {
		lg_error_clear(err);
		return 0;
	}
	if (err != NULL) {
		err->code = LG_ETYPE;
	}
	return LG_ETYPE;
}
