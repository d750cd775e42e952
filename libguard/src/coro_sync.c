/*
 * Coroutine synchronization: wait queues, condition, bounded channel, and waiting for a file
 * descriptor.
 *
 * A condition wakes its waiters in FIFO order; a waiter that times out or is canceled removes
 * itself from the queue first, so a signal is never spent on a coroutine that already left.
 * The channel is built from a ring buffer and two conditions-like queues: a sender parks while
 * the buffer is full (for capacity 0, until a receiver takes the value directly), a receiver
 * parks while it is empty. Closing wakes everyone with LG_ECLOSED.
 *
 * lg_wait_fd uses a uv_poll handle allocated per wait; its memory is released in the close
 * callback, after the waiter has long returned.
 */
#include "runtime_int.h"

#include <assert.h>

#include "alloc_int.h"

void lg__waitq_push(struct lg__waitq *q, struct lg__waiter *w)
{
	w->next = NULL;
	w->prev = q->tail;
	if (q->tail != NULL) {
		q->tail->next = w;
	} else {
		q->head = w;
	}
	q->tail = w;
}

void lg__waitq_remove(struct lg__waitq *q, struct lg__waiter *w)
{
	if (w->prev != NULL) {
		w->prev->next = w->next;
	} else {
		q->head = w->next;
	}
	if (w->next != NULL) {
		w->next->prev = w->prev;
	} else {
		q->tail = w->prev;
	}
	w->next = w->prev = NULL;
}

struct lg__waiter *lg__waitq_pop(struct lg__waitq *q)
{
	struct lg__waiter *w = q->head;
	if (w != NULL) {
		lg__waitq_remove(q, w);
	}
	return w;
}

/* Condition. */

struct lg_cond {
	struct lg_runtime *rt;
	struct lg__waitq waiters;
};

LG_API int lg_cond_new(struct lg_runtime *rt, struct lg_cond **out)
{
	struct lg_cond *cv = lg__calloc(1, sizeof(*cv));
	if (cv == NULL) {
		return LG_ENOMEM;
	}
	cv->rt = rt;
	*out = cv;
	return 0;
}

LG_API void lg_cond_free(struct lg_cond *cv)
{
	if (cv == NULL) {
		return;
	}
	assert(cv->waiters.head == NULL);
	lg__free(cv);
}

static void sync_abort_queued(struct lg__waiter *w, int status)
{
	lg__waitq_remove(w->data, w);
	lg__waiter_wake(w, status);
}

static int sync_wait_on(struct lg__waitq *q, uint64_t deadline)
{
	struct lg__waiter w;
	lg__waiter_init(&w, sync_abort_queued);
	w.data = q;
	lg__waitq_push(q, &w);
	return lg__park(&w, deadline);
}

struct cond_wait_args {
	struct lg_cond *cv;
	uint64_t deadline;
};

static int cond_wait_in_coro(void *arg)
{
	struct cond_wait_args *a = arg;
	return sync_wait_on(&a->cv->waiters, a->deadline);
}

LG_API int lg_cond_wait(struct lg_cond *cv, uint64_t deadline)
{
	struct cond_wait_args a = {cv, deadline};
	return lg__run_in_coro(cv->rt, cond_wait_in_coro, &a);
}

LG_API void lg_cond_signal(struct lg_cond *cv)
{
	struct lg__waiter *w = lg__waitq_pop(&cv->waiters);
	if (w != NULL) {
		lg__waiter_wake(w, 0);
	}
}

LG_API void lg_cond_broadcast(struct lg_cond *cv)
{
	struct lg__waiter *w;
	while ((w = lg__waitq_pop(&cv->waiters)) != NULL) {
		lg__waiter_wake(w, 0);
	}
}

/* Channel. */

struct lg_chan {
	struct lg_runtime *rt;
	size_t cap;
	size_t head;
	size_t len;
	bool closed;
	void **buf;
	struct lg__waitq senders; /* waiter->data slot holds the value for rendezvous */
	struct lg__waitq receivers;
};

LG_API int lg_chan_new(struct lg_runtime *rt, size_t capacity, struct lg_chan **out)
{
	struct lg_chan *ch = lg__calloc(1, sizeof(*ch));
	if (ch == NULL) {
		return LG_ENOMEM;
	}
	if (capacity > 0) {
		ch->buf = lg__calloc(capacity, sizeof(void *));
		if (ch->buf == NULL) {
			lg__free(ch);
			return LG_ENOMEM;
		}
	}
	ch->rt = rt;
	ch->cap = capacity;
	*out = ch;
	return 0;
}

LG_API void lg_chan_free(struct lg_chan *ch)
{
	if (ch == NULL) {
		return;
	}
	assert(ch->senders.head == NULL && ch->receivers.head == NULL);
	lg__free(ch->buf);
	lg__free(ch);
}

/* A parked channel waiter carries the value being exchanged next to the waiter. */
struct chan_waiter {
	struct lg__waiter w; /* first: the abort hook casts back */
	struct lg__waitq *queue;
	void *value;
	bool taken; /* a receiver took value straight from this parked sender */
};

static void chan_abort(struct lg__waiter *w, int status)
{
	struct chan_waiter *cw = (struct chan_waiter *)w;
	lg__waitq_remove(cw->queue, w);
	lg__waiter_wake(w, status);
}

static int chan_park(struct lg__waitq *q, struct chan_waiter *cw, uint64_t deadline)
{
	lg__waiter_init(&cw->w, chan_abort);
	cw->queue = q;
	lg__waitq_push(q, &cw->w);
	return lg__park(&cw->w, deadline);
}

struct chan_args {
	struct lg_chan *ch;
	void *value;
	void **out;
	uint64_t deadline;
};

static int chan_send_in_coro(void *arg)
{
	struct chan_args *a = arg;
	struct lg_chan *ch = a->ch;
	for (;;) {
		if (ch->closed) {
			return LG_ECLOSED;
		}
		struct lg__waiter *r = lg__waitq_pop(&ch->receivers);
		if (r != NULL) {
			((struct chan_waiter *)r)->value = a->value;
			lg__waiter_wake(r, 0);
			return 0;
		}
		if (ch->len < ch->cap) {
			ch->buf[(ch->head + ch->len++) % ch->cap] = a->value;
			return 0;
		}
		struct chan_waiter cw = {.value = a->value};
		int rc = chan_park(&ch->senders, &cw, a->deadline);
		if (rc != 0) {
			return rc;
		}
		if (cw.taken) {
			return 0;
		}
	}
}

static int chan_recv_in_coro(void *arg)
{
	struct chan_args *a = arg;
	struct lg_chan *ch = a->ch;
	for (;;) {
		if (ch->len > 0) {
			*a->out = ch->buf[ch->head];
			ch->head = (ch->head + 1) % ch->cap;
			ch->len--;
			struct lg__waiter *s = lg__waitq_pop(&ch->senders);
			if (s != NULL) {
				lg__waiter_wake(s, 0); /* room for one more: it retries */
			}
			return 0;
		}
		struct lg__waiter *s = lg__waitq_pop(&ch->senders);
		if (s != NULL) {
			struct chan_waiter *sw = (struct chan_waiter *)s;
			*a->out = sw->value;
			sw->taken = true;
			lg__waiter_wake(s, 0);
			return 0;
		}
		if (ch->closed) {
			return LG_ECLOSED;
		}
		struct chan_waiter cw = {.value = NULL};
		int rc = chan_park(&ch->receivers, &cw, a->deadline);
		if (rc != 0) {
			return rc;
		}
		*a->out = cw.value;
		return 0;
	}
}

LG_API int lg_chan_send(struct lg_chan *ch, void *value, uint64_t deadline)
{
	struct chan_args a = {ch, value, NULL, deadline};
	return lg__run_in_coro(ch->rt, chan_send_in_coro, &a);
}

LG_API int lg_chan_recv(struct lg_chan *ch, void **value, uint64_t deadline)
{
	struct chan_args a = {ch, NULL, value, deadline};
	return lg__run_in_coro(ch->rt, chan_recv_in_coro, &a);
}

LG_API void lg_chan_close(struct lg_chan *ch)
{
	ch->closed = true;
	struct lg__waiter *w;
	while ((w = lg__waitq_pop(&ch->receivers)) != NULL) {
		lg__waiter_wake(w, LG_ECLOSED);
	}
	while ((w = lg__waitq_pop(&ch->senders)) != NULL) {
		lg__waiter_wake(w, LG_ECLOSED);
	}
}

/* Waiting for a file descriptor. */

struct fd_wait {
	uv_poll_t poll; /* first: freed in the close callback */
	struct lg__waiter *w;
	int *revents;
};

static void fd_on_closed(uv_handle_t *handle)
{
	lg__free(handle);
}

static void fd_finish(struct fd_wait *fw, int status)
{
	struct lg__waiter *w = fw->w;
	fw->w = NULL;
	uv_poll_stop(&fw->poll);
	uv_close((uv_handle_t *)&fw->poll, fd_on_closed);
	lg__waiter_wake(w, status);
}

static void fd_on_event(uv_poll_t *handle, int status, int events)
{
	struct fd_wait *fw = handle->data;
	if (fw->w == NULL) {
		return;
	}
	/* An error status (the peer reset, say) still means "go and look": report readiness
	 * so the caller's next read or write returns the real error. */
	*fw->revents = status < 0 ? (UV_READABLE | UV_WRITABLE) : events;
	fd_finish(fw, 0);
}

static void fd_abort(struct lg__waiter *w, int status)
{
	fd_finish(w->data, status);
}

LG_API int lg_wait_fd(int fd, int events, uint64_t deadline, int *revents)
{
	struct lg_runtime *rt = lg_runtime_current();
	if (rt == NULL) {
		return LG_ENOTCORO;
	}
	int ready = 0;
	struct fd_wait *fw = lg__calloc(1, sizeof(*fw));
	if (fw == NULL) {
		return LG_ENOMEM;
	}
	if (uv_poll_init(lg_runtime_loop(rt), &fw->poll, fd) != 0) {
		lg__free(fw);
		return LG_EINVAL;
	}
	struct lg__waiter w;
	lg__waiter_init(&w, fd_abort);
	w.data = fw;
	fw->w = &w;
	fw->revents = &ready;
	fw->poll.data = fw;
	uv_poll_start(&fw->poll, events, fd_on_event);
	int rc = lg__park(&w, deadline);
	if (revents != NULL) {
		*revents = ready;
	}
	return rc;
}
