/*
 * libguard ORM: typed models, CRUD, change sets, upserts, optimistic locking, relations.
 *
 * Declare a table once as an X-macro column list; LG_MODEL_DECLARE generates the C struct,
 * typed column identifiers, typed change-set setters and a typed query builder,
 * LG_MODEL_DEFINE (in one .c file) the model descriptor:
 *
 *	#define USER_COLUMNS(X)                                          \
 *		X(user, id, LG_INT64, LG_COL_PK | LG_COL_DEFAULT)        \
 *		X(user, email, LG_TEXT, 0)                               \
 *		X(user, name, LG_TEXT, LG_COL_NULLABLE)                  \
 *		X(user, version, LG_INT64, LG_COL_VERSION | LG_COL_DEFAULT)
 *	LG_MODEL_DECLARE(user, USER_COLUMNS)             -- struct user, user_col_email, ...
 *	LG_MODEL_DEFINE(user, "public", "users", USER_COLUMNS)    -- user_model
 *
 *	user_query_eq(&q, user_col_email, lg_param_text("a@b"));  -- post_col_title: no compile
 *
 * Column identifiers (user_col_email) have a type of their own per model (struct user_col),
 * so a column of another model passed to the typed query builder, to LG_COL() masks of the
 * generated code or to LG_MODEL_LOAD_RELATED is a compile error, not a wrong query. The
 * untyped calls underneath (lg_query_eq, lg_model_load_related ...) take column indexes, for
 * hand-written descriptors; m##_col_index() converts. docs/orm.md has the whole picture.
 *
 * struct user then has one field per column (C types below) plus two hidden fields:
 * lg_null, a bit per column that is set when the value is SQL NULL (never a magic value),
 * and lg_mem, what the row Owns after a decode (release with lg_row_clear()). A row loaded
 * by a statement (find, reload, insert, update, upsert, lg_query_first) Borrows its strings
 * and byte strings from that statement's result, which lg_mem then keeps alive: no copy is
 * made, and the result (a few KiB) is freed by lg_row_clear(); a model without string or
 * byte string columns keeps nothing. To keep many rows for long, lg_row_copy() gives each a
 * compact block of its own instead. Rows you fill yourself keep lg_mem NULL and Borrow
 * their strings. Arrays decoded from a result live in blocks the result keeps, like strings.
 * A model column that a result does not have (a narrower select list, raw SQL, a table
 * without that column) reads as NULL.
 *
 * SQL safety: table and column names come only from the descriptor; they are validated
 * (non-empty, at most 63 bytes, no NUL) and always double-quoted. Values are always bound
 * parameters ($n), never spliced into SQL text.
 *
 * Every call takes a struct lg_db (a pool, or a transaction pinned by lg_pool_begin) and
 * follows the pool's contract: it works inside a coroutine or outside any (then it runs the
 * loop), and returns 0 or an LG_E* code with details in the optional err.
 */
#ifndef LIBGUARD_MODEL_H
#define LIBGUARD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"
#include "libguard/param.h"
#include "libguard/result.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_pool;
struct lg_tx;
struct lg_query;
struct lg_dbh;
struct lg_session;

/*
 * Column types and the C type of their struct field.
 *
 * This table is the contract between SQL and C, and what a code generator maps pg_catalog
 * types onto (pg_type name -> enum value). Values are appended, never renumbered. Every type
 * round-trips exactly: integers, booleans, UUIDs and the date/time types travel as binary
 * parameters; text, JSON, numeric and enum labels as text. Results are read in text form
 * and parsed strictly (see docs/orm.md): a value the server would not print, or one that
 * does not fit the C type, fails the read with LG_EINVAL / LG_ERANGE, and a field value the
 * server cannot hold (a time past 24:00, malformed numeric text ...) fails the write with
 * LG_EINVAL before anything is sent. Nothing is ever silently truncated or rounded.
 *
 *   enum value           PostgreSQL type        C field type
 *   LG_INT32             int4 (int2 reads too)  int32_t
 *   LG_INT64             int8                   int64_t
 *   LG_FLOAT64           float8 (float4 reads)  double
 *   LG_BOOL              boolean                bool
 *   LG_TEXT              text, varchar, bpchar  const char * (UTF-8, NUL-terminated)
 *   LG_BYTEA             bytea                  struct lg_bytes (may contain zero bytes)
 *   LG_UUID              uuid                   struct lg_uuid
 *   LG_TIMESTAMPTZ       timestamptz            int64_t µs since 1970-01-01 00:00 UTC
 *   LG_JSONB             jsonb, json            const char * (JSON text)
 *   LG_NUMERIC           numeric                const char * (exact decimal text, never a
 *                                               double: "123456789012345678901234567890.1",
 *                                               "-1.5e-3" on input, "NaN", "Infinity")
 *   LG_DATE              date                   int32_t days since 1970-01-01
 *   LG_TIME              time (without tz)      int64_t µs since midnight, 0 to
 *                                               LG_TIME_MAX (24:00:00) inclusive
 *   LG_TIMESTAMP         timestamp (no tz)      int64_t µs since 1970-01-01 00:00 on the
 *                                               same wall clock (no zone is applied)
 *   LG_INTERVAL          interval               struct lg_interval {months, days, us}
 *   LG_ENUM              any enum type          const char * (the label)
 *   LG_INET              inet (cidr reads too)  struct lg_inet
 *   LG_INT32_ARRAY       int4[]                 struct lg_array_int32
 *   LG_INT64_ARRAY       int8[]                 struct lg_array_int64
 *   LG_FLOAT64_ARRAY     float8[]               struct lg_array_float64
 *   LG_BOOL_ARRAY        boolean[]              struct lg_array_bool
 *   LG_TEXT_ARRAY        text[] (varchar[])     struct lg_array_text
 *   LG_UUID_ARRAY        uuid[]                 struct lg_array_uuid
 *
 * Dates and timestamps use the proleptic Gregorian calendar with astronomical years (1 BC is
 * year 0), as PostgreSQL does. 'infinity' and '-infinity' are the constants
 * LG_DATE_INFINITY / LG_DATE_NEG_INFINITY and LG_TIMESTAMP_INFINITY /
 * LG_TIMESTAMP_NEG_INFINITY (the latter also for timestamptz); they never collide with a
 * finite value the server accepts. Finite values outside the server's range (dates before
 * 4713 BC, timestamps before 4713 BC or after 294276 AD) are refused with LG_EINVAL.
 *
 * Arrays are one-dimensional with any number of elements (an empty array has n == 0 and
 * v == NULL allowed). nulls is NULL when no element is NULL, else n flags: nulls[i] true
 * means element i is SQL NULL and v[i] is then zero (a NULL pointer for text). Arrays of
 * more than one dimension read as LG_EINVAL; the lower bound is not kept (always 1).
 */
enum lg_type {
	LG_INT32,         /* int4         int32_t */
	LG_INT64,         /* int8         int64_t */
	LG_FLOAT64,       /* float8       double */
	LG_BOOL,          /* boolean      bool */
	LG_TEXT,          /* text         const char * (UTF-8, NUL-terminated) */
	LG_BYTEA,         /* bytea        struct lg_bytes (may contain zero bytes) */
	LG_UUID,          /* uuid         struct lg_uuid */
	LG_TIMESTAMPTZ,   /* timestamptz  int64_t µs since 1970-01-01 UTC */
	LG_JSONB,         /* jsonb        const char * (JSON text) */
	LG_NUMERIC,       /* numeric      const char * (exact decimal text) */
	LG_DATE,          /* date         int32_t days since 1970-01-01 */
	LG_TIME,          /* time         int64_t µs since midnight */
	LG_TIMESTAMP,     /* timestamp    int64_t µs since 1970-01-01, wall clock */
	LG_INTERVAL,      /* interval     struct lg_interval */
	LG_ENUM,          /* enum         const char * (label) */
	LG_INET,          /* inet         struct lg_inet */
	LG_INT32_ARRAY,   /* int4[]     struct lg_array_int32 */
	LG_INT64_ARRAY,   /* int8[]     struct lg_array_int64 */
	LG_FLOAT64_ARRAY, /* float8[]   struct lg_array_float64 */
	LG_BOOL_ARRAY,    /* boolean[]  struct lg_array_bool */
	LG_TEXT_ARRAY,    /* text[]     struct lg_array_text */
	LG_UUID_ARRAY,    /* uuid[]     struct lg_array_uuid */
};

struct lg_bytes {
	const uint8_t *data;
	size_t len;
};

struct lg_uuid {
	uint8_t b[16];
};

/* 'infinity' and '-infinity' of date, timestamp and timestamptz fields. */
#define LG_DATE_INFINITY          INT32_MAX
#define LG_DATE_NEG_INFINITY      INT32_MIN
#define LG_TIMESTAMP_INFINITY     INT64_MAX
#define LG_TIMESTAMP_NEG_INFINITY INT64_MIN
/* The largest time of day: 24:00:00, which PostgreSQL's time type accepts. */
#define LG_TIME_MAX INT64_C(86400000000)

/*
 * An interval as PostgreSQL stores it: three independent parts, because a month has no fixed
 * number of days and a day no fixed number of hours across a DST change. '1 year 2 mons
 * 3 days 04:05:06.5' is {14, 3, 14706500000}. Each part may be negative on its own.
 */
struct lg_interval {
	int32_t months;
	int32_t days;
	int64_t us;
};

/* An inet value: an IPv4 or IPv6 host address with an optional netmask length. */
#define LG_INET_V4 4
#define LG_INET_V6 6
struct lg_inet {
	uint8_t family;   /* LG_INET_V4 or LG_INET_V6 */
	uint8_t bits;     /* netmask length: 0-32 (v4) or 0-128 (v6); 32/128 for a host */
	uint8_t addr[16]; /* network byte order; v4 uses the first 4 bytes */
};

/* Arrays (see the type table): v and nulls Borrowed like strings, n elements. */
#define LG__ARRAY_STRUCT(name, ctype)                                                              \
	struct lg_array_##name {                                                                   \
		const ctype *v;                                                                    \
		const bool *nulls; /* NULL: no NULL element; else n flags */                       \
		size_t n;                                                                          \
	}
LG__ARRAY_STRUCT(int32, int32_t);
LG__ARRAY_STRUCT(int64, int64_t);
LG__ARRAY_STRUCT(float64, double);
LG__ARRAY_STRUCT(bool, bool);
LG__ARRAY_STRUCT(text, char *const);
LG__ARRAY_STRUCT(uuid, struct lg_uuid);

/*
 * Parameters of these types, for query filters (model fields are bound by the ORM itself).
 * Binary, except numeric (text of type numeric) and enum labels (text whose type the server
 * infers from the column). A value the server cannot hold -- a date, time or timestamp out of
 * range, numeric text that is not a number -- marks the parameter invalid, and the call that
 * sends it fails with LG_EINVAL before anything is sent. inet filters take lg_param_text
 * ("10.0.0.0/8"), which the server reads as inet.
 */
LG_API struct lg_param lg_param_date(int32_t days_since_1970);
LG_API struct lg_param lg_param_time(int64_t us_since_midnight);
LG_API struct lg_param lg_param_timestamp(int64_t us_since_1970);
LG_API struct lg_param lg_param_interval(struct lg_interval v);
LG_API struct lg_param lg_param_numeric(const char *decimal); /* Borrowed until sent */
LG_API struct lg_param lg_param_enum(const char *label);      /* Borrowed until sent */

#define LG__CTYPE_LG_INT32         int32_t
#define LG__CTYPE_LG_INT64         int64_t
#define LG__CTYPE_LG_FLOAT64       double
#define LG__CTYPE_LG_BOOL          bool
#define LG__CTYPE_LG_TEXT          const char *
#define LG__CTYPE_LG_BYTEA         struct lg_bytes
#define LG__CTYPE_LG_UUID          struct lg_uuid
#define LG__CTYPE_LG_TIMESTAMPTZ   int64_t
#define LG__CTYPE_LG_JSONB         const char *
#define LG__CTYPE_LG_NUMERIC       const char *
#define LG__CTYPE_LG_DATE          int32_t
#define LG__CTYPE_LG_TIME          int64_t
#define LG__CTYPE_LG_TIMESTAMP     int64_t
#define LG__CTYPE_LG_INTERVAL      struct lg_interval
#define LG__CTYPE_LG_ENUM          const char *
#define LG__CTYPE_LG_INET          struct lg_inet
#define LG__CTYPE_LG_INT32_ARRAY   struct lg_array_int32
#define LG__CTYPE_LG_INT64_ARRAY   struct lg_array_int64
#define LG__CTYPE_LG_FLOAT64_ARRAY struct lg_array_float64
#define LG__CTYPE_LG_BOOL_ARRAY    struct lg_array_bool
#define LG__CTYPE_LG_TEXT_ARRAY    struct lg_array_text
#define LG__CTYPE_LG_UUID_ARRAY    struct lg_array_uuid

/* Column flags. */
#define LG_COL_PK       0x1u /* part of the primary key (in declaration order) */
#define LG_COL_NULLABLE 0x2u /* may be NULL (others: writing NULL gives LG_EINVAL) */
#define LG_COL_DEFAULT  0x4u /* has a server default: a full-row insert leaves it out */
#define LG_COL_VERSION  0x8u /* optimistic-lock version (int8): bumped by every update */

/* At most this many columns per model (lg_null and change masks are 64-bit). */
#define LG_MODEL_MAX_COLS 64

struct lg_model_col {
	const char *name; /* SQL name, as declared */
	enum lg_type type;
	unsigned flags; /* LG_COL_* */
	size_t offset;  /* of the field in the row struct */
};

/* A model descriptor: static data generated by LG_MODEL_DEFINE. */
struct lg_model {
	const char *schema; /* NULL or "" = unqualified (search_path) */
	const char *table;
	const struct lg_model_col *cols;
	unsigned ncols;
	size_t size;        /* sizeof the row struct */
	size_t null_offset; /* of lg_null */
	size_t mem_offset;  /* of lg_mem */
	/*
	 * Internal: a slot of static storage where libguard keeps what it renders once per
	 * model (quoted names, the find-by-key statement ...), published atomically on first
	 * use and kept for the life of the process, so that descriptors must not change once
	 * used. LG_MODEL_DEFINE provides one; NULL (hand-written descriptors) renders that SQL
	 * on every call instead.
	 */
	void **lg_cache;
};

/*
 * SQL text under construction (internal to libguard; exposed only so that struct lg_query
 * can live on the caller's stack). Starts in caller storage, moves to the heap if it grows.
 */
struct lg_sqlbuf {
	char *buf;
	size_t len;
	size_t cap;
	bool heap;
	int err; /* sticky: first LG_E* met while building */
};

#define LG_WHERE_MAX_DEPTH 8

/* A WHERE clause being built (internal; see struct lg_query). */
struct lg_where {
	struct lg_sqlbuf sql;
	int depth;
	uint8_t kind[LG_WHERE_MAX_DEPTH];  /* connective of each open group */
	bool empty[LG_WHERE_MAX_DEPTH];    /* nothing emitted in the group yet */
	uint8_t value[LG_WHERE_MAX_DEPTH]; /* what the group reduces to: TRUE, FALSE or neither */
};

/* ---- Generated code ---------------------------------------------------------------------- */

#define LG__MODEL_FIELD(m, name, type, flags) LG__CTYPE_##type name;
#define LG__MODEL_INDEX(m, name, type, flags) m##_ci_##name,
#define LG__MODEL_COL(m, name, type, flags)                                                        \
	static const __attribute__((unused)) struct m##_col m##_col_##name = {m##_ci_##name};
#define LG__MODEL_DESC(m, name, type, flags) {#name, type, flags, offsetof(struct m, name)},
#define LG__MODEL_SETTER(m, name, type, flags)                                                     \
	static inline                                                                              \
	    __attribute__((unused)) void m##_set_##name(struct lg_changes *c, LG__CTYPE_##type v)  \
	{                                                                                          \
		((struct m *)lg_changes_row(c, &m##_model))->name = v;                             \
		lg_changes_mark(c, m##_ci_##name, false);                                          \
	}                                                                                          \
	static inline __attribute__((unused)) void m##_set_##name##_null(struct lg_changes *c)     \
	{                                                                                          \
		(void)lg_changes_row(c, &m##_model);                                               \
		lg_changes_mark(c, m##_ci_##name, true);                                           \
	}                                                                                          \
	static inline __attribute__((unused)) bool m##_##name##_is_null(const struct m *r)         \
	{                                                                                          \
		return (r->lg_null >> m##_ci_##name) & 1u;                                         \
	}

/* A column index the query builder refuses (LG_EINVAL when the query runs). */
#define LG__COL_INVALID 0xffffu

#define LG__MODEL_QUERY_CMP(m, op)                                                                 \
	static inline __attribute__((unused)) void m##_query_##op(                                 \
	    struct lg_query *q, struct m##_col c, struct lg_param v)                               \
	{                                                                                          \
		lg_query_##op(q, m##_query_col(q, c), v);                                          \
	}

/* The typed query builder of model m (see query.h): the column argument is a struct m##_col,
 * so a column of another model does not compile, and a query of another model fails with
 * LG_EINVAL when it runs. */
#define LG__MODEL_QUERY(m)                                                                         \
	static inline __attribute__((unused)) unsigned m##_col_index(struct m##_col c)             \
	{                                                                                          \
		return c.lg_index;                                                                 \
	}                                                                                          \
	static inline __attribute__((unused)) unsigned m##_query_col(const struct lg_query *q,     \
								     struct m##_col c)             \
	{                                                                                          \
		return q->model == &m##_model ? c.lg_index : LG__COL_INVALID;                      \
	}                                                                                          \
	LG__MODEL_QUERY_CMP(m, eq)                                                                 \
	LG__MODEL_QUERY_CMP(m, ne)                                                                 \
	LG__MODEL_QUERY_CMP(m, lt)                                                                 \
	LG__MODEL_QUERY_CMP(m, le)                                                                 \
	LG__MODEL_QUERY_CMP(m, gt)                                                                 \
	LG__MODEL_QUERY_CMP(m, ge)                                                                 \
	LG__MODEL_QUERY_CMP(m, like)                                                               \
	LG__MODEL_QUERY_CMP(m, ilike)                                                              \
	static inline __attribute__((unused)) void m##_query_in(                                   \
	    struct lg_query *q, struct m##_col c, const struct lg_param *v, int n)                 \
	{                                                                                          \
		lg_query_in(q, m##_query_col(q, c), v, n);                                         \
	}                                                                                          \
	static inline                                                                              \
	    __attribute__((unused)) void m##_query_is_null(struct lg_query *q, struct m##_col c)   \
	{                                                                                          \
		lg_query_is_null(q, m##_query_col(q, c));                                          \
	}                                                                                          \
	static inline                                                                              \
	    __attribute__((unused)) void m##_query_not_null(struct lg_query *q, struct m##_col c)  \
	{                                                                                          \
		lg_query_not_null(q, m##_query_col(q, c));                                         \
	}                                                                                          \
	static inline __attribute__((unused)) void m##_query_order(struct lg_query *q,             \
								   struct m##_col c, bool desc)    \
	{                                                                                          \
		lg_query_order(q, m##_query_col(q, c), desc);                                      \
	}

/*
 * Declares, for model m:
 *   struct m: one field per column (C types above), then lg_null and lg_mem;
 *   struct m##_col, the type of m's column identifiers, and one constant m##_col_<column>
 *     per column: pass these to the typed calls below and to LG_COL(); a column of another
 *     model is a different type and does not compile;
 *   enum m##_col_index: m##_ci_<column>, the column's index as an integer constant
 *     expression (for switch and static masks: LG_COL_BIT(m##_ci_<column>)), and
 *     m##_col__count;
 *   extern const struct lg_model m##_model;
 *   per column: m##_set_<column>(changes, value), m##_set_<column>_null(changes) and
 *     m##_<column>_is_null(row);
 *   the typed query builder: m##_query_eq/ne/lt/le/gt/ge/like/ilike(q, col, value),
 *     m##_query_in(q, col, values, n), m##_query_is_null/not_null(q, col),
 *     m##_query_order(q, col, desc), and m##_col_index(col) (the untyped index).
 */
#define LG_MODEL_DECLARE(m, COLS)                                                                  \
	struct m {                                                                                 \
		COLS(LG__MODEL_FIELD)                                                              \
		uint64_t lg_null; /* bit m##_ci_<c>: column c is NULL */                           \
		void *lg_mem;     /* Owned by the row after a decode: lg_row_clear() */            \
	};                                                                                         \
	enum m##_col_index{COLS(LG__MODEL_INDEX) m##_col__count};                                  \
	_Static_assert(m##_col__count <= LG_MODEL_MAX_COLS, "too many columns");                   \
	struct m##_col {                                                                           \
		unsigned lg_index;                                                                 \
	};                                                                                         \
	COLS(LG__MODEL_COL)                                                                        \
	extern const struct lg_model m##_model;                                                    \
	COLS(LG__MODEL_SETTER)                                                                     \
	LG__MODEL_QUERY(m)                                                                         \
	struct lg__model_declared_##m

/* Defines m##_model for table schema.table (strings Borrowed: use literals). */
#define LG_MODEL_DEFINE(m, schema_, table_, COLS)                                                  \
	static const struct lg_model_col m##_model_cols[] = {COLS(LG__MODEL_DESC)};                \
	static void *m##_model_cache;                                                              \
	const struct lg_model m##_model = {                                                        \
	    schema_,                                                                               \
	    table_,                                                                                \
	    m##_model_cols,                                                                        \
	    m##_col__count,                                                                        \
	    sizeof(struct m),                                                                      \
	    offsetof(struct m, lg_null),                                                           \
	    offsetof(struct m, lg_mem),                                                            \
	    &m##_model_cache,                                                                      \
	}

/* Column bit for masks, from a typed column: LG_COL(user_col_email). */
#define LG_COL(c) (UINT64_C(1) << (c).lg_index)
/* Column bit from a column index (m##_ci_<column>, or an index into lg_model.cols). */
#define LG_COL_BIT(i) (UINT64_C(1) << (i))

/*
 * Relations with typed columns (see lg_model_load_related below): target and src are model
 * names, target_col and src_col their columns, e.g.
 *   LG_MODEL_LOAD_RELATED(&db, user, user_col_id, post, posts.data, posts.n, post_col_user_id,
 *                         &authors, &err);
 */
#define LG_MODEL_LOAD_RELATED(db, target, target_col, src, src_rows, n, src_col, out, err)         \
	lg_model_load_related((db), &target##_model, target##_col_index(target_col), &src##_model, \
			      (src_rows), (n), src##_col_index(src_col), (out), (err))
#define LG_MODEL_LOAD_MANY_TO_MANY(db, target, target_col, join, join_src_col, join_target_col,    \
				   src, src_rows, n, src_col, out, err)                            \
	lg_model_load_many_to_many((db), &target##_model, target##_col_index(target_col),          \
				   &join##_model, join##_col_index(join_src_col),                  \
				   join##_col_index(join_target_col), &src##_model, (src_rows),    \
				   (n), src##_col_index(src_col), (out), (err))

/* ---- Rows ---------------------------------------------------------------------------------- */

/* Releases row's lg_mem (the result or block its strings live in) and zeroes the row.
 * NULL is a no-op. */
LG_API void lg_row_clear(const struct lg_model *m, void *row);

/*
 * A growable array of decoded rows, Owned: release with lg_rows_free(). Zero-initialize.
 * The strings of all its rows point into the query results the container keeps (nothing is
 * copied per row or per column): they are Borrowed until lg_rows_free(), and the rows' own
 * lg_mem stays NULL. Copy a row out with lg_row_copy() to keep it longer. A call that fails
 * appends nothing.
 */
struct lg_rows {
	const struct lg_model *model;
	void *data; /* n rows of model->size bytes */
	size_t n;
	size_t cap;
	size_t *owner; /* many-to-many loads: owner[i] = index of row i's source row */
	void *arena;   /* internal: the results its strings point into */
};

/*
 * Copies row src into dst (a row struct of m, overwritten: release its old lg_mem first),
 * giving dst its own lg_mem holding copies of every string. LG_ENOMEM leaves dst zeroed.
 */
LG_API int lg_row_copy(const struct lg_model *m, void *dst, const void *src);

/* Row i (Borrowed until lg_rows_free). */
LG_API void *lg_rows_at(const struct lg_rows *rows, size_t i);
#define LG_ROWS_AT(rows, type, i) ((type *)lg_rows_at((rows), (i)))
LG_API void lg_rows_free(struct lg_rows *rows);

/* ---- Where statements run ----------------------------------------------------------------- */

/*
 * The target of ORM calls: a pool, or (when tx is set) a transaction from lg_pool_begin.
 * on_sql, when set, sees every statement's exact SQL text and parameter count before it is
 * sent (sql Borrowed for the call) — for logging, metrics and tests.
 *
 * On a pool (tx NULL) a statement shares a pipeline sync segment with other coroutines'
 * statements; if it is chosen as a deadlock or serialization victim (SQLSTATE 40P01 or
 * 40001) it was rolled back entirely, and the ORM sends it again, up to 5 times. In a
 * transaction those errors are returned (lg_pool_run_tx retries the whole transaction).
 */
struct lg_db {
	struct lg_pool *pool; /* Borrowed */
	struct lg_tx *tx;     /* Borrowed; when set, statements run in this transaction */
	uint64_t timeout_ms;  /* per statement; 0 = the pool's default */
	void (*on_sql)(void *ud, const char *sql, int nparams);
	void *on_sql_ud; /* Borrowed */
	/* Optional (libguard/db.h), both Borrowed. With dbh set and no tx, reads are routed by
	 * replica lag and writes go to dbh's primary; pool should be that primary too (the
	 * ORM opens its own transactions there). With session set too, writes advance its
	 * token and reads honour it (read-your-writes). */
	struct lg_dbh *dbh;
	struct lg_session *session;
};

/* A copy of *base that runs in tx. */
LG_API struct lg_db lg_db_tx(const struct lg_db *base, struct lg_tx *tx);

/* ---- Change sets (records) ----------------------------------------------------------------- */

/*
 * A change set over a row: the typed setters write the field and mark the column changed;
 * inserts and updates send only the changed columns. row is Borrowed for the change set's
 * life. Start from a zeroed row to build a new record, or from a loaded one to update it.
 */
struct lg_changes {
	const struct lg_model *model;
	void *row;
	uint64_t changed; /* LG_COL bits */
};

LG_API void lg_changes_init(struct lg_changes *c, const struct lg_model *m, void *row);
/* The row, after asserting the change set is for m (used by the generated setters). */
LG_API void *lg_changes_row(struct lg_changes *c, const struct lg_model *m);
/* Marks col changed; is_null sets or clears its NULL bit. */
LG_API void lg_changes_mark(struct lg_changes *c, unsigned col, bool is_null);

/* ---- CRUD --------------------------------------------------------------------------------- */

/*
 * Loads the row whose primary key equals key[0..npk-1] (in primary-key column order;
 * Borrowed) into *out (a row struct; its previous lg_mem is released). LG_ENOTFOUND if none.
 */
LG_API int lg_model_find(const struct lg_db *db, const struct lg_model *m,
			 const struct lg_param *key, void *out, struct lg_error *err);

/*
 * Loads the row whose primary key equals the key fields of *row, into *row.
 * LG_ENOTFOUND if none (row untouched).
 */
LG_API int lg_model_reload(const struct lg_db *db, const struct lg_model *m, void *row,
			   struct lg_error *err);

/*
 * INSERT of the changed columns (the others take their server defaults) RETURNING every
 * column, decoded back into the change set's row; the change mask is cleared on success.
 */
LG_API int lg_model_insert(const struct lg_db *db, struct lg_changes *c, struct lg_error *err);

/*
 * Inserts n rows (array of model->size bytes each) with every column not flagged
 * LG_COL_DEFAULT, as multi-row INSERT ... VALUES statements (chunked to stay under the
 * protocol's 65,535 parameters; COPY cannot run on pipelined connections). With returning,
 * each row is overwritten with the stored row (server defaults filled; each row then Owns
 * an lg_mem: release with lg_row_clear). On a pool the chunks run in one pinned
 * transaction, so all rows land or none.
 */
LG_API int lg_model_insert_many(const struct lg_db *db, const struct lg_model *m, void *rows,
				size_t n, bool returning, struct lg_error *err);

/*
 * UPDATE of the changed columns of the row identified by its primary key fields, RETURNING
 * every column into the row. Changed key columns (and the version column) are not SET:
 * they identify the row. No changed columns: nothing is sent, 0. With a version column,
 * the statement also requires version = the row's version and bumps it; when the row was
 * changed meanwhile the update is not applied and LG_ESERVER with SQLSTATE 40001 is returned
 * (lg_pool_run_tx retries on it). LG_ENOTFOUND when no row has that key.
 */
LG_API int lg_model_update(const struct lg_db *db, struct lg_changes *c, struct lg_error *err);

/* DELETE by the row's primary key fields. LG_ENOTFOUND if no row was deleted. */
LG_API int lg_model_delete(const struct lg_db *db, const struct lg_model *m, const void *row,
			   struct lg_error *err);

enum lg_conflict {
	LG_ON_CONFLICT_UPDATE,  /* update the changed non-key columns */
	LG_ON_CONFLICT_NOTHING, /* keep the existing row */
};

/*
 * INSERT of the changed columns ON CONFLICT (primary key) DO UPDATE / DO NOTHING, RETURNING
 * the row into the change set's row. *applied (may be NULL) is false when DO NOTHING kept
 * an existing row (the row struct is then left as set).
 */
LG_API int lg_model_upsert(const struct lg_db *db, struct lg_changes *c, enum lg_conflict on,
			   bool *applied, struct lg_error *err);

/*
 * Raw SQL escape hatch: runs sql with bound params (Borrowed) and decodes every row into
 * *out (appended; out->model must be m or NULL). Result columns are matched to model
 * columns by name; model columns absent from the result are left zero and NULL.
 */
LG_API int lg_model_raw(const struct lg_db *db, const struct lg_model *m, const char *sql,
			const struct lg_param *params, int nparams, struct lg_rows *out,
			struct lg_error *err);

/*
 * Drift check (e.g. at start-up): compares m with the live table. LG_ENOTFOUND when the table
 * is missing; LG_ETYPE when a column is missing, its type or nullability or primary key
 * membership differs, or a NOT NULL column without a default is not in the model; err's
 * message names each such column. docs/cli.md lists the type pairs.
 */
LG_API int lg_model_check(const struct lg_db *db, const struct lg_model *m, struct lg_error *err);

/* Raw SQL returning the plain result (Owned by the caller; see result.h). */
LG_API int lg_db_query(const struct lg_db *db, const char *sql, const struct lg_param *params,
		       int nparams, struct lg_result **out, struct lg_error *err);

/* ---- Relations (one query per relation for a batch) -------------------------------------- */

/*
 * Loads, with one statement, every row of target whose column target_col equals column
 * src_col of any of the n rows at src (rows of src_model). Appends them to *out.
 *   belongs-to: target = parent model, target_col = its key, src_col = the child's FK.
 *   has-many:   target = child model, target_col = its FK, src_col = the parent's key.
 * Key columns must be LG_INT32, LG_INT64, LG_TEXT or LG_UUID; NULL source keys are skipped.
 * Match rows to sources by comparing the key fields.
 */
LG_API int lg_model_load_related(const struct lg_db *db, const struct lg_model *target,
				 unsigned target_col, const struct lg_model *src_model,
				 const void *src, size_t n, unsigned src_col, struct lg_rows *out,
				 struct lg_error *err);

/*
 * Many-to-many through a join table (one statement): loads the target rows linked to the n
 * source rows through join rows where join.join_src_col = src.src_col and
 * join.join_target_col = target.target_col. Appends one target row per link to *out and,
 * for each, the index of its source row to out->owner[i].
 */
LG_API int lg_model_load_many_to_many(const struct lg_db *db, const struct lg_model *target,
				      unsigned target_col, const struct lg_model *join,
				      unsigned join_src_col, unsigned join_target_col,
				      const struct lg_model *src_model, const void *src, size_t n,
				      unsigned src_col, struct lg_rows *out, struct lg_error *err);

#ifdef __cplusplus
}
#endif

/* The generated typed query builder calls the query.h functions. */
#include "libguard/query.h"

#endif /* LIBGUARD_MODEL_H */
