/*
 * fuzz_onnx.c - libFuzzer target for the ONNX reader (api/onnx_import.c and
 * the protobuf reader under it).
 *
 * Input: an ONNX file, as POST /v1/models?format=onnx receives it (limits
 * kept small so accepted graphs stay cheap). Invariants: a refusal is a 400
 * or a 422 and allocates nothing that outlives the call; an accepted graph
 * exports (opset 13), the export imports again, and exporting that gives
 * the same bytes (what the round-trip test holds for nnd's own files holds
 * for anything the reader accepts).
 */
#include "fuzz_common.h"
#include "onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	api_limits lim = api_limits_default();
	lim.max_params = 200000;
	lim.max_units = 4096;
	api_err e = API_ERR_INIT;
	nn_model *m = NULL;
	if (api_onnx_import(data, size, API_ONNX_TASK_AUTO, &lim, &m, &e) < 0) {
		FUZZ_ASSERT(m == NULL);
		FUZZ_ASSERT(e.status == 400 || e.status == 422 || e.status == 500);
		return 0;
	}
	FUZZ_ASSERT(m != NULL);
	uint8_t *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	api_err e2 = API_ERR_INIT;
	FUZZ_ASSERT(api_onnx_export(m, 13, NULL, &a, &la, &e2) == 0);
	nn_model *back = NULL;
	FUZZ_ASSERT(api_onnx_import(a, la, nn_model_spec_of(m)->task, &lim, &back, &e2) == 0);
	FUZZ_ASSERT(api_onnx_export(back, 13, NULL, &b, &lb, &e2) == 0);
	FUZZ_ASSERT(la == lb && memcmp(a, b, la) == 0);
	free(a);
	free(b);
	nn_model_free(back);
	nn_model_free(m);
	return 0;
}
