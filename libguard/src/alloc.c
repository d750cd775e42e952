/* The single allocation path of libguard (see libguard/alloc.h). */
#include "alloc_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *alloc_default_malloc(size_t size, void *ud)
{
	(void)ud;
	return malloc(size);
}

static void *alloc_default_realloc(void *ptr, size_t size, void *ud)
{
	(void)ud;
	return realloc(ptr, size);
}

static void alloc_default_free(void *ptr, void *ud)
{
	(void)ud;
	free(ptr);
}

static struct lg_allocator alloc_current = {
    alloc_default_malloc,
    alloc_default_realloc,
    alloc_default_free,
    NULL,
};

LG_API void lg_set_allocator(const struct lg_allocator *a)
{
	if (a == NULL) {
		alloc_current.malloc = alloc_default_malloc;
		alloc_current.realloc = alloc_default_realloc;
		alloc_current.free = alloc_default_free;
		alloc_current.ud = NULL;
		return;
	}
	alloc_current = *a;
}

void *lg__malloc(size_t size)
{
	return alloc_current.malloc(size, alloc_current.ud);
}

void *lg__calloc(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		return NULL;
	}
	void *p = lg__malloc(n * size);
	if (p != NULL) {
		memset(p, 0, n * size);
	}
	return p;
}

void *lg__realloc(void *ptr, size_t size)
{
	return alloc_current.realloc(ptr, size, alloc_current.ud);
}

void lg__free(void *ptr)
{
	if (ptr != NULL) {
		alloc_current.free(ptr, alloc_current.ud);
	}
}

char *lg__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = lg__malloc(n);
	if (p != NULL) {
		memcpy(p, s, n);
	}
	return p;
}
