/*
 * Planning one outbox batch (pure: no loop, no sockets). The leader claims outbox rows,
 * hands them here, and gets back the Redis work: one entry per distinct (table, key) carrying
 * the highest version and the operation of that version, TRUNCATE events per table, and the
 * rows that cannot be processed (moved to lifeguard.outbox_dead with the reason).
 *
 * Many changes to one row cost one Redis round and at most one read: only the newest version
 * matters, because every Redis write is "only forward in version" (see libguard/cache_contract.h).
 * A key change whose newest version is older than a TRUNCATE of its table in the same batch
 * is superseded: the table fence and the tombstone sweep already cover it.
 */
#ifndef RF_COH_PLAN_H
#define RF_COH_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "contract.h"

/* One claimed outbox row. Strings are Owned by the plan (rf_plan_free). */
struct rf_change {
	int64_t id;
	char *table; /* "schema.table" as quote_ident() wrote it */
	char *pk;    /* JSON text of the key array; NULL for TRUNCATE */
	char op;     /* 'I', 'U', 'D', 'T' */
	int64_t version;
	int64_t created_us; /* clock_timestamp() at capture, µs since the Unix epoch */
	const char *bad;    /* static reason when the row is malformed, else NULL */
	size_t key_index;   /* its entry in rf_plan.keys (SIZE_MAX: none) */
};

enum rf_key_state {
	RF_KEY_PENDING = 0,
	RF_KEY_SUPERSEDED, /* a TRUNCATE of the table in this batch is newer */
	RF_KEY_CACHED,     /* check-or-fence answered "cached": read the row, then refresh */
	RF_KEY_DONE,       /* Redis work finished (result counted) */
	RF_KEY_BAD,        /* the key cannot be read (dead-lettered) */
};

/* One distinct (table, key) of the batch. */
struct rf_key_work {
	const char *table; /* Borrowed from the change */
	json_t *parts;     /* Owned: the parsed key array (strings) */
	char *pk;          /* Owned: canonical JSON text of parts */
	char *redis_key;   /* Owned */
	char *fence_key;   /* Owned */
	int64_t version;   /* newest version in the batch */
	char op;           /* operation of that version */
	enum rf_key_state state;
	const char *bad; /* reason when state is RF_KEY_BAD (static) */
	/* The row read from the primary for a cached key (or speculatively for any insert or
	 * update of a small batch, in parallel with the Redis check): */
	bool read_done;       /* read attempted: row_found and read_bad are valid */
	const char *read_bad; /* static reason the key cannot be read (dead-letter it) */
	bool row_found;
	int64_t row_version;
	char *value; /* Owned: {"v":..,"row":..} */
	size_t value_len;
};

struct rf_truncate_work {
	const char *table; /* Borrowed from the change */
	int64_t version;   /* newest TRUNCATE of the table in the batch */
	char *fence_key;   /* Owned: the table fence */
	char *match;       /* Owned: SCAN MATCH pattern for the table's row keys */
};

struct rf_plan {
	struct rf_change *changes; /* Owned, n_changes */
	size_t n_changes;
	size_t cap_changes;
	struct rf_key_work *keys; /* Owned, n_keys */
	size_t n_keys;
	struct rf_truncate_work *truncates; /* Owned, n_truncates */
	size_t n_truncates;
};

/*
 * Appends one claimed row (strings Copied; table/pk may be NULL: then it is malformed).
 * Returns 0, or -1 when out of memory.
 */
int rf_plan_add(struct rf_plan *p, int64_t id, const char *table, const char *pk, char op,
		int64_t version, int64_t created_us);

/*
 * Validates every change, groups them by key and builds the Redis keys with prefix (row
 * keys) and fence_prefix. Malformed rows get change->bad. Returns 0 or -1 (out of memory).
 */
int rf_plan_build(struct rf_plan *p, const char *prefix, const char *fence_prefix);

/* Releases everything the plan owns and zeroes it. */
void rf_plan_free(struct rf_plan *p);

/*
 * The contract's batch read (lg__contract_read_batch_sql) of one table: parameter $1 is a JSON
 * array of key arrays; each result row is (ordinal 1-based, lg_version, to_jsonb(row)::text).
 * table is the catalog's canonical "schema.table", cols its key columns. Returns an Owned
 * string or NULL (out of memory).
 */
char *rf_plan_read_sql(const char *table, const struct lg__contract_col *cols, size_t n);

/* The cache value {"v":version,"row":row_json}; Owned, NULL when out of memory. */
char *rf_plan_value(int64_t version, const char *row_json, size_t row_len, size_t *out_len);

#endif
