/*
 * The data contract between libguard and the reflector, in one module (docs/data-contract.md).
 * Both sides build every key, value, script call and contract SQL statement here; nothing
 * else spells them. The module is pure (no loop, no sockets, no allocation: builders write
 * into the caller's buffer) and depends on nothing but libc and libguard/error.h, so libguard
 * and the reflector both link it (lg_contract static library) and it calls neither.
 *
 *   contract_scripts.c  the Lua scripts (libguard/cache_contract.h) and their answer words
 *   contract_key.c      Redis keys, fences, SCAN patterns, values, client-side canonical text
 *   contract_sql.c      the catalog query, the read statements, key canonicalization
 *   contract_schema.c   the PostgreSQL objects: outbox, triggers, reflect(), upgrade()
 *
 * Canonical key text: a key part is the column's output as PostgreSQL prints it with the
 * settings of LG__CONTRACT_KEY_SETTINGS, whatever the writer's or reader's session says.
 * Capture triggers render it under those settings (a per-table function with SET clauses),
 * reads render it with lifeguard.key_text() (same SET clauses) and parse a caller's spelling
 * with lifeguard.key_in() (same SET clauses). Key columns of the types in
 * enum lg__contract_kind are made canonical client-side when the spelling is one of the
 * plain forms below; every other spelling and type goes through the database.
 */
#ifndef LG_CONTRACT_H
#define LG_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/cache_contract.h"

/* The contract version the installed PostgreSQL objects are checked against. */
#define LG__CONTRACT_VERSION "2"

/* The settings keys are rendered under (DESIGN: canonical key text). */
#define LG__CONTRACT_KEY_SETTINGS                                                                  \
	"SET TimeZone TO 'UTC' SET DateStyle TO 'ISO, MDY' SET IntervalStyle TO 'postgres'"        \
	" SET extra_float_digits TO '1' SET bytea_output TO 'hex'"

/* ---- Script answers (the words the scripts of libguard/cache_contract.h return). ---- */

enum lg__contract_answer {
	LG__ANSWER_OTHER = 0, /* anything else: an error text, a reply of another shape */
	LG__ANSWER_CACHED,
	LG__ANSWER_FENCED,
	LG__ANSWER_REFRESHED,
	LG__ANSWER_KEPT,
	LG__ANSWER_TOMBSTONED,
	LG__ANSWER_FILLED,
	LG__ANSWER_LATE,
};

/* The answer word s (NULL allowed: LG__ANSWER_OTHER). */
enum lg__contract_answer lg__contract_answer(const char *s);
/* The word of an answer ("" for LG__ANSWER_OTHER). */
const char *lg__contract_answer_word(enum lg__contract_answer a);

/* ---- Keys ---- */

/* How a key column's text becomes canonical. */
enum lg__contract_kind {
	LG__KEY_DB = 0, /* rendered by the database (lifeguard.key_in / key_text) */
	LG__KEY_INT2,
	LG__KEY_INT4,
	LG__KEY_INT8,
	LG__KEY_UUID,
	LG__KEY_BOOL,
	LG__KEY_TEXT, /* text and varchar without a length: the spelling is the value */
};

/* The kind of a key column from its format_type() text. */
enum lg__contract_kind lg__contract_kind(const char *type);

/*
 * Writes the canonical text of a key part spelled in of kind into out (size bytes). Returns
 * 0, or LG__CONTRACT_ASK_DB when the spelling is not one of the plain forms handled here
 * (the database decides: it may be valid, or an error), or LG_ERANGE (out too small). kind
 * LG__KEY_DB always answers LG__CONTRACT_ASK_DB.
 */
#define LG__CONTRACT_ASK_DB (-1)
int lg__contract_canon(enum lg__contract_kind kind, const char *in, char *out, size_t size);

/* The decimal text of v into out (size bytes, 21 is always enough): its length, or 0 when it
 * does not fit. What snprintf("%lld") writes, without its cost on the hit path. */
size_t lg__contract_int_text(char *out, size_t size, int64_t v);

/* "<fence_prefix>:<table>" into buf: 0, LG_EINVAL (empty), LG_ERANGE (does not fit). */
int lg__contract_table_fence(char *buf, size_t size, const char *fence_prefix, const char *table);

/* SCAN MATCH pattern of a table's row keys ("<prefix>:<table>:*", glob-escaped). */
int lg__contract_table_match(char *buf, size_t size, const char *prefix, const char *table);

/* Copies s into buf escaping Redis glob characters (*?[]\); false when it does not fit. */
bool lg__contract_glob_escape(char *buf, size_t size, const char *s);

/* ---- Values: {"v":<version>,"row":<row json>} ---- */

/* Bytes of the value of a row of row_len bytes (without the terminating NUL). */
size_t lg__contract_value_len(int64_t version, size_t row_len);
/* Writes the value into buf, which holds lg__contract_value_len() + 1 bytes; returns the
 * length written (NUL-terminated). */
size_t lg__contract_value_write(char *buf, int64_t version, const char *row, size_t row_len);
/*
 * Parses a stored value of len bytes: true for a row value, with *version and the row JSON
 * (*row points into v, *row_len bytes). Tombstones and foreign values answer false.
 */
bool lg__contract_value_parse(const char *v, size_t len, int64_t *version, const char **row,
			      size_t *row_len);

/*
 * The absent marker: {"v":<version>,"absent":true}, filled by libguard (only) for a key whose
 * row does not exist, with LG_CACHE_FILL like a row (docs/read-path.md, "Negative caching").
 * The scripts read its version like any value's, so a fence above it refuses it and the
 * reflector's refresh of a later INSERT replaces it. Writes into buf (size bytes) and returns
 * the length, >= size when it did not fit (as snprintf).
 */
size_t lg__contract_absent_write(char *buf, size_t size, int64_t version);
/* True when the stored value v (len bytes) is an absent marker; *version its version. */
bool lg__contract_absent_parse(const char *v, size_t len, int64_t *version);

/* ---- SQL ---- */

/*
 * The catalog query: $1 is a table name (any spelling to_regclass accepts). One row per key
 * column in key order: quote_ident(schema).quote_ident(table), the column name, its
 * format_type(), whether the table has an lg_version column. No row: not a table with a
 * primary key.
 */
extern const char lg__contract_catalog_sql[];

/* One key column as the catalog describes it. */
struct lg__contract_col {
	const char *name; /* Borrowed */
	const char *type; /* Borrowed: format_type() text */
	enum lg__contract_kind kind;
};

/*
 * The builders write the statement into buf (size bytes, NUL-terminated when it fits) and
 * return its length: a result >= size means it did not fit (call again with a larger buffer),
 * as snprintf does. table is the catalog's canonical name.
 */

/* Read of one row: $1..$n are the key parts (canonical text); columns: to_jsonb(t)::text,
 * lg_version, then the canonical text of each key part as the row holds it. */
size_t lg__contract_read_one_sql(char *buf, size_t size, const char *table,
				 const struct lg__contract_col *cols, size_t n);

/* Read of a batch: $1 is a JSON array of key arrays (text parts); columns: the key's 1-based
 * ordinal in $1, lg_version, to_jsonb(t)::text. */
size_t lg__contract_read_batch_sql(char *buf, size_t size, const char *table,
				   const struct lg__contract_col *cols, size_t n);

/* Canonical text of a caller's key parts: $1..$n are the parts as spelled; one row, one
 * column per part. An invalid spelling fails with the type's data exception (SQLSTATE 22). */
size_t lg__contract_canon_sql(char *buf, size_t size, const struct lg__contract_col *cols,
			      size_t n);

/*
 * The statements that install or upgrade the PostgreSQL side, in order, NULL-terminated:
 * idempotent, meant to run in one transaction under pg_advisory_xact_lock(
 * LG__CONTRACT_LOCK_KEY). The last one replaces capture triggers installed by older versions.
 */
extern const char *const lg__contract_setup_sql[];
#define LG__CONTRACT_LOCK_KEY 7366437153012475121LL

/* One boolean: true when lg__contract_setup_sql must run (objects missing or older). */
extern const char lg__contract_needs_setup_sql[];

/* Enables reflection of one table ($1): the key columns installed, as text. */
extern const char lg__contract_reflect_sql[];

#endif
