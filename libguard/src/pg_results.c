/*
 * Reading pipeline results back and releasing them to their callers (see pg_pipeline.c for
 * the segment protocol and its failure modes), plus cancel requests and connection loss.
 */
#include "pg_conn_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"

#define SQLSTATE_QUERY_CANCELED "57014"

static void results_release(struct lg_conn *c, struct lg__stmt *s)
{
	c->stats.statements++;
	if (s->outcome != LG__STMT_OK) {
		c->stats.failed++;
	}
	if (s->abandoned) {
		lg__stmt_free(s);
		return;
	}
	struct lg__waiter *w = s->waiter;
	s->waiter = NULL;
	lg__waiter_wake(w, 0);
}

/*
 * A cancel request is over once its target's segment completed and the request itself has
 * been delivered (PQcancel returns after the postmaster signalled the backend and closed the
 * request's connection). From then on the signal can only find the backend idle, reading the
 * next command, where PostgreSQL ignores it: the statements held back meanwhile are sent.
 */
static void results_cancel_settled(struct lg_conn *c)
{
	if (!c->cancel_pending || c->cancel_victim_live || c->cancel_works > 0) {
		return;
	}
	c->cancel_pending = false;
	if (c->pending.head != NULL) {
		lg__flush_schedule(c->rt, &c->flush);
	}
}

/* Was s's failure caused by a cancel request meant for another statement? */
static bool results_stray_cancel(struct lg_conn *c, const struct lg__stmt *s)
{
	if (!c->cancel_pending || s->abandoned || s->cancel_victim || s->error == NULL) {
		return false;
	}
	const char *state = PQresultErrorField(s->error, PG_DIAG_SQLSTATE);
	return state != NULL && strcmp(state, SQLSTATE_QUERY_CANCELED) == 0;
}

/*
 * A prepared statement that the server no longer has (26000: DISCARD ALL, a Parse skipped
 * because a sibling failed) or whose plan changed result type (0A000 after ALTER TABLE ...
 * ADD COLUMN under a SELECT *): the Execute failed before running anything, so it is safe to
 * prepare again and re-send once. After 0A000 the server still holds the old statement under
 * its name, so the entry takes a new name (the old one is released when the session ends).
 */
static bool results_stale_prepared(struct lg_conn *c, struct lg__stmt *s)
{
	if (s->prep == NULL || s->reprepared || s->abandoned || s->error == NULL) {
		return false;
	}
	const char *state = PQresultErrorField(s->error, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(s->error, PG_DIAG_MESSAGE_PRIMARY);
	bool missing = state != NULL && strcmp(state, "26000") == 0;
	bool changed = state != NULL && strcmp(state, "0A000") == 0 && msg != NULL &&
		       strstr(msg, "cached plan must not change result type") != NULL;
	if (!missing && !changed) {
		return false;
	}
	if (changed && s->prep->state != LG__PREP_PREPARING) {
		lg__prep_rename(&c->prep, s->prep);
	}
	if (s->prep->state != LG__PREP_PREPARING) {
		s->prep->state = LG__PREP_NONE;
	}
	s->reprepared = true;
	c->stats.reprepares++;
	return true;
}

static void results_complete_segment(struct lg_conn *c, struct lg__segment *seg)
{
	c->seg_head = seg->next;
	if (c->seg_head == NULL) {
		c->seg_tail = NULL;
	}
	struct lg__stmtq rerun = {0};
	struct lg__stmt *s = seg->head;
	while (s != NULL) {
		struct lg__stmt *next = s->next;
		c->in_flight--;
		if (s->cancel_victim) {
			c->cancel_victim_live = false;
			results_cancel_settled(c);
		}
		if (seg->failed && s->outcome == LG__STMT_FAILED && results_stray_cancel(c, s)) {
			c->cancel_pending = false;
			s->outcome = LG__STMT_ABORTED;
		}
		bool again = s->outcome == LG__STMT_FAILED && results_stale_prepared(c, s);
		if (!again && (!seg->failed || s->outcome == LG__STMT_FAILED || s->abandoned)) {
			results_release(c, s);
		} else {
			/* Rolled back with its segment, or never run (stale prepared statement):
			 * nothing of it committed, send it again. */
			PQclear(s->result);
			PQclear(s->error);
			s->result = s->error = NULL;
			s->outcome = LG__STMT_QUEUED;
			s->segment = NULL;
			c->stats.reruns++;
			s->next = NULL;
			s->prev = rerun.tail;
			if (rerun.tail != NULL) {
				rerun.tail->next = s;
			} else {
				rerun.head = s;
			}
			rerun.tail = s;
			rerun.len++;
		}
		s = next;
	}
	lg__free(seg);
	if (rerun.head != NULL) {
		rerun.tail->next = c->pending.head;
		if (c->pending.head != NULL) {
			c->pending.head->prev = rerun.tail;
		} else {
			c->pending.tail = rerun.tail;
		}
		c->pending.head = rerun.head;
		c->pending.len += rerun.len;
	}
	if (c->pending.head != NULL) {
		lg__flush_schedule(c->rt, &c->flush);
	}
}

/* Returns false for a result a pipeline cannot carry (COPY's): the connection must fail. */
static bool results_store(struct lg__segment *seg, struct lg__stmt *s, PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	if (seg->cursor_in_prepare) {
		if (st == PGRES_COMMAND_OK) {
			s->prep->state = LG__PREP_READY;
			PQclear(r);
			return true;
		}
		s->prep->state = LG__PREP_NONE;
	}
	switch (st) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY:
		if (s->outcome == LG__STMT_SENT && s->result == NULL) {
			s->result = r;
			s->outcome = LG__STMT_OK;
			return true;
		}
		break;
	case PGRES_FATAL_ERROR:
		if (s->error == NULL) {
			PQclear(s->result);
			s->result = NULL;
			s->error = r;
			s->outcome = LG__STMT_FAILED;
			seg->failed = true;
			return true;
		}
		break;
	case PGRES_PIPELINE_ABORTED:
		if (s->outcome != LG__STMT_FAILED) {
			s->outcome = LG__STMT_ABORTED;
		}
		seg->failed = true;
		break;
	default:
		/* COPY and other states cannot be carried in pipeline mode. */
		PQclear(r);
		return false;
	}
	PQclear(r);
	return true;
}

static void results_advance(struct lg__segment *seg)
{
	seg->awaiting_null = false;
	if (seg->cursor_in_guard) {
		seg->cursor_in_guard = false;
		return;
	}
	if (seg->cursor_in_prepare) {
		seg->cursor_in_prepare = false;
		return;
	}
	seg->cursor = seg->cursor->next;
	seg->cursor_in_prepare = seg->cursor != NULL && seg->cursor->sent_prepare;
}

static void results_cancel_head(struct lg_conn *c);

/*
 * An ErrorResponse after the segment's last result and before its ReadyForQuery: the
 * implicit COMMIT at Sync failed (a deferred constraint, a serialization failure, a
 * commit-time trigger). Nothing of the segment committed. The error goes to the first
 * statement that had succeeded (a segment of one statement: that statement); in a segment of
 * shared reads the others are re-sent. A FATAL or PANIC error is the server ending the
 * session: returns false and the connection fails.
 */
static bool results_commit_error(struct lg__segment *seg, PGresult *r)
{
	const char *severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (PQresultStatus(r) != PGRES_FATAL_ERROR || severity == NULL ||
	    strcmp(severity, "ERROR") != 0) {
		return false;
	}
	struct lg__stmt *owner = NULL;
	for (struct lg__stmt *s = seg->head; s != NULL; s = s->next) {
		if (s->outcome == LG__STMT_OK) {
			owner = s;
			break;
		}
	}
	if (owner == NULL) {
		PQclear(r); /* every statement already failed on its own */
	} else {
		PQclear(owner->result);
		owner->result = NULL;
		owner->error = r;
		owner->outcome = LG__STMT_FAILED;
		for (struct lg__stmt *s = owner->next; s != NULL; s = s->next) {
			if (s->outcome == LG__STMT_OK) {
				s->outcome = LG__STMT_ABORTED;
			}
		}
	}
	seg->failed = true;
	seg->commit_failed = true;
	return true;
}

/* Returns 0, or the code the connection must fail with (why filled in). */
static int results_process(struct lg_conn *c, char *why, size_t why_size)
{
	while (!PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		struct lg__segment *seg = c->seg_head;
		if (r == NULL) {
			if (seg != NULL && seg->awaiting_null) {
				results_advance(seg);
				continue;
			}
			if (seg != NULL && seg->commit_failed && seg->cursor == NULL) {
				seg->commit_failed =
				    false; /* the NULL closing the COMMIT's error */
				continue;
			}
			break;
		}
		ExecStatusType st = PQresultStatus(r);
		if (seg != NULL && st != PGRES_PIPELINE_SYNC && seg->cursor == NULL &&
		    results_commit_error(seg, r)) {
			continue;
		}
		if (seg == NULL || (st != PGRES_PIPELINE_SYNC && seg->cursor == NULL)) {
			/* An error outside any statement: the server is ending the session. */
			lg__pg_message(why, why_size, PQresultErrorMessage(r));
			if (why[0] == '\0') {
				snprintf(why, why_size, "unexpected result");
			}
			PQclear(r);
			return LG_ECONNLOST;
		}
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			results_complete_segment(c, seg);
			continue;
		}
		if (seg->cursor_in_guard) {
			/* The read-only guard (pg_pipeline.c). If it failed, the segment's
			 * statements come back aborted and are re-sent; unless a stray cancel hit
			 * it, further segments go without it rather than failing again. */
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			if (st == PGRES_FATAL_ERROR) {
				seg->failed = true;
				c->no_guard =
				    state == NULL || strcmp(state, SQLSTATE_QUERY_CANCELED) != 0;
			}
			PQclear(r);
		} else if (!results_store(seg, seg->cursor, r)) {
			snprintf(why, why_size, "unexpected result status in pipeline");
			return LG_EPROTO;
		}
		seg->awaiting_null = true;
	}
	results_cancel_head(c);
	return 0;
}

int lg__results_read(struct lg_conn *c, char *why, size_t why_size)
{
	if (!PQconsumeInput(c->pg)) {
		lg__pg_message(why, why_size, PQerrorMessage(c->pg));
		return LG_ECONNLOST;
	}
	return results_process(c, why, why_size);
}

void lg__pipe_fail_all(struct lg_conn *c, int code, const char *why)
{
	/* Sent and unanswered: the outcome is unknown, whatever ended the wait. */
	int sent_code = code == LG_ECONNLOST ? LG_ECONNLOST : LG_EUNKNOWN;
	const char *sent = code == LG_ECONNLOST ? "connection lost, outcome unknown: "
						: "closed in flight, outcome unknown: ";
	while (c->seg_head != NULL) {
		struct lg__segment *seg = c->seg_head;
		c->seg_head = seg->next;
		struct lg__stmt *s = seg->head;
		while (s != NULL) {
			struct lg__stmt *next = s->next;
			lg__stmt_fail(s, sent_code, sent, why);
			s = next;
		}
		lg__free(seg);
	}
	c->seg_tail = NULL;
	c->in_flight = 0;
	/* Queued statements never reached the server: safe for a caller to send elsewhere. */
	int unsent_code = code == LG_ECONNLOST ? LG_ENOTSENT : code;
	const char *unsent = code == LG_ECONNLOST ? "connection lost, not sent: " : "";
	struct lg__stmt *s;
	while ((s = c->pending.head) != NULL) {
		lg__stmtq_remove(&c->pending, s);
		lg__stmt_fail(s, unsent_code, unsent, why);
	}
}

/* Cancel requests: PQcancel blocks on a new connection, so it runs on the thread pool. */

struct results_cancel {
	uv_work_t req;
	struct lg_conn *conn;
	PGcancel *cancel;
	char errbuf[256];
};

static void results_cancel_work(uv_work_t *req)
{
	struct results_cancel *rc = req->data;
	PQcancel(rc->cancel, rc->errbuf, sizeof(rc->errbuf));
}

static void results_cancel_done(uv_work_t *req, int status)
{
	(void)status;
	struct results_cancel *rc = req->data;
	struct lg_conn *c = rc->conn;
	PQfreeCancel(rc->cancel);
	lg__free(rc);
	lg__runtime_req_end(c->rt);
	c->cancel_works--;
	results_cancel_settled(c);
	lg__conn_unref(c);
}

/*
 * Sends a cancel request for the statement the server is executing, when its caller left.
 * PostgreSQL's request names a backend, not a statement, so it goes out only when nothing
 * else of this connection is in the server's hands: the abandoned statement is the last one
 * sent (otherwise it runs to completion and its result is discarded), and nothing is sent
 * after it until the request is over (results_cancel_settled). A request that arrives after
 * its target finished then meets an idle backend, and never a neighbour or a COMMIT.
 */
static void results_cancel_head(struct lg_conn *c)
{
	struct lg__segment *seg = c->seg_head;
	if (c->state != LG__CONN_READY || c->cancel_pending || seg == NULL || seg->cursor == NULL ||
	    !seg->cursor->abandoned || seg->cursor->cancel_victim || seg != c->seg_tail ||
	    seg->cursor->next != NULL) {
		return;
	}
	struct results_cancel *rc = lg__calloc(1, sizeof(*rc));
	if (rc == NULL) {
		return; /* the statement runs to completion; its result is discarded */
	}
	rc->cancel = PQgetCancel(c->pg);
	if (rc->cancel == NULL) {
		lg__free(rc);
		return;
	}
	rc->conn = c;
	rc->req.data = rc;
	if (uv_queue_work(lg_runtime_loop(c->rt), &rc->req, results_cancel_work,
			  results_cancel_done) != 0) {
		PQfreeCancel(rc->cancel);
		lg__free(rc);
		return;
	}
	lg__runtime_req_begin(c->rt);
	seg->cursor->cancel_victim = true;
	c->cancel_pending = true;
	c->cancel_victim_live = true;
	c->cancel_works++;
	c->refs++;
	c->stats.cancels++;
}

void lg__pipe_abandon(struct lg_conn *c, struct lg__stmt *s)
{
	s->abandoned = true;
	s->waiter = NULL;
	results_cancel_head(c);
}
