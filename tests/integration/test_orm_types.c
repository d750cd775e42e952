/*
 * The ORM's date, time, timestamp, interval, numeric, enum, inet and array types against real
 * PostgreSQL: each value is written through a change set (binary parameters), compared on the
 * server with the literal it must equal, and read back (text results) into the same C value;
 * values the server prints are read into the documented representation (infinities, BC dates,
 * negative interval parts, NULL array elements, quoted array strings); bad values are refused
 * with LG_EINVAL before anything is sent, and a column of another type is LG_ETYPE.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>
#include <libguard/model.h>
#include <libguard/query.h>

#include "lg_test.h"

static char schema_name[32];

#define TY_COLUMNS(X)                                                                              \
	X(ty, id, LG_INT64, LG_COL_PK)                                                             \
	X(ty, d, LG_DATE, LG_COL_NULLABLE)                                                         \
	X(ty, tm, LG_TIME, LG_COL_NULLABLE)                                                        \
	X(ty, ts, LG_TIMESTAMP, LG_COL_NULLABLE)                                                   \
	X(ty, iv, LG_INTERVAL, LG_COL_NULLABLE)                                                    \
	X(ty, n, LG_NUMERIC, LG_COL_NULLABLE)                                                      \
	X(ty, mood, LG_ENUM, LG_COL_NULLABLE)                                                      \
	X(ty, ip, LG_INET, LG_COL_NULLABLE)                                                        \
	X(ty, a32, LG_INT32_ARRAY, LG_COL_NULLABLE)                                                \
	X(ty, a64, LG_INT64_ARRAY, LG_COL_NULLABLE)                                                \
	X(ty, af, LG_FLOAT64_ARRAY, LG_COL_NULLABLE)                                               \
	X(ty, ab, LG_BOOL_ARRAY, LG_COL_NULLABLE)                                                  \
	X(ty, at, LG_TEXT_ARRAY, LG_COL_NULLABLE)                                                  \
	X(ty, au, LG_UUID_ARRAY, LG_COL_NULLABLE)
LG_MODEL_DECLARE(ty, TY_COLUMNS);
LG_MODEL_DEFINE(ty, schema_name, "ty", TY_COLUMNS);

/* The same table read as if d were a time column: a type mismatch. */
#define WRONG_COLUMNS(X)                                                                           \
	X(wrong, id, LG_INT64, LG_COL_PK)                                                          \
	X(wrong, d, LG_TIME, LG_COL_NULLABLE)
LG_MODEL_DECLARE(wrong, WRONG_COLUMNS);
LG_MODEL_DEFINE(wrong, schema_name, "ty", WRONG_COLUMNS);

static struct lg_runtime *rt;
static struct lg_pool *pool;
static struct lg_db db;
static char dsn[1024];

static void exec_ok(const char *sql)
{
	struct lg_error err;
	cr_assert_eq(lg_pool_exec(pool, sql, &err), 0, "%s: %s", sql, err.message);
}

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	snprintf(schema_name, sizeof(schema_name), "ormty_%d", (int)getpid());
	/* A session zone far from UTC: timestamp without time zone must not move with it. */
	snprintf(dsn, sizeof(dsn), "%s options='-c TimeZone=Asia/Kathmandu -c search_path=%s'",
		 lg_test_pg_dsn(), schema_name);
	struct lg_pool_config cfg = {.conninfo = dsn, .min_conns = 1, .max_conns = 2};
	struct lg_error err;
	cr_assert_eq(lg_pool_new(rt, &cfg, &pool, &err), 0, "%s", err.message);
	db = (struct lg_db){.pool = pool};
	char sql[256];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema_name);
	exec_ok(sql);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema_name);
	exec_ok(sql);
	exec_ok("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ''quoted''')");
	exec_ok("CREATE TABLE ty (id int8 PRIMARY KEY, d date, tm time, ts timestamp, iv interval, "
		"n numeric, mood mood, ip inet, a32 int4[], a64 int8[], af float8[], ab bool[], "
		"at text[], au uuid[])");
}

static void teardown(void)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema_name);
	exec_ok(sql);
	lg_pool_free(pool);
	lg_runtime_free(rt);
}

TestSuite(orm_types, .init = setup, .fini = teardown);

/* The boolean the server computes for sql (one row, one column). */
static bool server_true(const char *sql)
{
	struct lg_result *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_pool_query(pool, sql, NULL, 0, NULL, &r, &err), 0, "%s: %s", sql,
		     err.message);
	bool v = false;
	cr_assert_eq(lg_result_bool(r, 0, 0, &v), 0, "%s", sql);
	lg_result_free(r);
	return v;
}

static int64_t count_rows(void)
{
	struct lg_query q;
	int64_t n = -1;
	struct lg_error err;
	lg_query_init(&q, &ty_model);
	cr_assert_eq(lg_query_count(&db, &q, &n, &err), 0, "%s", err.message);
	lg_query_close(&q);
	return n;
}

static const char *big = "123456789012345678901234567890.000000000000000001";
static const int32_t a32v[] = {INT32_MIN, 0, 0, INT32_MAX};
static const bool a32n[] = {false, true, false, false};
static const int64_t a64v[] = {INT64_MIN, -1, INT64_MAX};
static const double afv[] = {0.1, -2.5e300, 0, 5e-324};
static const bool abv[] = {true, false, true};
static const char *const atv[] = {"plain", "",      "a,b",   "quote \" and \\ back", NULL, "NULL",
				  "{x}",   " pad ", "żółć 🐘"};
static const bool atn[] = {false, false, false, false, true, false, false, false, false};
static const struct lg_uuid auv[] = {{{0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56,
				       0x42, 0x66, 0x14, 0x17, 0x40, 0x00}},
				     {{0}}};

/* 2026-12-03 = 20,790 days after 1970-01-01; 13:14:15.000016 and the same instant. */
#define DAY_2026_12_03 20790
#define TIME_13_14_15  (((13 * 60 + 14) * 60 + 15) * INT64_C(1000000) + 16)

static void fill_row(struct lg_changes *ch)
{
	ty_set_id(ch, 1);
	ty_set_d(ch, DAY_2026_12_03);
	ty_set_tm(ch, TIME_13_14_15);
	ty_set_ts(ch, (int64_t)DAY_2026_12_03 * 86400 * 1000000 + TIME_13_14_15);
	ty_set_iv(ch, (struct lg_interval){
			  .months = -14, .days = 3, .us = -(4 * 3600 + 5) * INT64_C(1000000) - 6});
	ty_set_n(ch, big);
	ty_set_mood(ch, "happy 'quoted'");
	struct lg_inet ip = {.family = LG_INET_V6, .bits = 64, .addr = {0x20, 0x01, 0x0d, 0xb8}};
	ip.addr[15] = 1;
	ty_set_ip(ch, ip);
	ty_set_a32(ch, (struct lg_array_int32){a32v, a32n, 4});
	ty_set_a64(ch, (struct lg_array_int64){a64v, NULL, 3});
	ty_set_af(ch, (struct lg_array_float64){afv, NULL, 4});
	ty_set_ab(ch, (struct lg_array_bool){abv, NULL, 3});
	ty_set_at(ch, (struct lg_array_text){atv, atn, 9});
	ty_set_au(ch, (struct lg_array_uuid){auv, NULL, 2});
}

static void check_row(const struct ty *r)
{
	cr_assert_eq(r->lg_null, 0);
	cr_assert_eq(r->d, DAY_2026_12_03);
	cr_assert_eq(r->tm, TIME_13_14_15);
	cr_assert_eq(r->ts, (int64_t)DAY_2026_12_03 * 86400 * 1000000 + TIME_13_14_15);
	cr_assert_eq(r->iv.months, -14);
	cr_assert_eq(r->iv.days, 3);
	cr_assert_eq(r->iv.us, -(4 * 3600 + 5) * INT64_C(1000000) - 6);
	cr_assert_str_eq(r->n, big);
	cr_assert_str_eq(r->mood, "happy 'quoted'");
	cr_assert_eq(r->ip.family, LG_INET_V6);
	cr_assert_eq(r->ip.bits, 64);
	cr_assert_eq(r->ip.addr[1], 0x01);
	cr_assert_eq(r->ip.addr[15], 1);
	cr_assert_eq(r->a32.n, 4);
	cr_assert_not_null(r->a32.nulls);
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(r->a32.nulls[i], a32n[i]);
		cr_assert_eq(r->a32.v[i], a32n[i] ? 0 : a32v[i]);
	}
	cr_assert_eq(r->a64.n, 3);
	cr_assert_null(r->a64.nulls);
	cr_assert_eq(memcmp(r->a64.v, a64v, sizeof(a64v)), 0);
	cr_assert_eq(r->af.n, 4);
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(r->af.v[i], afv[i], "float %zu", i);
	}
	cr_assert_eq(r->ab.n, 3);
	cr_assert_eq(memcmp(r->ab.v, abv, sizeof(abv)), 0);
	cr_assert_eq(r->at.n, 9);
	for (size_t i = 0; i < 9; i++) {
		cr_assert_eq(r->at.nulls[i], atn[i]);
		if (atn[i]) {
			cr_assert_null(r->at.v[i]);
		} else {
			cr_assert_str_eq(r->at.v[i], atv[i]);
		}
	}
	cr_assert_eq(r->au.n, 2);
	cr_assert_eq(memcmp(r->au.v, auv, sizeof(auv)), 0);
}

Test(orm_types, every_new_type_round_trips)
{
	struct lg_error err;
	struct ty row = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &ty_model, &row);
	fill_row(&ch);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	/* The row came back through RETURNING (text results). */
	check_row(&row);
	lg_row_clear(&ty_model, &row);

	/* The server holds exactly the values meant, whatever the session time zone. */
	cr_assert(
	    server_true("SELECT d = '2026-12-03' AND tm = '13:14:15.000016' AND "
			"ts = '2026-12-03 13:14:15.000016' AND "
			"iv = '-1 year -2 mons +3 days -04:00:05.000006' AND "
			"n = '123456789012345678901234567890.000000000000000001'::numeric AND "
			"n::text = '123456789012345678901234567890.000000000000000001' AND "
			"mood = 'happy ''quoted''' AND ip = '2001:db8::1/64' AND "
			"a32 = '{-2147483648,NULL,0,2147483647}' AND "
			"a64 = '{-9223372036854775808,-1,9223372036854775807}' AND "
			"af = ARRAY[0.1, -2.5e300, 0, 5e-324]::float8[] AND "
			"ab = '{t,f,t}' AND "
			"at = ARRAY['plain', '', 'a,b', 'quote \" and \\ back', NULL, 'NULL', "
			"'{x}', ' pad ', 'żółć 🐘'] AND "
			"au = '{123e4567-e89b-12d3-a456-426614174000,"
			"00000000-0000-0000-0000-000000000000}' FROM ty WHERE id = 1"));

	/* find (single row), a listing (column by column) and copies of both. */
	struct ty got = {0};
	struct lg_param key = lg_param_int64(1);
	cr_assert_eq(lg_model_find(&db, &ty_model, &key, &got, &err), 0, "%s", err.message);
	check_row(&got);
	struct ty copy = {0};
	cr_assert_eq(lg_row_copy(&ty_model, &copy, &got), 0);
	lg_row_clear(&ty_model, &got);
	check_row(&copy);

	struct lg_changes ch2;
	struct ty two = {0};
	lg_changes_init(&ch2, &ty_model, &two);
	fill_row(&ch2);
	ty_set_id(&ch2, 2);
	cr_assert_eq(lg_model_insert(&db, &ch2, &err), 0, "%s", err.message);
	lg_row_clear(&ty_model, &two);
	struct lg_rows rows = {0};
	struct lg_query q;
	lg_query_init(&q, &ty_model);
	ty_query_eq(&q, ty_col_d, lg_param_date(DAY_2026_12_03));
	ty_query_eq(&q, ty_col_tm, lg_param_time(TIME_13_14_15));
	ty_query_eq(&q, ty_col_n, lg_param_numeric(big));
	ty_query_eq(&q, ty_col_mood, lg_param_enum("happy 'quoted'"));
	ty_query_eq(&q, ty_col_ip, lg_param_text("2001:db8::1/64"));
	ty_query_eq(&q, ty_col_iv,
		    lg_param_interval(
			(struct lg_interval){-14, 3, -(4 * 3600 + 5) * INT64_C(1000000) - 6}));
	ty_query_order(&q, ty_col_id, false);
	cr_assert_eq(lg_query_all(&db, &q, &rows, &err), 0, "%s", err.message);
	lg_query_close(&q);
	cr_assert_eq(rows.n, 2);
	check_row(LG_ROWS_AT(&rows, struct ty, 0));
	check_row(LG_ROWS_AT(&rows, struct ty, 1));
	lg_rows_free(&rows);
	check_row(&copy);
	lg_row_clear(&ty_model, &copy);
}

Test(orm_types, server_text_reads_into_the_documented_values)
{
	exec_ok("INSERT INTO ty (id, d, ts, tm, iv, n, ip, a32, at, ab, af) VALUES "
		"(1, 'infinity', '-infinity', '24:00:00', "
		"'-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807', 'NaN', "
		"'10.1.2.3', '{}', '{}', '{}', '{NaN,Infinity,-Infinity}'), "
		"(2, '-infinity', 'infinity', '00:00:00', '00:00:00', '-0.000', '0.0.0.0/0', "
		"'[0:1]={1,2}', '{\"\"}', '{NULL}', '{}'), "
		"(3, '0044-03-15 BC', '0044-03-15 12:00:00 BC', '00:00:00.000001', "
		"'1 year 2 mons 3 days 04:05:06.5', '1e-5', '::ffff:1.2.3.4', NULL, NULL, NULL, "
		"NULL), "
		"(4, '1970-01-01', '1970-01-01 00:00:00', '12:00', '2562047788:00:54.775807', "
		"'Infinity', '255.255.255.255/32', NULL, NULL, NULL, NULL)");
	struct lg_error err;
	struct ty r = {0};
	struct lg_param key = lg_param_int64(1);
	cr_assert_eq(lg_model_find(&db, &ty_model, &key, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.d, LG_DATE_INFINITY);
	cr_assert_eq(r.ts, LG_TIMESTAMP_NEG_INFINITY);
	cr_assert_eq(r.tm, LG_TIME_MAX);
	cr_assert_eq(r.iv.months, -178956970 * 12 - 8);
	cr_assert_eq(r.iv.days, INT32_MIN);
	cr_assert_eq(r.iv.us, INT64_MIN + 1);
	cr_assert_str_eq(r.n, "NaN");
	cr_assert_eq(r.ip.family, LG_INET_V4);
	cr_assert_eq(r.ip.bits, 32);
	cr_assert_eq(memcmp(r.ip.addr, "\x0a\x01\x02\x03", 4), 0);
	cr_assert_eq(r.a32.n, 0);
	cr_assert_eq(r.at.n, 0);
	cr_assert_eq(r.ab.n, 0);
	cr_assert_eq(r.af.n, 3);
	cr_assert(r.af.v[0] != r.af.v[0]); /* NaN */
	cr_assert(r.af.v[1] > 1e308 && r.af.v[2] < -1e308);
	cr_assert_eq(r.lg_null, LG_COL(ty_col_mood) | LG_COL(ty_col_a64) | LG_COL(ty_col_au));
	lg_row_clear(&ty_model, &r);

	/* Row 2: an array with bounds other than 1 is refused, not silently shifted. */
	key = lg_param_int64(2);
	cr_assert_eq(lg_model_find(&db, &ty_model, &key, &r, &err), LG_EINVAL);
	exec_ok("UPDATE ty SET a32 = '{1,2}' WHERE id = 2");
	cr_assert_eq(lg_model_find(&db, &ty_model, &key, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.d, LG_DATE_NEG_INFINITY);
	cr_assert_eq(r.ts, LG_TIMESTAMP_INFINITY);
	cr_assert_eq(r.tm, 0);
	cr_assert(r.iv.months == 0 && r.iv.days == 0 && r.iv.us == 0);
	cr_assert_str_eq(r.n, "0.000");
	cr_assert_eq(r.ip.bits, 0);
	cr_assert_eq(r.at.n, 1);
	cr_assert_str_eq(r.at.v[0], "");
	cr_assert(r.ab.n == 1 && r.ab.nulls != NULL && r.ab.nulls[0]);
	lg_row_clear(&ty_model, &r);

	key = lg_param_int64(3);
	cr_assert_eq(lg_model_find(&db, &ty_model, &key, &r, &err), 0, "%s", err.message);
	/* 15 March 44 BC (astronomical year -43), by the server's own day count. */
	cr_assert(server_true("SELECT '0044-03-15 BC'::date - '1970-01-01'::date = -735160"));
	cr_assert_eq(r.d, -735160);
	cr_assert_eq(r.ts, (int64_t)-735160 * 86400 * 1000000 + INT64_C(12) * 3600 * 1000000);
	cr_assert_eq(r.tm, 1);
	cr_assert_eq(r.iv.months, 14);
	cr_assert_eq(r.iv.days, 3);
	cr_assert_eq(r.iv.us, (4 * 3600 + 5 * 60 + 6) * INT64_C(1000000) + 500000);
	cr_assert_str_eq(r.n, "0.00001");
	cr_assert_eq(r.ip.family, LG_INET_V6);
	cr_assert_eq(r.ip.bits, 128);
	cr_assert_eq(memcmp(r.ip.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x01\x02\x03\x04", 16), 0);
	lg_row_clear(&ty_model, &r);

	key = lg_param_int64(4);
	cr_assert_eq(lg_model_find(&db, &ty_model, &key, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.d, 0);
	cr_assert_eq(r.ts, 0);
	cr_assert_eq(r.iv.us, INT64_MAX);
	cr_assert_str_eq(r.n, "Infinity");
	lg_row_clear(&ty_model, &r);

	/* Written back, each value is the one the server printed. */
	exec_ok("CREATE TABLE ty_copy AS SELECT * FROM ty WHERE id IN (1, 3, 4)");
	for (int id = 1; id <= 4; id++) {
		if (id == 2) {
			continue;
		}
		key = lg_param_int64(id);
		cr_assert_eq(lg_model_find(&db, &ty_model, &key, &r, &err), 0, "%s", err.message);
		cr_assert_eq(lg_model_delete(&db, &ty_model, &r, &err), 0, "%s", err.message);
		struct lg_changes ch;
		lg_changes_init(&ch, &ty_model, &r);
		ch.changed = LG_COL_BIT(ty_col__count) - 1;
		cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "row %d: %s", id, err.message);
		lg_row_clear(&ty_model, &r);
	}
	cr_assert(server_true("SELECT count(*) = 3 FROM ty_copy c JOIN ty t USING (id) WHERE "
			      "(c.d, c.ts, c.tm, c.iv, c.n, c.ip, c.a32, c.at, c.ab, c.af::text) "
			      "IS NOT DISTINCT FROM "
			      "(t.d, t.ts, t.tm, t.iv, t.n, t.ip, t.a32, t.at, t.ab, t.af::text)"));
}

Test(orm_types, bad_values_are_refused_before_sending)
{
	struct lg_error err;
	struct ty row = {0};
	struct lg_changes ch;
	int64_t before = count_rows();

	const char *bad_numeric[] = {"12a", "1.2.3", "", " 1", "1 ", "1e", "0x10", "--1", "inf"};
	for (size_t i = 0; i < sizeof(bad_numeric) / sizeof(bad_numeric[0]); i++) {
		lg_changes_init(&ch, &ty_model, &row);
		ty_set_id(&ch, 100);
		ty_set_n(&ch, bad_numeric[i]);
		cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL, "numeric '%s'",
			     bad_numeric[i]);
	}
	lg_changes_init(&ch, &ty_model, &row);
	ty_set_id(&ch, 100);
	ty_set_tm(&ch, LG_TIME_MAX + 1);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	cr_assert(strstr(err.message, "column tm: a value the column's type cannot hold") != NULL,
		  "%s", err.message);
	ty_set_tm(&ch, -1);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	ty_set_tm_null(&ch);
	ty_set_d(&ch, INT32_MAX - 1); /* past 5874897 AD */
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	ty_set_d(&ch, -2440589); /* the day before 4714-11-24 BC */
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	ty_set_d_null(&ch);
	ty_set_ts(&ch, INT64_C(-210866803200000001));
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	ty_set_ts_null(&ch);
	ty_set_ip(&ch, (struct lg_inet){.family = LG_INET_V4, .bits = 33});
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	ty_set_ip(&ch, (struct lg_inet){.family = 5, .bits = 8});
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	ty_set_ip_null(&ch);
	const char *with_null[] = {"a", NULL};
	ty_set_at(&ch, (struct lg_array_text){with_null, NULL, 2}); /* NULL without its flag */
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	cr_assert(strstr(err.message, "column at:") != NULL, "%s", err.message);
	ty_set_at(&ch, (struct lg_array_text){NULL, NULL, 3});
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_EINVAL);
	ty_set_at_null(&ch);
	ty_set_mood(&ch, "furious"); /* not a label: the server's error, with its SQLSTATE */
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_ESERVER);
	cr_assert_str_eq(err.sqlstate, "22P02");
	cr_assert_eq(count_rows(), before);

	/* Filters: an invalid parameter fails the query, it is not sent as something else. */
	struct lg_query q;
	int64_t n = 0;
	lg_query_init(&q, &ty_model);
	ty_query_eq(&q, ty_col_n, lg_param_numeric("1,5"));
	cr_assert_eq(lg_query_count(&db, &q, &n, &err), LG_EINVAL);
	cr_assert(strstr(err.message, "filter value") != NULL, "%s", err.message);
	lg_query_close(&q);
	lg_query_init(&q, &ty_model);
	ty_query_eq(&q, ty_col_tm, lg_param_time(LG_TIME_MAX + 1));
	cr_assert_eq(lg_query_count(&db, &q, &n, &err), LG_EINVAL);
	lg_query_close(&q);

	/* An empty array is not a NULL. */
	lg_changes_init(&ch, &ty_model, &row);
	ty_set_id(&ch, 101);
	ty_set_a64(&ch, (struct lg_array_int64){NULL, NULL, 0});
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	cr_assert(!ty_a64_is_null(&row) && row.a64.n == 0);
	lg_row_clear(&ty_model, &row);
	cr_assert(server_true("SELECT a64 = '{}' FROM ty WHERE id = 101"));
}

Test(orm_types, a_column_of_another_type_is_not_read)
{
	exec_ok("INSERT INTO ty (id, d) VALUES (1, '2000-01-01')");
	struct lg_error err;
	struct wrong w = {0};
	struct lg_param key = lg_param_int64(1);
	cr_assert_eq(lg_model_find(&db, &wrong_model, &key, &w, &err), LG_ETYPE);
	/* A typed call of one model on a query of another compiles, but the query fails. */
	struct lg_query q;
	int64_t count = -1;
	lg_query_init(&q, &ty_model);
	wrong_query_is_null(&q, wrong_col_d);
	cr_assert_eq(lg_query_count(&db, &q, &count, &err), LG_EINVAL);
	lg_query_close(&q);
	cr_assert_eq(count, -1);
	/* A table without some model columns: they read as NULL. */
	exec_ok("CREATE TABLE ty_narrow (id int8 PRIMARY KEY, n numeric)");
	exec_ok("INSERT INTO ty_narrow VALUES (5, 0.5)");
	struct lg_rows rows = {0};
	cr_assert_eq(lg_model_raw(&db, &ty_model, "SELECT * FROM ty_narrow", NULL, 0, &rows, &err),
		     0, "%s", err.message);
	cr_assert_eq(rows.n, 1);
	struct ty *r = LG_ROWS_AT(&rows, struct ty, 0);
	cr_assert_str_eq(r->n, "0.5");
	cr_assert_eq(r->lg_null,
		     (LG_COL_BIT(ty_col__count) - 1) & ~(LG_COL(ty_col_id) | LG_COL(ty_col_n)));
	cr_assert(ty_d_is_null(r) && ty_a32_is_null(r));
	lg_rows_free(&rows);
}
