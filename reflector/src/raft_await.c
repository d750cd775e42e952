/*
 * Raft requests as coroutine calls.
 *
 * Happy path: allocate an op (the raft request, a condition, the outcome), submit it, and
 * wait on the condition; raft's callback stores the outcome and signals; the coroutine takes
 * the outcome and frees the op.
 *
 * Failure modes: submission fails -> the op is freed at once and raft's code returned;
 * the deadline passes or the coroutine is canceled while raft still holds the request -> the
 * op is marked abandoned and the callback frees it when raft is done with it (at the latest
 * when raft_close fails every pending request); the node is closing -> nothing is submitted.
 */
#include "raft_await.h"

#include <stdlib.h>

#include "log.h"

struct await_op {
	union {
		struct raft_apply apply;
		struct raft_change change;
	} req;
	struct lg_cond *cv;
	bool done;
	bool abandoned;
	int status;
	void *result;
};

const char *rf_await_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "ok";
	case RF_AWAIT_TIMEOUT:
		return "deadline exceeded";
	case RF_AWAIT_CANCELED:
		return "canceled";
	case RF_AWAIT_CLOSING:
		return "node is shutting down";
	case RF_AWAIT_NOMEM:
		return "out of memory";
	default:
		return raft_strerror(rc);
	}
}

static struct await_op *await_new(struct rf_node *n)
{
	struct await_op *op = calloc(1, sizeof(*op));
	if (op == NULL) {
		return NULL;
	}
	if (lg_cond_new(n->rt, &op->cv) != 0) {
		free(op);
		return NULL;
	}
	return op;
}

static void await_free(struct await_op *op)
{
	lg_cond_free(op->cv);
	free(op);
}

static void await_finish(struct await_op *op, int status, void *result)
{
	if (op->abandoned) {
		await_free(op);
		return;
	}
	op->done = true;
	op->status = status;
	op->result = result;
	lg_cond_signal(op->cv);
}

static void await_on_apply(struct raft_apply *req, int status, void *result)
{
	await_finish(req->data, status, result);
}

static void await_on_change(struct raft_change *req, int status)
{
	await_finish(req->data, status, NULL);
}

/* Waits for the callback; frees op unless abandoned. */
static int await_wait(struct await_op *op, uint64_t deadline, void **result)
{
	int rc = 0;
	while (!op->done && rc == 0) {
		rc = lg_cond_wait(op->cv, deadline);
	}
	if (!op->done) {
		op->abandoned = true;
		return rc == LG_ETIMEDOUT ? RF_AWAIT_TIMEOUT : RF_AWAIT_CANCELED;
	}
	int status = op->status;
	if (result != NULL) {
		*result = op->result;
	}
	await_free(op);
	return status;
}

int rf_await_apply(struct rf_node *n, struct raft_buffer *buf, uint64_t deadline, void **result)
{
	if (n->closing) {
		raft_free(buf->base);
		return RF_AWAIT_CLOSING;
	}
	struct await_op *op = await_new(n);
	if (op == NULL) {
		raft_free(buf->base);
		return RF_AWAIT_NOMEM;
	}
	op->req.apply.data = op;
	int rv = raft_apply(&n->raft, &op->req.apply, buf, 1, await_on_apply);
	if (rv != 0) {
		raft_free(buf->base);
		await_free(op);
		return rv;
	}
	return await_wait(op, deadline, result);
}

enum await_change_kind { CHANGE_ADD, CHANGE_ASSIGN, CHANGE_REMOVE };

static int await_change(struct rf_node *n, enum await_change_kind kind, uint64_t id,
			const char *address, int role, uint64_t deadline)
{
	if (n->closing) {
		return RF_AWAIT_CLOSING;
	}
	struct await_op *op = await_new(n);
	if (op == NULL) {
		return RF_AWAIT_NOMEM;
	}
	op->req.change.data = op;
	int rv;
	switch (kind) {
	case CHANGE_ADD:
		rv = raft_add(&n->raft, &op->req.change, id, address, await_on_change);
		break;
	case CHANGE_ASSIGN:
		rv = raft_assign(&n->raft, &op->req.change, id, role, await_on_change);
		break;
	default:
		rv = raft_remove(&n->raft, &op->req.change, id, await_on_change);
		break;
	}
	if (rv != 0) {
		await_free(op);
		return rv;
	}
	return await_wait(op, deadline, NULL);
}

int rf_await_add(struct rf_node *n, uint64_t id, const char *address, uint64_t deadline)
{
	return await_change(n, CHANGE_ADD, id, address, 0, deadline);
}

int rf_await_assign(struct rf_node *n, uint64_t id, int role, uint64_t deadline)
{
	return await_change(n, CHANGE_ASSIGN, id, NULL, role, deadline);
}

int rf_await_remove(struct rf_node *n, uint64_t id, uint64_t deadline)
{
	return await_change(n, CHANGE_REMOVE, id, NULL, 0, deadline);
}
