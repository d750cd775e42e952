/*
 * libFuzzer harness: batch planning of the coherence pipeline (reflector/src/coh_plan.c).
 * Outbox rows can be written by anyone with INSERT on lifeguard.outbox, so no content may
 * crash the leader. Input: one row per line, tab-separated "id table pk op version" (an empty
 * field is NULL). Invariants: every row change is either malformed (with a reason) or mapped
 * to a key whose version is the newest of its rows; Redis keys are distinct (no two tables or
 * keys collide); TRUNCATE entries hold
 * the newest TRUNCATE version of their table.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coh_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Splits line into up to 5 NUL-terminated fields (in place); returns the count. */
static int fuzz_fields(char *line, char *f[5])
{
	int n = 0;
	f[n++] = line;
	for (char *p = line; *p != '\0' && n < 5; p++) {
		if (*p == '\t') {
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text == NULL) {
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	struct rf_plan plan;
	memset(&plan, 0, sizeof(plan));
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *f[5] = {0};
		if (fuzz_fields(line, f) < 5) {
			continue;
		}
		char op = f[3][0];
		rf_plan_add(&plan, atoll(f[0]), f[1][0] ? f[1] : NULL, f[2][0] ? f[2] : NULL, op,
			    atoll(f[4]), 0);
	}
	free(text);
	if (rf_plan_build(&plan, "p:x", "f*") != 0) {
		rf_plan_free(&plan);
		return 0;
	}
	for (size_t i = 0; i < plan.n_changes; i++) {
		const struct rf_change *c = &plan.changes[i];
		if (c->bad != NULL || c->op == 'T') {
			continue;
		}
		assert(c->key_index < plan.n_keys);
		assert(plan.keys[c->key_index].version >= c->version);
	}
	for (size_t i = 0; i < plan.n_keys; i++) {
		const struct rf_key_work *k = &plan.keys[i];
		assert(k->state == RF_KEY_BAD || k->redis_key != NULL);
		for (size_t j = i + 1; j < plan.n_keys && k->redis_key != NULL; j++) {
			assert(plan.keys[j].redis_key == NULL ||
			       strcmp(k->redis_key, plan.keys[j].redis_key) != 0);
		}
	}
	for (size_t i = 0; i < plan.n_truncates; i++) {
		for (size_t c = 0; c < plan.n_changes; c++) {
			const struct rf_change *ch = &plan.changes[c];
			if (ch->bad == NULL && ch->op == 'T' &&
			    strcmp(ch->table, plan.truncates[i].table) == 0) {
				assert(plan.truncates[i].version >= ch->version);
			}
		}
	}
	rf_plan_free(&plan);
	return 0;
}
