/* Internal to lg_cache (cache_read.c, cache_flight.c). */
#ifndef LG_CACHE_INT_H
#define LG_CACHE_INT_H

#include "contract.h"
#include "libguard/cache.h"
#include "libguard/pool.h"

#define LG__CACHE_MAX_PARTS 32

/* Returned by lg__cache_flight_join when the caller must read the row itself. */
#define LG__CACHE_LOAD (-1)

struct lg__cache_flight;

/*
 * Joins the read of key already in flight (waits, then copies its row into row and returns
 * 0 or its error), or returns LG__CACHE_LOAD: the caller reads, and if *mine is set it must
 * then call lg__cache_flight_publish with the outcome. head is the cache's list.
 */
int lg__cache_flight_join(struct lg__cache_flight **head, struct lg_runtime *rt, const char *key,
			  struct lg__cache_flight **mine, struct lg_cache_row *row,
			  struct lg_error *err);

/* Hands the loader's outcome (row Borrowed, copied) to the waiters and ends the flight. */
void lg__cache_flight_publish(struct lg__cache_flight **head, struct lg__cache_flight *f, int rc,
			      const struct lg_cache_row *row, const struct lg_error *err);

/*
 * The canonical text of the caller's key parts (cache_key.c): parts[i] is spelled for a
 * column of kinds[i]; out[i] receives its canonical text, stored in buf (size bytes).
 * canon_sql is the table's lg__contract_canon_sql, run when a part needs the database.
 * Returns 0, LG_EINVAL (the database rejects a spelling), LG_ERANGE (too long), or an error
 * of the primary.
 */
int lg__cache_canon(struct lg_pool *pool, const char *canon_sql,
		    const enum lg__contract_kind *kinds, size_t n, const char *const *parts,
		    char *buf, size_t size, const char **out, struct lg_error *err);

#endif
