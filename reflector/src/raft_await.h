/*
 * Blocking raft requests for coroutines on the node's libguard runtime: submit, park the
 * calling coroutine, resume when raft's callback fires.
 *
 * Return values: 0, a positive RAFT_* code (from submission or the callback), or one of the
 * negative RF_AWAIT_* codes. A request that times out or whose coroutine is canceled is
 * abandoned, not canceled: raft still owns it and its callback frees it later.
 * Must be called from a coroutine of n->rt.
 */
#ifndef RF_RAFT_AWAIT_H
#define RF_RAFT_AWAIT_H

#include <stdint.h>

#include <raft.h>

#include "node.h"

#define RF_AWAIT_TIMEOUT  (-1) /* the deadline passed first */
#define RF_AWAIT_CANCELED (-2) /* the coroutine was canceled */
#define RF_AWAIT_CLOSING  (-3) /* the node is shutting down: nothing was submitted */
#define RF_AWAIT_NOMEM    (-4)

/* A sentence for any return value above. */
const char *rf_await_strerror(int rc);

/*
 * Appends a command and waits until it is applied locally. buf->base (raft_malloc) is Owned
 * by the call in every case. *result (may be NULL) receives the FSM's result on success.
 */
int rf_await_apply(struct rf_node *n, struct raft_buffer *buf, uint64_t deadline, void **result);

/* raft_add (joins as spare), raft_assign, raft_remove: wait until the change commits. */
int rf_await_add(struct rf_node *n, uint64_t id, const char *address, uint64_t deadline);
int rf_await_assign(struct rf_node *n, uint64_t id, int role, uint64_t deadline);
int rf_await_remove(struct rf_node *n, uint64_t id, uint64_t deadline);

#endif
