/*
 * fuzz_weights.c - libFuzzer target for the weights JSON reader
 * (api_weights_from_json in api/spec_json.c), onto small models.
 *
 * Input: byte 0 picks the model (see fuzz_weights_model in fuzz_common.h:
 * dense + batch norm + dropout; a residual block with a projection and
 * standardisation; the first PyTorch reference case); the rest is a PUT
 * /v1/models/{id}/weights body. A rejection must leave the model untouched;
 * accepted weights must print back (GET) to a document that is accepted
 * again.
 */
#include <cjson/cJSON.h>
#include "fuzz_common.h"
#include "spec_json.h"

static nn_model *models[FUZZ_WEIGHT_MODELS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int k = data[0] % FUZZ_WEIGHT_MODELS;
	if (!models[k])
		models[k] = fuzz_weights_model(k);   /* kept for the whole run */
	FUZZ_ASSERT(models[k] != NULL);
	cJSON *j = cJSON_ParseWithLength((const char *)data + 1, size - 1);
	if (!j)
		return 0;
	nn_model *m = nn_model_clone(models[k]);
	FUZZ_ASSERT(m != NULL);
	void *before = NULL, *after = NULL;
	size_t nb = 0, na = 0;
	FUZZ_ASSERT(nn_model_save(m, &before, &nb) == NN_OK);
	api_err e = API_ERR_INIT;
	if (api_weights_from_json(j, m, &e) == 0) {
		cJSON *out = api_weights_to_json(m);
		FUZZ_ASSERT(out != NULL);
		nn_model *m2 = nn_model_clone(models[k]);
		api_err e2 = API_ERR_INIT;
		FUZZ_ASSERT(m2 && api_weights_from_json(out, m2, &e2) == 0);
		nn_model_free(m2);
		cJSON_Delete(out);
	} else {
		FUZZ_ASSERT(e.status >= 400 && e.status < 500 && e.code[0] != '\0');
		FUZZ_ASSERT(nn_model_save(m, &after, &na) == NN_OK);
		FUZZ_ASSERT(na == nb && memcmp(before, after, nb) == 0);
	}
	free(before);
	free(after);
	nn_model_free(m);
	cJSON_Delete(j);
	return 0;
}
