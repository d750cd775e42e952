/*
 * The users service's request reader: http-parser 2.9 callbacks that collect the URL, the
 * headers the service reads and the body under the server's limits (pure: no sockets, no
 * libuv). The parser pauses at the end of each message, so pipelined requests are answered
 * one at a time and in order.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svc_http_int.h"

const char *svc_http_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return status >= 500 ? "Internal Server Error" : "Error";
	}
}

bool svc_http_reply(struct svc_http_resp *resp, int status, const char *body, size_t len)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
	resp->status = status;
	if (len == 0) {
		return true;
	}
	resp->body = malloc(len);
	if (resp->body == NULL) {
		resp->status = 500;
		return false;
	}
	memcpy(resp->body, body, len);
	resp->body_len = len;
	return true;
}

bool svc_http_header(struct svc_http_resp *resp, const char *name, const char *value)
{
	size_t used = strlen(resp->headers);
	int n =
	    snprintf(resp->headers + used, sizeof(resp->headers) - used, "%s: %s\r\n", name, value);
	if (n < 0 || (size_t)n >= sizeof(resp->headers) - used) {
		resp->headers[used] = '\0';
		return false;
	}
	return true;
}

/* ---- Request parsing (http-parser callbacks) ------------------------------------------- */

static struct svc_http_reader *reader_of(http_parser *p)
{
	return p->data;
}

/* Records the status to answer; the non-zero return stops http_parser_execute. */
static int reader_fail(struct svc_http_reader *c, int status)
{
	if (c->error_status == 0) {
		c->error_status = status;
	}
	return -1;
}

static int reader_on_begin(http_parser *p)
{
	struct svc_http_reader *c = reader_of(p);
	c->header_bytes = 0;
	c->field_len = 0;
	c->in_value = false;
	c->hdr = HDR_OTHER;
	c->in_message = true;
	return 0;
}

static int reader_on_url(http_parser *p, const char *at, size_t len)
{
	struct svc_http_reader *c = reader_of(p);
	if (len > SVC_MAX_URL - c->req.url_len) {
		return reader_fail(c, 414);
	}
	memcpy(c->req.url + c->req.url_len, at, len);
	c->req.url_len += len;
	c->req.url[c->req.url_len] = '\0';
	return 0;
}

static int reader_count(struct svc_http_reader *c, size_t len)
{
	if (len > c->limits.max_header_bytes - c->header_bytes) {
		return reader_fail(c, 431);
	}
	c->header_bytes += len;
	return 0;
}

static int reader_on_field(http_parser *p, const char *at, size_t len)
{
	struct svc_http_reader *c = reader_of(p);
	if (reader_count(c, len) != 0) {
		return -1;
	}
	if (c->in_value) {
		c->in_value = false;
		c->field_len = 0;
	}
	size_t room = sizeof(c->field) - 1 - c->field_len;
	size_t n = len < room ? len : room;
	memcpy(c->field + c->field_len, at, n);
	c->field_len += n;
	c->field[c->field_len] = '\0';
	return 0;
}

static int reader_on_value(http_parser *p, const char *at, size_t len)
{
	struct svc_http_reader *c = reader_of(p);
	if (reader_count(c, len) != 0) {
		return -1;
	}
	if (!c->in_value) {
		c->in_value = true;
		c->value_len = 0;
		c->hdr = strcasecmp(c->field, "lifeguard-token") == 0 ? HDR_TOKEN
			 : strcasecmp(c->field, "cache-control") == 0 ? HDR_CACHE_CONTROL
								      : HDR_OTHER;
	}
	if (c->hdr == HDR_TOKEN) {
		if (len > SVC_MAX_TOKEN - c->value_len) {
			return reader_fail(c, 431);
		}
		memcpy(c->req.token + c->value_len, at, len);
		c->value_len += len;
		c->req.token[c->value_len] = '\0';
	} else if (c->hdr == HDR_CACHE_CONTROL && len >= 8 && memmem(at, len, "no-cache", 8)) {
		c->req.no_cache = true;
	}
	return 0;
}

static int reader_on_headers_complete(http_parser *p)
{
	struct svc_http_reader *c = reader_of(p);
	if (p->content_length != ULLONG_MAX && p->content_length > c->limits.max_body) {
		return reader_fail(c, 413);
	}
	return 0;
}

static int reader_on_body(http_parser *p, const char *at, size_t len)
{
	struct svc_http_reader *c = reader_of(p);
	if (len > c->limits.max_body - c->req.body_len) {
		return reader_fail(c, 413);
	}
	if (c->req.body_len + len + 1 > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap * 2 : 1024;
		while (cap < c->req.body_len + len + 1) {
			cap *= 2;
		}
		char *b = realloc(c->req.body, cap);
		if (b == NULL) {
			return reader_fail(c, 503);
		}
		c->req.body = b;
		c->body_cap = cap;
	}
	memcpy(c->req.body + c->req.body_len, at, len);
	c->req.body_len += len;
	c->req.body[c->req.body_len] = '\0';
	return 0;
}

static int reader_on_complete(http_parser *p)
{
	struct svc_http_reader *c = reader_of(p);
	c->req.method = (enum http_method)p->method;
	c->req.keep_alive = http_should_keep_alive(p) != 0;
	c->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings reader_settings = {
    .on_message_begin = reader_on_begin,
    .on_url = reader_on_url,
    .on_header_field = reader_on_field,
    .on_header_value = reader_on_value,
    .on_headers_complete = reader_on_headers_complete,
    .on_body = reader_on_body,
    .on_message_complete = reader_on_complete,
};

void svc_http_reader_init(struct svc_http_reader *r, const struct svc_http_limits *limits)
{
	memset(r, 0, sizeof(*r));
	r->limits = *limits;
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
}

size_t svc_http_reader_feed(struct svc_http_reader *r, const char *data, size_t len)
{
	if (r->complete || r->error_status != 0 || len == 0) {
		return 0;
	}
	size_t used = http_parser_execute(&r->parser, &reader_settings, data, len);
	if (r->error_status == 0 && !r->complete &&
	    (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK || r->parser.upgrade)) {
		r->error_status = 400; /* malformed, or a protocol upgrade (not supported) */
	}
	return used;
}

void svc_http_reader_next(struct svc_http_reader *r)
{
	free(r->req.body);
	memset(&r->req, 0, sizeof(r->req));
	r->body_cap = 0;
	r->complete = false;
	r->in_message = false;
	http_parser_pause(&r->parser, 0);
}

void svc_http_reader_close(struct svc_http_reader *r)
{
	free(r->req.body);
	r->req.body = NULL;
}
