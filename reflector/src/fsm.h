/*
 * The reflector's replicated state machine (raft FSM, struct raft_fsm version 1).
 *
 * It holds the cluster state every node agrees on:
 *   - the member directory: id -> raft address + HTTP address, so that any node can tell
 *     operators where the leader's HTTP interface is, including members added at runtime;
 *   - the leader-term records: each new leader commits {"op":"term"} first (the no-op entry
 *     of Raft section 8 that lets a leader learn the commit index), so the log itself shows
 *     every term that had a working leader;
 *   - the fencing token: {"op":"token","term":T,"token":K} is applied only when K is above
 *     every token applied before, so no two leaders ever hold the same token, and tokens
 *     rise in log order whatever the raft terms are (a cluster re-created with fresh data dirs
 *     starts again at term 1; its leader takes a token above what Redis holds).
 * Commands are small JSON objects. A committed command that does not decode is counted and
 * skipped (returning an error from apply would stop raft from applying anything after it).
 *
 * Pure: raft.h (types, raft_malloc) and jansson; no libuv.
 */
#ifndef RF_FSM_H
#define RF_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#include "config.h"

struct rf_fsm_member {
	uint64_t id;
	char raft_address[RF_ADDR_MAX];
	char http_address[RF_ADDR_MAX];
};

struct rf_fsm {
	struct raft_fsm iface;         /* handed to raft_init; iface.data points back here */
	struct rf_fsm_member *members; /* Owned array */
	size_t n_members;
	size_t cap_members;
	uint64_t terms_recorded;
	uint64_t last_term;
	uint64_t last_leader;
	uint64_t token;      /* the highest fencing token recorded, 0 = none */
	uint64_t token_term; /* the raft term that recorded it */
	uint64_t applied;    /* commands applied (accepted) */
	uint64_t rejected;   /* commands that did not decode */
};

/* Results passed to raft_apply callbacks (the void *result argument). */
#define RF_FSM_OK       ((void *)0)
#define RF_FSM_REJECTED ((void *)1)
/* A token record whose token is not above the recorded one (decoded, not counted). */
#define RF_FSM_TOKEN_LOW ((void *)2)

void rf_fsm_init(struct rf_fsm *fsm);
void rf_fsm_close(struct rf_fsm *fsm);

/* The directory entry for id, or NULL. Borrowed until the next apply/restore. */
const struct rf_fsm_member *rf_fsm_member(const struct rf_fsm *fsm, uint64_t id);

/*
 * Command encoders. On success buf->base is allocated with raft_malloc and Owned by the
 * caller, who passes it to raft_apply (ownership moves to raft on success) or raft_free()s it.
 * Return 0 or RAFT_NOMEM.
 */
int rf_fsm_encode_term(uint64_t term, uint64_t leader, struct raft_buffer *buf);
int rf_fsm_encode_member(const struct rf_fsm_member *m, struct raft_buffer *buf);
int rf_fsm_encode_forget(uint64_t id, struct raft_buffer *buf);
int rf_fsm_encode_token(uint64_t term, uint64_t token, struct raft_buffer *buf);

/*
 * Decodes a member object {"id": N, "raft_address": "ip:port", "http_address": "ip:port"}
 * (the POST /members body) from text. Returns 0, or -1 with a sentence in err.
 */
int rf_fsm_member_parse(const char *text, size_t len, struct rf_fsm_member *m, char *err,
			size_t errlen);

#endif
