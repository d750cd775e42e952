/*
 * An external program built against the installed libguard (tests/install/check.sh): strict
 * C11 without _GNU_SOURCE, flags from `pkg-config --cflags --libs libguard` only. It creates a
 * runtime, runs a coroutine on it and frees it.
 */
#include <libguard/libguard.h>

#include <stdio.h>

#ifdef LIBGUARD_CACHE_CONTRACT_H
#error "libguard/libguard.h must not include the reflector's libguard/cache_contract.h"
#endif

/* The model macros expand in user code: check they are valid C11 too. */
#define ITEM_COLUMNS(X)                                                                            \
	X(item, id, LG_INT64, LG_COL_PK | LG_COL_DEFAULT)                                          \
	X(item, name, LG_TEXT, 0)
LG_MODEL_DECLARE(item, ITEM_COLUMNS);
LG_MODEL_DEFINE(item, "public", "items", ITEM_COLUMNS);

static void body(void *arg)
{
	int *ran = arg;
	if (lg_yield() == 0 && lg_sleep(1) == 0) {
		*ran = 1;
	}
}

int main(void)
{
	struct lg_runtime *rt = NULL;
	int rc = lg_runtime_new(NULL, NULL, &rt);
	if (rc != 0) {
		fprintf(stderr, "consumer: lg_runtime_new: %s\n", lg_strerror(rc));
		return 1;
	}
	if (lg_runtime_loop(rt) == NULL) {
		fprintf(stderr, "consumer: lg_runtime_loop returned NULL\n");
		lg_runtime_free(rt);
		return 1;
	}
	int ran = 0;
	struct lg_coro *c = NULL;
	rc = lg_coro_spawn(rt, body, &ran, &c);
	if (rc == 0) {
		rc = lg_coro_join(c, lg_deadline_in(10000));
	}
	lg_runtime_free(rt);
	if (rc != 0 || !ran) {
		fprintf(stderr, "consumer: coroutine: %s (ran=%d)\n", lg_strerror(rc), ran);
		return 1;
	}
	printf("consumer: runtime created, coroutine ran, runtime freed (model %s)\n",
	       item_model.table);
	return 0;
}
