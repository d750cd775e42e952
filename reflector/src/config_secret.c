/*
 * Checks of the settings that carry secrets (postgres, redis, admin_token), and the list of
 * secret strings handed to the logger so that no log line can carry them.
 *
 * The postgres conninfo is parsed with libpq's own PQconninfoParse at start, so a typo stops
 * the process (exit 2) instead of surfacing as a connect error on every leadership. libpq's
 * parse messages quote the text they stumbled on ("invalid percent-encoded token: "..."",
 * "missing "=" after "..."", even the whole URI), and that text may be the password, so the
 * quoted parts are withheld from our message.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "config_int.h"

/* Copies libpq's message into out, every quoted part except "=" replaced with "...", the
 * trailing newline dropped. */
static void sec_withhold_quoted(const char *msg, char *out, size_t cap)
{
	size_t n = 0;
	const char *p = msg;
	while (*p != '\0' && *p != '\n' && n + 8 < cap) {
		if (*p != '"') {
			out[n++] = *p++;
			continue;
		}
		const char *end = strchr(p + 1, '"');
		const char *keep = end == p + 2 && p[1] == '=' ? "\"=\"" : "\"...\"";
		memcpy(out + n, keep, strlen(keep));
		n += strlen(keep);
		if (end == NULL) {
			break;
		}
		p = end + 1;
	}
	out[n] = '\0';
}

int cfg_check_postgres(const char *conninfo, const char *source, struct rf_config_error *err)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	if (opts != NULL) {
		PQconninfoFree(opts);
		return 0;
	}
	char shown[200];
	sec_withhold_quoted(perr != NULL ? perr : "out of memory", shown, sizeof(shown));
	PQfreemem(perr);
	return cfg_fail(err, "postgres", source,
			"is not a valid libpq conninfo: %s (quoted text withheld: it may hold "
			"the password)",
			shown);
}

int cfg_check_redis_host(const char *host, const char *source, struct rf_config_error *err)
{
	/* libguard's Redis client takes IP literals only (it does no name lookup), so anything
	 * else would fail on every connect attempt, and only once this node leads. */
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
		return 0;
	}
	return cfg_fail(err, "redis.host", source,
			"must be an IPv4 or IPv6 address (no host names), got \"%.60s\"", host);
}

bool rf_addr_is_loopback(const char *address)
{
	char ip[16];
	unsigned port;
	struct in_addr in;
	if (rf_addr_parse(address, true, ip, &port) != 0 || inet_pton(AF_INET, ip, &in) != 1) {
		return false;
	}
	return (ntohl(in.s_addr) >> 24) == 127;
}

/* Registers text[0, len) as a secret. */
static void sec_add_n(const char *text, size_t len)
{
	char buf[RF_LOG_SECRET_MAX];
	if (len == 0) {
		return;
	}
	if (len >= sizeof(buf)) {
		len = sizeof(buf) - 1;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	rf_log_add_secret(buf);
}

/* The raw spellings of the postgres password: the value after every "password=" (keyword
 * form, or a URI query parameter) and the password part of a URI's user info, as written,
 * percent-escapes and quotes included. The decoded form comes from libpq. */
static void sec_add_postgres(const char *conninfo)
{
	for (const char *p = strstr(conninfo, "password"); p != NULL;
	     p = strstr(p + 1, "password")) {
		const char *v = p + strlen("password");
		v += strspn(v, " \t\r\n");
		if (*v != '=') {
			continue;
		}
		v++;
		v += strspn(v, " \t\r\n");
		sec_add_n(v, strcspn(v, " \t\r\n&"));
		if (*v == '\'') {
			sec_add_n(v + 1, strcspn(v + 1, "'"));
		}
	}
	const char *scheme = strstr(conninfo, "://");
	if (scheme != NULL) {
		const char *auth = scheme + 3;
		size_t seg = strcspn(auth, "/?");
		const char *at = NULL;
		for (const char *q = auth; q < auth + seg; q++) {
			if (*q == '@') {
				at = q;
			}
		}
		const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon != NULL) {
			sec_add_n(colon + 1, (size_t)(at - colon - 1));
		}
	}
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL) {
			rf_log_add_secret(o->val);
		}
	}
	PQconninfoFree(opts);
}

void rf_config_register_secrets(const struct rf_config *cfg)
{
	if (cfg->admin_token != NULL) {
		rf_log_add_secret(cfg->admin_token);
	}
	if (cfg->redis.password != NULL) {
		rf_log_add_secret(cfg->redis.password);
	}
	if (cfg->postgres != NULL) {
		sec_add_postgres(cfg->postgres);
	}
}
