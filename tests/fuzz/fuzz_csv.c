/*
 * fuzz_csv.c - libFuzzer target for the streaming CSV reader (api/csv.c).
 *
 * Input: byte 0 picks the options (header on/off, the label column, the
 * task, a memory limit); bytes 1..4 seed the piece lengths; the rest is the
 * CSV body, fed in pieces of 1..31 bytes or whole, so every state of the
 * tokenizer meets a piece boundary, and once whole: both readings must agree
 * (result, values, names, or the error's detail), and an accepted data set
 * must be consistent.
 */
#include "fuzz_common.h"

static const char *const labels[] = { NULL, "0", "1", "label", "y", "-1", "99999999999", "" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	uint8_t o = data[0];
	api_csv_opts opts = { .header = (o & 1) == 0, .label = labels[(o >> 1) & 7], .task = -1 };
	opts.task = (o >> 4) % 3 == 0 ? -1 : (int)((o >> 4) % 3) - 1;
	opts.max_bytes = (o & 0x40) ? 4096 : 0;
	fuzz_splitter sp = fuzz_splitter_of(data + 1, 4);
	const char *body = (const char *)data + 5;
	size_t left = size - 5;

	api_err e = API_ERR_INIT, e1 = API_ERR_INIT;
	api_dataset d, whole;
	int rc = fuzz_read_csv(&opts, body, left, &sp, &d, &e);
	int rc1 = fuzz_read_csv(&opts, body, left, NULL, &whole, &e1);
	/* the split never changes the outcome, nor the error's wording */
	FUZZ_ASSERT(rc == rc1);
	if (rc == 0) {
		fuzz_check_dataset(&d, 1);
		FUZZ_ASSERT(d.rows > 0);
		fuzz_same_dataset(&d, &whole);
	} else {
		/* a rejection is a 4xx with a code, never a 5xx */
		FUZZ_ASSERT(e.status >= 400 && e.status < 500 && e.code[0] != '\0');
		FUZZ_ASSERT(e.status == e1.status && strcmp(e.detail, e1.detail) == 0);
	}
	api_dataset_free(&d);
	api_dataset_free(&whole);
	return 0;
}
