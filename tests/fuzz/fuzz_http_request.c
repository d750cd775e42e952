/*
 * libFuzzer harness: the HTTP request reader and the router (reflector/src/http_request.c,
 * http_route.c). The first input byte picks the size of the chunks the rest is fed in, so
 * that requests split at every possible position are exercised, as over a real socket.
 * Invariants checked: progress is always made or the reader stops; a request is either
 * complete or failed, never both; parsed strings stay within their buffers; routing answers
 * a defined status.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_request.h"
#include "http_route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0) {
		return 0;
	}
	size_t chunk = (size_t)data[0] % 64 + 1;
	const char *p = (const char *)data + 1;
	size_t left = size - 1;
	struct rf_http_reader r;
	struct rf_http_limits limits = {512, 16, 256};
	rf_http_reader_init(&r, data[0] & 0x80 ? &limits : NULL);
	while (left > 0) {
		size_t n = left < chunk ? left : chunk;
		size_t used = rf_http_reader_feed(&r, p, n);
		assert(used <= n);
		p += used;
		left -= used;
		assert(!(r.complete && r.error_status != 0));
		if (r.error_status != 0) {
			assert(r.error_status >= 400 && r.error_status < 600);
			break;
		}
		if (r.complete) {
			assert(strlen(r.req.url) == r.req.url_len &&
			       r.req.url_len <= RF_HTTP_MAX_URL);
			assert(strlen(r.req.path) <= RF_HTTP_MAX_URL);
			assert(strlen(r.req.authorization) <= RF_HTTP_MAX_AUTH);
			assert(r.req.body_len <= r.limits.max_body);
			assert(r.req.body == NULL || r.req.body[r.req.body_len] == '\0');
			struct rf_route_match m = rf_http_route(&r.req);
			assert(m.status == 0 || m.status == 404 || m.status == 405);
			assert(m.status != 405 || m.allow != NULL);
			(void)rf_http_bearer_ok(&r.req, "token");
			rf_http_reader_next(&r);
			continue;
		}
		assert(used == n); /* incomplete: everything given was consumed */
	}
	rf_http_reader_close(&r);
	return 0;
}
