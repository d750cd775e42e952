/* Configuration: sources, precedence, defaults, and an error naming the key for each fault. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "config.h"

#define PEERS3                                                                                     \
	"[{\"id\":1,\"raft_address\":\"127.0.0.1:7001\",\"http_address\":\"127.0.0.1:8001\"},"     \
	"{\"id\":2,\"raft_address\":\"127.0.0.1:7002\",\"http_address\":\"127.0.0.1:8002\"},"      \
	"{\"id\":3,\"raft_address\":\"127.0.0.1:7003\",\"http_address\":\"127.0.0.1:8003\"}]"

/* A fake environment: NULL-terminated "KEY=VALUE" strings. */
static const char *fake_env(void *data, const char *name)
{
	const char *const *vars = data;
	size_t len = strlen(name);
	for (; vars != NULL && *vars != NULL; vars++) {
		if (strncmp(*vars, name, len) == 0 && (*vars)[len] == '=') {
			return *vars + len + 1;
		}
	}
	return NULL;
}

static int build(const char *json, const char *const *env, const struct rf_config_flags *flags,
		 struct rf_config *cfg, struct rf_config_error *err)
{
	return rf_config_build(json, json != NULL ? strlen(json) : 0, "test.json", fake_env,
			       (void *)env, flags, cfg, err);
}

Test(config, minimal_file_gets_defaults_and_addresses_from_peers)
{
	struct rf_config cfg;
	struct rf_config_error err;
	int rc = build("{\"node_id\":2,\"data_dir\":\"/var/lib/lg\",\"peers\":" PEERS3 "}", NULL,
		       NULL, &cfg, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_eq(cfg.node_id, 2);
	cr_assert_str_eq(cfg.raft_address, "127.0.0.1:7002");
	cr_assert_str_eq(cfg.http_address, "127.0.0.1:8002");
	cr_assert_str_eq(cfg.data_dir, "/var/lib/lg");
	cr_assert_eq(cfg.n_peers, 3);
	cr_assert_str_eq(cfg.key_prefix, "lifeguard:model");
	cr_assert_eq(cfg.election_timeout_ms, RF_DEFAULT_ELECTION_TIMEOUT_MS);
	cr_assert_eq(cfg.heartbeat_timeout_ms, RF_DEFAULT_HEARTBEAT_TIMEOUT_MS);
	cr_assert_eq(cfg.snapshot_threshold, RF_DEFAULT_SNAPSHOT_THRESHOLD);
	cr_assert_eq(cfg.log_level, RF_LOG_INFO);
	cr_assert_null(cfg.admin_token);
	cr_assert_null(cfg.postgres);
	cr_assert(!cfg.redis.set && !cfg.join);
	rf_config_free(&cfg);
}

Test(config, every_key_is_read)
{
	struct rf_config cfg;
	struct rf_config_error err;
	int rc = build("{\"node_id\":1,\"raft_address\":\"127.0.0.1:7001\","
		       "\"http_address\":\"0.0.0.0:8001\",\"data_dir\":\"d\",\"peers\":" PEERS3 ","
		       "\"postgres\":\"host=10.0.0.1 dbname=app\",\"redis\":{\"host\":\"10.0.0.2\","
		       "\"port\":6380,\"password\":\"pw\",\"db\":3},\"key_prefix\":\"lg:m\","
		       "\"election_timeout_ms\":900,\"heartbeat_timeout_ms\":150,"
		       "\"admin_token\":\"tok\",\"log_level\":\"debug\",\"join\":true,"
		       "\"snapshot_threshold\":64}",
		       NULL, NULL, &cfg, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_str_eq(cfg.http_address, "0.0.0.0:8001"); /* a bind address may be 0.0.0.0 */
	cr_assert_str_eq(cfg.postgres, "host=10.0.0.1 dbname=app");
	cr_assert(cfg.redis.set);
	cr_assert_str_eq(cfg.redis.host, "10.0.0.2");
	cr_assert_eq(cfg.redis.port, 6380);
	cr_assert_str_eq(cfg.redis.password, "pw");
	cr_assert_eq(cfg.redis.db, 3);
	cr_assert_str_eq(cfg.key_prefix, "lg:m");
	cr_assert_eq(cfg.election_timeout_ms, 900);
	cr_assert_eq(cfg.heartbeat_timeout_ms, 150);
	cr_assert_str_eq(cfg.admin_token, "tok");
	cr_assert_eq(cfg.log_level, RF_LOG_DEBUG);
	cr_assert(cfg.join);
	cr_assert_eq(cfg.snapshot_threshold, 64);
	rf_config_free(&cfg);
}

Test(config, environment_overrides_the_file_and_flags_override_both)
{
	const char *const env[] = {"LIFEGUARD_NODE_ID=2",
				   "LIFEGUARD_DATA_DIR=/env/dir",
				   "LIFEGUARD_PEERS=" PEERS3,
				   "LIFEGUARD_ELECTION_TIMEOUT_MS=1500",
				   "LIFEGUARD_JOIN=1",
				   "LIFEGUARD_REDIS={\"host\":\"10.9.8.7\"}",
				   NULL};
	struct rf_config cfg;
	struct rf_config_error err;
	cr_assert_eq(
	    build("{\"node_id\":1,\"data_dir\":\"/file/dir\",\"peers\":[]}", env, NULL, &cfg, &err),
	    0, "%s", err.message);
	cr_assert_eq(cfg.node_id, 2);
	cr_assert_str_eq(cfg.data_dir, "/env/dir");
	cr_assert_eq(cfg.n_peers, 3);
	cr_assert_eq(cfg.election_timeout_ms, 1500);
	cr_assert(cfg.join);
	cr_assert_eq(cfg.redis.port, 6379);
	rf_config_free(&cfg);

	struct rf_config_flags flags = {
	    .node_id = "3", .data_dir = "/flag/dir", .http_address = "127.0.0.1:9999"};
	cr_assert_eq(build("{\"node_id\":1,\"data_dir\":\"/file/dir\"}", env, &flags, &cfg, &err),
		     0, "%s", err.message);
	cr_assert_eq(cfg.node_id, 3);
	cr_assert_str_eq(cfg.data_dir, "/flag/dir");
	cr_assert_str_eq(cfg.raft_address, "127.0.0.1:7003");
	cr_assert_str_eq(cfg.http_address, "127.0.0.1:9999");
	rf_config_free(&cfg);

	/* No file at all: the environment alone is enough. */
	cr_assert_eq(build(NULL, env, NULL, &cfg, &err), 0, "%s", err.message);
	cr_assert_eq(cfg.node_id, 2);
	rf_config_free(&cfg);
}

/* Ten ASCII letters and ten two-byte characters, for long key names. */
#define K10 "kkkkkkkkkk"
#define E10 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"

struct bad {
	const char *json;
	const char *env;    /* one "K=V" or NULL */
	const char *key;    /* expected err.key */
	const char *phrase; /* expected in err.message */
};

Test(config, each_fault_names_its_key)
{
	static const struct bad cases[] = {
	    {"{\"data_dir\":\"d\",\"peers\":" PEERS3 "}", NULL, "node_id", "is required"},
	    {"{\"node_id\":\"1\",\"data_dir\":\"d\",\"peers\":" PEERS3 "}", NULL, "node_id",
	     "integer"},
	    {"{\"node_id\":0,\"data_dir\":\"d\",\"peers\":" PEERS3 "}", NULL, "node_id", "[1,"},
	    {"{\"node_id\":-3,\"data_dir\":\"d\",\"peers\":" PEERS3 "}", NULL, "node_id",
	     "integer"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 "}", "LIFEGUARD_NODE_ID=12x",
	     "node_id", "LIFEGUARD_NODE_ID"},
	    {"{\"node_id\":1,\"peers\":" PEERS3 "}", NULL, "data_dir", "is required"},
	    {"{\"node_id\":1,\"data_dir\":\"\",\"peers\":" PEERS3 "}", NULL, "data_dir", "empty"},
	    {"{\"node_id\":1,\"data_dir\":\"d\"}", NULL, "peers", "is required"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":[]}", NULL, "peers", "array of 1"},
	    {"{\"node_id\":4,\"data_dir\":\"d\",\"peers\":" PEERS3 "}", NULL, "peers", "no entry"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":[{\"id\":1,\"raft_address\":\"127.0.0.1:"
	     "1\","
	     "\"http_address\":\"127.0.0.1:2\"},{\"id\":1,\"raft_address\":\"127.0.0.1:3\","
	     "\"http_address\":\"127.0.0.1:4\"}]}",
	     NULL, "peers[1]", "duplicate id"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":[{\"id\":1,\"raft_address\":\"127.0.0.1:"
	     "1\","
	     "\"http_address\":\"127.0.0.1:2\"},{\"id\":2,\"raft_address\":\"127.0.0.1:1\","
	     "\"http_address\":\"127.0.0.1:4\"}]}",
	     NULL, "peers[1]", "duplicate raft_address"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":[{\"id\":1,\"raft_address\":\"127.0.0.1:"
	     "1\","
	     "\"http_address\":\"127.0.0.1:2\",\"name\":\"a\"}]}",
	     NULL, "peers[0]", "unknown key"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":[{\"id\":1,\"raft_address\":\"0.0.0.0:"
	     "1\","
	     "\"http_address\":\"127.0.0.1:2\"}]}",
	     NULL, "peers[0].raft_address", "not 0.0.0.0"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"raft_address\":\"127.0.0.1:9\",\"peers\":" PEERS3
	     "}",
	     NULL, "raft_address", "entry in peers says"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"http_address\":\"127.0.0.1:0\",\"peers\":" PEERS3
	     "}",
	     NULL, "http_address", "IPv4"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"http_address\":\"127.0.0.1:65536\","
	     "\"peers\":" PEERS3 "}",
	     NULL, "http_address", "IPv4"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"http_address\":\"1.2.3:80\",\"peers\":" PEERS3
	     "}",
	     NULL, "http_address", "IPv4"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"http_address\":\"[::1]:80\",\"peers\":" PEERS3
	     "}",
	     NULL, "http_address", "IPv4"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"heartbeat_timeout_ms\":500}",
	     NULL, "heartbeat_timeout_ms", "less than election_timeout_ms"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"election_timeout_ms\":10}",
	     NULL, "election_timeout_ms", "[50,"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"redis\":{\"port\":1}}", NULL,
	     "redis.host", "must be a string"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
	     ",\"redis\":{\"host\":\"h\",\"pass\":1}}",
	     NULL, "redis", "unknown key"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"redis\":\"h:1\"}", NULL,
	     "redis", "object"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"key_prefix\":\"a b\"}", NULL,
	     "key_prefix", "whitespace"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
	     ",\"fence_prefix\":\"lifeguard:model:x\"}",
	     NULL, "fence_prefix", "overlap"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"term_key\":\"\"}", NULL,
	     "term_key", "empty"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"batch_size\":0}", NULL,
	     "batch_size", "[1,"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 "}", "LIFEGUARD_FENCE_TTL_MS=5",
	     "fence_ttl_ms", "LIFEGUARD_FENCE_TTL_MS"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"log_level\":\"trace\"}",
	     NULL, "log_level", "one of"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 "}", "LIFEGUARD_JOIN=yes",
	     "join", "true, false"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"postgres\":5}", NULL,
	     "postgres", "string"},
	    {"{\"node_id\":1,\"nodeid\":2}", NULL, "nodeid", "unknown key"},
	    /* Admin endpoints open to the network are refused. */
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
	     ",\"http_address\":\"0.0.0.0:8001\"}",
	     NULL, "admin_token", "not a loopback address"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 "}",
	     "LIFEGUARD_HTTP_ADDRESS=10.1.1.1:80", "admin_token", "LIFEGUARD_HTTP_ADDRESS"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"postgres\":\"host=h port\"}",
	     NULL, "postgres", "not a valid libpq conninfo"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
	     ",\"redis\":{\"host\":\"redis.local\"}}",
	     NULL, "redis.host", "IPv4 or IPv6"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 ",\"http_head_timeout_ms\":5}",
	     NULL, "http_head_timeout_ms", "[100,"},
	    /* Unknown keys are shown JSON-escaped, and cut with "..." when long. */
	    {"{\"node_id\":1,\"a\\\"b\\u0001\":2}", NULL, "a\\\"b\\u0001", "unknown key"},
	    {"{\"node_id\":1,\"" K10 K10 K10 K10 K10 K10 "\":2}", NULL, K10 K10 K10 K10 "kkkk...",
	     "unknown key"},
	    {"{\"node_id\":1,\"" E10 E10 E10 "\":2}", NULL, E10 E10 "\xc3\xa9\xc3\xa9...",
	     "unknown key"},
	    {"{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
	     ",\"redis\":{\"host\":\"h\",\"" K10 K10 K10 "\":1}}",
	     NULL, "redis", "unknown key \"" K10 K10 "...\""},
	    {"{\"node_id\":1,\"node_id\":2}", NULL, "--config", "test.json:1:"},
	    {"[1,2]", NULL, "--config", "JSON object"},
	    {"{\"node_id\":1,\n\"data_dir\":}", NULL, "--config", "test.json:2:"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const env[] = {cases[i].env, NULL};
		struct rf_config cfg;
		struct rf_config_error err;
		int rc = build(cases[i].json, env, NULL, &cfg, &err);
		cr_assert_eq(rc, -1, "case %zu accepted", i);
		cr_assert_str_eq(err.key, cases[i].key, "case %zu: %s", i, err.message);
		cr_assert(strstr(err.message, cases[i].phrase) != NULL, "case %zu: %s", i,
			  err.message);
		cr_assert(strncmp(err.message, "config: ", 8) == 0, "case %zu: %s", i, err.message);
	}
}

Test(config, secrets_stay_out_of_error_messages)
{
	const char *const env[] = {
	    "LIFEGUARD_REDIS={\"host\":\"h\",\"password\":\"Hunter2Secret\" x}", NULL};
	struct rf_config cfg;
	struct rf_config_error err;
	cr_assert_eq(
	    build("{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3 "}", env, NULL, &cfg, &err),
	    -1);
	cr_assert_str_eq(err.key, "redis");
	cr_assert(strstr(err.message, "Hunter2") == NULL, "%s", err.message);
	cr_assert(strstr(err.message, "LIFEGUARD_REDIS") != NULL, "%s", err.message);
	/* A syntax error on the token's line of the file. */
	cr_assert_eq(
	    build("{\"node_id\":1,\"admin_token\":\"Hunter2Secret", NULL, NULL, &cfg, &err), -1);
	cr_assert(strstr(err.message, "Hunter2") == NULL, "%s", err.message);
	cr_assert_eq(build("{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
			   ",\"admin_token\":[\"Hunter2Secret\"]}",
			   NULL, NULL, &cfg, &err),
		     -1);
	cr_assert_str_eq(err.key, "admin_token");
	cr_assert(strstr(err.message, "Hunter2") == NULL, "%s", err.message);
	/* libpq quotes the text it could not parse: here, part of the password. */
	cr_assert_eq(build("{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
			   ",\"postgres\":\"postgresql://u:Hunter2%zz@h/db\"}",
			   NULL, NULL, &cfg, &err),
		     -1);
	cr_assert_str_eq(err.key, "postgres");
	cr_assert(strstr(err.message, "Hunter2") == NULL, "%s", err.message);
	cr_assert(strstr(err.message, "percent-encoded") != NULL, "%s", err.message);
}

/* Logs one line with the registered secrets and returns it (Owned). */
static char *log_line(const char *fmt, const char *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	rf_log_set_stream(f);
	rf_log(RF_LOG_ERROR, "test.secret", fmt, arg);
	rf_log_set_stream(NULL);
	fclose(f);
	return text;
}

Test(log, registered_secrets_are_redacted_in_every_spelling)
{
	struct rf_config cfg;
	struct rf_config_error err;
	cr_assert_eq(build("{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
			   ",\"admin_token\":\"Tok-Hunter2\",\"postgres\":\"postgresql://"
			   "u:Uri-Hunter2%25x@h/db\",\"redis\":{\"host\":\"::1\","
			   "\"password\":\"Rd-Hunter2\"}}",
			   NULL, NULL, &cfg, &err),
		     0, "%s", err.message);
	rf_config_register_secrets(&cfg);
	rf_config_free(&cfg);
	const char *const leaks[] = {"a token Tok-Hunter2.", "raw Uri-Hunter2%25x in a URI",
				     "decoded Uri-Hunter2%x", "twice Rd-Hunter2Rd-Hunter2",
				     "Rd-Hunter2 at the start"};
	for (size_t i = 0; i < sizeof(leaks) / sizeof(leaks[0]); i++) {
		char *line = log_line("%s", leaks[i]);
		cr_assert(strstr(line, "Hunter2") == NULL, "%s", line);
		cr_assert(strstr(line, "[redacted]") != NULL, "%s", line);
		free(line);
	}
	/* A message cut at the buffer's end does not keep the first bytes of a secret. */
	char big[1100];
	memset(big, 'x', sizeof(big));
	memcpy(big + 1016, "Tok-Hunter2", 11);
	big[sizeof(big) - 1] = '\0';
	char *line = log_line("%s", big);
	cr_assert(strstr(line, "Tok-Hun") == NULL, "%s", line + 1000);
	free(line);
	rf_log_clear_secrets();
	line = log_line("%s", "Tok-Hunter2 is no secret any more");
	cr_assert(strstr(line, "Tok-Hunter2") != NULL, "%s", line);
	free(line);
}

Test(config, empty_admin_token_disables_protection)
{
	struct rf_config cfg;
	struct rf_config_error err;
	const char *const env[] = {"LIFEGUARD_ADMIN_TOKEN=", NULL};
	cr_assert_eq(build("{\"node_id\":1,\"data_dir\":\"d\",\"peers\":" PEERS3
			   ",\"admin_token\":\"x\"}",
			   env, NULL, &cfg, &err),
		     0, "%s", err.message);
	cr_assert_null(cfg.admin_token);
	rf_config_free(&cfg);
}

Test(config, addresses)
{
	char ip[16];
	unsigned port;
	cr_assert_eq(rf_addr_parse("10.1.2.3:7000", false, ip, &port), 0);
	cr_assert_str_eq(ip, "10.1.2.3");
	cr_assert_eq(port, 7000);
	cr_assert_eq(rf_addr_parse("0.0.0.0:1", true, ip, &port), 0);
	static const char *const bad[] = {"",
					  ":80",
					  "10.1.2.3",
					  "10.1.2.3:",
					  "10.1.2.3:0",
					  "10.1.2.3:65536",
					  "10.1.2.3:80x",
					  "10.1.2:80",
					  "256.1.1.1:80",
					  "host:80",
					  "10.1.2.3:+80",
					  "010.1.2.3:80",
					  "10.1.2.3:123456",
					  "0.0.0.0:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(rf_addr_parse(bad[i], false, ip, &port), -1, "%s accepted", bad[i]);
	}
}
