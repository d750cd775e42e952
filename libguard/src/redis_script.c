/*
 * Lua scripts, named by the server: lg_redis_eval runs EVALSHA under the name SCRIPT LOAD
 * answered, so nothing is hashed here and the name is whatever this Redis calls the script.
 *
 * Happy path of lg_redis_eval, inside a coroutine of the client's runtime:
 *   1. Wait for a READY link. Each link has an id that is never reused; the script remembers
 *      the last two links a SCRIPT LOAD of it was queued on (two, so that a script shared by
 *      two clients does not load again on every switch). If the current link is one of them
 *      and the name is known, go to 3.
 *   2. Otherwise queue SCRIPT LOAD source on this link, remember the link at once, and wait
 *      for the answer: the name. Meanwhile:
 *        - callers that find the name already known (a reload after a reconnect) and the link
 *          remembered send their EVALSHA at once: it follows the SCRIPT LOAD on the same
 *          connection, and Redis runs a connection's commands in order;
 *        - callers of the same client that find no name yet wait for this load (struct
 *          lg__redis_load) instead of sending one each: one SCRIPT LOAD per client, however
 *          many coroutines start together.
 *   3. Send EVALSHA name on the link and wait for the answer. Steps 1 and 3 run without
 *      yielding in between, so the EVALSHA goes to the link that was looked at.
 * Failure modes:
 *   - NOSCRIPT (SCRIPT FLUSH, or a proxy that put a fresh server behind the same connection):
 *     the link is forgotten unless another SCRIPT LOAD was queued on it after this EVALSHA
 *     (then the retry just follows that load), and the call goes through 1-3 once more. Many
 *     callers answered NOSCRIPT together thus cause one SCRIPT LOAD, not one each.
 *   - SCRIPT LOAD refused (the script does not compile): LG_ESERVER with Redis's message, for
 *     the loader and for every caller waiting for that load; the link is forgotten.
 *   - connection lost, deadline, cancellation: as for any command. A caller whose loader failed
 *     that way (its deadline, say) does not inherit the failure: it looks again, and may load
 *     itself within its own deadline.
 * A script is shared only by clients of one runtime: its fields are updated without locks.
 */
#include "redis_int.h"

#include <stdio.h>
#include <string.h>

#include "alloc_int.h"
#include "error_int.h"

/* How many links a script remembers (struct lg_redis_script.loaded). */
#define SCRIPT_SLOTS                                                                               \
	(sizeof((struct lg_redis_script){0}.loaded) / sizeof((struct lg_redis_script){0}.loaded[0]))

LG_API int lg_redis_script_init(struct lg_redis_script *script, const char *source,
				struct lg_error *err)
{
	lg_error_clear(err);
	if (script == NULL || source == NULL) {
		return lg__error_set(err, LG_EINVAL, "redis script: missing script or source");
	}
	memset(script, 0, sizeof(*script));
	script->source = source;
	return 0;
}

static int slot_find(const struct lg_redis_script *s, uint64_t link)
{
	for (size_t i = 0; i < SCRIPT_SLOTS; i++) {
		if (s->loaded[i].link == link) {
			return (int)i;
		}
	}
	return -1;
}

/* Remembers that a SCRIPT LOAD was just queued on link; returns the mark that tells it apart
 * from later loads. The slot of the oldest load makes room. */
static uint64_t slot_mark(struct lg_redis_script *s, uint64_t link)
{
	int i = slot_find(s, link);
	if (i < 0) {
		i = 0;
		for (size_t j = 1; j < SCRIPT_SLOTS; j++) {
			if (s->loaded[j].load < s->loaded[i].load) {
				i = (int)j;
			}
		}
	}
	s->loaded[i].link = link;
	s->loaded[i].load = ++s->loads;
	return s->loads;
}

/* Forgets link, unless a SCRIPT LOAD was queued on it after the one that mark stands for. */
static void slot_forget(struct lg_redis_script *s, uint64_t link, uint64_t mark)
{
	int i = slot_find(s, link);
	if (i >= 0 && s->loaded[i].load == mark) {
		s->loaded[i].link = 0;
		s->loaded[i].load = 0;
	}
}

struct eval_args {
	struct lg_redis *r;
	struct lg_redis_script *script;
	int nkeys;
	const char *const *keys;
	const size_t *key_lens;
	int nargs;
	const char *const *args;
	const size_t *arg_lens;
	uint64_t deadline; /* absolute: one budget for loads, EVALSHA and the retry */
	struct lg_redis_reply **out;
	struct lg_error *err; /* never NULL */
};

/* A caller waiting for another coroutine's SCRIPT LOAD of the same script on the same client. */
struct load_wait {
	struct lg__redis_load *load;
	int rc;
	struct lg_error err;
};

static void load_wait_abort(struct lg__waiter *w, int status)
{
	struct load_wait *lw = w->data;
	lg__waitq_remove(&lw->load->waiters, w);
	lg__waiter_wake(w, status);
}

static struct lg__redis_load *load_find(const struct lg_redis *r, const struct lg_redis_script *s)
{
	for (struct lg__redis_load *l = r->loads; l != NULL; l = l->next) {
		if (l->script == s) {
			return l;
		}
	}
	return NULL;
}

/* Returns 0 when the caller should look again (loaded, or the loader failed for a reason of
 * its own), or the error every caller of this script would get. */
static int load_wait(struct eval_args *a, struct lg__redis_load *load)
{
	struct load_wait lw = {.load = load, .rc = LG_ECANCELED};
	struct lg__waiter w;
	lg__waiter_init(&w, load_wait_abort);
	w.data = &lw;
	lg__waitq_push(&load->waiters, &w);
	int rc = lg__park(&w, a->deadline);
	if (rc != 0) {
		return lg__error_set(a->err, rc, "redis %s:%d: %s while the script was loading",
				     a->r->host, a->r->port, lg_strerror(rc));
	}
	if (a->r->closed) {
		return lg__error_set(a->err, LG_ECANCELED, "redis: client closed");
	}
	if (lw.rc == LG_ESERVER || lw.rc == LG_EPROTO) {
		*a->err = lw.err;
		return lw.rc;
	}
	return 0;
}

/* Ends a load: unregisters it and hands its outcome to the callers waiting for it. */
static void load_publish(struct lg_redis *r, struct lg__redis_load *load, int rc,
			 const struct lg_error *err)
{
	for (struct lg__redis_load **p = &r->loads; *p != NULL; p = &(*p)->next) {
		if (*p == load) {
			*p = load->next;
			break;
		}
	}
	struct lg__waiter *w;
	while ((w = lg__waitq_pop(&load->waiters)) != NULL) {
		struct load_wait *lw = w->data;
		lw->rc = rc;
		lw->err = *err;
		lg__waiter_wake(w, 0);
	}
}

static int script_name_set(struct lg_redis_script *s, const struct lg_redis_reply *rep,
			   struct lg_error *err)
{
	if (rep == NULL || rep->type != LG_REDIS_STRING || rep->len == 0 ||
	    rep->len >= sizeof(s->name) || memchr(rep->str, '\0', rep->len) != NULL) {
		return lg__error_set(err, LG_EPROTO,
				     "redis SCRIPT LOAD: the answer is not a script name");
	}
	memcpy(s->name, rep->str, rep->len + 1);
	return 0;
}

/* Queues SCRIPT LOAD on r->link (READY) and waits for the name. */
static int script_load(struct eval_args *a)
{
	struct lg_redis *r = a->r;
	struct lg_redis_script *s = a->script;
	char *wire = NULL;
	int len = redisFormatCommand(&wire, "SCRIPT LOAD %s", s->source);
	if (len < 0) {
		return lg__error_set(a->err, LG_ENOMEM, "redis: out of memory");
	}
	struct lg__redis_call call;
	int rc = lg__redis_call_send(r, &call, wire, (size_t)len, a->err);
	redisFreeCommand(wire);
	if (rc != 0) {
		return rc;
	}
	uint64_t link = r->link->id;
	uint64_t mark = slot_mark(s, link);
	struct lg__redis_load load = {.script = s, .next = r->loads};
	r->loads = &load;
	struct lg_redis_reply *rep = NULL;
	rc = lg__redis_call_wait(r, &call, a->deadline, &rep, a->err);
	if (rc == 0) {
		rc = script_name_set(s, rep, a->err);
	}
	lg_redis_reply_free(rep);
	if (rc != 0) {
		slot_forget(s, link, mark);
	}
	load_publish(r, &load, rc, a->err);
	return rc;
}

/*
 * Returns 0 with r->link READY and the script loaded on it (or its load queued ahead), the
 * link's id in *link and its mark in *mark (0 when the slot has been given to another link).
 * The caller sends its EVALSHA before yielding.
 */
static int script_ready(struct eval_args *a, uint64_t *link, uint64_t *mark)
{
	struct lg_redis *r = a->r;
	struct lg_redis_script *s = a->script;
	uint64_t mine = 0; /* the link this call's own SCRIPT LOAD succeeded on */
	for (;;) {
		int rc = lg__redis_wait_ready(r, a->deadline, a->err);
		if (rc != 0) {
			return rc;
		}
		uint64_t id = r->link->id;
		int i = slot_find(s, id);
		if (s->name[0] != '\0' && (i >= 0 || id == mine)) {
			*link = id;
			*mark = i >= 0 ? s->loaded[i].load : 0;
			return 0;
		}
		struct lg__redis_load *busy = s->name[0] == '\0' ? load_find(r, s) : NULL;
		if (busy != NULL) {
			rc = load_wait(a, busy);
		} else {
			rc = script_load(a);
			mine = id;
		}
		if (rc != 0) {
			return rc;
		}
	}
}

/* Sends EVALSHA name nkeys keys... args... on r->link (READY) and waits for the answer. */
static int script_evalsha(struct eval_args *a)
{
	struct lg__redis_wire w;
	char nk[16];
	snprintf(nk, sizeof(nk), "%d", a->nkeys);
	lg__redis_wire_init(&w, 3 + a->nkeys + a->nargs);
	lg__redis_wire_arg(&w, "EVALSHA", 7);
	lg__redis_wire_arg(&w, a->script->name, strlen(a->script->name));
	lg__redis_wire_arg(&w, nk, strlen(nk));
	for (int i = 0; i < a->nkeys; i++) {
		lg__redis_wire_arg(&w, a->keys[i],
				   a->key_lens != NULL ? a->key_lens[i] : strlen(a->keys[i]));
	}
	for (int i = 0; i < a->nargs; i++) {
		lg__redis_wire_arg(&w, a->args[i],
				   a->arg_lens != NULL ? a->arg_lens[i] : strlen(a->args[i]));
	}
	if (w.failed) {
		lg__redis_wire_free(&w);
		return lg__error_set(a->err, LG_ENOMEM, "redis: out of memory");
	}
	struct lg__redis_call call;
	int rc = lg__redis_call_send(a->r, &call, w.b, w.len, a->err);
	lg__redis_wire_free(&w);
	if (rc == 0) {
		rc = lg__redis_call_wait(a->r, &call, a->deadline, a->out, a->err);
	}
	return rc;
}

static int eval_in_coro(void *arg)
{
	struct eval_args *a = arg;
	a->r->refs++; /* keeps the client readable after a close during a wait */
	int rc;
	for (int attempt = 0;; attempt++) {
		uint64_t link = 0, mark = 0;
		rc = script_ready(a, &link, &mark);
		if (rc == 0) {
			rc = script_evalsha(a);
		}
		if (attempt > 0 || rc != LG_ESERVER ||
		    strncmp(a->err->message, "NOSCRIPT", 8) != 0) {
			break;
		}
		/* The server has lost the script: load it again, unless a load queued after this
		 * EVALSHA already does. */
		slot_forget(a->script, link, mark);
	}
	lg__redis_unref(a->r);
	return rc;
}

LG_API int lg_redis_eval(struct lg_redis *r, struct lg_redis_script *script, int nkeys,
			 const char *const *keys, const size_t *key_lens, int nargs,
			 const char *const *args, const size_t *arg_lens,
			 const struct lg_redis_opts *opts, struct lg_redis_reply **out,
			 struct lg_error *err)
{
	lg_error_clear(err);
	if (out != NULL) {
		*out = NULL;
	}
	if (r == NULL || script == NULL || script->source == NULL || nkeys < 0 || nargs < 0 ||
	    (nkeys > 0 && keys == NULL) || (nargs > 0 && args == NULL)) {
		return lg__error_set(err, LG_EINVAL, "redis eval: invalid arguments");
	}
	struct lg_error local;
	lg_error_clear(&local);
	struct eval_args a = {
	    r,   script, nkeys, keys, key_lens, nargs, args, arg_lens, lg__redis_deadline(r, opts),
	    out, &local};
	int rc = lg__run_in_coro(r->rt, eval_in_coro, &a);
	if (rc == LG_EBUSY) {
		lg__error_set(&local, rc, "redis eval: called from a loop callback");
	} else if (rc != 0 && local.code == 0) {
		lg__error_set(&local, rc, "redis eval: %s", lg_strerror(rc)); /* spawn failed */
	}
	if (rc != 0 && err != NULL) {
		*err = local;
	}
	return rc;
}
