/*
 * Allocation hook. Every allocation libguard makes goes through these functions, so tests can
 * inject failures and services can plug in their own allocator. Set it once, before creating
 * any runtime; NULL restores malloc/realloc/free.
 */
#ifndef LIBGUARD_ALLOC_H
#define LIBGUARD_ALLOC_H

#include <stddef.h>

#include "libguard/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lg_allocator {
	void *(*malloc)(size_t size, void *ud);
	void *(*realloc)(void *ptr, size_t size, void *ud);
	void (*free)(void *ptr, void *ud);
	void *ud;
};

/* a is Copied. */
LG_API void lg_set_allocator(const struct lg_allocator *a);

#ifdef __cplusplus
}
#endif

#endif
