/*
 * `lifeguard codegen` and lg_model_check against real PostgreSQL.
 *
 * tests/integration/codegen/schema.sql holds every type codegen maps, a domain, an enum,
 * identity, defaults, a generated column, a version column, a composite primary key declared
 * in another order than its columns, and single-column and composite foreign keys; the
 * headers generated from it are committed in codegen/golden/. This test regenerates them and
 * compares byte for byte, checks that a re-run and --check change nothing, that --check finds
 * an ALTER TABLE, that bad input exits 2 and an unsupported type exits 1 naming the column;
 * and it compiles the golden headers in (LG_MODEL_IMPLEMENTATION below) and uses them for
 * CRUD and relation loading on the real tables, then lets lg_model_check name the columns
 * that drift.
 *
 * The schema name is fixed (it is in the golden files): meson runs this test with --jobs 1.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/libguard.h>
#include <libguard/model.h>

#define LG_MODEL_IMPLEMENTATION
#include "accounts.h"
#include "every_type.h"
#include "grants.h"
#include "memberships.h"

#include "lg_test.h"
#include "lg_test_files.h"

static struct {
	char dir[64]; /* where this run generates */
	char out[96], errf[96];
	PGconn *pg;
} fx;

static const char *golden_dir(void)
{
	const char *d = getenv("LG_CODEGEN_DIR");
	cr_assert_not_null(d, "LG_CODEGEN_DIR is not set (run through meson test)");
	return d;
}

static void sql_ok(const char *sql)
{
	PGresult *r = PQexec(fx.pg, sql);
	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQerrorMessage(fx.pg));
	PQclear(r);
}

static void setup(void)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/lg-codegen-XXXXXX");
	cr_assert_not_null(mkdtemp(fx.dir));
	snprintf(fx.out, sizeof(fx.out), "%s.out", fx.dir);
	snprintf(fx.errf, sizeof(fx.errf), "%s.err", fx.dir);
	fx.pg = PQconnectdb(lg_test_pg_dsn());
	cr_assert_eq(PQstatus(fx.pg), CONNECTION_OK, "%s", PQerrorMessage(fx.pg));
	sql_ok("SET client_min_messages = warning");
	sql_ok("DROP SCHEMA IF EXISTS lg_codegen CASCADE");
	char path[512];
	snprintf(path, sizeof(path), "%s/schema.sql", golden_dir());
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	static char schema[16384];
	size_t n = fread(schema, 1, sizeof(schema) - 1, f);
	schema[n] = '\0';
	fclose(f);
	sql_ok(schema);
}

static void teardown(void)
{
	lg_test_cleanup(fx.pg, "lg_codegen", fx.dir, fx.out, fx.errf);
}

TestSuite(codegen, .init = setup, .fini = teardown);

/* Runs `lifeguard codegen ARGS...`; stdout and stderr in fx.out / fx.errf. */
#define RUN(...) run_args((const char *[]){"codegen", __VA_ARGS__, NULL})

static int run_args(const char *const *args)
{
	return lg_test_wait_exit(lg_test_spawn_lifeguard(args, fx.out, fx.errf));
}

static char *file_text(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return strdup(lg_test_slurp(path));
}

/* The .h files of dir, sorted, as one "a.h b.h ..." string. */
static void header_names(const char *dir, char *out, size_t size)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	cr_assert_geq(n, 0, "%s", dir);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		size_t l = strlen(list[i]->d_name);
		if (l > 2 && strcmp(list[i]->d_name + l - 2, ".h") == 0) {
			size_t used = strlen(out);
			snprintf(out + used, size - used, "%s%s", used ? " " : "", list[i]->d_name);
		}
		free(list[i]);
	}
	free(list);
}

Test(codegen, output_matches_the_golden_files_and_is_stable)
{
	int rc = RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir);
	cr_assert_eq(rc, 0, "%s", lg_test_slurp(fx.errf));
	char gold[512], mine[512], gdir[512];
	snprintf(gdir, sizeof(gdir), "%s/golden", golden_dir());
	header_names(gdir, gold, sizeof(gold));
	header_names(fx.dir, mine, sizeof(mine));
	cr_assert_str_eq(mine, gold);
	cr_assert_str_eq(mine, "accounts.h every_type.h grants.h memberships.h");
	for (char *name = strtok(mine, " "); name != NULL; name = strtok(NULL, " ")) {
		char *want = file_text(gdir, name), *got = file_text(fx.dir, name);
		cr_assert_str_eq(got, want, "%s differs from the golden file", name);
		free(want);
		free(got);
	}
	/* A re-run rewrites nothing, and --check agrees, also with --json. */
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir), 0);
	cr_assert_not_null(strstr(lg_test_slurp(fx.out), "unchanged"));
	cr_assert_null(strstr(lg_test_slurp(fx.out), "changed   "), "%s", lg_test_slurp(fx.out));
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", gdir,
			 "--check", "--json"),
		     0, "%s", lg_test_slurp(fx.errf));
	cr_assert_not_null(strstr(lg_test_slurp(fx.out), "\"drift\": 0"), "%s",
			   lg_test_slurp(fx.out));
}

Test(codegen, check_detects_an_alter_table)
{
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir), 0);
	sql_ok("ALTER TABLE lg_codegen.accounts ADD COLUMN nickname text");
	int rc =
	    RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir, "--check");
	cr_assert_eq(rc, 1);
	const char *e = lg_test_slurp(fx.errf);
	cr_assert_not_null(strstr(e, "accounts.h would change"), "%s", e);
	cr_assert_null(strstr(e, "memberships.h"), "%s", e);
	/* --check wrote nothing; a normal run then writes the new column. */
	char *text = file_text(fx.dir, "accounts.h");
	bool has_nickname = strstr(text, "nickname") != NULL;
	free(text);
	cr_assert_not(has_nickname, "--check wrote the header");
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--table", "accounts",
			 "--out", fx.dir),
		     0);
	text = file_text(fx.dir, "accounts.h");
	has_nickname = strstr(text, "X(accounts, nickname, LG_TEXT, LG_COL_NULLABLE)") != NULL;
	free(text);
	cr_assert(has_nickname, "the new column is not in the header");
	cr_assert_eq(
	    RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir, "--check"),
	    0);
	/* A dropped table: its header is stale; a hand-written header is never touched. */
	lg_test_write_file(fx.dir, "notes.h", "/* written by hand */\n");
	sql_ok("DROP TABLE lg_codegen.grants");
	cr_assert_eq(
	    RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir, "--check"),
	    1);
	e = lg_test_slurp(fx.errf);
	cr_assert_not_null(strstr(e, "grants.h would be removed (no table lg_codegen.grants)"),
			   "%s", e);
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir), 0);
	cr_assert_not_null(strstr(lg_test_slurp(fx.out), "removed"), "%s", lg_test_slurp(fx.out));
	char names[512];
	header_names(fx.dir, names, sizeof(names));
	cr_assert_str_eq(names, "accounts.h every_type.h memberships.h notes.h");
}

Test(codegen, connects_like_migrate_dsn_then_lifeguard_dsn_then_pg_variables)
{
	/* $LIFEGUARD_DSN when there is no --dsn (children inherit the environment). */
	cr_assert_eq(setenv("LIFEGUARD_DSN", lg_test_pg_dsn(), 1), 0);
	cr_assert_eq(RUN("--schema", "lg_codegen", "--out", fx.dir), 0, "%s",
		     lg_test_slurp(fx.errf));
	/* --dsn wins over it. */
	cr_assert_eq(RUN("--dsn", "host=127.0.0.1 port=1 connect_timeout=2", "--schema",
			 "lg_codegen", "--out", fx.dir),
		     2);
	/* Neither: libpq's PG* variables. */
	cr_assert_eq(unsetenv("LIFEGUARD_DSN"), 0);
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(lg_test_pg_dsn(), &msg);
	cr_assert_not_null(opts, "%s", msg);
	static const char *const vars[][2] = {
	    {"host", "PGHOST"}, {"port", "PGPORT"}, {"user", "PGUSER"}, {"dbname", "PGDATABASE"}};
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			if (o->val != NULL && strcmp(o->keyword, vars[i][0]) == 0) {
				cr_assert_eq(setenv(vars[i][1], o->val, 1), 0);
			}
		}
	}
	PQconninfoFree(opts);
	cr_assert_eq(RUN("--schema", "lg_codegen", "--out", fx.dir, "--check"), 0, "%s",
		     lg_test_slurp(fx.errf));
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		unsetenv(vars[i][1]);
	}
}

Test(codegen, bad_input_and_unsupported_types)
{
	cr_assert_eq(RUN("--schema", "lg_codegen"), 2);
	cr_assert_not_null(strstr(lg_test_slurp(fx.errf), "--out"));
	cr_assert_eq(
	    RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", "/nonexistent/x"), 2);
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--table", "nope",
			 "--out", fx.dir),
		     2);
	cr_assert_not_null(strstr(lg_test_slurp(fx.errf), "no table lg_codegen.nope"));
	cr_assert_eq(RUN("--dsn", "host=127.0.0.1 port=1 connect_timeout=2", "--schema",
			 "lg_codegen", "--out", fx.dir),
		     2);
	cr_assert_eq(RUN("--bogus"), 2);
	sql_ok("CREATE TABLE lg_codegen.shapes (id int PRIMARY KEY, p point)");
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir), 1);
	const char *e = lg_test_slurp(fx.errf);
	cr_assert_not_null(strstr(e, "lg_codegen.shapes column p: type point has no model type"),
			   "%s", e);
	sql_ok("DROP TABLE lg_codegen.shapes");
	sql_ok("CREATE TABLE lg_codegen.log (at timestamptz, line text)");
	cr_assert_eq(RUN("--dsn", lg_test_pg_dsn(), "--schema", "lg_codegen", "--out", fx.dir), 1);
	e = lg_test_slurp(fx.errf);
	cr_assert_not_null(strstr(e, "lg_codegen.log has no primary key"), "%s", e);
	/* Nothing was written for any table. */
	char names[512];
	header_names(fx.dir, names, sizeof(names));
	cr_assert_str_eq(names, "");
}

/* ---- The golden headers, compiled in, against the real tables ---- */

static struct lg_runtime *rt;
static struct lg_pool *pool;

static struct lg_db open_db(void)
{
	struct lg_error err;
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	struct lg_pool_config cfg = {.conninfo = lg_test_pg_dsn(), .min_conns = 1, .max_conns = 2};
	cr_assert_eq(lg_pool_new(rt, &cfg, &pool, &err), 0, "%s", err.message);
	return (struct lg_db){.pool = pool};
}

static void close_db(void)
{
	lg_pool_free(pool);
	lg_runtime_free(rt);
}

Test(codegen, generated_models_do_crud_and_load_relations)
{
	struct lg_db db = open_db();
	struct lg_error err;
	/* Insert: identity id and version come back from the server. */
	struct accounts ann = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &accounts_model, &ann);
	accounts_set_email(&ch, "ann@example.com");
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_gt(ann.id, 0);
	cr_assert_eq(ann.version, 1);
	cr_assert(accounts_name_is_null(&ann));
	/* Update through the version column: bumped. */
	lg_changes_init(&ch, &accounts_model, &ann);
	accounts_set_name(&ch, "Ann");
	cr_assert_eq(lg_model_update(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_eq(ann.version, 2);
	/* The domain's CHECK still applies. */
	struct accounts bad = {0};
	lg_changes_init(&ch, &accounts_model, &bad);
	accounts_set_email(&ch, "no at sign");
	cr_assert_eq(lg_model_insert(&db, &ch, &err), LG_ESERVER);
	cr_assert_str_eq(err.sqlstate, "23514");
	/* Composite key, declared (org, account_id) in key order: find takes it that way. */
	struct memberships m = {0};
	lg_changes_init(&ch, &memberships_model, &m);
	memberships_set_org(&ch, "acme");
	memberships_set_account_id(&ch, ann.id);
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_str_eq(m.role, "member");
	struct lg_param key[2] = {lg_param_text("acme"), lg_param_int64(ann.id)};
	struct memberships found = {0};
	cr_assert_eq(lg_model_find(&db, &memberships_model, key, &found, &err), 0, "%s",
		     err.message);
	cr_assert_eq(found.account_id, ann.id);
	/* Relations: both directions, one statement each. */
	struct lg_rows owners = {0}, members = {0};
	cr_assert_eq(memberships_load_account_id_accounts(&db, &found, 1, &owners, &err), 0, "%s",
		     err.message);
	cr_assert_eq(owners.n, 1);
	cr_assert_str_eq(LG_ROWS_AT(&owners, struct accounts, 0)->email, "ann@example.com");
	cr_assert_eq(accounts_load_memberships_by_account_id(&db, &ann, 1, &members, &err), 0, "%s",
		     err.message);
	cr_assert_eq(members.n, 1);
	cr_assert_str_eq(LG_ROWS_AT(&members, struct memberships, 0)->org, "acme");
	lg_rows_free(&owners);
	lg_rows_free(&members);
	/* Three-column key; the nullable FK granted_by stays NULL. */
	struct grants g = {0};
	lg_changes_init(&ch, &grants_model, &g);
	grants_set_org(&ch, "acme");
	grants_set_account_id(&ch, ann.id);
	grants_set_perm(&ch, "read");
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	cr_assert(grants_granted_by_is_null(&g));
	cr_assert_eq(lg_model_delete(&db, &grants_model, &g, &err), 0, "%s", err.message);
	cr_assert_eq(lg_model_delete(&db, &memberships_model, &found, &err), 0, "%s", err.message);
	cr_assert_eq(lg_model_delete(&db, &accounts_model, &ann, &err), 0, "%s", err.message);
	lg_row_clear(&grants_model, &g);
	lg_row_clear(&memberships_model, &found);
	lg_row_clear(&memberships_model, &m);
	lg_row_clear(&accounts_model, &ann);
	lg_row_clear(&accounts_model, &bad);
	/* Every generated model matches its table. */
	const struct lg_model *models[] = {&accounts_model, &memberships_model, &grants_model,
					   &every_type_model};
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
		cr_assert_eq(lg_model_check(&db, models[i], &err), 0, "%s: %s", models[i]->table,
			     err.message);
	}
	close_db();
}

Test(codegen, model_check_names_the_drifted_columns)
{
	struct lg_db db = open_db();
	struct lg_error err;
	cr_assert_eq(lg_model_check(&db, &accounts_model, &err), 0, "%s", err.message);
	sql_ok("ALTER TABLE lg_codegen.accounts ALTER COLUMN name TYPE int4 USING NULL");
	cr_assert_eq(lg_model_check(&db, &accounts_model, &err), LG_ETYPE);
	cr_assert_not_null(
	    strstr(err.message, "column name: the model has LG_TEXT, the table integer"), "%s",
	    err.message);
	sql_ok("ALTER TABLE lg_codegen.accounts ALTER COLUMN name TYPE varchar(80)");
	sql_ok("ALTER TABLE lg_codegen.accounts ALTER COLUMN name SET NOT NULL");
	sql_ok("ALTER TABLE lg_codegen.memberships DROP COLUMN role");
	sql_ok("ALTER TABLE lg_codegen.memberships ADD COLUMN since date NOT NULL");
	cr_assert_eq(lg_model_check(&db, &accounts_model, &err), LG_ETYPE);
	cr_assert_not_null(
	    strstr(err.message, "column name: the model allows NULL, the table is NOT NULL"), "%s",
	    err.message);
	cr_assert_eq(lg_model_check(&db, &memberships_model, &err), LG_ETYPE);
	cr_assert_not_null(strstr(err.message, "column role: missing from the table"), "%s",
			   err.message);
	cr_assert_not_null(strstr(err.message, "column since: NOT NULL without a default"), "%s",
			   err.message);
	sql_ok("DROP TABLE lg_codegen.grants");
	cr_assert_eq(lg_model_check(&db, &grants_model, &err), LG_ENOTFOUND);
	cr_assert_not_null(strstr(err.message, "\"lg_codegen\".\"grants\" does not exist"), "%s",
			   err.message);
	close_db();
}

Test(codegen, every_mapped_type_round_trips_through_the_generated_model)
{
	struct lg_db db = open_db();
	struct lg_error err;
	static const int32_t ints[] = {1, -2, 3};
	static const int64_t bigs[] = {INT64_MAX, INT64_MIN};
	static const double reals[] = {0.5, -1.25};
	static const bool flags[] = {true, false};
	static const bool tag_nulls[] = {false, true};
	static const char *const tags[] = {"a,b", NULL};
	static const char *const names[] = {"x"};
	static const struct lg_uuid ids[] = {{{1, 2, 3}}};
	struct every_type in = {0};
	struct lg_changes ch;
	lg_changes_init(&ch, &every_type_model, &in);
	every_type_set_small(&ch, -32768);
	every_type_set_medium(&ch, INT32_MAX);
	every_type_set_big(&ch, INT64_MIN);
	every_type_set_real4(&ch, 0.5);
	every_type_set_real8(&ch, 1e300);
	every_type_set_flag(&ch, true);
	every_type_set_body(&ch, "h\xc3\xa9llo");
	every_type_set_code(&ch, "ab ");
	every_type_set_label(&ch, "label");
	every_type_set_blob(&ch, (struct lg_bytes){(const uint8_t *)"\0\1\2", 3});
	every_type_set_at(&ch, 1700000000000000);
	every_type_set_doc(&ch, "{\"k\": [1, 2]}");
	every_type_set_raw_json(&ch, "{\"k\":  1}");
	every_type_set_amount(&ch, "12.34");
	every_type_set_day(&ch, 19000);
	every_type_set_clock(&ch, INT64_C(3723000001));
	every_type_set_wall(&ch, INT64_C(-1000000));
	every_type_set_span(&ch, (struct lg_interval){14, -3, 5000000});
	every_type_set_state(&ch, STATUS_VERY_OLD);
	every_type_set_addr(&ch, (struct lg_inet){LG_INET_V4, 24, {10, 1, 2, 0}});
	every_type_set_ints(&ch, (struct lg_array_int32){ints, NULL, 3});
	every_type_set_bigs(&ch, (struct lg_array_int64){bigs, NULL, 2});
	every_type_set_reals(&ch, (struct lg_array_float64){reals, NULL, 2});
	every_type_set_flags(&ch, (struct lg_array_bool){flags, NULL, 2});
	every_type_set_tags(&ch, (struct lg_array_text){tags, tag_nulls, 2});
	every_type_set_names(&ch, (struct lg_array_text){names, NULL, 1});
	every_type_set_ids(&ch, (struct lg_array_uuid){ids, NULL, 1});
	cr_assert_eq(lg_model_insert(&db, &ch, &err), 0, "%s", err.message);
	/* Server-side values came back: the uuid default and the generated column. */
	cr_assert_neq(in.id.b[6] & 0xf0, 0);
	cr_assert_str_eq(in.twice, "24.68");
	struct lg_param key = lg_param_uuid(in.id.b);
	struct every_type out = {0};
	cr_assert_eq(lg_model_find(&db, &every_type_model, &key, &out, &err), 0, "%s", err.message);
	cr_assert_eq(out.small, -32768);
	cr_assert_eq(out.medium, INT32_MAX);
	cr_assert_eq(out.big, INT64_MIN);
	cr_assert_eq(out.real4, 0.5);
	cr_assert_eq(out.real8, 1e300);
	cr_assert(out.flag);
	cr_assert_str_eq(out.body, "h\xc3\xa9llo");
	cr_assert_str_eq(out.code, "ab ");
	cr_assert_str_eq(out.label, "label");
	cr_assert_eq(out.blob.len, 3);
	cr_assert_eq(memcmp(out.blob.data, "\0\1\2", 3), 0);
	cr_assert_eq(out.at, 1700000000000000);
	cr_assert_str_eq(out.doc, "{\"k\": [1, 2]}");
	/* A json column is written as jsonb (LG_JSONB), which normalizes the text. */
	cr_assert_str_eq(out.raw_json, "{\"k\": 1}");
	cr_assert_str_eq(out.amount, "12.34");
	cr_assert_eq(out.day, 19000);
	cr_assert_eq(out.clock, INT64_C(3723000001));
	cr_assert_eq(out.wall, INT64_C(-1000000));
	cr_assert_eq(out.span.months, 14);
	cr_assert_eq(out.span.days, -3);
	cr_assert_eq(out.span.us, 5000000);
	cr_assert_str_eq(out.state, "very old");
	cr_assert_eq(out.addr.family, LG_INET_V4);
	cr_assert_eq(out.addr.bits, 24);
	cr_assert_eq(memcmp(out.addr.addr, (uint8_t[]){10, 1, 2, 0}, 4), 0);
	cr_assert_eq(out.ints.n, 3);
	cr_assert_eq(out.ints.v[1], -2);
	cr_assert_eq(out.bigs.n, 2);
	cr_assert_eq(out.bigs.v[0], INT64_MAX);
	cr_assert_eq(out.reals.v[1], -1.25);
	cr_assert(out.flags.v[0] && !out.flags.v[1]);
	cr_assert_eq(out.tags.n, 2);
	cr_assert_str_eq(out.tags.v[0], "a,b");
	cr_assert(out.tags.nulls != NULL && out.tags.nulls[1]);
	cr_assert_str_eq(out.names.v[0], "x");
	cr_assert_eq(memcmp(out.ids.v[0].b, ids[0].b, 16), 0);
	cr_assert_str_eq(out.twice, "24.68");
	/* Update one column; NULL where the model allows it. */
	lg_changes_init(&ch, &every_type_model, &out);
	every_type_set_state(&ch, STATUS_PUBLISHED);
	every_type_set_ints_null(&ch);
	cr_assert_eq(lg_model_update(&db, &ch, &err), 0, "%s", err.message);
	cr_assert_str_eq(out.state, "published");
	cr_assert(every_type_ints_is_null(&out));
	cr_assert_eq(lg_model_delete(&db, &every_type_model, &out, &err), 0, "%s", err.message);
	lg_row_clear(&every_type_model, &out);
	lg_row_clear(&every_type_model, &in);
	close_db();
}
