/*
 * JSON-lines logger. Each call formats into a stack buffer and writes the line with a single
 * fwrite so that lines from one process never interleave mid-line. A message too long for the
 * buffer is truncated (the line stays valid JSON).
 */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#define LOG_LINE_MAX 2048

static enum rf_log_level log_min = RF_LOG_INFO;
static uint64_t log_node;
static FILE *log_stream;

static const char *const log_names[] = {"debug", "info", "warn", "error"};

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

size_t rf_json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7];
		size_t n;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c == '\n') {
			memcpy(esc, "\\n", 2);
			n = 2;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (len + n + 1 > cap) {
			break;
		}
		memcpy(buf + len, esc, n);
		len += n;
	}
	if (cap > 0) {
		buf[len < cap ? len : cap - 1] = '\0';
	}
	return len;
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
	char msg[LOG_LINE_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	char line[LOG_LINE_MAX];
	char ts[40];
	log_timestamp(ts, sizeof(ts));
	int n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",", ts,
			 rf_log_level_name(level));
	size_t len = n > 0 ? (size_t)n : 0;
	if (log_node != 0) {
		n = snprintf(line + len, sizeof(line) - len, "\"node\":%llu,",
			     (unsigned long long)log_node);
		len += n > 0 ? (size_t)n : 0;
	}
	len += (size_t)snprintf(line + len, sizeof(line) - len, "\"event\":\"");
	len = rf_json_escape(line, len, sizeof(line) - 16, event);
	len += (size_t)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
	len = rf_json_escape(line, len, sizeof(line) - 4, msg);
	memcpy(line + len, "\"}\n", 4);
	len += 3;
	FILE *out = log_stream != NULL ? log_stream : stderr;
	fwrite(line, 1, len, out);
	fflush(out);
}
