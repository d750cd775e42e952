/* Internal error helpers: fill an optional struct lg_error and return the code. */
#ifndef LG_ERROR_INT_H
#define LG_ERROR_INT_H

#include "libguard/error.h"

/* Sets err (may be NULL) to code and a printf-formatted message; returns code. The trailing
 * newline libpq puts on its messages is trimmed. */
int lg__error_set(struct lg_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies a five-character SQLSTATE (NULL clears it). */
void lg__error_set_sqlstate(struct lg_error *err, const char *sqlstate);

#endif
