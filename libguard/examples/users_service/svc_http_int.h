/* Internal to the users service's HTTP server: the request reader (svc_http_reader.c). */
#ifndef SVC_HTTP_INT_H
#define SVC_HTTP_INT_H

#include "svc_http.h"

enum svc_http_hdr { HDR_OTHER, HDR_TOKEN, HDR_CACHE_CONTROL };

struct svc_http_reader {
	http_parser parser;
	struct svc_http_limits limits;
	struct svc_http_req req;
	size_t body_cap;
	size_t header_bytes;
	char field[32]; /* current header name (prefix) */
	size_t field_len;
	bool in_value;
	enum svc_http_hdr hdr;
	size_t value_len;
	bool in_message;  /* a request's first byte has arrived */
	bool complete;    /* req holds a whole request */
	int error_status; /* != 0: answer this status and close */
};

void svc_http_reader_init(struct svc_http_reader *r, const struct svc_http_limits *limits);
/* Parses what it can of data; returns the bytes consumed. Afterwards: r->complete (answer
 * req, then svc_http_reader_next before feeding the rest), r->error_status, or more needed. */
size_t svc_http_reader_feed(struct svc_http_reader *r, const char *data, size_t len);
void svc_http_reader_next(struct svc_http_reader *r);
void svc_http_reader_close(struct svc_http_reader *r);

#endif
