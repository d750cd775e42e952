/* Internal entry of pg_query.c for the pool. */
#ifndef LG_PG_QUERY_INT_H
#define LG_PG_QUERY_INT_H

#include "libguard/conn.h"

/*
 * lg_conn_query for a connection that other callers share between their statements (the
 * pool's): statements with session state or transaction control (SET, set_config(.., false),
 * LISTEN, PREPARE, DISCARD, session advisory locks, temporary tables, BEGIN/COMMIT ...) are
 * refused there with LG_EINVAL, before anything is sent.
 */
int lg__conn_query_shared(struct lg_conn *c, const char *sql, const struct lg_param *params,
			  int nparams, const struct lg_query_opts *opts, struct lg_result **out,
			  struct lg_error *err);

#endif
