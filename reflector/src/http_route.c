/* Routing table and HTTP/1.1 response heads (see http_route.h). */
#include "http_route.h"

#include <stdio.h>
#include <string.h>

struct route_entry {
	const char *path;
	enum rf_route get; /* also HEAD */
	enum rf_route post;
	const char *allow;
};

static const struct route_entry route_table[] = {
    {"/status", RF_ROUTE_STATUS, RF_ROUTE_NONE, "GET, HEAD"},
    {"/leader", RF_ROUTE_LEADER, RF_ROUTE_NONE, "GET, HEAD"},
    {"/healthz", RF_ROUTE_HEALTHZ, RF_ROUTE_NONE, "GET, HEAD"},
    {"/readyz", RF_ROUTE_READYZ, RF_ROUTE_NONE, "GET, HEAD"},
    {"/metrics", RF_ROUTE_METRICS, RF_ROUTE_NONE, "GET, HEAD"},
    {"/members", RF_ROUTE_MEMBERS_LIST, RF_ROUTE_MEMBERS_ADD, "GET, HEAD, POST"},
};

/* "/members/<id>" with a decimal id in [1, 2^63). */
static bool route_member_id(const char *path, uint64_t *id)
{
	static const char prefix[] = "/members/";
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
		return false;
	}
	const char *p = path + sizeof(prefix) - 1;
	uint64_t v = 0;
	if (*p == '\0' || strlen(p) > 18) {
		return false;
	}
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9') {
			return false;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*id = v;
	return v != 0;
}

struct rf_route_match rf_http_route(const struct rf_http_request *req)
{
	struct rf_route_match m = {RF_ROUTE_NONE, 0, 404, NULL, false};
	bool read = req->method == HTTP_GET || req->method == HTTP_HEAD;
	for (size_t i = 0; i < sizeof(route_table) / sizeof(route_table[0]); i++) {
		const struct route_entry *e = &route_table[i];
		if (strcmp(req->path, e->path) != 0) {
			continue;
		}
		if (read) {
			m.route = e->get;
		} else if (req->method == HTTP_POST && e->post != RF_ROUTE_NONE) {
			m.route = e->post;
			m.admin = true;
		}
		m.status = m.route == RF_ROUTE_NONE ? 405 : 0;
		m.allow = e->allow;
		return m;
	}
	if (route_member_id(req->path, &m.member_id)) {
		m.allow = "DELETE";
		if (req->method == HTTP_DELETE) {
			m.route = RF_ROUTE_MEMBERS_REMOVE;
			m.admin = true;
			m.status = 0;
		} else {
			m.status = 405;
		}
	}
	return m;
}

size_t rf_http_format_head(char *buf, size_t cap, int status, const char *content_type,
			   size_t content_length, bool keep_alive, const char *extra_headers)
{
	/* http-parser's table names every status the reflector sends; any other code would get
	 * "<unknown>", which clients ignore since they read the number. */
	int n = snprintf(buf, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n"
			 "Connection: %s\r\n"
			 "%s"
			 "\r\n",
			 status, http_status_str((enum http_status)status), content_type,
			 content_length, keep_alive ? "keep-alive" : "close",
			 extra_headers != NULL ? extra_headers : "");
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
