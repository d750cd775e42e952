/*
 * An asynchronous Redis client on the libguard runtime, shared by many coroutines.
 *
 * One client holds one connection. Commands issued by coroutines during a loop turn are
 * written together (pipelined); Redis answers in order, and each reply goes back to the
 * coroutine that issued the command.
 *
 * Failures: a command in flight when the connection dies fails with LG_ECONNLOST (it may or
 * may not have run: never replay writes blindly). The next command reconnects (AUTH and
 * SELECT again); if that attempt fails, the command fails with the connect error.
 * A command whose deadline passes returns LG_ETIMEDOUT at once; its reply, when it arrives,
 * is discarded. Redis runs a connection's commands in order, so a blocking command (BLPOP
 * with timeout 0, say) delays every later command of the client until it returns: give
 * blocking commands a server-side timeout or a client of their own.
 * lg_redis_free completes every pending command with LG_ECANCELED.
 *
 * Every call works inside a coroutine of the client's runtime, or outside any coroutine (then
 * it runs the loop until done). A client belongs to one runtime and one thread.
 */
#ifndef LIBGUARD_REDIS_H
#define LIBGUARD_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "libguard/error.h"
#include "libguard/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_redis;

struct lg_redis_config {
	const char *host;            /* IPv4 or IPv6 literal (no name lookup). Copied. */
	int port;                    /* 0 = 6379 */
	const char *password;        /* AUTH password; NULL or "" = none. Copied. */
	const char *username;        /* ACL user for AUTH (Redis 6+); NULL = default. Copied. */
	int db;                      /* SELECT db when not 0 */
	uint64_t connect_timeout_ms; /* per connection attempt, handshake included; 0 = 10,000 */
	/* Deadline of a command whose caller gives none (opts NULL or opts->deadline 0), so a
	 * hung server fails calls in bounded time. 0 = 30,000; LG_TIMEOUT_NONE = wait forever
	 * (give blocking commands such as BLPOP 0 an explicit deadline instead). */
	uint64_t command_timeout_ms;
	/* Circuit breaker: after a failed connection attempt, calls fail at once with
	 * LG_ECONNECT for this long instead of starting attempts of their own; the wait doubles
	 * with each failed attempt up to reconnect_backoff_max_ms and resets once a connection is
	 * READY. Calls that wait while one attempt runs share it. 0 = 100 / 5,000. */
	uint64_t reconnect_backoff_ms;
	uint64_t reconnect_backoff_max_ms;
};

/* The state of the circuit breaker (struct lg_redis_stats). */
enum lg_redis_breaker {
	LG_REDIS_BREAKER_CLOSED = 0, /* connected, or the next call may connect */
	LG_REDIS_BREAKER_OPEN,       /* the last attempt failed: calls fail until retry_in_ms */
};

struct lg_redis_stats {
	enum lg_redis_breaker breaker;
	uint64_t retry_in_ms;      /* OPEN: ms until the next call may start an attempt */
	uint64_t connect_attempts; /* connection attempts started, the first one included */
	uint64_t breaker_opens;    /* failed attempts (each opens the breaker) */
	uint64_t fast_failures;    /* calls failed at once while the breaker was open */
};

/* The counters and breaker state of r. Cheap; any thread that owns r's runtime. */
LG_API void lg_redis_get_stats(const struct lg_redis *r, struct lg_redis_stats *out);

/* Per-call options of every Redis call (NULL = defaults), as struct lg_query_opts is for
 * PostgreSQL calls. */
struct lg_redis_opts {
	uint64_t deadline; /* LG_DEADLINE_* or absolute (lg_deadline_in); 0 = command_timeout_ms */
};

/*
 * Connects, authenticates and selects the database. On success *out is Owned by the caller
 * and released with lg_redis_free(). Errors: LG_EINVAL (missing host, host not an IP
 * literal), LG_ECONNECT (refused, AUTH or SELECT rejected: err says which and why),
 * LG_ETIMEDOUT, LG_ECANCELED, LG_ENOMEM.
 */
LG_API int lg_redis_new(struct lg_runtime *rt, const struct lg_redis_config *cfg,
			struct lg_redis **out, struct lg_error *err);

/*
 * Closes the client. Commands waiting or in flight complete with LG_ECANCELED; memory is
 * released once libuv has closed the socket handle. NULL is a no-op. lg_runtime_free closes
 * the clients still open on its runtime (they must not be used afterwards).
 */
LG_API void lg_redis_free(struct lg_redis *r);

enum lg_redis_type {
	LG_REDIS_STRING = 1, /* bulk string: str/len */
	LG_REDIS_ARRAY,      /* elements/element */
	LG_REDIS_INTEGER,    /* integer */
	LG_REDIS_NIL,        /* nil bulk string or nil array */
	LG_REDIS_STATUS,     /* simple string ("OK", "PONG"): str/len */
	LG_REDIS_ERROR,      /* error inside an array (EXEC, Lua tables): str/len */
};

/*
 * A reply, Owned by the caller of the command and freed with lg_redis_reply_free(): one
 * allocation, elements and strings included. str is NUL-terminated after len bytes but may
 * contain NUL bytes itself.
 */
struct lg_redis_reply {
	enum lg_redis_type type;
	long long integer;
	const char *str;
	size_t len;
	size_t elements;
	const struct lg_redis_reply *element;
};

LG_API void lg_redis_reply_free(struct lg_redis_reply *reply);

/*
 * opts (NULL = defaults) is Borrowed for the call; its deadline reads as runtime.h says (0 =
 * the client's command_timeout_ms, LG_DEADLINE_NONE = forever). On success *out (NULL to discard)
 * is an Owned reply. Errors: LG_ESERVER (Redis answered with an error: err->message holds its text,
 * *out stays NULL), LG_ECONNLOST (connection lost with the command in flight: outcome unknown),
 * LG_ECONNECT / LG_ETIMEDOUT (reconnecting failed), LG_ETIMEDOUT, LG_ECANCELED (caller
 * canceled, or client closed meanwhile), LG_ECLOSED (client already closed), LG_EINVAL.
 */

/*
 * fmt follows hiredis: %s is a C string, %b a binary string (pointer, size_t length).
 * SUBSCRIBE and its family, MONITOR and CLIENT REPLY fail with LG_EINVAL: they break the one
 * reply per command that a shared client relies on.
 */
LG_API int lg_redis_command(struct lg_redis *r, const struct lg_redis_opts *opts,
			    struct lg_redis_reply **out, struct lg_error *err, const char *fmt,
			    ...);

/* argc arguments; lens may be NULL (then each argv[i] is a C string). Borrowed for the call. */
LG_API int lg_redis_commandv(struct lg_redis *r, const struct lg_redis_opts *opts, int argc,
			     const char *const *argv, const size_t *lens,
			     struct lg_redis_reply **out, struct lg_error *err);

/*
 * A Lua script, named by Redis: lg_redis_eval sends SCRIPT LOAD on first use and keeps the name
 * it answers. Initialize with lg_redis_script_init; the script needs no cleanup. A script may be
 * shared by every client of one runtime (lg_redis_eval updates it, without locks).
 */
struct lg_redis_script {
	const char *source; /* Borrowed: must outlive every use of the script */
	char name[41];      /* what SCRIPT LOAD answered (40 hex digits); "" until then */
	/* Private to lg_redis_eval: the connections the script was last loaded on, each with the
	 * value of loads when its SCRIPT LOAD was queued. */
	struct {
		uint64_t link;
		uint64_t load;
	} loaded[2];
	uint64_t loads; /* SCRIPT LOADs queued for this script so far */
};

/*
 * Fills script for source (Borrowed: a NUL-terminated Lua chunk that must outlive every use of
 * the script; it is not copied). Contacts no server: the name is learned on first use.
 * Errors: LG_EINVAL (script or source NULL).
 */
LG_API int lg_redis_script_init(struct lg_redis_script *script, const char *source,
				struct lg_error *err);

/*
 * Runs script with EVALSHA under the name Redis gave it. Before the first call on a connection
 * (first use, a reconnect, another client) the script is sent with SCRIPT LOAD; a NOSCRIPT
 * answer (SCRIPT FLUSH, say) loads it again and retries once. Coroutines of one client that
 * need the script at the same time share one SCRIPT LOAD. keys and args are Borrowed for the
 * call; a lens array may be NULL (C strings). script is Borrowed for the call and updated.
 * Same errors and reply ownership as lg_redis_commandv; a script that does not compile fails
 * with LG_ESERVER (Redis's message), an answer to SCRIPT LOAD that is not a name with
 * LG_EPROTO.
 */
LG_API int lg_redis_eval(struct lg_redis *r, struct lg_redis_script *script, int nkeys,
			 const char *const *keys, const size_t *key_lens, int nargs,
			 const char *const *args, const size_t *arg_lens,
			 const struct lg_redis_opts *opts, struct lg_redis_reply **out,
			 struct lg_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_REDIS_H */
