/*
 * Decoding the merged settings object into struct rf_config, with every range and cross-key
 * check. On failure the partially filled cfg is released by the caller (rf_config_build).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

#define DEC_MAX_PEERS 64

static const char *dec_source(const struct cfg_sources *src, const char *key)
{
	int i = cfg_key_index(key);
	assert(i >= 0);
	return src->where[i];
}

static int dec_peer(const json_t *v, size_t idx, struct rf_peer *p, const char *source,
		    struct rf_config_error *err)
{
	char key[64];
	snprintf(key, sizeof(key), "peers[%zu]", idx);
	if (!json_is_object(v)) {
		return cfg_fail(err, key, source,
				"must be an object {\"id\", \"raft_address\", \"http_address\"}");
	}
	const char *name;
	json_t *field;
	json_object_foreach((json_t *)v, name, field)
	{
		if (strcmp(name, "id") != 0 && strcmp(name, "raft_address") != 0 &&
		    strcmp(name, "http_address") != 0) {
			char shown[24];
			cfg_show_name(shown, sizeof(shown), name);
			return cfg_fail(err, key, source, "unknown key \"%s\"", shown);
		}
	}
	char sub[80];
	snprintf(sub, sizeof(sub), "%s.id", key);
	if (cfg_uint(json_object_get(v, "id"), 1, INT64_MAX, &p->id, sub, source, err) != 0) {
		return -1;
	}
	snprintf(sub, sizeof(sub), "%s.raft_address", key);
	if (cfg_addr(json_object_get(v, "raft_address"), false, p->raft_address, sub, source,
		     err) != 0) {
		return -1;
	}
	snprintf(sub, sizeof(sub), "%s.http_address", key);
	return cfg_addr(json_object_get(v, "http_address"), false, p->http_address, sub, source,
			err);
}

static int dec_peers(const json_t *v, struct rf_config *cfg, const char *source,
		     struct rf_config_error *err)
{
	if (v == NULL) {
		return cfg_fail(err, "peers", source,
				"is required (the cluster's members, this node included)");
	}
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > DEC_MAX_PEERS) {
		return cfg_fail(err, "peers", source, "must be an array of 1 to %d peers",
				DEC_MAX_PEERS);
	}
	cfg->n_peers = json_array_size(v);
	cfg->peers = calloc(cfg->n_peers, sizeof(*cfg->peers));
	if (cfg->peers == NULL) {
		return cfg_fail(err, "peers", source, "out of memory");
	}
	for (size_t i = 0; i < cfg->n_peers; i++) {
		if (dec_peer(json_array_get(v, i), i, &cfg->peers[i], source, err) != 0) {
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			char key[64];
			snprintf(key, sizeof(key), "peers[%zu]", i);
			if (cfg->peers[j].id == cfg->peers[i].id) {
				return cfg_fail(err, key, source, "duplicate id %llu",
						(unsigned long long)cfg->peers[i].id);
			}
			if (strcmp(cfg->peers[j].raft_address, cfg->peers[i].raft_address) == 0) {
				return cfg_fail(err, key, source, "duplicate raft_address %s",
						cfg->peers[i].raft_address);
			}
		}
	}
	return 0;
}

static int dec_redis(const json_t *v, struct rf_redis_config *r, const char *source,
		     struct rf_config_error *err)
{
	if (v == NULL) {
		return 0;
	}
	if (!json_is_object(v)) {
		return cfg_fail(err, "redis", source,
				"must be an object {\"host\", \"port\", \"password\", \"db\"}");
	}
	const char *name;
	json_t *field;
	json_object_foreach((json_t *)v, name, field)
	{
		if (strcmp(name, "host") != 0 && strcmp(name, "port") != 0 &&
		    strcmp(name, "password") != 0 && strcmp(name, "db") != 0) {
			char shown[24];
			cfg_show_name(shown, sizeof(shown), name);
			return cfg_fail(err, "redis", source, "unknown key \"%s\"", shown);
		}
	}
	r->set = true;
	if (cfg_string(json_object_get(v, "host"), false, &r->host, "redis.host", source, err) !=
	    0) {
		return -1;
	}
	uint64_t n = 6379;
	const json_t *port = json_object_get(v, "port");
	if (port != NULL && cfg_uint(port, 1, 65535, &n, "redis.port", source, err) != 0) {
		return -1;
	}
	r->port = (unsigned)n;
	const json_t *pw = json_object_get(v, "password");
	if (pw != NULL && !json_is_null(pw) &&
	    cfg_string(pw, true, &r->password, "redis.password", source, err) != 0) {
		return -1;
	}
	n = 0;
	const json_t *db = json_object_get(v, "db");
	if (db != NULL && cfg_uint(db, 0, 1 << 20, &n, "redis.db", source, err) != 0) {
		return -1;
	}
	r->db = (unsigned)n;
	return cfg_check_redis_host(r->host, source, err);
}

/* Optional unsigned with a default. */
static int dec_opt_uint(const json_t *root, const struct cfg_sources *src, const char *key,
			uint64_t def, uint64_t min, uint64_t max, unsigned *out,
			struct rf_config_error *err)
{
	uint64_t v = def;
	const json_t *j = json_object_get(root, key);
	if (j != NULL && cfg_uint(j, min, max, &v, key, dec_source(src, key), err) != 0) {
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int dec_opt_string(const json_t *root, const struct cfg_sources *src, const char *key,
			  const char *def, char **out, struct rf_config_error *err)
{
	const json_t *j = json_object_get(root, key);
	if (j == NULL || json_is_null(j)) {
		if (def != NULL && (*out = strdup(def)) == NULL) {
			return cfg_fail(err, key, NULL, "out of memory");
		}
		return 0;
	}
	return cfg_string(j, false, out, key, dec_source(src, key), err);
}

/* node_id, addresses, data_dir, peers and how they relate. */
static int dec_identity(const json_t *root, const struct cfg_sources *src, struct rf_config *cfg,
			struct rf_config_error *err)
{
	const json_t *id = json_object_get(root, "node_id");
	if (id == NULL) {
		return cfg_fail(err, "node_id", NULL,
				"is required (set it in the file, LIFEGUARD_NODE_ID or --node-id)");
	}
	if (cfg_uint(id, 1, INT64_MAX, &cfg->node_id, "node_id", dec_source(src, "node_id"), err) !=
	    0) {
		return -1;
	}
	if (dec_peers(json_object_get(root, "peers"), cfg, dec_source(src, "peers"), err) != 0) {
		return -1;
	}
	const struct rf_peer *self = rf_config_peer(cfg, cfg->node_id);
	if (self == NULL) {
		return cfg_fail(err, "peers", dec_source(src, "peers"),
				"has no entry for this node (node_id %llu)",
				(unsigned long long)cfg->node_id);
	}
	const json_t *raft = json_object_get(root, "raft_address");
	if (raft == NULL) {
		memcpy(cfg->raft_address, self->raft_address, RF_ADDR_MAX);
	} else if (cfg_addr(raft, false, cfg->raft_address, "raft_address",
			    dec_source(src, "raft_address"), err) != 0) {
		return -1;
	}
	if (strcmp(cfg->raft_address, self->raft_address) != 0) {
		return cfg_fail(err, "raft_address", dec_source(src, "raft_address"),
				"is %s but this node's entry in peers says %s", cfg->raft_address,
				self->raft_address);
	}
	const json_t *http = json_object_get(root, "http_address");
	if (http == NULL) {
		memcpy(cfg->http_address, self->http_address, RF_ADDR_MAX);
	} else if (cfg_addr(http, true, cfg->http_address, "http_address",
			    dec_source(src, "http_address"), err) != 0) {
		return -1;
	}
	const json_t *dir = json_object_get(root, "data_dir");
	if (dir == NULL) {
		return cfg_fail(
		    err, "data_dir", NULL,
		    "is required (set it in the file, LIFEGUARD_DATA_DIR or --data-dir)");
	}
	return cfg_string(dir, false, &cfg->data_dir, "data_dir", dec_source(src, "data_dir"), err);
}

/* The UINT rows of config_keys.h, in table order. */
static int dec_uints(const json_t *root, const struct cfg_sources *src, struct rf_config *cfg,
		     struct rf_config_error *err)
{
#define CFG_ROW_UINT(name, dflt, lo, hi)                                                           \
	if (dec_opt_uint(root, src, #name, dflt, lo, hi, &cfg->name, err) != 0) {                  \
		return -1;                                                                         \
	}
	RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_IGNORE_FLAG, CFG_ROW_UINT)
#undef CFG_ROW_UINT
	return 0;
}

static int dec_rest(const json_t *root, const struct cfg_sources *src, struct rf_config *cfg,
		    struct rf_config_error *err)
{
	if (dec_opt_string(root, src, "postgres", NULL, &cfg->postgres, err) != 0 ||
	    dec_redis(json_object_get(root, "redis"), &cfg->redis, dec_source(src, "redis"), err) !=
		0 ||
	    dec_opt_string(root, src, "key_prefix", RF_DEFAULT_KEY_PREFIX, &cfg->key_prefix, err) !=
		0) {
		return -1;
	}
	if (dec_opt_string(root, src, "fence_prefix", RF_DEFAULT_FENCE_PREFIX, &cfg->fence_prefix,
			   err) != 0 ||
	    dec_opt_string(root, src, "term_key", RF_DEFAULT_TERM_KEY, &cfg->term_key, err) != 0) {
		return -1;
	}
	if (cfg->postgres != NULL &&
	    cfg_check_postgres(cfg->postgres, dec_source(src, "postgres"), err) != 0) {
		return -1;
	}
	const char *names[] = {"key_prefix", "fence_prefix", "term_key"};
	const char *values[] = {cfg->key_prefix, cfg->fence_prefix, cfg->term_key};
	for (size_t i = 0; i < 3; i++) {
		if (values[i][0] == '\0' || strpbrk(values[i], " \t\r\n") != NULL) {
			return cfg_fail(err, names[i], dec_source(src, names[i]),
					"must be non-empty without whitespace");
		}
	}
	size_t kl = strlen(cfg->key_prefix);
	size_t fl = strlen(cfg->fence_prefix);
	if (strcmp(cfg->key_prefix, cfg->fence_prefix) == 0 ||
	    (strncmp(cfg->key_prefix, cfg->fence_prefix, fl) == 0 && cfg->key_prefix[fl] == ':') ||
	    (strncmp(cfg->fence_prefix, cfg->key_prefix, kl) == 0 &&
	     cfg->fence_prefix[kl] == ':')) {
		return cfg_fail(err, "fence_prefix", dec_source(src, "fence_prefix"),
				"must not overlap key_prefix (fences would look like rows)");
	}
	if (dec_uints(root, src, cfg, err) != 0) {
		return -1;
	}
	if (cfg->heartbeat_timeout_ms >= cfg->election_timeout_ms) {
		return cfg_fail(
		    err, "heartbeat_timeout_ms", dec_source(src, "heartbeat_timeout_ms"),
		    "must be less than election_timeout_ms (%u)", cfg->election_timeout_ms);
	}
	const json_t *token = json_object_get(root, "admin_token");
	if (token != NULL && !json_is_null(token)) {
		if (cfg_string(token, true, &cfg->admin_token, "admin_token",
			       dec_source(src, "admin_token"), err) != 0) {
			return -1;
		}
		if (cfg->admin_token[0] == '\0') { /* empty = disabled, like unset */
			free(cfg->admin_token);
			cfg->admin_token = NULL;
		}
	}
	/* Admin endpoints change the cluster's membership: open ones are only acceptable where
	 * nobody but this host can reach them. */
	if (cfg->admin_token == NULL && !rf_addr_is_loopback(cfg->http_address)) {
		const char *where = dec_source(src, "http_address");
		return cfg_fail(err, "admin_token", NULL,
				"must be set (LIFEGUARD_ADMIN_TOKEN) when http_address %s%s%s%s is "
				"not a loopback address: the admin endpoints would be open to the "
				"network",
				cfg->http_address, where[0] != '\0' ? " (" : "", where,
				where[0] != '\0' ? ")" : "");
	}
	cfg->log_level = RF_LOG_INFO;
	const json_t *level = json_object_get(root, "log_level");
	if (level != NULL && (!json_is_string(level) ||
			      rf_log_level_parse(json_string_value(level), &cfg->log_level) != 0)) {
		return cfg_fail(err, "log_level", dec_source(src, "log_level"),
				"must be one of \"debug\", \"info\", \"warn\", \"error\"");
	}
	const json_t *join = json_object_get(root, "join");
	if (join != NULL && !json_is_boolean(join)) {
		return cfg_fail(err, "join", dec_source(src, "join"), "must be true or false");
	}
	cfg->join = join != NULL && json_is_true(join);
	return 0;
}

int cfg_decode(const json_t *root, const struct cfg_sources *src, struct rf_config *cfg,
	       struct rf_config_error *err)
{
	if (dec_identity(root, src, cfg, err) != 0) {
		return -1;
	}
	return dec_rest(root, src, cfg, err);
}
