/*
 * Pipeline mode: sync segments, result matching, failure isolation.
 * (libpq documentation, "Pipeline Mode"; protocol: Extended Query, Sync.)
 *
 * Happy path:
 *   1. At the end of a loop turn the flush takes the queued statements in order and sends
 *      them as segments of at most max_segment statements, each closed by PQpipelineSync.
 *      Only statements marked LG_QUERY_SHARED_READ share a segment; every other statement
 *      gets a segment of its own, so it keeps its autocommit meaning (pg_query.c decides,
 *      from PostgreSQL's parser). With the prepared cache, the first use of a text sends Parse
 *      (PQsendPrepare) ahead of its execution in the same segment.
 *   2. Readable socket: PQconsumeInput, then PQgetResult while libpq is not busy. Results
 *      arrive in send order: per query its result(s), then NULL; per segment one
 *      PGRES_PIPELINE_SYNC. Each result is stored on its statement; nothing is released yet,
 *      because PostgreSQL commits a segment's implicit transaction only at Sync.
 *   3. At Sync every statement of the segment is released to its caller.
 *
 * Failure modes:
 *   - A statement fails: PostgreSQL aborts the segment's implicit transaction. The rest of
 *     the segment comes back PGRES_PIPELINE_ABORTED and the earlier statements were rolled
 *     back. The failing statement's caller gets the error; every sibling is queued again at
 *     the front, in order, and re-sent in a fresh segment (nothing of it committed).
 *   - The implicit COMMIT at Sync fails (deferred constraint, serialization failure): the
 *     ErrorResponse arrives after the last statement's results; it goes to that segment's
 *     statement (pg_results.c), and the connection carries on.
 *   - A Parse fails or is skipped: the cache entry returns to "not prepared".
 *   - A statement whose caller left (deadline/cancel) is dropped, never re-sent; when it is
 *     the one the server is executing and the last one sent, a cancel request is sent and
 *     nothing more is sent until the request is over, so that it cannot land on a neighbour
 *     (pg_results.c). Should one still come back 57014 with a request pending, it is treated
 *     as a rolled-back sibling.
 *   - The connection is lost: every statement in flight fails with LG_ECONNLOST (its
 *     segment may or may not have committed: never replayed); queued ones fail as not sent.
 */
#include "pg_conn_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"

_Static_assert(sizeof(Oid) == sizeof(uint32_t), "Oid is 32 bits");

/* Sending. */

static int pipe_send_stmt(struct lg_conn *c, struct lg__stmt *s)
{
	s->prep = (s->flags & LG_QUERY_PREPARE)
		      ? lg__prep_get(&c->prep, s->sql, s->types, s->nparams)
		      : NULL;
	s->sent_prepare = false;
	if (s->prep == NULL) {
		return PQsendQueryParams(c->pg, s->sql, s->nparams, (const Oid *)s->types,
					 s->values, s->lengths, s->formats, s->result_format);
	}
	if (s->prep->state == LG__PREP_NONE) {
		if (!PQsendPrepare(c->pg, s->prep->name, s->sql, s->nparams,
				   (const Oid *)s->types)) {
			return 0;
		}
		s->prep->state = LG__PREP_PREPARING;
		s->sent_prepare = true;
		c->stats.prepares++;
	}
	return PQsendQueryPrepared(c->pg, s->prep->name, s->nparams, s->values, s->lengths,
				   s->formats, s->result_format);
}

static struct lg__segment *pipe_segment_new(struct lg_conn *c)
{
	struct lg__segment *seg = lg__calloc(1, sizeof(*seg));
	if (seg == NULL) {
		return NULL;
	}
	if (c->seg_tail != NULL) {
		c->seg_tail->next = seg;
	} else {
		c->seg_head = seg;
	}
	c->seg_tail = seg;
	return seg;
}

static void seg_append(struct lg__segment *seg, struct lg__stmt *s)
{
	s->next = NULL;
	s->prev = seg->tail;
	if (seg->tail != NULL) {
		seg->tail->next = s;
	} else {
		seg->head = s;
	}
	seg->tail = s;
	seg->count++;
	s->segment = seg;
}

/*
 * A segment that several reads share runs read-only: a statement marked as a read that writes
 * anyway (through a user function the parser cannot see into) fails loudly with 25006
 * instead of committing beside its neighbours and being re-run with them. set_config(..,
 * true) may raise transaction_read_only at any point of a transaction, and it ends with it.
 * Only for statements the pool sent on a shared connection: the pool refuses transaction
 * control there, so the segment is an implicit transaction. On a connection of the caller's
 * own, a segment may run inside the caller's BEGIN, which the guard would make read-only to
 * its end.
 */
static const char pipe_guard_sql[] = "SELECT set_config('transaction_read_only', 'on', true)";

static bool pipe_wants_guard(const struct lg_conn *c)
{
	const struct lg__stmt *first = c->pending.head;
	return !c->no_guard && c->max_segment > 1 && first != NULL && !first->alone &&
	       first->shared_conn && first->next != NULL && !first->next->alone &&
	       first->next->shared_conn;
}

/* Sends one segment from the front of the queue; returns false when libpq refused (the
 * connection broke: PQerrorMessage says why). */
static bool pipe_send_segment(struct lg_conn *c)
{
	struct lg__segment *seg = pipe_segment_new(c);
	if (seg == NULL) {
		/* Out of memory: the first queued statement fails, not sent, so that the loop
		 * moves on (keeping it queued would spin on the same failure). */
		struct lg__stmt *s = c->pending.head;
		lg__stmtq_remove(&c->pending, s);
		lg__stmt_fail(s, LG_ENOMEM, "", "out of memory, not sent");
		return true;
	}
	seg->cursor_in_guard = pipe_wants_guard(c);
	if (seg->cursor_in_guard &&
	    !PQsendQueryParams(c->pg, pipe_guard_sql, 0, NULL, NULL, NULL, NULL, 0)) {
		return false;
	}
	struct lg__stmt *s;
	while ((s = c->pending.head) != NULL && seg->count < c->max_segment &&
	       (seg->count == 0 || (!s->alone && c->in_flight < c->max_in_flight))) {
		lg__stmtq_remove(&c->pending, s);
		seg_append(seg, s);
		s->outcome = LG__STMT_SENT;
		c->in_flight++;
		if (!pipe_send_stmt(c, s)) {
			return false;
		}
		if (s->alone) {
			break;
		}
	}
	if (!PQpipelineSync(c->pg)) {
		return false;
	}
	seg->cursor = seg->head;
	seg->cursor_in_prepare = seg->head->sent_prepare;
	c->stats.segments++;
	return true;
}

/*
 * A trailing read (queued right behind its caller's statement by lg__conn_query_then: a
 * read-your-writes token) may run later than queued, never earlier. When everything queued
 * goes out now, the trailing reads move behind the rest, so that those of the writes sent
 * together share one sync segment instead of taking one each: a segment is a transaction on
 * the server. Not when some of the queue must wait: a read moved back could then keep
 * waiting behind newer statements.
 */
static void pipe_defer_trailing(struct lg_conn *c)
{
	if (c->pending.len + c->in_flight > c->max_in_flight) {
		return;
	}
	struct lg__stmt *last = c->pending.tail;
	struct lg__stmt *s = c->pending.head;
	while (s != NULL && s != last) {
		struct lg__stmt *next = s->next;
		if (s->trailing) {
			lg__stmtq_remove(&c->pending, s);
			lg__stmtq_push(&c->pending, s);
		}
		s = next;
	}
}

int lg__pipe_send(struct lg_conn *c)
{
	if (c->cancel_pending) {
		return 0; /* held back until the cancel request is over (pg_results.c) */
	}
	pipe_defer_trailing(c);
	while (c->pending.head != NULL && c->in_flight < c->max_in_flight) {
		if (!pipe_send_segment(c)) {
			return LG_ECONNLOST;
		}
	}
	return 0;
}

int lg__pipe_flush(struct lg_conn *c)
{
	int rc = PQflush(c->pg);
	/* libpq reads while it writes; on EOF it closes the socket itself and may still report
	 * success here, so the status is the authority (a closed socket gives no more events). */
	if (rc < 0 || PQstatus(c->pg) == CONNECTION_BAD) {
		return -1;
	}
	return UV_READABLE | (rc == 1 ? UV_WRITABLE : 0);
}

void lg__pipe_submit(struct lg_conn *c, struct lg__stmt *s)
{
	s->conn = c;
	s->outcome = LG__STMT_QUEUED;
	lg__stmtq_push(&c->pending, s);
	lg__flush_schedule(c->rt, &c->flush);
}
