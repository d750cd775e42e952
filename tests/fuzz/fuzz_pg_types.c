/*
 * libFuzzer harness for libguard's text codecs of date, time, timestamp, interval, numeric,
 * inet and arrays (pg_types_time.c, pg_types_misc.c). The first byte picks the parser, the
 * rest is the value. Beyond not crashing, a parse that succeeds must give a value inside the
 * documented range, and one that fails must leave its outputs untouched.
 */
#include "pg_types.h"

#include "libguard/error.h"

#include <stdlib.h>
#include <string.h>

static int check_elem(void *ud, const char *elem, size_t elen)
{
	size_t max = *(const size_t *)ud;
	if (elem != NULL && (elen > max || strlen(elem) != elen)) {
		abort();
	}
	return 0;
}

static void fuzz_time(unsigned kind, const char *s, size_t n)
{
	int32_t d = 7;
	int64_t t = 7;
	int rc;
	switch (kind) {
	case 0:
		rc = lg__pg_parse_date(s, n, &d);
		if (rc == 0 && d != INT32_MAX && d != INT32_MIN &&
		    (d < LG__PG_DATE_MIN || d >= LG__PG_DATE_END)) {
			abort();
		}
		if (rc != 0 && d != 7) {
			abort();
		}
		break;
	case 1:
		rc = lg__pg_parse_time(s, n, &t);
		if ((rc == 0 && (t < 0 || t > LG__PG_TIME_MAX)) || (rc != 0 && t != 7)) {
			abort();
		}
		break;
	default:
		rc = lg__pg_parse_timestamp(s, n, &t);
		if ((rc == 0 && t != INT64_MIN && t < LG__PG_TS_MIN) || (rc != 0 && t != 7)) {
			abort();
		}
		break;
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size < 1) {
		return 0;
	}
	unsigned kind = data[0] % 7;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	if (kind <= 2) {
		fuzz_time(kind, s, n);
	} else if (kind == 3) {
		int32_t mo = 7, d = 7;
		int64_t us = 7;
		if (lg__pg_parse_interval(s, n, &mo, &d, &us) != 0 &&
		    (mo != 7 || d != 7 || us != 7)) {
			abort();
		}
	} else if (kind == 4) {
		(void)lg__pg_numeric_valid(s, n);
	} else if (kind == 5) {
		uint8_t fam = 9, bits = 0, addr[16];
		int rc = lg__pg_parse_inet(s, n, &fam, &bits, addr);
		if ((rc == 0 && !((fam == 4 && bits <= 32) || (fam == 6 && bits <= 128))) ||
		    (rc != 0 && fam != 9)) {
			abort();
		}
	} else {
		char *buf = malloc(n + 1);
		if (buf != NULL) {
			(void)lg__pg_array_split(s, n, buf, check_elem, &n);
			free(buf);
		}
	}
	return 0;
}
