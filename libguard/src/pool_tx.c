/*
 * Transactions on pinned connections.
 *
 * Happy path: lg_pool_begin acquires a connection exclusively (waiting in the same FIFO as
 * statements, with its own deadline), sends BEGIN with the requested isolation and access
 * mode, and hands out the transaction; its statements run on that connection alone; COMMIT or
 * ROLLBACK ends it and the connection returns to the shared pool.
 *
 * Failure modes:
 *   - COMMIT answered with the tag ROLLBACK (the transaction had failed): LG_ESERVER, 25P02.
 *   - The connection dies: every later call, COMMIT included, reports LG_ECONNLOST; a lost
 *     COMMIT is never reported as success. The connection is replaced by maintenance.
 *   - A connection that still reports a transaction after the end (it should not) is
 *     retired rather than shared.
 *   - A statement's deadline or cancel dooms the transaction: lg_tx_commit then sends
 *     ROLLBACK and fails with LG_ECANCELED (what the statement did is unknown, so it must not
 *     become permanent).
 *   - lg_pool_run_tx re-runs the whole function on 40001/40P01, up to max_attempts.
 */
#include "pool_int.h"

#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

#define TX_DEFAULT_ATTEMPTS 5

struct lg_tx {
	struct lg_pool *pool;
	struct lg__pool_conn *pc;
	int doomed; /* a statement's deadline or cancel hit (its code): COMMIT rolls back */
};

static const char *tx_isolation_sql(enum lg_isolation iso)
{
	switch (iso) {
	case LG_ISOLATION_READ_COMMITTED:
		return " ISOLATION LEVEL READ COMMITTED";
	case LG_ISOLATION_REPEATABLE_READ:
		return " ISOLATION LEVEL REPEATABLE READ";
	case LG_ISOLATION_SERIALIZABLE:
		return " ISOLATION LEVEL SERIALIZABLE";
	default:
		return "";
	}
}

struct tx_begin_args {
	struct lg_pool *p;
	const struct lg_tx_opts *opts;
	struct lg_tx **out;
	struct lg_error *err;
};

static int tx_begin_in_coro(void *arg)
{
	struct tx_begin_args *a = arg;
	struct lg_pool *p = a->p;
	struct lg_tx_opts none = {0};
	const struct lg_tx_opts *o = a->opts != NULL ? a->opts : &none;
	uint64_t deadline = o->deadline ? o->deadline : lg_deadline_in(p->cfg.acquire_timeout_ms);
	struct lg_tx *tx = lg__calloc(1, sizeof(*tx));
	if (tx == NULL) {
		return lg__error_set(a->err, LG_ENOMEM, "tx: out of memory");
	}
	struct lg__pool_conn *pc;
	int rc = lg__pool_acquire(p, true, deadline, &pc, a->err);
	if (rc != 0) {
		lg__free(tx);
		return rc;
	}
	char sql[128];
	snprintf(sql, sizeof(sql), "BEGIN%s%s%s", tx_isolation_sql(o->isolation),
		 o->read_only ? " READ ONLY" : "", o->deferrable ? " DEFERRABLE" : "");
	struct lg_query_opts qo = {deadline, 0};
	rc = lg_conn_query(pc->conn, sql, NULL, 0, &qo, NULL, a->err);
	lg__pool_note_result(p, pc, rc);
	if (rc != 0) {
		if (rc == LG_ETIMEDOUT || rc == LG_ECANCELED || rc == LG_EUNKNOWN) {
			pc->lost = true; /* BEGIN may still arrive: never share this session */
		}
		lg__pool_unpin(p, pc);
		lg__free(tx);
		return rc;
	}
	tx->pool = p;
	tx->pc = pc;
	*a->out = tx;
	return 0;
}

LG_API int lg_pool_begin(struct lg_pool *p, const struct lg_tx_opts *opts, struct lg_tx **out,
			 struct lg_error *err)
{
	lg_error_clear(err);
	if (p == NULL || out == NULL) {
		return lg__error_set(err, LG_EINVAL, "tx: invalid arguments");
	}
	struct tx_begin_args a = {p, opts, out, err};
	return lg__run_in_coro(p->rt, tx_begin_in_coro, &a);
}

LG_API int lg_tx_query(struct lg_tx *tx, const char *sql, const struct lg_param *params,
		       int nparams, const struct lg_query_opts *opts, struct lg_result **out,
		       struct lg_error *err)
{
	if (tx == NULL || tx->pc->conn == NULL) {
		lg_error_clear(err);
		return lg__error_set(err, LG_ECLOSED, "tx: pool closed");
	}
	int rc = lg_conn_query(tx->pc->conn, sql, params, nparams, opts, out, err);
	lg__pool_note_result(tx->pool, tx->pc, rc);
	if ((rc == LG_ETIMEDOUT || rc == LG_ECANCELED || rc == LG_EUNKNOWN) && tx->doomed == 0) {
		tx->doomed = rc; /* whatever it did (or not), the transaction cannot commit */
	}
	return rc;
}

LG_API int lg_tx_exec(struct lg_tx *tx, const char *sql, struct lg_error *err)
{
	return lg_tx_query(tx, sql, NULL, 0, NULL, NULL, err);
}

static int tx_savepoint_sql(struct lg_tx *tx, const char *verb, const char *name,
			    struct lg_error *err)
{
	lg_error_clear(err);
	if (name == NULL || name[0] == '\0' || strlen(name) > 63) {
		return lg__error_set(err, LG_EINVAL, "tx: savepoint name must be 1..63 bytes");
	}
	/* Quote as an identifier: double every double quote. */
	char sql[64 + 2 * 64 + 8];
	size_t n = (size_t)snprintf(sql, sizeof(sql), "%s \"", verb);
	for (const char *c = name; *c != '\0'; c++) {
		if (*c == '"') {
			sql[n++] = '"';
		}
		sql[n++] = *c;
	}
	sql[n++] = '"';
	sql[n] = '\0';
	return lg_tx_exec(tx, sql, err);
}

LG_API int lg_tx_savepoint(struct lg_tx *tx, const char *name, struct lg_error *err)
{
	return tx_savepoint_sql(tx, "SAVEPOINT", name, err);
}

LG_API int lg_tx_release(struct lg_tx *tx, const char *name, struct lg_error *err)
{
	return tx_savepoint_sql(tx, "RELEASE SAVEPOINT", name, err);
}

LG_API int lg_tx_rollback_to(struct lg_tx *tx, const char *name, struct lg_error *err)
{
	return tx_savepoint_sql(tx, "ROLLBACK TO SAVEPOINT", name, err);
}

/* Ends tx with verb; with then, its read follows the verb on the connection (COMMIT). */
static int tx_end(struct lg_tx *tx, const char *verb, struct lg__then *then, struct lg_error *err)
{
	int doomed = tx->doomed;
	if (doomed != 0 && strcmp(verb, "COMMIT") == 0) {
		/* A statement of it timed out or was canceled: its effect is unknown to the
		 * caller, so committing would make an unknown outcome permanent. */
		struct lg_error ignored;
		int rb = tx_end(tx, "ROLLBACK", NULL, &ignored);
		lg_error_clear(err);
		return lg__error_set(err, LG_ECANCELED,
				     "tx: COMMIT refused, the transaction was rolled back: one of "
				     "its statements ended with \"%s\"%s",
				     lg_strerror(doomed), rb == 0 ? "" : " (and ROLLBACK failed)");
	}
	struct lg_result *r = NULL;
	int rc;
	if (then == NULL) {
		rc = lg_tx_query(tx, verb, NULL, 0, NULL, &r, err);
	} else if (tx->pc->conn == NULL) {
		lg_error_clear(err);
		rc = lg__error_set(err, LG_ECLOSED, "tx: pool closed");
	} else {
		rc = lg__conn_query_then(tx->pc->conn, false, verb, NULL, 0, NULL, then, &r, err);
		lg__pool_note_result(tx->pool, tx->pc, rc);
	}
	if (rc == 0 && strcmp(verb, "COMMIT") == 0 && strcmp(lg_result_command(r), "COMMIT") != 0) {
		rc = lg__error_set(err, LG_ESERVER,
				   "tx: COMMIT rolled back: the transaction had failed");
		lg__error_set_sqlstate(err, "25P02");
	}
	lg_result_free(r);
	if (rc != 0 && then != NULL) {
		lg_result_free(then->result); /* not committed: no token */
		then->result = NULL;
		then->rc = rc;
	}
	if (rc == LG_ETIMEDOUT || rc == LG_ECANCELED || rc == LG_EUNKNOWN) {
		tx->pc->lost = true; /* the end may still arrive: never share this session */
	}
	lg__pool_unpin(tx->pool, tx->pc);
	lg__free(tx);
	return rc;
}

LG_API int lg_tx_commit(struct lg_tx *tx, struct lg_error *err)
{
	return tx_end(tx, "COMMIT", NULL, err);
}

int lg__tx_commit_then(struct lg_tx *tx, struct lg__then *then, struct lg_error *err)
{
	then->result = NULL;
	then->rc = LG_ENOTSENT;
	return tx_end(tx, "COMMIT", then, err);
}

LG_API int lg_tx_rollback(struct lg_tx *tx, struct lg_error *err)
{
	return tx_end(tx, "ROLLBACK", NULL, err);
}

static bool tx_retryable(int rc, const struct lg_error *err)
{
	return rc == LG_ESERVER &&
	       (strcmp(err->sqlstate, "40001") == 0 || strcmp(err->sqlstate, "40P01") == 0);
}

struct tx_run_args {
	struct lg_pool *p;
	const struct lg_tx_opts *opts;
	int (*fn)(struct lg_tx *tx, void *arg, struct lg_error *err);
	void *arg;
	unsigned attempts;
	struct lg_error *err;
};

static int tx_run_in_coro(void *arg)
{
	struct tx_run_args *a = arg;
	int rc = 0;
	for (unsigned attempt = 1; attempt <= a->attempts; attempt++) {
		struct lg_tx *tx;
		rc = lg_pool_begin(a->p, a->opts, &tx, a->err);
		if (rc != 0) {
			return rc;
		}
		lg_error_clear(a->err);
		rc = a->fn(tx, a->arg, a->err);
		if (rc == 0) {
			rc = lg_tx_commit(tx, a->err);
		} else {
			struct lg_error ignored;
			lg_tx_rollback(tx, &ignored);
		}
		if (!tx_retryable(rc, a->err) || attempt == a->attempts) {
			return rc;
		}
		/* Randomized pause so the conflicting transactions do not collide again. */
		rc = lg_sleep(1 + lg__pool_random(a->p) % (5u << (attempt < 6 ? attempt : 6)));
		if (rc != 0) {
			return lg__error_set(a->err, rc, "tx: %s", lg_strerror(rc));
		}
	}
	return rc;
}

LG_API int lg_pool_run_tx(struct lg_pool *p, const struct lg_tx_opts *opts,
			  int (*fn)(struct lg_tx *tx, void *arg, struct lg_error *err), void *arg,
			  unsigned max_attempts, struct lg_error *err)
{
	struct lg_error local;
	if (err == NULL) {
		err = &local;
	}
	lg_error_clear(err);
	if (p == NULL || fn == NULL) {
		return lg__error_set(err, LG_EINVAL, "tx: invalid arguments");
	}
	struct tx_run_args a = {
	    p, opts, fn, arg, max_attempts ? max_attempts : TX_DEFAULT_ATTEMPTS, err};
	return lg__run_in_coro(p->rt, tx_run_in_coro, &a);
}
