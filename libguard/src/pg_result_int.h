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

/*
 * A local row: one text-format row of ncols columns built on the client in one block with
 * room for bytes bytes of values (each value's length plus its NUL). Columns start NULL and
 * unnamed; lg__result_row_col names and types one (name Borrowed: it must outlive r). A value
 * is written at lg__result_row_room (*avail bytes free) and committed with lg__result_row_set
 * (len bytes; the NUL is added, so len < *avail). NULL when out of memory.
 */
struct lg_result *lg__result_row_new(int ncols, size_t bytes);
void lg__result_row_col(struct lg_result *r, int col, const char *name, uint32_t type);
char *lg__result_row_room(struct lg_result *r, size_t *avail);
void lg__result_row_set(struct lg_result *r, int col, size_t len);

/* n bytes that live as long as r (decoded values that point into it); NULL on OOM. */
void *lg__result_keep(struct lg_result *r, size_t n);

#endif
