/*
 * nnctl.c - the nnd command-line client: the command table, option parsing
 * and each command (data sets, models, training, jobs, predictions), in the
 * style of kubectl and gh. Human-readable output by default, the server's
 * JSON with --json, only ids with -q. Exit status 0 on success; on an error
 * reply the problem's detail goes to stderr and the status is non-zero.
 */
#include "nnctl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NNCTL_VERSION "1.0.0"

enum {
	O_LABEL, O_NAME, O_TASK, O_NO_HEADER, O_IMAGES, O_LABELS, O_LIMIT, O_OFFSET,
	O_STATE, O_MODEL, O_DATASET, O_CONFIG, O_EPOCHS, O_BATCH, O_LR, O_OPTIMIZER,
	O_SEED, O_VALIDATION, O_STANDARDIZE, O_FOLLOW, O_INPUT, O_PUT, O_OUTPUT, O_OPSET,
	O_CLASSES, O_SORT, O_KEEP_BEST, O_REPLICAS, O_SHARDS, N_OPTS
};

static const struct optdef {
	const char *name;
	int has_arg;
} optdefs[N_OPTS] = {
	[O_LABEL] = { "label", 1 },       [O_NAME] = { "name", 1 },
	[O_TASK] = { "task", 1 },         [O_NO_HEADER] = { "no-header", 0 },
	[O_IMAGES] = { "images", 1 },     [O_LABELS] = { "labels", 1 },
	[O_LIMIT] = { "limit", 1 },       [O_OFFSET] = { "offset", 1 },
	[O_STATE] = { "state", 1 },       [O_MODEL] = { "model", 1 },
	[O_DATASET] = { "dataset", 1 },   [O_CONFIG] = { "config", 1 },
	[O_EPOCHS] = { "epochs", 1 },     [O_BATCH] = { "batch-size", 1 },
	[O_LR] = { "lr", 1 },             [O_OPTIMIZER] = { "optimizer", 1 },
	[O_SEED] = { "seed", 1 },         [O_VALIDATION] = { "validation", 1 },
	[O_STANDARDIZE] = { "standardize", 0 }, [O_FOLLOW] = { "follow", 0 },
	[O_INPUT] = { "input", 1 },       [O_PUT] = { "put", 1 },
	[O_OUTPUT] = { "output", 1 },     [O_OPSET] = { "opset", 1 },
	[O_CLASSES] = { "classes", 1 },
	[O_SORT] = { "sort", 1 },         [O_KEEP_BEST] = { "keep-best", 0 },
	[O_REPLICAS] = { "replicas", 1 }, [O_SHARDS] = { "shards", 1 },
};

#define MAX_POS 16

struct cmd;

struct args {
	const struct cmd *cmd;   /* the command the words named */
	int npos;
	const char *pos[MAX_POS];
	const char *opt[N_OPTS]; /* the value, or "1" for a flag; NULL when absent */
};

/* A collection of resources: what list, get and rm act on. */
struct collection {
	const char *name;                /* "datasets": the path under /v1/ */
	void (*header)(void);            /* list's header line and rows */
	void (*row)(const cJSON *);
};

struct cmd {
	const char *group, *verb;
	int (*fn)(const nc_ctx *, struct args *);
	const struct collection *coll;   /* for cmd_list, cmd_get and cmd_rm; else NULL */
	int min_pos, max_pos;
	unsigned long opts; /* bit mask of accepted O_* */
	const char *usage, *help;
};

#define B(o) (1UL << (o))

/* ---- shared helpers ---------------------------------------------------- */

static int fail_reply(nc_reply *r)
{
	nc_print_problem(r);
	nc_reply_release(r);
	return NC_ERR;
}

static const char *str(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s ? s : "";
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Prints a whole reply: raw with --json, indented otherwise. */
static int print_reply(const nc_ctx *c, nc_reply *r)
{
	if (c->json || !r->body.data) {
		if (r->body.data)
			puts(r->body.data);
		nc_reply_release(r);
		return NC_OK;
	}
	cJSON *j = cJSON_Parse(r->body.data);
	char *s = j ? cJSON_Print(j) : NULL;
	puts(s ? s : r->body.data);
	free(s);
	cJSON_Delete(j);
	nc_reply_release(r);
	return NC_OK;
}

/*
 * The reply's JSON, for a table or a summary; r is released. With --json the
 * reply is printed as it came instead and NULL returned with *rc NC_OK; NULL
 * with *rc NC_ERR when the body is not JSON.
 */
static cJSON *reply_json(const nc_ctx *c, nc_reply *r, int *rc)
{
	if (c->json) {
		*rc = print_reply(c, r);
		return NULL;
	}
	cJSON *j = nc_reply_json(r);
	nc_reply_release(r);
	*rc = j ? NC_OK : NC_ERR;
	return j;
}

/* Checks an id-shaped argument only for characters safe in a path. */
static int safe_id(const char *id)
{
	if (!*id || strlen(id) > 100)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

static int bad_id(const char *id)
{
	fprintf(stderr, "nnctl: not an id: %s\n", id);
	return NC_USAGE;
}

/*
 * Sends METHOD /v1/<kind>/<id><suffix> without a body, once id is known to be
 * safe in a path. NC_OK with the reply in *r; otherwise the exit status, with
 * the problem printed and *r released.
 */
static int id_request(const nc_ctx *c, const char *method, const char *kind, const char *id,
                      const char *suffix, nc_reply *r)
{
	if (!safe_id(id))
		return bad_id(id);
	char path[256];
	snprintf(path, sizeof path, "/v1/%s/%s%s", kind, id, suffix);
	if (nc_request(c, method, path, NULL, NULL, 0, r) != 0)
		return fail_reply(r);
	return NC_OK;
}

static int parse_num(const char *opt, const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v)) {
		fprintf(stderr, "nnctl: --%s needs a number, got \"%s\"\n", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Appends "&key=value" (or "?key=value" first) to q, URL-encoded. */
static int add_query(char *q, size_t n, const char *key, const char *val)
{
	char enc[600];
	if (!val)
		return 0;
	if (nc_urlencode(val, enc, sizeof enc) != 0)
		return -1;
	size_t len = strlen(q);
	int w = snprintf(q + len, n - len, "%c%s=%s", strchr(q, '?') ? '&' : '?', key, enc);
	return w < 0 || (size_t)w >= n - len ? -1 : 0;
}

/* The --limit and --offset options (and key=value when val is set) onto
 * path; NC_OK, or NC_USAGE after saying so. */
static int add_paging(char *path, size_t n, const struct args *a, const char *key,
                      const char *val)
{
	if ((key && add_query(path, n, key, val)) || add_query(path, n, "limit", a->opt[O_LIMIT]) ||
	    add_query(path, n, "offset", a->opt[O_OFFSET])) {
		fprintf(stderr, "nnctl: option too long\n");
		return NC_USAGE;
	}
	return NC_OK;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "nnctl: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	nc_buf b = NC_BUF_INIT;
	char chunk[65536];
	size_t n;
	int err = 0;
	while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		err = nc_buf_add(&b, chunk, n);
	err = err || ferror(f);
	if (f != stdin)
		fclose(f);
	if (err || (!b.data && nc_buf_add(&b, "", 0))) {
		fprintf(stderr, "nnctl: cannot read %s\n", path);
		nc_buf_release(&b);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.data;
}

static cJSON *read_json_file(const char *path)
{
	char *s = read_file(path, NULL);
	if (!s)
		return NULL;
	cJSON *j = cJSON_Parse(s);
	if (!j)
		fprintf(stderr, "nnctl: %s is not valid JSON\n", path);
	free(s);
	return j;
}

/* The array member of a list reply ({"datasets": [...], "total": n}). */
static const cJSON *list_items(const cJSON *reply)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, reply)
		if (cJSON_IsArray(it))
			return it;
	return NULL;
}

static int cmd_list(const nc_ctx *c, struct args *a)
{
	const struct collection *coll = a->cmd->coll;
	char path[512];
	snprintf(path, sizeof path, "/v1/%s", coll->name);
	if (add_paging(path, sizeof path, a, "state", a->opt[O_STATE]) != NC_OK)
		return NC_USAGE;
	nc_reply r = NC_REPLY_INIT;
	if (nc_request(c, "GET", path, NULL, NULL, 0, &r) != 0)
		return fail_reply(&r);
	int rc;
	cJSON *j = reply_json(c, &r, &rc);
	if (!j)
		return rc;
	const cJSON *items = list_items(j), *it;
	if (!c->quiet)
		coll->header();
	cJSON_ArrayForEach(it, items) {
		if (c->quiet)
			puts(str(it, "id"));
		else
			coll->row(it);
	}
	double total = num(j, "total");
	if (!c->quiet && !isnan(total) && total > cJSON_GetArraySize(items))
		printf("(%d of %.0f shown; use --limit/--offset)\n", cJSON_GetArraySize(items), total);
	cJSON_Delete(j);
	return NC_OK;
}

static int cmd_get(const nc_ctx *c, struct args *a)
{
	nc_reply r = NC_REPLY_INIT;
	int rc = id_request(c, "GET", a->cmd->coll->name, a->pos[0], "", &r);
	return rc != NC_OK ? rc : print_reply(c, &r);
}

static int cmd_rm(const nc_ctx *c, struct args *a)
{
	int rc = NC_OK;
	for (int i = 0; i < a->npos; i++) {
		nc_reply r = NC_REPLY_INIT;
		int one = id_request(c, "DELETE", a->cmd->coll->name, a->pos[i],
		                     a->opt[O_KEEP_BEST] ? "?keep_best=true" : "", &r);
		if (one != NC_OK) {
			rc = one;
			continue;
		}
		nc_reply_release(&r);
		if (!c->json)
			printf(c->quiet ? "%s\n" : "deleted %s\n", a->pos[i]);
	}
	return rc;
}

/* Prints a created object: raw with --json, the id with -q, else a summary. */
static int print_created(const nc_ctx *c, nc_reply *r, void (*summary)(const cJSON *))
{
	int rc;
	cJSON *j = reply_json(c, r, &rc);
	if (!j)
		return rc;
	if (c->quiet)
		puts(str(j, "id"));
	else
		summary(j);
	cJSON_Delete(j);
	return NC_OK;
}

/* ---- data sets --------------------------------------------------------- */

static void ds_summary(const cJSON *d)
{
	printf("%s  %s  %s  %.0f rows x %.0f features", str(d, "id"), str(d, "name"),
	       str(d, "task"), num(d, "rows"), num(d, "features"));
	const cJSON *cl = cJSON_GetObjectItemCaseSensitive(d, "classes");
	if (cJSON_IsArray(cl))
		printf("  %d classes", cJSON_GetArraySize(cl));
	const cJSON *im = cJSON_GetObjectItemCaseSensitive(d, "image");
	if (cJSON_IsObject(im))
		printf("  images %.0fx%.0fx%.0f", num(im, "width"), num(im, "height"),
		       num(im, "channels"));
	putchar('\n');
}

static void ds_header(void)
{
	printf("%-22s %-20s %-14s %8s %8s  %s\n", "ID", "NAME", "TASK", "ROWS", "FEATURES",
	       "CREATED");
}

static void ds_row(const cJSON *d)
{
	printf("%-22s %-20.20s %-14s %8.0f %8.0f  %s\n", str(d, "id"), str(d, "name"),
	       str(d, "task"), num(d, "rows"), num(d, "features"), str(d, "created_at"));
}

static int cmd_ds_data(const nc_ctx *c, struct args *a)
{
	char path[1024];
	snprintf(path, sizeof path, "/v1/datasets/%s/data", a->pos[0]);
	if (add_paging(path, sizeof path, a, NULL, NULL) != NC_OK)
		return NC_USAGE;
	nc_reply r = NC_REPLY_INIT;
	int rc = nc_get_to(c, path, c->json ? "application/json" : "text/csv", stdout, &r);
	return rc != 0 ? fail_reply(&r) : (nc_reply_release(&r), NC_OK);
}

static int cmd_ds_upload(const nc_ctx *c, struct args *a)
{
	nc_reply r = NC_REPLY_INIT;
	char path[1024] = "/v1/datasets";
	int idx = a->opt[O_IMAGES] || a->opt[O_LABELS];
	if (idx && (!a->opt[O_IMAGES] || !a->opt[O_LABELS] || a->npos)) {
		fprintf(stderr, "nnctl: an IDX upload takes --images FILE --labels FILE and no FILE\n");
		return NC_USAGE;
	}
	if (!idx && a->npos != 1) {
		fprintf(stderr, "nnctl: datasets upload needs FILE (CSV or JSON), or --images and --labels\n");
		return NC_USAGE;
	}
	if (add_query(path, sizeof path, "name", a->opt[O_NAME]) ||
	    add_query(path, sizeof path, "label", a->opt[O_LABEL]) ||
	    add_query(path, sizeof path, "task", a->opt[O_TASK]) ||
	    add_query(path, sizeof path, "header", a->opt[O_NO_HEADER] ? "false" : NULL) ||
	    add_query(path, sizeof path, "classes", a->opt[O_CLASSES])) {
		fprintf(stderr, "nnctl: option too long\n");
		return NC_USAGE;
	}
	int rc;
	if (idx) {
		rc = nc_post_idx(c, path, a->opt[O_IMAGES], a->opt[O_LABELS], &r);
	} else {
		const char *f = a->pos[0];
		const char *ct = ends_with(f, ".json") ? "application/json" : "text/csv";
		if (strcmp(f, "-") == 0) {
			size_t n;
			char *body = read_file(f, &n);
			if (!body)
				return NC_USAGE;
			rc = nc_request(c, "POST", path, ct, body, n, &r);
			free(body);
		} else {
			rc = nc_post_file(c, path, f, ct, &r);
		}
	}
	if (rc != 0)
		return fail_reply(&r);
	return print_created(c, &r, ds_summary);
}

/* ---- models ------------------------------------------------------------ */

static void mdl_summary(const cJSON *m)
{
	printf("%s  %s  %s  %.0f inputs -> %.0f outputs  %.0f parameters  version %.0f\n",
	       str(m, "id"), str(m, "name"), str(m, "task"), num(m, "inputs"), num(m, "outputs"),
	       num(m, "parameters"), num(m, "version"));
}

static void mdl_header(void)
{
	printf("%-22s %-20s %-14s %6s %7s %10s %7s  %s\n", "ID", "NAME", "TASK", "INPUTS",
	       "OUTPUTS", "PARAMS", "VERSION", "CREATED");
}

static void mdl_row(const cJSON *m)
{
	printf("%-22s %-20.20s %-14s %6.0f %7.0f %10.0f %7.0f  %s\n", str(m, "id"),
	       str(m, "name"), str(m, "task"), num(m, "inputs"), num(m, "outputs"),
	       num(m, "parameters"), num(m, "version"), str(m, "created_at"));
}

static int cmd_mdl_create(const nc_ctx *c, struct args *a)
{
	cJSON *spec = read_json_file(a->pos[0]);
	if (!spec)
		return NC_USAGE;
	if (a->opt[O_NAME]) {
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "name");
		cJSON_AddStringToObject(spec, "name", a->opt[O_NAME]);
	}
	nc_reply r = NC_REPLY_INIT;
	int rc = nc_request_json(c, "POST", "/v1/models", spec, &r);
	cJSON_Delete(spec);
	if (rc != 0)
		return fail_reply(&r);
	return print_created(c, &r, mdl_summary);
}

static int cmd_mdl_weights(const nc_ctx *c, struct args *a)
{
	const char *id = a->pos[0];
	if (!safe_id(id))
		return bad_id(id);
	char path[256];
	snprintf(path, sizeof path, "/v1/models/%s/weights", id);
	nc_reply r = NC_REPLY_INIT;
	if (a->opt[O_PUT]) {
		size_t n;
		char *body = read_file(a->opt[O_PUT], &n);
		if (!body)
			return NC_USAGE;
		int rc = nc_request(c, "PUT", path, "application/json", body, n, &r);
		free(body);
		if (rc != 0)
			return fail_reply(&r);
		if (c->json)
			return print_reply(c, &r);
		nc_reply_release(&r);
		rc = id_request(c, "GET", "models", id, "", &r);
		return rc != NC_OK ? rc : print_created(c, &r, mdl_summary);
	}
	if (nc_request(c, "GET", path, NULL, NULL, 0, &r) != 0)
		return fail_reply(&r);
	/* weights are data: always the JSON itself, compact as the server sent it */
	puts(r.body.data ? r.body.data : "");
	nc_reply_release(&r);
	return NC_OK;
}

/* models export ID [-o FILE] [--opset N]: the ONNX file (default ID.onnx). */
static int cmd_mdl_export(const nc_ctx *c, struct args *a)
{
	const char *id = a->pos[0];
	if (!safe_id(id))
		return bad_id(id);
	char opset[16] = "13", path[256], def[128];
	if (a->opt[O_OPSET] && nc_urlencode(a->opt[O_OPSET], opset, sizeof opset) < 0) {
		fprintf(stderr, "nnctl: --opset must be a number from 13 to 17\n");
		return NC_USAGE;
	}
	snprintf(path, sizeof path, "/v1/models/%s/export?format=onnx&opset=%s", id, opset);
	snprintf(def, sizeof def, "%s.onnx", id);
	const char *out = a->opt[O_OUTPUT] ? a->opt[O_OUTPUT] : def;
	nc_reply r = NC_REPLY_INIT;
	if (nc_request(c, "GET", path, NULL, NULL, 0, &r) != 0)
		return fail_reply(&r);
	FILE *f = strcmp(out, "-") == 0 ? stdout : fopen(out, "wb");
	int ok = f && fwrite(r.body.data ? r.body.data : "", 1, r.body.len, f) == r.body.len;
	if (f && f != stdout)
		ok = (fclose(f) == 0) && ok;
	else if (f)
		ok = (fflush(f) == 0) && ok;
	if (!ok) {
		fprintf(stderr, "nnctl: cannot write %s: %s\n", out, strerror(errno));
		nc_reply_release(&r);
		return NC_ERR;
	}
	if (!c->quiet && f != stdout)
		fprintf(stderr, "wrote %s (%zu bytes, opset %s)\n", out, r.body.len, opset);
	nc_reply_release(&r);
	return NC_OK;
}

/* models import FILE.onnx [--name N] [--task T] [--classes a,b,c] */
static int cmd_mdl_import(const nc_ctx *c, struct args *a)
{
	char path[4096] = "/v1/models?format=onnx";
	if (add_query(path, sizeof path, "name", a->opt[O_NAME]) < 0 ||
	    add_query(path, sizeof path, "task", a->opt[O_TASK]) < 0 ||
	    add_query(path, sizeof path, "classes", a->opt[O_CLASSES]) < 0) {
		fprintf(stderr, "nnctl: --name, --task or --classes is too long\n");
		return NC_USAGE;
	}
	nc_reply r = NC_REPLY_INIT;
	if (nc_post_file(c, path, a->pos[0], "application/octet-stream", &r) != 0)
		return fail_reply(&r);
	return print_created(c, &r, mdl_summary);
}

/* ---- jobs -------------------------------------------------------------- */

static void job_summary(const cJSON *j)
{
	printf("%s  %s  model %s  dataset %s\n", str(j, "id"), str(j, "state"), str(j, "model"),
	       str(j, "dataset"));
}

static void job_header(void)
{
	printf("%-22s %-22s %-22s %-10s %6s %5s  %s\n", "ID", "MODEL", "DATASET", "STATE",
	       "EPOCH", "PROG", "CREATED");
}

static void job_row(const cJSON *j)
{
	double p = num(j, "progress"), e = num(j, "epoch");
	printf("%-22s %-22s %-22s %-10s %6.0f %4.0f%%  %s\n", str(j, "id"), str(j, "model"),
	       str(j, "dataset"), str(j, "state"), isnan(e) ? 0 : e, isnan(p) ? 0 : p * 100,
	       str(j, "created_at"));
}

/* Sets key of o to v, replacing what was there. */
static void set_item(cJSON *o, const char *key, cJSON *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	cJSON_AddItemToObject(o, key, v);
}

/* Sets key of o to the number given to option opt, when it was given; -1
 * (message printed) when that is not a number. */
static int set_num(cJSON *o, const char *key, const struct args *a, int opt)
{
	double v;
	if (!a->opt[opt])
		return 0;
	if (parse_num(optdefs[opt].name, a->opt[opt], &v))
		return -1;
	set_item(o, key, cJSON_CreateNumber(v));
	return 0;
}

static int cmd_train(const nc_ctx *c, struct args *a)
{
	if (!a->opt[O_MODEL] || !a->opt[O_DATASET]) {
		fprintf(stderr, "nnctl: train needs --model ID and --dataset ID\n");
		return NC_USAGE;
	}
	cJSON *job = a->opt[O_CONFIG] ? read_json_file(a->opt[O_CONFIG]) : cJSON_CreateObject();
	if (!job)
		return NC_USAGE;
	if (!cJSON_IsObject(job)) {
		fprintf(stderr, "nnctl: %s must hold a JSON object\n", a->opt[O_CONFIG]);
		cJSON_Delete(job);
		return NC_USAGE;
	}
	set_item(job, "model", cJSON_CreateString(a->opt[O_MODEL]));
	set_item(job, "dataset", cJSON_CreateString(a->opt[O_DATASET]));
	static const struct { int o; const char *key; } nums[] = {
		{ O_EPOCHS, "epochs" }, { O_BATCH, "batch_size" }, { O_SEED, "seed" },
		{ O_REPLICAS, "replicas" }, { O_SHARDS, "shards" },
	};
	for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
		if (set_num(job, nums[i].key, a, nums[i].o))
			goto usage;
	if (a->opt[O_VALIDATION]) {
		cJSON *val = cJSON_CreateObject();
		set_item(job, "validation", val);
		if (set_num(val, "fraction", a, O_VALIDATION))
			goto usage;
	}
	if (a->opt[O_STANDARDIZE])
		set_item(job, "standardize", cJSON_CreateTrue());
	if (a->opt[O_LR] || a->opt[O_OPTIMIZER]) {
		cJSON *opt = cJSON_GetObjectItemCaseSensitive(job, "optimizer");
		if (!cJSON_IsObject(opt)) {
			opt = cJSON_CreateObject();
			set_item(job, "optimizer", opt);
			if (!a->opt[O_OPTIMIZER]) /* the server's default optimizer */
				cJSON_AddStringToObject(opt, "type", "sgd");
		}
		if (a->opt[O_OPTIMIZER])
			set_item(opt, "type", cJSON_CreateString(a->opt[O_OPTIMIZER]));
		if (set_num(opt, "lr", a, O_LR))
			goto usage;
	}
	nc_reply r = NC_REPLY_INIT;
	int rc = nc_request_json(c, "POST", "/v1/jobs", job, &r);
	cJSON_Delete(job);
	if (rc != 0)
		return fail_reply(&r);
	if (!a->opt[O_FOLLOW])
		return print_created(c, &r, job_summary);
	cJSON *j = nc_reply_json(&r);
	if (!j) {
		nc_reply_release(&r);
		return NC_ERR;
	}
	char id[64];
	snprintf(id, sizeof id, "%s", str(j, "id"));
	cJSON_Delete(j);
	if (!c->json)
		fprintf(stderr, "started job %s\n", id);
	nc_reply_release(&r);
	return nc_follow(c, id);
usage:
	cJSON_Delete(job);
	return NC_USAGE;
}

/* jobs cancel, studies cancel */
static int cmd_cancel(const nc_ctx *c, struct args *a)
{
	const char *id = a->pos[0];
	nc_reply r = NC_REPLY_INIT;
	int rc = id_request(c, "POST", a->cmd->coll->name, id, "/cancel", &r);
	if (rc != NC_OK)
		return rc;
	if (c->json)
		return print_reply(c, &r);
	nc_reply_release(&r);
	printf(c->quiet ? "%s\n" : "cancelling %s\n", id);
	return NC_OK;
}

static int cmd_jobs_follow(const nc_ctx *c, struct args *a)
{
	if (!safe_id(a->pos[0]))
		return bad_id(a->pos[0]);
	return nc_follow(c, a->pos[0]);
}

static int cmd_jobs_metrics(const nc_ctx *c, struct args *a)
{
	nc_reply r = NC_REPLY_INIT;
	int rc = id_request(c, "GET", "jobs", a->pos[0], "/metrics", &r);
	if (rc != NC_OK)
		return rc;
	cJSON *j = reply_json(c, &r, &rc);
	if (!j)
		return rc;
	printf("%6s %12s %12s %12s %12s %9s\n", "EPOCH", "TRAIN_LOSS", "VAL_LOSS", "VAL_ACC",
	       "LR", "SECONDS");
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "epochs")) {
		printf("%6.0f %12.6g %12.6g %12.6g %12.6g %9.2f\n", num(e, "epoch"),
		       num(e, "train_loss"), num(e, "val_loss"), num(e, "val_accuracy"),
		       num(e, "lr"), num(e, "seconds"));
	}
	cJSON_Delete(j);
	return NC_OK;
}

/* ---- predict ----------------------------------------------------------- */

/* The fields of one CSV line (RFC 4180 quotes: "" is a quote, commas and
 * line breaks may sit inside quotes), moved past it; NULL at the end of
 * the text. *quoted[i] says field i was quoted (so "" is an empty string,
 * not a missing value). The caller frees the fields and the arrays. */
static char **csv_line(const char **pp, int *n, unsigned char **quoted)
{
	const char *p = *pp;
	if (!*p)
		return NULL;
	char **f = NULL;
	unsigned char *q = NULL;
	int cnt = 0;
	for (;;) {
		size_t cap = 64, len = 0;
		char *b = malloc(cap);
		int inq = 0, wasq = 0;
		if (*p == '"') {
			inq = wasq = 1;
			p++;
		}
		while (*p && (inq || (*p != ',' && *p != '\n'))) {
			if (inq && *p == '"') {
				if (p[1] == '"') {
					p++;
				} else {
					inq = 0;
					p++;
					continue;
				}
			}
			if (len + 2 > cap)
				b = realloc(b, cap *= 2);
			b[len++] = *p++;
		}
		if (len && b[len - 1] == '\r' && !wasq)
			len--;
		b[len] = '\0';
		f = realloc(f, sizeof *f * (size_t)(cnt + 1));
		q = realloc(q, (size_t)cnt + 1);
		f[cnt] = b;
		q[cnt++] = (unsigned char)wasq;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\n')
			p++;
		break;
	}
	*pp = p;
	*n = cnt;
	*quoted = q;
	return f;
}

/* A raw CSV value as JSON: null when missing (empty, NA, NaN, null, ?), a
 * number when it reads as one, else a string. */
static cJSON *raw_value(const char *s, int quoted)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (!quoted && (!*s || !strcmp(s, "NA") || !strcmp(s, "NaN") || !strcmp(s, "null") ||
	                !strcmp(s, "?")))
		return cJSON_CreateNull();
	char *e;
	double v = strtod(s, &e);
	while (*e == ' ' || *e == '\t')
		e++;
	if (!quoted && e != s && !*e && isfinite(v))
		return cJSON_CreateNumber(v);
	return cJSON_CreateString(s);
}

/*
 * Rows from a CSV text. With by_name, the first line names the columns and
 * each further line is a raw record by column name (text and missing
 * values allowed: for models trained on typed columns). Otherwise every
 * line is numbers; a first line that is not all numbers is a header and
 * skipped. NULL (message printed) on error.
 */
static cJSON *csv_rows(const char *text, const char *name, int by_name)
{
	cJSON *rows = cJSON_CreateArray();
	char **head = NULL;
	int nhead = 0, lineno = 0;
	const char *p = text;
	if (!strncmp(p, "\xEF\xBB\xBF", 3))
		p += 3;
	char **f;
	int n;
	unsigned char *q;
	int failed = 0;
	while (!failed && (f = csv_line(&p, &n, &q)) != NULL) {
		lineno++;
		int blank = n == 1 && !f[0][0] && !q[0];
		if (blank) {
			/* a blank line */
		} else if (by_name && !head) {
			head = f;
			nhead = n;
			f = NULL;
		} else if (by_name) {
			if (n != nhead) {
				fprintf(stderr, "nnctl: %s: line %d has %d fields, the header %d\n", name,
				        lineno, n, nhead);
				failed = 1;
			} else {
				cJSON *o = cJSON_CreateObject();
				for (int i = 0; i < n; i++)
					cJSON_AddItemToObject(o, head[i], raw_value(f[i], q[i]));
				cJSON_AddItemToArray(rows, o);
			}
		} else {
			cJSON *row = cJSON_CreateArray();
			int bad = 0;
			for (int i = 0; i < n && !bad; i++) {
				cJSON *v = raw_value(f[i], q[i]);
				if (!cJSON_IsNumber(v))
					bad = i + 1;
				cJSON_AddItemToArray(row, v);
			}
			if (bad) {
				cJSON_Delete(row);
				if (!(lineno == 1 && cJSON_GetArraySize(rows) == 0)) {
					fprintf(stderr, "nnctl: %s: line %d, column %d: not a number\n",
					        name, lineno, bad);
					failed = 1;
				}
			} else {
				cJSON_AddItemToArray(rows, row);
			}
		}
		for (int i = 0; f && i < n; i++)
			free(f[i]);
		free(f);
		free(q);
	}
	for (int i = 0; i < nhead; i++)
		free(head[i]);
	free(head);
	if (failed) {
		cJSON_Delete(rows);
		return NULL;
	}
	return rows;
}

/* 1 when the model was trained on typed columns (GET /v1/models/{id} shows
 * "columns"): its CSV input is then records by column name. */
static int model_has_columns(const nc_ctx *c, const char *id)
{
	char path[256];
	snprintf(path, sizeof path, "/v1/models/%s", id);
	nc_reply r = NC_REPLY_INIT;
	int has = 0;
	if (nc_request(c, "GET", path, NULL, NULL, 0, &r) == 0 && nc_buf_add(&r.body, "", 1) == 0) {
		cJSON *j = cJSON_Parse(r.body.data);
		has = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "columns"));
		cJSON_Delete(j);
	}
	nc_reply_release(&r);
	return has;
}

static int cmd_predict(const nc_ctx *c, struct args *a)
{
	const char *id = a->pos[0], *in = a->opt[O_INPUT];
	if (!safe_id(id))
		return bad_id(id);
	if (!in) {
		fprintf(stderr, "nnctl: predict needs --input ROWS.json|ROWS.csv (- for stdin)\n");
		return NC_USAGE;
	}
	char *text = read_file(in, NULL);
	if (!text)
		return NC_USAGE;
	const char *t = text;
	while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r')
		t++;
	cJSON *body;
	if (*t == '[' || *t == '{') {
		cJSON *j = cJSON_Parse(t);
		if (!j) {
			fprintf(stderr, "nnctl: %s is not valid JSON\n", in);
			free(text);
			return NC_USAGE;
		}
		if (cJSON_IsArray(j)) {
			body = cJSON_CreateObject();
			cJSON_AddItemToObject(body, "instances", j);
		} else {
			body = j;
		}
	} else {
		cJSON *rows = csv_rows(text, in, model_has_columns(c, id));
		if (!rows) {
			free(text);
			return NC_USAGE;
		}
		body = cJSON_CreateObject();
		cJSON_AddItemToObject(body, "instances", rows);
	}
	free(text);
	char path[256];
	snprintf(path, sizeof path, "/v1/models/%s/predict", id);
	nc_reply r = NC_REPLY_INIT;
	int rc = nc_request_json(c, "POST", path, body, &r);
	cJSON_Delete(body);
	if (rc != 0)
		return fail_reply(&r);
	cJSON *j = reply_json(c, &r, &rc);
	if (!j)
		return rc;
	const cJSON *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "predictions")) {
		if (cJSON_IsObject(p)) {
			/* classification: the label and its probability */
			const cJSON *probs = cJSON_GetObjectItemCaseSensitive(p, "probabilities");
			double cls = num(p, "class");
			const cJSON *pr = isnan(cls) ? NULL : cJSON_GetArrayItem(probs, (int)cls);
			const char *label = str(p, "label");
			if (!*label) {
				printf("%.0f", cls);
			} else {
				fputs(label, stdout);
			}
			if (cJSON_IsNumber(pr) && !c->quiet)
				printf("\t%.4f", pr->valuedouble);
			putchar('\n');
		} else {
			const cJSON *v;
			int first = 1;
			cJSON_ArrayForEach(v, p) {
				printf(first ? "%.9g" : " %.9g", v->valuedouble);
				first = 0;
			}
			putchar('\n');
		}
	}
	cJSON_Delete(j);
	return NC_OK;
}

/* ---- studies ----------------------------------------------------------- */

static void study_summary(const cJSON *s)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "trials");
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(s, "config");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(cfg, "strategy");
	printf("%s  %s  %s  %s  %.0f/%.0f trials done (%.0f running, %.0f paused, %.0f pruned, "
	       "%.0f failed)", str(s, "id"), str(s, "name"), str(st, "type"), str(s, "state"),
	       num(t, "succeeded") + num(t, "failed") + num(t, "pruned") + num(t, "cancelled"),
	       num(t, "total"), num(t, "running"), num(t, "paused"), num(t, "pruned"),
	       num(t, "failed"));
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "best");
	if (cJSON_IsObject(b)) {
		char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(b, "params"));
		printf("\n  best: trial %.0f  value %.6g  %s", num(b, "trial"), num(b, "value"),
		       p ? p : "");
		free(p);
	}
	const cJSON *cv, *curves = cJSON_GetObjectItemCaseSensitive(s, "curves");
	cJSON_ArrayForEach(cv, curves) {
		char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cv, "params"));
		const cJSON *ci = cJSON_GetObjectItemCaseSensitive(cv, "slope_ci95");
		printf("\n  curve %s: slope %.3f", p ? p : "{}", num(cv, "slope"));
		if (cJSON_GetArraySize(ci) == 2)
			printf(" [%.3f, %.3f]", cJSON_GetArrayItem(ci, 0)->valuedouble,
			       cJSON_GetArrayItem(ci, 1)->valuedouble);
		printf("  theory %.3f", num(cv, "theory_slope"));
		free(p);
	}
	putchar('\n');
}

static void study_header(void)
{
	printf("%-22s %-20s %-15s %-10s %7s %7s  %s\n", "ID", "NAME", "STRATEGY", "STATE", "DONE",
	       "TOTAL", "CREATED");
}

static void study_row(const cJSON *s)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "trials");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(s, "config"), "strategy");
	printf("%-22s %-20.20s %-15s %-10s %7.0f %7.0f  %s\n", str(s, "id"), str(s, "name"),
	       str(st, "type"), str(s, "state"),
	       num(t, "succeeded") + num(t, "failed") + num(t, "pruned") + num(t, "cancelled"),
	       num(t, "total"), str(s, "created_at"));
}

static int cmd_std_create(const nc_ctx *c, struct args *a)
{
	cJSON *j = read_json_file(a->pos[0]);
	if (!j)
		return NC_USAGE;
	if (a->opt[O_NAME]) {
		cJSON_DeleteItemFromObjectCaseSensitive(j, "name");
		cJSON_AddStringToObject(j, "name", a->opt[O_NAME]);
	}
	nc_reply r = NC_REPLY_INIT;
	int ok = nc_request_json(c, "POST", "/v1/studies", j, &r) == 0;
	cJSON_Delete(j);
	if (!ok)
		return fail_reply(&r);
	if (!a->opt[O_FOLLOW])
		return print_created(c, &r, study_summary);
	cJSON *s = cJSON_Parse(r.body.data ? r.body.data : "");
	nc_reply_release(&r);
	char id[64];
	snprintf(id, sizeof id, "%s", str(s, "id"));
	cJSON_Delete(s);
	return nc_follow_study(c, id);
}

static void trial_header(void)
{
	printf("%6s %-10s %12s %7s %9s %8s  %s\n", "TRIAL", "STATE", "VALUE", "EPOCHS", "SECONDS",
	       "ROWS", "PARAMS");
}

static void trial_row(const cJSON *t)
{
	char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(t, "params"));
	char rows[24] = "all";
	if (!isnan(num(t, "rows")))
		snprintf(rows, sizeof rows, "%.0f", num(t, "rows"));
	printf("%6.0f %-10s %12.6g %7.0f %9.2f %8s  %s\n", num(t, "number"), str(t, "state"),
	       num(t, "value"), num(t, "epochs"), num(t, "seconds"), rows, p ? p : "{}");
	free(p);
}

static int cmd_std_trials(const nc_ctx *c, struct args *a)
{
	if (!safe_id(a->pos[0]))
		return bad_id(a->pos[0]);
	char path[512];
	snprintf(path, sizeof path, "/v1/studies/%s/trials", a->pos[0]);
	if (add_paging(path, sizeof path, a, "sort", a->opt[O_SORT]) != NC_OK)
		return NC_USAGE;
	nc_reply r = NC_REPLY_INIT;
	if (nc_request(c, "GET", path, NULL, NULL, 0, &r) != 0)
		return fail_reply(&r);
	int rc;
	cJSON *j = reply_json(c, &r, &rc);
	if (!j)
		return rc;
	const cJSON *it;
	if (!c->quiet)
		trial_header();
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "trials")) {
		if (c->quiet)
			puts(str(it, "job"));
		else
			trial_row(it);
	}
	cJSON_Delete(j);
	return NC_OK;
}

static int cmd_std_follow(const nc_ctx *c, struct args *a)
{
	if (!safe_id(a->pos[0]))
		return bad_id(a->pos[0]);
	return nc_follow_study(c, a->pos[0]);
}


static int cmd_info(const nc_ctx *c, struct args *a)
{
	(void)a;
	nc_reply r = NC_REPLY_INIT;
	if (nc_request(c, "GET", "/v1/info", NULL, NULL, 0, &r) != 0)
		return fail_reply(&r);
	return print_reply(c, &r);
}

/* ---- the command table ----------------------------------------------- */

static const struct collection DATASETS = { "datasets", ds_header, ds_row };
static const struct collection MODELS = { "models", mdl_header, mdl_row };
static const struct collection JOBS = { "jobs", job_header, job_row };
static const struct collection STUDIES = { "studies", study_header, study_row };

static const struct cmd cmds[] = {
	{ "datasets", "upload", cmd_ds_upload, NULL, 0, 1,
	  B(O_LABEL) | B(O_NAME) | B(O_TASK) | B(O_NO_HEADER) | B(O_IMAGES) | B(O_LABELS) |
	  B(O_CLASSES),
	  "datasets upload FILE [--label COL] [--name N] [--task T] [--no-header]\n"
	  "                [--classes A,B,...]\n"
	  "       nnctl datasets upload --images FILE --labels FILE [--name N]",
	  "Uploads a data set: a CSV file (FILE.json: {\"x\", \"y\"} arrays; - reads stdin),\n"
	  "or an IDX image/label pair (MNIST, Fashion-MNIST; gzip or not).\n"
	  "  --label COL    the label column, by name or 0-based index (default: the last)\n"
	  "  --name N       a name for the data set\n"
	  "  --task T       classification or regression (default: inferred)\n"
	  "  --no-header    the CSV's first line is data, not column names\n"
	  "  --classes A,B  the class names and their order (CSV; a label outside them\n"
	  "                 is refused)" },
	{ "datasets", "data", cmd_ds_data, NULL, 1, 1, B(O_LIMIT) | B(O_OFFSET),
	  "datasets data ID [--limit N] [--offset N]",
	  "Prints the data set's rows as CSV (with --json: as JSON): labels by class\n"
	  "name, typed columns as their raw values, empty for missing." },
	{ "datasets", "list", cmd_list, &DATASETS, 0, 0, B(O_LIMIT) | B(O_OFFSET),
	  "datasets list [--limit N] [--offset N]", "Lists data sets." },
	{ "datasets", "get", cmd_get, &DATASETS, 1, 1, 0, "datasets get ID", "Shows one data set." },
	{ "datasets", "rm", cmd_rm, &DATASETS, 1, MAX_POS, 0, "datasets rm ID...",
	  "Deletes data sets (refused while a queued or running job uses one)." },
	{ "models", "create", cmd_mdl_create, NULL, 1, 1, B(O_NAME), "models create SPEC.json [--name N]",
	  "Creates a model from a JSON spec ({\"task\", \"inputs\", \"outputs\", \"layers\": [...]})." },
	{ "models", "list", cmd_list, &MODELS, 0, 0, B(O_LIMIT) | B(O_OFFSET),
	  "models list [--limit N] [--offset N]", "Lists models." },
	{ "models", "get", cmd_get, &MODELS, 1, 1, 0, "models get ID", "Shows one model." },
	{ "models", "rm", cmd_rm, &MODELS, 1, MAX_POS, 0, "models rm ID...", "Deletes models." },
	{ "models", "weights", cmd_mdl_weights, NULL, 1, 1, B(O_PUT), "models weights ID [--put FILE]",
	  "Prints the model's weights as JSON, or with --put FILE publishes FILE's\n"
	  "weights as a new version (shapes must match the model exactly)." },
	{ "models", "export", cmd_mdl_export, NULL, 1, 1, B(O_OUTPUT) | B(O_OPSET),
	  "models export ID [-o FILE] [--opset N]",
	  "Writes the model's newest version as an ONNX file (default ID.onnx; - for\n"
	  "stdout), for ONNX Runtime and other runtimes.\n"
	  "  -o, --output FILE  where to write it\n"
	  "  --opset N          the ONNX opset, 13 (the default) to 17" },
	{ "models", "import", cmd_mdl_import, NULL, 1, 1, B(O_NAME) | B(O_TASK) | B(O_CLASSES),
	  "models import FILE.onnx [--name N] [--task T] [--classes A,B,...]",
	  "Creates a model from an ONNX file: a feed-forward graph as torch.onnx.export\n"
	  "writes an nn.Sequential MLP, or a file nnd exported.\n"
	  "  --name N           a name for the model\n"
	  "  --task T           classification or regression (default: classification\n"
	  "                     when the graph ends in Softmax, else regression)\n"
	  "  --classes A,B,...  the class names, one per output" },
	{ "train", NULL, cmd_train, NULL, 0, 0,
	  B(O_MODEL) | B(O_DATASET) | B(O_CONFIG) | B(O_EPOCHS) | B(O_BATCH) | B(O_LR) |
	  B(O_OPTIMIZER) | B(O_SEED) | B(O_VALIDATION) | B(O_STANDARDIZE) | B(O_FOLLOW) |
	  B(O_REPLICAS) | B(O_SHARDS),
	  "train --model ID --dataset ID [--config JOB.json] [--epochs N] [--batch-size N]\n"
	  "             [--lr X] [--optimizer T] [--seed N] [--validation F] [--standardize]\n"
	  "             [--replicas N] [--shards S] [--follow]",
	  "Starts a training job. --config gives the whole job document (see the API);\n"
	  "the other options override its fields.\n"
	  "  --optimizer T  sgd (the default), momentum, nesterov, adagrad, rmsprop, adam, adamw\n"
	  "  --lr X         the learning rate (the server's default: 0.01)\n"
	  "  --validation F hold out a fraction F of the rows for validation\n"
	  "  --standardize  standardize the inputs (mean 0, std 1 per feature)\n"
	  "  --replicas N   data-parallel: N workers share each batch (default 1)\n"
	  "  --shards S     cut each batch into S slices (default N); the weights depend\n"
	  "                 on S only, never on N\n"
	  "  --follow       follow the job to its end (see jobs follow); exits 3 when\n"
	  "                 it fails, 4 when it is cancelled" },
	{ "jobs", "list", cmd_list, &JOBS, 0, 0, B(O_STATE) | B(O_LIMIT) | B(O_OFFSET),
	  "jobs list [--state S] [--limit N] [--offset N]",
	  "Lists jobs, optionally those in state S (queued, running, succeeded, failed, cancelled)." },
	{ "jobs", "get", cmd_get, &JOBS, 1, 1, 0, "jobs get ID", "Shows one job." },
	{ "jobs", "cancel", cmd_cancel, &JOBS, 1, 1, 0, "jobs cancel ID",
	  "Cancels a queued or running job (it stops at its next step)." },
	{ "jobs", "follow", cmd_jobs_follow, NULL, 1, 1, 0, "jobs follow ID",
	  "Follows a job's live events to its end. On a terminal: a progress bar (epoch,\n"
	  "step, loss, validation metrics, throughput, ETA); otherwise one line per event;\n"
	  "with --json one JSON object per event. Exits 0 when the job succeeded, 3 when\n"
	  "it failed, 4 when it was cancelled." },
	{ "jobs", "metrics", cmd_jobs_metrics, NULL, 1, 1, 0, "jobs metrics ID",
	  "Prints the job's per-epoch metrics." },
	{ "predict", NULL, cmd_predict, NULL, 1, 1, B(O_INPUT), "predict ID --input ROWS.json|ROWS.csv",
	  "Predicts rows of raw features with the model's newest version. ROWS.json is\n"
	  "[[...], ...] or {\"instances\": [...]}; a CSV holds numbers only (a header line\n"
	  "is skipped); - reads stdin. Prints one line per row: the label and its\n"
	  "probability (classification) or the outputs (regression)." },
	{ "studies", "create", cmd_std_create, NULL, 1, 1, B(O_NAME) | B(O_FOLLOW),
	  "studies create STUDY.json [--name N] [--follow]",
	  "Starts a study (see the API: dataset, objective, model, job, space, strategy).\n"
	  "  --follow       follow it to its end (see studies follow)" },
	{ "studies", "list", cmd_list, &STUDIES, 0, 0, B(O_LIMIT) | B(O_OFFSET),
	  "studies list [--limit N] [--offset N]", "Lists studies." },
	{ "studies", "get", cmd_get, &STUDIES, 1, 1, 0, "studies get ID",
	  "Shows one study (with --json: the whole object, curves included)." },
	{ "studies", "trials", cmd_std_trials, NULL, 1, 1, B(O_SORT) | B(O_LIMIT) | B(O_OFFSET),
	  "studies trials ID [--sort value|number] [--limit N] [--offset N]",
	  "The leaderboard: trials best first, or by number with --sort number." },
	{ "studies", "follow", cmd_std_follow, NULL, 1, 1, 0, "studies follow ID",
	  "Follows a study to its end. On a terminal: a live progress line (trials done,\n"
	  "running, paused, pruned, best value); otherwise one line per trial event.\n"
	  "Exits 0 when it succeeded, 3 when it failed, 4 when it was cancelled." },
	{ "studies", "cancel", cmd_cancel, &STUDIES, 1, 1, 0, "studies cancel ID",
	  "Cancels a study: its queued, paused and running trials stop." },
	{ "studies", "rm", cmd_rm, &STUDIES, 1, MAX_POS, B(O_KEEP_BEST), "studies rm ID... [--keep-best]",
	  "Deletes studies with their trials' jobs and models (--keep-best keeps the best model)." },
	{ "info", NULL, cmd_info, NULL, 0, 0, 0, "info", "Shows the server's version, workers and BLAS." },
};

#define N_CMDS (sizeof cmds / sizeof *cmds)

static void usage(FILE *out)
{
	fputs("usage: nnctl [--server URL] [--json] [-q] COMMAND ...\n\n"
	      "A command-line client for the nnd training service.\n\nCommands:\n", out);
	for (size_t i = 0; i < N_CMDS; i++)
		fprintf(out, "  nnctl %s\n", cmds[i].usage);
	fputs("\nGlobal options:\n"
	      "  --server URL   the daemon (default $NND_SERVER, else http://127.0.0.1:8080)\n"
	      "  --json         print the server's JSON instead of tables and summaries\n"
	      "  -q, --quiet    print only ids\n"
	      "  -h, --help     help for nnctl or for a command\n"
	      "  --version      print nnctl's version\n"
	      "The API key, when the daemon has one, comes from $NND_API_KEY.\n"
	      "Exit status: 0 success, 1 error reply or unreachable server, 2 usage,\n"
	      "3 a followed job failed, 4 a followed job was cancelled.\n", out);
}

static void cmd_help(const struct cmd *cm, FILE *out)
{
	fprintf(out, "usage: nnctl %s\n\n%s\n", cm->usage, cm->help);
}

static int find_opt(const char *name, size_t len)
{
	for (int i = 0; i < N_OPTS; i++)
		if (strlen(optdefs[i].name) == len && strncmp(optdefs[i].name, name, len) == 0)
			return i;
	return -1;
}

int main(int argc, char **argv)
{
	nc_ctx c = { 0 };
	const char *server = getenv("NND_SERVER");
	c.api_key = getenv("NND_API_KEY");
	struct args a;
	memset(&a, 0, sizeof a);
	const char *words[2] = { NULL, NULL };
	int nwords = 0, help = 0;
	const char *bad_opt = NULL;
	const char *opt_arg_missing = NULL;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			help = 1;
		} else if (strcmp(s, "--version") == 0) {
			printf("nnctl %s\n", NNCTL_VERSION);
			return NC_OK;
		} else if (strcmp(s, "--json") == 0) {
			c.json = 1;
		} else if (strcmp(s, "-q") == 0 || strcmp(s, "--quiet") == 0) {
			c.quiet = 1;
		} else if (strncmp(s, "--server", 8) == 0 && (s[8] == '\0' || s[8] == '=')) {
			if (s[8] == '=')
				server = s + 9;
			else if (i + 1 < argc)
				server = argv[++i];
			else
				opt_arg_missing = "server";
		} else if (strcmp(s, "-o") == 0) {
			if (i + 1 < argc)
				a.opt[O_OUTPUT] = argv[++i];
			else
				opt_arg_missing = "output";
		} else if (strncmp(s, "--", 2) == 0 && s[2]) {
			const char *eq = strchr(s + 2, '=');
			size_t len = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
			int o = find_opt(s + 2, len);
			if (o < 0) {
				bad_opt = s;
				continue;
			}
			if (optdefs[o].has_arg) {
				if (eq)
					a.opt[o] = eq + 1;
				else if (i + 1 < argc)
					a.opt[o] = argv[++i];
				else
					opt_arg_missing = optdefs[o].name;
			} else {
				a.opt[o] = "1";
			}
		} else if (nwords < 2 && a.npos == 0 &&
		           (nwords == 0 || (strcmp(words[0], "train") && strcmp(words[0], "predict") &&
		                            strcmp(words[0], "info")))) {
			words[nwords++] = s;
		} else if (a.npos < MAX_POS) {
			a.pos[a.npos++] = s;
		} else {
			fprintf(stderr, "nnctl: too many arguments\n");
			return NC_USAGE;
		}
	}
	if (nwords == 0) {
		usage(help ? stdout : stderr);
		return help ? NC_OK : NC_USAGE;
	}
	const struct cmd *cm = NULL;
	int group_known = 0;
	for (size_t i = 0; i < N_CMDS; i++) {
		if (strcmp(cmds[i].group, words[0]) != 0)
			continue;
		group_known = 1;
		if (!cmds[i].verb) {
			cm = &cmds[i];
			if (nwords == 2) /* "predict ID": the second word is an argument */
				a.pos[a.npos++] = words[1];
			break;
		}
		if (nwords == 2 && strcmp(cmds[i].verb, words[1]) == 0) {
			cm = &cmds[i];
			break;
		}
	}
	if (!cm) {
		FILE *out = help && group_known ? stdout : stderr;
		if (group_known) {
			fprintf(out, "usage:\n");
			for (size_t i = 0; i < N_CMDS; i++)
				if (strcmp(cmds[i].group, words[0]) == 0)
					fprintf(out, "  nnctl %s\n", cmds[i].usage);
			if (!help && nwords == 2)
				fprintf(stderr, "nnctl: unknown command \"%s %s\"\n", words[0], words[1]);
		} else {
			usage(stderr);
			fprintf(stderr, "nnctl: unknown command \"%s\"\n", words[0]);
		}
		return help && group_known ? NC_OK : NC_USAGE;
	}
	if (help) {
		cmd_help(cm, stdout);
		return NC_OK;
	}
	if (bad_opt) {
		fprintf(stderr, "nnctl: unknown option %s\n", bad_opt);
		cmd_help(cm, stderr);
		return NC_USAGE;
	}
	if (opt_arg_missing) {
		fprintf(stderr, "nnctl: --%s needs a value\n", opt_arg_missing);
		return NC_USAGE;
	}
	for (int o = 0; o < N_OPTS; o++) {
		if (a.opt[o] && !(cm->opts & B(o))) {
			fprintf(stderr, "nnctl: --%s does not apply to \"%s%s%s\"\n", optdefs[o].name,
			        cm->group, cm->verb ? " " : "", cm->verb ? cm->verb : "");
			return NC_USAGE;
		}
	}
	if (a.npos < cm->min_pos || a.npos > cm->max_pos) {
		fprintf(stderr, "usage: nnctl %s\n", cm->usage);
		return NC_USAGE;
	}
	static char url[1024];
	snprintf(url, sizeof url, "%s", server && *server ? server : "http://127.0.0.1:8080");
	size_t ul = strlen(url);
	while (ul && url[ul - 1] == '/')
		url[--ul] = '\0';
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		fprintf(stderr, "nnctl: --server must be an http:// or https:// URL\n");
		return NC_USAGE;
	}
	c.server = url;
	a.cmd = cm;
	return cm->fn(&c, &a);
}
