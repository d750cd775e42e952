/*
 * Incremental HTTP/1.x request reader on top of http-parser 2.9.4, with size limits.
 *
 * Pure: bytes in, parsed requests out; no sockets, no libuv. The server feeds whatever it read;
 * the reader stops after each complete request (so pipelined requests are answered in order)
 * or at the first error, which carries the status to answer before closing the connection
 * (400 malformed, 413 body too large, 414 URL too long, 431 headers too large).
 */
#ifndef RF_HTTP_REQUEST_H
#define RF_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#define RF_HTTP_MAX_URL                  2048
#define RF_HTTP_MAX_AUTH                 512
#define RF_HTTP_DEFAULT_MAX_HEADER_BYTES 8192
#define RF_HTTP_DEFAULT_MAX_HEADERS      64
#define RF_HTTP_DEFAULT_MAX_BODY         16384

struct rf_http_limits {
	size_t max_header_bytes; /* names + values of all headers */
	size_t max_headers;
	size_t max_body;
};

struct rf_http_request {
	enum http_method method;
	char url[RF_HTTP_MAX_URL + 1];
	size_t url_len;
	char path[RF_HTTP_MAX_URL + 1]; /* the URL's path component ("/status") */
	char authorization[RF_HTTP_MAX_AUTH + 1];
	bool has_authorization;
	char *body; /* Owned by the reader; NUL-terminated; NULL if empty */
	size_t body_len;
	bool keep_alive; /* the client allows another request on this connection */
};

enum rf_http_hdr { HDR_NONE, HDR_OTHER, HDR_AUTHORIZATION };

struct rf_http_reader {
	http_parser parser;
	struct rf_http_limits limits;
	struct rf_http_request req;
	size_t header_bytes;
	size_t n_headers;
	char field[32]; /* current header name (prefix, lower-cased) */
	size_t field_len;
	bool in_value;
	enum rf_http_hdr hdr;
	size_t body_cap;
	bool complete;            /* req holds a whole request */
	int error_status;         /* != 0: answer this status and close */
	const char *error_reason; /* static text for the error body */
};

/* Initializes r; limits NULL = defaults. */
void rf_http_reader_init(struct rf_http_reader *r, const struct rf_http_limits *limits);

/*
 * Parses from data (len bytes) and returns how many bytes were consumed. Afterwards exactly one
 * of: r->complete (a request is in r->req; call rf_http_reader_next before feeding the rest),
 * r->error_status != 0 (stop reading), or all of data was consumed and more is needed.
 */
size_t rf_http_reader_feed(struct rf_http_reader *r, const char *data, size_t len);

/* Releases the finished request and prepares for the next one on the same connection. */
void rf_http_reader_next(struct rf_http_reader *r);

/* Releases everything; r may be re-initialized. */
void rf_http_reader_close(struct rf_http_reader *r);

/*
 * True when an admin request may proceed: token NULL or empty (protection disabled), or the
 * Authorization header is exactly "Bearer <token>". The comparison takes time independent of
 * where the first difference is (it depends only on the lengths).
 */
bool rf_http_bearer_ok(const struct rf_http_request *req, const char *token);

/* Constant-time equality of a and b (lengths may leak, contents do not). */
bool rf_consttime_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
