/* Internal allocation wrappers; all go through the hook of libguard/alloc.h. */
#ifndef LG_ALLOC_INT_H
#define LG_ALLOC_INT_H

#include <stddef.h>

#include "libguard/alloc.h"

void *lg__malloc(size_t size);
void *lg__calloc(size_t n, size_t size);
void *lg__realloc(void *ptr, size_t size);
void lg__free(void *ptr);
char *lg__strdup(const char *s);

#endif
