/*
 * Unit tests for lg_result_bytea() on text-format results, where pg_result.c decodes with
 * libpq's PQunescapeBytea() and copies into a block of its own.
 *
 * Results are built in memory with PQmakeEmptyPGresult(), PQsetResultAttrs() and PQsetvalue(),
 * so no server is needed; tests/integration/test_types.c covers the same path against one.
 * Encodings are hand-built in the server's byteaout() forms. libpq does not reject malformed
 * bytea text (the server never sends any), so nothing here expects a rejection.
 */
#include "libguard/alloc.h"
#include "libguard/error.h"
#include "libguard/result.h"
#include "pg_conn_int.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OID_BYTEA = 17, OID_TEXT = 25 };

/* A one-row result whose columns all have the given type and format, holding texts[i]. */
static struct lg_result *result_of(Oid type, int format, const char *const *texts, int n)
{
	PGresult *pg = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	cr_assert_not_null(pg);
	PGresAttDesc attrs[4];
	cr_assert(n > 0 && n <= 4);
	for (int i = 0; i < n; i++) {
		attrs[i] = (PGresAttDesc){
		    .name = "b", .format = format, .typid = type, .typlen = -1, .atttypmod = -1};
	}
	cr_assert(PQsetResultAttrs(pg, n, attrs));
	for (int i = 0; i < n; i++) {
		cr_assert(PQsetvalue(pg, 0, i, (char *)texts[i], (int)strlen(texts[i])));
	}
	struct lg_result *r = lg__result_wrap(pg);
	cr_assert_not_null(r);
	return r;
}

/* Decodes one text cell and compares with want. */
static void expect_bytea(const char *text, const void *want, size_t want_len)
{
	struct lg_result *r = result_of(OID_BYTEA, 0, &text, 1);
	const uint8_t *out = NULL;
	size_t n = 9999;
	cr_assert_eq(lg_result_bytea(r, 0, 0, &out, &n), 0, "%s", text);
	cr_assert_eq(n, want_len, "%s", text);
	cr_assert(memcmp(out, want, want_len) == 0, "%s", text);
	lg_result_free(r);
}

Test(pg_bytea, decodes_hex_format)
{
	expect_bytea("\\x", "", 0);
	expect_bytea("\\x00ff10", "\x00\xff\x10", 3);
	expect_bytea("\\xDEADbeef", "\xde\xad\xbe\xef", 4);
	expect_bytea("\\x000000", "\0\0\0", 3);
}

Test(pg_bytea, decodes_escape_format)
{
	expect_bytea("", "", 0);
	expect_bytea("abc", "abc", 3);
	expect_bytea("a\\000b", "a\0b", 3);
	expect_bytea("\\\\", "\\", 1);
	expect_bytea("\\\\x41", "\\x41", 4);
	expect_bytea("\\377\\001\\100", "\xff\x01\x40", 3);
	expect_bytea("\xc3\xa9\x01", "\xc3\xa9\x01", 3);
	expect_bytea("x\\\\000", "x\\000", 5);
}

Test(pg_bytea, every_byte_value_in_both_formats)
{
	uint8_t want[256];
	char hex[2 + 512 + 1], esc[4 * 256 + 1];
	size_t elen = 0;
	for (int i = 0; i < 256; i++) {
		want[i] = (uint8_t)(255 - i);
	}
	hex[0] = '\\';
	hex[1] = 'x';
	for (int i = 0; i < 256; i++) {
		snprintf(hex + 2 + 2 * i, 3, "%02X", want[i]);
		/* byteaout()'s escape rules: backslash doubled, non-printables as octal. */
		if (want[i] == '\\') {
			memcpy(esc + elen, "\\\\", 2);
			elen += 2;
		} else if (want[i] < 0x20 || want[i] > 0x7e) {
			elen += (size_t)sprintf(esc + elen, "\\%03o", want[i]);
		} else {
			esc[elen++] = (char)want[i];
		}
	}
	esc[elen] = '\0';
	expect_bytea(hex, want, sizeof(want));
	expect_bytea(esc, want, sizeof(want));
}

Test(pg_bytea, each_cell_is_decoded_once_and_kept_with_the_result)
{
	static const char *const texts[] = {"\\x0102", "\\x0304"};
	struct lg_result *r = result_of(OID_BYTEA, 0, texts, 2);
	const uint8_t *a, *b, *again;
	size_t alen, blen, n;
	cr_assert_eq(lg_result_bytea(r, 0, 0, &a, &alen), 0);
	cr_assert_eq(lg_result_bytea(r, 0, 1, &b, &blen), 0);
	cr_assert_eq(lg_result_bytea(r, 0, 0, &again, &n), 0);
	cr_expect_eq(again, a, "the cached copy is returned again");
	cr_expect_neq(a, b, "cells are cached separately");
	cr_expect(alen == 2 && memcmp(a, "\1\2", 2) == 0);
	cr_expect(blen == 2 && memcmp(b, "\3\4", 2) == 0);
	lg_result_free(r);
}

Test(pg_bytea, binary_cells_and_other_types)
{
	static const char *const raw[] = {"\\x41"};
	struct lg_result *r = result_of(OID_BYTEA, 1, raw, 1);
	const uint8_t *out;
	size_t n;
	cr_assert_eq(lg_result_bytea(r, 0, 0, &out, &n), 0);
	cr_expect(n == 4 && memcmp(out, "\\x41", 4) == 0, "binary bytes are returned as sent");
	lg_result_free(r);
	r = result_of(OID_TEXT, 0, raw, 1);
	cr_expect_eq(lg_result_bytea(r, 0, 0, &out, &n), LG_ETYPE);
	cr_expect_eq(lg_result_bytea(r, 1, 0, &out, &n), LG_EINVAL, "row out of range");
	lg_result_free(r);
}

/* Counts the blocks handed out through the hook and remembers the last one; fail_next makes
 * the next malloc fail. */
static struct {
	long live;
	long mallocs;
	bool fail_next;
	const uint8_t *last;
	size_t last_size;
} hook;

static void *hook_malloc(size_t size, void *ud)
{
	(void)ud;
	if (hook.fail_next) {
		hook.fail_next = false;
		return NULL;
	}
	void *p = malloc(size);
	hook.live += p != NULL;
	hook.mallocs += p != NULL;
	hook.last = p;
	hook.last_size = size;
	return p;
}

static void *hook_realloc(void *ptr, size_t size, void *ud)
{
	(void)ud;
	void *p = realloc(ptr, size);
	hook.live += ptr == NULL && p != NULL;
	return p;
}

static void hook_free(void *ptr, void *ud)
{
	(void)ud;
	hook.live -= ptr != NULL;
	free(ptr);
}

Test(pg_bytea, decoded_copies_go_through_the_allocator_hook)
{
	static const struct lg_allocator a = {hook_malloc, hook_realloc, hook_free, NULL};
	lg_set_allocator(&a);
	static const char *const text[] = {"\\x00ff"};
	struct lg_result *r = result_of(OID_BYTEA, 0, text, 1);
	const uint8_t *out;
	size_t n;
	long before = hook.mallocs;
	hook.fail_next = true;
	cr_expect_eq(lg_result_bytea(r, 0, 0, &out, &n), LG_ENOMEM, "the copy's malloc failed");
	cr_expect_eq(hook.mallocs, before);
	cr_assert_eq(lg_result_bytea(r, 0, 0, &out, &n), 0, "a later call succeeds");
	cr_expect_eq(hook.mallocs, before + 1, "one block for the decoded copy");
	cr_expect(out >= hook.last && out + n <= hook.last + hook.last_size,
		  "the bytes live in the hook's block, not in libpq's");
	cr_expect(n == 2 && memcmp(out, "\0\xff", 2) == 0);
	lg_result_free(r);
	lg_set_allocator(NULL);
	cr_expect_eq(hook.live, 0, "%ld blocks leaked", hook.live);
}
