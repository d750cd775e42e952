/*
 * A bounded cache of statement verdicts keyed by SQL text (see sql_parse.h).
 *
 * Lookup: XXH3 hash of the text (libxxhash), a chained bucket, memcmp; a hit moves the entry to the
 * front of a recency list. A miss parses the text and inserts it; past max entries the least
 * recently used one is dropped. Out of memory for an entry: the verdict is returned
 * uncached. Single-threaded: one cache belongs to one connection.
 */
#include "sql_parse.h"

#include <string.h>
#include <xxhash.h>

#include "alloc_int.h"

#define SQL_CACHE_DEFAULT_MAX 1024

struct sql_entry {
	struct sql_entry *chain; /* bucket */
	struct sql_entry *newer; /* recency list */
	struct sql_entry *older;
	uint64_t hash;
	struct lg__sql_verdict v;
	char sql[]; /* NUL-terminated copy */
};

struct lg__sql_cache {
	struct sql_entry **buckets;
	size_t nbuckets; /* a power of two, at least max */
	size_t count;
	size_t max;
	struct sql_entry *newest;
	struct sql_entry *oldest;
};

struct lg__sql_cache *lg__sql_cache_new(size_t max)
{
	struct lg__sql_cache *c = lg__calloc(1, sizeof(*c));
	if (c == NULL) {
		return NULL;
	}
	c->max = max != 0 ? max : SQL_CACHE_DEFAULT_MAX;
	c->nbuckets = 16;
	while (c->nbuckets < c->max) {
		c->nbuckets *= 2;
	}
	c->buckets = lg__calloc(c->nbuckets, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		lg__free(c);
		return NULL;
	}
	return c;
}

void lg__sql_cache_free(struct lg__sql_cache *c)
{
	if (c == NULL) {
		return;
	}
	struct sql_entry *e = c->newest;
	while (e != NULL) {
		struct sql_entry *next = e->older;
		lg__free(e);
		e = next;
	}
	lg__free(c->buckets);
	lg__free(c);
}

static uint64_t sql_hash(const char *sql, size_t *len)
{
	*len = strlen(sql);
	return XXH3_64bits(sql, *len);
}

static void sql_unlink(struct lg__sql_cache *c, struct sql_entry *e)
{
	if (e->newer != NULL) {
		e->newer->older = e->older;
	} else {
		c->newest = e->older;
	}
	if (e->older != NULL) {
		e->older->newer = e->newer;
	} else {
		c->oldest = e->newer;
	}
}

static void sql_push_newest(struct lg__sql_cache *c, struct sql_entry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest != NULL) {
		c->newest->newer = e;
	} else {
		c->oldest = e;
	}
	c->newest = e;
}

static void sql_evict_oldest(struct lg__sql_cache *c)
{
	struct sql_entry *e = c->oldest;
	struct sql_entry **p = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*p != e) {
		p = &(*p)->chain;
	}
	*p = e->chain;
	sql_unlink(c, e);
	c->count--;
	lg__free(e);
}

struct lg__sql_verdict lg__sql_cache_get(struct lg__sql_cache *c, const char *sql, bool *hit)
{
	if (hit != NULL) {
		*hit = false;
	}
	if (c == NULL) {
		return lg__sql_parse(sql);
	}
	size_t len;
	uint64_t h = sql_hash(sql, &len);
	struct sql_entry **b = &c->buckets[h & (c->nbuckets - 1)];
	for (struct sql_entry *e = *b; e != NULL; e = e->chain) {
		if (e->hash == h && memcmp(e->sql, sql, len + 1) == 0) {
			if (c->newest != e) {
				sql_unlink(c, e);
				sql_push_newest(c, e);
			}
			if (hit != NULL) {
				*hit = true;
			}
			return e->v;
		}
	}
	struct lg__sql_verdict v = lg__sql_parse(sql);
	struct sql_entry *e = lg__malloc(sizeof(*e) + len + 1);
	if (e == NULL) {
		return v;
	}
	if (c->count >= c->max) {
		sql_evict_oldest(c);
	}
	e->hash = h;
	e->v = v;
	memcpy(e->sql, sql, len + 1);
	e->chain = *b;
	*b = e;
	sql_push_newest(c, e);
	c->count++;
	return v;
}
