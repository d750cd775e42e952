/*
 * The Redis side of the cache-coherence contract (docs/data-contract.md), shared by libguard's
 * cache fills and the reflector's refreshes. Internals for the reflector and the contract tests:
 * libguard/libguard.h does not include this header (applications read the cache through
 * libguard/cache.h).
 *
 * Keys: <prefix>:<schema>.<table>:<pk> for rows (composite keys joined with ':' after
 * escaping '\' and ':' with a backslash), <fence prefix>:<schema>.<table>:<pk> for key fences,
 * <fence prefix>:<schema>.<table> for table fences, and the raft term key.
 * Values: {"v": <lg_version>, "row": {...}}; tombstones {"v": <version>, "deleted": true}.
 *
 * Every write goes through one of the Lua scripts below (run with lg_redis_eval), so each
 * check and its write are one atomic step in Redis. KEYS and ARGV per script:
 *
 *   LG_CACHE_CLAIM_TERM      KEYS term             ARGV term
 *       Raises the stored term; an older term gets the error "STALETERM".
 *   LG_CACHE_CHECK_OR_FENCE  KEYS row, fence, term ARGV version, fence_ttl_ms, term
 *       Raises the fence to version; answers "cached" if the row key exists, else "fenced".
 *       STALETERM for a deposed writer.
 *   LG_CACHE_REFRESH         KEYS row, fence, term ARGV version, value, fence_ttl_ms, term
 *       Raises the fence to version; overwrites a cached row whose stored version is lower,
 *       keeping its TTL ("refreshed"); "kept" when the stored version is not lower; "fenced"
 *       when the key vanished meanwhile.
 *   LG_CACHE_REFRESH_MANY    KEYS term, row1, fence1, ..., rowN, fenceN
 *                            ARGV term, fence_ttl_ms, version1, value1, ..., versionN, valueN
 *       LG_CACHE_REFRESH for N keys in one call (one term check, one script run): an array of
 *       N answers in key order, each "refreshed", "kept" or "fenced", or the error text of that
 *       key alone (a WRONGTYPE value, say; the other keys are still processed). STALETERM and
 *       a malformed call fail the whole call.
 *   LG_CACHE_TOMBSTONE       KEYS row, fence, term ARGV version, tomb_ttl_ms, fence_ttl_ms, term
 *       A delete: raises the fence to version; a cached row becomes a short-lived tombstone
 *       ("tombstoned", or "kept" when newer); an uncached one answers "fenced".
 *   Every reflector script raises the key fence, so an evicted or expired row key still
 *   refuses fills older than the last processed change for fence_ttl_ms.
 *   LG_CACHE_TABLE_FENCE     KEYS table fence, term ARGV version, term
 *       TRUNCATE: raises the table fence ("fenced"). Table fences never expire: values below
 *       them read as absent (LG_CACHE_READ), so the sweep of a truncated table's keys is
 *       cleanup, not part of the guarantee.
 *   LG_CACHE_FILL            KEYS row, fence, table fence
 *                            ARGV version, value, ttl_ms, read_ms, max_age_ms
 *       A read-through fill after a miss: "late" when Redis' clock (TIME) is max_age_ms or
 *       more past read_ms, Redis' TIME taken before the row was read (so the
 *       fill deadline holds however long the fill took to reach Redis); otherwise "filled"
 *       only if no key or table fence holds a higher version and the key is absent or older;
 *       else "fenced" / "kept".
 *   LG_CACHE_READ            KEYS row, table fence ARGV none
 *       GET with a timestamp: an array {Redis' TIME in milliseconds, the value or nil}; a
 *       value whose version is below the table fence is answered as nil.
 * Scripts read a stored value's version from its {"v":N prefix only (the value is never
 * decoded as a whole).
 */
#ifndef LIBGUARD_CACHE_CONTRACT_H
#define LIBGUARD_CACHE_CONTRACT_H

#include <stddef.h>

#include "libguard/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lg_cache_script {
	LG_CACHE_CLAIM_TERM,
	LG_CACHE_CHECK_OR_FENCE,
	LG_CACHE_REFRESH,
	LG_CACHE_TOMBSTONE,
	LG_CACHE_TABLE_FENCE,
	LG_CACHE_FILL,
	LG_CACHE_READ,
	LG_CACHE_REFRESH_MANY,
	LG_CACHE__SCRIPT_COUNT
};

/* The Lua source of a script (static storage), or NULL for an unknown one. */
LG_API const char *lg_cache_script_source(enum lg_cache_script which);

/*
 * Builds "<prefix>:<table>:<k1>:<k2>..." into buf (size bytes, NUL-terminated), escaping '\'
 * and ':' inside key parts with a backslash so distinct keys never collide. table is
 * "schema.table". Returns 0, LG_EINVAL (empty prefix/table, no parts) or LG_ERANGE (buf too
 * small). parts are Borrowed for the call.
 */
LG_API int lg_cache_key(char *buf, size_t size, const char *prefix, const char *table,
			const char *const *parts, size_t nparts);

#ifdef __cplusplus
}
#endif

#endif
