/*
 * The pool: slot accounting, FIFO waiters, statement routing.
 *
 * Happy path of lg_pool_query:
 *   1. Acquire a slot: with nobody queued, the least-loaded usable connection with fewer than
 *      max_in_flight_per_conn statements takes it at once.
 *   2. The statement runs on that connection (pg_query.c). Statements marked
 *      LG_QUERY_SHARED_READ share its sync segments with the other reads of the loop turn;
 *      every other statement gets a Sync of its own, as if it ran alone in autocommit.
 *      Statements that would leave session state on the shared connection (SET, LISTEN,
 *      BEGIN ...) are refused before anything is sent.
 *   3. Releasing the slot hands it straight to the oldest waiter (no barging: a newcomer never
 *      overtakes the queue), then the result goes back to the caller.
 *
 * Failure modes:
 *   - No slot before the deadline: LG_ETIMEDOUT; when connections are failing, the message
 *     carries the last connect error ("server unreachable").
 *   - The connection is lost: in-flight statements fail with LG_ECONNLOST (never replayed);
 *     statements it had not sent (LG_ENOTSENT) are sent again on another connection. The
 *     connection is marked lost and the maintenance coroutine replaces it.
 *   - A shared read that lost a deadlock or serialization conflict (40P01, 40001) did
 *     nothing and runs again; any other statement's failure is its caller's.
 *   - Pool closing: waiters and new calls get LG_ECLOSED.
 * Exclusive (transaction) waiters reserve the least-loaded connection, which then takes no new
 * statements and is handed over once drained; statement waiters behind them keep flowing on
 * the other connections.
 */
#include "pool_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "pg_query_int.h"
#include "pool_policy.h"

#define POOL_DEFAULT_MAX_CONNS      4
#define POOL_DEFAULT_IN_FLIGHT      256
#define POOL_DEFAULT_ACQUIRE_MS     5000
#define POOL_DEFAULT_CONNECT_MS     5000
#define POOL_DEFAULT_BACKOFF_MS     50
#define POOL_DEFAULT_BACKOFF_MAX_MS 5000
#define POOL_DEFAULT_DRAIN_MS       10000
#define POOL_DEFAULT_TX_IDLE_MS     60000
#define POOL_DEFAULT_HEALTH_MS      30000
#define POOL_DEFAULT_STATEMENT_MS   30000
#define POOL_DEFAULT_LIFETIME_MS    3600000
#define POOL_DEFAULT_IDLE_MS        600000
#define POOL_MAX_UNSENT_RETRIES     3
#define POOL_MAX_VICTIM_RETRIES     4

uint32_t lg__pool_random(struct lg_pool *p)
{
	/* xorshift32: jitter only, not security. */
	uint32_t x = p->rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	p->rng = x;
	return x;
}

bool lg__pool_usable(const struct lg__pool_conn *pc)
{
	return !pc->pinned && !pc->reserved && !pc->retiring && !pc->lost && lg_conn_ok(pc->conn);
}

static struct lg__pool_conn *pool_pick(struct lg_pool *p)
{
	struct lg__pool_conn *best = NULL;
	struct lg__pool_view best_view;
	for (size_t i = 0; i < p->nconns; i++) {
		struct lg__pool_conn *pc = p->conns[i];
		struct lg__pool_view v = {pc->in_flight, lg__pool_usable(pc)};
		if (lg__pool_prefer(&v, best != NULL ? &best_view : NULL,
				    p->cfg.max_in_flight_per_conn)) {
			best = pc;
			best_view = v;
		}
	}
	return best;
}

/* An idle usable connection, or the one reserved for w once it has drained. */
static struct lg__pool_conn *pool_pick_exclusive(struct lg_pool *p, struct lg__pool_waiter *w)
{
	if (w != NULL && w->reserved != NULL) {
		struct lg__pool_conn *pc = w->reserved;
		if (pc->lost || !lg_conn_ok(pc->conn)) {
			pc->reserved = false;
			w->reserved = NULL;
		} else {
			return pc->in_flight == 0 ? pc : NULL;
		}
	}
	struct lg__pool_conn *best = NULL;
	for (size_t i = 0; i < p->nconns; i++) {
		struct lg__pool_conn *pc = p->conns[i];
		if (lg__pool_usable(pc) && (best == NULL || pc->in_flight < best->in_flight)) {
			best = pc;
		}
	}
	if (best != NULL && best->in_flight == 0) {
		return best;
	}
	if (best != NULL && w != NULL) {
		best->reserved = true;
		w->reserved = best;
	}
	return NULL;
}

static void pool_record_wait(struct lg_pool *p, uint64_t since_us)
{
	uint64_t waited = uv_hrtime() / 1000 - since_us;
	p->stats.acquire_wait_buckets[lg__pool_wait_bucket(waited)]++;
	p->stats.acquire_wait_sum_us += waited;
	p->stats.acquire_count++;
}

static void pool_grant(struct lg_pool *p, struct lg__pool_waiter *w, struct lg__pool_conn *pc)
{
	lg__waitq_remove(&p->waiters, &w->w);
	p->nwaiters--;
	if (w->exclusive) {
		pc->reserved = false;
		pc->pinned = true;
		w->reserved = NULL;
	} else {
		pc->in_flight++;
		p->in_flight++;
	}
	w->granted = pc;
	lg__waiter_wake(&w->w, 0);
}

void lg__pool_dispatch(struct lg_pool *p)
{
	struct lg__waiter *it = p->waiters.head;
	while (it != NULL) {
		struct lg__pool_waiter *w = (struct lg__pool_waiter *)it;
		it = it->next;
		if (w->exclusive) {
			struct lg__pool_conn *pc = pool_pick_exclusive(p, w);
			if (pc != NULL) {
				pool_grant(p, w, pc);
			}
			continue; /* statements behind it may still use other connections */
		}
		struct lg__pool_conn *pc = pool_pick(p);
		if (pc == NULL) {
			break;
		}
		pool_grant(p, w, pc);
	}
	if (p->nwaiters > 0) {
		lg__pool_maint_wake(p); /* maybe more connections are wanted */
	}
}

static void pool_waiter_abort(struct lg__waiter *w, int status)
{
	struct lg__pool_waiter *pw = (struct lg__pool_waiter *)w;
	struct lg_pool *p = pw->pool;
	lg__waitq_remove(&p->waiters, w);
	p->nwaiters--;
	if (pw->reserved != NULL) {
		pw->reserved->reserved = false;
		pw->reserved = NULL;
	}
	lg__waiter_wake(w, status);
	lg__pool_dispatch(p); /* an exclusive waiter leaving can unblock others */
}

int lg__pool_acquire(struct lg_pool *p, bool exclusive, uint64_t deadline,
		     struct lg__pool_conn **out, struct lg_error *err)
{
	if (p->closing) {
		return lg__error_set(err, LG_ECLOSED, "pool: closed");
	}
	uint64_t since = uv_hrtime() / 1000;
	if (p->nwaiters == 0) {
		struct lg__pool_conn *pc = exclusive ? pool_pick_exclusive(p, NULL) : pool_pick(p);
		if (pc != NULL) {
			if (exclusive) {
				pc->pinned = true;
			} else {
				pc->in_flight++;
				p->in_flight++;
			}
			pool_record_wait(p, since);
			*out = pc;
			return 0;
		}
	}
	struct lg__pool_waiter pw = {.pool = p, .exclusive = exclusive, .since_us = since};
	lg__waiter_init(&pw.w, pool_waiter_abort);
	lg__waitq_push(&p->waiters, &pw.w);
	p->nwaiters++;
	lg__pool_dispatch(p);
	int rc = lg__park(&pw.w, deadline);
	if (rc == 0 && pw.granted == NULL) {
		rc = LG_ECLOSED;
	}
	if (rc != 0) {
		if (rc == LG_ETIMEDOUT) {
			p->stats.acquire_timeouts++;
			if (p->failures > 0) {
				return lg__error_set(err, rc,
						     "pool: no connection available before the "
						     "deadline; server unreachable: %.400s",
						     p->last_connect_error);
			}
			return lg__error_set(err, rc,
					     "pool: no connection slot free before the deadline");
		}
		return lg__error_set(err, rc, "pool: %s",
				     rc == LG_ECLOSED ? "closed" : lg_strerror(rc));
	}
	pool_record_wait(p, since);
	*out = pw.granted;
	return 0;
}

void lg__pool_note_result(struct lg_pool *p, struct lg__pool_conn *pc, int rc)
{
	if (rc == 0) {
		p->stats.statements_ok++;
	} else {
		p->stats.statements_failed++;
	}
	if (!pc->lost && !lg_conn_ok(pc->conn)) {
		pc->lost = true;
		p->stats.conns_lost++;
		lg__pool_maint_wake(p);
	}
}

void lg__pool_release(struct lg_pool *p, struct lg__pool_conn *pc)
{
	assert(pc->in_flight > 0);
	pc->in_flight--;
	p->in_flight--;
	pc->last_used_ms = lg_now_ms();
	if (pc->in_flight == 0 && (pc->retiring || pc->lost || p->closing)) {
		lg__pool_maint_wake(p);
		lg_cond_broadcast(p->state_cv);
	}
	lg__pool_dispatch(p);
}

static void pool_free(struct lg_pool *p);

/* After lg_pool_free: the last open transaction to end frees what is left of the pool. */
static void pool_unpin_closed(struct lg_pool *p, struct lg__pool_conn *pc)
{
	size_t pinned = 0;
	for (size_t i = 0; i < p->nconns; i++) {
		if (p->conns[i] == pc) {
			lg__pool_conn_drop(p, i--);
		} else {
			pinned += p->conns[i]->pinned;
		}
	}
	if (pinned == 0) {
		pool_free(p);
	}
}

void lg__pool_unpin(struct lg_pool *p, struct lg__pool_conn *pc)
{
	pc->pinned = false;
	if (p->closed) {
		pool_unpin_closed(p, pc);
		return;
	}
	pc->last_used_ms = lg_now_ms();
	if (!lg_conn_ok(pc->conn) || lg_conn_in_transaction(pc->conn)) {
		/* Never hand a session still inside a transaction to other callers. */
		if (!pc->lost) {
			pc->lost = true;
			p->stats.conns_lost++;
		}
		lg__pool_maint_wake(p);
	}
	lg_cond_broadcast(p->state_cv);
	lg__pool_dispatch(p);
}

struct pool_query_args {
	struct lg_pool *p;
	const char *sql;
	const struct lg_param *params;
	int nparams;
	const struct lg_query_opts *opts;
	struct lg_result **out;
	struct lg_error *err;
	struct lg__then *then; /* optional */
};

/*
 * A statement shares its sync segment (one implicit transaction) with other coroutines'
 * statements, so two segments on two connections can deadlock on rows neither caller locked
 * explicitly; PostgreSQL then rolls back the victim's whole segment. Nothing of the failed
 * statement was applied, so it is sent again (as its siblings are). Explicit transactions
 * do not come through here: their errors go to the caller (lg_pool_run_tx retries them).
 */
static bool pool_rolled_back_victim(int rc, const struct lg_error *e)
{
	return rc == LG_ESERVER &&
	       (strcmp(e->sqlstate, "40P01") == 0 || strcmp(e->sqlstate, "40001") == 0);
}

static int pool_query_in_coro(void *arg)
{
	struct pool_query_args *a = arg;
	struct lg_pool *p = a->p;
	struct lg_error local;
	struct lg_error *e = a->err != NULL ? a->err : &local;
	uint64_t deadline = a->opts != NULL && a->opts->deadline != 0
				? a->opts->deadline
				: lg_deadline_in(p->cfg.acquire_timeout_ms);
	int unsent = 0;
	int victims = 0;
	bool shared_read = a->opts != NULL && (a->opts->flags & LG_QUERY_SHARED_READ);
	for (;;) {
		struct lg__pool_conn *pc;
		int rc = lg__pool_acquire(p, false, deadline, &pc, e);
		if (rc != 0) {
			return rc;
		}
		rc = lg__conn_query_then(pc->conn, true, a->sql, a->params, a->nparams, a->opts,
					 a->then, a->out, e);
		lg__pool_note_result(p, pc, rc);
		lg__pool_release(p, pc);
		if (rc != 0 && a->then != NULL) {
			/* Sent again below, or failed: the read behind it does not count. */
			lg_result_free(a->then->result);
			a->then->result = NULL;
			a->then->rc = rc;
		}
		/* Not sent means not executed: another connection may run it. */
		if (rc == LG_ENOTSENT && unsent++ < POOL_MAX_UNSENT_RETRIES) {
			continue;
		}
		/* A read that lost a deadlock or serialization conflict did nothing: run it
		 * again. Anything else is the caller's, as in autocommit. */
		if (shared_read && pool_rolled_back_victim(rc, e) &&
		    victims++ < POOL_MAX_VICTIM_RETRIES &&
		    lg_sleep(1 + lg__pool_random(p) % (2u << victims)) == 0) {
			continue;
		}
		return rc;
	}
}

LG_API int lg_pool_query(struct lg_pool *p, const char *sql, const struct lg_param *params,
			 int nparams, const struct lg_query_opts *opts, struct lg_result **out,
			 struct lg_error *err)
{
	lg_error_clear(err);
	if (out != NULL) {
		*out = NULL;
	}
	if (p == NULL || sql == NULL) {
		return lg__error_set(err, LG_EINVAL, "pool: invalid arguments");
	}
	struct pool_query_args a = {p, sql, params, nparams, opts, out, err, NULL};
	return lg__run_in_coro(p->rt, pool_query_in_coro, &a);
}

int lg__pool_query_then(struct lg_pool *p, const char *sql, const struct lg_param *params,
			int nparams, const struct lg_query_opts *opts, struct lg__then *then,
			struct lg_result **out, struct lg_error *err)
{
	then->result = NULL;
	then->rc = LG_ENOTSENT;
	lg_error_clear(err);
	if (out != NULL) {
		*out = NULL;
	}
	if (p == NULL || sql == NULL) {
		return lg__error_set(err, LG_EINVAL, "pool: invalid arguments");
	}
	struct pool_query_args a = {p, sql, params, nparams, opts, out, err, then};
	return lg__run_in_coro(p->rt, pool_query_in_coro, &a);
}

LG_API int lg_pool_exec(struct lg_pool *p, const char *sql, struct lg_error *err)
{
	return lg_pool_query(p, sql, NULL, 0, NULL, NULL, err);
}

static void pool_apply_defaults(struct lg_pool_config *c)
{
	if (c->min_conns == 0) {
		c->min_conns = 1;
	}
	if (c->max_conns == 0) {
		c->max_conns =
		    c->min_conns > POOL_DEFAULT_MAX_CONNS ? c->min_conns : POOL_DEFAULT_MAX_CONNS;
	}
	if (c->max_conns < c->min_conns) {
		c->max_conns = c->min_conns;
	}
	c->max_in_flight_per_conn =
	    c->max_in_flight_per_conn ? c->max_in_flight_per_conn : POOL_DEFAULT_IN_FLIGHT;
	c->acquire_timeout_ms =
	    c->acquire_timeout_ms ? c->acquire_timeout_ms : POOL_DEFAULT_ACQUIRE_MS;
	c->connect_timeout_ms =
	    c->connect_timeout_ms ? c->connect_timeout_ms : POOL_DEFAULT_CONNECT_MS;
	c->backoff_initial_ms =
	    c->backoff_initial_ms ? c->backoff_initial_ms : POOL_DEFAULT_BACKOFF_MS;
	c->backoff_max_ms = c->backoff_max_ms ? c->backoff_max_ms : POOL_DEFAULT_BACKOFF_MAX_MS;
	c->drain_timeout_ms = c->drain_timeout_ms ? c->drain_timeout_ms : POOL_DEFAULT_DRAIN_MS;
	c->tx_idle_timeout_ms =
	    c->tx_idle_timeout_ms ? c->tx_idle_timeout_ms : POOL_DEFAULT_TX_IDLE_MS;
	c->health_check_ms = c->health_check_ms ? c->health_check_ms : POOL_DEFAULT_HEALTH_MS;
	c->max_lifetime_ms = c->max_lifetime_ms ? c->max_lifetime_ms : POOL_DEFAULT_LIFETIME_MS;
	c->idle_timeout_ms = c->idle_timeout_ms ? c->idle_timeout_ms : POOL_DEFAULT_IDLE_MS;
	c->statement_timeout_ms =
	    c->statement_timeout_ms ? c->statement_timeout_ms : POOL_DEFAULT_STATEMENT_MS;
}

LG_API void lg_pool_get_stats(const struct lg_pool *p, struct lg_pool_stats *out)
{
	*out = p->stats;
	out->conns_open = out->conns_busy = out->conns_idle = out->conns_pinned = 0;
	for (size_t i = 0; i < p->nconns; i++) {
		const struct lg__pool_conn *pc = p->conns[i];
		if (pc->lost || !lg_conn_ok(pc->conn)) {
			continue;
		}
		out->conns_open++;
		if (pc->pinned) {
			out->conns_pinned++;
		}
		if (pc->pinned || pc->in_flight > 0) {
			out->conns_busy++;
		} else {
			out->conns_idle++;
		}
	}
	out->conns_connecting = p->connecting;
	out->waiters = p->nwaiters;
	out->in_flight = p->in_flight;
}

LG_API uint64_t lg_pool_wait_bucket_bound(unsigned i)
{
	return lg__pool_wait_bound(i);
}

struct pool_new_args {
	struct lg_runtime *rt;
	const struct lg_pool_config *cfg;
	struct lg_pool **out;
	struct lg_error *err;
};

static void pool_free(struct lg_pool *p)
{
	lg_cond_free(p->maint_cv);
	lg_cond_free(p->state_cv);
	lg__free(p->conns);
	lg__free(p->conninfo);
	lg__free(p);
}

static int pool_new_in_coro(void *arg)
{
	struct pool_new_args *a = arg;
	struct lg_pool *p = lg__calloc(1, sizeof(*p));
	if (p == NULL) {
		return lg__error_set(a->err, LG_ENOMEM, "pool: out of memory");
	}
	p->rt = a->rt;
	p->cfg = *a->cfg;
	pool_apply_defaults(&p->cfg);
	p->conninfo = lg__strdup(a->cfg->conninfo);
	p->cfg.conninfo = p->conninfo;
	p->rng = (uint32_t)(uv_hrtime() | 1u);
	if (p->conninfo == NULL || lg_cond_new(p->rt, &p->maint_cv) != 0 ||
	    lg_cond_new(p->rt, &p->state_cv) != 0 ||
	    lg__coro_spawn_daemon(p->rt, lg__pool_maint_main, p, &p->maint) != 0) {
		pool_free(p);
		return lg__error_set(a->err, LG_ENOMEM, "pool: out of memory");
	}
	if (!p->cfg.no_warmup) {
		while (p->nconns < p->cfg.min_conns && p->failures == 0) {
			lg_cond_wait(p->state_cv, LG_DEADLINE_NONE);
		}
		if (p->failures > 0) {
			lg__error_set(a->err, p->last_connect_rc, "pool: warm-up: %s",
				      p->last_connect_error);
			int rc = p->last_connect_rc;
			lg_pool_free(p);
			return rc;
		}
	}
	p->warm = true;
	*a->out = p;
	return 0;
}

LG_API int lg_pool_new(struct lg_runtime *rt, const struct lg_pool_config *config,
		       struct lg_pool **out, struct lg_error *err)
{
	lg_error_clear(err);
	if (rt == NULL || config == NULL || config->conninfo == NULL || out == NULL) {
		return lg__error_set(err, LG_EINVAL, "pool: missing runtime or conninfo");
	}
	struct pool_new_args a = {rt, config, out, err};
	return lg__run_in_coro(rt, pool_new_in_coro, &a);
}

static int pool_close_in_coro(void *arg)
{
	struct lg_pool *p = arg;
	p->closing = true;
	struct lg__waiter *w;
	while ((w = lg__waitq_pop(&p->waiters)) != NULL) {
		p->nwaiters--;
		lg__waiter_wake(w, LG_ECLOSED);
	}
	uint64_t deadline = lg_deadline_in(p->cfg.drain_timeout_ms);
	for (;;) {
		bool busy = p->in_flight > 0;
		for (size_t i = 0; i < p->nconns; i++) {
			busy = busy || p->conns[i]->pinned;
		}
		if (!busy || lg_cond_wait(p->state_cv, deadline) == LG_ETIMEDOUT) {
			break;
		}
	}
	lg_coro_cancel(p->maint);
	lg_coro_join(p->maint, LG_DEADLINE_NONE);
	while (p->connecting > 0) {
		lg_cond_wait(p->state_cv, LG_DEADLINE_NONE);
	}
	/* Whatever still runs completes now (outcome unknown); its callers release their slots
	 * on their next turn. Transactions left open past the drain deadline fail fast from here
	 * on: what is left of the pool lives until their owners end them (lg__pool_unpin), and
	 * the close itself does not wait for that. */
	for (size_t i = 0; i < p->nconns; i++) {
		lg_conn_free(p->conns[i]->conn);
		p->conns[i]->conn = NULL;
	}
	while (p->in_flight > 0) {
		lg_cond_wait(p->state_cv, LG_DEADLINE_NONE);
	}
	size_t pinned = 0;
	for (size_t i = p->nconns; i-- > 0;) {
		if (p->conns[i]->pinned) {
			pinned++;
		} else {
			lg__pool_conn_drop(p, i);
		}
	}
	if (pinned > 0) {
		p->closed = true;
		return 0;
	}
	pool_free(p);
	return 0;
}

static void pool_close_detached(void *arg)
{
	pool_close_in_coro(arg);
}

LG_API void lg_pool_free(struct lg_pool *p)
{
	if (p == NULL) {
		return;
	}
	/* Every wait of a canceled coroutine returns at once, so the drain and the join of the
	 * maintenance coroutine could not happen there: close from a coroutine of its own. */
	if (lg_coro_canceled() && lg_coro_spawn(p->rt, pool_close_detached, p, NULL) == 0) {
		return;
	}
	lg__run_in_coro(p->rt, pool_close_in_coro, p);
}
