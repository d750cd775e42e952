/*
 * Commands.
 *
 * Happy path: the command is formatted into the RESP wire form before entering the coroutine
 * (so a va_list is consumed on the caller's stack), the call waits until the client's link is
 * READY (connecting again after a loss), hands the bytes to hiredis with a heap record as the
 * callback's private data and parks. hiredis writes everything queued in a loop turn together
 * and calls back in reply order; the callback copies the reply and wakes the caller.
 * Failure modes:
 *   - deadline or cancellation after hand-over: the caller returns LG_ETIMEDOUT /
 *     LG_ECANCELED at once and leaves the record to the callback, which frees it (and the late
 *     reply) whenever hiredis calls it: with the reply, or with NULL when the link dies.
 *   - NULL reply: the link died (LG_ECONNLOST) or the client was closed (LG_ECANCELED).
 *   - an error reply: LG_ESERVER with Redis's text.
 * Scripts (redis_script.c) use the two halves, lg__redis_call_send and lg__redis_call_wait, to
 * know which connection a SCRIPT LOAD or EVALSHA went to.
 */
#include "redis_int.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc_int.h"
#include "error_int.h"

void lg__redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct lg__redis_cmd *cmd = privdata;
	struct lg__redis_link *l = ac->data;
	if (cmd->waiter == NULL) {
		lg__free(cmd); /* the caller left; the reply is discarded */
		return;
	}
	if (reply == NULL) {
		if (l->r->closed) {
			cmd->code = LG_ECANCELED;
			snprintf(cmd->msg, sizeof(cmd->msg), "redis: client closed");
		} else {
			cmd->code = LG_ECONNLOST;
			snprintf(cmd->msg, sizeof(cmd->msg),
				 "redis %s:%d: connection lost with the command in flight: %s",
				 l->r->host, l->r->port,
				 ac->c.errstr[0] != '\0' ? ac->c.errstr : "connection closed");
		}
	} else {
		const redisReply *rep = reply;
		if (rep->type == REDIS_REPLY_ERROR) {
			cmd->code = LG_ESERVER;
			snprintf(cmd->msg, sizeof(cmd->msg), "%.*s", (int)rep->len, rep->str);
		} else if (cmd->visit != NULL) {
			cmd->code = cmd->visit(cmd->visit_ud, rep);
			if (cmd->code != 0) {
				snprintf(cmd->msg, sizeof(cmd->msg), "redis: reply: %s",
					 lg_strerror(cmd->code));
			}
		} else {
			cmd->reply = lg__redis_reply_copy(rep);
			cmd->code = cmd->reply != NULL ? 0 : LG_ENOMEM;
			if (cmd->reply == NULL) {
				snprintf(cmd->msg, sizeof(cmd->msg), "redis: out of memory");
			}
		}
	}
	struct lg__waiter *w = cmd->waiter;
	cmd->waiter = NULL;
	lg__waiter_wake(w, 0);
}

static void cmd_abort(struct lg__waiter *w, int status)
{
	struct lg__redis_cmd *cmd = w->data;
	cmd->waiter = NULL; /* now owned by the reply callback */
	lg__waiter_wake(w, status);
}

/* ---- RESP formatting ---- */

static void wire_put(struct lg__redis_wire *w, const char *s, size_t n)
{
	if (w->failed) {
		return;
	}
	if (n > SIZE_MAX / 4 - w->len) {
		w->failed = true; /* no command is that long: a caller's bogus length */
		return;
	}
	if (w->len + n > w->cap) {
		size_t cap = (w->len + n) * 2;
		char *b = lg__malloc(cap);
		if (b == NULL) {
			w->failed = true;
			return;
		}
		memcpy(b, w->b, w->len);
		if (w->b != w->local) {
			lg__free(w->b);
		}
		w->b = b;
		w->cap = cap;
	}
	memcpy(w->b + w->len, s, n);
	w->len += n;
}

/* "<mark><n>\r\n" */
static void wire_head(struct lg__redis_wire *w, char mark, uint64_t n)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	tmp[--i] = '\n';
	tmp[--i] = '\r';
	do {
		tmp[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	tmp[--i] = mark;
	wire_put(w, tmp + i, sizeof(tmp) - i);
}

void lg__redis_wire_init(struct lg__redis_wire *w, int argc)
{
	w->b = w->local;
	w->len = 0;
	w->cap = sizeof(w->local);
	w->failed = false;
	wire_head(w, '*', (uint64_t)argc);
}

void lg__redis_wire_arg(struct lg__redis_wire *w, const char *s, size_t n)
{
	wire_head(w, '$', n);
	wire_put(w, s, n);
	wire_put(w, "\r\n", 2);
}

void lg__redis_wire_free(struct lg__redis_wire *w)
{
	if (w->b != w->local) {
		lg__free(w->b);
	}
	w->b = w->local;
	w->len = 0;
}

struct cmd_args {
	struct lg_redis *r;
	uint64_t deadline;
	const char *wire; /* formatted command (Borrowed) */
	size_t wire_len;
	struct lg_redis_reply **out;
	struct lg_error *err;
	lg__redis_visit visit;
	void *visit_ud;
};

int lg__redis_call_send(struct lg_redis *r, struct lg__redis_call *call, const char *wire,
			size_t len, struct lg_error *err)
{
	struct lg__redis_cmd *cmd = lg__calloc(1, sizeof(*cmd));
	if (cmd == NULL) {
		return lg__error_set(err, LG_ENOMEM, "redis: out of memory");
	}
	lg__waiter_init(&call->w, cmd_abort);
	call->w.data = cmd;
	call->cmd = cmd;
	cmd->waiter = &call->w;
	if (redisAsyncFormattedCommand(r->link->ac, lg__redis_on_reply, cmd, wire, len) !=
	    REDIS_OK) {
		lg__free(cmd);
		return lg__error_set(err, LG_ECONNLOST, "redis %s:%d: connection is closing",
				     r->host, r->port);
	}
	return 0;
}

int lg__redis_call_wait(struct lg_redis *r, struct lg__redis_call *call, uint64_t deadline,
			struct lg_redis_reply **out, struct lg_error *err)
{
	struct lg__redis_cmd *cmd = call->cmd;
	int rc = lg__park(&call->w, deadline);
	if (rc != 0) {
		/* cmd belongs to the reply callback now. */
		return lg__error_set(err, rc, "redis %s:%d: %s (sent; outcome unknown)", r->host,
				     r->port, lg_strerror(rc));
	}
	rc = cmd->code;
	if (rc != 0) {
		lg__error_set(err, rc, "%s", cmd->msg);
	} else if (out != NULL) {
		*out = cmd->reply;
		cmd->reply = NULL;
	}
	lg_redis_reply_free(cmd->reply);
	lg__free(cmd);
	return rc;
}

uint64_t lg__redis_deadline(const struct lg_redis *r, const struct lg_redis_opts *opts)
{
	if (opts != NULL && opts->deadline != LG_DEADLINE_DEFAULT) {
		return opts->deadline;
	}
	return lg_deadline_in(r->command_timeout_ms); /* saturates: LG_TIMEOUT_NONE = forever */
}

static int cmd_send_and_wait(struct cmd_args *a)
{
	struct lg__redis_call call;
	int rc = lg__redis_wait_ready(a->r, a->deadline, a->err);
	if (rc == 0) {
		rc = lg__redis_call_send(a->r, &call, a->wire, a->wire_len, a->err);
	}
	if (rc == 0) {
		call.cmd->visit = a->visit; /* before parking: no reply can come earlier */
		call.cmd->visit_ud = a->visit_ud;
		rc = lg__redis_call_wait(a->r, &call, a->deadline, a->out, a->err);
	}
	return rc;
}

static int cmd_in_coro(void *arg)
{
	struct cmd_args *a = arg;
	a->r->refs++; /* keeps the client readable after a close during the wait */
	int rc = cmd_send_and_wait(a);
	lg__redis_unref(a->r);
	return rc;
}

/* The index-th argument of a formatted command ("*N\r\n$len\r\nbytes\r\n..."). */
static bool cmd_wire_arg(const char *wire, size_t len, int index, const char **arg, size_t *n)
{
	const char *p = memchr(wire, '\n', len);
	const char *end = wire + len;
	for (int i = 0; p != NULL && p + 1 < end; i++) {
		char *after;
		unsigned long alen = strtoul(p + 2, &after, 10);
		if (p[1] != '$' || end - after < 2 || (size_t)(end - after) - 2 < alen) {
			return false;
		}
		if (i == index) {
			*arg = after + 2;
			*n = alen;
			return true;
		}
		p = after + 2 + alen + 1; /* the '\n' closing this argument */
	}
	return false;
}

static bool cmd_arg_is(const char *arg, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(arg, word, n) == 0;
}

/*
 * Commands that break the one-reply-per-command rule hiredis and this client rely on: the
 * subscribe family and MONITOR turn the connection into a push stream (hiredis would call a
 * callback many times), CLIENT REPLY OFF/SKIP leaves commands without a reply.
 */
static bool cmd_refused(const char *wire, size_t len)
{
	static const char *const refused[] = {"SUBSCRIBE",   "PSUBSCRIBE",   "SSUBSCRIBE",
					      "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
					      "MONITOR"};
	const char *a0, *a1;
	size_t n0, n1;
	if (!cmd_wire_arg(wire, len, 0, &a0, &n0)) {
		return true;
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (cmd_arg_is(a0, n0, refused[i])) {
			return true;
		}
	}
	return cmd_arg_is(a0, n0, "CLIENT") && cmd_wire_arg(wire, len, 1, &a1, &n1) &&
	       cmd_arg_is(a1, n1, "REPLY");
}

/* Sends and waits inside a coroutine (the caller's, or one run to completion). */
static int cmd_exec(struct cmd_args *a)
{
	int rc = lg__run_in_coro(a->r->rt, cmd_in_coro, a);
	if (rc == LG_EBUSY) {
		lg__error_set(a->err, rc, "redis: called from a loop callback");
	}
	return rc;
}

/* Runs the formatted command wire (Borrowed). */
static int cmd_run(struct lg_redis *r, const struct lg_redis_opts *opts, const char *wire,
		   int wire_len, struct lg_redis_reply **out, struct lg_error *err)
{
	if (wire_len < 0) {
		return lg__error_set(err, LG_EINVAL, "redis: invalid command format");
	}
	if (cmd_refused(wire, (size_t)wire_len)) {
		return lg__error_set(
		    err, LG_EINVAL,
		    "redis: pub/sub, MONITOR and CLIENT REPLY are not supported on "
		    "a shared client");
	}
	struct cmd_args a = {
	    r, lg__redis_deadline(r, opts), wire, (size_t)wire_len, out, err, NULL, NULL};
	return cmd_exec(&a);
}

/* argv (lens, or NUL-terminated when NULL) as one RESP command in w; false: out of memory. */
static bool cmd_wire_argv(struct lg__redis_wire *w, int argc, const char *const *argv,
			  const size_t *lens)
{
	lg__redis_wire_init(w, argc);
	for (int i = 0; i < argc; i++) {
		lg__redis_wire_arg(w, argv[i], lens != NULL ? lens[i] : strlen(argv[i]));
	}
	return !w->failed;
}

LG_API int lg_redis_command(struct lg_redis *r, const struct lg_redis_opts *opts,
			    struct lg_redis_reply **out, struct lg_error *err, const char *fmt, ...)
{
	lg_error_clear(err);
	if (out != NULL) {
		*out = NULL;
	}
	if (r == NULL || fmt == NULL) {
		return lg__error_set(err, LG_EINVAL, "redis: missing client or format");
	}
	char *wire = NULL;
	va_list ap;
	va_start(ap, fmt);
	int len = redisvFormatCommand(&wire, fmt, ap);
	va_end(ap);
	int rc = cmd_run(r, opts, wire, len, out, err);
	redisFreeCommand(wire);
	return rc;
}

LG_API int lg_redis_commandv(struct lg_redis *r, const struct lg_redis_opts *opts, int argc,
			     const char *const *argv, const size_t *lens,
			     struct lg_redis_reply **out, struct lg_error *err)
{
	lg_error_clear(err);
	if (out != NULL) {
		*out = NULL;
	}
	if (r == NULL || argc <= 0 || argv == NULL) {
		return lg__error_set(err, LG_EINVAL, "redis: missing client or arguments");
	}
	size_t total = 0;
	for (int i = 0; i < argc; i++) {
		if (argv[i] == NULL) {
			return lg__error_set(err, LG_EINVAL, "redis: argument %d is NULL", i);
		}
		size_t n = lens != NULL ? lens[i] : strlen(argv[i]);
		if (n > INT_MAX || (total += n + 32) > INT_MAX) {
			return lg__error_set(err, LG_ERANGE, "redis: command longer than 2 GiB");
		}
	}
	struct lg__redis_wire w;
	int rc = !cmd_wire_argv(&w, argc, argv, lens)
		     ? lg__error_set(err, LG_ENOMEM, "redis: out of memory")
		     : cmd_run(r, opts, w.b, (int)w.len, out, err);
	lg__redis_wire_free(&w);
	return rc;
}

int lg__redis_commandv_visit(struct lg_redis *r, uint64_t deadline, int argc,
			     const char *const *argv, const size_t *lens, lg__redis_visit visit,
			     void *ud, struct lg_error *err)
{
	lg_error_clear(err);
	struct lg__redis_wire w;
	struct cmd_args a = {r, deadline, NULL, 0, NULL, err, visit, ud};
	int rc = 0;
	if (!cmd_wire_argv(&w, argc, argv, lens)) {
		rc = lg__error_set(err, LG_ENOMEM, "redis: out of memory");
	} else {
		a.wire = w.b;
		a.wire_len = w.len;
		rc = cmd_exec(&a);
	}
	lg__redis_wire_free(&w);
	return rc;
}
