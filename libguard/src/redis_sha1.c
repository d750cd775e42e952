/*
 * SHA-1 (FIPS 180-4, section 6.1) for the script digests EVALSHA expects, and the script
 * helpers built on it. Pure code: no loop, no sockets.
 */
#include <stdint.h>
#include <string.h>

#include "libguard/redis.h"

struct sha1_ctx {
	uint32_t h[5];
	uint64_t total;
	uint8_t block[64];
	size_t used;
};

static uint32_t sha1_rol(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_block(struct sha1_ctx *s, const uint8_t *p)
{
	uint32_t w[80];
	for (int t = 0; t < 16; t++) {
		w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
		       (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
	}
	for (int t = 16; t < 80; t++) {
		w[t] = sha1_rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
	}
	uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
	for (int t = 0; t < 80; t++) {
		uint32_t f, k;
		if (t < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999u;
		} else if (t < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1u;
		} else if (t < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdcu;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6u;
		}
		uint32_t tmp = sha1_rol(a, 5) + f + e + k + w[t];
		e = d;
		d = c;
		c = sha1_rol(b, 30);
		b = a;
		a = tmp;
	}
	s->h[0] += a;
	s->h[1] += b;
	s->h[2] += c;
	s->h[3] += d;
	s->h[4] += e;
}

static void sha1_update(struct sha1_ctx *s, const uint8_t *p, size_t len)
{
	s->total += len;
	while (len > 0) {
		size_t n = 64 - s->used < len ? 64 - s->used : len;
		memcpy(s->block + s->used, p, n);
		s->used += n;
		p += n;
		len -= n;
		if (s->used == 64) {
			sha1_block(s, s->block);
			s->used = 0;
		}
	}
}

LG_API void lg_sha1_hex(const void *data, size_t len, char hex[41])
{
	struct sha1_ctx s = {
	    {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u, 0xc3d2e1f0u}, 0, {0}, 0};
	sha1_update(&s, data, len);
	/* Padding (5.1.1): a one bit, zeros up to 56 mod 64, then the bit length big-endian. */
	uint64_t bits = s.total * 8;
	uint8_t pad = 0x80;
	sha1_update(&s, &pad, 1);
	pad = 0;
	while (s.used != 56) {
		sha1_update(&s, &pad, 1);
	}
	uint8_t lenbuf[8];
	for (int i = 0; i < 8; i++) {
		lenbuf[i] = (uint8_t)(bits >> (56 - 8 * i));
	}
	sha1_update(&s, lenbuf, 8);
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 20; i++) {
		uint8_t byte = (uint8_t)(s.h[i / 4] >> (24 - 8 * (i % 4)));
		hex[2 * i] = digits[byte >> 4];
		hex[2 * i + 1] = digits[byte & 0xf];
	}
	hex[40] = '\0';
}

LG_API void lg_redis_script_init(struct lg_redis_script *script, const char *source)
{
	script->source = source;
	lg_sha1_hex(source, strlen(source), script->sha1);
}
