/* Private layout of the pool, shared by pool.c, pool_maint.c and pool_tx.c. */
#ifndef LG_POOL_INT_H
#define LG_POOL_INT_H

#include "libguard/pool.h"
#include "pg_query_int.h"
#include "sched_int.h"

struct lg__pool_conn {
	struct lg_conn *conn;
	struct lg_pool *pool;
	unsigned in_flight;
	bool pinned;   /* a transaction holds it exclusively */
	bool reserved; /* draining for a transaction waiter: takes no new statements */
	bool retiring; /* past its lifetime or idle time: closed once drained */
	bool lost;
	bool checking; /* a health check is in flight on it */
	uint64_t created_ms;
	uint64_t last_used_ms;
};

struct lg__pool_waiter {
	struct lg__waiter w; /* first: the abort hook casts back */
	struct lg_pool *pool;
	bool exclusive;
	uint64_t since_us;
	struct lg__pool_conn *granted;
	struct lg__pool_conn *reserved; /* the connection draining for this exclusive waiter */
};

struct lg_pool {
	struct lg_runtime *rt;
	struct lg_pool_config cfg;
	char *conninfo;
	struct lg__pool_conn **conns;
	size_t nconns;
	size_t cap_conns;
	unsigned connecting;
	struct lg__waitq waiters;
	unsigned nwaiters;
	bool closing;
	bool closed;       /* lg_pool_free returned; alive only for transactions still open */
	bool warm;         /* warm-up finished: later connects count as reconnects */
	unsigned failures; /* consecutive connect failures */
	uint64_t next_connect_ms;
	int last_connect_rc;
	char last_connect_error[LG_ERROR_MSG_SIZE];
	struct lg_cond *maint_cv; /* wakes the maintenance coroutine */
	struct lg_cond *state_cv; /* broadcast when connections come or go (warm-up, drain) */
	struct lg_coro *maint;
	uint64_t in_flight;
	uint32_t rng;
	struct lg_pool_stats stats;
};

/* pool.c */
void lg__pool_dispatch(struct lg_pool *p);
int lg__pool_acquire(struct lg_pool *p, bool exclusive, uint64_t deadline,
		     struct lg__pool_conn **out, struct lg_error *err);
void lg__pool_release(struct lg_pool *p, struct lg__pool_conn *pc);
void lg__pool_unpin(struct lg_pool *p, struct lg__pool_conn *pc);
void lg__pool_note_result(struct lg_pool *p, struct lg__pool_conn *pc, int rc);
bool lg__pool_usable(const struct lg__pool_conn *pc);
uint32_t lg__pool_random(struct lg_pool *p);

/*
 * For the database handle (db.c): lg_pool_query, and lg_tx_commit, with then's read sent
 * right behind on the same connection in the same flush (lg__conn_query_then). then is
 * Borrowed for the call; its result is the caller's afterwards. When the statement fails,
 * then->rc is its code and there is no result.
 */
int lg__pool_query_then(struct lg_pool *p, const char *sql, const struct lg_param *params,
			int nparams, const struct lg_query_opts *opts, struct lg__then *then,
			struct lg_result **out, struct lg_error *err);
int lg__tx_commit_then(struct lg_tx *tx, struct lg__then *then, struct lg_error *err);

/* pool_maint.c */
void lg__pool_maint_main(void *arg);
void lg__pool_maint_wake(struct lg_pool *p);
void lg__pool_conn_drop(struct lg_pool *p, size_t i);

#endif
