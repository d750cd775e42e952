/*
 * The checks of `lifeguard doctor`. Each prints one line through doc_line; none stops the
 * others (a down primary still lets Redis and the reflector be checked).
 *
 * Levels, and why:
 *   - Redis maxmemory-policy allkeys-*: fail. Under memory pressure Redis may evict a fence
 *     while a stale fill is in flight, and the fill then lands: the zero-stale guarantee no
 *     longer holds. volatile-*: warn (fences carry a TTL, so they are eviction candidates too,
 *     but only keys with a TTL go), fail once Redis has evicted keys. noeviction: ok.
 *   - Redis persistence: neither AOF nor RDB snapshots: warn (a restart empties every fence;
 *     the reflector notices the new run id and invalidates, but fills racing that window are
 *     not fenced).
 *   - Fence TTL below replica lag bound + fill deadline: fail (a fill read from a lagging
 *     replica can outlive the fence that should stop it). No lag bound configured: warn.
 *   - A reflected table missing one of its four capture triggers, or with one disabled: fail.
 *   - Outbox backlog above the warn / fail thresholds (rows or age of the oldest row).
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"
#include "doctor.h"
#include "http_client.h"

/* conninfo with connect_timeout added (libpq takes the last value of a repeated keyword). */
static PGconn *pg_open(const char *conninfo, int64_t timeout_ms, char *why, size_t whylen)
{
	char secs[32];
	snprintf(secs, sizeof(secs), "%lld", (long long)((timeout_ms + 999) / 1000));
	const char *keys[] = {"dbname", "connect_timeout", NULL};
	const char *vals[] = {conninfo, secs, NULL};
	/* expand_dbname: the first value is a whole conninfo or URI. */
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
		const char *msg = pg != NULL ? PQerrorMessage(pg) : "out of memory";
		snprintf(why, whylen, "%.*s", (int)strcspn(msg, "\n"), msg);
		PQfinish(pg);
		return NULL;
	}
	PQclear(PQexec(pg, "SET client_min_messages = warning"));
	return pg;
}

/* The first value of sql, or NULL (why set). Borrowed from *res: PQclear it. */
static const char *pg_value(PGconn *pg, const char *sql, PGresult **res, char *why, size_t whylen)
{
	*res = PQexec(pg, sql);
	if (PQresultStatus(*res) != PGRES_TUPLES_OK || PQntuples(*res) < 1) {
		const char *msg = PQerrorMessage(pg);
		snprintf(why, whylen, "%.*s", (int)strcspn(msg, "\n"), msg);
		return NULL;
	}
	return PQgetvalue(*res, 0, 0);
}

static const char *host_of(PGconn *pg, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%s", PQhost(pg), PQport(pg));
	return buf;
}

/* The capture triggers lifeguard-reflector reflect installs on a table. */
#define CAPTURE_TRIGGERS                                                                           \
	"'lg_stamp_version', 'lg_capture_row', 'lg_capture_delete', 'lg_capture_truncate'"

/* A fail line for check carrying the first line of pg's last error. */
static void fail_pg(struct doc_report *r, const char *check, PGconn *pg)
{
	const char *msg = PQerrorMessage(pg);
	doc_line(r, DOC_FAIL, check, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* One reflected table (oid as text): lg_version and every capture trigger, enabled. */
static void check_table(PGconn *pg, const char *check, const char *oid, struct doc_report *r)
{
	const char *params[1] = {oid};
	PGresult *t = PQexecParams(
	    pg,
	    "SELECT n, EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::oid AND tgname = n AND"
	    " tgenabled <> 'D'), EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::oid AND"
	    " attname = 'lg_version' AND NOT attisdropped)"
	    " FROM unnest(ARRAY[" CAPTURE_TRIGGERS "]) AS n",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(t) != PGRES_TUPLES_OK) {
		fail_pg(r, check, pg);
		PQclear(t);
		return;
	}
	char missing[256] = "";
	for (int k = 0; k < PQntuples(t); k++) {
		if (PQgetvalue(t, k, 1)[0] != 't') {
			size_t l = strlen(missing);
			snprintf(missing + l, sizeof(missing) - l, "%s%s", l ? ", " : "",
				 PQgetvalue(t, k, 0));
		}
	}
	bool version = PQntuples(t) > 0 && PQgetvalue(t, 0, 2)[0] == 't';
	PQclear(t);
	if (missing[0] == '\0' && version) {
		doc_line(r, DOC_OK, check, "lg_version and its 4 triggers present");
	} else {
		doc_line(r, DOC_FAIL, check, "%s%s%s%s (re-run lifeguard-reflector reflect)",
			 missing[0] ? "missing or disabled triggers: " : "", missing,
			 missing[0] && !version ? "; " : "", version ? "" : "no lg_version column");
	}
}

/* The tables the file requires, else every table with a capture trigger. */
static void check_tables(const struct doc_config *c, PGconn *pg, struct doc_report *r)
{
	char *list = cli_text_array(c->tables, c->ntables);
	const char *params[1] = {list};
	PGresult *res = PQexecParams(pg,
				     "SELECT w.name, to_regclass(w.name)::oid"
				     " FROM unnest($1::text[]) AS w(name)"
				     " UNION SELECT DISTINCT tgrelid::regclass::text, tgrelid"
				     " FROM pg_trigger WHERE cardinality($1::text[]) = 0"
				     " AND tgname IN (" CAPTURE_TRIGGERS ") ORDER BY 1",
				     1, NULL, params, NULL, NULL, 0);
	free(list);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fail_pg(r, "reflected tables", pg);
	} else if (PQntuples(res) == 0) {
		doc_line(r, DOC_WARN, "reflected tables",
			 "no table has the capture triggers (lifeguard-reflector reflect TABLE)");
	}
	for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
		char check[300];
		snprintf(check, sizeof(check), "reflected table %s", PQgetvalue(res, i, 0));
		if (PQgetisnull(res, i, 1)) {
			doc_line(r, DOC_FAIL, check, "the table does not exist");
		} else {
			check_table(pg, check, PQgetvalue(res, i, 1), r);
		}
	}
	PQclear(res);
}

static void check_outbox(const struct doc_config *c, PGconn *pg, struct doc_report *r)
{
	PGresult *res = PQexec(pg, "SELECT to_regclass('lifeguard.outbox') IS NOT NULL");
	bool exists = PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!exists) {
		doc_line(r, DOC_FAIL, "outbox",
			 "lifeguard.outbox does not exist (lifeguard-reflector setup)");
		return;
	}
	res = PQexec(pg, "SELECT count(*), COALESCE(EXTRACT(epoch FROM clock_timestamp() -"
			 " min(created_at))::bigint, 0) FROM lifeguard.outbox");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fail_pg(r, "outbox", pg);
		PQclear(res);
		return;
	}
	long long rows = atoll(PQgetvalue(res, 0, 0)), age = atoll(PQgetvalue(res, 0, 1));
	PQclear(res);
	enum doc_level lv = DOC_OK;
	if (rows > c->outbox_fail_rows || age > c->outbox_fail_age_s) {
		lv = DOC_FAIL;
	} else if (rows > c->outbox_warn_rows || age > c->outbox_warn_age_s) {
		lv = DOC_WARN;
	}
	doc_line(r, lv, "outbox",
		 "%lld pending row(s), oldest %lld s (warn above %lld rows or %lld s, fail above "
		 "%lld rows or %lld s)",
		 rows, age, (long long)c->outbox_warn_rows, (long long)c->outbox_warn_age_s,
		 (long long)c->outbox_fail_rows, (long long)c->outbox_fail_age_s);
}

void doc_check_postgres(const struct doc_config *c, struct doc_report *r)
{
	char why[512], host[300];
	PGresult *res;
	PGconn *pg = pg_open(c->primary, c->timeout_ms, why, sizeof(why));
	if (pg == NULL) {
		doc_line(r, DOC_FAIL, "primary", "cannot connect: %s", why);
		doc_line(r, DOC_FAIL, "reflected tables", "not checked: no primary");
		doc_line(r, DOC_FAIL, "outbox", "not checked: no primary");
	} else {
		const char *rec =
		    pg_value(pg, "SELECT pg_is_in_recovery()", &res, why, sizeof(why));
		if (rec == NULL || rec[0] == 't') {
			doc_line(r, DOC_FAIL, "primary", "%s: %s", host_of(pg, host, sizeof(host)),
				 rec == NULL ? why : "is a standby (in recovery), not the primary");
		} else {
			const char *version = PQparameterStatus(pg, "server_version");
			doc_line(r, DOC_OK, "primary", "%s: PostgreSQL %s, accepting writes",
				 host_of(pg, host, sizeof(host)), version != NULL ? version : "?");
		}
		PQclear(res);
	}
	char primary_lsn[64] = "";
	if (pg != NULL) {
		const char *lsn =
		    pg_value(pg, "SELECT pg_current_wal_lsn()::text", &res, why, sizeof(why));
		snprintf(primary_lsn, sizeof(primary_lsn), "%s", lsn != NULL ? lsn : "");
		PQclear(res);
	}
	for (size_t i = 0; i < c->nreplicas; i++) {
		char check[32];
		snprintf(check, sizeof(check), "replica %zu", i + 1);
		PGconn *rp = pg_open(c->replicas[i], c->timeout_ms, why, sizeof(why));
		if (rp == NULL) {
			doc_line(r, DOC_FAIL, check, "cannot connect: %s", why);
			continue;
		}
		host_of(rp, host, sizeof(host));
		const char *lsn[1] = {primary_lsn};
		res = PQexecParams(rp,
				   "SELECT pg_is_in_recovery(), COALESCE(pg_wal_lsn_diff("
				   "NULLIF($1, '')::pg_lsn, pg_last_wal_replay_lsn()), 0)::bigint,"
				   " COALESCE((EXTRACT(epoch FROM clock_timestamp() -"
				   " pg_last_xact_replay_timestamp()) * 1000)::bigint, 0)",
				   1, NULL, lsn, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			const char *msg = PQerrorMessage(rp);
			doc_line(r, DOC_FAIL, check, "%s: %.*s", host, (int)strcspn(msg, "\n"),
				 msg);
		} else if (PQgetvalue(res, 0, 0)[0] != 't') {
			doc_line(r, DOC_FAIL, check, "%s: not in recovery (not a standby)", host);
		} else {
			/* The replay timestamp ages while the primary is idle: it is a lag only
			 * when WAL is still to be replayed. */
			long long behind = atoll(PQgetvalue(res, 0, 1));
			long long lag_ms = behind > 0 ? atoll(PQgetvalue(res, 0, 2)) : 0;
			bool over = c->lag_bound_ms >= 0 && lag_ms > c->lag_bound_ms;
			doc_line(r, over ? DOC_WARN : DOC_OK, check,
				 "%s: streaming standby, %lld byte(s) and %lld ms behind the "
				 "primary%s",
				 host, behind > 0 ? behind : 0, lag_ms,
				 over ? " (above replica_lag_bound_ms: reads go to the primary)"
				      : "");
		}
		PQclear(res);
		PQfinish(rp);
	}
	if (pg != NULL) {
		check_tables(c, pg, r);
		check_outbox(c, pg, r);
		PQfinish(pg);
	}
}

/* The value of field name in an INFO reply's text ("name:value\r\n"), copied into out. */
static bool info_field(const char *info, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	for (const char *p = info; p != NULL && *p != '\0';
	     p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, name, n) == 0 && p[n] == ':') {
			snprintf(out, size, "%.*s", (int)strcspn(p + n + 1, "\r\n"), p + n + 1);
			return true;
		}
	}
	return false;
}

void doc_check_redis(const struct doc_config *c, struct doc_report *r)
{
	char where[300];
	snprintf(where, sizeof(where), "%s:%d", c->redis_host, c->redis_port);
	struct timeval tv = {.tv_sec = c->timeout_ms / 1000,
			     .tv_usec = (c->timeout_ms % 1000) * 1000};
	redisContext *rc = redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
	if (rc == NULL || rc->err != 0) {
		doc_line(r, DOC_FAIL, "redis", "%s: cannot connect: %s", where,
			 rc != NULL ? rc->errstr : "out of memory");
		doc_line(r, DOC_FAIL, "redis eviction policy", "not checked: no connection");
		doc_line(r, DOC_FAIL, "redis persistence", "not checked: no connection");
		redisFree(rc);
		return;
	}
	redisSetTimeout(rc, tv);
	redisReply *rep = NULL;
	if (c->redis_password != NULL) {
		rep = redisCommand(rc, "AUTH %s", c->redis_password);
	} else {
		rep = redisCommand(rc, "PING");
	}
	bool ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
	if (!ok) {
		doc_line(r, DOC_FAIL, "redis", "%s: %s", where,
			 rep != NULL ? rep->str : rc->errstr);
	}
	freeReplyObject(rep);
	rep = ok ? redisCommand(rc, "INFO") : NULL;
	if (ok && (rep == NULL || rep->type != REDIS_REPLY_STRING)) {
		doc_line(r, DOC_FAIL, "redis", "%s: INFO failed: %s", where,
			 rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep->str : rc->errstr);
		ok = false;
	}
	if (!ok) {
		doc_line(r, DOC_FAIL, "redis eviction policy", "not checked");
		doc_line(r, DOC_FAIL, "redis persistence", "not checked");
		freeReplyObject(rep);
		redisFree(rc);
		return;
	}
	char version[64] = "?", policy[64] = "?", maxmem[64] = "0", aof[16] = "0", saves[64] = "";
	info_field(rep->str, "redis_version", version, sizeof(version));
	info_field(rep->str, "maxmemory_policy", policy, sizeof(policy));
	info_field(rep->str, "maxmemory", maxmem, sizeof(maxmem));
	info_field(rep->str, "aof_enabled", aof, sizeof(aof));
	char evicted[32] = "0";
	info_field(rep->str, "evicted_keys", evicted, sizeof(evicted));
	freeReplyObject(rep);
	doc_line(r, DOC_OK, "redis", "%s: Redis %s", where, version);
	/* evicted_keys counts since the server started: evictions that already happened. */
	long long nevicted = atoll(evicted);
	if (strncmp(policy, "allkeys-", 8) == 0) {
		doc_line(
		    r, DOC_FAIL, "redis eviction policy",
		    "maxmemory-policy %s (maxmemory %s, %lld key(s) evicted) may evict fences: "
		    "stale fills can then land; use noeviction",
		    policy, maxmem, nevicted);
	} else if (strncmp(policy, "volatile-", 9) == 0) {
		doc_line(r, nevicted > 0 ? DOC_FAIL : DOC_WARN, "redis eviction policy",
			 "maxmemory-policy %s may evict fences (they carry a TTL) under memory "
			 "pressure, %lld key(s) evicted so far; noeviction keeps them",
			 policy, nevicted);
	} else {
		doc_line(r, DOC_OK, "redis eviction policy", "maxmemory-policy %s", policy);
	}
	/* RDB snapshots: CONFIG GET save ("" = none); CONFIG may be renamed away. */
	rep = redisCommand(rc, "CONFIG GET save");
	bool have_save = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2;
	if (have_save) {
		snprintf(saves, sizeof(saves), "%s", rep->element[1]->str);
	}
	freeReplyObject(rep);
	if (strcmp(aof, "1") == 0) {
		doc_line(r, DOC_OK, "redis persistence", "AOF on%s%s",
			 saves[0] ? ", RDB save " : "", saves);
	} else if (saves[0] != '\0') {
		doc_line(r, DOC_OK, "redis persistence", "RDB save %s (AOF off)", saves);
	} else {
		doc_line(r, DOC_WARN, "redis persistence",
			 "%s: a restart empties Redis, fences included (the reflector "
			 "invalidates on the new run id)",
			 have_save ? "no AOF, no RDB snapshots"
				   : "no AOF (CONFIG GET save refused)");
	}
	redisFree(rc);
}

void doc_check_reflector(const struct doc_config *c, struct doc_report *r)
{
	if (c->nnodes == 0) {
		doc_line(r, DOC_WARN, "reflector",
			 "no node addresses (peers' http_address) configured");
		return;
	}
	int leaders = 0, reachable = 0;
	for (size_t i = 0; i < c->nnodes; i++) {
		char check[300], err[256];
		snprintf(check, sizeof(check), "reflector %s", c->nodes[i]);
		struct rf_http_response resp = {0};
		if (rf_http_fetch(c->nodes[i], "GET", "/status", NULL, NULL, 0, (int)c->timeout_ms,
				  &resp, err, sizeof(err)) != 0) {
			doc_line(r, DOC_FAIL, check, "GET /status: %s", err);
			continue;
		}
		json_error_t jerr;
		json_t *st = resp.status == 200 ? json_loads(resp.body, 0, &jerr) : NULL;
		if (st == NULL) {
			doc_line(r, DOC_FAIL, check, "GET /status: HTTP %d, not a status document",
				 resp.status);
			rf_http_response_free(&resp);
			continue;
		}
		reachable++;
		const char *role = json_string_value(json_object_get(st, "role"));
		json_t *ready = json_object_get(st, "ready");
		json_int_t term = json_integer_value(json_object_get(st, "term"));
		if (role != NULL && strcmp(role, "leader") == 0) {
			leaders++;
		}
		if (!json_is_true(ready)) {
			doc_line(r, DOC_FAIL, check, "%s, term %" JSON_INTEGER_FORMAT ", not ready",
				 role != NULL ? role : "?", term);
		} else {
			doc_line(r, DOC_OK, check, "%s, term %" JSON_INTEGER_FORMAT ", ready",
				 role != NULL ? role : "?", term);
		}
		json_decref(st);
		rf_http_response_free(&resp);
	}
	if (leaders == 1) {
		doc_line(r, DOC_OK, "reflector cluster", "%d of %zu node(s) answer, one leader",
			 reachable, c->nnodes);
	} else {
		doc_line(r, DOC_FAIL, "reflector cluster", "%d of %zu node(s) answer, %d leader(s)",
			 reachable, c->nnodes, leaders);
	}
}

void doc_check_fence_ttl(const struct doc_config *c, struct doc_report *r)
{
	if (c->lag_bound_ms < 0) {
		doc_line(
		    r, DOC_WARN, "fence ttl",
		    "fence_ttl_ms %lld; replica_lag_bound_ms is not set, so the rule fence TTL >= "
		    "lag bound + fill deadline (%lld ms) cannot be checked",
		    (long long)c->fence_ttl_ms, (long long)c->fill_deadline_ms);
		return;
	}
	long long need = (long long)(c->lag_bound_ms + c->fill_deadline_ms);
	if (c->fence_ttl_ms < need) {
		doc_line(r, DOC_FAIL, "fence ttl",
			 "fence_ttl_ms %lld is below replica_lag_bound_ms %lld + fill_deadline_ms "
			 "%lld = %lld: a fill read from a lagging replica can outlive its fence",
			 (long long)c->fence_ttl_ms, (long long)c->lag_bound_ms,
			 (long long)c->fill_deadline_ms, need);
	} else {
		doc_line(r, DOC_OK, "fence ttl",
			 "fence_ttl_ms %lld >= replica_lag_bound_ms %lld + fill_deadline_ms %lld",
			 (long long)c->fence_ttl_ms, (long long)c->lag_bound_ms,
			 (long long)c->fill_deadline_ms);
	}
}
