/*
 * itest_hostile.c - a corpus of hostile requests against a real daemon.
 *
 * The corpus is generated from tables: every field of a valid model spec and
 * job config replaced by values of the wrong type, out of range, huge,
 * negative, NaN and Infinity spelled in JSON, or removed, plus extra fields;
 * deep nesting; invalid UTF-8; ids with "../" (also sent raw, past libcurl's
 * path normalisation); truncated and oversized bodies; CSV with ragged rows
 * and embedded NULs; IDX with lying headers; wrong content types; wrong
 * methods; bad predictions, weights and query strings.
 *
 * For each request: a 4xx reply (the exact status where API.md fixes it),
 * Content-Type application/problem+json with a "code"; then /healthz is 200
 * and the totals of data sets, models and jobs are those before the corpus.
 * Every failing case is printed, then the test fails if there was one. At
 * the end the daemon must exit cleanly on SIGTERM (under `make sanitize`,
 * with no leak reported).
 *
 * Beside the corpus, the boolean job field "sparse_kernels": a non-boolean
 * is a 422 naming it, false is echoed in the job's config and the job runs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define MAX_BODY 65536          /* the daemon's --max-body in this test */
#define MAX_CASES 600

typedef struct hcase {
	char label[96];
	const char *method;
	char path[256];
	const char *ctype;      /* NULL: no Content-Type */
	char *body;             /* owned; NULL: no body */
	size_t len;
	long want;              /* the exact status, or 0 for any 4xx */
	int raw;                /* 1: sent over a plain socket as given */
} hcase;

static hcase cases[MAX_CASES];
static int ncases;
static char ds_id[32], mdl_id[32];

static hcase *add(const char *label, const char *method, const char *path, const char *ctype,
                  const char *body, size_t len, long want)
{
	ck_assert_int_lt(ncases, MAX_CASES);
	hcase *c = &cases[ncases++];
	memset(c, 0, sizeof *c);
	snprintf(c->label, sizeof c->label, "%s", label);
	c->method = method;
	snprintf(c->path, sizeof c->path, "%s", path);
	c->ctype = ctype;
	if (body) {
		c->body = malloc(len + 1);
		ck_assert_ptr_nonnull(c->body);
		memcpy(c->body, body, len);
		c->body[len] = '\0';
		c->len = len;
	}
	c->want = want;
	return c;
}

static void add_json(const char *label, const char *method, const char *path, const char *body,
                     long want)
{
	add(label, method, path, "application/json", body, strlen(body), want);
}

/* ---------------------------------------------------------------- JSON mutation */

/*
 * base with the field at `path` ("layers.0.units", dot-separated, numbers
 * index arrays) set to the raw JSON text `value` (which may be NaN or
 * Infinity, which no JSON library writes), or removed when value is NULL.
 * Returns a malloc'd body.
 */
static char *mutate(const char *base, const char *path, const char *value)
{
	cJSON *root = cJSON_Parse(base);
	ck_assert_ptr_nonnull(root);
	cJSON *parent = root;
	char buf[128];
	snprintf(buf, sizeof buf, "%s", path);
	char *key = buf, *dot;
	while ((dot = strchr(key, '.')) != NULL) {
		*dot = '\0';
		parent = cJSON_IsArray(parent) ? cJSON_GetArrayItem(parent, atoi(key))
		                               : cJSON_GetObjectItemCaseSensitive(parent, key);
		ck_assert_ptr_nonnull(parent);
		key = dot + 1;
	}
	if (!value) {
		cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
		char *out = cJSON_PrintUnformatted(root);
		cJSON_Delete(root);
		return out;
	}
	cJSON *mark = cJSON_CreateString("@@VALUE@@");
	if (cJSON_GetObjectItemCaseSensitive(parent, key))
		cJSON_ReplaceItemInObjectCaseSensitive(parent, key, mark);
	else
		cJSON_AddItemToObject(parent, key, mark);
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	char *at = strstr(text, "\"@@VALUE@@\"");
	ck_assert_ptr_nonnull(at);
	size_t n = strlen(text) + strlen(value) + 1;
	char *out = malloc(n);
	snprintf(out, n, "%.*s%s%s", (int)(at - text), text, value, at + strlen("\"@@VALUE@@\""));
	free(text);
	return out;
}

static void add_mutation(const char *what, const char *path, const char *base, const char *field,
                         const char *value, long want)
{
	char label[96];
	snprintf(label, sizeof label, "%s %s=%s", what, field, value ? value : "(removed)");
	char *body = mutate(base, field, value);
	add(label, "POST", path, "application/json", body, strlen(body), want);
	free(body);
}

/* ---------------------------------------------------------------- the corpus */

static const char SPEC[] =
	"{\"name\":\"h\",\"task\":\"classification\",\"inputs\":4,\"outputs\":2,\"seed\":3,"
	"\"layers\":[{\"type\":\"dense\",\"units\":8,\"activation\":\"relu\",\"init\":\"he_uniform\"},"
	"{\"type\":\"dropout\",\"rate\":0.1},{\"type\":\"batch_norm\",\"momentum\":0.1}]}";

/* Values no integer size field accepts. */
static const char *const BAD_COUNT[] = {
	"\"4\"", "-1", "0", "1.5", "NaN", "Infinity", "-Infinity", "1e400", "null", "true",
	"[]", "{}", "99999999999999999999", "4294967300", "-9223372036854775808"
};
/* Values no enum field accepts. */
static const char *const BAD_NAME[] = {
	"\"bogus\"", "7", "null", "false", "[\"relu\"]", "{}", "\"\"", "\"RELU\"",
	"\"relu\\u0000x\"", "\"relu \""
};

static void add_spec_cases(void)
{
	const char *counts[] = { "inputs", "outputs", "layers.0.units" };
	for (size_t f = 0; f < 3; f++)
		for (size_t v = 0; v < sizeof BAD_COUNT / sizeof *BAD_COUNT; v++)
			add_mutation("spec", "/v1/models", SPEC, counts[f], BAD_COUNT[v], 0);
	const char *names[] = { "task", "layers.0.activation", "layers.0.type", "layers.0.init" };
	for (size_t f = 0; f < 4; f++)
		for (size_t v = 0; v < sizeof BAD_NAME / sizeof *BAD_NAME; v++) {
			/* null stands for "the default" in an optional field
			 * (activation, init) */
			if ((f == 1 || f == 3) && strcmp(BAD_NAME[v], "null") == 0)
				continue;
			add_mutation("spec", "/v1/models", SPEC, names[f], BAD_NAME[v], 0);
		}
	const char *others[][2] = {
		{ "seed", "-1" }, { "seed", "1.5" }, { "seed", "\"3\"" }, { "seed", "1e300" },
		{ "seed", "NaN" }, { "name", "7" }, { "name", "[]" }, { "layers", "{}" },
		{ "layers", "\"dense\"" }, { "layers", "[7]" }, { "layers", "[null]" },
		{ "layers.1.rate", "1" }, { "layers.1.rate", "-0.5" }, { "layers.1.rate", "NaN" },
		{ "layers.1.mode", "\"sometimes\"" }, { "layers.2.momentum", "-1" },
		{ "layers.2.eps", "0" }, { "layers.2.eps", "-Infinity" },
		{ "layers.0.bias", "\"yes\"" }, { "layers.0.alpha", "\"x\"" },
		{ "extra", "1" }, { "layers.0.extra", "true" }, { "layers.0.unit", "8" },
		{ "init", "\"he\"" },
	};
	for (size_t i = 0; i < sizeof others / sizeof *others; i++)
		add_mutation("spec", "/v1/models", SPEC, others[i][0], others[i][1], 0);
	const char *required[] = { "task", "inputs", "outputs", "layers.0.type", "layers.0.units" };
	for (size_t i = 0; i < 5; i++)
		add_mutation("spec missing", "/v1/models", SPEC, required[i], NULL, 0);

	/* too wide, too many parameters, too deep */
	add_json("spec units 1e6", "POST", "/v1/models",
	         "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,"
	         "\"layers\":[{\"type\":\"dense\",\"units\":1000000}]}", 422);
	add_json("spec 4e9 parameters", "POST", "/v1/models",
	         "{\"task\":\"regression\",\"inputs\":65536,\"outputs\":65536,"
	         "\"layers\":[{\"type\":\"dense\",\"units\":65536}]}", 422);
	add_json("spec residual width mismatch", "POST", "/v1/models",
	         "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,\"layers\":[{\"type\":\"residual\","
	         "\"layers\":[{\"type\":\"dense\",\"units\":3}]}]}", 422);
	for (int depth = 10; depth <= 40; depth += 30) {
		char body[4096] = "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,\"layers\":";
		for (int i = 0; i < depth; i++)
			strcat(body, "[{\"type\":\"residual\",\"layers\":");
		strcat(body, "[{\"type\":\"dense\",\"units\":4}]");
		for (int i = 0; i < depth; i++)
			strcat(body, "}]");
		strcat(body, "}");
		char label[64];
		snprintf(label, sizeof label, "spec residual depth %d", depth);
		add_json(label, "POST", "/v1/models", body, 422);
	}
	char *many = malloc(300 * 40 + 200);
	strcpy(many, "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,\"layers\":[");
	for (int i = 0; i < 300; i++)
		strcat(many, i ? ",{\"type\":\"dropout\",\"rate\":0}" : "{\"type\":\"dropout\",\"rate\":0}");
	strcat(many, "]}");
	add_json("spec 300 layers", "POST", "/v1/models", many, 422);
	free(many);
}

static void add_job_cases(void)
{
	char base[512];
	snprintf(base, sizeof base,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":1,\"batch_size\":4,"
	         "\"optimizer\":{\"type\":\"adam\",\"lr\":0.01},\"schedule\":{\"type\":\"constant\"}}",
	         mdl_id, ds_id);
	for (size_t v = 0; v < sizeof BAD_COUNT / sizeof *BAD_COUNT; v++) {
		if (strcmp(BAD_COUNT[v], "null") == 0)
			continue;   /* null stands for "the default" in an optional field */
		add_mutation("job", "/v1/jobs", base, "epochs", BAD_COUNT[v], 0);
		add_mutation("job", "/v1/jobs", base, "batch_size", BAD_COUNT[v], 0);
	}
	const char *fields[][2] = {
		{ "epochs", "100001" }, { "batch_size", "2000000" },
		{ "optimizer", "\"adam\"" }, { "optimizer.type", "\"bogus\"" },
		{ "optimizer.lr", "-1" }, { "optimizer.lr", "NaN" }, { "optimizer.lr", "Infinity" },
		{ "optimizer.lr", "1e400" }, { "optimizer.lr", "\"0.1\"" }, { "optimizer.beta1", "1" },
		{ "optimizer.beta2", "-0.1" }, { "optimizer.eps", "0" }, { "optimizer.eps", "1e-80" },
		{ "optimizer.momentum", "0.5" }, { "optimizer.extra", "1" },
		{ "model", "\"../../etc/passwd\"" }, { "model", "\"mdl_0000000000000000\"" },
		{ "model", "7" }, { "model", "null" }, { "model", "\"ds_0123456789abcdef\"" },
		{ "model", "\"mdl_0123456789ABCDEF\"" }, { "dataset", "\"ds_../../x\"" },
		{ "dataset", "\"ds_0000000000000000\"" }, { "dataset", "[]" },
		{ "validation", "{\"fraction\":1.5}" }, { "validation", "{\"fraction\":-0.1}" },
		{ "validation", "{\"fraction\":1}" }, { "validation", "{\"dataset\":\"ds_../x\"}" },
		{ "validation", "{\"dataset\":\"ds_0000000000000000\"}" }, { "validation", "0.1" },
		{ "validation", "{\"fraction\":0.1,\"extra\":1}" },
		{ "schedule.type", "\"bogus\"" }, { "schedule.gamma", "NaN" },
		{ "schedule.warmup_epochs", "-1" }, { "schedule.per", "\"century\"" },
		{ "l2", "-1" }, { "l2", "Infinity" }, { "shuffle", "\"yes\"" }, { "seed", "-1" },
		{ "seed", "1.5" }, { "standardize", "1" }, { "batch_norm_stats", "\"bogus\"" },
		{ "early_stopping", "{\"patience\":2}" }, { "early_stopping", "{\"patience\":-2}" },
		{ "averaging", "{\"type\":\"ema\",\"decay\":2}" }, { "averaging", "{\"type\":\"mean\"}" },
		{ "augment", "{\"rotate_degrees\":10}" }, { "augment", "{\"noise_std\":-1}" },
		{ "augment", "{\"scale\":[1.1]}" }, { "sparsity", "{\"max_nonzero\":-5}" },
		{ "clip_grad_norm", "-1" }, { "clip_grad_norm", "NaN" }, { "log_every_steps", "0" },
		{ "checkpoint_every_epochs", "-1" }, { "extra", "true" },
	};
	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
		add_mutation("job", "/v1/jobs", base, fields[i][0], fields[i][1], 0);
	static const char *const bad_bool[] = { "\"false\"", "0", "1", "[]", "{}" };
	for (size_t i = 0; i < sizeof bad_bool / sizeof *bad_bool; i++)
		add_mutation("job", "/v1/jobs", base, "sparse_kernels", bad_bool[i], 422);
	add_mutation("job missing", "/v1/jobs", base, "model", NULL, 422);
	add_mutation("job missing", "/v1/jobs", base, "dataset", NULL, 422);
}

/* Deep nesting, malformed and truncated JSON, invalid UTF-8. */
static void add_syntax_cases(void)
{
	static const char *const targets[] = { "/v1/models", "/v1/jobs", "/v1/datasets" };
	for (int t = 0; t < 3; t++) {
		for (int depth = 100; depth <= 20000; depth *= 200) {
			size_t n = (size_t)depth * 2;
			char *b = malloc(n + 1);
			memset(b, '[', (size_t)depth);
			memset(b + depth, ']', (size_t)depth);
			b[n] = '\0';
			char label[64];
			snprintf(label, sizeof label, "%s nested %d", targets[t], depth);
			add(label, "POST", targets[t], "application/json", b, n, 0);
			free(b);
		}
		char body[64];
		snprintf(body, sizeof body, "{\"a\":%s}", "{\"b\":{\"c\":{\"d\":{\"e\":[[[[1]]]]}}}}");
		add_json("nested objects", "POST", targets[t], body, 0);
	}
	/* truncations of a valid spec, and garbage */
	size_t n = strlen(SPEC);
	for (int i = 1; i <= 10; i++) {
		char label[64];
		size_t cut = n * (size_t)i / 11;
		snprintf(label, sizeof label, "spec truncated at %zu", cut);
		add(label, "POST", "/v1/models", "application/json", SPEC, cut, 400);
	}
	add("empty JSON body", "POST", "/v1/models", "application/json", "", 0, 400);
	add_json("JSON array body", "POST", "/v1/models", "[1,2,3]", 0);
	add_json("JSON string body", "POST", "/v1/jobs", "\"job\"", 0);
	add_json("JSON trailing garbage", "POST", "/v1/models", "{} {}", 400);
	add_json("single quotes", "POST", "/v1/models", "{'task':'regression'}", 400);
	add_json("comment", "POST", "/v1/models", "{/* x */}", 400);
	add("NUL inside JSON", "POST", "/v1/models", "application/json", "{\"task\":\0\"x\"}", 13, 400);
	/* invalid UTF-8 in names, values and keys */
	static const char *const utf8[] = { "\xff", "\xc3\x28", "\xe2\x82", "\xf0\x28\x8c\xbc",
	                                     "\xed\xa0\x80", "\xc0\xaf" };
	for (size_t i = 0; i < sizeof utf8 / sizeof *utf8; i++) {
		char v[32], label[64];
		snprintf(v, sizeof v, "\"bad%s\"", utf8[i]);
		snprintf(label, sizeof label, "invalid UTF-8 #%zu in name", i);
		char *body = mutate(SPEC, "name", v);
		add(label, "POST", "/v1/models", "application/json", body, strlen(body), 0);
		free(body);
		snprintf(label, sizeof label, "invalid UTF-8 #%zu in task", i);
		body = mutate(SPEC, "task", v);
		add(label, "POST", "/v1/models", "application/json", body, strlen(body), 0);
		free(body);
	}
	char ds[128];
	snprintf(ds, sizeof ds, "{\"name\":\"x\xff\",\"task\":\"regression\",\"x\":[[1],[2]],\"y\":[1,2]}");
	add_json("invalid UTF-8 in data-set name", "POST", "/v1/datasets", ds, 0);
	/* oversized: past --max-body */
	char *big = malloc(MAX_BODY + 4096);
	memset(big, ' ', MAX_BODY + 4096);
	big[0] = '{';
	big[MAX_BODY + 4095] = '}';
	add("oversized JSON model", "POST", "/v1/models", "application/json", big, MAX_BODY + 4096, 413);
	add("oversized JSON job", "POST", "/v1/jobs", "application/json", big, MAX_BODY + 4096, 413);
	add("oversized JSON data set", "POST", "/v1/datasets", "application/json", big,
	    MAX_BODY + 4096, 413);
	for (size_t i = 0; i < MAX_BODY + 4096; i++)
		big[i] = i % 4 == 3 ? '\n' : i % 2 ? ',' : '1';
	memcpy(big, "a,b\n", 4);
	add("oversized CSV", "POST", "/v1/datasets", "text/csv", big, MAX_BODY + 4096, 413);
	free(big);
}

static void add_csv_cases(void)
{
	static const struct { const char *label, *query, *body; size_t len; } csv[] = {
		{ "ragged short row", "", "a,b,label\n1,2,0\n3,4\n", 0 },
		{ "ragged long row", "", "a,b,label\n1,2,0\n3,4,5,6\n", 0 },
		{ "embedded NUL", "", "a,b,label\n1,\0002,0\n3,4,1\n", 22 },
		{ "NUL in header", "", "a\0,b,label\n1,2,0\n", 17 },
		{ "empty body", "", "", 0 },
		{ "header only", "", "a,b,label\n", 0 },
		/* text and holes are typed columns now (itest_tabular); past
		 * max_levels, infinities and ignoring the label stay refusals */
		{ "text feature past max_levels", "?max_levels=1", "a,b,label\n1,x,0\n3,y,1\n", 0 },
		{ "-Infinity feature", "", "a,b,label\n-Infinity,2,0\n3,4,1\n", 0 },
		{ "ignore the label", "?ignore=label", "a,b,label\n1,2,0\n3,4,1\n", 0 },
		{ "inf feature", "", "a,b,label\n1,inf,0\n3,4,1\n", 0 },
		{ "float overflow", "", "a,b,label\n1e39,2,0\n3,4,1\n", 0 },
		{ "unterminated quote", "", "a,b,label\n\"1,2,0\n3,4,1\n", 0 },
		{ "quote inside field", "", "a,b,label\n1\"2,3,0\n", 0 },
		{ "invalid UTF-8 label", "", "a,b,label\n1,2,\xff\xfe\n3,4,\xc3\n", 0 },
		{ "label past the columns", "?label=9", "a,b,label\n1,2,0\n3,4,1\n", 0 },
		{ "label negative", "?label=-1", "a,b,label\n1,2,0\n3,4,1\n", 0 },
		{ "label unknown name", "?label=nope", "a,b,label\n1,2,0\n3,4,1\n", 0 },
		{ "header=maybe", "?header=maybe", "a,b,label\n1,2,0\n", 0 },
		{ "task=bogus", "?task=bogus", "a,b,label\n1,2,0\n", 0 },
		{ "regression with string label", "?task=regression", "a,b,label\n1,2,x\n3,4,y\n", 0 },
		{ "only a label column", "", "label\n1\n2\n", 0 },
		{ "duplicate header then rows of 1", "", "a,a,a\n1\n", 0 },
		{ "binary garbage", "", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16 },
	};
	for (size_t i = 0; i < sizeof csv / sizeof *csv; i++) {
		char path[128], label[96];
		snprintf(path, sizeof path, "/v1/datasets%s", csv[i].query);
		snprintf(label, sizeof label, "CSV %s", csv[i].label);
		add(label, "POST", path, "text/csv", csv[i].body,
		    csv[i].len ? csv[i].len : strlen(csv[i].body), 0);
	}
	static const char *const js[] = {
		"{\"task\":\"regression\",\"x\":[[1,2],[3]],\"y\":[1,2]}",
		"{\"task\":\"regression\",\"x\":[],\"y\":[]}",
		"{\"task\":\"regression\",\"x\":[[1]],\"y\":[1,2]}",
		"{\"task\":\"regression\",\"x\":[[\"1\"]],\"y\":[1]}",
		"{\"task\":\"regression\",\"x\":[[NaN]],\"y\":[1]}",
		"{\"task\":\"regression\",\"x\":[[1e39]],\"y\":[1]}",
		"{\"task\":\"clustering\",\"x\":[[1]],\"y\":[1]}",
		"{\"task\":\"regression\",\"x\":[[1]],\"y\":[[1],[2,3]]}",
		"{\"task\":\"classification\",\"x\":[[1]],\"y\":[{}]}",
		"{\"task\":\"regression\",\"x\":[[1]],\"y\":[1],\"z\":0}",
		"{\"x\":[[1]]}",
	};
	for (size_t i = 0; i < sizeof js / sizeof *js; i++) {
		char label[64];
		snprintf(label, sizeof label, "JSON data set #%zu", i);
		add_json(label, "POST", "/v1/datasets", js[i], 0);
	}
}

/* ---- IDX inside multipart bodies */

static size_t be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return 4;
}

/* images: magic, n, rows, cols and `bytes` pixels; labels: magic, n, `lbytes` labels */
static size_t idx_images(unsigned char *p, uint32_t magic, uint32_t n, uint32_t r, uint32_t c,
                         size_t bytes)
{
	size_t k = 0;
	k += be32(p + k, magic);
	k += be32(p + k, n);
	k += be32(p + k, r);
	k += be32(p + k, c);
	for (size_t i = 0; i < bytes; i++)
		p[k++] = (unsigned char)(i * 13);
	return k;
}

static size_t idx_labels(unsigned char *p, uint32_t magic, uint32_t n, size_t bytes)
{
	size_t k = 0;
	k += be32(p + k, magic);
	k += be32(p + k, n);
	for (size_t i = 0; i < bytes; i++)
		p[k++] = (unsigned char)(i % 2);
	return k;
}

static void add_multipart(const char *label, const char *name1, const unsigned char *p1, size_t n1,
                          const char *name2, const unsigned char *p2, size_t n2)
{
	size_t cap = n1 + n2 + 1024, k = 0;
	char *b = malloc(cap);
	k += (size_t)snprintf(b + k, cap - k, "--HOSTILE\r\nContent-Disposition: form-data; "
	                      "name=\"%s\"; filename=\"a\"\r\n\r\n", name1);
	memcpy(b + k, p1, n1);
	k += n1;
	if (name2) {
		k += (size_t)snprintf(b + k, cap - k, "\r\n--HOSTILE\r\nContent-Disposition: "
		                      "form-data; name=\"%s\"; filename=\"b\"\r\n\r\n", name2);
		memcpy(b + k, p2, n2);
		k += n2;
	}
	k += (size_t)snprintf(b + k, cap - k, "\r\n--HOSTILE--\r\n");
	add(label, "POST", "/v1/datasets", "multipart/form-data; boundary=HOSTILE", b, k, 0);
	free(b);
}

static void add_idx_cases(void)
{
	unsigned char im[256], lb[64];
	size_t ni, nl;
	nl = idx_labels(lb, 0x801, 2, 2);
	static const struct { const char *label; uint32_t magic, n, r, c; size_t bytes; } imgs[] = {
		{ "IDX images claim 1000 but hold 2", 0x803, 1000, 2, 2, 8 },
		{ "IDX images claim 2^31 x 2^16 x 2^16", 0x803, 0x80000000u, 65536, 65536, 8 },
		{ "IDX images with 0 rows", 0x803, 2, 0, 2, 0 },
		{ "IDX images bad magic", 0x1234, 2, 2, 2, 8 },
		{ "IDX images of floats (type 0x0d)", 0x00000d03, 2, 2, 2, 8 },
		{ "IDX images with 2 dims", 0x802, 2, 2, 2, 8 },
		{ "IDX images with extra bytes", 0x803, 2, 2, 2, 20 },
		{ "IDX images count differs from labels", 0x803, 3, 2, 2, 12 },
		{ "IDX images short by one byte", 0x803, 2, 2, 2, 7 },
	};
	for (size_t i = 0; i < sizeof imgs / sizeof *imgs; i++) {
		ni = idx_images(im, imgs[i].magic, imgs[i].n, imgs[i].r, imgs[i].c, imgs[i].bytes);
		add_multipart(imgs[i].label, "images", im, ni, "labels", lb, nl);
	}
	ni = idx_images(im, 0x803, 2, 2, 2, 8);
	unsigned char l2[64];
	size_t n2 = idx_labels(l2, 0x801, 5, 2);
	add_multipart("IDX labels claim 5 but hold 2", "images", im, ni, "labels", l2, n2);
	n2 = idx_labels(l2, 0x803, 2, 2);
	add_multipart("IDX labels with image magic", "images", im, ni, "labels", l2, n2);
	add_multipart("IDX labels missing", "images", im, ni, NULL, NULL, 0);
	add_multipart("IDX images missing", "labels", lb, nl, NULL, NULL, 0);
	add_multipart("IDX parts with other names", "pictures", im, ni, "tags", lb, nl);
	unsigned char gz[] = { 0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff, 0x33, 0x34, 0x32 };
	add_multipart("IDX corrupt gzip", "images", gz, sizeof gz, "labels", lb, nl);
	add("multipart without boundary", "POST", "/v1/datasets", "multipart/form-data",
	    "--x\r\n\r\n--x--\r\n", 14, 0);
	add("multipart never closed", "POST", "/v1/datasets", "multipart/form-data; boundary=x",
	    "--x\r\nContent-Disposition: form-data; name=\"images\"\r\n\r\nabc", 55, 0);
}

/* Wrong content types and methods, hostile ids and queries, bad predictions. */
static void add_http_cases(void)
{
	static const struct { const char *path, *ctype; } ct[] = {
		{ "/v1/models", "text/plain" }, { "/v1/models", "application/xml" },
		{ "/v1/models", "text/csv" }, { "/v1/models", NULL },
		{ "/v1/jobs", "application/x-www-form-urlencoded" }, { "/v1/jobs", NULL },
		{ "/v1/datasets", "image/png" }, { "/v1/datasets", "text/plain" },
		{ "/v1/datasets", "application/jsonx" }, { "/v1/datasets", NULL },
		{ "/v1/datasets", "text/csvx" },
	};
	for (size_t i = 0; i < sizeof ct / sizeof *ct; i++) {
		char label[96];
		snprintf(label, sizeof label, "content type %s on %s", ct[i].ctype ? ct[i].ctype : "(none)",
		         ct[i].path);
		/* a JSON endpoint reads a body without Content-Type as JSON */
		long want = ct[i].ctype || strcmp(ct[i].path, "/v1/datasets") == 0 ? 415 : 0;
		add(label, "POST", ct[i].path, ct[i].ctype, "{}", 2, want);
	}
	char p[128];
	static const struct { const char *method, *path; } wm[] = {
		{ "PUT", "/v1/datasets" }, { "DELETE", "/v1/datasets" }, { "PATCH", "/v1/models" },
		{ "DELETE", "/v1/jobs" }, { "PUT", "/v1/jobs" }, { "POST", "/healthz" },
		{ "DELETE", "/readyz" }, { "POST", "/v1/info" }, { "PUT", "/openapi.json" },
	};
	for (size_t i = 0; i < sizeof wm / sizeof *wm; i++) {
		char label[96];
		snprintf(label, sizeof label, "method %s %s", wm[i].method, wm[i].path);
		add(label, wm[i].method, wm[i].path, "application/json", "{}", 2, 405);
	}
	static const char *const mdl_methods[] = { "POST", "PUT", "PATCH" };
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "/v1/models/%s", mdl_id);
		add("method on a model", mdl_methods[i], p, "application/json", "{}", 2, 405);
		snprintf(p, sizeof p, "/v1/datasets/%s", ds_id);
		add("method on a data set", mdl_methods[i], p, "application/json", "{}", 2, 405);
	}
	snprintf(p, sizeof p, "/v1/models/%s/predict", mdl_id);
	add("GET predict", "GET", p, NULL, NULL, 0, 405);
	snprintf(p, sizeof p, "/v1/models/%s/weights", mdl_id);
	add("DELETE weights", "DELETE", p, NULL, NULL, 0, 405);

	static const char *const ids[] = {
		"../../etc/passwd", "mdl_..%2f..%2fetc", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"mdl_0123456789ABCDEF", "mdl_0123456789abcdeg", "mdl_0123456789abcde",
		"mdl_0123456789abcdef0", "ds_0123456789abcdef", "mdl_0000000000000000", "mdl_%00",
		"mdl_0123456789abcdef%2f..", "..", "%ff%fe",
	};
	for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
		const char *kinds[] = { "/v1/models/%s", "/v1/datasets/%s", "/v1/jobs/%s",
		                        "/v1/models/%s/weights" };
		for (int k = 0; k < 4; k++) {
			char label[96];
			snprintf(p, sizeof p, kinds[k], ids[i]);
			snprintf(label, sizeof label, "id GET %.80s", p);
			add(label, "GET", p, NULL, NULL, 0, 404);
		}
		snprintf(p, sizeof p, "/v1/models/%s", ids[i]);
		add("id DELETE model", "DELETE", p, NULL, NULL, 0, 404);
		snprintf(p, sizeof p, "/v1/datasets/%s", ids[i]);
		add("id DELETE data set", "DELETE", p, NULL, NULL, 0, 404);
	}
	/* raw paths that libcurl would normalise */
	static const char *const raw[] = {
		"/v1/models/../datasets", "/v1/datasets/../../../etc/passwd",
		"/v1/models/mdl_0123456789abcdef/../../../etc", "/v1/jobs/./job_0123456789abcdef",
		"/v1//models", "/v1/models/\xff\xfe",
	};
	for (size_t i = 0; i < sizeof raw / sizeof *raw; i++) {
		char label[96];
		snprintf(label, sizeof label, "raw path %zu", i);
		hcase *c = add(label, "GET", raw[i], NULL, NULL, 0, 404);
		c->raw = 1;
	}
	static const char *const queries[] = {
		"/v1/datasets?limit=-1", "/v1/datasets?limit=0", "/v1/datasets?limit=1001",
		"/v1/models?limit=abc", "/v1/models?offset=-5", "/v1/models?limit=1e3",
		"/v1/jobs?state=bogus", "/v1/jobs?limit=99999999999999999999999",
		"/v1/jobs?offset=%ff", "/v1/datasets?limit=",
	};
	for (size_t i = 0; i < sizeof queries / sizeof *queries; i++)
		add(queries[i], "GET", queries[i], NULL, NULL, 0, 422);

	/* predictions and weights on the real model (4 inputs) */
	static const char *const pred[] = {
		"{\"instances\":[[1,2,3]]}", "{\"instances\":[[1,2,3,4,5]]}",
		"{\"instances\":[[\"1\",2,3,4]]}", "{\"instances\":[[NaN,2,3,4]]}",
		"{\"instances\":[[1e39,2,3,4]]}", "{\"instances\":[]}", "{\"instances\":[1,2,3,4]}",
		"{\"instances\":\"x\"}", "{}", "{\"instances\":[[1,2,3,4]],\"extra\":1}",
		"{\"instances\":[[1,2,3,4],[1,2]]}", "{\"instances\":[[null,2,3,4]]}",
	};
	snprintf(p, sizeof p, "/v1/models/%s/predict", mdl_id);
	for (size_t i = 0; i < sizeof pred / sizeof *pred; i++) {
		char label[96];
		snprintf(label, sizeof label, "predict %s", pred[i]);
		add_json(label, "POST", p, pred[i], 0);
	}
	static const char *const weights[] = {
		"{}", "{\"layers\":[]}", "{\"layers\":[{\"type\":\"dense\",\"weight\":[[1]],\"bias\":[1]}]}",
		"{\"layers\":7}", "{\"layers\":[null,null,null,null]}",
		"{\"layers\":[],\"standardize\":{\"mean\":[0,0,0,0],\"std\":[0,1,1,1]}}",
	};
	snprintf(p, sizeof p, "/v1/models/%s/weights", mdl_id);
	for (size_t i = 0; i < sizeof weights / sizeof *weights; i++) {
		char label[96];
		snprintf(label, sizeof label, "weights %s", weights[i]);
		add_json(label, "PUT", p, weights[i], 0);
	}
	snprintf(p, sizeof p, "/v1/models/mdl_0000000000000000/predict");
	add_json("predict unknown model", "POST", p, "{\"instances\":[[1,2,3,4]]}", 404);
	add_json("cancel unknown job", "POST", "/v1/jobs/job_0000000000000000/cancel", "", 404);
}

/* ---------------------------------------------------------------- sending */

/* Sends c over a plain socket; fills status and content type. */
static long send_raw(nnd *d, const hcase *c, http_resp *out)
{
	memset(out, 0, sizeof *out);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sa = { 0 };
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)d->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char req[1024];
	int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
	                 c->method, c->path);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t r;
	while (len < cap && (r = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)r;
	close(fd);
	buf[len] = '\0';
	long status = 0;
	sscanf(buf, "HTTP/1.%*d %ld", &status);
	const char *h = strcasestr(buf, "\r\nContent-Type:");
	if (h) {
		h += 15;
		while (*h == ' ')
			h++;
		snprintf(out->ctype, sizeof out->ctype, "%.*s", (int)strcspn(h, "\r\n"), h);
	}
	const char *body = strstr(buf, "\r\n\r\n");
	out->body = strdup(body ? body + 4 : "");
	out->len = strlen(out->body);
	out->status = status;
	free(buf);
	return status;
}

static void totals(nnd *d, double t[3])
{
	const char *paths[] = { "/v1/datasets", "/v1/models", "/v1/jobs" };
	for (int i = 0; i < 3; i++) {
		long st = 0;
		cJSON *j = http_json(d, "GET", paths[i], NULL, &st);
		ck_assert_int_eq(st, 200);
		t[i] = jnum(j, "total");
		cJSON_Delete(j);
	}
}

/* Checks one reply; returns 0 or prints why and returns 1. */
static int judge(const hcase *c, const http_resp *r)
{
	const char *why = NULL;
	cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
	if (r->status < 400 || r->status > 499)
		why = "not a 4xx";
	else if (c->want && r->status != c->want)
		why = "unexpected status";
	else if (strcmp(r->ctype, "application/problem+json") != 0)
		why = "not application/problem+json";
	else if (!j || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "code")))
		why = "no \"code\" in the body";
	else if (jnum(j, "status") != (double)r->status)
		why = "body status differs";
	cJSON_Delete(j);
	if (!why)
		return 0;
	fprintf(stderr, "hostile case '%s' (%s %.80s): %s: got %ld (want %ld) %s: %.200s\n",
	        c->label, c->method, c->path, why, r->status, c->want, r->ctype,
	        r->body ? r->body : "");
	return 1;
}

START_TEST(test_hostile_requests_get_problems_and_change_nothing)
{
	char maxb[32];
	snprintf(maxb, sizeof maxb, "%d", MAX_BODY);
	const char *flags[] = { "--max-body", maxb, "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	ck_assert_int_eq(make_dataset_csv(&d, 20, 4, 2, ds_id), 0);
	ck_assert_int_eq(make_model(&d, 4, 2, 8, 1, mdl_id), 0);

	add_spec_cases();
	add_job_cases();
	add_syntax_cases();
	add_csv_cases();
	add_idx_cases();
	add_http_cases();
	ck_assert_int_ge(ncases, 200);

	double before[3], after[3];
	totals(&d, before);
	ck_assert_double_eq(before[0], 1);
	ck_assert_double_eq(before[1], 1);
	ck_assert_double_eq(before[2], 0);
	int failed = 0;
	for (int i = 0; i < ncases; i++) {
		hcase *c = &cases[i];
		http_resp r;
		if (c->raw)
			send_raw(&d, c, &r);
		else
			http_do(&d, c->method, c->path, c->ctype, c->body, c->len, &r);
		failed += judge(c, &r);
		resp_free(&r);

		http_resp h;
		http_do(&d, "GET", "/healthz", NULL, NULL, 0, &h);
		ck_assert_msg(h.status == 200, "after '%s': /healthz answered %ld", c->label, h.status);
		resp_free(&h);
		totals(&d, after);
		for (int k = 0; k < 3; k++)
			if (after[k] != before[k]) {
				fprintf(stderr, "hostile case '%s' changed the store: total %d %g -> %g\n",
				        c->label, k, before[k], after[k]);
				failed++;
				before[k] = after[k];
			}
	}
	fprintf(stderr, "hostile: %d requests, %d failed\n", ncases, failed);
	for (int i = 0; i < ncases; i++)
		free(cases[i].body);
	/* a clean exit: under `make sanitize` this is also the daemon's leak check */
	int status = nnd_stop(&d, 60);
	if (status != 0) {
		fprintf(stderr, "hostile: the daemon exited with %d; its log:\n", status);
		char cmd[400];
		snprintf(cmd, sizeof cmd, "tail -n 40 '%s' >&2", d.log);
		(void)!system(cmd);
	}
	nnd_cleanup(&d);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(failed, 0);
}
END_TEST

/* The problem of a rejected job body: 422, problem+json, `field` named. */
static void job_rejected(nnd *d, const char *body, const char *field)
{
	http_resp r;
	long st = http_do(d, "POST", "/v1/jobs", "application/json", body, strlen(body), &r);
	ck_assert_msg(st == 422, "%s: status %ld: %s", body, st, r.body);
	ck_assert_str_eq(r.ctype, "application/problem+json");
	cJSON *j = cJSON_Parse(r.body);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "code"), "validation_failed");
	int named = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "errors"))
		if (!strcmp(jstr(e, "field"), field)) {
			ck_assert_str_eq(jstr(e, "message"), "must be true or false");
			named = 1;
		}
	ck_assert_msg(named, "%s: %s not named in %s", body, field, r.body);
	cJSON_Delete(j);
	resp_free(&r);
}

/* The "sparse_kernels" job field: false is kept and echoed in the job's
 * config (POST reply, GET while and after it runs), absent reads as true,
 * a non-boolean is a 422 naming it; both jobs train to the end. */
START_TEST(test_sparse_kernels_is_echoed)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char ds[32], mdl[32], off[32], on[32], path[96];
	ck_assert_int_eq(make_dataset_csv(&d, 40, 4, 2, ds), 0);
	ck_assert_int_eq(make_model(&d, 4, 2, 8, 1, mdl), 0);

	char body[512];
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":2,\"sparse_kernels\":\"no\"}", mdl, ds);
	job_rejected(&d, body, "sparse_kernels");
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":2,\"sparse_kernels\":0}", mdl, ds);
	job_rejected(&d, body, "sparse_kernels");

	/* the POST reply already carries the stored config */
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":2,\"batch_size\":8,\"seed\":1,"
	         "\"sparse_kernels\":false}", mdl, ds);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/jobs", "application/json", body, strlen(body), &r), 202);
	cJSON *j = cJSON_Parse(r.body);
	resp_free(&r);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "sparse_kernels")));
	snprintf(off, sizeof off, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	ck_assert_int_eq(submit_job(&d, mdl, ds, 2, 8, NULL, on), 202);

	long st = 0;
	snprintf(path, sizeof path, "/v1/jobs/%s", off);
	j = http_json(&d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	const cJSON *cfg = cJSON_GetObjectItem(j, "config");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cfg, "sparse_kernels")));
	ck_assert_double_eq(jnum(cfg, "epochs"), 2);
	ck_assert_double_eq(jnum(cfg, "batch_size"), 8);
	cJSON_Delete(j);

	cJSON *done = wait_job(&d, off, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(done, "config"), "sparse_kernels")));
	cJSON_Delete(done);
	done = wait_job(&d, on, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(done, "config"), "sparse_kernels")));
	cJSON_Delete(done);

	/* the list renders the same config */
	j = http_json(&d, "GET", "/v1/jobs", NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_double_eq(jnum(j, "total"), 2);
	int seen = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "jobs")) {
		const cJSON *sk = cJSON_GetObjectItem(cJSON_GetObjectItem(it, "config"), "sparse_kernels");
		if (!strcmp(jstr(it, "id"), off))
			ck_assert(cJSON_IsFalse(sk)), seen++;
		else if (!strcmp(jstr(it, "id"), on))
			ck_assert(cJSON_IsTrue(sk)), seen++;
	}
	ck_assert_int_eq(seen, 2);
	cJSON_Delete(j);
	ck_assert_int_eq(nnd_stop(&d, 60), 0);
	nnd_cleanup(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("corpus");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_hostile_requests_get_problems_and_change_nothing);
	tcase_add_test(tc, test_sparse_kernels_is_echoed);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
