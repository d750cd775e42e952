/*
 * Where the users service reads and writes: the primary pool, an optional replica pool
 * (routed by sampled lag), an optional Redis cache kept coherent by the reflector, and the
 * read-your-writes tokens. The only part of the service that knows which libguard calls read
 * and write (the HTTP side sees JSON objects, sources and tokens).
 */
#ifndef SVC_STORE_H
#define SVC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <libguard/db.h>
#include <libguard/libguard.h>

#include "svc_token.h"

enum svc_source { SVC_SRC_CACHE, SVC_SRC_REPLICA, SVC_SRC_PRIMARY, SVC_SRC__COUNT };
const char *svc_source_name(enum svc_source s);

struct svc_store_config {
	const char *primary_dsn; /* Borrowed */
	const char *replica_dsn; /* Borrowed; NULL = no replica */
	const char *redis_host;  /* Borrowed; NULL = no cache */
	int redis_port;
	unsigned pool_size;     /* per pool; 0 = 8 */
	uint64_t max_lag_bytes; /* replica reads only under this; 0 = lg_dbh's default */
	uint64_t max_lag_ms;    /* and this replay age while behind; 0 = lg_dbh's default */
};

struct svc_store_stats {
	uint64_t reads[SVC_SRC__COUNT];
	uint64_t token_cache_stale; /* cached rows older than the caller's token: not served */
};

struct svc_store;

/* Opens the primary pool, the cache and the database handle (with the replica pool and its
 * lag sampler). Blocking: call from main or a coroutine. */
int svc_store_new(struct lg_runtime *rt, const struct svc_store_config *cfg, struct svc_store **out,
		  struct lg_error *err);
void svc_store_free(struct svc_store *st);

/*
 * Reads user id. tok (Borrowed) is the caller's last write or unset; bypass_cache skips
 * Redis. On 0 *user is an Owned JSON object {id,email,name,version} and *src where it came
 * from. LG_ENOTFOUND: no such user.
 */
int svc_store_get(struct svc_store *st, int64_t id, const struct svc_token *tok, bool bypass_cache,
		  json_t **user, enum svc_source *src, struct lg_error *err);

/* Up to SVC_MAX_MANY users in one call: with the cache, one lg_model_find_many_cached (one
 * MGET, the misses in one statement on the primary); users[i] is NULL for an id without a
 * row. src[i] says where id i was read (cache: Redis answered every id of the call). */
#define SVC_MAX_MANY 100
int svc_store_get_many(struct svc_store *st, const int64_t *ids, size_t n,
		       const struct svc_token *tok, bool bypass_cache, json_t **users,
		       enum svc_source *src, struct lg_error *err);

/* Writes. fields is the request's JSON object (Borrowed); *user as svc_store_get, *tok the
 * token to answer with. update: expect_version 0 = the current version (retried when it
 * changes meanwhile), else the version the client read (a mismatch is LG_ESERVER 40001). */
int svc_store_create(struct svc_store *st, const char *email, const char *name, json_t **user,
		     struct svc_token *tok, struct lg_error *err);
int svc_store_update(struct svc_store *st, int64_t id, const char *email, bool set_email,
		     const char *name, bool set_name, int64_t expect_version, json_t **user,
		     struct svc_token *tok, struct lg_error *err);
int svc_store_delete(struct svc_store *st, int64_t id, struct svc_token *tok, struct lg_error *err);

void svc_store_get_stats(const struct svc_store *st, struct svc_store_stats *out);
struct lg_pool *svc_store_primary(const struct svc_store *st);
const struct lg_dbh *svc_store_dbh(const struct svc_store *st);
const struct lg_cache *svc_store_cache(const struct svc_store *st); /* NULL without one */
const struct lg_redis *svc_store_redis(const struct svc_store *st); /* NULL without one */

#endif
