/*
 * fuzz_dataset_file.c - libFuzzer target for the stored data-set file
 * deserializer (api_dataset_deserialize in api/dataset.c).
 *
 * Input: byte 0 bit 0 set means "repair the trailing CRC-32 first", so
 * mutations reach the field parser behind the checksum; the rest is the
 * file. An accepted file must give a consistent data set whose serialized
 * bytes read back and serialize again unchanged.
 */
#include <zlib.h>
#include "fuzz_common.h"

static uint32_t crc(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32(0L, p, (uInt)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = size - 1;
	uint8_t *buf = malloc(n ? n : 1);
	FUZZ_ASSERT(buf != NULL);
	memcpy(buf, data + 1, n);
	if (data[0] & 1)
		fuzz_fix_crc(buf, n, crc);

	api_err e = API_ERR_INIT;
	api_dataset d;
	memset(&d, 0, sizeof d);
	if (api_dataset_deserialize(buf, n, &d, &e) == 0) {
		fuzz_check_dataset(&d, 0);
		/* reserved header words need not survive, but what is written
		 * must read back and write again to the same bytes */
		void *once = NULL, *twice = NULL;
		size_t n1 = 0, n2 = 0;
		api_dataset d2;
		FUZZ_ASSERT(api_dataset_serialize(&d, &once, &n1) == 0);
		FUZZ_ASSERT(api_dataset_deserialize(once, n1, &d2, &e) == 0);
		FUZZ_ASSERT(api_dataset_serialize(&d2, &twice, &n2) == 0);
		FUZZ_ASSERT(n1 == n2 && memcmp(once, twice, n1) == 0);
		free(once);
		free(twice);
		api_dataset_free(&d2);
	} else {
		FUZZ_ASSERT(e.status >= 400 && e.code[0] != '\0');
	}
	api_dataset_free(&d);
	free(buf);
	return 0;
}
