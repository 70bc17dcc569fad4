/*
 * fuzz_dataset_json.c - libFuzzer target for the JSON data-set reader
 * (api/dataset_json.c): the input is the request body, parsed by cJSON as
 * the daemon does, then read into a data set. Accepted data sets must be
 * consistent; rejections must be 4xx with a code.
 */
#include <cjson/cJSON.h>
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;
	api_err e = API_ERR_INIT;
	api_dataset d;
	memset(&d, 0, sizeof d);
	if (api_dataset_from_json(j, &d, &e) == 0) {
		fuzz_check_dataset(&d, 1);
		FUZZ_ASSERT(d.rows > 0 && d.features > 0);
	} else {
		FUZZ_ASSERT(e.status >= 400 && e.status < 500 && e.code[0] != '\0');
	}
	api_dataset_free(&d);
	cJSON_Delete(j);
	return 0;
}
