/*
 * The users service's small HTTP/1.1 server: libuv for the sockets, http-parser for the
 * requests, one libguard coroutine per request (the handler may block on the database).
 */
#ifndef SVC_HTTP_H
#define SVC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

struct lg_runtime;

#define SVC_MAX_URL   2048
#define SVC_MAX_TOKEN 256

struct svc_http_limits {
	size_t max_header_bytes;     /* names + values of all headers; 0 = 8 KiB */
	size_t max_body;             /* 0 = 64 KiB */
	uint64_t request_timeout_ms; /* first byte -> whole request; 0 = 10,000 */
	uint64_t idle_timeout_ms;    /* keep-alive wait for the next request; 0 = 60,000 */
};

struct svc_http_req {
	enum http_method method;
	char url[SVC_MAX_URL + 1];
	size_t url_len;
	char token[SVC_MAX_TOKEN + 1]; /* Lifeguard-Token, "" when absent */
	bool no_cache;                 /* Cache-Control: no-cache */
	char *body;                    /* Owned by the server; NUL-terminated; NULL when empty */
	size_t body_len;
	bool keep_alive;
};

/* A reply under construction. The handler sets status and body (Owned, malloc'd) and may add
 * header lines ("Name: value\r\n") to headers. */
struct svc_http_resp {
	int status;
	const char *content_type; /* Borrowed static text; NULL = application/json */
	char headers[512];
	char *body;
	size_t body_len;
};

/* Runs in a coroutine of the server's runtime; req and resp are Borrowed for the call. */
typedef void (*svc_http_handler)(void *ud, const struct svc_http_req *req,
				 struct svc_http_resp *resp);

struct svc_http;

/*
 * Listens on host:port (an IPv4 literal; port 0 picks one: svc_http_port). handler and ud
 * are Borrowed until svc_http_stop's close completes. Returns 0 or a negative libuv error.
 */
int svc_http_start(struct lg_runtime *rt, const char *host, int port,
		   const struct svc_http_limits *limits, svc_http_handler handler, void *ud,
		   struct svc_http **out);
int svc_http_port(const struct svc_http *srv);
/* Stops listening and closes idle connections; busy ones close after their reply. The
 * server frees itself once every handle has closed (the loop must keep running). */
void svc_http_stop(struct svc_http *srv);

/* Sets a reply: body is Copied. Returns false when out of memory (status becomes 500). */
bool svc_http_reply(struct svc_http_resp *resp, int status, const char *body, size_t len);
/* Appends a header line; false when it does not fit. */
bool svc_http_header(struct svc_http_resp *resp, const char *name, const char *value);
const char *svc_http_status_text(int status);

#endif
