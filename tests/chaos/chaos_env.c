/* Helpers the chaos tests share (see chaos_env.h). */
#include "chaos_env.h"

#include <stdio.h>

#include <criterion/criterion.h>

void chaos_redis_ensure(redisContext **rc, int port)
{
	if (*rc != NULL && (*rc)->err == 0) {
		return;
	}
	redisFree(*rc);
	struct timeval tv = {10, 0};
	*rc = redisConnectWithTimeout("127.0.0.1", port, tv);
	cr_assert(*rc != NULL && (*rc)->err == 0, "Redis: %s", *rc != NULL ? (*rc)->errstr : "?");
	redisSetTimeout(*rc, tv);
}

void chaos_cli(const struct rfh_cluster *c, const char *cmd, const char *arg, int timeout_ms)
{
	const char *argv[] = {rfh_bin(), cmd, "--config", c->nodes[0].config, arg, NULL};
	char out[4096];
	int st = rfh_run(argv, NULL, out, sizeof(out), timeout_ms);
	cr_assert_eq(st, 0, "%s %s: %s", cmd, arg != NULL ? arg : "", out);
}

long long chaos_counter_sum(const struct rfh_cluster *c, size_t n, const char *name)
{
	char path[64];
	snprintf(path, sizeof(path), "counters.%s", name);
	long long sum = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *st = c->nodes[i].pid > 0 ? rfh_status(c, i, 2000) : NULL;
		sum += st != NULL ? rfh_int(st, path) : 0;
		json_decref(st);
	}
	return sum;
}
