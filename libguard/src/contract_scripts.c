/*
 * The contract's Lua compare-and-set scripts (libguard/cache_contract.h) and the words they
 * answer (contract.h).
 *
 * Versions compare as numbers (tonumber). A stored value's version is read from its first
 * bytes only (GETRANGE, then string.match on the {"v":N prefix the contract fixes), never by
 * decoding the whole value: cjson would cost time proportional to the row inside Redis' single
 * thread, and it gives up on rows nested deeper than its limit, which would make a newer
 * cached value look version-less and let an older write replace it. A fence only ever rises, so a
 * late writer with an older version can never lower it; the term check runs before any write, so a
 * deposed leader writes nothing. Every reflector script raises the key fence to the version it
 * processed, cached key or not: a refreshed or tombstoned key that Redis evicts (or that expires)
 * right after must still refuse a fill that read an older row before the change.
 */
#include <string.h>

#include "contract.h"

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

/* The version of the value at key, -1 for a value of another shape. 32 bytes hold "{\"v\":",
 * a sign, 19 digits and the next character. */
#define STORED_VERSION(var, key)                                                                   \
	"local " var " = tonumber(string.match(redis.call('GETRANGE', " key                        \
	", 0, 31), '^{\"v\":(%-?%d+)[,}]') or '-1')\n"

/*
 * Redis' clock in milliseconds. The fill deadline is measured on it alone: LG_CACHE_READ
 * stamps the GET that precedes a read of the primary, LG_CACHE_FILL compares its own TIME
 * with that stamp. Both readings come from the same server, so no clock of another host is
 * ever compared with it.
 */
#define NOW_MS                                                                                     \
	"local clock = redis.call('TIME')\n"                                                       \
	"local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)\n"

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
	"ARGV[3]") "if redis.call('EXISTS', KEYS[1]) == 0 then return 'fenced' "
		   "end\n" STORED_VERSION("stored", "KEYS[1]") "if stored >= tonumber(ARGV[1]) "
							       "then return 'kept' end\n"
							       "redis.call('SET', KEYS[1], "
							       "ARGV[2], 'KEEPTTL')\n"
							       "return 'refreshed'\n",

    [LG_CACHE_TOMBSTONE] = TERM_CHECK RAISE_FENCE(
	"KEYS[2]", "ARGV[1]",
	"ARGV[3]") "if redis.call('EXISTS', KEYS[1]) == 0 then return 'fenced' "
		   "end\n" STORED_VERSION("stored",
					  "KEYS[1]") "if stored >= tonumber(ARGV[1]) then return "
						     "'kept' end\n"
						     "redis.call('SET', KEYS[1], '{\"v\":' .. "
						     "ARGV[1] .. "
						     "',\"deleted\":true}', 'PX', ARGV[2])\n"
						     "return 'tombstoned'\n",

    /*
     * A table fence has no TTL: LG_CACHE_READ treats every value below it as a miss, so the
     * rows cached before a TRUNCATE stop being readable the moment the fence rises, and the
     * reflector's tombstone sweep of those keys is cleanup that may run after the batch
     * commits, or fail. A fence with a TTL would let such rows back once it expired. It costs
     * one key per truncated table, and refuses nothing that is current: every row written
     * after the TRUNCATE carries a higher version.
     */
    [LG_CACHE_TABLE_FENCE] = "local stored_term = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
			     "if tonumber(ARGV[2]) < stored_term then\n"
			     "  return redis.error_reply('STALETERM writer term ' .. ARGV[2] ..\n"
			     "                           ' is below ' .. stored_term)\n"
			     "end\n"
			     "local fence = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
			     "if fence < tonumber(ARGV[1]) then\n"
			     "  redis.call('SET', KEYS[1], ARGV[1])\n"
			     "else\n"
			     "  redis.call('PERSIST', KEYS[1])\n"
			     "end\n"
			     "return 'fenced'\n",

    /*
     * Why the deadline is checked here and how it is sound: a fence stops a stale fill only
     * while it lives (fence_ttl_ms). A fill that read a row older than change V was read
     * before V committed; the reflector raised V's fence after that commit, so after the read
     * began, and the fence lives fence_ttl_ms from then. ARGV[4] is Redis' TIME when the GET
     * that missed ran (LG_CACHE_READ), which precedes the read of the primary; so
     * now_ms - ARGV[4] is at least the age of the read when the fill runs. Refusing fills
     * whose age reaches ARGV[5] (fill_deadline_ms < fence_ttl_ms) means every fill that runs
     * finds the fences of the changes its read missed still in place, however long the fill
     * spent in the client, the network or Redis' queue (a client that gave up waiting may
     * still have its EVALSHA run later). Caveats: a Redis host clock stepped backwards
     * between the two readings, or a switch to another Redis server (another clock) between
     * them, shrinks the measured age by that step or skew.
     */
    [LG_CACHE_FILL] = NOW_MS "if now_ms - tonumber(ARGV[4]) >= tonumber(ARGV[5]) then\n"
			     "  return 'late'\n"
			     "end\n"
			     "local v = tonumber(ARGV[1])\n"
			     "local fence = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
			     "local table_fence = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
			     "if fence > v or table_fence > v then return 'fenced' end\n"
			     "if redis.call('EXISTS', KEYS[1]) == 1 then\n" STORED_VERSION(
				 "stored", "KEYS[1]") "  if stored >= v then return 'kept' end\n"
						      "end\n"
						      "redis.call('SET', KEYS[1], ARGV[2], 'PX', "
						      "ARGV[3])\n"
						      "return 'filled'\n",

    /*
     * REFRESH for many keys: the per-call cost of a script (parsing the command, entering Lua,
     * the reply) is paid once for the whole chunk instead of once per key. A key whose
     * commands fail (a value of another type) answers its error text in its place, caught
     * by pcall, so one foreign value neither hides the other keys' answers nor stops them.
     */
    /* A Lua program, one of its lines per line here. */
    /* clang-format off */
    [LG_CACHE_REFRESH_MANY] =
	"if #KEYS % 2 ~= 1 or #ARGV ~= #KEYS + 1 then\n"
	"  return redis.error_reply('ERR REFRESH_MANY wants KEYS term, row, fence, ... and ARGV '\n"
	"                           .. 'term, fence_ttl, version, value, ...')\n"
	"end\n"
	"local stored_term = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
	"if tonumber(ARGV[1]) < stored_term then\n"
	"  return redis.error_reply('STALETERM writer term ' .. ARGV[1] ..\n"
	"                           ' is below ' .. stored_term)\n"
	"end\n"
	"local ttl = ARGV[2]\n"
	"local function refresh(row, fkey, version, value)\n"
	"  local v = tonumber(version)\n"
	"  local fence = tonumber(redis.call('GET', fkey) or '0')\n"
	"  if fence < v then\n"
	"    redis.call('SET', fkey, version, 'PX', ttl)\n"
	"  else\n"
	"    redis.call('PEXPIRE', fkey, ttl)\n"
	"  end\n"
	"  if redis.call('EXISTS', row) == 0 then return 'fenced' end\n"
	STORED_VERSION("stored", "row")
	"  if stored >= v then return 'kept' end\n"
	"  redis.call('SET', row, value, 'KEEPTTL')\n"
	"  return 'refreshed'\n"
	"end\n"
	"local out = {}\n"
	"for i = 1, (#KEYS - 1) / 2 do\n"
	"  local ok, answer = pcall(refresh, KEYS[2 * i], KEYS[2 * i + 1],\n"
	"                           ARGV[2 * i + 1], ARGV[2 * i + 2])\n"
	"  if ok then\n"
	"    out[i] = answer\n"
	"  elseif type(answer) == 'table' then\n"
	"    out[i] = tostring(answer.err or answer.message or 'ERR script error')\n"
	"  else\n"
	"    out[i] = tostring(answer)\n"
	"  end\n"
	"end\n"
	"return out\n",
    /* clang-format on */

    /* The read of a cached row, stamped with Redis' clock for LG_CACHE_FILL's deadline. A
     * value below the table fence predates a TRUNCATE the reflector processed and reads as
     * absent, whether or not its sweep has tombstoned it yet. */
    [LG_CACHE_READ] = NOW_MS "local value = redis.call('GET', KEYS[1])\n"
			     "if value then\n"
			     "  local table_fence = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
			     "  local v = tonumber(string.match(string.sub(value, 1, 32),\n"
			     "                                  '^{\"v\":(%-?%d+)[,}]') or '-1')\n"
			     "  if v < table_fence then value = false end\n"
			     "end\n"
			     "return {now_ms, value}\n",
};

LG_API const char *lg_cache_script_source(enum lg_cache_script which)
{
	if ((int)which < 0 || which >= LG_CACHE__SCRIPT_COUNT) {
		return NULL;
	}
	return cache_sources[which];
}

static const char *const contract_words[] = {
    [LG__ANSWER_OTHER] = "",        [LG__ANSWER_CACHED] = "cached",
    [LG__ANSWER_FENCED] = "fenced", [LG__ANSWER_REFRESHED] = "refreshed",
    [LG__ANSWER_KEPT] = "kept",     [LG__ANSWER_TOMBSTONED] = "tombstoned",
    [LG__ANSWER_FILLED] = "filled", [LG__ANSWER_LATE] = "late",
};

enum lg__contract_answer lg__contract_answer(const char *s)
{
	for (size_t i = 1; s != NULL && i < sizeof(contract_words) / sizeof(contract_words[0]);
	     i++) {
		if (strcmp(s, contract_words[i]) == 0) {
			return (enum lg__contract_answer)i;
		}
	}
	return LG__ANSWER_OTHER;
}

const char *lg__contract_answer_word(enum lg__contract_answer a)
{
	if ((size_t)a >= sizeof(contract_words) / sizeof(contract_words[0])) {
		return "";
	}
	return contract_words[a];
}
