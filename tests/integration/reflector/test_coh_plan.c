/*
 * Batch planning of the coherence pipeline (pure): newest version per key, TRUNCATE
 * superseding older key changes, malformed outbox rows with their reasons, Redis key
 * escaping, the row-read SQL and the cache value.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coh_plan.h"

static struct rf_plan plan;

static void add(int64_t id, const char *table, const char *pk, char op, int64_t version)
{
	cr_assert_eq(rf_plan_add(&plan, id, table, pk, op, version, 1000), 0);
}

static const struct rf_key_work *key(const char *redis_key)
{
	for (size_t i = 0; i < plan.n_keys; i++) {
		if (plan.keys[i].redis_key != NULL &&
		    strcmp(plan.keys[i].redis_key, redis_key) == 0) {
			return &plan.keys[i];
		}
	}
	cr_assert_fail("no key %s", redis_key);
	return NULL;
}

static void fini(void)
{
	rf_plan_free(&plan);
}

TestSuite(coh_plan, .fini = fini);

Test(coh_plan, newest_version_per_key_wins)
{
	add(1, "public.users", "[\"1\"]", 'I', 10);
	add(2, "public.users", "[\"1\"]", 'U', 12);
	add(3, "public.users", "[\"2\"]", 'U', 11);
	add(4, "public.users", "[\"1\"]", 'D', 14);
	add(5, "public.users", "[\"1\"]", 'I', 13); /* claimed out of version order */
	cr_assert_eq(rf_plan_build(&plan, "lifeguard:model", "lifeguard:fence"), 0);
	cr_assert_eq(plan.n_keys, 2);
	const struct rf_key_work *k1 = key("lifeguard:model:public.users:1");
	cr_assert_eq(k1->version, 14);
	cr_assert_eq(k1->op, 'D');
	cr_assert_str_eq(k1->fence_key, "lifeguard:fence:public.users:1");
	cr_assert_eq(key("lifeguard:model:public.users:2")->version, 11);
	for (size_t i = 0; i < plan.n_changes; i++) {
		cr_assert_null(plan.changes[i].bad);
		cr_assert_neq(plan.changes[i].key_index, SIZE_MAX);
	}
	cr_assert_eq(plan.keys[plan.changes[0].key_index].version, 14);
}

Test(coh_plan, truncate_supersedes_older_changes_of_its_table)
{
	add(1, "public.a", "[\"1\"]", 'U', 5);
	add(2, "public.a", NULL, 'T', 7);
	add(3, "public.a", "[\"2\"]", 'I', 9);
	add(4, "public.b", "[\"1\"]", 'U', 6);
	add(5, "public.a", NULL, 'T', 8);
	cr_assert_eq(rf_plan_build(&plan, "p", "f"), 0);
	cr_assert_eq(plan.n_truncates, 1);
	cr_assert_eq(plan.truncates[0].version, 8);
	cr_assert_str_eq(plan.truncates[0].fence_key, "f:public.a");
	cr_assert_str_eq(plan.truncates[0].match, "p:public.a:*");
	cr_assert_eq(key("p:public.a:1")->state, RF_KEY_SUPERSEDED);
	cr_assert_eq(key("p:public.a:2")->state, RF_KEY_PENDING);
	cr_assert_eq(key("p:public.b:1")->state, RF_KEY_PENDING);
}

Test(coh_plan, malformed_rows_get_a_reason)
{
	add(1, "public.t", "{\"id\": 1}", 'U', 3);  /* not an array */
	add(2, "public.t", "[1]", 'U', 3);          /* not strings */
	add(3, "public.t", "[\"1\"", 'U', 3);       /* not JSON */
	add(4, "public.t", NULL, 'U', 3);           /* row change without key */
	add(5, "public.t", "[\"1\"]", 'T', 3);      /* TRUNCATE with a key */
	add(6, "t", "[\"1\"]", 'U', 3);             /* not schema-qualified */
	add(12, "public.Users", "[\"1\"]", 'U', 3); /* not how quote_ident spells it */
	add(13, "public.a:b", "[\"1\"]", 'U', 3);   /* would collide with public.a keys */
	add(14, "a.b.c", "[\"1\"]", 'U', 3);
	add(7, NULL, "[\"1\"]", 'U', 3);       /* no table */
	add(8, "public.t", "[\"1\"]", 'X', 3); /* unknown op */
	add(9, "public.t", "[\"1\"]", 'U', 0); /* version */
	add(10, "public.t", "[]", 'U', 3);     /* empty key */
	add(11, "public.t", "[\"ok\"]", 'U', 4);
	cr_assert_eq(rf_plan_build(&plan, "p", "f"), 0);
	for (size_t i = 0; i < plan.n_changes; i++) {
		if (plan.changes[i].id != 11) {
			cr_assert_not_null(plan.changes[i].bad, "row %lld",
					   (long long)plan.changes[i].id);
		} else {
			cr_assert_null(plan.changes[i].bad);
		}
	}
	cr_assert_eq(plan.n_keys, 1);
	cr_assert_eq(plan.n_truncates, 0);
}

Test(coh_plan, composite_keys_escape_and_equal_keys_group)
{
	add(1, "s.\"My T\"", "[\"a:b\", \"c\\\\d\"]", 'U', 3);
	add(2, "s.\"My T\"", "[\"a:b\",\"c\\\\d\"]", 'U', 4); /* same key, other spacing */
	add(3, "s.\"My T\"", "[\"a\", \"b:c\\\\d\"]", 'U', 5);
	cr_assert_eq(rf_plan_build(&plan, "p", "f"), 0);
	cr_assert_eq(plan.n_keys, 2);
	cr_assert_eq(key("p:s.\"My T\":a\\:b:c\\\\d")->version, 4);
	cr_assert_eq(key("p:s.\"My T\":a:b\\:c\\\\d")->version, 5);
}

Test(coh_plan, glob_escape_and_oversized_keys)
{
	char long_part[3000];
	memset(long_part, 'x', sizeof(long_part) - 1);
	long_part[sizeof(long_part) - 1] = '\0';
	char pk[3100];
	snprintf(pk, sizeof(pk), "[\"%s\"]", long_part);
	add(1, "public.t", pk, 'U', 3);
	add(2, "public.\"a*[b]?\"", NULL, 'T', 4);
	cr_assert_eq(rf_plan_build(&plan, "pre*fix", "f"), 0);
	cr_assert_eq(plan.keys[0].state, RF_KEY_BAD);
	cr_assert_not_null(plan.keys[0].bad);
	cr_assert_str_eq(plan.truncates[0].match, "pre\\*fix:public.\"a\\*\\[b\\]\\?\":*");
	char small[4];
	cr_assert_not(lg__contract_glob_escape(small, sizeof(small), "a*b"));
}

Test(coh_plan, read_sql_quotes_columns_and_value_wraps_the_row)
{
	const struct lg__contract_col cols[] = {
	    {"tenant", "text", LG__KEY_TEXT},
	    {"we\"ird", "uuid", LG__KEY_UUID},
	    {"at", "timestamp with time zone", LG__KEY_DB},
	};
	char *sql = rf_plan_read_sql("s.\"T\"", cols, 3);
	cr_assert_not_null(sql);
	/* Key types whose input depends on session settings are parsed by lifeguard.key_in()
	 * under the contract's fixed settings. */
	cr_assert_str_eq(sql, "SELECT k.i, t.lg_version, to_jsonb(t)::text FROM "
			      "jsonb_array_elements($1::jsonb) WITH ORDINALITY AS k(key, i) JOIN "
			      "s.\"T\" t ON t.\"tenant\" = (k.key->>0)::text AND "
			      "t.\"we\"\"ird\" = (k.key->>1)::uuid AND t.\"at\" = "
			      "CAST(lifeguard.key_in(k.key->>2, NULL::timestamp with time zone) AS "
			      "timestamp with time zone)");
	free(sql);
	size_t len = 0;
	char *v = rf_plan_value(42, "{\"id\": 1}", 9, &len);
	cr_assert_str_eq(v, "{\"v\":42,\"row\":{\"id\": 1}}");
	cr_assert_eq(len, strlen(v));
	free(v);
}
