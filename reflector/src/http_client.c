/*
 * Blocking client: nonblocking socket + poll() against one deadline for connect, send and
 * receive; the response is parsed with http-parser (HTTP_RESPONSE) and is complete at
 * on_message_complete or, for responses delimited by EOF, when the peer closes.
 * Failure modes: refused/unreachable (connect), deadline (timed out), reset, malformed
 * response, response larger than 4 MiB. The socket is always closed before returning.
 */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "hostport.h"

#define CLIENT_MAX_BODY (4 * 1024 * 1024)

struct client_state {
	struct rf_http_response *resp;
	size_t cap;
	bool done;
	bool too_big;
	bool head; /* a HEAD response has no body whatever its Content-Length says */
};

static int64_t client_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int client_on_body(http_parser *p, const char *at, size_t len)
{
	struct client_state *cs = p->data;
	struct rf_http_response *r = cs->resp;
	if (r->body_len + len + 1 > CLIENT_MAX_BODY) {
		cs->too_big = true;
		return 1;
	}
	if (r->body_len + len + 1 > cs->cap) {
		size_t cap = cs->cap == 0 ? 1024 : cs->cap;
		while (cap < r->body_len + len + 1) {
			cap *= 2;
		}
		char *grown = realloc(r->body, cap);
		if (grown == NULL) {
			cs->too_big = true;
			return 1;
		}
		r->body = grown;
		cs->cap = cap;
	}
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

static int client_on_headers_complete(http_parser *p)
{
	struct client_state *cs = p->data;
	return cs->head ? 1 : 0; /* 1 = skip the body */
}

static int client_on_complete(http_parser *p)
{
	struct client_state *cs = p->data;
	cs->resp->status = (int)p->status_code;
	cs->done = true;
	return 0;
}

static int client_fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -1;
}

/* Waits for events on fd until deadline; 1 ready, 0 timed out, -1 error. */
static int client_wait(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - client_now_ms();
		if (left <= 0) {
			return 0;
		}
		struct pollfd pfd = {fd, events, 0};
		int rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR) {
			continue;
		}
		return rc < 0 ? -1 : rc;
	}
}

static int client_connect(const char *address, int64_t deadline, char *err, size_t errlen)
{
	char host[RF_HOSTPORT_MAX];
	unsigned port;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	if (rf_hostport_parse(address, true, host, &port) != 0) {
		return client_fail(err, errlen, "invalid address");
	}
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		/* A host name: resolved now (blocking; the client is for tools and start-up). */
		struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
		struct addrinfo *res = NULL;
		int rc = getaddrinfo(host, NULL, &hints, &res);
		if (rc != 0 || res == NULL) {
			client_fail(err, errlen, rc != 0 ? gai_strerror(rc) : "no IPv4 address");
			freeaddrinfo(res);
			return -1;
		}
		sa.sin_addr = ((const struct sockaddr_in *)res->ai_addr)->sin_addr;
		freeaddrinfo(res);
	}
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return client_fail(err, errlen, strerror(errno));
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		client_fail(err, errlen, strerror(errno));
		close(fd);
		return -1;
	}
	int rc = client_wait(fd, POLLOUT, deadline);
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (rc <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
		client_fail(err, errlen, rc == 0 ? "timed out" : strerror(soerr ? soerr : errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int client_send_all(int fd, const char *p, size_t len, int64_t deadline, char *err,
			   size_t errlen)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return client_fail(err, errlen, strerror(errno));
		}
		if (client_wait(fd, POLLOUT, deadline) <= 0) {
			return client_fail(err, errlen, "timed out");
		}
	}
	return 0;
}

static int client_receive(int fd, bool head, struct rf_http_response *resp, int64_t deadline,
			  char *err, size_t errlen)
{
	http_parser_settings settings;
	memset(&settings, 0, sizeof(settings));
	settings.on_headers_complete = client_on_headers_complete;
	settings.on_body = client_on_body;
	settings.on_message_complete = client_on_complete;
	http_parser parser;
	http_parser_init(&parser, HTTP_RESPONSE);
	struct client_state cs = {resp, 0, false, false, head};
	parser.data = &cs;
	char buf[8192];
	while (!cs.done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (client_wait(fd, POLLIN, deadline) <= 0) {
				return client_fail(err, errlen, "timed out");
			}
			continue;
		}
		if (n < 0) {
			return client_fail(err, errlen, strerror(errno));
		}
		size_t used = http_parser_execute(&parser, &settings, buf, (size_t)n);
		if (cs.too_big) {
			return client_fail(err, errlen, "response too large");
		}
		if (HTTP_PARSER_ERRNO(&parser) != HPE_OK || (used != (size_t)n && !cs.done)) {
			return client_fail(err, errlen, "malformed response");
		}
		if (n == 0 && !cs.done) {
			return client_fail(err, errlen, "connection closed before the response");
		}
	}
	if (resp->body == NULL) {
		resp->body = calloc(1, 1);
		if (resp->body == NULL) {
			return client_fail(err, errlen, "out of memory");
		}
	}
	return 0;
}

int rf_http_fetch(const char *address, const char *method, const char *path, const char *headers,
		  const char *body, size_t body_len, int timeout_ms, struct rf_http_response *resp,
		  char *err, size_t errlen)
{
	memset(resp, 0, sizeof(*resp));
	int64_t deadline = client_now_ms() + timeout_ms;
	int fd = client_connect(address, deadline, err, errlen);
	if (fd < 0) {
		return -1;
	}
	char head[1024];
	int n = snprintf(head, sizeof(head),
			 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lifeguard-reflector\r\n"
			 "Connection: close\r\nContent-Length: %zu\r\n%s\r\n",
			 method, path, address, body != NULL ? body_len : 0,
			 headers != NULL ? headers : "");
	int rc = -1;
	if (n <= 0 || (size_t)n >= sizeof(head)) {
		client_fail(err, errlen, "request too large");
	} else if (client_send_all(fd, head, (size_t)n, deadline, err, errlen) == 0 &&
		   (body == NULL ||
		    client_send_all(fd, body, body_len, deadline, err, errlen) == 0)) {
		rc = client_receive(fd, strcmp(method, "HEAD") == 0, resp, deadline, err, errlen);
	}
	close(fd);
	if (rc != 0) {
		rf_http_response_free(resp);
	}
	return rc;
}

void rf_http_response_free(struct rf_http_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

int rf_http_url_address(const char *url, char address[RF_ADDR_MAX])
{
	static const char scheme[] = "http://";
	if (strncmp(url, scheme, sizeof(scheme) - 1) == 0) {
		url += sizeof(scheme) - 1;
	}
	size_t len = strcspn(url, "/");
	char host[RF_HOSTPORT_MAX];
	unsigned port;
	if (len == 0 || len >= RF_ADDR_MAX) {
		return -1;
	}
	memcpy(address, url, len);
	address[len] = '\0';
	return rf_hostport_parse(address, false, host, &port);
}
