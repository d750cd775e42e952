/*
 * Submitting statements: parameter constructors, lg_conn_query and lg_conn_exec.
 *
 * The caller's statement record lives on the heap, not on the coroutine stack, because a
 * statement already sent outlives a caller that gave up (deadline, cancellation): the
 * connection then owns it and frees it when its results arrive or the connection dies.
 */
#include "pg_conn_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "pg_query_int.h"
#include "pg_types.h"
#include "sql_parse.h"

#define QUERY_MAX_PARAMS 65535 /* the Bind message counts parameters in an int16 */

static bool query_param_copied(const struct lg_param *p)
{
	return p->needs_nul && !p->is_null && p->format == 0 && p->value != NULL;
}

static struct lg__stmt *query_stmt_new(const char *sql, const struct lg_param *params, int n)
{
	size_t extra = (size_t)n * (sizeof(char *) + 2 * sizeof(int) + sizeof(uint32_t));
	size_t text = 0;
	for (int i = 0; i < n; i++) {
		text += query_param_copied(&params[i]) ? (size_t)params[i].length + 1 : 0;
	}
	struct lg__stmt *s = lg__calloc(1, sizeof(*s) + extra + text);
	if (s == NULL) {
		return NULL;
	}
	char *copy = (char *)(s + 1) + extra;
	s->sql = sql;
	s->nparams = n;
	s->values = (const char **)(s + 1);
	s->lengths = (int *)(s->values + n);
	s->formats = s->lengths + n;
	s->types = (uint32_t *)(s->formats + n);
	for (int i = 0; i < n; i++) {
		const struct lg_param *p = &params[i];
		s->values[i] = p->is_null     ? NULL
			       : p->is_inline ? (const char *)p->inline_buf
					      : (p->value != NULL ? p->value : "");
		if (query_param_copied(p)) {
			memcpy(copy, p->value, (size_t)p->length);
			copy[p->length] = '\0';
			s->values[i] = copy;
			copy += p->length + 1;
		}
		s->lengths[i] = p->length;
		s->formats[i] = p->format;
		s->types[i] = p->oid;
	}
	return s;
}

/* A parked caller. After an abort the record may belong to the connection (and be freed by
 * it at any later turn), so what the caller needs to know is noted here. */
struct query_wait {
	struct lg__waiter w; /* first: the abort hook casts back */
	struct lg__stmt *s;
	bool unsent;
};

static void query_abort(struct lg__waiter *w, int status)
{
	struct query_wait *qw = (struct query_wait *)w;
	struct lg__stmt *s = qw->s;
	if (s->outcome == LG__STMT_QUEUED) {
		lg__stmtq_remove(&s->conn->pending, s);
		s->waiter = NULL;
		qw->unsent = true;
	} else {
		lg__pipe_abandon(s->conn, s);
	}
	lg__waiter_wake(w, status);
}

static int query_fill_error(struct lg__stmt *s, struct lg_error *err)
{
	if (s->fail_code != 0) {
		return lg__error_set(err, s->fail_code, "%s", s->fail_msg);
	}
	const PGresult *e = s->error;
	const char *primary = PQresultErrorField(e, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(e, PG_DIAG_MESSAGE_DETAIL);
	const char *severity = PQresultErrorField(e, PG_DIAG_SEVERITY_NONLOCALIZED);
	lg__error_set(err, LG_ESERVER, "%s: %s%s%s", severity != NULL ? severity : "ERROR",
		      primary != NULL ? primary : PQresultErrorMessage(e),
		      detail != NULL ? " (" : "", detail != NULL ? detail : "");
	if (err != NULL && detail != NULL) {
		size_t n = strlen(err->message);
		if (n + 1 < sizeof(err->message)) {
			err->message[n] = ')';
			err->message[n + 1] = '\0';
		}
	}
	lg__error_set_sqlstate(err, PQresultErrorField(e, PG_DIAG_SQLSTATE));
	return LG_ESERVER;
}

struct query_args {
	struct lg_conn *c;
	const char *sql;
	const struct lg_param *params;
	int nparams;
	const struct lg_query_opts *opts;
	struct lg_result **out;
	struct lg_error *err;
	bool alone;
	bool shared_conn;
	struct lg__then *then; /* optional: a read sent right behind the statement */
};

static int query_not_ready(struct lg_conn *c, struct lg_error *err)
{
	if (c->state == LG__CONN_CLOSED) {
		return lg__error_set(err, LG_ECLOSED, "query: connection closed");
	}
	return lg__error_set(err, LG_ECONNLOST, "query: connection lost: %s", c->lost_msg);
}

/* Queues s on c with qw as its waiter. */
static void query_submit(struct lg_conn *c, struct lg__stmt *s, struct query_wait *qw)
{
	*qw = (struct query_wait){.s = s};
	lg__waiter_init(&qw->w, query_abort);
	s->waiter = &qw->w;
	lg__pipe_submit(c, s);
}

/* Queues the read of t right behind the statement just queued on c; false when out of
 * memory (t->rc says so). */
static bool then_submit(struct lg_conn *c, struct lg__then *t, bool shared_conn,
			struct query_wait *qw)
{
	struct lg__stmt *s = query_stmt_new(t->sql, NULL, 0);
	if (s == NULL) {
		t->rc = LG_ENOMEM;
		return false;
	}
	s->flags = LG_QUERY_PREPARE | LG_QUERY_SHARED_READ;
	s->shared_conn = shared_conn;
	s->trailing = true;
	query_submit(c, s, qw);
	return true;
}

/* Waits for the read of t (the statement before it has completed or been given up, so an
 * expired deadline or a cancel takes it back at once) and stores its outcome in t. */
static void then_finish(struct lg__then *t, struct query_wait *qw, uint64_t deadline)
{
	struct lg__stmt *s = qw->s;
	int rc = lg__park(&qw->w, deadline);
	if (rc != 0) {
		if (qw->unsent) {
			lg__stmt_free(s);
		}
		t->rc = rc; /* a sent one is the connection's now */
		return;
	}
	t->rc = s->outcome == LG__STMT_OK ? 0 : s->fail_code != 0 ? s->fail_code : LG_ESERVER;
	if (t->rc == 0) {
		t->result = lg__result_wrap(s->result);
		if (t->result == NULL) {
			t->rc = LG_ENOMEM;
		} else {
			s->result = NULL;
		}
	}
	lg__stmt_free(s);
}

static int query_in_coro(void *arg)
{
	struct query_args *a = arg;
	struct lg_conn *c = a->c;
	if (c->state != LG__CONN_READY) {
		return query_not_ready(c, a->err);
	}
	struct lg__stmt *s = query_stmt_new(a->sql, a->params, a->nparams);
	if (s == NULL) {
		return lg__error_set(a->err, LG_ENOMEM, "query: out of memory");
	}
	unsigned flags = a->opts != NULL ? a->opts->flags : 0;
	s->flags = flags;
	s->alone = a->alone;
	s->shared_conn = a->shared_conn;
	s->result_format = (flags & LG_QUERY_BINARY) ? 1 : 0;
	uint64_t deadline = a->opts != NULL && a->opts->deadline != LG_DEADLINE_DEFAULT
				? a->opts->deadline
				: lg_deadline_in(c->statement_timeout_ms); /* NONE saturates */
	struct query_wait qw;
	query_submit(c, s, &qw);
	/* Queued in the same turn, so the same flush sends both, the read in a sync segment
	 * after the statement's (pg_pipeline.c): it runs after the statement's commit. */
	struct query_wait tw;
	bool then = a->then != NULL && then_submit(c, a->then, a->shared_conn, &tw);
	int rc = lg__park(&qw.w, deadline);
	if (then) {
		then_finish(a->then, &tw, deadline);
	}
	if (rc != 0) {
		if (qw.unsent) {
			lg__stmt_free(s); /* the connection let go of it */
		}
		if (qw.unsent) {
			return lg__error_set(a->err, rc,
					     "query: %s before it was sent (not executed)",
					     lg_strerror(rc));
		}
		return lg__error_set(
		    a->err, LG_EUNKNOWN,
		    "query: %s after it was sent: outcome unknown (a cancel request "
		    "went to the server)",
		    lg_strerror(rc));
	}
	if (s->outcome == LG__STMT_OK) {
		rc = 0;
		if (a->out != NULL) {
			*a->out = lg__result_wrap(s->result);
			if (*a->out == NULL) {
				rc = lg__error_set(a->err, LG_ENOMEM, "query: out of memory");
			} else {
				s->result = NULL;
			}
		}
	} else {
		rc = query_fill_error(s, a->err);
	}
	lg__stmt_free(s);
	return rc;
}

/*
 * What the statement may do here, from its verdict: COPY never; a statement marked as a
 * shared read must be one; on a shared connection, no session state or transaction control.
 */
static int query_check(struct lg__sql_verdict v, unsigned flags, bool shared_conn,
		       struct lg_error *err)
{
	if (v.flags & LG__SQL_COPY) {
		return lg__error_set(err, LG_EINVAL,
				     "query: COPY cannot run on a pipelined connection");
	}
	if ((flags & LG_QUERY_SHARED_READ) && !lg__sql_is_read(v)) {
		return lg__error_set(err, LG_EINVAL,
				     "query: marked LG_QUERY_SHARED_READ, but it is not a plain "
				     "read: %s",
				     v.why != NULL ? v.why : "not a SELECT, SHOW or EXPLAIN");
	}
	if (shared_conn && !lg__sql_shareable_conn(v)) {
		return lg__error_set(err, LG_EINVAL,
				     "pool: refused on a shared connection (%s); run it in a "
				     "transaction (lg_pool_begin) or on a connection of your own",
				     v.why != NULL ? v.why : "session state");
	}
	return 0;
}

static int query_run(struct lg_conn *c, const char *sql, const struct lg_param *params, int nparams,
		     const struct lg_query_opts *opts, bool shared_conn, struct lg__then *then,
		     struct lg_result **out, struct lg_error *err)
{
	lg_error_clear(err);
	if (out != NULL) {
		*out = NULL;
	}
	if (then != NULL) {
		then->result = NULL;
		then->rc = LG_ENOTSENT;
	}
	if (c == NULL || sql == NULL || nparams < 0 || nparams > QUERY_MAX_PARAMS ||
	    (nparams > 0 && params == NULL)) {
		return lg__error_set(err, LG_EINVAL, "query: invalid arguments");
	}
	for (int i = 0; i < nparams; i++) {
		const struct lg_param *p = &params[i];
		if (p->length < 0) {
			return lg__error_set(
			    err, LG_EINVAL,
			    "query: parameter $%d: longer than the protocol's 2 GiB - 1", i + 1);
		}
		if (query_param_copied(p) && memchr(p->value, '\0', (size_t)p->length) != NULL) {
			return lg__error_set(err, LG_EINVAL,
					     "query: parameter $%d: text cannot contain NUL bytes",
					     i + 1);
		}
	}
	if (c->verdicts == NULL) {
		c->verdicts = lg__sql_cache_new(c->prep.max);
	}
	struct lg__sql_verdict v = lg__sql_cache_get(c->verdicts, sql, NULL);
	unsigned flags = opts != NULL ? opts->flags : 0;
	int rc = query_check(v, flags, shared_conn, err);
	if (rc != 0) {
		return rc;
	}
	/* Autocommit equivalence: only plain reads share a sync segment (and so an implicit
	 * transaction) with other callers' statements; everything else gets its own Sync. */
	struct query_args a = {c,           sql, params, nparams,
			       opts,        out, err,    !(flags & LG_QUERY_SHARED_READ),
			       shared_conn, then};
	rc = lg__run_in_coro(c->rt, query_in_coro, &a);
	if (rc == LG_EBUSY) {
		lg__error_set(err, rc, "query: called from a loop callback");
	}
	return rc;
}

LG_API int lg_conn_query(struct lg_conn *c, const char *sql, const struct lg_param *params,
			 int nparams, const struct lg_query_opts *opts, struct lg_result **out,
			 struct lg_error *err)
{
	return query_run(c, sql, params, nparams, opts, false, NULL, out, err);
}

int lg__conn_query_shared(struct lg_conn *c, const char *sql, const struct lg_param *params,
			  int nparams, const struct lg_query_opts *opts, struct lg_result **out,
			  struct lg_error *err)
{
	return query_run(c, sql, params, nparams, opts, true, NULL, out, err);
}

int lg__conn_query_then(struct lg_conn *c, bool shared_conn, const char *sql,
			const struct lg_param *params, int nparams,
			const struct lg_query_opts *opts, struct lg__then *then,
			struct lg_result **out, struct lg_error *err)
{
	return query_run(c, sql, params, nparams, opts, shared_conn, then, out, err);
}

LG_API int lg_conn_exec(struct lg_conn *c, const char *sql, struct lg_error *err)
{
	return lg_conn_query(c, sql, NULL, 0, NULL, NULL, err);
}
