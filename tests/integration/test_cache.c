/*
 * The cache contract's Lua scripts against real Redis: fences, refresh keeping the TTL,
 * tombstones, term fencing of deposed writers, and the stale-fill race (a reader misses,
 * a writer's change is processed, the reader's older fill is refused). Also key escaping.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libguard/cache_contract.h>
#include <libguard/libguard.h>

static struct lg_runtime *rt;
static struct lg_redis *redis;
static struct lg_redis_script scripts[LG_CACHE__SCRIPT_COUNT];
static char row[128], fence[128], tfence[128], term[128];

static void setup(void)
{
	cr_assert_eq(lg_runtime_new(NULL, NULL, &rt), 0);
	const char *port = getenv("LG_TEST_REDIS_PORT");
	cr_assert_not_null(port, "run through scripts/test (LG_TEST_REDIS_PORT)");
	struct lg_redis_config cfg = {.host = "127.0.0.1", .port = atoi(port)};
	struct lg_error err;
	cr_assert_eq(lg_redis_new(rt, &cfg, &redis, &err), 0, "%s", err.message);
	for (int i = 0; i < LG_CACHE__SCRIPT_COUNT; i++) {
		cr_assert_eq(lg_redis_script_init(&scripts[i],
						  lg_cache_script_source((enum lg_cache_script)i),
						  &err),
			     0, "%s", err.message);
	}
	/* Keys private to this test process. */
	char table[64];
	snprintf(table, sizeof(table), "t%d.users", (int)getpid());
	const char *pk[] = {"42"};
	cr_assert_eq(lg_cache_key(row, sizeof(row), "lifeguard:model", table, pk, 1), 0);
	cr_assert_eq(lg_cache_key(fence, sizeof(fence), "lifeguard:fence", table, pk, 1), 0);
	snprintf(tfence, sizeof(tfence), "lifeguard:fence:%s", table);
	snprintf(term, sizeof(term), "lifeguard:reflector:term:%d", (int)getpid());
}

static void teardown(void)
{
	lg_redis_free(redis);
	lg_runtime_free(rt);
}

TestSuite(cache, .init = setup, .fini = teardown);

/* Runs a script with string keys and args; returns the reply text ("" for non-strings),
 * or "ERR:<message>" for a script error. */
static const char *run(enum lg_cache_script s, int nkeys, const char **keys, int nargs,
		       const char **args)
{
	static char out[256];
	struct lg_redis_reply *r = NULL;
	struct lg_error err;
	int rc = lg_redis_eval(redis, &scripts[s], nkeys, keys, NULL, nargs, args, NULL,
			       &(struct lg_redis_opts){lg_deadline_in(5000)}, &r, &err);
	if (rc == LG_ESERVER) {
		snprintf(out, sizeof(out), "ERR:%.200s", err.message);
		return out;
	}
	cr_assert_eq(rc, 0, "%s", err.message);
	if (r->type == LG_REDIS_STRING || r->type == LG_REDIS_STATUS) {
		snprintf(out, sizeof(out), "%.*s", (int)r->len, r->str);
	} else if (r->type == LG_REDIS_INTEGER) {
		snprintf(out, sizeof(out), "%lld", r->integer);
	} else {
		out[0] = '\0';
	}
	lg_redis_reply_free(r);
	return out;
}

static const char *get(const char *key)
{
	static char out[256];
	struct lg_redis_reply *r = NULL;
	cr_assert_eq(lg_redis_command(redis, NULL, &r, NULL, "GET %s", key), 0);
	if (r->type == LG_REDIS_NIL) {
		strcpy(out, "(nil)");
	} else {
		snprintf(out, sizeof(out), "%.*s", (int)r->len, r->str);
	}
	lg_redis_reply_free(r);
	return out;
}

static long long pttl(const char *key)
{
	struct lg_redis_reply *r = NULL;
	cr_assert_eq(lg_redis_command(redis, NULL, &r, NULL, "PTTL %s", key), 0);
	long long v = r->integer;
	lg_redis_reply_free(r);
	return v;
}

static void cmd(const char *fmt, const char *key, const char *value)
{
	struct lg_redis_reply *r = NULL;
	cr_assert_eq(lg_redis_command(redis, NULL, &r, NULL, fmt, key, value), 0);
	lg_redis_reply_free(r);
}

/* Redis' clock in milliseconds (TIME). */
static long long redis_now_ms(void)
{
	struct lg_redis_reply *r = NULL;
	cr_assert_eq(lg_redis_command(redis, NULL, &r, NULL, "TIME"), 0);
	cr_assert(r->type == LG_REDIS_ARRAY && r->elements == 2);
	long long ms = atoll(r->element[0].str) * 1000 + atoll(r->element[1].str) / 1000;
	lg_redis_reply_free(r);
	return ms;
}

/* LG_CACHE_FILL of a row read just now: {version, value, ttl} plus a read stamp of Redis'
 * current time and a max age of 60 s. */
static const char *fill_now(const char **keys, const char **args3)
{
	char read_ms[32];
	snprintf(read_ms, sizeof(read_ms), "%lld", redis_now_ms());
	const char *args[] = {args3[0], args3[1], args3[2], read_ms, "60000"};
	return run(LG_CACHE_FILL, 3, keys, 5, args);
}

static void claim(const char *t)
{
	const char *k[] = {term};
	const char *a[] = {t};
	cr_assert_str_eq(run(LG_CACHE_CLAIM_TERM, 1, k, 1, a), t);
}

Test(cache, uncached_change_fences_and_cached_change_refreshes_keeping_ttl)
{
	claim("3");
	const char *k[] = {row, fence, term};
	const char *a[] = {"10", "60000", "3"};
	cr_assert_str_eq(run(LG_CACHE_CHECK_OR_FENCE, 3, k, 3, a), "fenced");
	cr_assert_str_eq(get(fence), "10");
	cr_assert_str_eq(get(row), "(nil)", "an uncached key is never created");
	cmd("SET %s %s PX 50000", row, "{\"v\":11,\"row\":{\"id\":42,\"name\":\"old\"}}");
	const char *b[] = {"12", "60000", "3"};
	cr_assert_str_eq(run(LG_CACHE_CHECK_OR_FENCE, 3, k, 3, b), "cached");
	const char *r1[] = {"12", "{\"v\":12,\"row\":{\"id\":42,\"name\":\"new\"}}", "60000", "3"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, r1), "refreshed");
	cr_assert_str_eq(get(row), "{\"v\":12,\"row\":{\"id\":42,\"name\":\"new\"}}");
	long long ttl = pttl(row);
	cr_assert(ttl > 0 && ttl <= 50000, "TTL kept: %lld", ttl);
	/* An older refresh (at-least-once redelivery) never goes back in time. */
	const char *r0[] = {"11", "{\"v\":11,\"row\":{\"id\":42,\"name\":\"old\"}}", "60000", "3"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, r0), "kept");
	cr_assert_str_eq(get(row), "{\"v\":12,\"row\":{\"id\":42,\"name\":\"new\"}}");
	/* A refreshed key that Redis evicts right after: an in-flight fill of the row read
	 * before the change is still refused (every reflector script raises the fence). */
	{
		const char *fk[] = {row, fence, tfence};
		const char *evicted[] = {"11", "{\"v\":11,\"row\":{}}", "30000"};
		char *saved = strdup(get(row));
		cmd("DEL %s%s", row, "");
		cr_assert_str_eq(fill_now(fk, evicted), "fenced");
		cr_assert_str_eq(get(fence), "12");
		cmd("SET %s %s PX 50000", row, saved);
		free(saved);
	}
	/* Vanished between the check and the refresh: fenced instead. */
	cmd("DEL %s%s", row, "");
	const char *r2[] = {"13", "{\"v\":13,\"row\":{}}", "60000", "3"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, r2), "fenced");
	cr_assert_str_eq(get(fence), "13");
	cr_assert_str_eq(get(row), "(nil)");
}

Test(cache, stale_fill_after_a_processed_change_is_refused)
{
	claim("1");
	const char *fk[] = {row, fence, tfence};
	/* Reader misses and reads the row at version 20 from a lagging replica... */
	/* ...meanwhile the writer commits version 21 and the reflector processes it: fence. */
	const char *k[] = {row, fence, term};
	const char *a[] = {"21", "60000", "1"};
	cr_assert_str_eq(run(LG_CACHE_CHECK_OR_FENCE, 3, k, 3, a), "fenced");
	/* ...then the reader's fill of version 20 arrives: refused. */
	const char *stale[] = {"20", "{\"v\":20,\"row\":{}}", "30000"};
	cr_assert_str_eq(fill_now(fk, stale), "fenced");
	cr_assert_str_eq(get(row), "(nil)", "no stale row is ever readable");
	/* A fill carrying the fenced version or newer is fine. */
	const char *fresh[] = {"21", "{\"v\":21,\"row\":{}}", "30000"};
	cr_assert_str_eq(fill_now(fk, fresh), "filled");
	cr_assert_str_eq(get(row), "{\"v\":21,\"row\":{}}");
	/* A second, older fill does not overwrite a newer cached row. */
	const char *older[] = {"21", "{\"v\":21,\"row\":{\"x\":1}}", "30000"};
	cr_assert_str_eq(fill_now(fk, older), "kept");
	/* TRUNCATE: a table fence above the fill's version refuses it too. */
	cmd("DEL %s%s", row, "");
	const char *tk[] = {tfence, term};
	const char *ta[] = {"30", "1"};
	cr_assert_str_eq(run(LG_CACHE_TABLE_FENCE, 2, tk, 2, ta), "fenced");
	cr_assert_eq(pttl(tfence), -1, "a table fence never expires");
	const char *before_truncate[] = {"25", "{\"v\":25,\"row\":{}}", "30000"};
	cr_assert_str_eq(fill_now(fk, before_truncate), "fenced");
	cr_assert_str_eq(get(row), "(nil)");
}

Test(cache, deposed_writer_is_rejected_and_fences_only_rise)
{
	claim("5");
	const char *tk[] = {term};
	const char *old[] = {"4"};
	cr_assert_not_null(strstr(run(LG_CACHE_CLAIM_TERM, 1, tk, 1, old), "STALETERM"));
	cr_assert_str_eq(get(term), "5");
	const char *k[] = {row, fence, term};
	cmd("SET %s %s", row, "{\"v\":1,\"row\":{}}");
	const char *r[] = {"2", "{\"v\":2,\"row\":{\"evil\":true}}", "60000", "4"};
	cr_assert_not_null(strstr(run(LG_CACHE_REFRESH, 3, k, 4, r), "STALETERM"));
	cr_assert_str_eq(get(row), "{\"v\":1,\"row\":{}}", "a deposed leader wrote nothing");
	const char *f[] = {"9", "60000", "4"};
	cr_assert_not_null(strstr(run(LG_CACHE_CHECK_OR_FENCE, 3, k, 3, f), "STALETERM"));
	cmd("DEL %s%s", row, "");
	const char *f9[] = {"9", "60000", "5"};
	cr_assert_str_eq(run(LG_CACHE_CHECK_OR_FENCE, 3, k, 3, f9), "fenced");
	const char *f7[] = {"7", "60000", "5"};
	cr_assert_str_eq(run(LG_CACHE_CHECK_OR_FENCE, 3, k, 3, f7), "fenced");
	cr_assert_str_eq(get(fence), "9", "a fence never goes down");
}

Test(cache, deletes_become_short_lived_tombstones)
{
	claim("2");
	const char *k[] = {row, fence, term};
	cmd("SET %s %s PX 60000", row, "{\"v\":5,\"row\":{}}");
	const char *d[] = {"6", "2000", "60000", "2"};
	cr_assert_str_eq(run(LG_CACHE_TOMBSTONE, 3, k, 4, d), "tombstoned");
	cr_assert_str_eq(get(row), "{\"v\":6,\"deleted\":true}");
	long long ttl = pttl(row);
	cr_assert(ttl > 0 && ttl <= 2000, "short TTL: %lld", ttl);
	/* A late refresh of the deleted row's older version cannot resurrect it. */
	const char *r[] = {"5", "{\"v\":5,\"row\":{}}", "60000", "2"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, r), "kept");
	const char *fk[] = {row, fence, tfence};
	const char *fill[] = {"5", "{\"v\":5,\"row\":{}}", "30000"};
	cr_assert_str_eq(fill_now(fk, fill), "fenced");
	/* The tombstone evicted (or expired): the fence it raised still refuses the old row. */
	cmd("DEL %s%s", row, "");
	cr_assert_str_eq(fill_now(fk, fill), "fenced");
	cr_assert_str_eq(get(row), "(nil)");
	/* Deleting an uncached row fences it. */
	cmd("DEL %s%s", row, "");
	const char *d2[] = {"8", "2000", "60000", "2"};
	cr_assert_str_eq(run(LG_CACHE_TOMBSTONE, 3, k, 4, d2), "fenced");
	cr_assert_str_eq(get(fence), "8");
}

Test(cache, fill_past_its_deadline_on_the_redis_clock_is_refused)
{
	const char *fk[] = {row, fence, tfence};
	/* The GET that missed ran 2 s ago by Redis' clock; the deadline is 1 s. However late the
	 * fill arrives (a client that gave up, a queue in Redis), Redis refuses it. */
	char read_ms[32];
	snprintf(read_ms, sizeof(read_ms), "%lld", redis_now_ms() - 2000);
	const char *late[] = {"5", "{\"v\":5,\"row\":{}}", "30000", read_ms, "1000"};
	cr_assert_str_eq(run(LG_CACHE_FILL, 3, fk, 5, late), "late");
	cr_assert_str_eq(get(row), "(nil)");
	/* Within its deadline the same fill is written. */
	snprintf(read_ms, sizeof(read_ms), "%lld", redis_now_ms());
	const char *young[] = {"5", "{\"v\":5,\"row\":{}}", "30000", read_ms, "60000"};
	cr_assert_str_eq(run(LG_CACHE_FILL, 3, fk, 5, young), "filled");
	/* LG_CACHE_READ returns the stamp (Redis' clock, in ms) with the value. */
	const char *rk[] = {row, tfence};
	struct lg_redis_reply *r = NULL;
	struct lg_error err;
	long long before = redis_now_ms();
	cr_assert_eq(lg_redis_eval(redis, &scripts[LG_CACHE_READ], 2, rk, NULL, 0, NULL, NULL,
				   &(struct lg_redis_opts){lg_deadline_in(5000)}, &r, &err),
		     0, "%s", err.message);
	long long after = redis_now_ms();
	cr_assert(r->type == LG_REDIS_ARRAY && r->elements == 2);
	cr_assert_eq(r->element[0].type, LG_REDIS_INTEGER);
	cr_assert(r->element[0].integer >= before && r->element[0].integer <= after, "%lld",
		  r->element[0].integer);
	cr_assert_eq(r->element[1].type, LG_REDIS_STRING);
	cr_assert_str_eq(r->element[1].str, "{\"v\":5,\"row\":{}}");
	lg_redis_reply_free(r);
	cmd("DEL %s%s", row, "");
	cr_assert_eq(lg_redis_eval(redis, &scripts[LG_CACHE_READ], 2, rk, NULL, 0, NULL, NULL,
				   &(struct lg_redis_opts){lg_deadline_in(5000)}, &r, &err),
		     0, "%s", err.message);
	cr_assert(r->type == LG_REDIS_ARRAY && r->elements == 2);
	cr_assert_eq(r->element[1].type, LG_REDIS_NIL);
	lg_redis_reply_free(r);
}

Test(cache, values_below_the_table_fence_read_as_absent)
{
	claim("6");
	const char *rk[] = {row, tfence};
	cmd("SET %s %s PX 60000", row, "{\"v\":40,\"row\":{}}");
	/* TRUNCATE at version 41: the cached row predates it and is no longer readable, before
	 * any sweep has touched the key. */
	const char *tk[] = {tfence, term};
	const char *ta[] = {"41", "6"};
	cr_assert_str_eq(run(LG_CACHE_TABLE_FENCE, 2, tk, 2, ta), "fenced");
	struct lg_redis_reply *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_eval(redis, &scripts[LG_CACHE_READ], 2, rk, NULL, 0, NULL, NULL,
				   &(struct lg_redis_opts){lg_deadline_in(5000)}, &r, &err),
		     0, "%s", err.message);
	cr_assert(r->type == LG_REDIS_ARRAY && r->elements == 2);
	cr_assert_eq(r->element[1].type, LG_REDIS_NIL, "a pre-TRUNCATE row was readable");
	lg_redis_reply_free(r);
	cr_assert_str_eq(get(row), "{\"v\":40,\"row\":{}}"); /* still there: only unreadable */
	/* A row written after the TRUNCATE is readable. */
	const char *k[] = {row, fence, term};
	const char *after[] = {"42", "{\"v\":42,\"row\":{\"id\":1}}", "60000", "6"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, after), "refreshed");
	cr_assert_eq(lg_redis_eval(redis, &scripts[LG_CACHE_READ], 2, rk, NULL, 0, NULL, NULL,
				   &(struct lg_redis_opts){lg_deadline_in(5000)}, &r, &err),
		     0, "%s", err.message);
	cr_assert_eq(r->element[1].type, LG_REDIS_STRING);
	cr_assert_str_eq(r->element[1].str, "{\"v\":42,\"row\":{\"id\":1}}");
	lg_redis_reply_free(r);
	/* A lower TRUNCATE version (a redelivery) neither lowers the fence nor gives it a TTL. */
	const char *lower[] = {"30", "6"};
	cr_assert_str_eq(run(LG_CACHE_TABLE_FENCE, 2, tk, 2, lower), "fenced");
	cr_assert_str_eq(get(tfence), "41");
	cr_assert_eq(pttl(tfence), -1);
}

Test(cache, versions_are_read_from_the_value_prefix_whatever_the_row_holds)
{
	claim("4");
	/* A cached row at version 10 whose JSON nests deeper than any JSON decoder in Redis
	 * accepts (cjson stops at 1000 levels): its version must still count. */
	enum { DEPTH = 1500 };
	static char value[2 * DEPTH + 64];
	size_t n = (size_t)snprintf(value, sizeof(value), "{\"v\":10,\"row\":{\"doc\":");
	memset(value + n, '[', DEPTH);
	memset(value + n + DEPTH, ']', DEPTH);
	snprintf(value + n + 2 * DEPTH, sizeof(value) - n - 2 * DEPTH, "}}");
	cmd("SET %s %s PX 60000", row, value);
	const char *fk[] = {row, fence, tfence};
	const char *older_fill[] = {"5", "{\"v\":5,\"row\":{}}", "30000"};
	cr_assert_str_eq(fill_now(fk, older_fill), "kept");
	const char *k[] = {row, fence, term};
	const char *older_refresh[] = {"6", "{\"v\":6,\"row\":{}}", "60000", "4"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, older_refresh), "kept");
	const char *older_delete[] = {"7", "2000", "60000", "4"};
	cr_assert_str_eq(run(LG_CACHE_TOMBSTONE, 3, k, 4, older_delete), "kept");
	cr_assert(strncmp(get(row), "{\"v\":10,\"row\":{\"doc\":[[[", 20) == 0, "%s", get(row));
	/* A newer change replaces it. */
	const char *newer[] = {"11", "{\"v\":11,\"row\":{}}", "60000", "4"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, newer), "refreshed");
	cr_assert_str_eq(get(row), "{\"v\":11,\"row\":{}}");
	/* Tombstones carry their version in the same prefix; a value of another shape has none
	 * and any version replaces it. */
	const char *del[] = {"12", "2000", "60000", "4"};
	cr_assert_str_eq(run(LG_CACHE_TOMBSTONE, 3, k, 4, del), "tombstoned");
	const char *before_delete[] = {"11", "{\"v\":11,\"row\":{}}", "30000"};
	cr_assert_str_eq(fill_now(fk, before_delete), "fenced");
	cmd("SET %s %s PX 60000", row, "{ \"v\": 99 }");
	const char *after[] = {"13", "{\"v\":13,\"row\":{}}", "60000", "4"};
	cr_assert_str_eq(run(LG_CACHE_REFRESH, 3, k, 4, after), "refreshed");
}

Test(cache, keys_escape_separators_so_composite_keys_never_collide)
{
	char a[128], b[128];
	const char *p1[] = {"a:b", "c"};
	const char *p2[] = {"a", "b:c"};
	cr_assert_eq(lg_cache_key(a, sizeof(a), "lifeguard:model", "public.t", p1, 2), 0);
	cr_assert_eq(lg_cache_key(b, sizeof(b), "lifeguard:model", "public.t", p2, 2), 0);
	cr_assert_str_eq(a, "lifeguard:model:public.t:a\\:b:c");
	cr_assert_str_eq(b, "lifeguard:model:public.t:a:b\\:c");
	const char *p3[] = {"x\\"};
	cr_assert_eq(lg_cache_key(a, sizeof(a), "p", "s.t", p3, 1), 0);
	cr_assert_str_eq(a, "p:s.t:x\\\\");
	char small[8];
	cr_assert_eq(lg_cache_key(small, sizeof(small), "p", "s.t", p3, 1), LG_ERANGE);
	cr_assert_eq(lg_cache_key(a, sizeof(a), "", "s.t", p3, 1), LG_EINVAL);
	cr_assert_eq(lg_cache_key(a, sizeof(a), "p", "s.t", p3, 0), LG_EINVAL);
	cr_assert_null(lg_cache_script_source(LG_CACHE__SCRIPT_COUNT));
}

/* REFRESH_MANY: each key answers as REFRESH would (refreshed / kept / fenced), in key order;
 * a key holding another type answers its own error while the keys after it still run; a
 * deposed writer writes nothing; a malformed call is refused whole. */
Test(cache, refresh_many_answers_each_key_like_refresh_and_isolates_a_foreign_value)
{
	claim("3");
	char rows[4][160], fences[4][160];
	for (int i = 0; i < 4; i++) {
		snprintf(rows[i], sizeof(rows[i]), "%s:m%d", row, i);
		snprintf(fences[i], sizeof(fences[i]), "%s:m%d", fence, i);
	}
	cmd("SET %s %s PX 60000", rows[0], "{\"v\":1,\"row\":{}}"); /* older: refreshed */
	cmd("SET %s %s PX 60000", rows[1], "{\"v\":9,\"row\":{}}"); /* newer: kept */
	cmd("HSET %s not %s", rows[2], "ours");                     /* foreign value */
	/* rows[3] absent: fenced */
	const char *k[] = {term,    rows[0],   fences[0], rows[1],  fences[1],
			   rows[2], fences[2], rows[3],   fences[3]};
	const char *a[] = {"3", "60000",
			   "5", "{\"v\":5,\"row\":{\"a\":1}}",
			   "5", "{\"v\":5,\"row\":{}}",
			   "5", "{\"v\":5,\"row\":{}}",
			   "5", "{\"v\":5,\"row\":{}}"};
	struct lg_redis_reply *r = NULL;
	struct lg_error err;
	cr_assert_eq(lg_redis_eval(redis, &scripts[LG_CACHE_REFRESH_MANY], 9, k, NULL, 10, a, NULL,
				   &(struct lg_redis_opts){lg_deadline_in(5000)}, &r, &err),
		     0, "%s", err.message);
	cr_assert_eq(r->type, LG_REDIS_ARRAY);
	cr_assert_eq(r->elements, 4);
	cr_assert_str_eq(r->element[0].str, "refreshed");
	cr_assert_str_eq(r->element[1].str, "kept");
	cr_assert(strncmp(r->element[2].str, "WRONGTYPE", 9) == 0, "%s", r->element[2].str);
	cr_assert_str_eq(r->element[3].str, "fenced");
	lg_redis_reply_free(r);
	cr_assert_str_eq(get(rows[0]), "{\"v\":5,\"row\":{\"a\":1}}");
	cr_assert(pttl(rows[0]) > 0, "the refresh kept the TTL");
	cr_assert_str_eq(get(rows[1]), "{\"v\":9,\"row\":{}}");
	cr_assert_str_eq(get(rows[3]), "(nil)", "an uncached key is not created");
	for (int i = 0; i < 4; i++) {
		cr_assert_str_eq(get(fences[i]), "5", "key %d fenced at the version", i);
	}

	/* The same version again is kept: the stored value is not rewritten. */
	a[3] = "{\"v\":5,\"row\":{\"again\":true}}";
	const char *k1[] = {term, rows[0], fences[0]};
	cr_assert_eq(lg_redis_eval(redis, &scripts[LG_CACHE_REFRESH_MANY], 3, k1, NULL, 4, a, NULL,
				   &(struct lg_redis_opts){lg_deadline_in(5000)}, &r, &err),
		     0, "%s", err.message);
	cr_assert_eq(r->elements, 1);
	cr_assert_str_eq(r->element[0].str, "kept");
	lg_redis_reply_free(r);
	cr_assert_str_eq(get(rows[0]), "{\"v\":5,\"row\":{\"a\":1}}");

	/* A deposed writer (term 2 < 3) writes nothing, not even a fence. */
	cmd("DEL %s%s", fences[3], "");
	a[0] = "2";
	a[2] = "7";
	a[3] = "{\"v\":7,\"row\":{\"deposed\":true}}";
	cr_assert_not_null(strstr(run(LG_CACHE_REFRESH_MANY, 9, k, 10, a), "STALETERM"));
	cr_assert_str_eq(get(rows[0]), "{\"v\":5,\"row\":{\"a\":1}}");
	cr_assert_str_eq(get(fences[3]), "(nil)");
	/* KEYS and ARGV that do not pair up are refused whole (with a valid term and a newer
	 * version, so only the shape check can stop it). */
	a[0] = "3";
	cr_assert_not_null(strstr(run(LG_CACHE_REFRESH_MANY, 9, k, 9, a), "REFRESH_MANY wants"));
	cr_assert_str_eq(get(rows[0]), "{\"v\":5,\"row\":{\"a\":1}}");
}
