/*
 * Request reader. http-parser does the HTTP grammar; this file adds what the daemon needs on
 * top: the limits, the few headers it uses, body collection, and a stop after every message.
 *
 * Happy path: feed() runs http_parser_execute(); callbacks collect the URL, note the
 * Authorization header and append body bytes; on_message_complete pauses the parser, so
 * execute() returns right after one request with the number of bytes it used. The caller
 * answers, calls next() (which unpauses), and feeds the remaining bytes.
 *
 * Failure modes: a callback returning non-zero makes execute() stop with HPE_CB_*; the callback
 * recorded the status first (414 URL, 431 header bytes/count, 413 body). Any other parser
 * error (bad method, bad version, bad chunk encoding, invalid characters, http-parser's own
 * 80 KiB header cap) is a 400. After an error the reader accepts no more input.
 */
#include "http_request.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct rf_http_reader *rd_of(http_parser *p)
{
	return p->data;
}

/* Records the error; the return value stops http_parser_execute(). It must not be 1: from
 * on_headers_complete, 1 means "no body follows", not an error. */
static int rd_fail(struct rf_http_reader *r, int status, const char *reason)
{
	if (r->error_status == 0) {
		r->error_status = status;
		r->error_reason = reason;
	}
	return -1;
}

static int rd_on_message_begin(http_parser *p)
{
	struct rf_http_reader *r = rd_of(p);
	r->header_bytes = 0;
	r->n_headers = 0;
	r->hdr = HDR_NONE;
	r->in_value = false;
	r->field_len = 0;
	return 0;
}

static int rd_on_url(http_parser *p, const char *at, size_t len)
{
	struct rf_http_reader *r = rd_of(p);
	if (len > RF_HTTP_MAX_URL - r->req.url_len) {
		return rd_fail(r, 414, "URI too long");
	}
	memcpy(r->req.url + r->req.url_len, at, len);
	r->req.url_len += len;
	r->req.url[r->req.url_len] = '\0';
	return 0;
}

static int rd_count_header_bytes(struct rf_http_reader *r, size_t len)
{
	if (len > r->limits.max_header_bytes - r->header_bytes) {
		return rd_fail(r, 431, "request header fields too large");
	}
	r->header_bytes += len;
	return 0;
}

static int rd_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct rf_http_reader *r = rd_of(p);
	if (rd_count_header_bytes(r, len) != 0) {
		return -1;
	}
	if (r->in_value || r->hdr == HDR_NONE) { /* a new header starts */
		if (++r->n_headers > r->limits.max_headers) {
			return rd_fail(r, 431, "too many request header fields");
		}
		r->in_value = false;
		r->field_len = 0;
		r->hdr = HDR_OTHER;
	}
	for (size_t i = 0; i < len && r->field_len + 1 < sizeof(r->field); i++) {
		r->field[r->field_len++] = (char)tolower((unsigned char)at[i]);
	}
	r->field[r->field_len] = '\0';
	return 0;
}

static int rd_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct rf_http_reader *r = rd_of(p);
	if (rd_count_header_bytes(r, len) != 0) {
		return -1;
	}
	if (!r->in_value) {
		r->in_value = true;
		r->hdr = strcmp(r->field, "authorization") == 0 ? HDR_AUTHORIZATION : HDR_OTHER;
		if (r->hdr == HDR_AUTHORIZATION) {
			if (r->req.has_authorization) {
				return rd_fail(r, 400, "duplicate Authorization header");
			}
			r->req.has_authorization = true;
		}
	}
	if (r->hdr == HDR_AUTHORIZATION) {
		size_t have = strlen(r->req.authorization);
		if (len > RF_HTTP_MAX_AUTH - have) {
			return rd_fail(r, 431, "Authorization header too large");
		}
		memcpy(r->req.authorization + have, at, len);
		r->req.authorization[have + len] = '\0';
	}
	return 0;
}

static int rd_on_headers_complete(http_parser *p)
{
	struct rf_http_reader *r = rd_of(p);
	struct http_parser_url u;
	if (r->req.url_len == 0) {
		return rd_fail(r, 400, "missing request target");
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(r->req.url, r->req.url_len, p->method == HTTP_CONNECT, &u) != 0) {
		return rd_fail(r, 400, "malformed request target");
	}
	if (u.field_set & (1 << UF_PATH)) {
		memcpy(r->req.path, r->req.url + u.field_data[UF_PATH].off,
		       u.field_data[UF_PATH].len);
		r->req.path[u.field_data[UF_PATH].len] = '\0';
	} else {
		strcpy(r->req.path, "/");
	}
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->limits.max_body) {
		return rd_fail(r, 413, "request body too large");
	}
	return 0;
}

static int rd_on_body(http_parser *p, const char *at, size_t len)
{
	struct rf_http_reader *r = rd_of(p);
	if (len > r->limits.max_body - r->req.body_len) {
		return rd_fail(r, 413, "request body too large");
	}
	if (r->req.body_len + len + 1 > r->body_cap) {
		size_t cap = r->body_cap == 0 ? 256 : r->body_cap;
		while (cap < r->req.body_len + len + 1) {
			cap *= 2;
		}
		char *grown = realloc(r->req.body, cap);
		if (grown == NULL) {
			return rd_fail(r, 503, "out of memory");
		}
		r->req.body = grown;
		r->body_cap = cap;
	}
	memcpy(r->req.body + r->req.body_len, at, len);
	r->req.body_len += len;
	r->req.body[r->req.body_len] = '\0';
	return 0;
}

static int rd_on_message_complete(http_parser *p)
{
	struct rf_http_reader *r = rd_of(p);
	r->req.method = (enum http_method)p->method;
	r->req.keep_alive = http_should_keep_alive(p) && !p->upgrade;
	r->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings rd_settings = {
    .on_message_begin = rd_on_message_begin,
    .on_url = rd_on_url,
    .on_header_field = rd_on_header_field,
    .on_header_value = rd_on_header_value,
    .on_headers_complete = rd_on_headers_complete,
    .on_body = rd_on_body,
    .on_message_complete = rd_on_message_complete,
};

void rf_http_reader_init(struct rf_http_reader *r, const struct rf_http_limits *limits)
{
	memset(r, 0, sizeof(*r));
	r->limits.max_header_bytes = RF_HTTP_DEFAULT_MAX_HEADER_BYTES;
	r->limits.max_headers = RF_HTTP_DEFAULT_MAX_HEADERS;
	r->limits.max_body = RF_HTTP_DEFAULT_MAX_BODY;
	if (limits != NULL) {
		r->limits = *limits;
	}
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
}

size_t rf_http_reader_feed(struct rf_http_reader *r, const char *data, size_t len)
{
	if (r->complete || r->error_status != 0 || len == 0) {
		return 0;
	}
	size_t used = http_parser_execute(&r->parser, &rd_settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
	if (r->complete) {
		return used;
	}
	if (e != HPE_OK) {
		rd_fail(r, 400, "malformed request");
		return used;
	}
	if (r->parser.upgrade) { /* CONNECT or Upgrade without a complete message */
		rd_fail(r, 400, "protocol upgrades are not supported");
	}
	return used;
}

void rf_http_reader_next(struct rf_http_reader *r)
{
	free(r->req.body);
	memset(&r->req, 0, sizeof(r->req));
	r->body_cap = 0;
	r->complete = false;
	http_parser_pause(&r->parser, 0);
}

void rf_http_reader_close(struct rf_http_reader *r)
{
	free(r->req.body);
	r->req.body = NULL;
	r->body_cap = 0;
}

bool rf_consttime_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Compare over the longer length so that the time depends on lengths only. */
	size_t n = alen > blen ? alen : blen;
	unsigned char diff = (unsigned char)(alen != blen);
	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < alen ? (unsigned char)a[i] : 0;
		unsigned char y = i < blen ? (unsigned char)b[i] : 0;
		diff |= (unsigned char)(x ^ y);
	}
	return diff == 0;
}

bool rf_http_bearer_ok(const struct rf_http_request *req, const char *token)
{
	if (token == NULL || token[0] == '\0') {
		return true;
	}
	static const char scheme[] = "Bearer ";
	const char *h = req->authorization;
	size_t len = strlen(h);
	if (!req->has_authorization || len < sizeof(scheme) - 1 ||
	    strncasecmp(h, scheme, sizeof(scheme) - 1) != 0) {
		return false;
	}
	const char *given = h + sizeof(scheme) - 1;
	return rf_consttime_equal(given, len - (sizeof(scheme) - 1), token, strlen(token));
}
