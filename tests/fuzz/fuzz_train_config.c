/*
 * fuzz_train_config.c - libFuzzer target for the job-config validator
 * (api_train_config_from_json in api/spec_json.c): the input is a POST
 * /v1/jobs body, parsed by cJSON as the daemon does.
 *
 * An accepted config must pass the engine's own check, and the config as
 * stored (api_train_config_to_json) must be accepted again and give the same
 * stored document. A rejection must be a 4xx naming a code.
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
	nn_train_config cfg;
	api_job_refs refs = { .model = NULL };
	if (api_train_config_from_json(j, &lim, &cfg, &refs, &e) == 0) {
		char err[256];
		FUZZ_ASSERT(nn_train_config_check(&cfg, err, sizeof err) == NN_OK);
		FUZZ_ASSERT(refs.model != NULL && refs.dataset != NULL);
		cJSON *stored = api_train_config_to_json(&cfg, &refs);
		FUZZ_ASSERT(stored != NULL);
		nn_train_config cfg2;
		api_job_refs refs2 = { .model = NULL };
		api_err e2 = API_ERR_INIT;
		FUZZ_ASSERT(api_train_config_from_json(stored, &lim, &cfg2, &refs2, &e2) == 0);
		cJSON *again = api_train_config_to_json(&cfg2, &refs2);
		char *a = cJSON_PrintUnformatted(stored), *b = cJSON_PrintUnformatted(again);
		FUZZ_ASSERT(a && b && strcmp(a, b) == 0);
		free(a);
		free(b);
		cJSON_Delete(again);
		cJSON_Delete(stored);
		api_job_refs_free(&refs2);
	} else {
		FUZZ_ASSERT(e.status >= 400 && e.status < 500 && e.code[0] != '\0');
	}
	api_job_refs_free(&refs);
	cJSON_Delete(j);
	return 0;
}
