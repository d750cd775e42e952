/*
 * Every configuration key, once. The table below generates the key list (names, JSON kinds,
 * secrets: config.c), the key ids the sources and error messages use (enum cfg_key_id,
 * cfg_key_name), the command-line flags (struct rf_config_flags, main.c's options, merging
 * them in config_merge.c) and the decoding of the plain unsigned keys (config_decode.c).
 *
 * Rows, in the order keys are read from the environment and checked:
 *   KEY(name, kind, secret)        decoded by hand in config_decode.c
 *   FLAG(name, kind, secret, flag) the same, and settable with --flag (kind CFG_BOOL: a
 *                                  flag without a value; others: --flag VALUE)
 *   UINT(name, default, min, max)  an unsigned integer decoded into rf_config.name
 * A consumer that does not care about a row kind maps it onto another.
 */
#ifndef RF_CONFIG_KEYS_H
#define RF_CONFIG_KEYS_H

enum cfg_kind { CFG_UINT, CFG_STRING, CFG_JSON, CFG_BOOL };

#define RF_CONFIG_KEYS(KEY, FLAG, UINT)                                                            \
	FLAG(node_id, CFG_UINT, false, "node-id")                                                  \
	FLAG(raft_address, CFG_STRING, false, "raft")                                              \
	FLAG(http_address, CFG_STRING, false, "http")                                              \
	FLAG(data_dir, CFG_STRING, false, "data-dir")                                              \
	KEY(peers, CFG_JSON, false)                                                                \
	KEY(postgres, CFG_STRING, true)                                                            \
	KEY(redis, CFG_JSON, true)                                                                 \
	KEY(key_prefix, CFG_STRING, false)                                                         \
	UINT(election_timeout_ms, RF_DEFAULT_ELECTION_TIMEOUT_MS, 50, 60000)                       \
	UINT(heartbeat_timeout_ms, RF_DEFAULT_HEARTBEAT_TIMEOUT_MS, 10, 30000)                     \
	UINT(snapshot_threshold, RF_DEFAULT_SNAPSHOT_THRESHOLD, 4, 1u << 30)                       \
	KEY(admin_token, CFG_STRING, true)                                                         \
	KEY(log_level, CFG_STRING, false)                                                          \
	FLAG(join, CFG_BOOL, false, "join")                                                        \
	UINT(fence_ttl_ms, RF_DEFAULT_FENCE_TTL_MS, 100, 86400000)                                 \
	UINT(tombstone_ttl_ms, RF_DEFAULT_TOMBSTONE_TTL_MS, 100, 86400000)                         \
	UINT(batch_size, RF_DEFAULT_BATCH_SIZE, 1, 10000)                                          \
	UINT(poll_interval_ms, RF_DEFAULT_POLL_INTERVAL_MS, 10, 600000)                            \
	KEY(fence_prefix, CFG_STRING, false)                                                       \
	KEY(term_key, CFG_STRING, false)                                                           \
	UINT(http_head_timeout_ms, RF_DEFAULT_HTTP_HEAD_TIMEOUT_MS, 100, 600000)                   \
	UINT(audit_keys_per_s, RF_DEFAULT_AUDIT_KEYS_PER_S, 0, 100000)

/* Row adapters: a FLAG or UINT row seen as a plain key. */
#define CFG_FLAG_AS_KEY(name, kind, secret, flag) CFG_ROW_KEY(name, kind, secret)
#define CFG_UINT_AS_KEY(name, dflt, lo, hi)       CFG_ROW_KEY(name, CFG_UINT, false)
#define CFG_IGNORE_KEY(...)
#define CFG_IGNORE_FLAG(...)
#define CFG_IGNORE_UINT(...)

/* Key ids: CFG_KEY_node_id, ... and CFG__KEYS, their number. */
enum cfg_key_id {
#define CFG_ROW_KEY(name, kind, secret) CFG_KEY_##name,
	RF_CONFIG_KEYS(CFG_ROW_KEY, CFG_FLAG_AS_KEY, CFG_UINT_AS_KEY)
#undef CFG_ROW_KEY
	    CFG__KEYS
};

/* The type of a flag's field in struct rf_config_flags, by kind. */
#define CFG_FLAG_TYPE_CFG_BOOL   bool
#define CFG_FLAG_TYPE_CFG_UINT   const char *
#define CFG_FLAG_TYPE_CFG_STRING const char *
#define CFG_FLAG_TYPE_CFG_JSON   const char *

/* Flags: the text a flag contributes to the merge, its getopt_long() argument, and how a
 * parsed flag is stored, by kind. */
#define CFG_FLAG_TEXT_CFG_BOOL(v)    ((v) ? "true" : NULL)
#define CFG_FLAG_TEXT_CFG_UINT(v)    (v)
#define CFG_FLAG_TEXT_CFG_STRING(v)  (v)
#define CFG_FLAG_TEXT_CFG_JSON(v)    (v)
#define CFG_FLAG_ARG_CFG_BOOL        no_argument
#define CFG_FLAG_ARG_CFG_UINT        required_argument
#define CFG_FLAG_ARG_CFG_STRING      required_argument
#define CFG_FLAG_ARG_CFG_JSON        required_argument
#define CFG_FLAG_SET_CFG_BOOL(dst)   ((dst) = true)
#define CFG_FLAG_SET_CFG_UINT(dst)   ((dst) = optarg)
#define CFG_FLAG_SET_CFG_STRING(dst) ((dst) = optarg)
#define CFG_FLAG_SET_CFG_JSON(dst)   ((dst) = optarg)

#endif
