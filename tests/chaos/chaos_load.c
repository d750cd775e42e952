/* Writers and filler of the chaos tests (see chaos_load.h). */
#include "chaos_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include <libguard/cache_contract.h>

/* A fill older than this from its read is dropped (far below the 30 s fence TTL). */
#define CHAOS_FILL_DEADLINE_MS   1000
#define CHAOS_FILL_TTL_MS        "600000"
#define CHAOS_FILL_DEADLINE_TEXT "1000" /* CHAOS_FILL_DEADLINE_MS */

struct chaos_thread {
	struct chaos_load *l;
	size_t index; /* writers first, then the fillers */
	unsigned seed;
};

static struct chaos_thread chaos_threads[CHAOS_THREADS];

static int64_t chaos_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void chaos_nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

bool chaos_pg_ensure(PGconn **conn, const char *dsn)
{
	if (*conn != NULL && PQstatus(*conn) == CONNECTION_OK) {
		return true;
	}
	if (*conn != NULL) {
		PQreset(*conn);
	} else {
		*conn = PQconnectdb(dsn);
	}
	return PQstatus(*conn) == CONNECTION_OK;
}

/* Runs one command; true when it succeeded. */
static bool chaos_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* One random write on the writer's own ids. */
static bool chaos_write_one(struct chaos_thread *t, PGconn *conn)
{
	int per = t->l->n_ids / CHAOS_WRITERS;
	int id = 1 + (int)t->index + CHAOS_WRITERS * (rand_r(&t->seed) % per);
	char ids[16];
	snprintf(ids, sizeof(ids), "%d", id);
	const char *params[] = {ids};
	int dice = rand_r(&t->seed) % 100;
	if (dice < 55) {
		return chaos_exec(conn,
				  "UPDATE public.items SET n = n + 1, note = md5(random()::text)"
				  " WHERE id = $1",
				  1, params);
	}
	if (dice < 75) {
		return chaos_exec(conn, "DELETE FROM public.items WHERE id = $1", 1, params);
	}
	if (dice < 93) {
		return chaos_exec(
		    conn,
		    "INSERT INTO public.items (id, n, note) VALUES ($1, 0, 'inserted')"
		    " ON CONFLICT (id) DO UPDATE SET n = items.n + 1000, note = 'upsert'",
		    1, params);
	}
	/* Delete and re-insert in one transaction: D and I of one key in the outbox. */
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "BEGIN; DELETE FROM public.items WHERE id = %d;"
		 " INSERT INTO public.items (id, n, note) VALUES (%d, 7, 'reborn'); COMMIT",
		 id, id);
	PGresult *r = PQexec(conn, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok && PQstatus(conn) == CONNECTION_OK) {
		PQclear(PQexec(conn, "ROLLBACK"));
	}
	return ok;
}

static void *chaos_writer(void *arg)
{
	struct chaos_thread *t = arg;
	struct chaos_load_stats *st = &t->l->stats[t->index];
	PGconn *conn = NULL;
	while (!atomic_load(&t->l->stop)) {
		if (!chaos_pg_ensure(&conn, t->l->dsn)) {
			st->write_errors++;
			chaos_nap_ms(100);
			continue;
		}
		if (chaos_write_one(t, conn)) {
			st->writes++;
		} else {
			st->write_errors++;
		}
		chaos_nap_ms(1);
	}
	PQfinish(conn);
	return NULL;
}

static redisContext *chaos_redis_connect(int port)
{
	struct timeval tv = {2, 0};
	redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (rc != NULL && rc->err == 0) {
		redisSetTimeout(rc, tv);
		return rc;
	}
	redisFree(rc);
	return NULL;
}

/* Reads row id: *version and *value (Owned) when it exists. false on failure. */
static bool chaos_read_row(PGconn *conn, const char *id, bool *found, char **version, char **value)
{
	const char *params[] = {id};
	PGresult *r = PQexecParams(conn,
				   "SELECT lg_version::text, jsonb_build_object('v', lg_version,"
				   " 'row', to_jsonb(t))::text FROM public.items t WHERE id = $1",
				   1, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	*found = ok && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);
	if (*found) {
		*version = strdup(PQgetvalue(r, 0, 0));
		*value = strdup(PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return ok;
}

/*
 * One read-through: GET, then on a miss (or one hit in four) read and fill. Returns false
 * when Redis failed (the caller reconnects).
 */
static bool chaos_fill_one(struct chaos_thread *t, PGconn *conn, redisContext *rc)
{
	struct chaos_load_stats *st = &t->l->stats[t->index];
	char id[16];
	char key[96];
	char fence[96];
	snprintf(id, sizeof(id), "%d", 1 + rand_r(&t->seed) % t->l->n_ids);
	snprintf(key, sizeof(key), "%s%s", CHAOS_ROW_PREFIX, id);
	snprintf(fence, sizeof(fence), "%s%s", CHAOS_FENCE_PREFIX, id);
	if (rand_r(&t->seed) % 8 == 0) {
		/* An eviction (or expiry) of a cached row: the next change of the key fences it,
		 * the next read misses and fills. Fences are never evicted (docs/data-contract.md).
		 */
		redisReply *del = redisCommand(rc, "DEL %s", key);
		st->evictions += del != NULL;
		freeReplyObject(del);
		return del != NULL;
	}
	redisReply *got = redisCommand(rc, "GET %s", key);
	if (got == NULL) {
		st->fill_errors++;
		return false;
	}
	bool hit = got->type == REDIS_REPLY_STRING;
	freeReplyObject(got);
	if (hit && rand_r(&t->seed) % 4 != 0) {
		return true;
	}
	/* Redis' clock before the read, as lg_cache's LG_CACHE_READ stamps it: LG_CACHE_FILL
	 * enforces the fill deadline against it. */
	redisReply *clock = redisCommand(rc, "TIME");
	if (clock == NULL || clock->type != REDIS_REPLY_ARRAY || clock->elements != 2) {
		freeReplyObject(clock);
		st->fill_errors++;
		return clock != NULL;
	}
	char read_ms[32];
	snprintf(read_ms, sizeof(read_ms), "%lld",
		 atoll(clock->element[0]->str) * 1000 + atoll(clock->element[1]->str) / 1000);
	freeReplyObject(clock);
	int64_t read_at = chaos_now_ms();
	bool found = false;
	char *version = NULL;
	char *value = NULL;
	if (!chaos_read_row(conn, id, &found, &version, &value)) {
		st->fill_errors++;
		return true;
	}
	if (t->index == CHAOS_THREADS - 1) {
		chaos_nap_ms(rand_r(&t->seed) % 200); /* the slow reader */
	}
	if (!found || chaos_now_ms() - read_at > CHAOS_FILL_DEADLINE_MS) {
		free(version);
		free(value);
		return true;
	}
	const char *argv[] = {"EVAL",
			      lg_cache_script_source(LG_CACHE_FILL),
			      "3",
			      key,
			      fence,
			      CHAOS_TABLE_FENCE,
			      version,
			      value,
			      CHAOS_FILL_TTL_MS,
			      read_ms,
			      CHAOS_FILL_DEADLINE_TEXT};
	redisReply *r = redisCommandArgv(rc, 11, argv, NULL);
	free(version);
	free(value);
	if (r == NULL) {
		st->fill_errors++;
		return false;
	}
	if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) {
		st->fills++;
		st->filled += strcmp(r->str, "filled") == 0;
		st->fenced += strcmp(r->str, "fenced") == 0;
		st->kept += strcmp(r->str, "kept") == 0;
		st->late += strcmp(r->str, "late") == 0;
	} else {
		st->fill_errors++; /* LOADING and the like while Redis restarts */
	}
	freeReplyObject(r);
	return true;
}

static void *chaos_filler(void *arg)
{
	struct chaos_thread *t = arg;
	struct chaos_load_stats *st = &t->l->stats[t->index];
	PGconn *conn = NULL;
	redisContext *rc = NULL;
	while (!atomic_load(&t->l->stop)) {
		if (rc == NULL && (rc = chaos_redis_connect(t->l->redis_port)) == NULL) {
			st->fill_errors++;
			chaos_nap_ms(100);
			continue;
		}
		if (!chaos_pg_ensure(&conn, t->l->dsn)) {
			st->fill_errors++;
			chaos_nap_ms(100);
			continue;
		}
		if (!chaos_fill_one(t, conn, rc)) {
			redisFree(rc);
			rc = NULL;
		}
		chaos_nap_ms(1);
	}
	redisFree(rc);
	PQfinish(conn);
	return NULL;
}

bool chaos_load_start(struct chaos_load *l, const char *dsn, int redis_port, int n_ids)
{
	memset(l, 0, sizeof(*l));
	/* A server that stopped answering must not hang a thread forever. */
	snprintf(l->dsn, sizeof(l->dsn), "%s connect_timeout=5", dsn);
	l->redis_port = redis_port;
	l->n_ids = n_ids;
	atomic_init(&l->stop, false);
	for (size_t i = 0; i < CHAOS_THREADS; i++) {
		chaos_threads[i] = (struct chaos_thread){l, i, (unsigned)(i + 1) * 7919u};
		void *(*fn)(void *) = i < CHAOS_WRITERS ? chaos_writer : chaos_filler;
		if (pthread_create(&l->threads[i], NULL, fn, &chaos_threads[i]) != 0) {
			chaos_load_stop(l, NULL);
			return false;
		}
		l->started++;
	}
	return true;
}

void chaos_load_stop(struct chaos_load *l, struct chaos_load_stats *total)
{
	atomic_store(&l->stop, true);
	for (size_t i = 0; i < l->started; i++) {
		pthread_join(l->threads[i], NULL);
	}
	l->started = 0;
	if (total == NULL) {
		return;
	}
	memset(total, 0, sizeof(*total));
	for (size_t i = 0; i < CHAOS_THREADS; i++) {
		const struct chaos_load_stats *s = &l->stats[i];
		total->writes += s->writes;
		total->write_errors += s->write_errors;
		total->fills += s->fills;
		total->filled += s->filled;
		total->fenced += s->fenced;
		total->kept += s->kept;
		total->late += s->late;
		total->fill_errors += s->fill_errors;
		total->evictions += s->evictions;
	}
}
