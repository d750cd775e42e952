/*
 * Continuous verification (audit.c): sample cached keys and compare each with its row on the
 * primary, version and content. The leader runs it at audit_keys_per_s; the CLI
 * `lifeguard-reflector audit` runs it once over a sample.
 */
#ifndef RF_AUDIT_H
#define RF_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Stale keys followed from round to round (to tell how long they stay stale). */
#define RF_AUDIT_FOLLOW 16

struct rf_audit_state {
	char cursor[32]; /* SCAN cursor; "" = start */
	struct {
		char *key;         /* Owned */
		uint64_t since_ms; /* lg_now_ms() when first found stale */
	} followed[RF_AUDIT_FOLLOW];
	size_t n_followed;
	FILE *report; /* Borrowed; one line per stale key when not NULL */
};

struct rf_audit_round {
	uint64_t checked;
	uint64_t stale;
	bool wrapped; /* the SCAN cursor went back to 0: the keyspace was walked once */
};

/* The longest a followed key has been stale, in seconds (0 when none). */
double rf_audit_oldest_stale_s(const struct rf_audit_state *a, uint64_t now_ms);

/* Releases the followed keys. */
void rf_audit_state_free(struct rf_audit_state *a);

/* The CLI: lifeguard-reflector audit --config F [--table T] [--sample N]. */
int rf_cli_audit(int argc, char **argv);

#endif
