/* Internal to lg_cache (cache_read.c, cache_flight.c). */
#ifndef LG_CACHE_INT_H
#define LG_CACHE_INT_H

#include "libguard/cache.h"

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

#endif
