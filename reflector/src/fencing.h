/*
 * The fencing token (docs/data-contract.md, "Fencing token"): the number every Redis write of
 * the leader carries and every script compares with the term key. A leader takes its token
 * through the raft log (struct rf_fsm: a token record is applied only when it is above every
 * token recorded before), so no two leaders ever hold the same one, and it chooses it above
 * what Redis holds, so a cluster re-created on a Redis used before is not stuck below it.
 */
#ifndef RF_FENCING_H
#define RF_FENCING_H

#include <stdint.h>

struct rf_node;

/*
 * Commits a token above floor and above every token recorded in the log, while this node
 * leads in term; *token receives it. Runs in a coroutine of the node's runtime (it waits for
 * the commit). Returns 0, or -1 when the node no longer leads in term, is closing, or the
 * caller was canceled (nothing is then held: a later leader takes a higher token).
 */
int rf_fencing_take(struct rf_node *n, uint64_t term, uint64_t floor, uint64_t *token);

#endif
