/*
 * libFuzzer harness: configuration parsing and validation (reflector/src/config*.c).
 * The first byte picks the mode: the rest is the config file's text, or the value of one
 * LIFEGUARD_* variable (on top of a valid file), so that both converters are covered.
 * Invariants: a failure always names a key and starts with "config: "; a success yields a
 * configuration that satisfies the documented constraints.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hostport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_vars[] = {
    "LIFEGUARD_NODE_ID",
    "LIFEGUARD_PEERS",
    "LIFEGUARD_REDIS",
    "LIFEGUARD_RAFT_ADDRESS",
    "LIFEGUARD_HTTP_ADDRESS",
    "LIFEGUARD_JOIN",
    "LIFEGUARD_ELECTION_TIMEOUT_MS",
    "LIFEGUARD_LOG_LEVEL",
};

struct fuzz_env {
	const char *name;
	const char *value;
};

static const char *fuzz_lookup(void *data, const char *name)
{
	struct fuzz_env *e = data;
	return strcmp(name, e->name) == 0 ? e->value : NULL;
}

static void fuzz_check(int rc, const struct rf_config *cfg, const struct rf_config_error *err)
{
	if (rc != 0) {
		assert(err->key[0] != '\0');
		assert(strncmp(err->message, "config: ", 8) == 0);
		return;
	}
	assert(cfg->node_id >= 1 && cfg->n_peers >= 1);
	assert(rf_config_peer(cfg, cfg->node_id) != NULL);
	assert(cfg->heartbeat_timeout_ms < cfg->election_timeout_ms);
	assert(cfg->data_dir != NULL && cfg->data_dir[0] != '\0');
	/* Addresses may be host names (peers are resolved on every dial). */
	char host[RF_HOSTPORT_MAX];
	unsigned port;
	assert(rf_hostport_parse(cfg->raft_address, false, host, &port) == 0);
	assert(rf_hostport_parse(cfg->http_address, true, host, &port) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0) {
		return 0;
	}
	struct rf_config cfg;
	struct rf_config_error err;
	size_t mode = data[0] % (1 + sizeof(fuzz_vars) / sizeof(fuzz_vars[0]));
	if (mode == 0) {
		int rc = rf_config_build((const char *)data + 1, size - 1, "fuzz.json", NULL, NULL,
					 NULL, &cfg, &err);
		fuzz_check(rc, &cfg, &err);
		if (rc == 0) {
			rf_config_free(&cfg);
		}
		return 0;
	}
	char *value = malloc(size);
	if (value == NULL) {
		return 0;
	}
	memcpy(value, data + 1, size - 1);
	value[size - 1] = '\0';
	static const char base[] =
	    "{\"node_id\":1,\"data_dir\":\"/d\",\"peers\":[{\"id\":1,\"raft_address\":"
	    "\"127.0.0.1:1\",\"http_address\":\"127.0.0.1:2\"}]}";
	struct fuzz_env env = {fuzz_vars[mode - 1], value};
	int rc = rf_config_build(base, sizeof(base) - 1, "fuzz.json", fuzz_lookup, &env, NULL, &cfg,
				 &err);
	fuzz_check(rc, &cfg, &err);
	if (rc == 0) {
		rf_config_free(&cfg);
	}
	free(value);
	return 0;
}
