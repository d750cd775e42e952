/*
 * Routing and response framing for the reflector's HTTP interface. Pure: no sockets.
 *
 * Endpoints: GET|HEAD /status /leader /healthz /readyz /metrics /members,
 * POST /members, DELETE /members/<id>. Anything else: 404 (unknown path) or 405 with an Allow
 * header (known path, wrong method).
 */
#ifndef RF_HTTP_ROUTE_H
#define RF_HTTP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_request.h"

enum rf_route {
	RF_ROUTE_NONE,
	RF_ROUTE_STATUS,
	RF_ROUTE_LEADER,
	RF_ROUTE_HEALTHZ,
	RF_ROUTE_READYZ,
	RF_ROUTE_METRICS,
	RF_ROUTE_MEMBERS_LIST,
	RF_ROUTE_MEMBERS_ADD,
	RF_ROUTE_MEMBERS_REMOVE,
};

struct rf_route_match {
	enum rf_route route;
	uint64_t member_id; /* RF_ROUTE_MEMBERS_REMOVE */
	int status;         /* 0 when routed; 404 or 405 otherwise */
	const char *allow;  /* for 405: the Allow header value (static) */
	bool admin;         /* needs the admin token */
};

/* Routes by method and path (req->path). */
struct rf_route_match rf_http_route(const struct rf_http_request *req);

/*
 * Writes the status line and headers of a response into buf (capacity cap) and returns the
 * length, or 0 if it does not fit. The reason phrase is http-parser's http_status_str().
 * extra_headers (may be NULL) are complete "Name: value\r\n" lines. content_length is the length of
 * the body that a GET would get (also for HEAD).
 */
size_t rf_http_format_head(char *buf, size_t cap, int status, const char *content_type,
			   size_t content_length, bool keep_alive, const char *extra_headers);

#endif
