/*
 * Statement records and their queues: the bottom layer of a PostgreSQL connection. The
 * sending side (pg_pipeline.c), the receiving side (pg_results.c) and the public calls
 * (pg_query.c) all move records between the connection's queue and its segments with these
 * helpers, and every way a statement ends without a result goes through lg__stmt_fail.
 * Nothing here knows the connection object.
 */
#include "pg_conn_int.h"

#include <stdio.h>
#include <string.h>

#include "alloc_int.h"

void lg__pg_message(char *buf, size_t size, const char *msg)
{
	snprintf(buf, size, "%s", msg != NULL ? msg : "");
	/* libpq's messages span lines ("...\n\tThis probably means ..."): make them one line. */
	for (char *p = buf; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\t') {
			*p = ' ';
		}
	}
	size_t n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
		buf[--n] = '\0';
	}
}

void lg__stmtq_remove(struct lg__stmtq *q, struct lg__stmt *s)
{
	if (s->prev != NULL) {
		s->prev->next = s->next;
	} else {
		q->head = s->next;
	}
	if (s->next != NULL) {
		s->next->prev = s->prev;
	} else {
		q->tail = s->prev;
	}
	s->next = s->prev = NULL;
	q->len--;
}

void lg__stmtq_push(struct lg__stmtq *q, struct lg__stmt *s)
{
	s->next = NULL;
	s->prev = q->tail;
	if (q->tail != NULL) {
		q->tail->next = s;
	} else {
		q->head = s;
	}
	q->tail = s;
	q->len++;
}

void lg__stmt_free(struct lg__stmt *s)
{
	if (s == NULL) {
		return;
	}
	PQclear(s->result);
	PQclear(s->error);
	lg__free(s);
}

void lg__stmt_fail(struct lg__stmt *s, int code, const char *prefix, const char *why)
{
	if (s->abandoned) {
		lg__stmt_free(s);
		return;
	}
	s->fail_code = code;
	s->outcome = LG__STMT_FAILED;
	const char *server =
	    s->error != NULL ? PQresultErrorField(s->error, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	snprintf(s->fail_msg, sizeof(s->fail_msg), "%s%s%s%s%.300s", prefix,
		 server != NULL ? "server said: " : "", server != NULL ? server : "",
		 server != NULL ? "; " : "", why);
	PQclear(s->result);
	s->result = NULL;
	struct lg__waiter *w = s->waiter;
	s->waiter = NULL;
	lg__waiter_wake(w, 0);
}
