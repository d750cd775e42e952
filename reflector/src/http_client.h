/*
 * A minimal blocking HTTP/1.1 client for the command line tools, tests and benchmarks:
 * one request per connection, "host:port" targets (IPv4 literal or a name resolved with
 * getaddrinfo), an overall deadline. No libuv.
 */
#ifndef RF_HTTP_CLIENT_H
#define RF_HTTP_CLIENT_H

#include <stddef.h>

#include "config.h"

struct rf_http_response {
	int status;
	char *body; /* Owned; NUL-terminated; never NULL after success */
	size_t body_len;
};

/*
 * Sends method path to address with optional extra header lines (complete "Name: value\r\n",
 * may be NULL) and body (may be NULL), and reads the whole response within timeout_ms.
 * Returns 0 with *resp filled (release with rf_http_response_free), or -1 with a short
 * sentence in err ("connection refused", "timed out", "malformed response").
 */
int rf_http_fetch(const char *address, const char *method, const char *path, const char *headers,
		  const char *body, size_t body_len, int timeout_ms, struct rf_http_response *resp,
		  char *err, size_t errlen);

void rf_http_response_free(struct rf_http_response *resp);

/* Splits "http://host:port[/path]" into address; returns 0 or -1. */
int rf_http_url_address(const char *url, char address[RF_ADDR_MAX]);

#endif
