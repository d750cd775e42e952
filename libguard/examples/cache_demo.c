/*
 * Cache-aside reads kept coherent by the reflector cluster.
 *
 *   cache_demo CONNINFO REDIS_PORT
 *
 * Needs a running lifeguard-reflector cluster on the same PostgreSQL and Redis, with the table
 * public.cache_demo reflected (scripts/demo does all of it). Reads a row through lg_cache (a
 * miss: read from the primary and filled), reads it again (a hit), updates it on the primary,
 * and watches the cached value until the reflector refreshed it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <libguard/libguard.h>

static int fail(const char *what, const struct lg_error *err)
{
	fprintf(stderr, "cache_demo: %s: %s\n", what, err->message);
	return 1;
}

static void show(const char *what, const struct lg_cache_row *row)
{
	printf("  %-28s %-7s v=%" PRId64 " %s\n", what, row->from_cache ? "(redis)" : "(pg)",
	       row->version, row->json);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: cache_demo CONNINFO REDIS_PORT\n");
		return 2;
	}
	struct lg_runtime *rt;
	struct lg_pool *pool;
	struct lg_redis *redis;
	struct lg_cache *cache;
	struct lg_error err;
	if (lg_runtime_new(NULL, NULL, &rt) != 0) {
		return 1;
	}
	/* Called from main(): no coroutine here, every call runs the loop until it is done. */
	struct lg_pool_config pc = {.conninfo = argv[1], .min_conns = 2};
	if (lg_pool_new(rt, &pc, &pool, &err) != 0) {
		return fail("pool", &err);
	}
	struct lg_redis_config rc = {.host = "127.0.0.1", .port = atoi(argv[2])};
	if (lg_redis_new(rt, &rc, &redis, &err) != 0) {
		return fail("redis", &err);
	}
	struct lg_cache_config cc = {.pool = pool, .redis = redis};
	if (lg_cache_new(&cc, &cache, &err) != 0) {
		return fail("cache", &err);
	}
	const char *id[] = {"1"};
	struct lg_cache_row row;
	if (lg_cache_get(cache, "public.cache_demo", id, 1, &row, &err) != 0) {
		return fail("first read", &err);
	}
	show("first read (miss, filled):", &row);
	lg_cache_row_clear(&row);
	if (lg_cache_get(cache, "public.cache_demo", id, 1, &row, &err) != 0) {
		return fail("second read", &err);
	}
	show("second read (hit):", &row);
	int64_t before = row.version;
	lg_cache_row_clear(&row);

	uint64_t t0 = lg_now_ms();
	if (lg_pool_exec(pool, "UPDATE cache_demo SET hits = hits + 1 WHERE id = 1", &err) != 0) {
		return fail("update", &err);
	}
	printf("  UPDATE committed on the primary; waiting for the reflector...\n");
	int status = 1;
	while (lg_now_ms() - t0 < 10000) {
		if (lg_cache_get(cache, "public.cache_demo", id, 1, &row, &err) != 0) {
			return fail("read", &err);
		}
		if (row.from_cache && row.version > before) {
			show("after the update:", &row);
			printf("  the reflector refreshed the cached row %" PRIu64
			       " ms after the commit (polled)\n",
			       lg_now_ms() - t0);
			status = 0;
			lg_cache_row_clear(&row);
			break;
		}
		lg_cache_row_clear(&row);
		lg_sleep(1);
	}
	if (status != 0) {
		fprintf(stderr, "cache_demo: the cached row was not refreshed within 10 s\n");
	}
	struct lg_cache_stats st;
	lg_cache_get_stats(cache, &st);
	printf("  lg_cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " fills, %" PRIu64
	       " refused\n",
	       st.hits, st.misses, st.fills, st.fills_refused);
	lg_cache_free(cache);
	lg_redis_free(redis);
	lg_pool_free(pool);
	lg_runtime_free(rt);
	return status;
}
