/*
 * Randomized check of the canonical key text (libguard/src/contract.h) against PostgreSQL's
 * own output, for every key type the contract supports.
 *
 * For each type a reflected table keyed by it receives random values (integers at their
 * edges, timestamps across DST changes and BC dates, infinities, numerics with trailing
 * zeros, floats from random bits, uuids, text with ':' and '\', bytea, intervals...) written
 * by sessions with random TimeZone, DateStyle, IntervalStyle, extra_float_digits and
 * bytea_output. Then:
 *   1. the keys the capture trigger recorded equal the column's output as PostgreSQL prints
 *      it in a session with the contract's settings (TimeZone=UTC, DateStyle='ISO, MDY',
 *      IntervalStyle=postgres, extra_float_digits=1, bytea_output=hex);
 *   2. the read side agrees: lifeguard.key_text() of each row from a session with other
 *      settings, and the canonicalization statement lg_cache runs on a caller's spelling
 *      (the value as another session prints it) give the same text;
 *   3. client-side canonicalization (integers, uuid, boolean) of random spellings equals
 *      PostgreSQL's output for the same spelling, and never accepts one PostgreSQL rejects.
 * The seed is printed; LG_FUZZ_SEED=N replays a run, LG_FUZZ_ROUNDS=N sets the values per type.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "contract.h"
#include "lg_test.h"

static PGconn *canon_db; /* the contract's settings */
static PGconn *writer;   /* random settings */
static char schema[64];
static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Uniform in [lo, hi], computed in unsigned arithmetic (the span may exceed INT64_MAX). */
static int64_t rnd_between(int64_t lo, int64_t hi)
{
	uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
	return (int64_t)((uint64_t)lo + (span != 0 ? rnd() % span : rnd()));
}

static PGresult *run(PGconn *c, const char *q, int n, const char *const *params)
{
	PGresult *r = PQexecParams(c, q, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
		  PQresultErrorMessage(r));
	return r;
}

/* Runs one or more statements (simple protocol). */
static void exec(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
		  PQresultErrorMessage(r));
	PQclear(r);
}

static PGconn *connect_db(void)
{
	PGconn *c = PQconnectdb(lg_test_pg_dsn());
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	exec(c, "SET client_min_messages = warning");
	return c;
}

/* A session with random settings (spellable: date order and interval style are ones a
 * caller's text can be read back in, see spell()). */
static void random_settings(PGconn *c, bool spellable)
{
	static const char *const zones[] = {"Europe/Berlin",
					    "America/St_Johns",
					    "Asia/Kathmandu",
					    "Pacific/Chatham",
					    "America/New_York",
					    "Australia/Lord_Howe",
					    "UTC",
					    "Etc/GMT+12"};
	static const char *const dates[] = {"SQL, DMY", "German",   "Postgres, MDY",
					    "ISO, YMD", "SQL, MDY", "Postgres, DMY"};
	static const char *const intervals[] = {"sql_standard", "iso_8601", "postgres_verbose",
						"postgres"};
	static const char *const digits[] = {"-15", "-3", "0", "1", "3"};
	char q[512];
	snprintf(q, sizeof(q),
		 "SET TimeZone = '%s'; SET DateStyle = '%s'; SET IntervalStyle = '%s';"
		 " SET extra_float_digits = %s; SET bytea_output = '%s'",
		 zones[rnd() % 8], spellable ? "ISO, MDY" : dates[rnd() % 6],
		 intervals[spellable ? 1 + rnd() % 3 : rnd() % 4],
		 spellable ? "3" : digits[rnd() % 5], rnd() % 2 ? "hex" : "escape");
	PGresult *r = PQexec(c, q);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
}

/* One key type: its SQL type, and how a random value is made from parameter $1. */
struct fuzz_type {
	const char *type;
	const char *expr;
	void (*gen)(char *buf, size_t size);
};

static void gen_int2(char *b, size_t n)
{
	static const int64_t edges[] = {-32768, -32767, -1, 0, 1, 32766, 32767};
	snprintf(b, n, "%lld",
		 (long long)(rnd() % 3 ? edges[rnd() % 7] : rnd_between(-32768, 32767)));
}

static void gen_int4(char *b, size_t n)
{
	static const int64_t edges[] = {INT32_MIN, INT32_MIN + 1, -1,       0,
					1,         INT32_MAX - 1, INT32_MAX};
	snprintf(b, n, "%lld",
		 (long long)(rnd() % 3 ? edges[rnd() % 7] : rnd_between(INT32_MIN, INT32_MAX)));
}

static void gen_int8(char *b, size_t n)
{
	static const int64_t edges[] = {INT64_MIN, INT64_MIN + 1, -1,       0,
					1,         INT64_MAX - 1, INT64_MAX};
	snprintf(b, n, "%lld", (long long)(rnd() % 3 ? edges[rnd() % 7] : (int64_t)rnd()));
}

static void gen_numeric(char *b, size_t n)
{
	static const char *const special[] = {"NaN", "Infinity", "-Infinity", "0.000", "-0.0"};
	if (rnd() % 8 == 0) {
		snprintf(b, n, "%s", special[rnd() % 5]);
		return;
	}
	int scale = (int)(rnd() % 6);
	snprintf(b, n, "%s%llu.%0*llu%s", rnd() % 2 ? "-" : "",
		 (unsigned long long)(rnd() % 1000000000ULL), scale + 1,
		 (unsigned long long)(rnd() % 100000ULL), rnd() % 3 ? "000" : "");
}

static void gen_float8(char *b, size_t n)
{
	static const char *const special[] = {"0",        "-0",
					      "Infinity", "-Infinity",
					      "NaN",      "2.2250738585072014e-308",
					      "5e-324",   "1.7976931348623157e308",
					      "0.1"};
	if (rnd() % 4 == 0) {
		snprintf(b, n, "%s", special[rnd() % 9]);
		return;
	}
	uint64_t bits = rnd();
	double d;
	memcpy(&d, &bits, sizeof(d));
	if (d != d) {
		d = 1.5; /* NaN payloads print alike: one NaN is in the specials */
	}
	snprintf(b, n, "%.17g", d);
}

static void gen_float4(char *b, size_t n)
{
	uint32_t bits = (uint32_t)rnd();
	float f;
	memcpy(&f, &bits, sizeof(f));
	snprintf(b, n, "%.9g", f != f || rnd() % 5 == 0 ? 0.25 : (double)f);
}

/* Microseconds from 2000-01-01: anywhere from 4713 BC to 294276 AD, often near the DST
 * changes of 2024 (2024-03-31 and 2024-10-27 01:00 UTC, 2024-03-10 07:00 UTC), sometimes
 * infinite (the caller's expression maps the sentinels). */
static void gen_instant(char *b, size_t n)
{
	static const int64_t dst[] = {765075600, 783219600, 763282800};
	int kind = (int)(rnd() % 10);
	if (kind == 0) {
		snprintf(b, n, "%s", rnd() % 2 ? "infinity" : "-infinity");
	} else if (kind < 5) {
		snprintf(b, n, "%lld",
			 (long long)(dst[rnd() % 3] * 1000000LL +
				     rnd_between(-10800000000LL, 10800000000LL)));
	} else {
		snprintf(b, n, "%lld",
			 (long long)rnd_between(-211813488000000000LL, 9223371331200000000LL));
	}
}

static void gen_date(char *b, size_t n)
{
	int kind = (int)(rnd() % 8);
	if (kind == 0) {
		snprintf(b, n, "%s", rnd() % 2 ? "infinity" : "-infinity");
	} else {
		snprintf(b, n, "%lld", (long long)rnd_between(-2451545, 2147483494 / 4));
	}
}

static void gen_time(char *b, size_t n)
{
	snprintf(b, n, "%lld", (long long)rnd_between(0, 86400000000LL));
}

static void gen_interval(char *b, size_t n)
{
	snprintf(b, n, "%lld,%lld,%lld,%lld.%06lld", (long long)rnd_between(-2000, 2000),
		 (long long)rnd_between(-400, 400), (long long)rnd_between(-100000, 100000),
		 (long long)rnd_between(-100000, 100000), (long long)rnd_between(0, 999999));
}

static void gen_uuid(char *b, size_t n)
{
	snprintf(b, n, "%08llx-%04llx-%04llx-%04llx-%012llx",
		 (unsigned long long)(rnd() & 0xffffffff), (unsigned long long)(rnd() & 0xffff),
		 (unsigned long long)(rnd() & 0xffff), (unsigned long long)(rnd() & 0xffff),
		 (unsigned long long)(rnd() & 0xffffffffffffULL));
}

static void gen_text(char *b, size_t n)
{
	static const char *const pieces[] = {"a", ":", "\\", "\"",  "'",  " ", ",", "{",  "}",
					     "é", "Z", "0",  "\\:", "::", "(", ")", "\t", "NULL"};
	size_t len = 0;
	b[0] = '\0';
	for (int i = (int)(rnd() % 8); i >= 0 && len + 8 < n; i--) {
		len += (size_t)snprintf(b + len, n - len, "%s", pieces[rnd() % 18]);
	}
}

static void gen_hex(char *b, size_t n)
{
	size_t len = 0;
	b[0] = '\0';
	for (int i = (int)(rnd() % 12); i >= 0 && len + 3 < n; i--) {
		len += (size_t)snprintf(b + len, n - len, "%02x", (unsigned)(rnd() % 256));
	}
}

static void gen_bool(char *b, size_t n)
{
	snprintf(b, n, "%s", rnd() % 2 ? "true" : "false");
}

static void gen_inet(char *b, size_t n)
{
	snprintf(b, n, "%u.%u.%u.%u/%u", (unsigned)(rnd() % 256), (unsigned)(rnd() % 256),
		 (unsigned)(rnd() % 256), (unsigned)(rnd() % 256), (unsigned)(8 + rnd() % 25));
}

#define INSTANT(base)                                                                              \
	"CASE $1 WHEN 'infinity' THEN '" base "infinity' WHEN '-infinity' THEN '-" base            \
	"infinity' ELSE " base                                                                     \
	"'2000-01-01 00:00:00+00' + $1::bigint * interval '1 microsecond' END"

static const struct fuzz_type types[] = {
    {"smallint", "$1::smallint", gen_int2},
    {"integer", "$1::integer", gen_int4},
    {"bigint", "$1::bigint", gen_int8},
    {"numeric", "$1::numeric", gen_numeric},
    {"double precision", "$1::double precision", gen_float8},
    {"real", "$1::real", gen_float4},
    {"timestamp with time zone",
     "CASE $1 WHEN 'infinity' THEN 'infinity'::timestamptz WHEN '-infinity' THEN "
     "'-infinity'::timestamptz ELSE timestamptz '2000-01-01 00:00:00+00' + $1::bigint * "
     "interval '1 microsecond' END",
     gen_instant},
    {"timestamp without time zone",
     "CASE $1 WHEN 'infinity' THEN 'infinity'::timestamp WHEN '-infinity' THEN "
     "'-infinity'::timestamp ELSE timestamp '2000-01-01 00:00:00' + $1::bigint * "
     "interval '1 microsecond' END",
     gen_instant},
    {"date",
     "CASE $1 WHEN 'infinity' THEN 'infinity'::date WHEN '-infinity' THEN '-infinity'::date "
     "ELSE date '2000-01-01' + $1::int END",
     gen_date},
    {"time without time zone", "time '00:00' + $1::bigint * interval '1 microsecond'", gen_time},
    {"interval",
     "make_interval(years => split_part($1, ',', 1)::int, months => split_part($1, ',', "
     "2)::int, hours => split_part($1, ',', 3)::int, secs => split_part($1, ',', "
     "4)::double precision)",
     gen_interval},
    {"uuid", "$1::uuid", gen_uuid},
    {"text", "$1::text", gen_text},
    {"character(6)", "$1::character(6)", gen_text},
    {"bytea", "decode($1, 'hex')", gen_hex},
    {"boolean", "$1::boolean", gen_bool},
    {"inet", "$1::inet", gen_inet},
};

#define NTYPES (sizeof(types) / sizeof(types[0]))

static int rounds(void)
{
	const char *r = getenv("LG_FUZZ_ROUNDS");
	return r != NULL && atoi(r) > 0 ? atoi(r) : 200;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The single-column results of q on c, sorted (Owned strings in an Owned array). */
static char **sorted_column(PGconn *c, const char *q, int *n)
{
	PGresult *r = run(c, q, 0, NULL);
	*n = PQntuples(r);
	char **v = calloc((size_t)*n + 1, sizeof(*v));
	for (int i = 0; i < *n; i++) {
		v[i] = strdup(PQgetvalue(r, i, 0));
	}
	PQclear(r);
	qsort(v, (size_t)*n, sizeof(*v), cmp_str);
	return v;
}

static void free_column(char **v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i]);
	}
	free(v);
}

static void setup(void)
{
	const char *seed = getenv("LG_FUZZ_SEED");
	rng = seed != NULL ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL) * 2654435761u + 1;
	fprintf(stderr, "LG_FUZZ_SEED=%llu\n", (unsigned long long)rng);
	canon_db = connect_db();
	writer = connect_db();
	/* The contract's PostgreSQL side, as `lifeguard-reflector setup` installs it. */
	exec(canon_db, "BEGIN");
	char lock[64];
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%lld)", LG__CONTRACT_LOCK_KEY);
	exec(canon_db, lock);
	for (int i = 0; lg__contract_setup_sql[i] != NULL; i++) {
		exec(canon_db, lg__contract_setup_sql[i]);
	}
	exec(canon_db, "COMMIT");
	exec(canon_db, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY';"
		       " SET IntervalStyle = 'postgres'; SET extra_float_digits = 1;"
		       " SET bytea_output = 'hex'");
	snprintf(schema, sizeof(schema), "lg_fuzz_%d", (int)getpid());
	char q[256];
	snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema,
		 schema);
	exec(canon_db, q);
}

static void teardown(void)
{
	char q[256];
	snprintf(q, sizeof(q),
		 "DROP SCHEMA IF EXISTS %s CASCADE; DELETE FROM lifeguard.outbox WHERE table_name "
		 "LIKE '%s.%%'",
		 schema, schema);
	if (canon_db != NULL) {
		PQclear(PQexec(canon_db, q));
		PQfinish(canon_db);
	}
	PQfinish(writer);
}

TestSuite(contract_fuzz, .init = setup, .fini = teardown);

/* Writes random values of type i from sessions with random settings. */
static void fill_table(size_t i, const char *table)
{
	char q[1024];
	snprintf(q, sizeof(q), "CREATE TABLE %s (k %s PRIMARY KEY, n int)", table, types[i].type);
	exec(canon_db, q);
	snprintf(q, sizeof(q), "SELECT lifeguard.reflect('%s')", table);
	exec(canon_db, q);
	snprintf(q, sizeof(q), "INSERT INTO %s VALUES (%s, 0) ON CONFLICT DO NOTHING", table,
		 types[i].expr);
	for (int r = 0; r < rounds(); r++) {
		if (r % 20 == 0) {
			random_settings(writer, false);
		}
		char value[256];
		types[i].gen(value, sizeof(value));
		const char *p[] = {value};
		PQclear(run(writer, q, 1, p));
	}
	/* Updates record the key again, deletes record it before the row goes. */
	snprintf(q, sizeof(q), "UPDATE %s SET n = 1", table);
	exec(writer, q);
}

Test(contract_fuzz, trigger_keys_and_read_keys_equal_postgresql_output)
{
	for (size_t i = 0; i < NTYPES; i++) {
		char table[128];
		snprintf(table, sizeof(table), "%s.t%zu", schema, i);
		fill_table(i, table);
		char q[1024];
		int nw = 0, nt = 0, nk = 0;
		/* PostgreSQL's own output of each stored key under the contract's settings. */
		snprintf(q, sizeof(q), "SELECT k FROM %s", table);
		char **want = sorted_column(canon_db, q, &nw);
		cr_assert_gt(nw, 0, "%s: no rows", types[i].type);
		snprintf(q, sizeof(q),
			 "SELECT pk->>0 FROM lifeguard.outbox WHERE table_name = '%s' AND op = 'U'",
			 table);
		char **trig = sorted_column(canon_db, q, &nt);
		random_settings(writer, false);
		snprintf(q, sizeof(q), "SELECT lifeguard.key_text(k) FROM %s", table);
		char **read = sorted_column(writer, q, &nk);
		cr_assert_eq(nt, nw, "%s: %d trigger keys for %d rows", types[i].type, nt, nw);
		cr_assert_eq(nk, nw);
		for (int r = 0; r < nw; r++) {
			cr_assert_str_eq(trig[r], want[r], "%s: trigger key", types[i].type);
			cr_assert_str_eq(read[r], want[r], "%s: lifeguard.key_text", types[i].type);
		}
		free_column(trig, nt);
		free_column(read, nk);
		free_column(want, nw);
	}
}

Test(contract_fuzz, a_callers_spelling_reads_back_as_the_canonical_key)
{
	for (size_t i = 0; i < NTYPES; i++) {
		char table[128];
		snprintf(table, sizeof(table), "%s.s%zu", schema, i);
		fill_table(i, table);
		char q[1024];
		snprintf(q, sizeof(q), "SELECT ctid::text, k FROM %s", table);
		/* The caller's spelling: the value as a session with other settings prints it. */
		random_settings(writer, true);
		PGresult *spelled = run(writer, q, 0, NULL);
		struct lg__contract_col col = {"k", types[i].type,
					       lg__contract_kind(types[i].type)};
		char sql[1024];
		cr_assert_lt(lg__contract_canon_sql(sql, sizeof(sql), &col, 1), sizeof(sql));
		random_settings(writer, false);
		for (int r = 0; r < PQntuples(spelled); r++) {
			const char *p[] = {PQgetvalue(spelled, r, 1)};
			PGresult *got = run(writer, sql, 1, p);
			snprintf(q, sizeof(q), "SELECT k FROM %s WHERE ctid = $1::tid", table);
			const char *t[] = {PQgetvalue(spelled, r, 0)};
			PGresult *want = run(canon_db, q, 1, t);
			cr_assert_eq(PQntuples(want), 1);
			cr_assert_str_eq(PQgetvalue(got, 0, 0), PQgetvalue(want, 0, 0),
					 "%s: spelled %s", types[i].type, p[0]);
			PQclear(got);
			PQclear(want);
		}
		PQclear(spelled);
	}
}

/* A random spelling of the canonical text c of kind k. */
static void respell(enum lg__contract_kind k, const char *c, char *out, size_t n)
{
	static const char *const blanks[] = {"", " ", "\t", "  \n"};
	static const char *const bools[][2] = {{"t", "f"},       {"TRUE", "FALSE"}, {"yes", "no"},
					       {"On", "oFf"},    {"1", "0"},        {"Y", "N"},
					       {" true ", "fa"}, {"tru", "fals"}};
	if (k == LG__KEY_TEXT) {
		snprintf(out, n, "%s", c);
	} else if (k == LG__KEY_BOOL) {
		snprintf(out, n, "%s", bools[rnd() % 8][c[0] == 't' ? 0 : 1]);
	} else if (k == LG__KEY_UUID) {
		size_t o = 0;
		bool dashes = rnd() % 3 != 0;
		bool braces = rnd() % 6 == 0;
		o += braces ? (size_t)snprintf(out, n, "{") : 0;
		for (const char *s = c; *s != '\0' && o + 2 < n; s++) {
			if (*s != '-' || dashes) {
				out[o++] = rnd() % 2 ? (char)(*s & ~0x20 & 0x7f) : *s;
				if (*s == '-' || (*s >= '0' && *s <= '9')) {
					out[o - 1] = *s;
				}
			}
		}
		out[o] = '\0';
		if (braces) {
			snprintf(out + o, n - o, "}");
		}
	} else {
		bool neg = c[0] == '-';
		snprintf(out, n, "%s%s%.*s%s%s", blanks[rnd() % 4],
			 neg ? "-" : (rnd() % 2 ? "+" : ""), (int)(rnd() % 4), "0000", c + neg,
			 blanks[rnd() % 4]);
		if (rnd() % 10 == 0) {
			snprintf(out, n, "%s%s", c, rnd() % 2 ? "x" : "1.0"); /* invalid */
		}
	}
}

Test(contract_fuzz, client_side_canonical_text_matches_postgresql)
{
	static const struct {
		const char *type;
		void (*gen)(char *, size_t);
	} client[] = {{"smallint", gen_int2}, {"integer", gen_int4}, {"bigint", gen_int8},
		      {"uuid", gen_uuid},     {"boolean", gen_bool}, {"text", gen_text}};
	for (size_t i = 0; i < sizeof(client) / sizeof(client[0]); i++) {
		enum lg__contract_kind kind = lg__contract_kind(client[i].type);
		cr_assert_neq(kind, LG__KEY_DB, "%s", client[i].type);
		char q[128];
		snprintf(q, sizeof(q), "SELECT format('%%s', $1::%s)", client[i].type);
		for (int r = 0; r < rounds() * 5; r++) {
			char value[256], spelled[300], mine[300];
			client[i].gen(value, sizeof(value));
			respell(kind, value, spelled, sizeof(spelled));
			int rc = lg__contract_canon(kind, spelled, mine, sizeof(mine));
			cr_assert(rc == 0 || rc == LG__CONTRACT_ASK_DB, "%s", spelled);
			const char *p[] = {spelled};
			PGresult *res = PQexecParams(canon_db, q, 1, NULL, p, NULL, NULL, 0);
			if (PQresultStatus(res) != PGRES_TUPLES_OK) {
				cr_assert_neq(rc, 0, "%s: accepted '%s', PostgreSQL says %s",
					      client[i].type, spelled, PQresultErrorMessage(res));
			} else if (rc == 0) {
				cr_assert_str_eq(mine, PQgetvalue(res, 0, 0), "%s: '%s'",
						 client[i].type, spelled);
			}
			PQclear(res);
		}
	}
}
