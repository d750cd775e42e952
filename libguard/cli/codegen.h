/*
 * `lifeguard codegen`: what it reads from pg_catalog (codegen_cmd.c) and renders as model
 * headers (codegen_out.c).
 */
#ifndef LIFEGUARD_CODEGEN_H
#define LIFEGUARD_CODEGEN_H

#include <stdbool.h>
#include <stddef.h>

struct cg_col {
	char *name;
	char *sql_type;   /* format_type(): "character varying(20)", "mood[]" */
	const char *type; /* the LG_* type name */
	char *enum_type;  /* the enum it holds (itself or as array elements), or NULL */
	unsigned flags;   /* LG_COL_* */
	int pk_pos;       /* 1-based position in the primary key, 0 if not in it */
	bool generated;   /* GENERATED ALWAYS AS (...) STORED: read-only */
	bool identity;
};

/* A foreign key column pair; composite keys have several, in key order. */
struct cg_fk {
	char *name; /* constraint */
	int ncols;
	char *col;
	char *ref_schema, *ref_table, *ref_col;
};

struct cg_table {
	char *name;
	struct cg_col *cols; /* primary key columns first, in key order; then by attnum */
	size_t ncols;
	struct cg_fk *fks; /* sorted by constraint name, then key position */
	size_t nfks;
};

struct cg_enum {
	char *name;
	char **labels; /* in sort order */
	size_t nlabels;
};

struct cg_schema {
	char *schema;
	struct cg_table *tables; /* sorted by name (bytewise) */
	size_t ntables;
	struct cg_enum *enums; /* the enums of the schema's tables, sorted by name */
	size_t nenums;
};

/* The header of one table (malloc'd text). */
char *cg_render(const struct cg_schema *s, const struct cg_table *t);

/* The file name of a table's header: "<table>.h". */
void cg_file_name(const struct cg_table *t, char *buf, size_t size);

/* The table named name, or NULL. */
const struct cg_table *cg_find_table(const struct cg_schema *s, const char *name);

#endif
