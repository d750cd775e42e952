/* HTTP request reader, routing, bearer tokens, response heads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "http_request.h"
#include "http_route.h"

/* Feeds text whole; returns bytes consumed. */
static size_t feed(struct rf_http_reader *r, const char *text)
{
	return rf_http_reader_feed(r, text, strlen(text));
}

Test(http_request, parses_a_simple_get)
{
	struct rf_http_reader r;
	rf_http_reader_init(&r, NULL);
	const char *req = "GET /status?verbose=1 HTTP/1.1\r\nHost: x\r\n"
			  "authorization: Bearer abc\r\n\r\n";
	cr_assert_eq(feed(&r, req), strlen(req));
	cr_assert(r.complete);
	cr_assert_eq(r.error_status, 0);
	cr_assert_eq(r.req.method, HTTP_GET);
	cr_assert_str_eq(r.req.path, "/status");
	cr_assert_str_eq(r.req.url, "/status?verbose=1");
	cr_assert(r.req.keep_alive);
	cr_assert(r.req.has_authorization);
	cr_assert_str_eq(r.req.authorization, "Bearer abc");
	cr_assert_null(r.req.body);
	rf_http_reader_close(&r);
}

Test(http_request, stops_after_each_pipelined_request)
{
	struct rf_http_reader r;
	rf_http_reader_init(&r, NULL);
	const char *one = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *two = "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz";
	char both[256];
	snprintf(both, sizeof(both), "%s%s", one, two);
	size_t used = feed(&r, both);
	cr_assert_eq(used, strlen(one));
	cr_assert(r.complete);
	cr_assert_str_eq(r.req.path, "/a");
	cr_assert_eq(rf_http_reader_feed(&r, both + used, strlen(both) - used), 0,
		     "fed while complete");
	rf_http_reader_next(&r);
	cr_assert_eq(rf_http_reader_feed(&r, both + used, strlen(both) - used), strlen(two));
	cr_assert(r.complete);
	cr_assert_eq(r.req.method, HTTP_POST);
	cr_assert_str_eq(r.req.path, "/b");
	cr_assert_eq(r.req.body_len, 3);
	cr_assert_str_eq(r.req.body, "xyz");
	cr_assert(!r.req.has_authorization, "state leaked from the previous request");
	rf_http_reader_close(&r);
}

Test(http_request, byte_by_byte_and_chunked_bodies)
{
	struct rf_http_reader r;
	rf_http_reader_init(&r, NULL);
	const char *req = "POST /members HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
			  "Authorization: Bearer t\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
	size_t len = strlen(req);
	for (size_t i = 0; i < len; i++) {
		cr_assert(!r.complete, "complete early at %zu", i);
		cr_assert_eq(rf_http_reader_feed(&r, req + i, 1), 1);
		cr_assert_eq(r.error_status, 0, "error at byte %zu", i);
	}
	cr_assert(r.complete);
	cr_assert_str_eq(r.req.body, "{\"a\":1}");
	cr_assert_str_eq(r.req.authorization, "Bearer t");
	rf_http_reader_close(&r);
}

Test(http_request, keep_alive_follows_the_version_and_connection_header)
{
	static const struct {
		const char *req;
		bool keep;
	} cases[] = {
	    {"GET / HTTP/1.1\r\n\r\n", true},
	    {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
	    {"GET / HTTP/1.0\r\n\r\n", false},
	    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rf_http_reader r;
		rf_http_reader_init(&r, NULL);
		feed(&r, cases[i].req);
		cr_assert(r.complete, "case %zu", i);
		cr_assert_eq(r.req.keep_alive, cases[i].keep, "case %zu", i);
		rf_http_reader_close(&r);
	}
}

static int error_of(const char *req, const struct rf_http_limits *limits)
{
	struct rf_http_reader r;
	rf_http_reader_init(&r, limits);
	feed(&r, req);
	int status = r.error_status;
	cr_assert(status == 0 || !r.complete, "complete and failed (%d): %s", status, req);
	rf_http_reader_close(&r);
	return status;
}

Test(http_request, errors_carry_the_status_to_answer)
{
	char big[RF_HTTP_MAX_URL + 200];
	snprintf(big, sizeof(big), "GET /%0*d HTTP/1.1\r\n\r\n", RF_HTTP_MAX_URL, 0);
	cr_assert_eq(error_of(big, NULL), 414);
	cr_assert_eq(error_of("GARBAGE\r\n\r\n", NULL), 400);
	cr_assert_eq(error_of("GET / HTTP/9.9x\r\n\r\n", NULL), 400);
	cr_assert_eq(error_of("GET / HTTP/1.1\r\nBad Header\r\n\r\n", NULL), 400);
	cr_assert_eq(error_of("POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", NULL), 413);
	cr_assert_eq(
	    error_of("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", NULL),
	    400);
	cr_assert_eq(
	    error_of("GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", NULL), 400);
	struct rf_http_limits small = {64, 3, 8};
	cr_assert_eq(error_of("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &small),
		     431);
	cr_assert_eq(error_of("GET / HTTP/1.1\r\nA: 0123456789012345678901234567890123456789"
			      "0123456789012345678901234567890123456789\r\n\r\n",
			      &small),
		     431);
	cr_assert_eq(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "10\r\n0123456789abcdef\r\n0\r\n\r\n",
			      &small),
		     413);
	char auth[RF_HTTP_MAX_AUTH + 100];
	snprintf(auth, sizeof(auth), "GET / HTTP/1.1\r\nAuthorization: %0*d\r\n\r\n",
		 RF_HTTP_MAX_AUTH + 1, 0);
	cr_assert_eq(error_of(auth, NULL), 431);
}

Test(http_request, bearer_tokens)
{
	struct rf_http_request req;
	memset(&req, 0, sizeof(req));
	cr_assert(rf_http_bearer_ok(&req, NULL), "no token configured: open");
	cr_assert(rf_http_bearer_ok(&req, ""), "empty token: open");
	cr_assert(!rf_http_bearer_ok(&req, "s3cret"), "missing header");
	req.has_authorization = true;
	static const struct {
		const char *header;
		bool ok;
	} cases[] = {
	    {"Bearer s3cret", true},   {"bearer s3cret", true},   {"Bearer s3cre", false},
	    {"Bearer s3cret2", false}, {"Bearer S3cret", false},  {"Basic s3cret", false},
	    {"Bearer", false},         {"Bearer  s3cret", false}, {"s3cret", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(req.authorization, sizeof(req.authorization), "%s", cases[i].header);
		cr_assert_eq(rf_http_bearer_ok(&req, "s3cret"), cases[i].ok, "%s", cases[i].header);
	}
	cr_assert(rf_consttime_equal("abc", 3, "abc", 3));
	cr_assert(!rf_consttime_equal("abc", 3, "abd", 3));
	cr_assert(!rf_consttime_equal("abc", 3, "abc\0", 4));
	cr_assert(rf_consttime_equal("", 0, "", 0));
}

static struct rf_route_match route(enum http_method m, const char *path)
{
	struct rf_http_request req;
	memset(&req, 0, sizeof(req));
	req.method = m;
	snprintf(req.path, sizeof(req.path), "%s", path);
	return rf_http_route(&req);
}

Test(http_route, table)
{
	cr_assert_eq(route(HTTP_GET, "/status").route, RF_ROUTE_STATUS);
	cr_assert_eq(route(HTTP_HEAD, "/status").route, RF_ROUTE_STATUS);
	cr_assert_eq(route(HTTP_GET, "/leader").route, RF_ROUTE_LEADER);
	cr_assert_eq(route(HTTP_GET, "/healthz").route, RF_ROUTE_HEALTHZ);
	cr_assert_eq(route(HTTP_GET, "/readyz").route, RF_ROUTE_READYZ);
	cr_assert_eq(route(HTTP_GET, "/metrics").route, RF_ROUTE_METRICS);
	cr_assert_eq(route(HTTP_GET, "/members").route, RF_ROUTE_MEMBERS_LIST);
	cr_assert(!route(HTTP_GET, "/members").admin);
	struct rf_route_match m = route(HTTP_POST, "/members");
	cr_assert(m.route == RF_ROUTE_MEMBERS_ADD && m.admin && m.status == 0);
	m = route(HTTP_DELETE, "/members/42");
	cr_assert(m.route == RF_ROUTE_MEMBERS_REMOVE && m.admin && m.member_id == 42);
	m = route(HTTP_POST, "/status");
	cr_assert(m.status == 405 && strcmp(m.allow, "GET, HEAD") == 0);
	m = route(HTTP_GET, "/members/42");
	cr_assert(m.status == 405 && strcmp(m.allow, "DELETE") == 0);
	cr_assert_eq(route(HTTP_PUT, "/members").status, 405);
	cr_assert_eq(route(HTTP_GET, "/").status, 404);
	cr_assert_eq(route(HTTP_GET, "/status/").status, 404);
	cr_assert_eq(route(HTTP_GET, "/STATUS").status, 404);
	cr_assert_eq(route(HTTP_DELETE, "/members/0").status, 404);
	cr_assert_eq(route(HTTP_DELETE, "/members/1x").status, 404);
	cr_assert_eq(route(HTTP_DELETE, "/members/").status, 404);
	cr_assert_eq(route(HTTP_DELETE, "/members/12345678901234567890").status, 404);
}

Test(http_route, response_head)
{
	char buf[512];
	size_t n = rf_http_format_head(buf, sizeof(buf), 503, "application/json", 17, true,
				       "Allow: GET\r\n");
	cr_assert_eq(n, strlen(buf));
	cr_assert(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0, "%s", buf);
	cr_assert(strstr(buf, "\r\nContent-Length: 17\r\n"));
	cr_assert(strstr(buf, "\r\nConnection: keep-alive\r\n"));
	cr_assert(strstr(buf, "\r\nAllow: GET\r\n\r\n"));
	cr_assert_eq(rf_http_format_head(buf, 20, 200, "text/plain", 1, false, NULL), 0);
}

Test(http_route, every_status_the_reflector_sends_has_its_reason_phrase)
{
	/* The codes of status.c's per-code request counter, which lists every status the daemon
	 * answers with, and the RFC 9110 phrases (413 by its older name, as http-parser has it). */
	static const struct {
		int status;
		const char *line;
	} cases[] = {
	    {200, "HTTP/1.1 200 OK\r\n"},
	    {202, "HTTP/1.1 202 Accepted\r\n"},
	    {400, "HTTP/1.1 400 Bad Request\r\n"},
	    {401, "HTTP/1.1 401 Unauthorized\r\n"},
	    {404, "HTTP/1.1 404 Not Found\r\n"},
	    {405, "HTTP/1.1 405 Method Not Allowed\r\n"},
	    {409, "HTTP/1.1 409 Conflict\r\n"},
	    {413, "HTTP/1.1 413 Payload Too Large\r\n"},
	    {414, "HTTP/1.1 414 URI Too Long\r\n"},
	    {415, "HTTP/1.1 415 Unsupported Media Type\r\n"},
	    {421, "HTTP/1.1 421 Misdirected Request\r\n"},
	    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
	    {500, "HTTP/1.1 500 Internal Server Error\r\n"},
	    {503, "HTTP/1.1 503 Service Unavailable\r\n"},
	    {504, "HTTP/1.1 504 Gateway Timeout\r\n"},
	};
	char buf[512];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = rf_http_format_head(buf, sizeof(buf), cases[i].status, "text/plain", 0,
					       false, NULL);
		cr_assert_gt(n, 0);
		cr_expect(strncmp(buf, cases[i].line, strlen(cases[i].line)) == 0, "%s", buf);
	}
}
