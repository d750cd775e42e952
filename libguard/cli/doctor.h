/*
 * `lifeguard doctor`: its configuration (doctor_cmd.c reads it) and its checks
 * (doctor_checks.c). Each check prints one line "ok|warn|fail  NAME: detail".
 */
#ifndef LIFEGUARD_DOCTOR_H
#define LIFEGUARD_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOC_MAX_LIST 32

struct doc_config {
	const char *primary;                /* conninfo */
	const char *replicas[DOC_MAX_LIST]; /* conninfos */
	size_t nreplicas;
	const char *redis_host;
	int redis_port, redis_db;
	const char *redis_password;      /* NULL: none */
	const char *nodes[DOC_MAX_LIST]; /* reflector HTTP addresses, host:port */
	size_t nnodes;
	int64_t fence_ttl_ms;
	int64_t lag_bound_ms; /* -1: not configured */
	int64_t fill_deadline_ms;
	const char *tables[DOC_MAX_LIST]; /* reflected tables to require; none: discover */
	size_t ntables;
	int64_t outbox_warn_rows, outbox_fail_rows, outbox_warn_age_s, outbox_fail_age_s;
	int64_t timeout_ms; /* per connection or request */
};

enum doc_level { DOC_OK, DOC_WARN, DOC_FAIL };

/* Counts of each level, and the JSON array when --json (NULL otherwise). */
struct doc_report {
	int counts[3];
	void *json; /* json_t * */
};

void doc_line(struct doc_report *r, enum doc_level level, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void doc_check_postgres(const struct doc_config *c, struct doc_report *r);
void doc_check_redis(const struct doc_config *c, struct doc_report *r);
void doc_check_reflector(const struct doc_config *c, struct doc_report *r);
void doc_check_fence_ttl(const struct doc_config *c, struct doc_report *r);

#endif
