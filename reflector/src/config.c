/*
 * Configuration: merge, decode, validate.
 *
 * Happy path: the file's JSON object is the base; each known key then takes its value from
 * LIFEGUARD_<KEY> when that variable is set, and from a flag when one is given, so one merged
 * JSON object holds the winning value of every key together with where it came from. The
 * merged object is decoded key by key into struct rf_config with range checks, and finally
 * the keys are checked against each other (this node is in peers, heartbeat < election).
 *
 * Failure modes, all reported as -1 plus a message naming the key and its source:
 *   - the file is not valid JSON (file:line:column) or not an object;
 *   - an unknown key in the file (typos would otherwise be silently ignored);
 *   - an environment value that does not convert (LIFEGUARD_NODE_ID=abc, bad JSON in
 *     LIFEGUARD_PEERS);
 *   - a missing required key, a value of the wrong type, or out of range.
 * Secret values never appear in messages.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hostport.h"

#include "config_int.h"

const struct cfg_key cfg_keys[CFG__KEYS] = {
#define CFG_ROW_KEY(name, kind, secret) [CFG_KEY_##name] = {#name, kind, secret},
    RF_CONFIG_KEYS(CFG_ROW_KEY, CFG_FLAG_AS_KEY, CFG_UINT_AS_KEY)
#undef CFG_ROW_KEY
};
const size_t cfg_n_keys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

int cfg_fail(struct rf_config_error *err, const char *key, const char *source, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(err->key, sizeof(err->key), "%s", key);
	if (source != NULL && source[0] != '\0') {
		snprintf(err->message, sizeof(err->message), "config: %s: %s (%s)", key, detail,
			 source);
	} else {
		snprintf(err->message, sizeof(err->message), "config: %s: %s", key, detail);
	}
	return -1;
}

int rf_addr_parse(const char *text, bool allow_any, char ip[16], unsigned *port)
{
	char host[RF_HOSTPORT_MAX];
	struct in_addr in;
	if (rf_hostport_parse(text, allow_any, host, port) != 0 || strlen(host) > 15 ||
	    inet_pton(AF_INET, host, &in) != 1) {
		return -1;
	}
	strcpy(ip, host);
	return 0;
}

/* True when name[len] continues a UTF-8 character, so a cut there would split it. */
static bool cfg_mid_char(const char *name, size_t len)
{
	return ((unsigned char)name[len] & 0xc0) == 0x80;
}

void cfg_show_name(char *out, size_t cap, const char *name)
{
	/* Names come from jansson's parser, so they are valid UTF-8. Escaping never shortens
	 * text, so no prefix longer than cap - 1 bytes can fit: start there, then drop one
	 * character at a time until the escaped prefix and its "..." fit. */
	size_t full = strlen(name);
	size_t len = full < cap ? full : cap - 1;
	char tmp[256];
	out[0] = '\0';
	for (;;) {
		while (len > 0 && cfg_mid_char(name, len)) {
			len--;
		}
		json_t *j = json_stringn(name, len);
		size_t n = j != NULL ? json_dumpb(j, tmp, sizeof(tmp), JSON_ENCODE_ANY) : 0;
		json_decref(j);
		const char *more = len < full ? "..." : "";
		/* n counts the two quotes, which are not shown. */
		if (n >= 2 && n <= sizeof(tmp) && n - 2 + strlen(more) < cap) {
			snprintf(out, cap, "%.*s%s", (int)(n - 2), tmp + 1, more);
			return;
		}
		if (n == 0 || len == 0) {
			return;
		}
		len--;
	}
}

/*
 * Copies a validated address into dst: a bind address (allow_any) is an IPv4 literal, an
 * address peers dial may also be a DNS host name (resolved on every connection attempt).
 */
int cfg_addr(const json_t *v, bool allow_any, char dst[RF_ADDR_MAX], const char *key,
	     const char *source, struct rf_config_error *err)
{
	char host[RF_HOSTPORT_MAX];
	unsigned port;
	if (!json_is_string(v)) {
		return cfg_fail(err, key, source, "must be a string \"host:port\"");
	}
	const char *s = json_string_value(v);
	if (allow_any && (strlen(s) >= RF_ADDR_MAX || rf_addr_parse(s, true, host, &port) != 0)) {
		return cfg_fail(
		    err, key, source,
		    "must be an IPv4 address and port like \"0.0.0.0:8080\", got \"%.40s\"", s);
	}
	if (!allow_any &&
	    (strlen(s) >= RF_ADDR_MAX || rf_hostport_parse(s, false, host, &port) != 0)) {
		return cfg_fail(err, key, source,
				"must be a host name or IPv4 address and a port like "
				"\"node-1.example:7000\" or \"10.0.0.1:7000\" (not 0.0.0.0), got "
				"\"%.40s\"",
				s);
	}
	snprintf(dst, RF_ADDR_MAX, "%s", s);
	return 0;
}

int cfg_uint(const json_t *v, uint64_t min, uint64_t max, uint64_t *out, const char *key,
	     const char *source, struct rf_config_error *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max) {
		return cfg_fail(err, key, source,
				"must be an integer in [%" PRIu64 ", %" PRIu64 "]", min, max);
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int cfg_string(const json_t *v, bool allow_empty, char **out, const char *key, const char *source,
	       struct rf_config_error *err)
{
	if (!json_is_string(v)) {
		return cfg_fail(err, key, source, "must be a string");
	}
	const char *s = json_string_value(v);
	if (!allow_empty && s[0] == '\0') {
		return cfg_fail(err, key, source, "must not be empty");
	}
	if (strlen(s) != json_string_length(v)) {
		return cfg_fail(err, key, source, "must not contain NUL characters");
	}
	*out = strdup(s);
	if (*out == NULL) {
		return cfg_fail(err, key, source, "out of memory");
	}
	return 0;
}

const struct rf_peer *rf_config_peer(const struct rf_config *cfg, uint64_t id)
{
	for (size_t i = 0; i < cfg->n_peers; i++) {
		if (cfg->peers[i].id == id) {
			return &cfg->peers[i];
		}
	}
	return NULL;
}

void rf_config_free(struct rf_config *cfg)
{
	if (cfg == NULL) {
		return;
	}
	free(cfg->data_dir);
	free(cfg->peers);
	free(cfg->postgres);
	free(cfg->redis.host);
	free(cfg->redis.password);
	free(cfg->key_prefix);
	free(cfg->fence_prefix);
	free(cfg->term_key);
	free(cfg->admin_token);
	memset(cfg, 0, sizeof(*cfg));
}

/* Reads a whole file; returns NULL with errno set on failure. */
static char *cfg_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return NULL;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap) {
			break;
		}
		if (cap >= CFG_MAX_FILE) {
			free(buf);
			buf = NULL;
			errno = EFBIG;
			break;
		}
		char *bigger = realloc(buf, cap * 2);
		if (bigger == NULL) {
			free(buf);
			buf = NULL;
			errno = ENOMEM;
			break;
		}
		buf = bigger;
		cap *= 2;
	}
	if (buf != NULL && ferror(f)) {
		free(buf);
		buf = NULL;
		errno = EIO;
	}
	fclose(f);
	*len = n;
	return buf;
}

static const char *cfg_getenv(void *data, const char *name)
{
	(void)data;
	return getenv(name);
}

int rf_config_load(const struct rf_config_flags *flags, struct rf_config *cfg,
		   struct rf_config_error *err)
{
	char *text = NULL;
	size_t len = 0;
	const char *path = flags != NULL ? flags->config_path : NULL;
	if (path != NULL) {
		text = cfg_read_file(path, &len);
		if (text == NULL) {
			return cfg_fail(err, "--config", NULL, "cannot read %s: %s", path,
					strerror(errno));
		}
	}
	int rc = rf_config_build(text, len, path, cfg_getenv, NULL, flags, cfg, err);
	free(text);
	return rc;
}
