/*
 * The queue of notifications received on a connection and the one coroutine that may wait
 * for them (pg_notify.c holds the public calls). Drained by the connection after every read.
 */
#include "pg_conn_int.h"

#include <string.h>

#include "alloc_int.h"

void lg__notify_drain(struct lg_conn *c)
{
	PGnotify *n;
	while ((n = PQnotifies(c->pg)) != NULL) {
		size_t clen = strlen(n->relname) + 1;
		size_t plen = strlen(n->extra) + 1;
		struct lg__notify_item *it = lg__malloc(sizeof(*it) + clen + plen);
		if (it != NULL) {
			it->next = NULL;
			it->n.channel = (char *)(it + 1);
			it->n.payload = it->n.channel + clen;
			memcpy(it->n.channel, n->relname, clen);
			memcpy(it->n.payload, n->extra, plen);
			it->n.backend_pid = n->be_pid;
			if (c->notify_tail != NULL) {
				c->notify_tail->next = it;
			} else {
				c->notify_head = it;
			}
			c->notify_tail = it;
			if (++c->notify_len > c->notify_max) {
				/* Nobody reads them (a pooled connection, a slow consumer): keep
				 * memory bounded and drop the oldest. */
				struct lg__notify_item *old = c->notify_head;
				c->notify_head = old->next;
				lg__free(old);
				c->notify_len--;
				c->stats.notifications_dropped++;
			}
		}
		PQfreemem(n);
	}
	if (c->notify_head != NULL && c->notify_waiter != NULL) {
		struct lg__waiter *w = c->notify_waiter;
		c->notify_waiter = NULL;
		lg__waiter_wake(w, 0);
	}
}

void lg__notify_fail(struct lg_conn *c, int code)
{
	if (c->notify_waiter != NULL) {
		struct lg__waiter *w = c->notify_waiter;
		c->notify_waiter = NULL;
		lg__waiter_wake(w, code);
	}
}

void lg__notify_free_all(struct lg_conn *c)
{
	while (c->notify_head != NULL) {
		struct lg__notify_item *next = c->notify_head->next;
		lg__free(c->notify_head);
		c->notify_head = next;
	}
	c->notify_tail = NULL;
	c->notify_len = 0;
}
