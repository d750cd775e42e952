/*
 * JSON-lines logger. Each call formats the message into a stack buffer, replaces whatever is
 * not valid UTF-8, lets jansson build and encode the line, and writes it with a single fwrite
 * so that lines from one process never interleave mid-line. A message too long for the buffer
 * is truncated; the line stays valid JSON.
 */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

/* Longer messages and event names are cut; a character split by the cut becomes '?'. */
#define LOG_MSG_MAX   1024
#define LOG_EVENT_MAX 128

static enum rf_log_level log_min = RF_LOG_INFO;
static uint64_t log_node;
static FILE *log_stream;

static const char *const log_names[] = {"debug", "info", "warn", "error"};

#define LOG_MAX_SECRETS 16
#define LOG_REDACTED    "[redacted]"

/* Static storage, so that nothing needs freeing at exit. */
static char log_secrets[LOG_MAX_SECRETS][RF_LOG_SECRET_MAX];
static size_t log_n_secrets;

void rf_log_add_secret(const char *secret)
{
	if (secret == NULL || secret[0] == '\0' || log_n_secrets == LOG_MAX_SECRETS) {
		return;
	}
	snprintf(log_secrets[log_n_secrets++], RF_LOG_SECRET_MAX, "%s", secret);
}

void rf_log_clear_secrets(void)
{
	log_n_secrets = 0;
}

/* Drops the end of s when it is the beginning of a secret: text cut at the buffer's end may
 * have split a secret, and its first bytes are a secret too. */
static void log_drop_cut_secret(char *s)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < log_n_secrets; i++) {
		size_t slen = strlen(log_secrets[i]);
		for (size_t k = slen - 1 < len ? slen - 1 : len; k > 0; k--) {
			if (memcmp(s + len - k, log_secrets[i], k) == 0) {
				len -= k;
				s[len] = '\0';
				break;
			}
		}
	}
}

/* Rewrites s (capacity cap) with every registered secret replaced by LOG_REDACTED, cutting
 * the result to fit. cut: s was already cut by the formatting. */
static void log_redact(char *s, size_t cap, bool cut)
{
	for (size_t i = 0; i < log_n_secrets; i++) {
		const char *sec = log_secrets[i];
		size_t slen = strlen(sec);
		char *hit = strstr(s, sec);
		while (hit != NULL) {
			size_t rlen = strlen(LOG_REDACTED);
			size_t tail = strlen(hit + slen);
			size_t keep = (size_t)(hit - s) + rlen;
			if (keep >= cap) {
				*hit = '\0';
				break;
			}
			if (keep + tail >= cap) {
				tail = cap - 1 - keep;
				cut = true;
			}
			memmove(hit + rlen, hit + slen, tail);
			hit[rlen + tail] = '\0';
			memcpy(hit, LOG_REDACTED, rlen);
			hit = strstr(hit + rlen, sec);
		}
	}
	if (cut && log_n_secrets > 0) {
		log_drop_cut_secret(s);
	}
}

void rf_log_setup(enum rf_log_level min_level, uint64_t node_id)
{
	log_min = min_level;
	log_node = node_id;
}

void rf_log_set_stream(FILE *stream)
{
	log_stream = stream;
}

const char *rf_log_level_name(enum rf_log_level level)
{
	return (unsigned)level < 4 ? log_names[level] : "info";
}

int rf_log_level_parse(const char *name, enum rf_log_level *out)
{
	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*out = (enum rf_log_level)i;
			return 0;
		}
	}
	return -1;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, surrogates or
 * code points above U+10FFFF), or 0. p is NUL-terminated, and NUL is never a continuation
 * byte, so the checks stop before they could read past the end. */
static size_t log_utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;
	if (p[0] < 0x80) {
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		lo = p[0] == 0xe0 ? 0xa0 : lo;
		hi = p[0] == 0xed ? 0x9f : hi;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		lo = p[0] == 0xf0 ? 0x90 : lo;
		hi = p[0] == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (p[1] < lo || p[1] > hi) {
		return 0;
	}
	for (size_t i = 2; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			return 0;
		}
	}
	return n;
}

/* Replaces, in place, every byte that does not belong to well-formed UTF-8 with '?'.
 * jansson refuses such strings, and they come from truncation by vsnprintf() in the middle
 * of a character or from bytes a caller formatted without knowing their encoding. */
static void log_clean_utf8(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p != '\0') {
		size_t n = log_utf8_len(p);
		if (n == 0) {
			*p++ = '?';
		} else {
			p += n;
		}
	}
}

static size_t log_timestamp(char *buf, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	int m = snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
	return n + (m > 0 ? (size_t)m : 0);
}

void rf_log(enum rf_log_level level, const char *event, const char *fmt, ...)
{
	if (level < log_min) {
		return;
	}
	char msg[LOG_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	int full = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_redact(msg, sizeof(msg), full >= (int)sizeof(msg));
	log_clean_utf8(msg);
	char ev[LOG_EVENT_MAX];
	snprintf(ev, sizeof(ev), "%s", event);
	log_redact(ev, sizeof(ev), strlen(event) >= sizeof(ev));
	log_clean_utf8(ev);
	char ts[40];
	log_timestamp(ts, sizeof(ts));

	/* jansson keeps keys in insertion order, which is the documented field order; "o*"
	 * leaves "node" out while it is unknown. */
	json_t *o = json_pack(
	    "{s:s, s:s, s:o*, s:s, s:s}", "ts", ts, "level", rf_log_level_name(level), "node",
	    log_node != 0 ? json_integer((json_int_t)log_node) : NULL, "event", ev, "msg", msg);
	/* One buffer and one fwrite per line, so lines from one process never interleave. */
	size_t n = o != NULL ? json_dumpb(o, NULL, 0, JSON_COMPACT) : 0;
	char *line = n > 0 ? malloc(n + 1) : NULL;
	if (line != NULL && json_dumpb(o, line, n, JSON_COMPACT) == n) {
		line[n] = '\n';
		FILE *out = log_stream != NULL ? log_stream : stderr;
		fwrite(line, 1, n + 1, out);
		fflush(out);
	}
	free(line);
	json_decref(o);
}
