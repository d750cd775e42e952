/*
 * Replies: hiredis frees its reply objects as soon as the callback returns (0.14 has no way to
 * keep them), so each reply is copied into one block the caller owns: the nodes first (the
 * elements of an array are contiguous), then the strings.
 */
#include "redis_int.h"

#include <string.h>

#include "alloc_int.h"

static void reply_measure(const redisReply *r, size_t *nodes, size_t *bytes)
{
	*nodes += 1;
	switch (r->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
		*bytes += r->len + 1;
		break;
	case REDIS_REPLY_ARRAY:
		for (size_t i = 0; i < r->elements; i++) {
			reply_measure(r->element[i], nodes, bytes);
		}
		break;
	default:
		break;
	}
}

static enum lg_redis_type reply_type(int type)
{
	switch (type) {
	case REDIS_REPLY_STRING:
		return LG_REDIS_STRING;
	case REDIS_REPLY_ARRAY:
		return LG_REDIS_ARRAY;
	case REDIS_REPLY_INTEGER:
		return LG_REDIS_INTEGER;
	case REDIS_REPLY_STATUS:
		return LG_REDIS_STATUS;
	case REDIS_REPLY_ERROR:
		return LG_REDIS_ERROR;
	default:
		return LG_REDIS_NIL;
	}
}

static void reply_fill(const redisReply *src, struct lg_redis_reply *dst,
		       struct lg_redis_reply **next_node, char **next_str)
{
	memset(dst, 0, sizeof(*dst));
	dst->type = reply_type(src->type);
	switch (dst->type) {
	case LG_REDIS_INTEGER:
		dst->integer = src->integer;
		break;
	case LG_REDIS_STRING:
	case LG_REDIS_STATUS:
	case LG_REDIS_ERROR:
		memcpy(*next_str, src->str, src->len);
		(*next_str)[src->len] = '\0';
		dst->str = *next_str;
		dst->len = src->len;
		*next_str += src->len + 1;
		break;
	case LG_REDIS_ARRAY: {
		struct lg_redis_reply *children = *next_node;
		*next_node += src->elements;
		dst->elements = src->elements;
		dst->element = children;
		for (size_t i = 0; i < src->elements; i++) {
			reply_fill(src->element[i], &children[i], next_node, next_str);
		}
		break;
	}
	default:
		break;
	}
}

struct lg_redis_reply *lg__redis_reply_copy(const redisReply *src)
{
	size_t nodes = 0, bytes = 0;
	reply_measure(src, &nodes, &bytes);
	struct lg_redis_reply *base = lg__malloc(nodes * sizeof(*base) + bytes);
	if (base == NULL) {
		return NULL;
	}
	struct lg_redis_reply *next_node = base + 1;
	char *next_str = (char *)(base + nodes);
	reply_fill(src, base, &next_node, &next_str);
	return base;
}

LG_API void lg_redis_reply_free(struct lg_redis_reply *reply)
{
	lg__free(reply);
}
