/*
 * lifeguard-reflector configuration: JSON file, LIFEGUARD_<KEY> environment overrides, command
 * line flags (flags win over the environment, which wins over the file), then validation.
 *
 * Pure: no libuv, no sockets. Every failure names the offending key (and where its value came
 * from) in struct rf_config_error; the daemon prints it and exits with status 2. Values of
 * secret keys (admin_token, postgres, redis) are never copied into error messages.
 */
#ifndef RF_CONFIG_H
#define RF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_keys.h"
#include "log.h"

/* "host:port" with a DNS name of up to 253 characters (hostport.h), plus NUL. */
#define RF_ADDR_MAX 264

#define RF_DEFAULT_KEY_PREFIX           "lifeguard:model"
#define RF_DEFAULT_FENCE_PREFIX         "lifeguard:fence"
#define RF_DEFAULT_TERM_KEY             "lifeguard:reflector:term"
#define RF_DEFAULT_ELECTION_TIMEOUT_MS  500
#define RF_DEFAULT_HEARTBEAT_TIMEOUT_MS 100
#define RF_DEFAULT_SNAPSHOT_THRESHOLD   1024
#define RF_DEFAULT_FENCE_TTL_MS         30000
#define RF_DEFAULT_TOMBSTONE_TTL_MS     5000
#define RF_DEFAULT_BATCH_SIZE           1000
#define RF_DEFAULT_POLL_INTERVAL_MS     1000
#define RF_DEFAULT_HTTP_HEAD_TIMEOUT_MS 5000
#define RF_DEFAULT_AUDIT_KEYS_PER_S     10

struct rf_peer {
	uint64_t id;
	char raft_address[RF_ADDR_MAX];
	char http_address[RF_ADDR_MAX];
};

struct rf_redis_config {
	bool set;       /* false when the key is absent */
	char *host;     /* Owned */
	unsigned port;  /* default 6379 */
	char *password; /* Owned; NULL = none. Secret. */
	unsigned db;
};

struct rf_config {
	uint64_t node_id;
	char raft_address[RF_ADDR_MAX];
	char http_address[RF_ADDR_MAX];
	char *data_dir;        /* Owned */
	struct rf_peer *peers; /* Owned array of n_peers */
	size_t n_peers;
	char *postgres; /* Owned; NULL = unset. Secret (may hold a password). */
	struct rf_redis_config redis;
	char *key_prefix;   /* Owned; default RF_DEFAULT_KEY_PREFIX */
	char *fence_prefix; /* Owned; default RF_DEFAULT_FENCE_PREFIX */
	char *term_key;     /* Owned; default RF_DEFAULT_TERM_KEY: the fencing token in Redis */
	unsigned election_timeout_ms;
	unsigned heartbeat_timeout_ms;
	unsigned snapshot_threshold;
	char *admin_token; /* Owned; NULL = admin endpoints open. Secret. */
	enum rf_log_level log_level;
	bool join; /* true: never bootstrap; wait to be added by the leader */
	/* Coherence pipeline (the leader's outbox consumer). */
	unsigned fence_ttl_ms;     /* key/table fences; >= replica lag bound + fill deadline */
	unsigned tombstone_ttl_ms; /* lifetime of {"v":V,"deleted":true} */
	unsigned batch_size;       /* outbox rows claimed per transaction */
	unsigned poll_interval_ms; /* outbox poll without a NOTIFY; also the stats refresh */
	unsigned audit_keys_per_s; /* cached keys the leader compares with their rows; 0 = off */
	/* A request (head and body) must arrive within this time of its first byte, or of the
	 * accept on a new connection: slow clients cannot hold a connection slot longer. */
	unsigned http_head_timeout_ms;
};

struct rf_config_error {
	char key[64];      /* the setting at fault, e.g. "peers[1].raft_address" */
	char message[320]; /* full sentence: "config: node_id: must be an integer >= 1 (...)" */
};

/* Values given on the command line, one field per FLAG row of config_keys.h (text, NULL = not
 * given; a bool for flags without a value). Borrowed for the call. */
struct rf_config_flags {
	const char *config_path;
#define CFG_ROW_FLAG(name, kind, secret, flag) CFG_FLAG_TYPE_##kind name;
	RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_ROW_FLAG, CFG_IGNORE_UINT)
#undef CFG_ROW_FLAG
};

/* Looks up an environment variable; returns NULL when unset. */
typedef const char *(*rf_env_lookup)(void *data, const char *name);

/*
 * Builds *cfg from the JSON text (NULL = no file; path names it in messages), the environment
 * (env may be NULL: no overrides) and flags (may be NULL), then validates it. On success *cfg
 * is Owned by the caller (rf_config_free). On failure returns -1, fills *err, and *cfg holds
 * nothing to free.
 */
int rf_config_build(const char *json_text, size_t json_len, const char *path, rf_env_lookup env,
		    void *env_data, const struct rf_config_flags *flags, struct rf_config *cfg,
		    struct rf_config_error *err);

/* Reads the file at flags->config_path (if any) and calls rf_config_build with getenv. */
int rf_config_load(const struct rf_config_flags *flags, struct rf_config *cfg,
		   struct rf_config_error *err);

void rf_config_free(struct rf_config *cfg);

/* The peer entry with this id, or NULL. Borrowed from cfg. */
const struct rf_peer *rf_config_peer(const struct rf_config *cfg, uint64_t id);

/*
 * Splits "a.b.c.d:port" (IPv4 literal, port 1-65535). ip must hold 16 bytes. Returns 0 or -1.
 * allow_any: whether 0.0.0.0 is acceptable (a bind address, not one peers can dial).
 */
int rf_addr_parse(const char *text, bool allow_any, char ip[16], unsigned *port);

/* True when address ("ip:port") binds a 127.0.0.0/8 address, reachable from this host only. */
bool rf_addr_is_loopback(const char *address);

/*
 * Hands every secret of cfg to the logger (rf_log_add_secret), in each spelling it may take:
 * admin_token, the Redis password, and the postgres password decoded by libpq and as written
 * (percent-escaped in a URI, quoted in keyword/value form). Call once after loading.
 */
void rf_config_register_secrets(const struct rf_config *cfg);

#endif
