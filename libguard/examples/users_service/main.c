/*
 * users_service: a small HTTP JSON service over the users table of the ORM quickstart
 * (quickstart.users, model generated into libguard/examples/models/users.h), reading through
 * the reflector-kept Redis cache, a streaming replica chosen by lag, or the primary, with
 * read-your-writes tokens. docs/read-path.md ("The users service") describes the API.
 *
 *   users_service [--listen HOST:PORT] --primary DSN [--replica DSN] [--redis HOST:PORT]
 *                 [--no-cache] [--max-lag-bytes N] [--max-lag-ms N] [--pool-size N]
 *
 * Every flag has an environment variable (flags win): USERS_SERVICE_LISTEN,
 * USERS_SERVICE_PRIMARY, USERS_SERVICE_REPLICA, USERS_SERVICE_REDIS, USERS_SERVICE_NO_CACHE=1,
 * USERS_SERVICE_MAX_LAG_BYTES, USERS_SERVICE_MAX_LAG_MS, USERS_SERVICE_POOL_SIZE. Port 0 picks a
 * free port; the "listening on" line on stdout names it. SIGINT/SIGTERM stop it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "svc_api.h"

struct options {
	char listen[64];
	const char *primary, *replica;
	char redis_host[64];
	int redis_port;
	bool no_cache;
	unsigned long long max_lag_bytes, max_lag_ms, pool_size;
};

static int usage(const char *why)
{
	fprintf(stderr,
		"users_service: %s\nusage: users_service [--listen HOST:PORT] --primary DSN "
		"[--replica DSN] [--redis HOST:PORT] [--no-cache] [--max-lag-bytes N] "
		"[--max-lag-ms N] [--pool-size N]\n",
		why);
	return 2;
}

/* "HOST:PORT" into host and port; false when malformed. */
static bool split_hostport(const char *text, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(text, ':');
	char *end;
	if (colon == NULL || (size_t)(colon - text) >= hostlen || colon == text) {
		return false;
	}
	long p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || p < 0 || p > 65535) {
		return false;
	}
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	*port = (int)p;
	return true;
}

static bool parse_count(const char *text, unsigned long long *out)
{
	char *end;
	if (text == NULL || text[0] < '0' || text[0] > '9') {
		return false;
	}
	*out = strtoull(text, &end, 10);
	return *end == '\0';
}

static int parse_options(int argc, char **argv, struct options *o, int *listen_port)
{
	const char *listen = getenv("USERS_SERVICE_LISTEN"), *redis = getenv("USERS_SERVICE_REDIS");
	const char *lag = getenv("USERS_SERVICE_MAX_LAG_BYTES");
	const char *lag_ms = getenv("USERS_SERVICE_MAX_LAG_MS");
	const char *pool = getenv("USERS_SERVICE_POOL_SIZE");
	o->primary = getenv("USERS_SERVICE_PRIMARY");
	o->replica = getenv("USERS_SERVICE_REPLICA");
	o->no_cache =
	    getenv("USERS_SERVICE_NO_CACHE") && strcmp(getenv("USERS_SERVICE_NO_CACHE"), "1") == 0;
	static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
						 {"primary", required_argument, NULL, 'p'},
						 {"replica", required_argument, NULL, 'r'},
						 {"redis", required_argument, NULL, 'R'},
						 {"no-cache", no_argument, NULL, 'n'},
						 {"max-lag-bytes", required_argument, NULL, 'L'},
						 {"max-lag-ms", required_argument, NULL, 'M'},
						 {"pool-size", required_argument, NULL, 's'},
						 {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			listen = optarg;
			break;
		case 'p':
			o->primary = optarg;
			break;
		case 'r':
			o->replica = optarg;
			break;
		case 'R':
			redis = optarg;
			break;
		case 'n':
			o->no_cache = true;
			break;
		case 'L':
			lag = optarg;
			break;
		case 'M':
			lag_ms = optarg;
			break;
		case 's':
			pool = optarg;
			break;
		default:
			return usage("unknown option");
		}
	}
	if (optind != argc) {
		return usage("unexpected argument");
	}
	if (o->primary == NULL || o->primary[0] == '\0') {
		return usage("--primary (or USERS_SERVICE_PRIMARY) is required");
	}
	if (o->replica != NULL && o->replica[0] == '\0') {
		o->replica = NULL;
	}
	if (!split_hostport(listen ? listen : "127.0.0.1:8080", o->listen, sizeof(o->listen),
			    listen_port)) {
		return usage("--listen wants HOST:PORT");
	}
	if (redis != NULL && redis[0] != '\0' && !o->no_cache &&
	    (!split_hostport(redis, o->redis_host, sizeof(o->redis_host), &o->redis_port) ||
	     o->redis_port == 0)) {
		return usage("--redis wants HOST:PORT");
	}
	if ((lag && !parse_count(lag, &o->max_lag_bytes)) ||
	    (lag_ms && !parse_count(lag_ms, &o->max_lag_ms)) ||
	    (pool && (!parse_count(pool, &o->pool_size) || o->pool_size > 1000))) {
		return usage("--max-lag-bytes, --max-lag-ms and --pool-size want a number");
	}
	return 0;
}

struct service {
	struct svc_http *http;
	struct svc_store *store;
	struct lg_cond *stop;
	uv_signal_t sigint, sigterm;
};

static void service_on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	struct service *s = h->data;
	lg_cond_signal(s->stop);
}

/* Waits for SIGINT/SIGTERM, then stops accepting and lets replies finish. */
static void service_main(void *arg)
{
	struct service *s = arg;
	lg_cond_wait(s->stop, LG_DEADLINE_NONE);
	fprintf(stderr, "users_service: stopping\n");
	svc_http_stop(s->http);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	lg_sleep(50); /* connections close; busy ones after their reply */
}

int main(int argc, char **argv)
{
	struct options o = {0};
	int port = 0;
	int rc = parse_options(argc, argv, &o, &port);
	if (rc != 0) {
		return rc;
	}
	struct lg_runtime *rt;
	if (lg_runtime_new(NULL, NULL, &rt) != 0) {
		return 1;
	}
	struct service s = {0};
	struct lg_error err = {0};
	struct svc_store_config cfg = {
	    .primary_dsn = o.primary,
	    .replica_dsn = o.replica,
	    .redis_host = o.redis_host[0] && !o.no_cache ? o.redis_host : NULL,
	    .redis_port = o.redis_port,
	    .pool_size = (unsigned)o.pool_size,
	    .max_lag_bytes = o.max_lag_bytes,
	    .max_lag_ms = o.max_lag_ms,
	};
	if ((rc = svc_store_new(rt, &cfg, &s.store, &err)) != 0) {
		fprintf(stderr, "users_service: %s\n",
			err.message[0] ? err.message : lg_strerror(rc));
		lg_runtime_free(rt);
		return 1;
	}
	struct svc_api api = {.store = s.store};
	uv_loop_t *loop = lg_runtime_loop(rt);
	if ((rc = svc_http_start(rt, o.listen, port, NULL, svc_api_handle, &api, &s.http)) != 0) {
		fprintf(stderr, "users_service: listen %s:%d: %s\n", o.listen, port,
			uv_strerror(rc));
		svc_store_free(s.store);
		lg_runtime_free(rt);
		return 1;
	}
	lg_cond_new(rt, &s.stop);
	uv_signal_init(loop, &s.sigint);
	uv_signal_init(loop, &s.sigterm);
	s.sigint.data = s.sigterm.data = &s;
	uv_signal_start(&s.sigint, service_on_signal, SIGINT);
	uv_signal_start(&s.sigterm, service_on_signal, SIGTERM);
	printf("users_service: listening on %s:%d (cache %s, replica %s)\n", o.listen,
	       svc_http_port(s.http), cfg.redis_host ? "on" : "off", o.replica ? "on" : "off");
	fflush(stdout);
	/* Joined rather than lg_runtime_run: the database handle's lag samplers run until
	 * svc_store_free, so the loop is not empty when service_main returns. */
	struct lg_coro *main_coro;
	rc = lg_coro_spawn(rt, service_main, &s, &main_coro);
	if (rc == 0) {
		rc = lg_coro_join(main_coro, LG_DEADLINE_NONE);
	}
	lg_cond_free(s.stop);
	svc_store_free(s.store);
	lg_runtime_free(rt);
	return rc == 0 ? 0 : 1;
}
