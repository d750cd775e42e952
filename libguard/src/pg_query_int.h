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

/*
 * A parameterless plain read sent right behind a statement on the same connection
 * (lg__conn_query_then): the database handle's token, read after its write without a round
 * trip of its own.
 */
struct lg__then {
	const char *sql;          /* Borrowed for the call */
	struct lg_result *result; /* Owned by the caller after the call (NULL unless rc is 0) */
	int rc;                   /* 0, or why there is no result (LG_ENOTSENT: not sent) */
};

/*
 * The statement as lg_conn_query (or lg__conn_query_shared when shared_conn) runs it; then's
 * read is queued behind it in the same loop turn, so the same flush sends both, the read in a
 * sync segment after the statement's own: it runs once the statement's implicit transaction
 * (or the transaction the statement ends) has committed. The read runs whatever the statement
 * did, and its outcome goes to then alone: the return value and err are the statement's. When
 * the statement fails before anything is queued, then->rc is LG_ENOTSENT; when the caller's
 * deadline passes or it is canceled, the read is given up as well.
 */
int lg__conn_query_then(struct lg_conn *c, bool shared_conn, const char *sql,
			const struct lg_param *params, int nparams,
			const struct lg_query_opts *opts, struct lg__then *then,
			struct lg_result **out, struct lg_error *err);

#endif
