/* Shared between the configuration files (config.c, config_merge.c, config_decode.c). */
#ifndef RF_CONFIG_INT_H
#define RF_CONFIG_INT_H

#include <jansson.h>

#include "config.h"

#define CFG_MAX_FILE (1024 * 1024)

struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	bool secret;
};

/* The keys of config_keys.h, indexed by enum cfg_key_id. */
extern const struct cfg_key cfg_keys[CFG__KEYS];
extern const size_t cfg_n_keys;

/* The name of key id, for messages. */
#define cfg_key_name(id) (cfg_keys[id].name)

/* Where each key's winning value came from ("in FILE", "from LIFEGUARD_X", "from --flag"). */
struct cfg_sources {
	char where[CFG__KEYS][96];
};

int cfg_fail(struct rf_config_error *err, const char *key, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cfg_addr(const json_t *v, bool allow_any, char dst[RF_ADDR_MAX], const char *key,
	     const char *source, struct rf_config_error *err);
int cfg_uint(const json_t *v, uint64_t min, uint64_t max, uint64_t *out, const char *key,
	     const char *source, struct rf_config_error *err);
int cfg_string(const json_t *v, bool allow_empty, char **out, const char *key, const char *source,
	       struct rf_config_error *err);

/* Writes name, a key read from JSON, into out (cap bytes) as the body of a JSON string, for a
 * message: jansson escapes quotes, backslashes and control characters. A name whose escaped
 * form does not fit loses trailing characters and ends in "...". */
void cfg_show_name(char *out, size_t cap, const char *name);

/* The postgres conninfo parses with libpq (config_secret.c); the message withholds libpq's
 * quoted text, which may be the password. */
int cfg_check_postgres(const char *conninfo, const char *source, struct rf_config_error *err);

/* redis.host is an IP literal, the only form libguard's Redis client connects to. */
int cfg_check_redis_host(const char *host, const char *source, struct rf_config_error *err);

/* Index of key in cfg_keys, or -1. */
int cfg_key_index(const char *name);

/* Decodes and validates the merged object into cfg (config_decode.c). */
int cfg_decode(const json_t *root, const struct cfg_sources *src, struct rf_config *cfg,
	       struct rf_config_error *err);

#endif
