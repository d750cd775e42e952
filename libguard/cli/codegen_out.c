/*
 * The text of a generated model header. Deterministic: it depends only on the catalog
 * (tables by name, key columns in key order then the rest by position, constraints by name),
 * never on time, host or user, so re-running gives the same bytes.
 *
 * Layout of <table>.h:
 *   the header comment (source table, columns with their PostgreSQL types);
 *   #define <TABLE>_COLUMNS(X) with one X(model, column, LG_type, flags) per column;
 *   LG_MODEL_DECLARE(<table>, <TABLE>_COLUMNS);
 *   LG_MODEL_DEFINE(...) under #ifdef LG_MODEL_IMPLEMENTATION;
 *   the labels of the enums its columns hold;
 *   relation loaders for its single-column foreign keys (belongs-to and has-many, both over
 *   lg_model_load_related).
 * The body sits between clang-format off/on comments so a formatter leaves it as generated.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libguard/model.h>

#include "codegen.h"

void cg_file_name(const struct cg_table *t, char *buf, size_t size)
{
	snprintf(buf, size, "%s.h", t->name);
}

/* s upper-cased, every other byte than [A-Z0-9] as '_'. */
static void put_upper(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		int c = toupper((unsigned char)*s);
		fputc(isalnum(c) && (unsigned char)c < 0x80 ? c : '_', f);
	}
}

/* before, then <SCHEMA>_<NAME> upper-cased, then after: the guard macros. */
static void put_guard(FILE *f, const char *before, const char *schema, const char *name,
		      const char *after)
{
	fputs(before, f);
	put_upper(f, schema);
	fputc('_', f);
	put_upper(f, name);
	fputs(after, f);
}

static void put_flags(FILE *f, unsigned flags)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{LG_COL_PK, "LG_COL_PK"},
		     {LG_COL_NULLABLE, "LG_COL_NULLABLE"},
		     {LG_COL_DEFAULT, "LG_COL_DEFAULT"},
		     {LG_COL_VERSION, "LG_COL_VERSION"}};
	int n = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & names[i].bit) {
			fprintf(f, "%s%s", n++ ? " | " : "", names[i].name);
		}
	}
	if (n == 0) {
		fputc('0', f);
	}
}

static void put_col_comment(FILE *f, const struct cg_col *c)
{
	fprintf(f, " *   %s %s", c->name, c->sql_type);
	if (!(c->flags & LG_COL_NULLABLE)) {
		fprintf(f, " not null");
	}
	if (c->pk_pos > 0) {
		fprintf(f, ", primary key #%d", c->pk_pos);
	}
	if (c->generated) {
		fprintf(f, ", generated (read-only, left out of inserts)");
	} else if (c->identity) {
		fprintf(f, ", identity (left out of inserts)");
	} else if (c->flags & LG_COL_DEFAULT) {
		fprintf(f, ", default (left out of inserts)");
	}
	if (c->flags & LG_COL_VERSION) {
		fprintf(f, ", optimistic-lock version");
	}
	fprintf(f, "\n");
}

static int col_index(const struct cg_table *t, const char *name)
{
	for (size_t i = 0; i < t->ncols; i++) {
		if (strcmp(t->cols[i].name, name) == 0) {
			return (int)i;
		}
	}
	return -1;
}

static bool key_type(const char *type)
{
	return strcmp(type, "LG_INT32") == 0 || strcmp(type, "LG_INT64") == 0 ||
	       strcmp(type, "LG_TEXT") == 0 || strcmp(type, "LG_UUID") == 0;
}

/* Why foreign key fk of t gets no loaders, or NULL when it gets them (*ref, *ci, *ri set). */
static const char *rel_problem(const struct cg_schema *s, const struct cg_table *t,
			       const struct cg_fk *fk, const struct cg_table **ref, int *ci,
			       int *ri)
{
	if (fk->ncols != 1) {
		return "a composite key (the loaders take one column)";
	}
	if (strcmp(fk->ref_schema, s->schema) != 0 ||
	    (*ref = cg_find_table(s, fk->ref_table)) == NULL) {
		return "its table is not generated in this run";
	}
	*ci = col_index(t, fk->col);
	*ri = col_index(*ref, fk->ref_col);
	if (!key_type(t->cols[*ci].type) ||
	    strcmp(t->cols[*ci].type, (*ref)->cols[*ri].type) != 0) {
		return "the key type is not int4, int8, text or uuid on both sides";
	}
	return NULL;
}

static void put_relation(FILE *f, const struct cg_schema *s, const struct cg_table *t,
			 const struct cg_fk *fk)
{
	const struct cg_table *ref = NULL;
	int ci = 0, ri = 0;
	const char *why = rel_problem(s, t, fk, &ref, &ci, &ri);
	fprintf(f, "\n/* Foreign key %s: %s(%s", fk->name, t->name, fk->col);
	for (int k = 1; k < fk->ncols; k++) {
		fprintf(f, ", %s", fk[k].col);
	}
	fprintf(f, ") references %s.%s(%s", fk->ref_schema, fk->ref_table, fk->ref_col);
	for (int k = 1; k < fk->ncols; k++) {
		fprintf(f, ", %s", fk[k].ref_col);
	}
	if (why != NULL) {
		fprintf(f, ").\n * No loaders: %s. */\n", why);
		return;
	}
	const char *p = ref->name, *c = t->name;
	fprintf(f, ").\n * Loaders: one statement for a whole batch of rows "
		   "(lg_model_load_related). */\n");
	if (ref != t) {
		fprintf(f, "struct %s;\nextern const struct lg_model %s_model;\n", p, p);
	}
	fprintf(f,
		"/* Belongs-to: the %s rows that n %s rows reference through %s. */\n"
		"static inline __attribute__((unused)) int\n"
		"%s_load_%s_%s(const struct lg_db *db, const struct %s *rows, size_t n,\n"
		"\tstruct lg_rows *out, struct lg_error *err)\n"
		"{\n"
		"\treturn lg_model_load_related(db, &%s_model, %d /* %s_ci_%s */, &%s_model,\n"
		"\t\trows, n, %s_ci_%s, out, err);\n"
		"}\n",
		p, c, fk->col, c, fk->col, p, c, p, ri, p, fk->ref_col, c, c, fk->col);
	fprintf(f,
		"/* Has-many: the %s rows whose %s references one of n %s rows. */\n"
		"static inline __attribute__((unused)) int\n"
		"%s_load_%s_by_%s(const struct lg_db *db, const struct %s *rows, size_t n,\n"
		"\tstruct lg_rows *out, struct lg_error *err)\n"
		"{\n"
		"\treturn lg_model_load_related(db, &%s_model, %s_ci_%s, &%s_model,\n"
		"\t\trows, n, %d /* %s_ci_%s */, out, err);\n"
		"}\n",
		c, fk->col, p, p, c, fk->col, p, c, c, fk->col, p, ri, p, fk->ref_col);
	if (ref != t) {
		/* The parent's column index is a number here (its header need not be included);
		 * where it is, a mismatch from separate codegen runs does not compile. */
		put_guard(f, "#ifdef LG_MODEL_", s->schema, p, "_H\n");
		fprintf(
		    f,
		    "_Static_assert(%s_ci_%s == %d, \"%s.h and %s.h come from different codegen "
		    "runs: regenerate both\");\n#endif\n",
		    p, fk->ref_col, ri, p, c);
	}
}

static void put_enum(FILE *f, const struct cg_schema *s, const struct cg_enum *e)
{
	put_guard(f, "\n#ifndef LG_ENUM_", s->schema, e->name, "\n");
	put_guard(f, "#define LG_ENUM_", s->schema, e->name, "\n");
	fprintf(f, "/* Labels of enum %s.%s, in sort order. */\n", s->schema, e->name);
	for (size_t i = 0; i < e->nlabels; i++) {
		fprintf(f, "#define ");
		put_upper(f, e->name);
		fputc('_', f);
		put_upper(f, e->labels[i]);
		fprintf(f, " \"");
		for (const char *q = e->labels[i]; *q != '\0'; q++) {
			if (*q == '"' || *q == '\\') {
				fputc('\\', f);
			}
			fputc(*q, f);
		}
		fprintf(f, "\"\n");
	}
	fprintf(f, "#endif\n");
}

char *cg_render(const struct cg_schema *s, const struct cg_table *t)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL) {
		fprintf(stderr, "lifeguard: out of memory\n");
		exit(1);
	}
	fprintf(f,
		"/* clang-format off */\n"
		"/*\n"
		" * Generated by `lifeguard codegen` from table %s.%s: do not edit. Re-run\n"
		" * `lifeguard codegen --schema %s --out DIR` after a schema change; with --check\n"
		" * it exits 1 when this file is out of date.\n"
		" *\n"
		" * Columns:\n",
		s->schema, t->name, s->schema);
	for (size_t i = 0; i < t->ncols; i++) {
		put_col_comment(f, &t->cols[i]);
	}
	fprintf(f,
		" *\n"
		" * One .c file defines LG_MODEL_IMPLEMENTATION before including the generated\n"
		" * headers: it holds the model descriptors (%s_model, ...).\n"
		" */\n",
		t->name);
	put_guard(f, "#ifndef LG_MODEL_", s->schema, t->name, "_H\n");
	put_guard(f, "#define LG_MODEL_", s->schema, t->name, "_H\n");
	fprintf(f, "\n#include <libguard/model.h>\n\n#define ");
	put_upper(f, t->name);
	fprintf(f, "_COLUMNS(X) \\\n");
	for (size_t i = 0; i < t->ncols; i++) {
		const struct cg_col *c = &t->cols[i];
		fprintf(f, "\tX(%s, %s, %s, ", t->name, c->name, c->type);
		put_flags(f, c->flags);
		fprintf(f, ")%s\n", i + 1 < t->ncols ? " \\" : "");
	}
	fprintf(f, "LG_MODEL_DECLARE(%s, ", t->name);
	put_upper(f, t->name);
	fprintf(f,
		"_COLUMNS);\n#ifdef LG_MODEL_IMPLEMENTATION\nLG_MODEL_DEFINE(%s, \"%s\", \"%s\", ",
		t->name, s->schema, t->name);
	put_upper(f, t->name);
	fprintf(f, "_COLUMNS);\n#endif\n");
	for (size_t i = 0; i < s->nenums; i++) {
		for (size_t j = 0; j < t->ncols; j++) {
			if (t->cols[j].enum_type != NULL &&
			    strcmp(t->cols[j].enum_type, s->enums[i].name) == 0) {
				put_enum(f, s, &s->enums[i]);
				break;
			}
		}
	}
	for (size_t i = 0; i < t->nfks; i += (size_t)(t->fks[i].ncols > 0 ? t->fks[i].ncols : 1)) {
		put_relation(f, s, t, &t->fks[i]);
	}
	fprintf(f, "\n#endif\n/* clang-format on */\n");
	fclose(f);
	return text;
}
