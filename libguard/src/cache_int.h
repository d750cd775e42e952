/* Internal to lg_cache (cache_read.c, cache_table.c, cache_key.c, cache_flight.c). */
#ifndef LG_CACHE_INT_H
#define LG_CACHE_INT_H

#include "contract.h"
#include "libguard/cache.h"
#include "libguard/pool.h"
#include "libguard/redis.h"

#define LG__CACHE_MAX_PARTS  32
#define LG__CACHE_KEY_MAX    2048
#define LG__CACHE_MAX_TABLES 256

/* Entries are never moved or freed before lg_cache_free: a coroutine may hold one across a
 * query while another loads a table. A table that changed is marked stale and loaded anew. */
struct lg__cache_table {
	bool stale;
	bool loading;    /* one coroutine reads the catalog; the others wait on loaded */
	char *name;      /* as the caller spelled it */
	char *canon;     /* quote_ident(schema).quote_ident(table) */
	char *fence;     /* the table fence's key, lg__contract_table_fence */
	char *read_sql;  /* lg__contract_read_one_sql */
	char *batch_sql; /* lg__contract_read_batch_sql */
	char *canon_sql; /* lg__contract_canon_sql */
	size_t nkeys;
	enum lg__contract_kind kinds[LG__CACHE_MAX_PARTS];
};

/* A model's opt-in (lg_cache_policy_set), with its table as lg_cache_get names it. */
struct lg__cache_policy {
	const struct lg_model *model;
	struct lg_cache_policy p;
	char table[256]; /* "schema.table" or "table" */
};

#define LG__CACHE_MAX_POLICIES 64

struct lg_cache {
	struct lg_pool *pool;
	struct lg_redis *redis;
	char *key_prefix;
	char *fence_prefix;
	uint64_t ttl_ms;
	uint64_t fill_deadline_ms;
	uint64_t redis_timeout_ms;
	uint64_t absent_ttl_ms;
	struct lg_redis_script fill;
	struct lg__cache_table **tables;
	size_t ntables;
	struct lg_cond *loaded;           /* broadcast when a catalog lookup ends */
	struct lg__cache_flight *flights; /* misses being read now (cache_flight.c) */
	struct lg_cache_stats stats;
	struct lg__cache_policy policies[LG__CACHE_MAX_POLICIES];
	size_t npolicies;
	uint64_t jitter_state; /* xorshift64 state of the TTL jitter */
};

/* How the database is read after a miss: runs sql with the key parameters (one row of the
 * contract's read statement, or none). */
typedef int (*lg__cache_reader)(void *ud, const char *sql, const struct lg_param *params, int n,
				struct lg_result **out, struct lg_error *err);

/* One lg__cache_get call's choices (lg_cache_get: the cache's defaults). */
struct lg__cache_call {
	uint64_t ttl_ms;        /* TTL of a row fill */
	uint64_t absent_ttl_ms; /* TTL of an absent marker; 0 = no marker */
	int64_t min_version;    /* a cached value below it is a miss (read-your-writes) */
	lg__cache_reader read;  /* NULL = the cache's primary pool */
	void *read_ud;
	bool no_share; /* never wait for another caller's read of the same key */
	/* A hit decoded where Redis' reply is (no copy of the JSON): 0 when decode took it, then
	 * the row has no json; otherwise the hit is returned as JSON. NULL: always JSON. */
	int (*decode)(void *ud, const char *json, size_t len);
	void *decode_ud;
};

/*
 * Decodes a row's JSON (to_jsonb text, len bytes) into the row struct *out of m with the
 * ORM's decoder (cache_json.c): the previous lg_mem of *out is released, the new one holds
 * the values. LG_EINVAL: not an object of m's columns in their types; LG_ENOMEM.
 */
int lg__cache_decode(const struct lg_model *m, const char *json, size_t len, void *out);

/* cache_read.c: Redis' TIME in ms (false: no answer, counted); the fenced fill of a value of
 * version (true when written); of a row read; of the absent marker of a key (canon: its
 * canonical parts). read_ms is the TIME taken before the database read. */
bool lg__cache_clock(struct lg_cache *c, long long *ms);
bool lg__cache_fill(struct lg_cache *c, const char *key, const char *fence, const char *table_fence,
		    int64_t version, const char *value, size_t len, uint64_t ttl_ms,
		    long long read_ms);
void lg__cache_fill_row(struct lg_cache *c, const char *key, const char *fence,
			const char *table_fence, const struct lg_cache_row *row, uint64_t ttl_ms,
			long long read_ms);
void lg__cache_fill_absent(struct lg_cache *c, const struct lg__cache_table *t,
			   const char *const *canon, const char *key, const char *table_fence,
			   uint64_t ttl_ms, long long read_ms);

/* cache_model.c: m's policy or NULL; ttl within +-pct %; a key parameter's text (false: a
 * type the cache cannot name); the miss reader that runs sql through the lg_db ud. */
const struct lg__cache_policy *lg__cache_policy_of(const struct lg_cache *c,
						   const struct lg_model *m);
uint64_t lg__cache_ttl_jitter(struct lg_cache *c, uint64_t ttl, unsigned pct);
bool lg__cache_key_text(const struct lg_param *p, char *buf, size_t size);
int lg__cache_read_db(void *ud, const char *sql, const struct lg_param *params, int n,
		      struct lg_result **out, struct lg_error *err);

/* lg_cache_get with per-call choices. */
int lg__cache_get(struct lg_cache *c, const char *table, const char *const *parts, size_t nparts,
		  const struct lg__cache_call *call, struct lg_cache_row *row,
		  struct lg_error *err);

/* The catalog entry of table, loaded on first use by one coroutine while others wait
 * (cache_table.c). LG_EINVAL: not a reflected table with a primary key. */
int lg__cache_table_get(struct lg_cache *c, const char *table, struct lg__cache_table **out,
			struct lg_error *err);
/* Releases what an entry owns (not the entry). */
void lg__cache_table_clear(struct lg__cache_table *t);

/* Returned by lg__cache_flight_join when the caller must read the row itself. */
#define LG__CACHE_LOAD (-1)

struct lg__cache_flight;

/*
 * Joins the read of key already in flight (waits, then copies its row into row and returns
 * 0 or its error), or returns LG__CACHE_LOAD: the caller reads, and if *mine is set it must
 * then call lg__cache_flight_publish with the outcome. head is the cache's list.
 */
int lg__cache_flight_join(struct lg__cache_flight **head, struct lg_runtime *rt, const char *key,
			  struct lg__cache_flight **mine, struct lg_cache_row *row,
			  struct lg_error *err);

/* Hands the loader's outcome (row Borrowed, copied) to the waiters and ends the flight. */
void lg__cache_flight_publish(struct lg__cache_flight **head, struct lg__cache_flight *f, int rc,
			      const struct lg_cache_row *row, const struct lg_error *err);

/*
 * The canonical text of the caller's key parts (cache_key.c): parts[i] is spelled for a
 * column of kinds[i]; out[i] receives its canonical text, stored in buf (size bytes).
 * canon_sql is the table's lg__contract_canon_sql, run when a part needs the database.
 * Returns 0, LG_EINVAL (the database rejects a spelling), LG_ERANGE (too long), or an error
 * of the primary.
 */
int lg__cache_canon(struct lg_pool *pool, const char *canon_sql,
		    const enum lg__contract_kind *kinds, size_t n, const char *const *parts,
		    char *buf, size_t size, const char **out, struct lg_error *err);

#endif
