/*
 * util.c - small engine-wide helpers: error messages, status names and the
 * CRC-32 used by model files, checkpoints and the store.
 */
#include <pthread.h>
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

/* The reflected IEEE polynomial's table, built once (pthread_once, so
 * concurrent first callers are safe). */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t nn_crc32(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}
