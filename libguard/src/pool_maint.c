/*
 * Pool maintenance: one coroutine per pool keeps the connection set healthy.
 *
 * Each round (on a wake-up or at least once a second):
 *   1. Drop connections that are lost or retiring once nothing is in flight on them and no
 *      transaction holds them (lg_conn_free; statements on them already completed).
 *   2. Mark connections past max_lifetime_ms, or idle past idle_timeout_ms while the pool has
 *      more than min_conns, as retiring: they take no new statements and drain first, so a
 *      rotation never fails a statement.
 *   3. Open connections while fewer than min_conns are usable, or while callers wait and the
 *      pool is below max_conns. After a failure only one attempt runs at a time, spaced by
 *      exponential backoff with jitter; the last error is kept for the waiters' messages.
 *   4. Health: a connection idle for health_check_ms is sent "SELECT 1" with that same
 *      deadline. A server that does not answer (a hung backend, a blackholed link that TCP
 *      has not noticed yet) marks it lost, so it is replaced before callers are sent to it.
 * Connect attempts and checks run in their own coroutines so a slow server never stalls the
 * round.
 */
#include "pool_int.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"
#include "pool_policy.h"

#define MAINT_PERIOD_MS 1000

void lg__pool_maint_wake(struct lg_pool *p)
{
	lg_cond_signal(p->maint_cv);
}

void lg__pool_conn_drop(struct lg_pool *p, size_t i)
{
	struct lg__pool_conn *pc = p->conns[i];
	lg_conn_free(pc->conn);
	lg__free(pc);
	p->conns[i] = p->conns[--p->nconns];
	lg_cond_broadcast(p->state_cv);
}

static int maint_add(struct lg_pool *p, struct lg_conn *conn)
{
	if (p->nconns == p->cap_conns) {
		size_t cap = p->cap_conns ? p->cap_conns * 2 : 8;
		struct lg__pool_conn **conns = lg__realloc(p->conns, cap * sizeof(*conns));
		if (conns == NULL) {
			return LG_ENOMEM;
		}
		p->conns = conns;
		p->cap_conns = cap;
	}
	struct lg__pool_conn *pc = lg__calloc(1, sizeof(*pc));
	if (pc == NULL) {
		return LG_ENOMEM;
	}
	pc->conn = conn;
	pc->pool = p;
	pc->created_ms = pc->last_used_ms = lg_now_ms();
	p->conns[p->nconns++] = pc;
	return 0;
}

static void maint_on_lost(void *ud, struct lg_conn *conn)
{
	(void)conn;
	lg__pool_maint_wake(ud); /* replace it now, not at the next periodic round */
}

/* A connection attempt failed (or could not start): back off, and tell the warm-up. */
static void maint_connect_failed(struct lg_pool *p, int rc, const char *why)
{
	p->failures++;
	p->stats.connect_failures++;
	p->last_connect_rc = rc;
	snprintf(p->last_connect_error, sizeof(p->last_connect_error), "%s", why);
	p->next_connect_ms =
	    lg_now_ms() + lg__pool_backoff_ms(p->failures, p->cfg.backoff_initial_ms,
					      p->cfg.backoff_max_ms, lg__pool_random(p));
}

static void maint_connect(void *arg)
{
	struct lg_pool *p = arg;
	char options[96] = "";
	if (p->cfg.tx_idle_timeout_ms != LG_TIMEOUT_NONE) {
		/* The server's setting is an int of milliseconds. */
		uint64_t ms =
		    p->cfg.tx_idle_timeout_ms < INT32_MAX ? p->cfg.tx_idle_timeout_ms : INT32_MAX;
		snprintf(options, sizeof(options), "-c idle_in_transaction_session_timeout=%llu",
			 (unsigned long long)ms);
	}
	struct lg_conn_config cfg = {
	    .conninfo = p->conninfo,
	    .connect_timeout_ms = p->cfg.connect_timeout_ms,
	    .statement_timeout_ms = p->cfg.statement_timeout_ms,
	    .max_segment = p->cfg.max_segment,
	    .max_in_flight = p->cfg.max_in_flight_per_conn,
	    .lost_hook = maint_on_lost,
	    .lost_ud = p,
	    /* Nobody takes notifications from a pooled connection (LISTEN is refused there). */
	    .notify_queue_max = 16,
	    .options = options[0] != '\0' ? options : NULL,
	};
	struct lg_conn *conn = NULL;
	struct lg_error err;
	int rc = lg_conn_new(p->rt, &cfg, &conn, &err);
	if (rc == 0 && p->closing) {
		lg_conn_free(conn);
		rc = LG_ECLOSED;
	} else if (rc == 0 && maint_add(p, conn) != 0) {
		lg_conn_free(conn);
		rc = lg__error_set(&err, LG_ENOMEM, "pool: out of memory");
	}
	p->connecting--;
	if (rc == 0) {
		p->failures = 0;
		if (p->warm) {
			p->stats.reconnects++;
		}
		lg__pool_dispatch(p);
	} else if (rc != LG_ECLOSED && rc != LG_ECANCELED) {
		maint_connect_failed(p, rc, err.message);
	}
	lg_cond_broadcast(p->state_cv);
	lg__pool_maint_wake(p);
}

static void maint_reap(struct lg_pool *p)
{
	for (size_t i = p->nconns; i-- > 0;) {
		struct lg__pool_conn *pc = p->conns[i];
		if (!pc->lost && !lg_conn_ok(pc->conn)) {
			pc->lost = true; /* lost while idle: noticed by the socket, not a caller */
			p->stats.conns_lost++;
		}
		if ((pc->lost || pc->retiring) && pc->in_flight == 0 && !pc->pinned &&
		    !pc->reserved) {
			if (pc->retiring && !pc->lost) {
				p->stats.conns_retired++;
			}
			lg__pool_conn_drop(p, i);
		}
	}
}

static unsigned maint_rotate(struct lg_pool *p, uint64_t now)
{
	unsigned usable = 0;
	for (size_t i = 0; i < p->nconns; i++) {
		if (lg__pool_usable(p->conns[i]) || p->conns[i]->pinned || p->conns[i]->reserved) {
			usable++;
		}
	}
	for (size_t i = 0; i < p->nconns; i++) {
		struct lg__pool_conn *pc = p->conns[i];
		if (pc->retiring || pc->lost || pc->pinned || pc->reserved) {
			continue;
		}
		bool old = p->cfg.max_lifetime_ms != LG_TIMEOUT_NONE &&
			   now - pc->created_ms >= p->cfg.max_lifetime_ms;
		bool idle = p->cfg.idle_timeout_ms != LG_TIMEOUT_NONE && pc->in_flight == 0 &&
			    usable > p->cfg.min_conns &&
			    now - pc->last_used_ms >= p->cfg.idle_timeout_ms;
		if (old || idle) {
			pc->retiring = true;
			usable--;
		}
	}
	return usable;
}

static void maint_grow(struct lg_pool *p, unsigned usable, uint64_t now)
{
	unsigned total = (unsigned)p->nconns + p->connecting;
	unsigned want = p->cfg.min_conns;
	if (p->nwaiters > 0 && usable + p->connecting < p->cfg.max_conns) {
		want = usable + p->connecting + 1; /* callers queue: add capacity */
	}
	while (!p->closing && usable + p->connecting < want && total < p->cfg.max_conns) {
		if (p->failures > 0 && (p->connecting > 0 || now < p->next_connect_ms)) {
			break; /* one attempt at a time while the server keeps failing */
		}
		if (lg__coro_spawn_daemon(p->rt, maint_connect, p, NULL) != 0) {
			/* Out of memory: a failed attempt, or a warm-up would wait for nothing. */
			maint_connect_failed(p, LG_ENOMEM, "out of memory starting a connection");
			lg_cond_broadcast(p->state_cv);
			break;
		}
		p->connecting++;
		total++;
	}
}

static void maint_check(void *arg)
{
	struct lg__pool_conn *pc = arg;
	struct lg_pool *p = pc->pool;
	struct lg_query_opts o = {lg_deadline_in(p->cfg.health_check_ms), 0};
	int rc = lg_conn_query(pc->conn, "SELECT 1", NULL, 0, &o, NULL, NULL);
	pc->checking = false;
	if (rc == 0) {
		pc->last_used_ms = lg_now_ms();
	} else if (!pc->lost) {
		pc->lost = true;
		p->stats.conns_lost++;
		p->stats.health_checks_failed++;
	}
	lg__pool_release(p, pc); /* wakes the maintenance when the connection was lost */
}

static void maint_health(struct lg_pool *p, uint64_t now)
{
	if (p->cfg.health_check_ms == LG_TIMEOUT_NONE) {
		return;
	}
	for (size_t i = 0; i < p->nconns; i++) {
		struct lg__pool_conn *pc = p->conns[i];
		if (!lg__pool_usable(pc) || pc->checking || pc->in_flight > 0 ||
		    pc->last_used_ms + p->cfg.health_check_ms > now) {
			continue;
		}
		/* Holding a slot keeps the connection from being dropped under the check. */
		pc->in_flight++;
		p->in_flight++;
		pc->checking = true;
		if (lg__coro_spawn_daemon(p->rt, maint_check, pc, NULL) != 0) {
			pc->checking = false;
			lg__pool_release(p, pc);
		}
	}
}

/* The next moment something is due: a backoff expiring, a lifetime or idle time running out. */
static uint64_t maint_next_wake(const struct lg_pool *p, uint64_t now)
{
	uint64_t wake = now + MAINT_PERIOD_MS;
	if (p->failures > 0 && p->next_connect_ms > now && p->next_connect_ms < wake) {
		wake = p->next_connect_ms;
	}
	for (size_t i = 0; i < p->nconns; i++) {
		const struct lg__pool_conn *pc = p->conns[i];
		if (pc->retiring || pc->lost) {
			continue;
		}
		if (p->cfg.max_lifetime_ms != LG_TIMEOUT_NONE &&
		    pc->created_ms + p->cfg.max_lifetime_ms < wake) {
			wake = pc->created_ms + p->cfg.max_lifetime_ms;
		}
		if (p->cfg.idle_timeout_ms != LG_TIMEOUT_NONE && pc->in_flight == 0 &&
		    pc->last_used_ms + p->cfg.idle_timeout_ms < wake) {
			wake = pc->last_used_ms + p->cfg.idle_timeout_ms;
		}
		if (p->cfg.health_check_ms != LG_TIMEOUT_NONE && !pc->checking &&
		    pc->in_flight == 0 && pc->last_used_ms + p->cfg.health_check_ms < wake) {
			wake = pc->last_used_ms + p->cfg.health_check_ms;
		}
	}
	return wake > now ? wake : now + 1;
}

void lg__pool_maint_main(void *arg)
{
	struct lg_pool *p = arg;
	while (!lg_coro_canceled()) {
		uint64_t now = lg_now_ms();
		maint_reap(p);
		unsigned usable = maint_rotate(p, now);
		maint_reap(p);
		maint_grow(p, usable, now);
		maint_health(p, now);
		uint64_t wake = maint_next_wake(p, now);
		if (lg_cond_wait(p->maint_cv, wake) == LG_ECANCELED) {
			break;
		}
	}
}
