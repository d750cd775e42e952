/*
 * LISTEN/NOTIFY: the statements, the queue of received notifications and the waiter.
 *
 * Notifications are drained with PQnotifies after every PQconsumeInput and after each result
 * loop (libpq can buffer them while parsing results). They are queued in arrival order until
 * a coroutine takes them. LISTEN changes session state, so it travels in a segment of its
 * own; a LISTEN inside a failing segment would be rolled back with it. Notifications sent
 * while the connection was down are lost: after LG_ECONNLOST the caller reconnects, LISTENs
 * again and re-reads whatever durable record the notifications point to.
 */
#include "pg_conn_int.h"

#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

LG_API void lg_notification_free(struct lg_notification *n)
{
	if (n != NULL) {
		lg__free((char *)n - offsetof(struct lg__notify_item, n));
	}
}

static int notify_statement(struct lg_conn *c, const char *verb, const char *channel,
			    struct lg_error *err)
{
	if (c == NULL || channel == NULL || channel[0] == '\0') {
		return lg__error_set(err, LG_EINVAL, "%s: missing channel", verb);
	}
	if (c->pg == NULL) {
		return lg__error_set(err, LG_ECONNLOST, "%s: not connected", verb);
	}
	char *quoted = PQescapeIdentifier(c->pg, channel, strlen(channel));
	if (quoted == NULL) {
		return lg__error_set(err, LG_EINVAL, "%s: invalid channel name", verb);
	}
	size_t n = strlen(verb) + strlen(quoted) + 2;
	char *sql = lg__malloc(n);
	if (sql == NULL) {
		PQfreemem(quoted);
		return lg__error_set(err, LG_ENOMEM, "%s: out of memory", verb);
	}
	strcpy(sql, verb);
	strcat(sql, " ");
	strcat(sql, quoted);
	PQfreemem(quoted);
	struct lg_query_opts opts = {0, 0};
	int rc = lg_conn_query(c, sql, NULL, 0, &opts, NULL, err);
	lg__free(sql);
	return rc;
}

LG_API int lg_conn_listen(struct lg_conn *c, const char *channel, struct lg_error *err)
{
	return notify_statement(c, "LISTEN", channel, err);
}

LG_API int lg_conn_unlisten(struct lg_conn *c, const char *channel, struct lg_error *err)
{
	return notify_statement(c, "UNLISTEN", channel, err);
}

static void notify_abort(struct lg__waiter *w, int status)
{
	struct lg_conn *c = w->data;
	c->notify_waiter = NULL;
	lg__waiter_wake(w, status);
}

struct notify_args {
	struct lg_conn *c;
	uint64_t deadline;
	struct lg_notification **out;
	struct lg_error *err;
};

static int notify_wait_in_coro(void *arg)
{
	struct notify_args *a = arg;
	struct lg_conn *c = a->c;
	while (c->notify_head == NULL) {
		if (c->state != LG__CONN_READY) {
			return lg__error_set(
			    a->err, c->state == LG__CONN_CLOSED ? LG_ECLOSED : LG_ECONNLOST,
			    "notification: connection %s",
			    c->state == LG__CONN_CLOSED ? "closed" : "lost");
		}
		if (c->notify_waiter != NULL) {
			return lg__error_set(a->err, LG_EBUSY, "notification: another waiter");
		}
		struct lg__waiter w;
		lg__waiter_init(&w, notify_abort);
		w.data = c;
		c->notify_waiter = &w;
		int rc = lg__park(&w, a->deadline);
		if (rc != 0 && c->notify_head == NULL) {
			return lg__error_set(a->err, rc, "notification: %s", lg_strerror(rc));
		}
	}
	struct lg__notify_item *it = c->notify_head;
	c->notify_head = it->next;
	c->notify_len--;
	if (c->notify_head == NULL) {
		c->notify_tail = NULL;
	}
	*a->out = &it->n;
	return 0;
}

LG_API int lg_conn_notification(struct lg_conn *c, uint64_t deadline, struct lg_notification **out,
				struct lg_error *err)
{
	lg_error_clear(err);
	if (c == NULL || out == NULL) {
		return lg__error_set(err, LG_EINVAL, "notification: invalid arguments");
	}
	struct notify_args a = {c, deadline, out, err};
	return lg__run_in_coro(c->rt, notify_wait_in_coro, &a);
}
