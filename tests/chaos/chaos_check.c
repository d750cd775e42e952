/* End-state checker of the chaos tests (see chaos_check.h). */
#include "chaos_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "chaos_load.h"

#define CHECK_MAX_PRINTED 20

static int64_t check_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool chaos_wait_drained(PGconn **db, const char *dsn, int timeout_ms)
{
	int64_t deadline = check_now_ms() + timeout_ms;
	do {
		if (chaos_pg_ensure(db, dsn)) {
			PGresult *r = PQexec(*db, "SELECT count(*) FROM lifeguard.outbox");
			bool empty = PQresultStatus(r) == PGRES_TUPLES_OK &&
				     strcmp(PQgetvalue(r, 0, 0), "0") == 0;
			PQclear(r);
			if (empty) {
				return true;
			}
		}
		struct timespec ts = {0, 50 * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		}
	} while (check_now_ms() < deadline);
	return false;
}

/* Every row as {"<id>": "<expected value text>"}; NULL on failure. */
static json_t *check_load_rows(PGconn *db)
{
	PGresult *r = PQexec(db, "SELECT id::text, jsonb_build_object('v', lg_version, 'row',"
				 " to_jsonb(t))::text FROM public.items t");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "check: reading public.items: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	json_t *rows = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		json_object_set_new(rows, PQgetvalue(r, i, 0), json_string(PQgetvalue(r, i, 1)));
	}
	PQclear(r);
	return rows;
}

static void check_violation(struct chaos_check *out, const char *key, const char *value,
			    const char *row, const char *why)
{
	if (out->violations++ < CHECK_MAX_PRINTED) {
		fprintf(stderr, "check: VIOLATION %s: %s\n  redis:    %s\n  postgres: %s\n", key,
			why, value != NULL ? value : "(absent)", row != NULL ? row : "(no row)");
	}
}

/* Judges one key against its row (row NULL: the row does not exist). */
static void check_key(struct chaos_check *out, const char *key, const char *value, const char *row)
{
	out->keys++;
	json_t *got = json_loads(value, 0, NULL);
	if (got == NULL || !json_is_object(got)) {
		check_violation(out, key, value, row, "not a JSON object");
		json_decref(got);
		return;
	}
	if (json_is_true(json_object_get(got, "deleted"))) {
		if (row == NULL) {
			out->tombstones++;
		} else {
			check_violation(out, key, value, row, "tombstone of an existing row");
		}
		json_decref(got);
		return;
	}
	json_t *want = row != NULL ? json_loads(row, 0, NULL) : NULL;
	if (row == NULL) {
		check_violation(out, key, value, row, "row value of a deleted row");
	} else if (want == NULL || !json_equal(got, want)) {
		check_violation(out, key, value, row, "row value differs from the row");
	} else {
		out->rows++;
	}
	json_decref(want);
	json_decref(got);
}

/* MGETs keys[0..n) and judges each. */
static bool check_batch(redisContext *rc, json_t *rows, const redisReply *keys,
			struct chaos_check *out)
{
	size_t n = keys->elements;
	if (n == 0) {
		return true;
	}
	const char **argv = calloc(n + 1, sizeof(*argv));
	size_t *lens = calloc(n + 1, sizeof(*lens));
	if (argv == NULL || lens == NULL) {
		free(argv);
		free(lens);
		return false;
	}
	argv[0] = "MGET";
	lens[0] = 4;
	for (size_t i = 0; i < n; i++) {
		argv[i + 1] = keys->element[i]->str;
		lens[i + 1] = keys->element[i]->len;
	}
	redisReply *vals = redisCommandArgv(rc, (int)n + 1, argv, lens);
	free(argv);
	free(lens);
	if (vals == NULL || vals->type != REDIS_REPLY_ARRAY || vals->elements != n) {
		fprintf(stderr, "check: MGET failed: %s\n", rc->errstr);
		freeReplyObject(vals);
		return false;
	}
	size_t plen = strlen(CHAOS_ROW_PREFIX);
	for (size_t i = 0; i < n; i++) {
		const char *key = keys->element[i]->str;
		const redisReply *v = vals->element[i];
		if (v->type != REDIS_REPLY_STRING) {
			continue; /* expired between SCAN and MGET */
		}
		const char *id = strlen(key) > plen ? key + plen : "";
		check_key(out, key, v->str, json_string_value(json_object_get(rows, id)));
	}
	freeReplyObject(vals);
	return true;
}

bool chaos_check_items(PGconn *db, redisContext *rc, struct chaos_check *out)
{
	memset(out, 0, sizeof(*out));
	json_t *rows = check_load_rows(db);
	if (rows == NULL) {
		return false;
	}
	char cursor[32] = "0";
	bool ok = true;
	do {
		redisReply *r =
		    redisCommand(rc, "SCAN %s MATCH %s* COUNT 1000", cursor, CHAOS_ROW_PREFIX);
		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			fprintf(stderr, "check: SCAN failed: %s\n", rc->errstr);
			freeReplyObject(r);
			ok = false;
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		ok = check_batch(rc, rows, r->element[1], out);
		freeReplyObject(r);
	} while (ok && strcmp(cursor, "0") != 0);
	json_decref(rows);
	if (out->violations > CHECK_MAX_PRINTED) {
		fprintf(stderr, "check: ... %zu violations in all\n", out->violations);
	}
	return ok;
}
