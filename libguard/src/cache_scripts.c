/*
 * Lua compare-and-set scripts and key building for the cache contract (see
 * libguard/cache_contract.h).
 *
 * Versions compare as numbers (tonumber), stored values are decoded with Redis' bundled cjson
 * to read their "v". A fence only ever rises, so a late writer with an older version can never
 * lower it; the term check runs before any write, so a deposed leader writes nothing.
 * Every reflector script raises the key fence to the version it processed, cached key or not:
 * a refreshed or tombstoned key that Redis evicts (or that expires) right after must still
 * refuse a fill that read an older row before the change.
 */
#include "libguard/cache_contract.h"

#include <stdbool.h>
#include <string.h>

#define TERM_CHECK                                                                                 \
	"local stored_term = tonumber(redis.call('GET', KEYS[3]) or '0')\n"                        \
	"if tonumber(ARGV[#ARGV]) < stored_term then\n"                                            \
	"  return redis.error_reply('STALETERM writer term ' .. ARGV[#ARGV] ..\n"                  \
	"                           ' is below ' .. stored_term)\n"                                \
	"end\n"

#define RAISE_FENCE(key, version, ttl)                                                             \
	"local fence = tonumber(redis.call('GET', " key ") or '0')\n"                              \
	"if fence < tonumber(" version ") then\n"                                                  \
	"  redis.call('SET', " key ", " version ", 'PX', " ttl ")\n"                               \
	"else\n"                                                                                   \
	"  redis.call('PEXPIRE', " key ", " ttl ")\n"                                              \
	"end\n"

#define STORED_VERSION(var, value)                                                                 \
	"local " var " = -1\n"                                                                     \
	"do\n"                                                                                     \
	"  local ok, doc = pcall(cjson.decode, " value ")\n"                                       \
	"  if ok and type(doc) == 'table' and tonumber(doc.v) then " var                           \
	" = tonumber(doc.v) end\n"                                                                 \
	"end\n"

static const char *const cache_sources[LG_CACHE__SCRIPT_COUNT] = {
    [LG_CACHE_CLAIM_TERM] =
	"local stored = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
	"local term = tonumber(ARGV[1])\n"
	"if term < stored then\n"
	"  return redis.error_reply('STALETERM term ' .. ARGV[1] .. ' is below ' .. stored)\n"
	"end\n"
	"if term > stored then redis.call('SET', KEYS[1], ARGV[1]) end\n"
	"return term\n",

    [LG_CACHE_CHECK_OR_FENCE] = TERM_CHECK RAISE_FENCE(
	"KEYS[2]", "ARGV[1]",
	"ARGV[2]") "if redis.call('EXISTS', KEYS[1]) == 1 then return 'cached' end\n"
		   "return 'fenced'\n",

    [LG_CACHE_REFRESH] = TERM_CHECK RAISE_FENCE(
	"KEYS[2]", "ARGV[1]",
	"ARGV[3]") "local cur = redis.call('GET', KEYS[1])\n"
		   "if not cur then return 'fenced' end\n" STORED_VERSION(
		       "stored", "cur") "if stored >= tonumber(ARGV[1]) then return 'kept' end\n"
					"redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')\n"
					"return 'refreshed'\n",

    [LG_CACHE_TOMBSTONE] = TERM_CHECK RAISE_FENCE(
	"KEYS[2]", "ARGV[1]",
	"ARGV[3]") "local cur = redis.call('GET', KEYS[1])\n"
		   "if not cur then return 'fenced' end\n" STORED_VERSION(
		       "stored", "cur") "if stored >= tonumber(ARGV[1]) then return 'kept' end\n"
					"redis.call('SET', KEYS[1], '{\"v\":' .. ARGV[1] .. "
					"',\"deleted\":true}', 'PX', ARGV[2])\n"
					"return 'tombstoned'\n",

    [LG_CACHE_TABLE_FENCE] =
	"local stored_term = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
	"if tonumber(ARGV[3]) < stored_term then\n"
	"  return redis.error_reply('STALETERM writer term ' .. ARGV[3] ..\n"
	"                           ' is below ' .. stored_term)\n"
	"end\n" RAISE_FENCE("KEYS[1]", "ARGV[1]", "ARGV[2]") "return 'fenced'\n",

    [LG_CACHE_FILL] = "local v = tonumber(ARGV[1])\n"
		      "local fence = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
		      "local table_fence = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
		      "if fence > v or table_fence > v then return 'fenced' end\n"
		      "local cur = redis.call('GET', KEYS[1])\n"
		      "if cur then\n" STORED_VERSION(
			  "stored", "cur") "  if stored >= v then return 'kept' end\n"
					   "end\n"
					   "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
					   "return 'filled'\n",
};

LG_API const char *lg_cache_script_source(enum lg_cache_script which)
{
	if ((int)which < 0 || which >= LG_CACHE__SCRIPT_COUNT) {
		return NULL;
	}
	return cache_sources[which];
}

/* Appends s, escaping '\' and ':' when escape; false when it does not fit. */
static bool cache_append(char *buf, size_t size, size_t *n, const char *s, bool escape)
{
	for (; *s != '\0'; s++) {
		bool special = escape && (*s == ':' || *s == '\\');
		if (*n + (special ? 2 : 1) >= size) {
			return false;
		}
		if (special) {
			buf[(*n)++] = '\\';
		}
		buf[(*n)++] = *s;
	}
	return true;
}

LG_API int lg_cache_key(char *buf, size_t size, const char *prefix, const char *table,
			const char *const *parts, size_t nparts)
{
	if (buf == NULL || size == 0 || prefix == NULL || prefix[0] == '\0' || table == NULL ||
	    table[0] == '\0' || parts == NULL || nparts == 0) {
		return LG_EINVAL;
	}
	size_t n = 0;
	bool ok = cache_append(buf, size, &n, prefix, false) &&
		  cache_append(buf, size, &n, ":", false) &&
		  cache_append(buf, size, &n, table, false);
	for (size_t i = 0; ok && i < nparts; i++) {
		if (parts[i] == NULL) {
			buf[0] = '\0';
			return LG_EINVAL;
		}
		ok = cache_append(buf, size, &n, ":", false) &&
		     cache_append(buf, size, &n, parts[i], true);
	}
	buf[ok ? n : 0] = '\0';
	return ok ? 0 : LG_ERANGE;
}
