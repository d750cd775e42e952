/*
 * Coalesced misses of lg_cache (single flight per key): when many coroutines miss the same
 * key at once, the first reads the primary and fills Redis; the others wait for its answer
 * instead of sending the same read. Outside a coroutine nobody can wait: such a caller reads
 * on its own.
 *
 * Happy path: lg__cache_flight_join finds no flight for the key and registers the caller as
 * the loader; the loader reads and fills, then lg__cache_flight_publish stores the outcome
 * (row or error), wakes the waiters and unregisters the flight, so later misses start a
 * fresh one. Each waiter copies the outcome; the last one out frees the flight.
 *
 * Failure modes: out of memory -> the caller loads alone (no coalescing); a waiter canceled
 * or past no deadline (waits have none: the loader's own read carries the deadline) leaves
 * with LG_ECANCELED and drops its reference.
 */
#include <string.h>

#include "alloc_int.h"
#include "cache_int.h"
#include "error_int.h"

struct lg__cache_flight {
	struct lg__cache_flight *next;
	char *key;
	int refs;
	bool done;
	int rc;
	struct lg_error err;
	struct lg_cache_row row; /* the loader's row (json Owned by the flight) */
	struct lg_cond *cv;
};

static void flight_unref(struct lg__cache_flight *f)
{
	if (--f->refs > 0) {
		return;
	}
	lg_cond_free(f->cv);
	lg__free(f->row.json);
	lg__free(f->key);
	lg__free(f);
}

static void flight_unlink(struct lg__cache_flight **head, struct lg__cache_flight *f)
{
	for (struct lg__cache_flight **p = head; *p != NULL; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			return;
		}
	}
}

/* Copies the published outcome of f into row / err. */
static int flight_copy(const struct lg__cache_flight *f, struct lg_cache_row *row,
		       struct lg_error *err)
{
	if (f->rc != 0) {
		if (err != NULL) {
			*err = f->err;
		}
		return f->rc;
	}
	row->json = lg__malloc(f->row.len + 1);
	if (row->json == NULL) {
		return lg__error_set(err, LG_ENOMEM, "lg_cache: out of memory");
	}
	memcpy(row->json, f->row.json, f->row.len + 1);
	row->len = f->row.len;
	row->version = f->row.version;
	row->from_cache = false;
	return 0;
}

int lg__cache_flight_join(struct lg__cache_flight **head, struct lg_runtime *rt, const char *key,
			  struct lg__cache_flight **mine, struct lg_cache_row *row,
			  struct lg_error *err)
{
	*mine = NULL;
	if (lg_coro_self() == NULL) {
		return LG__CACHE_LOAD;
	}
	for (struct lg__cache_flight *f = *head; f != NULL; f = f->next) {
		if (strcmp(f->key, key) != 0) {
			continue;
		}
		f->refs++;
		while (!f->done) {
			int rc = lg_cond_wait(f->cv, LG_DEADLINE_NONE);
			if (rc != 0) {
				flight_unref(f);
				return lg__error_set(err, rc, "lg_cache: waiting for a read: %s",
						     lg_strerror(rc));
			}
		}
		int rc = flight_copy(f, row, err);
		flight_unref(f);
		return rc;
	}
	struct lg__cache_flight *f = lg__calloc(1, sizeof(*f));
	if (f == NULL || (f->key = lg__strdup(key)) == NULL || lg_cond_new(rt, &f->cv) != 0) {
		if (f != NULL) {
			lg__free(f->key);
			lg__free(f);
		}
		return LG__CACHE_LOAD; /* load alone */
	}
	f->refs = 1;
	f->next = *head;
	*head = f;
	*mine = f;
	return LG__CACHE_LOAD;
}

void lg__cache_flight_publish(struct lg__cache_flight **head, struct lg__cache_flight *f, int rc,
			      const struct lg_cache_row *row, const struct lg_error *err)
{
	if (f == NULL) {
		return;
	}
	f->done = true;
	f->rc = rc;
	if (rc == 0) {
		f->row = *row;
		f->row.json = lg__malloc(row->len + 1);
		if (f->row.json == NULL) {
			f->rc = lg__error_set(&f->err, LG_ENOMEM, "lg_cache: out of memory");
		} else {
			memcpy(f->row.json, row->json, row->len + 1);
		}
	} else if (err != NULL) {
		f->err = *err;
	} else {
		lg__error_set(&f->err, rc, "lg_cache: %s", lg_strerror(rc));
	}
	flight_unlink(head, f);
	lg_cond_broadcast(f->cv);
	flight_unref(f);
}
