/*
 * A small HTTP/1.1 server on a libuv loop: keep-alive, pipelining (answered in order),
 * request limits (see http_request.h), a deadline per request, an idle timeout and a connection
 * cap that makes room by closing the connection waiting longest.
 *
 * One request per connection is outstanding at a time: the server hands it to the handler as
 * an exchange and reads nothing more from that connection until the handler replies.
 */
#ifndef RF_HTTP_SERVER_H
#define RF_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "http_request.h"
#include "status.h"

#define RF_HTTP_IDLE_TIMEOUT_MS 30000
#define RF_HTTP_MAX_CONNECTIONS 256

struct rf_http_server;
struct rf_http_exchange;

/*
 * Called from the loop for every complete request. req is Borrowed until rf_http_reply() is
 * called for x, which the handler must do exactly once, now or later (from the loop).
 */
typedef void (*rf_http_handler)(void *data, struct rf_http_exchange *x,
				const struct rf_http_request *req);

/*
 * Binds address ("ip:port"), listens, and starts serving on loop (Borrowed: outlives the
 * server). A request must arrive within head_timeout_ms of its first byte (of the accept on a
 * new connection), else it is answered 408 and the connection closes. metrics (Borrowed, may be
 * NULL) counts every response by status code. On success *out is Owned by the caller and released
 * with rf_http_server_stop(). On failure returns a libuv error code, fills errbuf with a sentence,
 * and nothing remains to release.
 */
int rf_http_server_start(uv_loop_t *loop, const char *address, unsigned head_timeout_ms,
			 rf_http_handler handler, void *data, struct rf_metrics *metrics,
			 struct rf_http_server **out, char *errbuf, size_t errlen);

/*
 * Answers x. body (len bytes) is Copied; HEAD requests get the head only. extra_headers (may be
 * NULL) are complete "Name: value\r\n" lines, Copied. After this call x is gone.
 */
void rf_http_reply(struct rf_http_exchange *x, int status, const char *content_type,
		   const char *body, size_t len, const char *extra_headers);

/*
 * Stops accepting, closes idle connections at once and the others after their pending reply
 * is written; then frees s and calls cb(data) from the loop. cb may be NULL.
 */
void rf_http_server_stop(struct rf_http_server *s, void (*cb)(void *data), void *data);

#endif
