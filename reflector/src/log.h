/*
 * Structured logging for lifeguard-reflector: one JSON object per line on stderr.
 *
 *   {"ts":"2024-05-01T12:00:00.123Z","level":"info","node":1,"event":"raft.leader",
 *    "msg":"became leader in term 3"}
 *
 * Pure: no libuv. Messages are formatted with printf semantics, cut at 1023 bytes, bytes that
 * are not valid UTF-8 become '?', and jansson encodes the line. Callers never pass secrets
 * (passwords, tokens, conninfo strings) to these functions: the config module only ever logs
 * whether a secret is set. Registered secrets are redacted from every line as a safety net.
 */
#ifndef RF_LOG_H
#define RF_LOG_H

#include <stdint.h>
#include <stdio.h>

enum rf_log_level { RF_LOG_DEBUG, RF_LOG_INFO, RF_LOG_WARN, RF_LOG_ERROR };

/* Sets the minimum level written and the node id stamped on every line (0 = none yet). */
void rf_log_setup(enum rf_log_level min_level, uint64_t node_id);

/* Redirects output (Borrowed until the next call; NULL = stderr). For tests. */
void rf_log_set_stream(FILE *stream);

/* "debug" / "info" / "warn" / "error". */
const char *rf_log_level_name(enum rf_log_level level);

/* Parses a level name; returns 0 or -1 when name is not one of the four. */
int rf_log_level_parse(const char *name, enum rf_log_level *out);

/* Longest secret registered in full; a longer one has its first RF_LOG_SECRET_MAX - 1 bytes
 * registered. */
#define RF_LOG_SECRET_MAX 512

/*
 * Registers a secret (Copied; at most 16 are kept, empty ones are ignored): from then on every
 * occurrence of it in a message or event is written as "[redacted]". A safety net under the
 * rule that callers never log secrets: a library error message can quote a conninfo.
 */
void rf_log_add_secret(const char *secret);

/* Forgets every registered secret (tests). */
void rf_log_clear_secrets(void);

/* Writes one line. event is a short dotted identifier ("raft.leader"); fmt a printf format. */
void rf_log(enum rf_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
