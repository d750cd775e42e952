/* The online checker of the chaos suite (see online_check.h). */
#include "online_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include <libguard/error.h>

#define OC_MAX_PRINTED 20

/* One snapshot: the rows whose version is below every version still in the outbox. */
static const char oc_confirm_sql[] =
    "WITH m AS (SELECT coalesce(min(version), 9223372036854775807) AS v FROM lifeguard.outbox)"
    " SELECT 'i:' || id, lg_version FROM public.items, m WHERE lg_version < m.v"
    " UNION ALL SELECT 's:' || extract(epoch FROM ts)::bigint, lg_version"
    " FROM public.slots, m WHERE lg_version < m.v";

int64_t oc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void oc_nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

void oc_init(struct oc *c, const char *dsn, size_t nrows, const char *const *idents)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->dsn, sizeof(c->dsn), "%s connect_timeout=3", dsn);
	c->nrows = nrows < OC_MAX_ROWS ? nrows : OC_MAX_ROWS;
	for (size_t i = 0; i < c->nrows; i++) {
		snprintf(c->idents[i], sizeof(c->idents[i]), "%s", idents[i]);
	}
	pthread_mutex_init(&c->mu, NULL);
	atomic_init(&c->stop, false);
	snprintf(c->phase, sizeof(c->phase), "start");
}

/* Applies one answer of the confirmer, unless the era changed while it ran. */
static void oc_apply(struct oc *c, PGresult *r, uint64_t era)
{
	pthread_mutex_lock(&c->mu);
	if (c->era == era) {
		c->st.confirms++;
		for (int i = 0; i < PQntuples(r); i++) {
			const char *id = PQgetvalue(r, i, 0);
			int64_t v = strtoll(PQgetvalue(r, i, 1), NULL, 10);
			for (size_t k = 0; k < c->nrows; k++) {
				if (strcmp(c->idents[k], id) == 0 && v > c->floors[k]) {
					c->floors[k] = v;
					c->max_floor = v > c->max_floor ? v : c->max_floor;
				}
			}
		}
	}
	pthread_mutex_unlock(&c->mu);
}

static void *oc_confirmer(void *arg)
{
	struct oc *c = arg;
	PGconn *db = NULL;
	while (!atomic_load(&c->stop)) {
		if (db == NULL || PQstatus(db) != CONNECTION_OK) {
			PQfinish(db);
			db = PQconnectdb(c->dsn);
			if (PQstatus(db) != CONNECTION_OK) {
				oc_nap_ms(100);
				continue;
			}
		}
		pthread_mutex_lock(&c->mu);
		uint64_t era = c->era;
		pthread_mutex_unlock(&c->mu);
		PGresult *r = PQexec(db, oc_confirm_sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			oc_apply(c, r, era);
		}
		PQclear(r);
		oc_nap_ms(20);
	}
	PQfinish(db);
	return NULL;
}

bool oc_start(struct oc *c)
{
	atomic_store(&c->stop, false);
	c->running = pthread_create(&c->thread, NULL, oc_confirmer, c) == 0;
	return c->running;
}

void oc_stop(struct oc *c)
{
	atomic_store(&c->stop, true);
	if (c->running) {
		pthread_join(c->thread, NULL);
		c->running = false;
	}
}

void oc_set_phase(struct oc *c, const char *phase)
{
	pthread_mutex_lock(&c->mu);
	snprintf(c->phase, sizeof(c->phase), "%s", phase);
	pthread_mutex_unlock(&c->mu);
}

void oc_window_open(struct oc *c)
{
	pthread_mutex_lock(&c->mu);
	if (c->nwindows < OC_MAX_WINDOWS) {
		c->windows[c->nwindows++] = (struct oc_window){oc_now_ms(), INT64_MAX};
	}
	pthread_mutex_unlock(&c->mu);
}

void oc_window_close(struct oc *c)
{
	pthread_mutex_lock(&c->mu);
	if (c->nwindows > 0 && c->windows[c->nwindows - 1].end_ms == INT64_MAX) {
		c->windows[c->nwindows - 1].end_ms = oc_now_ms();
	}
	pthread_mutex_unlock(&c->mu);
}

void oc_reset_floors(struct oc *c)
{
	pthread_mutex_lock(&c->mu);
	c->era++;
	memset(c->floors, 0, sizeof(c->floors));
	c->max_floor = 0;
	pthread_mutex_unlock(&c->mu);
}

int64_t oc_max_floor(struct oc *c)
{
	pthread_mutex_lock(&c->mu);
	int64_t m = c->max_floor;
	pthread_mutex_unlock(&c->mu);
	return m;
}

void oc_read_begin(struct oc *c, size_t row, struct oc_read *rd)
{
	pthread_mutex_lock(&c->mu);
	rd->row = row;
	rd->floor = c->floors[row];
	rd->era = c->era;
	pthread_mutex_unlock(&c->mu);
	rd->start_ms = oc_now_ms(); /* after the floor was taken: the floor predates the read */
}

/* Whether [start, end] meets a window (c->mu held). */
static bool oc_in_window(const struct oc *c, int64_t start, int64_t end)
{
	for (size_t i = 0; i < c->nwindows; i++) {
		if (start <= c->windows[i].end_ms && end >= c->windows[i].start_ms) {
			return true;
		}
	}
	return false;
}

void oc_read_end(struct oc *c, const struct oc_read *rd, int rc, int64_t version, bool from_cache,
		 const char *json, const char *spelling)
{
	int64_t end = oc_now_ms();
	const char *why = NULL;
	if (rc == LG_ENOTFOUND) {
		why = "row not found (the writers never delete)";
	} else if (rc == 0 && version < rd->floor) {
		why = "older than a change the reflector had processed before the read";
	}
	pthread_mutex_lock(&c->mu);
	if (rc != 0 && rc != LG_ENOTFOUND) {
		c->st.errors++;
	} else if (rd->era != c->era || oc_in_window(c, rd->start_ms, end)) {
		c->st.exempt++;
		c->st.exempt_stale += why != NULL;
	} else {
		c->st.judged++;
		c->st.above_floor += rd->floor > 0;
		if (why != NULL && c->st.violations++ < OC_MAX_PRINTED) {
			fprintf(stderr,
				"online check: VIOLATION [%s] row %s (read as '%s'): %s\n"
				"  read: rc=%d version=%" PRId64 " from_cache=%d value=%s\n"
				"  floor (processed before the read started): %" PRId64 "\n",
				c->phase, c->idents[rd->row], spelling, why, rc, version,
				(int)from_cache, json != NULL ? json : "(none)", rd->floor);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

void oc_stats(struct oc *c, struct oc_stats *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->st;
	pthread_mutex_unlock(&c->mu);
}
