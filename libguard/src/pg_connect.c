/*
 * Connecting: resolve the host without blocking, then drive libpq's nonblocking connect.
 *
 * Happy path:
 *   1. The conninfo is parsed with PQconninfoParse (bad syntax: LG_EINVAL) and turned into
 *      keyword/value arrays; libguard adds client_encoding=UTF8, DateStyle=ISO (the result
 *      decoders read ISO timestamps), TCP keepalives and an application name where the user
 *      set none, and drops connect_timeout (libpq ignores it in nonblocking mode; the caller's
 *      deadline rules instead).
 *   2. A host name that is not an IP literal or a socket directory is resolved with
 *      uv_getaddrinfo on libuv's thread pool; its addresses (up to CONNECT_MAX_ADDRS, in the
 *      resolver's order) become a hostaddr list, with host repeated to match, so libpq tries
 *      each in turn (libpq's own lookup would block the loop). Failure: LG_ERESOLVE.
 *   3. PQconnectStartParams, then per socket event: stop polling, PQconnectPoll, and poll for
 *      what it asks next. libpq may close and reopen its socket while trying further
 *      addresses, so the poll handle is re-created whenever PQsocket() changes. A refused
 *      connect surfaces as an error status on the poll; libpq still gets called so it can
 *      report the real error.
 *   4. PGRES_POLLING_OK: switch to nonblocking pipeline mode, install the notice receiver,
 *      wake the caller. PGRES_POLLING_FAILED: LG_ECONNECT with libpq's message; libpq has
 *      closed its socket, so the poll handle is closed in the same callback, before any other
 *      connection can be handed the same descriptor number.
 * The caller's deadline or cancellation wakes it with LG_ETIMEDOUT / LG_ECANCELED; it then
 * closes the connection, which cancels a pending resolution and closes the socket.
 */
#include "pg_conn_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

static bool connect_is_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int connect_find(char **kw, const char *key)
{
	for (int i = 0; kw[i] != NULL; i++) {
		if (strcmp(kw[i], key) == 0) {
			return i;
		}
	}
	return -1;
}

/* Sets key to value (both Copied), adding it if absent or replacing it when replace. */
static int connect_set(struct lg_conn *c, const char *key, const char *value, bool replace)
{
	int i = connect_find(c->kw, key);
	if (i >= 0 && !replace) {
		return 0;
	}
	char *v = lg__strdup(value);
	if (v == NULL) {
		return LG_ENOMEM;
	}
	if (i >= 0) {
		lg__free(c->vals[i]);
		c->vals[i] = v;
		return 0;
	}
	for (i = 0; c->kw[i] != NULL; i++) {
	}
	c->kw[i] = lg__strdup(key);
	if (c->kw[i] == NULL) {
		lg__free(v);
		return LG_ENOMEM;
	}
	c->vals[i] = v;
	c->kw[i + 1] = NULL;
	c->vals[i + 1] = NULL;
	return 0;
}

static const char *connect_get(struct lg_conn *c, const char *key)
{
	int i = connect_find(c->kw, key);
	return i >= 0 ? c->vals[i] : NULL;
}

static int connect_build_params(struct lg_conn *c, PQconninfoOption *opts, const char *extra)
{
	size_t n = 0;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		n++;
	}
	n += 12; /* additions + terminator */
	c->kw = lg__calloc(n, sizeof(char *));
	c->vals = lg__calloc(n, sizeof(char *));
	if (c->kw == NULL || c->vals == NULL) {
		return LG_ENOMEM;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0' ||
		    strcmp(o->keyword, "connect_timeout") == 0) {
			continue;
		}
		if (connect_set(c, o->keyword, o->val, true) != 0) {
			return LG_ENOMEM;
		}
	}
	const char *user_opts = connect_get(c, "options");
	char options[2048];
	int len = snprintf(options, sizeof(options), "-c DateStyle=ISO,MDY%s%s%s%s",
			   user_opts != NULL ? " " : "", user_opts != NULL ? user_opts : "",
			   extra != NULL ? " " : "", extra != NULL ? extra : "");
	if (len < 0 || (size_t)len >= sizeof(options)) {
		return LG_EINVAL;
	}
	int rc = connect_set(c, "options", options, true);
	rc = rc ? rc : connect_set(c, "client_encoding", "UTF8", false);
	rc = rc ? rc : connect_set(c, "fallback_application_name", "libguard", false);
	rc = rc ? rc : connect_set(c, "keepalives", "1", false);
	rc = rc ? rc : connect_set(c, "keepalives_idle", "30", false);
	rc = rc ? rc : connect_set(c, "keepalives_interval", "10", false);
	rc = rc ? rc : connect_set(c, "keepalives_count", "3", false);
	/* Unacknowledged data on a blackholed link fails the socket after 30 s (Linux
	 * TCP_USER_TIMEOUT), instead of the kernel's retransmission schedule of ~15 minutes. */
	rc = rc ? rc : connect_set(c, "tcp_user_timeout", "30000", false);
	return rc;
}

static void connect_finish(struct lg_conn *c, int rc, const char *msg)
{
	c->connect_rc = rc;
	if (rc != 0) {
		const char *host = connect_get(c, "host");
		const char *port = connect_get(c, "port");
		char detail[LG_ERROR_MSG_SIZE];
		lg__pg_message(detail, sizeof(detail), msg != NULL ? msg : "");
		/* After resolution host is the name repeated once per address: show it once. */
		int hl = host != NULL ? (int)strcspn(host, ",") : 0;
		snprintf(c->connect_msg, sizeof(c->connect_msg), "connect %.*s:%.16s: %.400s",
			 host != NULL ? (hl < 64 ? hl : 64) : 9, host != NULL ? host : "(default)",
			 port != NULL ? port : "5432", detail);
		c->state = LG__CONN_BROKEN;
		lg__conn_poll_close(c); /* libpq has closed the socket already */
	}
	if (c->connect_waiter != NULL) {
		struct lg__waiter *w = c->connect_waiter;
		c->connect_waiter = NULL;
		lg__waiter_wake(w, rc);
	}
}

static void connect_on_notice(void *arg, const PGresult *res)
{
	struct lg_conn *c = arg;
	if (c->notice_hook == NULL) {
		return;
	}
	char msg[LG_ERROR_MSG_SIZE];
	lg__pg_message(msg, sizeof(msg), PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	struct lg_notice n = {severity != NULL ? severity : "NOTICE",
			      sqlstate != NULL ? sqlstate : "", msg};
	c->notice_hook(c->notice_ud, &n);
}

static void connect_step(struct lg_conn *c, PostgresPollingStatusType st)
{
	switch (st) {
	case PGRES_POLLING_READING:
	case PGRES_POLLING_WRITING:
		if (lg__conn_poll_open(c) != 0) {
			connect_finish(c, LG_ENOMEM, "out of memory");
			return;
		}
		c->poll_events = st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE;
		lg__conn_poll_update(c);
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1 ||
		    lg__conn_poll_open(c) != 0) {
			connect_finish(c, LG_ECONNECT, PQerrorMessage(c->pg));
			return;
		}
		PQsetNoticeReceiver(c->pg, connect_on_notice, c);
		c->state = LG__CONN_READY;
		c->poll_events = UV_READABLE;
		lg__conn_poll_update(c);
		connect_finish(c, 0, NULL);
		return;
	default:
		connect_finish(c, LG_ECONNECT, PQerrorMessage(c->pg));
		return;
	}
}

void lg__conn_connect_on_event(struct lg_conn *c)
{
	/* libpq may close the socket inside PQconnectPoll: stop watching it first. */
	c->poll_events = 0;
	lg__conn_poll_update(c);
	connect_step(c, PQconnectPoll(c->pg));
}

static void connect_libpq(struct lg_conn *c)
{
	c->state = LG__CONN_CONNECTING;
	c->pg = PQconnectStartParams((const char *const *)c->kw, (const char *const *)c->vals, 0);
	if (c->pg == NULL) {
		connect_finish(c, LG_ENOMEM, "out of memory");
		return;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		connect_finish(c, LG_ECONNECT, PQerrorMessage(c->pg));
		return;
	}
	connect_step(c, PGRES_POLLING_WRITING);
}

#define CONNECT_MAX_ADDRS 8

/* Is ip one of the comma-separated addresses of list? */
static bool connect_addr_listed(const char *list, const char *ip)
{
	size_t n = strlen(ip);
	for (const char *p = list; *p != '\0'; p += strcspn(p, ","), p += *p == ',') {
		if (strncmp(p, ip, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
			return true;
		}
	}
	return false;
}

static void connect_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct lg_conn *c = req->data;
	c->resolver = NULL;
	lg__free(req);
	lg__runtime_req_end(c->rt);
	if (c->state != LG__CONN_RESOLVING) { /* closed meanwhile */
		uv_freeaddrinfo(res);
		lg__conn_unref(c);
		return;
	}
	lg__conn_unref(c);
	if (status < 0 || res == NULL) {
		connect_finish(c, LG_ERESOLVE, uv_strerror(status < 0 ? status : UV_EAI_NONAME));
		uv_freeaddrinfo(res);
		return;
	}
	char addrs[CONNECT_MAX_ADDRS * 48] = "";
	char hosts[CONNECT_MAX_ADDRS * 256] = "";
	const char *host = connect_get(c, "host");
	int n = 0;
	for (struct addrinfo *a = res; a != NULL && n < CONNECT_MAX_ADDRS; a = a->ai_next) {
		char ip[48] = "";
		if (a->ai_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, ip, sizeof(ip));
		} else if (a->ai_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)a->ai_addr, ip, sizeof(ip));
		}
		if (ip[0] == '\0' || connect_addr_listed(addrs, ip)) {
			continue; /* another family, or the same address for another protocol */
		}
		size_t al = strlen(addrs), hl = strlen(hosts);
		snprintf(addrs + al, sizeof(addrs) - al, "%s%s", n ? "," : "", ip);
		snprintf(hosts + hl, sizeof(hosts) - hl, "%s%.250s", n ? "," : "", host);
		n++;
	}
	uv_freeaddrinfo(res);
	if (n == 0) {
		connect_finish(c, LG_ERESOLVE, "no IPv4 or IPv6 address");
		return;
	}
	if (connect_set(c, "host", hosts, true) != 0 ||
	    connect_set(c, "hostaddr", addrs, true) != 0) {
		connect_finish(c, LG_ENOMEM, "out of memory");
		return;
	}
	connect_libpq(c);
}

static int connect_resolve(struct lg_conn *c, const char *host)
{
	uv_getaddrinfo_t *req = lg__calloc(1, sizeof(*req));
	if (req == NULL) {
		return LG_ENOMEM;
	}
	struct addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	req->data = c;
	c->state = LG__CONN_RESOLVING;
	int rc =
	    uv_getaddrinfo(lg_runtime_loop(c->rt), req, connect_on_resolved, host, NULL, &hints);
	if (rc != 0) {
		lg__free(req);
		return LG_ERESOLVE;
	}
	c->resolver = req;
	c->refs++;
	lg__runtime_req_begin(c->rt);
	return 0;
}

int lg__conn_start(struct lg_conn *c, const char *conninfo, const char *extra_options,
		   struct lg_error *err)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	if (opts == NULL) {
		int rc = lg__error_set(err, perr != NULL ? LG_EINVAL : LG_ENOMEM,
				       "connect: invalid conninfo: %s", perr != NULL ? perr : "");
		PQfreemem(perr);
		return rc;
	}
	int rc = connect_build_params(c, opts, extra_options);
	PQconninfoFree(opts);
	if (rc != 0) {
		return lg__error_set(err, rc,
				     rc == LG_EINVAL ? "connect: options too long"
						     : "connect: out of memory");
	}
	const char *host = connect_get(c, "host");
	const char *hostaddr = connect_get(c, "hostaddr");
	bool needs_dns = host != NULL && hostaddr == NULL && host[0] != '/' && host[0] != '@' &&
			 strchr(host, ',') == NULL && !connect_is_literal(host);
	if (host != NULL && hostaddr == NULL && strchr(host, ',') != NULL) {
		/* libpq would resolve each name itself, blocking: accept IP literals only. */
		char copy[512];
		snprintf(copy, sizeof(copy), "%s", host);
		for (char *save, *h = strtok_r(copy, ",", &save); h != NULL;
		     h = strtok_r(NULL, ",", &save)) {
			if (h[0] != '/' && !connect_is_literal(h)) {
				return lg__error_set(err, LG_EINVAL,
						     "connect: host list entry '%s' is a name; "
						     "give IP addresses or hostaddr",
						     h);
			}
		}
	}
	if (needs_dns) {
		rc = connect_resolve(c, host);
		if (rc != 0) {
			return lg__error_set(err, rc, "connect: resolve %s failed", host);
		}
		return 0;
	}
	connect_libpq(c);
	return 0;
}

void lg__conn_connect_abort(struct lg__waiter *w, int status)
{
	struct lg_conn *c = w->data;
	c->connect_waiter = NULL;
	lg__waiter_wake(w, status);
}
