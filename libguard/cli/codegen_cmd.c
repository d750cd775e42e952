/*
 * `lifeguard codegen --schema S [--table T ...] --out DIR [--check] [--json]`: reads the
 * tables of schema S from pg_catalog and writes one model header per table (codegen_out.c
 * renders them). A file is rewritten only when its text changes; --check writes nothing and
 * exits 1 naming every file that would change.
 *
 * Exit status: 0 done (or, with --check, nothing would change), 1 a table cannot be
 * generated (unsupported type, a name that is no C identifier) or --check found drift,
 * 2 bad input (usage, unknown table, unusable directory, unreachable server).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libguard/model.h>

#include "cli.h"
#include "codegen.h"

#define MAX_TABLES 256

struct cg_args {
	const char *dsn, *schema, *out;
	const char *tables[MAX_TABLES];
	int ntables;
	bool check, json;
};

/*
 * PostgreSQL types (of pg_catalog) and the model type holding them (enum lg_type in
 * libguard/model.h). Domains count as their base type; every enum type is LG_ENUM. Anything
 * else is refused, naming the table and the column.
 */
static const struct {
	const char *pg, *lg;
} type_map[] = {
    {"int2", "LG_INT32"},        {"int4", "LG_INT32"},     {"int8", "LG_INT64"},
    {"float4", "LG_FLOAT64"},    {"float8", "LG_FLOAT64"}, {"bool", "LG_BOOL"},
    {"text", "LG_TEXT"},         {"varchar", "LG_TEXT"},   {"bpchar", "LG_TEXT"},
    {"bytea", "LG_BYTEA"},       {"uuid", "LG_UUID"},      {"timestamptz", "LG_TIMESTAMPTZ"},
    {"jsonb", "LG_JSONB"},       {"json", "LG_JSONB"},     {"numeric", "LG_NUMERIC"},
    {"date", "LG_DATE"},         {"time", "LG_TIME"},      {"timestamp", "LG_TIMESTAMP"},
    {"interval", "LG_INTERVAL"}, {"inet", "LG_INET"},
};

/* Arrays by element type (one dimension). */
static const struct {
	const char *pg, *lg;
} array_map[] = {
    {"int4", "LG_INT32_ARRAY"}, {"int8", "LG_INT64_ARRAY"}, {"float8", "LG_FLOAT64_ARRAY"},
    {"bool", "LG_BOOL_ARRAY"},  {"text", "LG_TEXT_ARRAY"},  {"varchar", "LG_TEXT_ARRAY"},
    {"uuid", "LG_UUID_ARRAY"},
};

#define LOOKUP(map, name)                                                                          \
	do {                                                                                       \
		for (size_t i_ = 0; i_ < sizeof(map) / sizeof(map[0]); i_++) {                     \
			if (strcmp(map[i_].pg, (name)) == 0) {                                     \
				return map[i_].lg;                                                 \
			}                                                                          \
		}                                                                                  \
		return NULL;                                                                       \
	} while (0)

static const char *map_type(const char *typname)
{
	LOOKUP(type_map, typname);
}

static const char *map_array(const char *elem)
{
	LOOKUP(array_map, elem);
}

static const char *const c_keywords[] = {
    "auto",       "break",     "case",           "char",
    "const",      "continue",  "default",        "do",
    "double",     "else",      "enum",           "extern",
    "float",      "for",       "goto",           "if",
    "inline",     "int",       "long",           "register",
    "restrict",   "return",    "short",          "signed",
    "sizeof",     "static",    "struct",         "switch",
    "typedef",    "union",     "unsigned",       "void",
    "volatile",   "while",     "_Bool",          "_Complex",
    "_Imaginary", "_Alignas",  "_Alignof",       "_Atomic",
    "_Generic",   "_Noreturn", "_Static_assert", "_Thread_local",
    "bool",       "true",      "false",          "lg_null",
    "lg_mem",
};

/* NULL when name can be a C identifier in the generated code, else the reason. */
static const char *ident_problem(const char *name)
{
	if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9')) {
		return "not a C identifier";
	}
	for (const char *p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_')) {
			return "not a C identifier";
		}
	}
	for (size_t i = 0; i < sizeof(c_keywords) / sizeof(c_keywords[0]); i++) {
		if (strcmp(c_keywords[i], name) == 0) {
			return "a reserved word in the generated C code";
		}
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lifeguard codegen --schema S [--table T ...] --out DIR [--check] [--json]\n"
		"\n"
		"Writes one model header per table of schema S (LG_MODEL_DECLARE, and\n"
		"LG_MODEL_DEFINE under #ifdef LG_MODEL_IMPLEMENTATION) into DIR.\n"
		"\n"
		"options:\n"
		"  --schema S          the schema to read (required)\n"
		"  --table T           only table T (repeatable; default: every table of S)\n"
		"  --out DIR           where the headers go (required)\n"
		"  --check             write nothing; exit 1 naming each file that would change\n"
		"  --json              print the files and their state as JSON\n"
		"  --dsn CONNINFO      libpq conninfo; default $LIFEGUARD_DSN, else PG* variables\n"
		"  --help              this text\n"
		"\nExit status: 0 up to date or written, 1 a table cannot be generated or --check\n"
		"found drift, 2 bad input.\n");
}

enum { OPT_DSN = 0x100, OPT_SCHEMA, OPT_TABLE, OPT_OUT, OPT_CHECK, OPT_JSON, OPT_HELP };

static const struct option options[] = {
    {"dsn", required_argument, NULL, OPT_DSN},     {"schema", required_argument, NULL, OPT_SCHEMA},
    {"table", required_argument, NULL, OPT_TABLE}, {"out", required_argument, NULL, OPT_OUT},
    {"check", no_argument, NULL, OPT_CHECK},       {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},         {NULL, 0, NULL, 0},
};

/* Returns -1 to go on, or an exit status. */
static int parse(int argc, char **argv, struct cg_args *a)
{
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (c) {
		case OPT_DSN:
			a->dsn = optarg;
			break;
		case OPT_SCHEMA:
			a->schema = optarg;
			break;
		case OPT_TABLE:
			if (a->ntables == MAX_TABLES) {
				fprintf(stderr, "lifeguard: codegen: at most %d --table\n",
					MAX_TABLES);
				return CLI_BAD_USE;
			}
			a->tables[a->ntables++] = optarg;
			break;
		case OPT_OUT:
			a->out = optarg;
			break;
		case OPT_CHECK:
			a->check = true;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return CLI_OK;
		default:
			return cli_bad_option("codegen", c, argv);
		}
	}
	if (optind < argc) {
		return cli_bad_operand("codegen", argv[optind]);
	}
	if (a->schema == NULL || a->out == NULL) {
		fprintf(stderr, "lifeguard: codegen needs --schema S and --out DIR (try --help)\n");
		return CLI_BAD_USE;
	}
	return -1;
}

static const char *const columns_sql =
    "SELECT c.relname, a.attname, a.attnotnull, a.atthasdef, a.attgenerated <> '',"
    " a.attidentity <> '', bt.typname, bt.typtype, format_type(a.atttypid, a.atttypmod),"
    " et.typname, et.typtype, COALESCE((SELECT k.i FROM unnest(i.indkey::int2[]) WITH ORDINALITY"
    " AS k(n, i) WHERE k.n = a.attnum), 0),"
    " COALESCE(col_description(c.oid, a.attnum), ''), bn.nspname, en.nspname"
    " FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " JOIN pg_type t ON t.oid = a.atttypid"
    " JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END"
    " JOIN pg_namespace bn ON bn.oid = bt.typnamespace"
    " LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'"
    " LEFT JOIN pg_namespace en ON en.oid = et.typnamespace"
    " LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
    " AND ($2::text[] IS NULL OR c.relname = ANY ($2::text[]))"
    " ORDER BY c.relname COLLATE \"C\", a.attnum";

static const char *const fks_sql =
    "SELECT cl.relname, con.conname, array_length(con.conkey, 1), a.attname, fn.nspname,"
    " fcl.relname, fa.attname"
    " FROM pg_constraint con"
    " JOIN pg_class cl ON cl.oid = con.conrelid"
    " JOIN pg_namespace n ON n.oid = cl.relnamespace"
    " JOIN pg_class fcl ON fcl.oid = con.confrelid"
    " JOIN pg_namespace fn ON fn.oid = fcl.relnamespace"
    " CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(src, dst, i)"
    " JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.src"
    " JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.dst"
    " WHERE con.contype = 'f' AND n.nspname = $1"
    " AND ($2::text[] IS NULL OR cl.relname = ANY ($2::text[]))"
    " ORDER BY cl.relname COLLATE \"C\", con.conname COLLATE \"C\", k.i";

/* The enums of the schema's selected tables (by element too), labels in sort order. */
static const char *const enums_sql =
    "SELECT typname, enumlabel FROM (SELECT DISTINCT t.typname, e.enumlabel, e.enumsortorder"
    " FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " JOIN pg_type at ON at.oid = a.atttypid"
    " JOIN pg_type t ON t.oid IN (at.oid, at.typelem, at.typbasetype)"
    " JOIN pg_enum e ON e.enumtypid = t.oid"
    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
    " AND ($2::text[] IS NULL OR c.relname = ANY ($2::text[]))) x"
    " ORDER BY typname COLLATE \"C\", enumsortorder";

static PGresult *run(PGconn *pg, const char *sql, const struct cg_args *a, const char *tables)
{
	const char *params[2] = {a->schema, tables};
	PGresult *r = PQexecParams(pg, sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *msg = PQresultErrorMessage(r);
		fprintf(stderr, "lifeguard: codegen: reading pg_catalog: %.*s\n",
			(int)strcspn(msg, "\n"), msg);
		PQclear(r);
		return NULL;
	}
	return r;
}

static char *xdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL) {
		fprintf(stderr, "lifeguard: out of memory\n");
		exit(CLI_FAILED);
	}
	return d;
}

static void *grow(void *p, size_t n, size_t size)
{
	p = realloc(p, n * size);
	if (p == NULL) {
		fprintf(stderr, "lifeguard: out of memory\n");
		exit(CLI_FAILED);
	}
	return p;
}

/* The type of column row i of the columns query, or NULL after reporting why not. */
static const char *column_type(PGresult *r, int i, const char *schema, char **enum_type)
{
	const char *typname = PQgetvalue(r, i, 6), *typtype = PQgetvalue(r, i, 7);
	const char *table = PQgetvalue(r, i, 0), *col = PQgetvalue(r, i, 1);
	const char *sql_type = PQgetvalue(r, i, 8);
	bool catalog = strcmp(PQgetvalue(r, i, 13), "pg_catalog") == 0;
	const char *lg = NULL;
	*enum_type = NULL;
	if (strcmp(typtype, "e") == 0) {
		lg = "LG_ENUM";
		*enum_type = xdup(typname);
	} else if (!PQgetisnull(r, i, 9)) {
		if (strcmp(PQgetvalue(r, i, 10), "b") == 0 &&
		    strcmp(PQgetvalue(r, i, 14), "pg_catalog") == 0) {
			lg = map_array(PQgetvalue(r, i, 9));
		}
	} else if (strcmp(typtype, "b") == 0 && catalog) {
		lg = map_type(typname);
	}
	if (lg == NULL) {
		fprintf(stderr,
			"lifeguard: codegen: %s.%s column %s: type %s has no model type "
			"(docs/cli.md lists the supported types)\n",
			schema, table, col, sql_type);
	}
	return lg;
}

/* The version column: an int8 column whose comment says "lifeguard: version". */
static bool is_version(const char *comment, const char *type)
{
	return strstr(comment, "lifeguard: version") != NULL && strcmp(type, "LG_INT64") == 0;
}

static int cmp_pk(const void *x, const void *y)
{
	const struct cg_col *a = x, *b = y;
	/* Key columns first in key order; the sort is stable on the attnum order below. */
	int ka = a->pk_pos ? a->pk_pos : 1 << 20, kb = b->pk_pos ? b->pk_pos : 1 << 20;
	return ka != kb ? (ka < kb ? -1 : 1) : 0;
}

/* One row of the columns query into s (a new table when the name changes); 0 or
 * CLI_FAILED after reporting why the column cannot be generated. */
static int add_column(PGresult *r, int i, const char *schema, struct cg_schema *s)
{
	int status = 0;
	const char *tname = PQgetvalue(r, i, 0);
	if (s->ntables == 0 || strcmp(s->tables[s->ntables - 1].name, tname) != 0) {
		s->tables = grow(s->tables, s->ntables + 1, sizeof(*s->tables));
		s->tables[s->ntables++] = (struct cg_table){.name = xdup(tname)};
		const char *why = ident_problem(tname);
		if (why != NULL) {
			fprintf(stderr, "lifeguard: codegen: table %s.%s: the name is %s\n", schema,
				tname, why);
			status = CLI_FAILED;
		}
	}
	struct cg_table *t = &s->tables[s->ntables - 1];
	t->cols = grow(t->cols, t->ncols + 1, sizeof(*t->cols));
	struct cg_col *c = &t->cols[t->ncols++];
	*c = (struct cg_col){
	    .name = xdup(PQgetvalue(r, i, 1)),
	    .sql_type = xdup(PQgetvalue(r, i, 8)),
	    .pk_pos = atoi(PQgetvalue(r, i, 11)),
	    .generated = PQgetvalue(r, i, 4)[0] == 't',
	    .identity = PQgetvalue(r, i, 5)[0] == 't',
	};
	const char *why = ident_problem(c->name);
	if (why != NULL) {
		fprintf(stderr, "lifeguard: codegen: %s.%s column %s: the name is %s\n", schema,
			tname, c->name, why);
		status = CLI_FAILED;
	}
	c->type = column_type(r, i, schema, &c->enum_type);
	if (c->type == NULL) {
		status = CLI_FAILED;
		c->type = "?";
	}
	if (c->pk_pos > 0) {
		c->flags |= LG_COL_PK;
	}
	if (PQgetvalue(r, i, 2)[0] != 't') {
		c->flags |= LG_COL_NULLABLE;
	}
	if (PQgetvalue(r, i, 3)[0] == 't' || c->generated || c->identity) {
		c->flags |= LG_COL_DEFAULT;
	}
	if (is_version(PQgetvalue(r, i, 12), c->type)) {
		c->flags |= LG_COL_VERSION;
	}
	return status;
}

/* Checks a whole table and puts its key columns first; 0 or CLI_FAILED after reporting. */
static int finish_table(const char *schema, struct cg_table *t)
{
	int status = 0;
	if (t->ncols > LG_MODEL_MAX_COLS) {
		fprintf(stderr, "lifeguard: codegen: %s.%s: %zu columns (a model has at most %d)\n",
			schema, t->name, t->ncols, LG_MODEL_MAX_COLS);
		status = CLI_FAILED;
	}
	bool has_pk = false;
	for (size_t j = 0; j < t->ncols; j++) {
		has_pk = has_pk || t->cols[j].pk_pos > 0;
	}
	if (!has_pk) {
		fprintf(
		    stderr,
		    "lifeguard: codegen: %s.%s has no primary key (a model needs one; leave the "
		    "table out with --table)\n",
		    schema, t->name);
		status = CLI_FAILED;
	}
	/* qsort is not stable: an insertion sort keeps attnum order among equals. */
	for (size_t j = 1; j < t->ncols; j++) {
		struct cg_col c = t->cols[j];
		size_t k = j;
		for (; k > 0 && cmp_pk(&t->cols[k - 1], &c) > 0; k--) {
			t->cols[k] = t->cols[k - 1];
		}
		t->cols[k] = c;
	}
	return status;
}

static void add_fks(PGresult *r, struct cg_schema *s)
{
	for (int i = 0; i < PQntuples(r); i++) {
		struct cg_table *t = (struct cg_table *)cg_find_table(s, PQgetvalue(r, i, 0));
		if (t == NULL) {
			continue; /* a table without columns: none was generated */
		}
		t->fks = grow(t->fks, t->nfks + 1, sizeof(*t->fks));
		t->fks[t->nfks++] = (struct cg_fk){
		    .name = xdup(PQgetvalue(r, i, 1)),
		    .ncols = atoi(PQgetvalue(r, i, 2)),
		    .col = xdup(PQgetvalue(r, i, 3)),
		    .ref_schema = xdup(PQgetvalue(r, i, 4)),
		    .ref_table = xdup(PQgetvalue(r, i, 5)),
		    .ref_col = xdup(PQgetvalue(r, i, 6)),
		};
	}
}

static void add_enums(PGresult *r, struct cg_schema *s)
{
	for (int i = 0; i < PQntuples(r); i++) {
		const char *ename = PQgetvalue(r, i, 0);
		if (s->nenums == 0 || strcmp(s->enums[s->nenums - 1].name, ename) != 0) {
			s->enums = grow(s->enums, s->nenums + 1, sizeof(*s->enums));
			s->enums[s->nenums++] = (struct cg_enum){.name = xdup(ename)};
		}
		struct cg_enum *e = &s->enums[s->nenums - 1];
		e->labels = grow(e->labels, e->nlabels + 1, sizeof(*e->labels));
		e->labels[e->nlabels++] = xdup(PQgetvalue(r, i, 1));
	}
}

/* Reads the tables, then (when every table can be generated) their foreign keys and enums;
 * 0, or an exit status after reporting. */
static int read_tables(PGconn *pg, const struct cg_args *a, struct cg_schema *s)
{
	char *tables = a->ntables > 0 ? cli_text_array(a->tables, (size_t)a->ntables) : NULL;
	PGresult *r = run(pg, columns_sql, a, tables);
	int status = r == NULL ? CLI_BAD_USE : 0;
	for (int i = 0; r != NULL && i < PQntuples(r); i++) {
		status |= add_column(r, i, a->schema, s);
	}
	PQclear(r);
	for (int i = 0; status != CLI_BAD_USE && i < a->ntables; i++) {
		if (cg_find_table(s, a->tables[i]) == NULL) {
			fprintf(stderr, "lifeguard: codegen: no table %s.%s\n", a->schema,
				a->tables[i]);
			status = CLI_BAD_USE;
		}
	}
	for (size_t i = 0; status != CLI_BAD_USE && i < s->ntables; i++) {
		status |= finish_table(a->schema, &s->tables[i]);
	}
	if (status == 0) {
		r = run(pg, fks_sql, a, tables);
		if (r == NULL) {
			status = CLI_BAD_USE;
		} else {
			add_fks(r, s);
			PQclear(r);
		}
	}
	if (status == 0) {
		r = run(pg, enums_sql, a, tables);
		if (r == NULL) {
			status = CLI_BAD_USE;
		} else {
			add_enums(r, s);
			PQclear(r);
		}
	}
	free(tables);
	return status;
}

const struct cg_table *cg_find_table(const struct cg_schema *s, const char *name)
{
	for (size_t i = 0; i < s->ntables; i++) {
		if (strcmp(s->tables[i].name, name) == 0) {
			return &s->tables[i];
		}
	}
	return NULL;
}

static void free_schema(struct cg_schema *s)
{
	for (size_t i = 0; i < s->ntables; i++) {
		struct cg_table *t = &s->tables[i];
		for (size_t j = 0; j < t->ncols; j++) {
			free(t->cols[j].name);
			free(t->cols[j].sql_type);
			free(t->cols[j].enum_type);
		}
		for (size_t j = 0; j < t->nfks; j++) {
			free(t->fks[j].name);
			free(t->fks[j].col);
			free(t->fks[j].ref_schema);
			free(t->fks[j].ref_table);
			free(t->fks[j].ref_col);
		}
		free(t->cols);
		free(t->fks);
		free(t->name);
	}
	for (size_t i = 0; i < s->nenums; i++) {
		for (size_t j = 0; j < s->enums[i].nlabels; j++) {
			free(s->enums[i].labels[j]);
		}
		free(s->enums[i].labels);
		free(s->enums[i].name);
	}
	free(s->tables);
	free(s->enums);
}

/* The whole content of path (malloc'd), or NULL when it cannot be read. */
static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return NULL;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap * 2 + 4096 + 1;
			buf = grow(buf, cap, 1);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Writes text to path through a temporary file and rename(): readers never see half. */
static int write_file(const char *path, const char *text)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (f == NULL) {
		fprintf(stderr, "lifeguard: codegen: %s: %s\n", tmp, strerror(errno));
		return CLI_BAD_USE;
	}
	size_t len = strlen(text);
	bool ok = fwrite(text, 1, len, f) == len;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		fprintf(stderr, "lifeguard: codegen: writing %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return CLI_BAD_USE;
	}
	return 0;
}

static void file_json(json_t *files, const char *table, const char *path, const char *state)
{
	json_t *o = json_object();
	json_object_set_new(o, "table", json_string(table));
	json_object_set_new(o, "path", json_string(path));
	json_object_set_new(o, "state", json_string(state));
	json_array_append_new(files, o);
}

/*
 * Headers in DIR that codegen generated from a table of this schema which no longer exists
 * (only when the whole schema is generated): removed, or with --check counted as drift.
 * Files are recognized by their first comment, so hand-written headers are never touched.
 */
static int stale_files(const struct cg_args *a, const struct cg_schema *s, json_t *files,
		       int *drift)
{
	struct dirent **list;
	int n = a->ntables == 0 ? scandir(a->out, &list, NULL, alphasort) : 0;
	char marker[300];
	snprintf(marker, sizeof(marker), "Generated by `lifeguard codegen` from table %s.",
		 a->schema);
	int status = CLI_OK;
	for (int i = 0; i < n; i++) {
		char path[4096], head[512] = "", table[256];
		size_t len = strlen(list[i]->d_name);
		snprintf(path, sizeof(path), "%s/%s", a->out, list[i]->d_name);
		FILE *f = len > 2 && strcmp(list[i]->d_name + len - 2, ".h") == 0 ? fopen(path, "r")
										  : NULL;
		if (f != NULL) {
			head[fread(head, 1, sizeof(head) - 1, f)] = '\0';
			fclose(f);
		}
		const char *m = strstr(head, marker);
		free(list[i]);
		if (m == NULL || sscanf(m + strlen(marker), "%255[A-Za-z0-9_]", table) != 1 ||
		    cg_find_table(s, table) != NULL) {
			continue;
		}
		if (a->check) {
			++*drift;
			fprintf(
			    stderr,
			    "lifeguard: codegen --check: %s would be removed (no table %s.%s)\n",
			    path, a->schema, table);
		} else if (unlink(path) != 0) {
			fprintf(stderr, "lifeguard: codegen: removing %s: %s\n", path,
				strerror(errno));
			status = CLI_BAD_USE;
		} else if (!a->json) {
			printf("%-9s %s\n", "removed", path);
		}
		file_json(files, table, path, a->check ? "stale" : "removed");
	}
	if (n > 0) {
		free(list);
	}
	return status;
}

static int emit(const struct cg_args *a, const struct cg_schema *s)
{
	json_t *files = json_array();
	int status = CLI_OK, drift = 0;
	for (size_t i = 0; i < s->ntables && status != CLI_BAD_USE; i++) {
		char name[512], path[4096];
		cg_file_name(&s->tables[i], name, sizeof(name));
		snprintf(path, sizeof(path), "%s/%s", a->out, name);
		char *text = cg_render(s, &s->tables[i]);
		char *old = read_all(path);
		const char *state = old == NULL              ? "created"
				    : strcmp(old, text) == 0 ? "unchanged"
							     : "changed";
		if (old != NULL && strcmp(old, text) == 0) {
			/* nothing to do */
		} else if (a->check) {
			drift++;
			fprintf(stderr, "lifeguard: codegen --check: %s would %s\n", path,
				old == NULL ? "be created" : "change");
		} else {
			status = write_file(path, text);
		}
		if (!a->json && !a->check) {
			printf("%-9s %s\n", state, path);
		}
		file_json(files, s->tables[i].name, path, state);
		free(old);
		free(text);
	}
	if (status == CLI_OK) {
		status = stale_files(a, s, files, &drift);
	}
	if (a->json) {
		json_t *root = json_object();
		json_object_set_new(root, "schema", json_string(a->schema));
		json_object_set_new(root, "out", json_string(a->out));
		json_object_set_new(root, "check", json_boolean(a->check));
		json_object_set_new(root, "drift", json_integer(drift));
		json_object_set_new(root, "files", files);
		json_dumpf(root, stdout, JSON_INDENT(2));
		printf("\n");
		json_decref(root);
	} else {
		json_decref(files);
		if (a->check && drift == 0) {
			printf("ok: %zu model header(s) in %s match schema %s\n", s->ntables,
			       a->out, a->schema);
		}
	}
	return status != CLI_OK ? status : drift > 0 ? CLI_FAILED : CLI_OK;
}

int cli_codegen(int argc, char **argv)
{
	struct cg_args a = {0};
	int rc = parse(argc, argv, &a);
	if (rc >= 0) {
		return rc;
	}
	struct stat st;
	if (stat(a.out, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "lifeguard: codegen: --out %s: %s\n", a.out,
			errno != 0 && stat(a.out, &st) != 0 ? strerror(errno) : "not a directory");
		return CLI_BAD_USE;
	}
	if (!a.check && access(a.out, W_OK) != 0) {
		fprintf(stderr, "lifeguard: codegen: --out %s: %s\n", a.out, strerror(errno));
		return CLI_BAD_USE;
	}
	PGconn *pg = cli_pg_connect(cli_dsn(a.dsn));
	if (pg == NULL) {
		return CLI_BAD_USE;
	}
	struct cg_schema s = {.schema = (char *)a.schema};
	rc = read_tables(pg, &a, &s);
	PQfinish(pg);
	if (rc == 0 && s.ntables == 0) {
		fprintf(stderr, "lifeguard: codegen: schema %s has no tables\n", a.schema);
		rc = CLI_BAD_USE;
	}
	if (rc == 0) {
		rc = emit(&a, &s);
	}
	free_schema(&s);
	return rc;
}
