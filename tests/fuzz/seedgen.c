/*
 * seedgen.c - writes the binary seed inputs of the fuzz corpora (model files,
 * checkpoints, stored data-set files, IDX pairs) from the real writers, so the
 * seeds are valid inputs of the current formats. Run by `scripts/fuzz --seeds`
 * when a format changes; its output is committed under tests/fuzz/corpus/.
 * Each seed starts with the control byte(s) its target reads first.
 *
 * Usage: seedgen CORPUS_DIR
 */
#include <stdio.h>
#include "fuzz_common.h"
#include "spec_json.h"
#include "onnx.h"

static const char *dir;

static int put(const char *target, const char *name, const void *pre, size_t npre,
               const void *buf, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(pre, 1, npre, f) != npre || (n && fwrite(buf, 1, n, f) != n)) {
		fprintf(stderr, "seedgen: cannot write %s\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* ---- checkpoints: at every epoch end, and mid-epoch on request */

typedef struct ck_ctx {
	int config;
	int asks;            /* should_stop calls so far */
	int stop_at;         /* answer NN_STOP_CHECKPOINT at this call; 0 never */
	int saved;
	const char *tag;
} ck_ctx;

static int on_ckpt(void *p, const void *buf, size_t len, int epoch, int64_t step)
{
	ck_ctx *c = p;
	char name[64];
	uint8_t pre = (uint8_t)(c->config | 2);
	snprintf(name, sizeof name, "cfg%d-%s-e%d-s%lld", c->config, c->tag, epoch, (long long)step);
	c->saved++;
	return put("checkpoint", name, &pre, 1, buf, len);
}

static int should_stop(void *p)
{
	ck_ctx *c = p;
	return ++c->asks == c->stop_at ? NN_STOP_CHECKPOINT : NN_GO_ON;
}

static int checkpoints(void)
{
	for (int config = 0; config < 2; config++) {
		for (int stop = 0; stop < 2; stop++) {
			fuzz_run r;
			ck_ctx c = { config, 0, stop ? 2 : 0, 0, stop ? "mid" : "end" };
			nn_callbacks cb = { &c, NULL, NULL, should_stop, on_ckpt };
			char err[256];
			if (fuzz_run_setup(&r, config) != 0)
				return -1;
			nn_status st = nn_train(r.m, &r.d, NULL, &r.cfg, &cb, NULL, 0, NULL, err,
			                        sizeof err);
			fuzz_run_release(&r);
			if ((st != NN_OK && st != NN_ESTOPPED) || c.saved == 0) {
				fprintf(stderr, "seedgen: checkpoint run failed: %s\n", err);
				return -1;
			}
		}
	}
	return 0;
}

/* ---- model files */

static int models(void)
{
	fuzz_run r;
	void *buf;
	size_t n;
	uint8_t pre = 1;
	if (fuzz_run_setup(&r, 0) != 0 || nn_model_save(r.m, &buf, &n) != NN_OK)
		return -1;
	int rc = put("model_file", "dense-bn-dropout", &pre, 1, buf, n);
	free(buf);
	fuzz_run_release(&r);

	nn_model *m = fuzz_weights_model(1);
	if (!m || nn_model_save(m, &buf, &n) != NN_OK)
		return -1;
	rc |= put("model_file", "residual-projection-standardize", &pre, 1, buf, n);
	pre = 0;
	rc |= put("model_file", "residual-projection-standardize-crc-kept", &pre, 1, buf, n);
	free(buf);
	nn_model_free(m);
	return rc;
}

/* ---- weights documents as GET returns them, one per model */

static int weights(void)
{
	int rc = 0;
	for (int k = 0; k < FUZZ_WEIGHT_MODELS; k++) {
		nn_model *m = fuzz_weights_model(k);
		cJSON *j = m ? api_weights_to_json(m) : NULL;
		char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
		char name[32];
		uint8_t pre = (uint8_t)k;
		snprintf(name, sizeof name, "model%d-as-stored", k);
		rc |= txt ? put("weights", name, &pre, 1, txt, strlen(txt)) : -1;
		free(txt);
		cJSON_Delete(j);
		nn_model_free(m);
	}
	return rc;
}

/* ---- stored data-set files, made from the upload readers' output */

static int dataset_file(const char *name, const char *csv, int header)
{
	api_csv_opts o = { .header = header, .task = -1 };
	api_err e = API_ERR_INIT;
	api_dataset d;
	void *buf;
	size_t n;
	uint8_t pre = 1;
	api_csv *c = api_csv_new(&o);
	memset(&d, 0, sizeof d);
	if (!c || api_csv_feed(c, csv, strlen(csv), &e) != 0 || api_csv_finish(c, &d, &e) != 0 ||
	    api_dataset_serialize(&d, &buf, &n) != 0) {
		fprintf(stderr, "seedgen: %s: %s\n", name, e.detail);
		api_csv_free(c);
		return -1;
	}
	int rc = put("dataset_file", name, &pre, 1, buf, n);
	free(buf);
	api_dataset_free(&d);
	api_csv_free(c);
	return rc;
}

/* ---- IDX pairs: [control][images length, 2 bytes BE][4 split bytes] images labels */

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int idx(const char *name, uint8_t control, uint32_t n, uint32_t h, uint32_t w,
               uint32_t lie_n)
{
	uint8_t buf[7 + 16 + 256 + 8 + 16];
	size_t ni = 16 + (size_t)n * h * w, nl = 8 + n;
	if (7 + ni + nl > sizeof buf)
		return -1;
	buf[0] = control;
	buf[1] = (uint8_t)(ni >> 8);
	buf[2] = (uint8_t)ni;
	buf[3] = 1; buf[4] = 5; buf[5] = 255; buf[6] = 16;
	uint8_t *im = buf + 7, *lb = buf + 7 + ni;
	be32(im, 0x803);
	be32(im + 4, lie_n ? lie_n : n);
	be32(im + 8, h);
	be32(im + 12, w);
	for (size_t i = 0; i < (size_t)n * h * w; i++)
		im[16 + i] = (uint8_t)(i * 29 + 3);
	be32(lb, 0x801);
	be32(lb + 4, n);
	for (uint32_t i = 0; i < n; i++)
		lb[8 + i] = (uint8_t)(i % 3);
	return put("idx", name, buf, 7 + ni + nl, NULL, 0);
}

/* ---- ONNX files as GET /v1/models/{id}/export writes them */

static int onnx_files(void)
{
	int rc = 0;
	for (int k = 0; k < FUZZ_WEIGHT_MODELS; k++) {
		nn_model *m = fuzz_weights_model(k);
		uint8_t *buf = NULL;
		size_t n = 0;
		api_err e = API_ERR_INIT;
		char name[32];
		snprintf(name, sizeof name, "model%d-opset13", k);
		rc |= m && api_onnx_export(m, 13, NULL, &buf, &n, &e) == 0 ? put("onnx", name, "", 0, buf, n)
		                                                         : -1;
		free(buf);
		nn_model_free(m);
	}
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seedgen CORPUS_DIR\n");
		return 2;
	}
	dir = argv[1];
	int rc = 0;
	rc |= checkpoints();
	rc |= models();
	rc |= weights();
	rc |= onnx_files();
	rc |= dataset_file("classes", "a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n", 1);
	rc |= dataset_file("regression", "1.5,2,0.25\n3,4,0.5\n", 0);
	rc |= idx("raw-in-order", 0x00, 4, 3, 2, 0);
	rc |= idx("raw-labels-first-interleaved", 0x03, 3, 2, 2, 0);
	rc |= idx("gzip-both", 0x0c, 5, 2, 3, 0);
	rc |= idx("gzip-images-small-limit", 0x14, 2, 4, 4, 0);
	rc |= idx("lying-count", 0x00, 3, 2, 2, 1000000);
	return rc ? 1 : 0;
}
