/*
 * The prepared-statement cache of one connection, keyed by SQL text and parameter types.
 * Entries are never evicted while the session lives (the server would keep them anyway):
 * when the cache is full, statements run unprepared. An entry the server invalidated takes
 * a new name (lg__prep_rename); the old one is released with the session.
 */
#include "pg_conn_int.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "alloc_int.h"

#define PREP_BUCKETS 256

static uint64_t prep_hash(const char *sql, const uint32_t *types, int n)
{
	uint64_t h = XXH3_64bits(sql, strlen(sql));
	return XXH3_64bits_withSeed(types, sizeof(uint32_t) * (size_t)n, h);
}

struct lg__prep *lg__prep_get(struct lg__prep_cache *pc, const char *sql, const uint32_t *types,
			      int nparams)
{
	if (pc->buckets == NULL) {
		pc->buckets = lg__calloc(PREP_BUCKETS, sizeof(*pc->buckets));
		if (pc->buckets == NULL) {
			return NULL;
		}
		pc->nbuckets = PREP_BUCKETS;
	}
	uint64_t h = prep_hash(sql, types, nparams);
	struct lg__prep **b = &pc->buckets[h % pc->nbuckets];
	for (struct lg__prep *p = *b; p != NULL; p = p->next) {
		if (p->hash == h && p->nparams == nparams && strcmp(p->sql, sql) == 0 &&
		    memcmp(p->types, types, sizeof(uint32_t) * (size_t)nparams) == 0) {
			return p;
		}
	}
	if (pc->count >= pc->max) {
		return NULL; /* full: run unprepared rather than evict under the server's feet */
	}
	size_t sql_len = strlen(sql) + 1;
	size_t types_len = sizeof(uint32_t) * (size_t)nparams;
	struct lg__prep *p = lg__calloc(1, sizeof(*p) + types_len + sql_len);
	if (p == NULL) {
		return NULL;
	}
	p->types = (uint32_t *)(p + 1);
	p->sql = (char *)p->types + types_len;
	memcpy(p->types, types, types_len);
	memcpy(p->sql, sql, sql_len);
	p->nparams = nparams;
	p->hash = h;
	lg__prep_rename(pc, p);
	p->next = *b;
	*b = p;
	pc->count++;
	return p;
}

void lg__prep_rename(struct lg__prep_cache *pc, struct lg__prep *p)
{
	snprintf(p->name, sizeof(p->name), "lg_%u", ++pc->seq);
}

void lg__prep_free_all(struct lg__prep_cache *pc)
{
	for (size_t i = 0; i < pc->nbuckets; i++) {
		struct lg__prep *p = pc->buckets[i];
		while (p != NULL) {
			struct lg__prep *next = p->next;
			lg__free(p);
			p = next;
		}
	}
	lg__free(pc->buckets);
	pc->buckets = NULL;
	pc->nbuckets = 0;
	pc->count = 0;
}
