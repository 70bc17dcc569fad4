/*
 * fuzz_model_file.c - libFuzzer target for the model file loader
 * (nn_model_load in engine/model_file.c).
 *
 * Input: byte 0 bit 0 set means "repair the trailing CRC-32 first", so
 * mutations reach the spec and tensor parser behind the checksum; the rest
 * is the file. An accepted model must predict a row without fault, and its
 * saved bytes must load and save again unchanged.
 */
#include "fuzz_common.h"
#include "nn.h"

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
	if (data[0] & 1)
		fuzz_fix_crc(buf, n, crc);

	char err[256] = "";
	nn_model *m = NULL;
	nn_status st = nn_model_load(buf, n, &m, err, sizeof err);
	if (st == NN_OK) {
		FUZZ_ASSERT(m != NULL);
		const nn_model_spec *s = nn_model_spec_of(m);
		FUZZ_ASSERT(s->inputs > 0 && s->outputs > 0);
		FUZZ_ASSERT(s->n_layers >= 1);
		/* one inference on a zero row, when the model is small enough */
		if ((int64_t)s->inputs + s->outputs < (1 << 16) && nn_model_param_count(m) < (1 << 22)) {
			nn_scratch *sc = nn_scratch_create(m, 1);
			float *x = calloc((size_t)s->inputs, sizeof(float));
			float *y = calloc((size_t)s->outputs, sizeof(float));
			if (sc && x && y)
				(void)nn_predict(m, sc, x, 1, y);
			free(x);
			free(y);
			nn_scratch_free(sc);
		}
		/* fields a layer type does not read may be normalised on load, so
		 * the file need not come back byte for byte; but a saved model must
		 * load, and save again to the same bytes */
		void *once = NULL, *twice = NULL;
		size_t n1 = 0, n2 = 0;
		nn_model *m2 = NULL;
		FUZZ_ASSERT(nn_model_save(m, &once, &n1) == NN_OK);
		FUZZ_ASSERT(nn_model_load(once, n1, &m2, err, sizeof err) == NN_OK);
		FUZZ_ASSERT(nn_model_save(m2, &twice, &n2) == NN_OK);
		FUZZ_ASSERT(n1 == n2 && memcmp(once, twice, n1) == 0);
		free(once);
		free(twice);
		nn_model_free(m2);
	} else {
		FUZZ_ASSERT(m == NULL && err[0] != '\0');
		FUZZ_ASSERT(st == NN_ECORRUPT || st == NN_EINVAL || st == NN_ELIMIT || st == NN_ENOMEM);
	}
	nn_model_free(m);
	free(buf);
	return 0;
}
