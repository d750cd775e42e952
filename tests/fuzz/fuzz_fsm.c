/*
 * libFuzzer harness: the raft FSM's decoders (reflector/src/fsm.c) — committed commands,
 * snapshots, and POST /members bodies. Commands and snapshots come from the replicated log,
 * so they must never crash a node whatever bytes they hold. Invariants: apply never fails;
 * a refused snapshot leaves the state unchanged; a snapshot of any reachable state restores
 * to the same state.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fsm.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rf_log_setup(RF_LOG_ERROR, 0);
	struct rf_fsm fsm;
	rf_fsm_init(&fsm);
	/* Each line is one command. */
	const uint8_t *p = data, *end = data + size;
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);
		struct raft_buffer buf = {(void *)p, len};
		void *result = NULL;
		assert(fsm.iface.apply(&fsm.iface, &buf, &result) == 0);
		assert(result == RF_FSM_OK || result == RF_FSM_REJECTED);
		p += len + (nl != NULL);
	}
	/* The whole input as a snapshot. */
	uint64_t before = fsm.applied + fsm.rejected;
	struct raft_buffer snap = {raft_malloc(size + 1), size};
	if (snap.base != NULL) {
		memcpy(snap.base, data, size);
		if (fsm.iface.restore(&fsm.iface, &snap) != 0) {
			raft_free(snap.base);
			assert(fsm.applied + fsm.rejected == before);
		}
	}
	/* Round trip of whatever state we reached. */
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	if (fsm.iface.snapshot(&fsm.iface, &bufs, &n) == 0) {
		struct rf_fsm copy;
		rf_fsm_init(&copy);
		assert(copy.iface.restore(&copy.iface, &bufs[0]) == 0);
		assert(copy.n_members == fsm.n_members && copy.last_term == fsm.last_term &&
		       copy.applied == fsm.applied && copy.terms_recorded == fsm.terms_recorded);
		raft_free(bufs);
		rf_fsm_close(&copy);
	}
	struct rf_fsm_member m;
	char err[200];
	(void)rf_fsm_member_parse((const char *)data, size, &m, err, sizeof(err));
	rf_fsm_close(&fsm);
	return 0;
}
