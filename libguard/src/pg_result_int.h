/*
 * Results as values (libguard/result.h), apart from the connection that produced them: the
 * ORM, the cache and the reflector read results without knowing any connection.
 */
#ifndef LG_PG_RESULT_INT_H
#define LG_PG_RESULT_INT_H

#include <libpq-fe.h>
#include <stddef.h>

#include "libguard/result.h"

/* Wraps pg, which the result then Owns; NULL when out of memory (pg stays the caller's). */
struct lg_result *lg__result_wrap(PGresult *pg);

/* n bytes that live as long as r (decoded values that point into it); NULL on OOM. */
void *lg__result_keep(struct lg_result *r, size_t n);

#endif
