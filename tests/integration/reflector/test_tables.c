/*
 * The tables that generate code: the configuration keys (config_keys.h) and the reflector's
 * outcome codes (rf_error.h). Every key the table lists is read from the environment, named in
 * its errors, and every UINT row gets its default and its range; every flag row reaches the
 * configuration; every outcome has its own sentence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "config.h"
#include "rf_error.h"

#define PEERS1                                                                                     \
	"[{\"id\":1,\"raft_address\":\"127.0.0.1:7001\",\"http_address\":\"127.0.0.1:8001\"}]"

static const char *one_var(void *data, const char *name)
{
	const char *const *kv = data;
	return strcmp(kv[0], name) == 0 ? kv[1] : NULL;
}

/* Builds a one-node config from the file plus one environment variable. */
static int build_env(const char *name, const char *value, struct rf_config *cfg,
		     struct rf_config_error *err)
{
	static const char file[] = "{\"node_id\":1,\"data_dir\":\"/d\",\"peers\":" PEERS1 "}";
	const char *kv[] = {name, value};
	return rf_config_build(file, strlen(file), "t.json", one_var, (void *)kv, NULL, cfg, err);
}

/* LIFEGUARD_<NAME>. */
static void env_name(char *out, size_t cap, const char *key)
{
	size_t n = (size_t)snprintf(out, cap, "LIFEGUARD_");
	for (; *key != '\0' && n + 1 < cap; key++) {
		out[n++] = (char)(*key >= 'a' && *key <= 'z' ? *key - 'a' + 'A' : *key);
	}
	out[n] = '\0';
}

Test(tables, every_unsigned_key_has_its_default_range_and_name)
{
	struct rf_config cfg;
	struct rf_config_error err;
	cr_assert_eq(build_env("NONE", NULL, &cfg, &err), 0, "%s", err.message);
#define CHECK_DEFAULT(name, dflt, lo, hi) cr_assert_eq(cfg.name, (unsigned)(dflt), #name);
	RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_IGNORE_FLAG, CHECK_DEFAULT)
#undef CHECK_DEFAULT
	rf_config_free(&cfg);
	char var[64];
	char value[32];
#define CHECK_RANGE(name, dflt, lo, hi)                                                            \
	env_name(var, sizeof(var), #name);                                                         \
	snprintf(value, sizeof(value), "%llu", (unsigned long long)(hi) + 1);                      \
	cr_assert_eq(build_env(var, value, &cfg, &err), -1, #name " above its range");             \
	cr_assert_str_eq(err.key, #name);                                                          \
	cr_assert_not_null(strstr(err.message, var), "%s", err.message);                           \
	if ((lo) > 0) {                                                                            \
		snprintf(value, sizeof(value), "%llu", (unsigned long long)(lo)-1);                \
		cr_assert_eq(build_env(var, value, &cfg, &err), -1, #name " below its range");     \
		cr_assert_str_eq(err.key, #name);                                                  \
	}
	RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_IGNORE_FLAG, CHECK_RANGE)
#undef CHECK_RANGE
}

Test(tables, audit_keys_per_s_is_a_key)
{
	struct rf_config cfg;
	struct rf_config_error err;
	cr_assert_eq(build_env("LIFEGUARD_AUDIT_KEYS_PER_S", "0", &cfg, &err), 0, "%s",
		     err.message);
	cr_assert_eq(cfg.audit_keys_per_s, 0);
	rf_config_free(&cfg);
	cr_assert_eq(build_env("LIFEGUARD_AUDIT_KEYS_PER_S", "x", &cfg, &err), -1);
	cr_assert_str_eq(err.key, "audit_keys_per_s");
}

Test(tables, every_flag_reaches_the_configuration)
{
	struct rf_config_flags flags = {0};
	flags.node_id = "1";
	flags.data_dir = "/from/flag";
	flags.raft_address = "127.0.0.1:7001";
	flags.http_address = "127.0.0.1:9001";
	flags.join = true;
	struct rf_config cfg;
	struct rf_config_error err;
	static const char file[] = "{\"peers\":" PEERS1 "}";
	cr_assert_eq(rf_config_build(file, strlen(file), "t.json", NULL, NULL, &flags, &cfg, &err),
		     0, "%s", err.message);
	cr_assert_str_eq(cfg.data_dir, "/from/flag");
	cr_assert_str_eq(cfg.http_address, "127.0.0.1:9001");
	cr_assert(cfg.join);
	rf_config_free(&cfg);
	flags.node_id = "x";
	cr_assert_eq(rf_config_build(file, strlen(file), "t.json", NULL, NULL, &flags, &cfg, &err),
		     -1);
	cr_assert_str_eq(err.key, "node_id");
	cr_assert_not_null(strstr(err.message, "--node-id"), "%s", err.message);
}

Test(tables, every_outcome_has_its_own_sentence)
{
	cr_assert_str_eq(rf_strerror(RF_OK), "success");
	cr_assert_str_eq(rf_strerror(-1), "unknown error");
	cr_assert_str_eq(rf_strerror(RF__ERR_COUNT), "unknown error");
	for (int i = 1; i < RF__ERR_COUNT; i++) {
		cr_assert_gt(strlen(rf_strerror(i)), 0);
		for (int j = 0; j < i; j++) {
			cr_assert_str_neq(rf_strerror(i), rf_strerror(j));
		}
	}
	cr_assert_lt(RF_ERETRY, RF_ESTALE);
	cr_assert_lt(RF_ESTALE, RF_EDEPOSED);
}
