/*
 * fuzz_model_spec.c - libFuzzer target for the model-spec validator
 * (api_model_spec_from_json in api/spec_json.c): the input is a POST
 * /v1/models body, parsed by cJSON as the daemon does.
 *
 * An accepted spec must pass the engine's own check with the same parameter
 * limit, print back to JSON, and (when it is small) build a model. A
 * rejection must be a 4xx naming a code.
 */
#include <cjson/cJSON.h>
#include "fuzz_common.h"
#include "spec_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;
	api_limits lim = api_limits_default();
	api_err e = API_ERR_INIT;
	nn_model_spec s;
	char *name = NULL;
	memset(&s, 0, sizeof s);
	if (api_model_spec_from_json(j, &lim, &s, &name, &e) == 0) {
		char err[256];
		int64_t params = -1;
		FUZZ_ASSERT(nn_spec_check(&s, lim.max_params, &params, err, sizeof err) == NN_OK);
		FUZZ_ASSERT(params >= 0 && params <= lim.max_params);
		cJSON *out = api_model_spec_to_json(&s);
		FUZZ_ASSERT(out != NULL);
		cJSON_Delete(out);
		if (params < 20000) {
			nn_model *m = nn_model_create(&s, err, sizeof err);
			FUZZ_ASSERT(m != NULL);
			FUZZ_ASSERT(nn_model_param_count(m) == params);
			nn_model_free(m);
		}
		nn_layers_free(s.layers, s.n_layers);
	} else {
		FUZZ_ASSERT(e.status >= 400 && e.status < 500 && e.code[0] != '\0');
	}
	free(name);
	cJSON_Delete(j);
	return 0;
}
