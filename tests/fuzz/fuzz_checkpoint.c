/*
 * fuzz_checkpoint.c - libFuzzer target for the checkpoint loader
 * (nn_ckpt_load in engine/checkpoint.c), reached the way the daemon reaches
 * it: nn_train with the bytes as its resume buffer, on the tiny run of
 * fuzz_common.h (two epochs, so an accepted checkpoint is trained on).
 *
 * Input: byte 0 bit 0 picks the run's config (0: Adam, averaging, early
 * stopping, validation split, standardisation; 1: plain SGD), bit 1 set means
 * "repair the trailing CRC-32 first"; the rest is the checkpoint. Whatever
 * the bytes, training must end with a status and a message, never a fault.
 */
#include "fuzz_common.h"

static uint32_t crc(const uint8_t *p, size_t n)
{
	return nn_crc32(0, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = size - 1;
	uint8_t *buf = malloc(n ? n : 1);
	FUZZ_ASSERT(buf != NULL);
	memcpy(buf, data + 1, n);
	if (data[0] & 2)
		fuzz_fix_crc(buf, n, crc);

	fuzz_run r;
	FUZZ_ASSERT(fuzz_run_setup(&r, data[0] & 1) == 0);
	char err[256] = "";
	nn_train_result res;
	nn_status st = nn_train(r.m, &r.d, NULL, &r.cfg, NULL, buf, n, &res, err, sizeof err);
	if (st == NN_OK) {
		FUZZ_ASSERT(res.epochs_run >= 0 && res.steps >= 0);
	} else {
		FUZZ_ASSERT(err[0] != '\0');
		FUZZ_ASSERT(st == NN_ECORRUPT || st == NN_EINVAL || st == NN_EDIVERGED ||
		            st == NN_ENOMEM);
	}
	fuzz_run_release(&r);
	free(buf);
	return 0;
}
