/*
 * A cached row's JSON into a model's row struct (lg__cache_decode, cache_int.h).
 *
 * The value is to_jsonb(row): one object, a member per column. Each model column's member
 * becomes PostgreSQL's text output of that column in a one-row text-format local result
 * (lg__result_row_new: one block) with the column's type OID, and the ORM's own decoder reads
 * it, so a cached row decodes exactly as a row read from the database:
 *   null -> NULL; strings unescaped (timestamps: to_jsonb's "T" becomes the text output's
 *   space); true/false -> t/f; numbers as written (numeric keeps its digits); jsonb columns
 *   keep their JSON text; arrays become array literals ({1,2}, {"a","b"}, NULL elements).
 * A member missing from the object reads as NULL, as a column a result lacks does.
 * No jansson here: it would turn numeric 1.50 into a double.
 */
#include <string.h>

#include "cache_int.h"
#include "model_int.h"
#include "pg_oid.h"
#include "pg_result_int.h"

#define OID_INT2        21
#define OID_BYTEA       17
#define OID_TIMESTAMPTZ 1184
#define OID_JSONB       3802

static uint32_t type_oid(enum lg_type t)
{
	static const uint32_t oids[] = {
	    [LG_INT32] = LG__OID_INT4,
	    [LG_INT64] = LG__OID_INT8,
	    [LG_FLOAT64] = LG__OID_FLOAT8,
	    [LG_BOOL] = LG__OID_BOOL,
	    [LG_TEXT] = LG__OID_TEXT,
	    [LG_BYTEA] = OID_BYTEA,
	    [LG_UUID] = LG__OID_UUID,
	    [LG_TIMESTAMPTZ] = OID_TIMESTAMPTZ,
	    [LG_JSONB] = OID_JSONB,
	    [LG_NUMERIC] = LG__OID_NUMERIC,
	    [LG_DATE] = LG__OID_DATE,
	    [LG_TIME] = LG__OID_TIME,
	    [LG_TIMESTAMP] = LG__OID_TIMESTAMP,
	    [LG_INTERVAL] = LG__OID_INTERVAL,
	    [LG_ENUM] = LG__OID_TEXT,
	    [LG_INET] = LG__OID_INET,
	    [LG_INT32_ARRAY] = LG__OID_INT4_ARRAY,
	    [LG_INT64_ARRAY] = LG__OID_INT8_ARRAY,
	    [LG_FLOAT64_ARRAY] = LG__OID_FLOAT8_ARRAY,
	    [LG_BOOL_ARRAY] = LG__OID_BOOL_ARRAY,
	    [LG_TEXT_ARRAY] = LG__OID_TEXT_ARRAY,
	    [LG_UUID_ARRAY] = LG__OID_UUID_ARRAY,
	};
	return (size_t)t < sizeof(oids) / sizeof(oids[0]) ? oids[t] : 0;
}

static bool is_array(enum lg_type t)
{
	return t >= LG_INT32_ARRAY && t <= LG_UUID_ARRAY;
}

static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) {
		p++;
	}
	return p;
}

/* The end of the JSON value at p, NULL when malformed. */
static const char *value_end(const char *p, const char *e)
{
	if (p >= e) {
		return NULL;
	}
	if (*p == '"') {
		for (p++; p < e; p++) {
			if (*p == '\\') {
				p++;
			} else if (*p == '"') {
				return p + 1;
			}
		}
		return NULL;
	}
	if (*p == '{' || *p == '[') {
		int depth = 0;
		for (; p < e; p++) {
			if (*p == '"') {
				p = value_end(p, e);
				if (p == NULL) {
					return NULL;
				}
				p--;
			} else if (*p == '{' || *p == '[') {
				depth++;
			} else if ((*p == '}' || *p == ']') && --depth == 0) {
				return p + 1;
			}
		}
		return NULL;
	}
	const char *s = p;
	while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n') {
		p++;
	}
	return p > s ? p : NULL;
}

/* Output under construction: a value written into the local row's room, never past cap
 * (a value of the JSON text never grows when rewritten as PostgreSQL text, so the room
 * lg__cache_decode reserves always suffices; failed is a guard, not a path). */
struct out {
	char *b;
	size_t n, cap;
	bool failed;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->failed || o->n + n + 1 > o->cap) {
		o->failed = true;
		return;
	}
	memcpy(o->b + o->n, s, n);
	o->n += n;
}

static void put_utf8(struct out *o, unsigned long cp)
{
	char u[4];
	size_t n = 0;
	if (cp < 0x80) {
		u[n++] = (char)cp;
	} else if (cp < 0x800) {
		u[n++] = (char)(0xc0 | cp >> 6);
		u[n++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		u[n++] = (char)(0xe0 | cp >> 12);
		u[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[n++] = (char)(0x80 | (cp & 0x3f));
	} else {
		u[n++] = (char)(0xf0 | cp >> 18);
		u[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[n++] = (char)(0x80 | (cp & 0x3f));
	}
	put(o, u, n);
}

static bool hex4(const char *p, const char *e, unsigned long *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		if (p + i >= e) {
			return false;
		}
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0) {
			return false;
		}
		*v = *v << 4 | (unsigned long)d;
	}
	return true;
}

/* The JSON string [p, e) (quotes included) unescaped into o; quote_for_array escapes " and \
 * again for an array literal. False when malformed or holding U+0000. */
static bool put_string(struct out *o, const char *p, const char *e, bool quote_for_array)
{
	for (p++, e--; p < e; p++) {
		if (*p != '\\') {
			/* A run of plain bytes at once. */
			const char *q = p;
			while (q < e && *q != '\\' && !(quote_for_array && *q == '"')) {
				q++;
			}
			if (q > p) {
				put(o, p, (size_t)(q - p));
				p = q - 1;
			} else {
				put(o, "\\\"", 2);
			}
			continue;
		}
		if (++p >= e) {
			return false;
		}
		static const char from[] = "\"\\/bfnrt";
		static const char to[] = "\"\\/\b\f\n\r\t";
		const char *k = strchr(from, *p);
		if (k != NULL && *p != '\0') {
			char c = to[k - from];
			if (quote_for_array && (c == '"' || c == '\\')) {
				put(o, "\\", 1);
			}
			put(o, &c, 1);
			continue;
		}
		unsigned long cp = 0;
		unsigned long lo = 0;
		if (*p != 'u' || !hex4(p + 1, e, &cp)) {
			return false;
		}
		p += 4;
		if (cp >= 0xd800 && cp < 0xdc00 && e - p > 6 && p[1] == '\\' && p[2] == 'u' &&
		    hex4(p + 3, e, &lo) && lo >= 0xdc00 && lo < 0xe000) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		}
		if (cp == 0) {
			return false;
		}
		if (quote_for_array && (cp == '"' || cp == '\\')) {
			put(o, "\\", 1); /* an escaped quote or backslash inside an array element */
		}
		put_utf8(o, cp);
	}
	return true;
}

/* A JSON array [p, e) as a PostgreSQL array literal. */
static bool put_array(struct out *o, const char *p, const char *e)
{
	put(o, "{", 1);
	p = skip_ws(p + 1, e);
	for (bool first = true; p < e && *p != ']'; first = false) {
		if (!first) {
			if (*p != ',') {
				return false;
			}
			put(o, ",", 1);
			p = skip_ws(p + 1, e);
		}
		const char *v = value_end(p, e);
		if (v == NULL) {
			return false;
		}
		if (*p == '[') {
			if (!put_array(o, p, v)) {
				return false;
			}
		} else if (*p == '"') {
			put(o, "\"", 1);
			if (!put_string(o, p, v, true)) {
				return false;
			}
			put(o, "\"", 1);
		} else if (*p == '{') {
			return false;
		} else if (v - p == 4 && memcmp(p, "null", 4) == 0) {
			put(o, "NULL", 4);
		} else if (v - p == 4 && memcmp(p, "true", 4) == 0) {
			put(o, "t", 1);
		} else if (v - p == 5 && memcmp(p, "false", 5) == 0) {
			put(o, "f", 1);
		} else {
			put(o, p, (size_t)(v - p));
		}
		p = skip_ws(v, e);
	}
	if (p >= e) {
		return false;
	}
	put(o, "}", 1);
	return true;
}

/* One member's value [p, v) as column type t's text in o; *null for JSON null. */
static bool put_value(struct out *o, enum lg_type t, const char *p, const char *v, bool *null)
{
	*null = v - p == 4 && memcmp(p, "null", 4) == 0;
	if (*null) {
		return true;
	}
	if (t == LG_JSONB) {
		put(o, p, (size_t)(v - p));
		return true;
	}
	if (is_array(t)) {
		return *p == '[' && put_array(o, p, v);
	}
	if (*p == '"') {
		size_t at = o->n;
		if (!put_string(o, p, v, false)) {
			return false;
		}
		/* to_jsonb writes timestamps as ISO 8601 ("T"); the text output has a space. */
		if ((t == LG_TIMESTAMPTZ || t == LG_TIMESTAMP) && o->n > at + 10 &&
		    o->b[at + 10] == 'T') {
			o->b[at + 10] = ' ';
		}
		return true;
	}
	if (*p == '{' || *p == '[') {
		return false;
	}
	if (v - p == 4 && memcmp(p, "true", 4) == 0) {
		put(o, "t", 1);
	} else if (v - p == 5 && memcmp(p, "false", 5) == 0) {
		put(o, "f", 1);
	} else {
		put(o, p, (size_t)(v - p));
	}
	return true;
}

/* The model column a member key [k, ke) (quotes included) names, or -1; each column once. */
static int member_column(const struct lg_model *m, const char *k, const char *ke, uint64_t *seen)
{
	size_t nl = (size_t)(ke - k) - 2;
	for (unsigned i = 0; i < m->ncols; i++) {
		const char *name = m->cols[i].name;
		/* memcmp, not strncmp: a key may hold a NUL byte where the name ends. */
		if (!(*seen & LG_COL_BIT(i)) && name[0] == k[1] && strlen(name) == nl &&
		    memcmp(name, k + 1, nl) == 0) {
			*seen |= LG_COL_BIT(i);
			return (int)i;
		}
	}
	return -1;
}

/* The row's columns as text values in the local row r (NULL when absent): one pass over the
 * object's members. */
static bool fill_row(const struct lg_model *m, const char *json, size_t len, struct lg_result *r)
{
	const char *e = json + len;
	const char *p = skip_ws(json, e);
	if (p >= e || *p != '{') {
		return false;
	}
	uint64_t seen = 0;
	p = skip_ws(p + 1, e);
	while (p < e && *p == '"') {
		const char *k = value_end(p, e);
		if (k == NULL) {
			return false;
		}
		int col = member_column(m, p, k, &seen);
		p = skip_ws(k, e);
		if (p >= e || *p != ':') {
			return false;
		}
		p = skip_ws(p + 1, e);
		const char *v = value_end(p, e);
		if (v == NULL) {
			return false;
		}
		if (col >= 0) {
			struct out o = {0};
			o.b = lg__result_row_room(r, &o.cap);
			bool null = true;
			if (!put_value(&o, m->cols[col].type, p, v, &null) || o.failed) {
				return false;
			}
			if (!null) {
				lg__result_row_set(r, col, o.n);
			}
		}
		p = skip_ws(v, e);
		if (p < e && *p == ',') {
			p = skip_ws(p + 1, e);
		}
	}
	return p < e && *p == '}';
}

int lg__cache_decode(const struct lg_model *m, const char *json, size_t len, void *out)
{
	if (m->ncols == 0 || m->ncols > LG_MODEL_MAX_COLS) {
		return LG_EINVAL;
	}
	struct lg_result *r = lg__result_row_new((int)m->ncols, len + m->ncols + 1);
	if (r == NULL) {
		return LG_ENOMEM;
	}
	for (unsigned i = 0; i < m->ncols; i++) {
		lg__result_row_col(r, (int)i, m->cols[i].name, type_oid(m->cols[i].type));
	}
	if (!fill_row(m, json, len, r)) {
		lg_result_free(r);
		return LG_EINVAL;
	}
	struct lg__plan plan;
	lg__plan_mask(&plan, m, lg__model_all(m), r, 0);
	return lg__row_take(m, &plan, r, 0, out);
}
