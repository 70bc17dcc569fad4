/*
 * util.c - small engine-wide helpers: error messages, status names, the
 * huge-page hint every large buffer uses, and the CRC-32 used by model
 * files, checkpoints and the store.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

void nn_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void nn_huge_pages(void *p, size_t len)
{
#ifdef MADV_HUGEPAGE
	const uintptr_t page = 4096;
	uintptr_t from = (uintptr_t)p & ~(page - 1);
	uintptr_t to = ((uintptr_t)p + len + page - 1) & ~(page - 1);
	if (p && len >= ((size_t)2 << 20))
		(void)madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
	(void)p;
	(void)len;
#endif
}

const char *nn_status_name(nn_status s)
{
	switch (s) {
	case NN_OK: return "ok";
	case NN_EINVAL: return "invalid";
	case NN_ENOMEM: return "out_of_memory";
	case NN_EDIVERGED: return "diverged";
	case NN_ESTOPPED: return "stopped";
	case NN_ECORRUPT: return "corrupt";
	case NN_ELIMIT: return "limit";
	}
	return "unknown";
}

/* The reflected IEEE polynomial's tables for slicing by 8 (a byte at a time
 * is some 500 MB/s; eight bytes per round about five times that), built
 * once (pthread_once, so concurrent first callers are safe). crc_table[0]
 * is the classic one-byte table; crc_table[k][i] is i's CRC followed by k
 * zero bytes. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int k = 1; k < 8; k++)
			crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^
			                  crc_table[0][crc_table[k - 1][i] & 0xff];
}

uint32_t nn_crc32(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; i + 8 <= len; i += 8) {
		uint32_t lo, hi;
		memcpy(&lo, p + i, 4);
		memcpy(&hi, p + i + 4, 4);
		lo ^= crc;
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
	}
#endif
	for (; i < len; i++)
		crc = crc_table[0][(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}
