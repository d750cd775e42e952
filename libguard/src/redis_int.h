/*
 * Private layout of the Redis client, shared by redis_client.c (the object, connect, close),
 * redis_conn.c (one connection: state machine and the libuv adapter for hiredis),
 * redis_cmd.c (commands), redis_script.c (SCRIPT LOAD and EVALSHA) and redis_reply.c (reply
 * copies).
 */
#ifndef LG_REDIS_INT_H
#define LG_REDIS_INT_H

#include <stdbool.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "libguard/redis.h"
#include "sched_int.h"

#define LG__REDIS_MSG 256

enum lg__redis_link_state {
	LG__LINK_CONNECTING, /* TCP connect and AUTH/SELECT/PING handshake in progress */
	LG__LINK_READY,
	LG__LINK_DEAD, /* failed or closed: hiredis has freed (or is freeing) the context */
};

/*
 * One TCP connection: the hiredis context plus the poll handle that watches its socket.
 * Memory is freed in the poll handle's close callback.
 */
struct lg__redis_link {
	uv_poll_t poll; /* first: the close callback casts back */
	struct lg_redis *r;
	/* Unique in the process and never reused, so a script can remember the connection it was
	 * loaded on without holding a pointer that a later link could reuse. */
	uint64_t id;
	redisAsyncContext *ac; /* NULL once hiredis frees it: never touch it after that */
	enum lg__redis_link_state state;
	bool poll_open;
	int events;  /* what hiredis wants watched */
	int applied; /* what the poll handle watches */
	bool in_flush;
	struct lg__flush flush; /* writes the commands a loop turn queued */
	struct lg__timer timer; /* connect deadline */
};

struct lg_redis {
	struct lg_runtime *rt;
	struct lg__resource resource;
	bool closed;
	int refs; /* the owner until close, each link until its handle closed, each call */

	char host[64];
	int port;
	char *username;
	char *password;
	int db;
	uint64_t connect_timeout_ms;
	uint64_t command_timeout_ms;

	struct lg__redis_link *link;   /* current connection, NULL when none */
	struct lg__waitq conn_waiters; /* calls waiting for link to be READY */
	int last_code;                 /* why the last connection attempt or link failed */
	char last_msg[LG_ERROR_MSG_SIZE];
	struct lg__redis_load *loads; /* SCRIPT LOADs this client waits for (redis_script.c) */

	/* The circuit breaker (redis_client.c): after a failed attempt no new one starts before
	 * retry_at; the wait doubles per failed attempt up to backoff_max_ms. */
	uint64_t backoff_min_ms;
	uint64_t backoff_max_ms;
	uint64_t backoff_ms; /* the next wait; backoff_min_ms after a READY link */
	uint64_t retry_at;   /* lg_now_ms() before which calls fail at once; 0 = closed */
	struct lg_redis_stats stats;
};

/*
 * A SCRIPT LOAD in flight on a client, on the loading coroutine's stack. Coroutines of the same
 * client that need the script's first name wait here instead of sending a load of their own.
 */
struct lg__redis_load {
	const struct lg_redis_script *script;
	struct lg__waitq waiters;
	struct lg__redis_load *next;
};

/*
 * Reads a reply where hiredis holds it, for a caller that needs a few values of it rather than
 * a copy: called from the reply callback while the caller still waits (never after it gave
 * up), with every reply but an error. Returns 0 or the call's error code.
 */
typedef int (*lg__redis_visit)(void *ud, const redisReply *rep);

/* A command handed to hiredis: heap-allocated, because it outlives a caller that gave up. */
struct lg__redis_cmd {
	struct lg__waiter *waiter; /* NULL once abandoned: the reply callback frees the record */
	lg__redis_visit visit;     /* NULL: the reply is copied into reply */
	void *visit_ud;
	struct lg_redis_reply *reply;
	int code;
	char msg[LG_ERROR_MSG_SIZE];
};

/* redis_conn.c */
/* Starts a connection attempt (r->link must be NULL); completion wakes r->conn_waiters. On
 * failure r->last_code/last_msg say why and nothing is left running. */
int lg__redis_link_start(struct lg_redis *r);
/* Forgets the link and frees its context (commands in flight complete with NULL replies).
 * Never from inside a hiredis callback. */
void lg__redis_link_close(struct lg__redis_link *l);
void lg__redis_wake_waiters(struct lg_redis *r, int code);

/* redis_client.c */
void lg__redis_unref(struct lg_redis *r);
/* A connection attempt failed (opens the breaker) or became READY (closes it). */
void lg__redis_breaker_failed(struct lg_redis *r);
void lg__redis_breaker_ready(struct lg_redis *r);
/* Parks until r->link is READY (starting an attempt when none is running). */
int lg__redis_wait_ready(struct lg_redis *r, uint64_t deadline, struct lg_error *err);

/* redis_reply.c */
/* Deep copy of a hiredis reply into one lg__malloc'ed block; NULL when out of memory. */
struct lg_redis_reply *lg__redis_reply_copy(const redisReply *src);

/* redis_cmd.c: the reply callback for commands. */
void lg__redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/*
 * A command in RESP form being built (argc arguments, then each with lg__redis_wire_arg): in
 * its own buffer, or on the heap when longer. failed: out of memory. Free with
 * lg__redis_wire_free. (hiredis' formatter costs a sprintf per argument and a malloc.)
 */
struct lg__redis_wire {
	char *b;
	size_t len, cap;
	bool failed;
	char local[512];
};
void lg__redis_wire_init(struct lg__redis_wire *w, int argc);
void lg__redis_wire_arg(struct lg__redis_wire *w, const char *s, size_t n);
void lg__redis_wire_free(struct lg__redis_wire *w);

/* A command handed to the current link and not yet answered; lives on the caller's stack. */
struct lg__redis_call {
	struct lg__waiter w;
	struct lg__redis_cmd *cmd;
};

/*
 * Inside a coroutine holding a reference on r: queues a formatted command (wire is copied) on
 * r->link, which must be READY. Never yields, so a caller that has just looked at r->link knows
 * which connection the command goes to and that it follows every command queued before.
 */
int lg__redis_call_send(struct lg_redis *r, struct lg__redis_call *call, const char *wire,
			size_t len, struct lg_error *err);
/* Waits for the answer of a sent command: the results of lg_redis_commandv. */
int lg__redis_call_wait(struct lg_redis *r, struct lg__redis_call *call, uint64_t deadline,
			struct lg_redis_reply **out, struct lg_error *err);
/* lg_redis_commandv for the library's own commands: the reply goes to visit instead of a
 * copy (LG_ESERVER for an error reply, as lg_redis_commandv). */
int lg__redis_commandv_visit(struct lg_redis *r, uint64_t deadline, int argc,
			     const char *const *argv, const size_t *lens, lg__redis_visit visit,
			     void *ud, struct lg_error *err);

/* 0 (the client's default deadline, or none) as an absolute deadline. */
uint64_t lg__redis_deadline(const struct lg_redis *r, const struct lg_redis_opts *opts);

#endif
