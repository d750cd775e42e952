/*
 * reflect_bench's load and probes, all timed with one clock (CLOCK_MONOTONIC) in one process.
 *
 * Writers (rb_load_run): W threads, each with its own libpq connection (autocommit), each
 * updating only the ids ≡ w (mod W), so writers never wait for each other's row locks. A
 * statement is `UPDATE bench SET n = n + 1 WHERE id = ANY($1)` over `batch` ids. Paced
 * (rate > 0): open loop, statement i of writer w is due at start + (i + w/W) * period; a late
 * writer sends at once (catching up) and its lateness is reported as max_lag. Flat out
 * (rate 0): back to back for the duration. With a track, each id's send time is stamped just
 * before its statement goes out, and an id whose previous change is still in flight is
 * skipped (counted), so one key never carries two changes that could share one event.
 *
 * Keyspace subscriber (rb_sub_*): PSUBSCRIBE __keyspace@0__:<row key prefix>* on a dedicated
 * hiredis connection, read with poll(); every event takes its id's send time back (latency =
 * arrival - send). An event for an idle id is counted as unexpected.
 *
 * NOTIFY probe (rb_notify_run): a LISTEN connection read by a thread with poll(), and a paced
 * writer issuing SELECT pg_notify('lg_bench_probe', '<seq>'); latency = receipt - send.
 *
 * Failure modes: a connection that cannot be opened makes the call return -1 (message on
 * stderr); a failed statement is counted in errors and its ids are taken out of flight; a
 * Redis read error ends the subscriber (its events stop: the phase reports missing events).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "reflect_bench.h"

#define RB_PROBE_CHANNEL "lg_bench_probe"

static void load_sleep_until(uint64_t when_us)
{
	struct timespec ts = {(time_t)(when_us / 1000000u), (long)(when_us % 1000000u) * 1000L};
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int rb_track_init(struct rb_track *t, int rows)
{
	memset(t, 0, sizeof(*t));
	t->sent_us = malloc(((size_t)rows + 1) * sizeof(*t->sent_us));
	if (t->sent_us == NULL) {
		return -1;
	}
	t->rows = rows;
	for (int i = 0; i <= rows; i++) {
		atomic_init(&t->sent_us[i], 0);
	}
	atomic_init(&t->in_flight, 0);
	atomic_init(&t->unexpected, 0);
	atomic_init(&t->skipped, 0);
	pthread_mutex_init(&t->mu, NULL);
	return 0;
}

void rb_track_reset(struct rb_track *t)
{
	for (int i = 0; i <= t->rows; i++) {
		atomic_store(&t->sent_us[i], 0);
	}
	atomic_store(&t->in_flight, 0);
	atomic_store(&t->unexpected, 0);
	atomic_store(&t->skipped, 0);
	pthread_mutex_lock(&t->mu);
	bench_lat_free(&t->lat);
	pthread_mutex_unlock(&t->mu);
}

void rb_track_close(struct rb_track *t)
{
	free(t->sent_us);
	t->sent_us = NULL;
	bench_lat_free(&t->lat);
	pthread_mutex_destroy(&t->mu);
}

struct writer {
	struct rb_load *l;
	int index;
	PGconn *conn;
	pthread_t thread;
	uint64_t start_us;
	int cursor; /* next candidate: id = index + 1 + cursor * writers */
	uint64_t changes, statements, errors, first_us, last_us, max_lag_us;
	struct bench_lat rtt;
};

/* Picks up to batch ids of this writer into ids; returns how many. */
static int writer_pick(struct writer *w, int *ids)
{
	struct rb_load *l = w->l;
	int share = (l->rows - w->index + l->writers - 1) / l->writers;
	int n = 0;
	for (int tries = 0; tries < share && n < l->batch; tries++) {
		int id = w->index + 1 + w->cursor * l->writers;
		w->cursor = (w->cursor + 1) % share;
		if (l->track != NULL && atomic_load(&l->track->sent_us[id]) != 0) {
			atomic_fetch_add(&l->track->skipped, 1);
			continue;
		}
		ids[n++] = id;
	}
	return n;
}

/* Sends one statement over ids; stamps and un-stamps the track. */
static void writer_send(struct writer *w, const int *ids, int n)
{
	struct rb_track *t = w->l->track;
	char arr[16 * 1024];
	size_t off = 0;
	arr[off++] = '{';
	for (int i = 0; i < n && off < sizeof(arr) - 16; i++) {
		off += (size_t)snprintf(arr + off, sizeof(arr) - off, "%s%d", i ? "," : "", ids[i]);
	}
	snprintf(arr + off, sizeof(arr) - off, "}");
	const char *params[] = {arr};
	uint64_t t0 = bench_now_us();
	for (int i = 0; t != NULL && i < n; i++) {
		atomic_store(&t->sent_us[ids[i]], t0);
	}
	if (t != NULL) {
		atomic_fetch_add(&t->in_flight, (uint_fast64_t)n);
	}
	PGresult *r = PQexecPrepared(w->conn, "upd", 1, params, NULL, NULL, 0);
	uint64_t t1 = bench_now_us();
	if (w->first_us == 0) {
		w->first_us = t0;
	}
	w->last_us = t1;
	w->statements++;
	bench_lat_add(&w->rtt, t1 - t0);
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		w->changes += strtoull(PQcmdTuples(r), NULL, 10);
	} else {
		if (w->errors++ == 0) {
			fprintf(stderr, "reflect_bench: writer %d: %s", w->index,
				PQerrorMessage(w->conn));
		}
		for (int i = 0; t != NULL && i < n; i++) {
			if (atomic_exchange(&t->sent_us[ids[i]], 0) != 0) {
				atomic_fetch_sub(&t->in_flight, 1);
			}
		}
	}
	PQclear(r);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct rb_load *l = w->l;
	int *ids = malloc((size_t)l->batch * sizeof(*ids));
	uint64_t end_us = w->start_us + (uint64_t)(l->seconds * 1e6);
	double period_us = l->rate > 0 ? 1e6 * l->writers * l->batch / l->rate : 0;
	load_sleep_until(w->start_us);
	for (uint64_t i = 0; ids != NULL && !rb_stop; i++) {
		uint64_t due = w->start_us +
			       (uint64_t)(period_us * ((double)i + (double)w->index / l->writers));
		if (due >= end_us || (period_us == 0 && bench_now_us() >= end_us)) {
			break;
		}
		if (period_us > 0) {
			load_sleep_until(due);
			uint64_t now = bench_now_us();
			if (now > due && now - due > w->max_lag_us) {
				w->max_lag_us = now - due;
			}
		}
		int n = writer_pick(w, ids);
		if (n > 0) {
			writer_send(w, ids, n);
		}
	}
	free(ids);
	return NULL;
}

int rb_load_run(struct rb_load *l)
{
	struct writer *ws = calloc((size_t)l->writers, sizeof(*ws));
	int rc = ws != NULL ? 0 : -1;
	for (int i = 0; i < l->writers && rc == 0; i++) {
		ws[i].l = l;
		ws[i].index = i;
		ws[i].conn = rb_pg_connect(l->dsn);
		if (ws[i].conn == NULL) {
			rc = -1;
			break;
		}
		PGresult *r = PQprepare(
		    ws[i].conn, "upd",
		    "UPDATE " RB_TABLE " SET n = n + 1 WHERE id = ANY($1::int[])", 1, NULL);
		rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
		if (rc != 0) {
			fprintf(stderr, "reflect_bench: prepare: %s", PQerrorMessage(ws[i].conn));
		}
		PQclear(r);
	}
	uint64_t start = bench_now_us() + 20000; /* every thread is up by then */
	int started = 0;
	for (int i = 0; i < l->writers && rc == 0; i++) {
		ws[i].start_us = start;
		rc = pthread_create(&ws[i].thread, NULL, writer_main, &ws[i]) == 0 ? 0 : -1;
		started += rc == 0;
	}
	uint64_t first = UINT64_MAX, last = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(ws[i].thread, NULL);
		l->changes += ws[i].changes;
		l->statements += ws[i].statements;
		l->errors += ws[i].errors;
		l->max_lag_us = ws[i].max_lag_us > l->max_lag_us ? ws[i].max_lag_us : l->max_lag_us;
		first = ws[i].first_us != 0 && ws[i].first_us < first ? ws[i].first_us : first;
		last = ws[i].last_us > last ? ws[i].last_us : last;
		bench_lat_merge(&l->rtt, &ws[i].rtt);
	}
	l->first_us = first != UINT64_MAX ? first : 0;
	l->last_us = last;
	l->elapsed_s = last > first ? (double)(last - first) / 1e6 : 0;
	for (int i = 0; ws != NULL && i < l->writers; i++) {
		PQfinish(ws[i].conn);
		bench_lat_free(&ws[i].rtt);
	}
	free(ws);
	return rc;
}

/* ---- NOTIFY probe ---- */

struct probe {
	PGconn *listen;
	_Atomic uint64_t *sent_us;
	uint64_t n;
	atomic_bool stop;
	atomic_uint_fast64_t received;
	struct bench_lat lat;
};

static void *probe_listen(void *arg)
{
	struct probe *p = arg;
	struct pollfd pfd = {.fd = PQsocket(p->listen), .events = POLLIN};
	while (!atomic_load(&p->stop)) {
		if (poll(&pfd, 1, 50) <= 0) {
			continue;
		}
		uint64_t now = bench_now_us();
		if (PQconsumeInput(p->listen) == 0) {
			fprintf(stderr, "reflect_bench: LISTEN: %s", PQerrorMessage(p->listen));
			break;
		}
		PGnotify *n;
		while ((n = PQnotifies(p->listen)) != NULL) {
			uint64_t seq = strtoull(n->extra, NULL, 10);
			uint64_t sent = seq < p->n ? atomic_exchange(&p->sent_us[seq], 0) : 0;
			if (sent != 0) {
				bench_lat_add(&p->lat, now - sent);
				atomic_fetch_add(&p->received, 1);
			}
			PQfreemem(n);
		}
	}
	return NULL;
}

int rb_notify_run(const char *dsn, double rate, double seconds, struct rb_notify *out)
{
	struct probe p = {.n = (uint64_t)(rate * seconds) + 1};
	atomic_init(&p.stop, false);
	atomic_init(&p.received, 0);
	p.sent_us = calloc(p.n, sizeof(*p.sent_us));
	PGconn *w = rb_pg_connect(dsn);
	p.listen = rb_pg_connect(dsn);
	pthread_t th;
	int rc = p.sent_us != NULL && w != NULL && p.listen != NULL &&
			 rb_pg_exec(p.listen, "LISTEN " RB_PROBE_CHANNEL) == 0 &&
			 pthread_create(&th, NULL, probe_listen, &p) == 0
		     ? 0
		     : -1;
	uint64_t start = bench_now_us() + 10000;
	for (uint64_t i = 0; rc == 0 && i + 1 < p.n && !rb_stop; i++) {
		load_sleep_until(start + (uint64_t)(1e6 * (double)i / rate));
		char sql[96];
		snprintf(sql, sizeof(sql), "SELECT pg_notify('" RB_PROBE_CHANNEL "', '%llu')",
			 (unsigned long long)i);
		atomic_store(&p.sent_us[i], bench_now_us());
		PGresult *r = PQexec(w, sql);
		out->sent += PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
	}
	if (rc == 0) {
		uint64_t deadline = bench_now_us() + 5000000;
		while (atomic_load(&p.received) < out->sent && bench_now_us() < deadline &&
		       !rb_stop) {
			load_sleep_until(bench_now_us() + 10000);
		}
		atomic_store(&p.stop, true);
		pthread_join(th, NULL);
	}
	out->received = atomic_load(&p.received);
	out->lat = p.lat;
	PQfinish(w);
	PQfinish(p.listen);
	free(p.sent_us);
	return rc;
}

/* ---- keyspace subscriber ---- */

struct rb_sub {
	redisContext *r;
	struct rb_track *t;
	pthread_t thread;
	atomic_bool stop;
	atomic_uint_fast64_t events;
};

static void sub_event(struct rb_sub *s, const redisReply *rep, uint64_t now)
{
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
	    rep->element[2]->type != REDIS_REPLY_STRING) {
		return;
	}
	atomic_fetch_add(&s->events, 1);
	const char *colon = strrchr(rep->element[2]->str, ':');
	long id = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
	struct rb_track *t = s->t;
	uint64_t sent = id >= 1 && id <= t->rows ? atomic_exchange(&t->sent_us[id], 0) : 0;
	if (sent == 0) {
		atomic_fetch_add(&t->unexpected, 1);
		return;
	}
	atomic_fetch_sub(&t->in_flight, 1);
	pthread_mutex_lock(&t->mu);
	bench_lat_add(&t->lat, now > sent ? now - sent : 0);
	pthread_mutex_unlock(&t->mu);
}

static void *sub_main(void *arg)
{
	struct rb_sub *s = arg;
	struct pollfd pfd = {.fd = s->r->fd, .events = POLLIN};
	while (!atomic_load(&s->stop)) {
		if (poll(&pfd, 1, 50) <= 0) {
			continue;
		}
		if (redisBufferRead(s->r) != REDIS_OK) {
			fprintf(stderr, "reflect_bench: keyspace subscriber: %s\n", s->r->errstr);
			break;
		}
		uint64_t now = bench_now_us();
		void *rep = NULL;
		while (redisGetReplyFromReader(s->r, &rep) == REDIS_OK && rep != NULL) {
			sub_event(s, rep, now);
			freeReplyObject(rep);
			rep = NULL;
		}
	}
	return NULL;
}

int rb_sub_start(int redis_port, struct rb_track *t, struct rb_sub **out)
{
	struct rb_sub *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return -1;
	}
	s->t = t;
	atomic_init(&s->stop, false);
	atomic_init(&s->events, 0);
	struct timeval tv = {5, 0};
	s->r = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
	redisReply *rep = NULL;
	if (s->r == NULL || s->r->err != 0 ||
	    (rep = redisCommand(s->r, "PSUBSCRIBE __keyspace@0__:" RB_KEY_PREFIX "*")) == NULL ||
	    rep->type != REDIS_REPLY_ARRAY || pthread_create(&s->thread, NULL, sub_main, s) != 0) {
		fprintf(stderr, "reflect_bench: keyspace subscriber: %s\n",
			s->r != NULL ? s->r->errstr : "no memory");
		freeReplyObject(rep);
		redisFree(s->r);
		free(s);
		return -1;
	}
	freeReplyObject(rep);
	*out = s;
	return 0;
}

uint64_t rb_sub_events(const struct rb_sub *s)
{
	return atomic_load(&s->events);
}

void rb_sub_stop(struct rb_sub *s)
{
	if (s == NULL) {
		return;
	}
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	redisFree(s->r);
	free(s);
}
