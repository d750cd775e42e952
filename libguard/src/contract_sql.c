/*
 * The contract's SQL (contract.h): the catalog query both sides resolve a table with, and the
 * statements that read rows by key and render key text canonically.
 *
 * A key part goes into a statement in one of two ways. Kinds canonicalized client-side
 * (integers, uuid, boolean, text) arrive in canonical text and are cast plainly: their input
 * does not depend on session settings. Every other type is parsed by lifeguard.key_in(), which
 * runs with the contract's fixed settings, then cast to the column's type (a typmod such as
 * timestamp(3) or numeric(10,2) applies there). Key text read back from a row is rendered by
 * format('%s', ...) (the type's output function) for the client-side kinds and by
 * lifeguard.key_text() (fixed settings) for the others.
 */
#include <stdio.h>
#include <string.h>

#include "contract.h"

const char lg__contract_catalog_sql[] =
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname::text,"
    " format_type(a.atttypid, a.atttypmod),"
    " EXISTS (SELECT 1 FROM pg_attribute v WHERE v.attrelid = c.oid"
    "         AND v.attname = 'lg_version' AND NOT v.attisdropped)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
    " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o)"
    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
    " WHERE c.oid = to_regclass($1) ORDER BY k.o";

/* A statement being written: counts past size so callers learn the length they need. */
struct sql_out {
	char *buf;
	size_t size;
	size_t len;
};

static void sql_put(struct sql_out *o, const char *s)
{
	for (; *s != '\0'; s++, o->len++) {
		if (o->len + 1 < o->size) {
			o->buf[o->len] = *s;
		}
	}
	if (o->size > 0) {
		o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
	}
}

/* prefix then ident as a quoted identifier ("" doubles a quote). */
static void sql_ident(struct sql_out *o, const char *prefix, const char *ident)
{
	sql_put(o, prefix);
	sql_put(o, "\"");
	for (const char *s = ident; *s != '\0'; s++) {
		char one[3] = {*s, *s == '"' ? '"' : '\0', '\0'};
		sql_put(o, one);
	}
	sql_put(o, "\"");
}

/* The typed value of a key part whose text is the SQL expression text. */
static void sql_key_value(struct sql_out *o, const struct lg__contract_col *c, const char *text)
{
	if (c->kind != LG__KEY_DB) {
		sql_put(o, "(");
		sql_put(o, text);
		sql_put(o, ")::");
		sql_put(o, c->type);
		return;
	}
	sql_put(o, "CAST(lifeguard.key_in(");
	sql_put(o, text);
	sql_put(o, ", NULL::");
	sql_put(o, c->type);
	sql_put(o, ") AS ");
	sql_put(o, c->type);
	sql_put(o, ")");
}

/* The canonical text of column c of row alias t. */
static void sql_key_text(struct sql_out *o, const struct lg__contract_col *c)
{
	sql_put(o, c->kind != LG__KEY_DB ? "format('%s', " : "lifeguard.key_text(");
	sql_ident(o, "t.", c->name);
	sql_put(o, ")");
}

size_t lg__contract_read_one_sql(char *buf, size_t size, const char *table,
				 const struct lg__contract_col *cols, size_t n)
{
	struct sql_out o = {buf, size, 0};
	sql_put(&o, "SELECT to_jsonb(t)::text, t.lg_version");
	for (size_t i = 0; i < n; i++) {
		sql_put(&o, ", ");
		sql_key_text(&o, &cols[i]);
	}
	sql_put(&o, " FROM ");
	sql_put(&o, table);
	sql_put(&o, " t WHERE ");
	for (size_t i = 0; i < n; i++) {
		char param[24];
		snprintf(param, sizeof(param), "$%zu", i + 1);
		sql_ident(&o, i ? " AND t." : "t.", cols[i].name);
		sql_put(&o, " = ");
		sql_key_value(&o, &cols[i], param);
	}
	return o.len;
}

size_t lg__contract_read_batch_sql(char *buf, size_t size, const char *table,
				   const struct lg__contract_col *cols, size_t n)
{
	struct sql_out o = {buf, size, 0};
	sql_put(&o, "SELECT k.i, t.lg_version, to_jsonb(t)::text FROM "
		    "jsonb_array_elements($1::jsonb) WITH ORDINALITY AS k(key, i) JOIN ");
	sql_put(&o, table);
	sql_put(&o, " t ON ");
	for (size_t i = 0; i < n; i++) {
		char part[32];
		snprintf(part, sizeof(part), "k.key->>%zu", i);
		sql_ident(&o, i ? " AND t." : "t.", cols[i].name);
		sql_put(&o, " = ");
		sql_key_value(&o, &cols[i], part);
	}
	return o.len;
}

size_t lg__contract_canon_sql(char *buf, size_t size, const struct lg__contract_col *cols, size_t n)
{
	struct sql_out o = {buf, size, 0};
	sql_put(&o, "SELECT ");
	for (size_t i = 0; i < n; i++) {
		char param[24];
		snprintf(param, sizeof(param), "$%zu", i + 1);
		sql_put(&o, i ? ", " : "");
		sql_put(&o, cols[i].kind != LG__KEY_DB ? "format('%s', " : "lifeguard.key_text(");
		sql_key_value(&o, &cols[i], param);
		sql_put(&o, ")");
	}
	return o.len;
}
