/*
 * test_openapi.c - api/openapi.json against the daemon it describes.
 *
 * Routes: every route of the router's table (server/router.c) is in the
 * document under the same method and path pattern, and the document names
 * no operation the router lacks. Replies: every operation lists its success
 * code and each problem+json status it can answer with (the rules of
 * server/http.c for auth, readiness, bodies and ids, plus each handler's
 * own codes, listed below), and no other; each error reply is a
 * problem+json Problem; 429 carries Retry-After. References: every $ref
 * resolves. Parameters: each templated path segment is a required path
 * parameter with the id pattern; open routes need no key. Defaults and
 * limits: the defaults the document states are the ones the server fills
 * in (from api_train_config_to_json and api_model_spec_to_json of minimal
 * bodies), every defaulted field is documented, and the documented limits
 * are api_limits_default()'s.
 *
 * Run from the repository root (as make check does).
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "router.h"
#include "spec_json.h"
#include "check_main.h"

#define DOC_PATH "api/openapi.json"

static cJSON *load_doc(void)
{
	FILE *f = fopen(DOC_PATH, "rb");
	ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", DOC_PATH);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	cJSON *d = cJSON_Parse(buf);
	free(buf);
	ck_assert_msg(d != NULL, "%s is not valid JSON", DOC_PATH);
	return d;
}

/* A path pattern with every "{name}" reduced to "{}". */
static void norm(const char *in, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = in; *p && o + 3 < n; p++) {
		if (*p == '{') {
			out[o++] = '{';
			out[o++] = '}';
			p = strchr(p, '}');
			if (!p)
				break;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static void lower(const char *in, char *out, size_t n)
{
	size_t i = 0;
	for (; in[i] && i + 1 < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

/* The path item whose pattern matches pattern (names of captures aside). */
static const cJSON *path_item(const cJSON *doc, const char *pattern)
{
	char want[256], have[256];
	norm(pattern, want, sizeof want);
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc, "paths")) {
		norm(it->string, have, sizeof have);
		if (strcmp(want, have) == 0)
			return it;
	}
	return NULL;
}

static const cJSON *operation(const cJSON *doc, const route *rt)
{
	const cJSON *pi = path_item(doc, rt->pattern);
	char m[16];
	lower(rt->method, m, sizeof m);
	return pi ? cJSON_GetObjectItemCaseSensitive(pi, m) : NULL;
}

/* The JSON pointer ref ("#/a/b") in doc, or NULL. */
static const cJSON *resolve(const cJSON *doc, const char *ref)
{
	if (strncmp(ref, "#/", 2) != 0)
		return NULL;
	const cJSON *at = doc;
	const char *p = ref + 2;
	while (at && *p) {
		char key[256];
		size_t k = 0;
		while (*p && *p != '/' && k + 1 < sizeof key) {
			if (p[0] == '~' && p[1] == '1') {
				key[k++] = '/';
				p += 2;
			} else if (p[0] == '~' && p[1] == '0') {
				key[k++] = '~';
				p += 2;
			} else {
				key[k++] = *p++;
			}
		}
		key[k] = '\0';
		if (*p == '/')
			p++;
		at = cJSON_GetObjectItemCaseSensitive(at, key);
	}
	return at;
}

/* o itself, or what its "$ref" points to. */
static const cJSON *deref(const cJSON *doc, const cJSON *o)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "$ref");
	return cJSON_IsString(r) ? resolve(doc, r->valuestring) : o;
}

static const char *const VERBS[] = { "get", "put", "post", "delete", "patch", "head",
                                     "options", "trace" };

/* ---------------------------------------------------------------- routes */

START_TEST(test_every_route_of_the_router_is_documented)
{
	cJSON *doc = load_doc();
	ck_assert_int_gt(router_count, 0);
	for (int i = 0; i < router_count; i++) {
		const route *rt = &router_table[i];
		ck_assert_msg(path_item(doc, rt->pattern) != NULL, "%s is not in %s", rt->pattern,
		              DOC_PATH);
		ck_assert_msg(operation(doc, rt) != NULL, "%s %s is not in %s", rt->method,
		              rt->pattern, DOC_PATH);
	}
	cJSON_Delete(doc);
}
END_TEST

START_TEST(test_every_documented_operation_is_routed)
{
	cJSON *doc = load_doc();
	const cJSON *pi;
	int n_ops = 0;
	cJSON_ArrayForEach(pi, cJSON_GetObjectItemCaseSensitive(doc, "paths")) {
		char have[256];
		norm(pi->string, have, sizeof have);
		const cJSON *op;
		cJSON_ArrayForEach(op, pi) {
			int verb = 0;
			for (size_t k = 0; k < sizeof VERBS / sizeof VERBS[0]; k++)
				verb |= strcmp(op->string, VERBS[k]) == 0;
			if (!verb)
				continue;
			n_ops++;
			int found = 0;
			for (int i = 0; i < router_count && !found; i++) {
				char m[16], want[256];
				lower(router_table[i].method, m, sizeof m);
				norm(router_table[i].pattern, want, sizeof want);
				found = strcmp(m, op->string) == 0 && strcmp(want, have) == 0;
			}
			ck_assert_msg(found, "%s names %s %s, which the router lacks", DOC_PATH,
			              op->string, pi->string);
		}
	}
	ck_assert_int_eq(n_ops, router_count);
	cJSON_Delete(doc);
}
END_TEST

/* ---------------------------------------------------------------- replies */

/* What each route answers besides the rules of expected(): its success
 * code and its handler's own problem statuses. A route missing here fails
 * the test, so a new route gets its codes written down. */
static const struct {
	const char *method, *pattern;
	int codes[8];
} OWN[] = {
	{ "GET", "/healthz", { 200 } },
	{ "GET", "/readyz", { 200, 503 } },
	{ "GET", "/metrics", { 200 } },
	{ "GET", "/openapi.json", { 200 } },
	{ "GET", "/v1/info", { 200 } },
	{ "POST", "/v1/datasets", { 201, 422, 507 } },
	{ "GET", "/v1/datasets", { 200, 422 } },
	{ "GET", "/v1/datasets/{ds}", { 200 } },
	{ "DELETE", "/v1/datasets/{ds}", { 204, 409, 507 } },
	{ "GET", "/v1/datasets/{ds}/data", { 200, 406, 422 } },
	{ "POST", "/v1/models", { 201, 422, 507 } },
	{ "GET", "/v1/models", { 200, 422 } },
	{ "GET", "/v1/models/{mdl}", { 200 } },
	{ "DELETE", "/v1/models/{mdl}", { 204, 409, 507 } },
	{ "GET", "/v1/models/{mdl}/weights", { 200 } },
	{ "PUT", "/v1/models/{mdl}/weights", { 200, 422, 507 } },
	{ "POST", "/v1/models/{mdl}/predict", { 200, 422 } },
	{ "GET", "/v1/models/{mdl}/export", { 200, 422 } },
	{ "POST", "/v1/jobs", { 202, 422, 429, 507 } },
	{ "GET", "/v1/jobs", { 200, 422 } },
	{ "GET", "/v1/jobs/{job}", { 200 } },
	{ "POST", "/v1/jobs/{job}/cancel", { 202, 409, 507 } },
	{ "GET", "/v1/jobs/{job}/metrics", { 200, 422 } },
	{ "GET", "/v1/jobs/{job}/events", { 200, 422, 429 } },
	{ "POST", "/v1/studies", { 202, 422, 507 } },
	{ "GET", "/v1/studies", { 200, 422 } },
	{ "GET", "/v1/studies/{std}", { 200 } },
	{ "DELETE", "/v1/studies/{std}", { 204, 422 } },
	{ "POST", "/v1/studies/{std}/cancel", { 202, 409 } },
	{ "GET", "/v1/studies/{std}/trials", { 200, 422 } },
	{ "GET", "/v1/studies/{std}/events", { 200, 422, 429 } },
	{ "GET", "/v1/jobs/{job}/plot.svg", { 200, 422 } },
	{ "GET", "/v1/studies/{std}/plot.svg", { 200, 422 } },
	{ "GET", "/v1/events", { 200, 422, 429 } },
	{ "GET", "/", { 302 } },
	{ "GET", "/ui/", { 200 } },
	{ "GET", "/ui/app.js", { 200 } },
	{ "GET", "/ui/app.css", { 200 } },
	{ "GET", "/ui/compare", { 200 } },
	{ "GET", "/ui/jobs/{job}", { 200 } },
	{ "GET", "/ui/models", { 200 } },
	{ "GET", "/ui/models/{mdl}", { 200 } },
	{ "GET", "/ui/datasets", { 200 } },
	{ "GET", "/ui/datasets/{ds}", { 200 } },
	{ "GET", "/ui/studies", { 200 } },
	{ "GET", "/ui/studies/{std}", { 200 } },
};

/* The statuses route rt can answer with, as a set over 100..599. */
static void expected(const route *rt, int set[600])
{
	memset(set, 0, 600 * sizeof *set);
	int own = -1;
	for (size_t i = 0; i < sizeof OWN / sizeof OWN[0]; i++)
		if (!strcmp(OWN[i].method, rt->method) && !strcmp(OWN[i].pattern, rt->pattern))
			own = (int)i;
	ck_assert_msg(own >= 0, "test_openapi.c: write down the codes of %s %s in OWN",
	              rt->method, rt->pattern);
	for (int k = 0; k < 8 && OWN[own].codes[k]; k++)
		set[OWN[own].codes[k]] = 1;
	if (!rt->open)
		set[401] = 1;                 /* the API key */
	if (rt->srv != SRV_HEALTHZ && rt->srv != SRV_READYZ)
		set[503] = 1;                 /* not ready yet */
	if (rt->body != BODY_NONE)
		set[400] = set[413] = set[415] = 1;
	if (strchr(rt->pattern, '{'))
		set[404] = 1;                 /* malformed or unknown id */
}

START_TEST(test_operations_list_their_replies_and_problems)
{
	cJSON *doc = load_doc();
	for (int i = 0; i < router_count; i++) {
		const route *rt = &router_table[i];
		const cJSON *op = operation(doc, rt);
		ck_assert_ptr_nonnull(op);
		const cJSON *resps = cJSON_GetObjectItemCaseSensitive(op, "responses");
		ck_assert_msg(cJSON_IsObject(resps), "%s %s has no responses", rt->method,
		              rt->pattern);
		int want[600];
		expected(rt, want);
		for (int code = 100; code < 600; code++) {
			char key[16];
			snprintf(key, sizeof key, "%d", code);
			const cJSON *r = cJSON_GetObjectItemCaseSensitive(resps, key);
			ck_assert_msg(!want[code] || r, "%s %s does not list %d", rt->method, rt->pattern,
			              code);
			ck_assert_msg(want[code] || !r, "%s %s lists %d, which it never answers",
			              rt->method, rt->pattern, code);
			if (!r)
				continue;
			const cJSON *body = deref(doc, r);
			ck_assert_msg(body != NULL, "%s %s: %d's $ref does not resolve", rt->method,
			              rt->pattern, code);
			ck_assert_msg(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "description")),
			              "%s %s: %d has no description", rt->method, rt->pattern, code);
			if (code < 400)
				continue;
			const cJSON *ct = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(body, "content"), "application/problem+json");
			const cJSON *schema = cJSON_GetObjectItemCaseSensitive(ct, "schema");
			const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
			ck_assert_msg(cJSON_IsString(ref) &&
			              !strcmp(ref->valuestring, "#/components/schemas/Problem"),
			              "%s %s: %d is not an application/problem+json Problem", rt->method,
			              rt->pattern, code);
			if (code == 429)
				ck_assert_msg(cJSON_GetObjectItemCaseSensitive(
				                  cJSON_GetObjectItemCaseSensitive(body, "headers"),
				                  "Retry-After") != NULL,
				              "%s %s: 429 without Retry-After", rt->method, rt->pattern);
		}
	}
	cJSON_Delete(doc);
}
END_TEST

/* ---------------------------------------------------------------- refs */

static int check_refs(const cJSON *doc, const cJSON *o, int *n)
{
	int bad = 0;
	for (const cJSON *c = o->child; c; c = c->next) {
		if (c->string && !strcmp(c->string, "$ref")) {
			(*n)++;
			if (!cJSON_IsString(c) || !resolve(doc, c->valuestring)) {
				fprintf(stderr, "unresolved $ref: %s\n",
				        cJSON_IsString(c) ? c->valuestring : "(not a string)");
				bad++;
			}
		}
		bad += check_refs(doc, c, n);
	}
	return bad;
}

START_TEST(test_every_ref_resolves)
{
	cJSON *doc = load_doc();
	int n = 0;
	ck_assert_int_eq(check_refs(doc, doc, &n), 0);
	ck_assert_int_gt(n, 20);
	/* and the pointer walk is not vacuous */
	ck_assert_ptr_null(resolve(doc, "#/components/schemas/NoSuchThing"));
	ck_assert_ptr_nonnull(resolve(doc, "#/components/schemas/Problem"));
	cJSON_Delete(doc);
}
END_TEST

/* ---------------------------------------------------------------- params */

/* The string member key of o, or "". */
static const char *str(const cJSON *o, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
	return v ? v : "";
}

/* The parameter named name in `in` of a list, or NULL. */
static const cJSON *param(const cJSON *doc, const cJSON *list, const char *name, const char *in)
{
	const cJSON *p;
	cJSON_ArrayForEach(p, list) {
		const cJSON *q = deref(doc, p);
		if (!strcmp(str(q, "name"), name) && !strcmp(str(q, "in"), in))
			return q;
	}
	return NULL;
}

START_TEST(test_path_parameters_and_open_routes)
{
	cJSON *doc = load_doc();
	for (int i = 0; i < router_count; i++) {
		const route *rt = &router_table[i];
		const cJSON *pi = path_item(doc, rt->pattern);
		const cJSON *op = operation(doc, rt);
		ck_assert_ptr_nonnull(op);
		/* the captures: router "{ds}" is the document's "{<name>}" */
		const char *rp = strchr(rt->pattern, '{'), *dp = strchr(pi->string, '{');
		ck_assert_int_eq(rp != NULL, dp != NULL);
		if (rp) {
			char prefix[16], name[64], pat[64];
			snprintf(prefix, sizeof prefix, "%.*s", (int)strcspn(rp + 1, "}"), rp + 1);
			snprintf(name, sizeof name, "%.*s", (int)strcspn(dp + 1, "}"), dp + 1);
			snprintf(pat, sizeof pat, "^%s_[0-9a-f]{16}$", prefix);
			const cJSON *p = param(doc, cJSON_GetObjectItemCaseSensitive(op, "parameters"),
			                       name, "path");
			if (!p)
				p = param(doc, cJSON_GetObjectItemCaseSensitive(pi, "parameters"), name,
				          "path");
			ck_assert_msg(p != NULL, "%s %s: no path parameter %s", rt->method, pi->string,
			              name);
			ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "required")));
			const char *sp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(p, "schema"), "pattern"));
			ck_assert_msg(sp && !strcmp(sp, pat), "%s %s: %s's pattern is %s, not %s",
			              rt->method, pi->string, name, sp ? sp : "(none)", pat);
		}
		/* open routes say they need no key; the others keep the default */
		const cJSON *sec = cJSON_GetObjectItemCaseSensitive(op, "security");
		if (rt->open)
			ck_assert_msg(cJSON_IsArray(sec) && cJSON_GetArraySize(sec) == 0,
			              "%s %s is open: it needs \"security\": []", rt->method, rt->pattern);
		else
			ck_assert_msg(!sec || cJSON_GetArraySize(sec) > 0,
			              "%s %s needs the key but is documented as open", rt->method,
			              rt->pattern);
	}
	cJSON_Delete(doc);
}
END_TEST

/* ---------------------------------------------------------------- defaults */

static const cJSON *schema(const cJSON *doc, const char *name)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "components"),
		                                 "schemas"),
		name);
	ck_assert_msg(s != NULL, "no schema %s", name);
	return s;
}

static const cJSON *prop(const cJSON *doc, const cJSON *s, const char *name)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(deref(doc, s), "properties"), name);
	return p ? deref(doc, p) : NULL;
}

/* Each field of `filled` (the server's defaults) but the skipped ones is a
 * property of s with that default. */
static void check_defaults(const cJSON *doc, const cJSON *s, const cJSON *filled,
                           const char *const *skip, const char *where)
{
	ck_assert_msg(cJSON_IsObject(filled), "%s: nothing filled in", where);
	const cJSON *f;
	cJSON_ArrayForEach(f, filled) {
		int skipped = 0;
		for (int k = 0; skip && skip[k]; k++)
			skipped |= !strcmp(skip[k], f->string);
		if (skipped)
			continue;
		const cJSON *p = prop(doc, s, f->string);
		ck_assert_msg(p != NULL, "%s: %s is not documented", where, f->string);
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(p, "default");
		char *got = cJSON_PrintUnformatted(f);
		char *doc_d = d ? cJSON_PrintUnformatted(d) : NULL;
		ck_assert_msg(d && cJSON_Compare(d, f, 1), "%s: %s defaults to %s, documented %s",
		              where, f->string, got, doc_d ? doc_d : "(no default)");
		free(got);
		free(doc_d);
	}
}

/* The stored config of a job body (a JSON text without model and dataset). */
static cJSON *filled_config(const char *extra)
{
	char body[1024];
	snprintf(body, sizeof body,
	         "{\"model\":\"mdl_0123456789abcdef\",\"dataset\":\"ds_0123456789abcdef\"%s%s}",
	         extra[0] ? "," : "", extra);
	cJSON *j = cJSON_Parse(body);
	ck_assert_ptr_nonnull(j);
	nn_train_config cfg;
	api_job_refs refs;
	api_err e = API_ERR_INIT;
	api_limits lim = api_limits_default();
	ck_assert_msg(api_train_config_from_json(j, &lim, &cfg, &refs, &e) == 0, "%s: %s", body,
	              e.detail);
	cJSON *out = api_train_config_to_json(&cfg, &refs);
	ck_assert_ptr_nonnull(out);
	api_job_refs_free(&refs);
	cJSON_Delete(j);
	return out;
}

START_TEST(test_job_defaults_are_the_servers)
{
	cJSON *doc = load_doc();
	const cJSON *jr = schema(doc, "JobRequest");
	static const char *const top_skip[] = { "model", "dataset", NULL };
	cJSON *c = filled_config("");
	check_defaults(doc, jr, c, top_skip, "job");
	/* the brief's numbers, to be sure the comparison above is not vacuous */
	ck_assert_int_eq((int)cJSON_GetObjectItem(c, "epochs")->valuedouble, 10);
	ck_assert_int_eq((int)cJSON_GetObjectItem(c, "batch_size")->valuedouble, 32);
	ck_assert_int_eq((int)cJSON_GetObjectItem(c, "log_every_steps")->valuedouble, 10);
	ck_assert_int_eq((int)cJSON_GetObjectItem(c, "checkpoint_every_epochs")->valuedouble, 1);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(c, "standardize")));
	ck_assert_str_eq(cJSON_GetObjectItem(c, "batch_norm_stats")->valuestring, "population");
	cJSON_Delete(c);

	/* the optimizers' own fields; lr is 0.01 but 0.001 for adam and adamw */
	static const char *const opts[] = { "sgd", "momentum", "nesterov", "adagrad", "rmsprop",
	                                    "adam", "adamw" };
	const cJSON *opt = prop(doc, jr, "optimizer");
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		char extra[128], where[64];
		snprintf(extra, sizeof extra, "\"optimizer\":{\"type\":\"%s\"}", opts[i]);
		snprintf(where, sizeof where, "optimizer %s", opts[i]);
		c = filled_config(extra);
		const cJSON *o = cJSON_GetObjectItem(c, "optimizer");
		int adam = !strncmp(opts[i], "adam", 4), adagrad = !strcmp(opts[i], "adagrad");
		static const char *const skip_type[] = { "type", NULL };
		static const char *const skip_lr[] = { "type", "lr", NULL };
		static const char *const skip_eps[] = { "type", "eps", NULL };
		check_defaults(doc, opt, o, adam ? skip_lr : adagrad ? skip_eps : skip_type, where);
		if (adam) {
			ck_assert_double_eq_tol(cJSON_GetObjectItem(o, "lr")->valuedouble, 0.001, 1e-12);
			const char *desc = str(prop(doc, opt, "lr"), "description");
			ck_assert_msg(strstr(desc, "0.001") && strstr(desc, "adam"),
			              "optimizer.lr's description must state adam's 0.001");
		}
		if (adagrad) {
			ck_assert_double_eq_tol(cJSON_GetObjectItem(o, "eps")->valuedouble, 1e-10, 1e-20);
			const char *desc = str(prop(doc, opt, "eps"), "description");
			ck_assert_msg(strstr(desc, "1e-10") && strstr(desc, "adagrad"),
			              "optimizer.eps's description must state adagrad's 1e-10");
		}
		cJSON_Delete(c);
	}

	/* the schedules' fields (cyclical's bounds are required, not defaulted) */
	static const char *const scheds[] = { "constant", "step", "exponential", "polynomial",
	                                      "cosine" };
	const cJSON *sch = prop(doc, jr, "schedule");
	static const char *const skip_type[] = { "type", NULL };
	for (size_t i = 0; i < sizeof scheds / sizeof scheds[0]; i++) {
		char extra[128], where[64];
		snprintf(extra, sizeof extra, "\"schedule\":{\"type\":\"%s\"}", scheds[i]);
		snprintf(where, sizeof where, "schedule %s", scheds[i]);
		c = filled_config(extra);
		check_defaults(doc, sch, cJSON_GetObjectItem(c, "schedule"), skip_type, where);
		cJSON_Delete(c);
	}
	c = filled_config("\"schedule\":{\"type\":\"cyclical\",\"min_lr\":0.001,\"max_lr\":0.1}");
	static const char *const skip_bounds[] = { "type", "min_lr", "max_lr", NULL };
	check_defaults(doc, sch, cJSON_GetObjectItem(c, "schedule"), skip_bounds,
	               "schedule cyclical");
	cJSON_Delete(c);

	/* the optional blocks, switched on with nothing but what they need */
	c = filled_config("\"validation\":{\"fraction\":0.25},\"early_stopping\":{},\"averaging\":{\"type\":\"ema\"},"
	                  "\"sparsity\":{\"max_nonzero\":10},\"augment\":{}");
	check_defaults(doc, prop(doc, jr, "early_stopping"), cJSON_GetObjectItem(c, "early_stopping"),
	               NULL, "early_stopping");
	check_defaults(doc, prop(doc, jr, "averaging"), cJSON_GetObjectItem(c, "averaging"),
	               skip_type, "averaging");
	static const char *const skip_nz[] = { "max_nonzero", NULL };
	check_defaults(doc, prop(doc, jr, "sparsity"), cJSON_GetObjectItem(c, "sparsity"), skip_nz,
	               "sparsity");
	check_defaults(doc, prop(doc, jr, "augment"), cJSON_GetObjectItem(c, "augment"), NULL,
	               "augment");
	cJSON_Delete(c);

	/* the documented bounds are the server's */
	api_limits lim = api_limits_default();
	const cJSON *mx = cJSON_GetObjectItem(prop(doc, jr, "epochs"), "maximum");
	ck_assert_msg(cJSON_IsNumber(mx) && mx->valuedouble == lim.max_epochs, "epochs.maximum");
	mx = cJSON_GetObjectItem(prop(doc, jr, "batch_size"), "maximum");
	ck_assert_msg(cJSON_IsNumber(mx) && mx->valuedouble == lim.max_batch, "batch_size.maximum");
	cJSON_Delete(doc);
}
END_TEST

/* A model spec as stored, or NULL when the server refuses it. */
static cJSON *filled_spec(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	ck_assert_ptr_nonnull(j);
	nn_model_spec s;
	char *name = NULL;
	api_err e = API_ERR_INIT;
	api_limits lim = api_limits_default();
	cJSON *out = NULL;
	if (api_model_spec_from_json(j, &lim, &s, &name, &e) == 0) {
		out = api_model_spec_to_json(&s);
		ck_assert_ptr_nonnull(out);
		nn_layers_free(s.layers, s.n_layers);
	}
	free(name);
	cJSON_Delete(j);
	return out;
}

START_TEST(test_model_defaults_and_limits_are_the_servers)
{
	cJSON *doc = load_doc();
	const cJSON *ms = schema(doc, "ModelSpec"), *ls = schema(doc, "Layer");
	cJSON *m = filled_spec(
		"{\"task\":\"classification\",\"inputs\":3,\"outputs\":2,\"layers\":["
		"{\"type\":\"dense\",\"units\":4},"
		"{\"type\":\"dense\",\"units\":4,\"init\":\"normal\"},"
		"{\"type\":\"dense\",\"units\":4,\"init\":\"uniform\"},"
		"{\"type\":\"activation\",\"function\":\"relu\"},"
		"{\"type\":\"batch_norm\"},{\"type\":\"dropout\"},"
		"{\"type\":\"residual\",\"layers\":[{\"type\":\"dense\",\"units\":4}]}]}");
	ck_assert_ptr_nonnull(m);
	static const char *const top_skip[] = { "task", "inputs", "outputs", "layers", "name",
	                                        NULL };
	check_defaults(doc, ms, m, top_skip, "model");
	/* (layers 1 and 2 set their init; the others show its default) */
	static const char *const layer_skip[] = { "type", "units", "function", "layers", NULL };
	static const char *const layer_skip_init[] = { "type", "units", "init", NULL };
	const cJSON *l;
	int n = 0;
	cJSON_ArrayForEach(l, cJSON_GetObjectItem(m, "layers")) {
		char where[32];
		snprintf(where, sizeof where, "layers[%d]", n);
		check_defaults(doc, ls, l, n == 1 || n == 2 ? layer_skip_init : layer_skip, where);
		n++;
	}
	ck_assert_int_ge(n, 7);
	const cJSON *l1 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "layers"), 1);
	ck_assert_double_eq_tol(cJSON_GetObjectItem(l1, "std")->valuedouble, 0.01, 1e-9);
	const cJSON *l5 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "layers"), 5);
	ck_assert_double_eq_tol(cJSON_GetObjectItem(l5, "rate")->valuedouble, 0.5, 1e-9);
	cJSON_Delete(m);

	/* alpha: 0.01 for leaky_relu, 1 for elu */
	m = filled_spec("{\"task\":\"regression\",\"inputs\":3,\"outputs\":1,\"layers\":["
	                "{\"type\":\"activation\",\"function\":\"leaky_relu\"},"
	                "{\"type\":\"activation\",\"function\":\"elu\"}]}");
	ck_assert_ptr_nonnull(m);
	const cJSON *alpha = prop(doc, ls, "alpha");
	const cJSON *a0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "layers"), 0),
	                                      "alpha");
	ck_assert(cJSON_Compare(cJSON_GetObjectItem(alpha, "default"), a0, 1));
	const char *desc = str(alpha, "description");
	ck_assert_msg(strstr(desc, "elu") && strstr(desc, "1"),
	              "Layer.alpha's description must state elu's default");
	cJSON_Delete(m);

	/* the limits: x-limits against api_limits_default() and the server */
	api_limits lim = api_limits_default();
	const cJSON *xl = cJSON_GetObjectItem(ms, "x-limits");
	ck_assert_msg(cJSON_IsObject(xl), "ModelSpec needs x-limits");
	ck_assert_double_eq(cJSON_GetObjectItem(xl, "max_residual_depth")->valuedouble,
	                    lim.max_depth);
	ck_assert_double_eq(cJSON_GetObjectItem(xl, "max_layers_per_list")->valuedouble,
	                    lim.max_layers);
	ck_assert_double_eq(cJSON_GetObjectItem(xl, "max_parameters")->valuedouble,
	                    (double)lim.max_params);
	ck_assert_double_eq(cJSON_GetObjectItem(xl, "max_units")->valuedouble, lim.max_units);
	const cJSON *u = cJSON_GetObjectItem(prop(doc, ls, "units"), "maximum");
	ck_assert(cJSON_IsNumber(u) && u->valuedouble == lim.max_units);
	/* total layers: the largest documented count passes, one more fails */
	int total = (int)cJSON_GetObjectItem(xl, "max_layers_total")->valuedouble;
	ck_assert_int_eq(total, 4096);
	ck_assert_int_eq(total % 16, 0);
	int per = total / 16 - 1;    /* 16 blocks of `per` children: `total` in all */
	ck_assert_int_le(per, lim.max_layers);
	for (int extra = 0; extra <= 1; extra++) {
		size_t cap = (size_t)(total + extra) * 24 + 256, len = 0;
		char *t = malloc(cap);
		len += (size_t)snprintf(t + len, cap - len,
		                        "{\"task\":\"regression\",\"inputs\":1,\"outputs\":1,\"layers\":[");
		for (int b = 0; b < 16; b++) {
			len += (size_t)snprintf(t + len, cap - len, "%s{\"type\":\"residual\",\"layers\":[",
			                        b ? "," : "");
			for (int k = 0; k < per; k++)
				len += (size_t)snprintf(t + len, cap - len, "%s{\"type\":\"dropout\"}",
				                        k ? "," : "");
			len += (size_t)snprintf(t + len, cap - len, "]}");
		}
		if (extra)
			len += (size_t)snprintf(t + len, cap - len, ",{\"type\":\"dropout\"}");
		snprintf(t + len, cap - len, "]}");
		m = filled_spec(t);
		ck_assert_msg((m != NULL) == (extra == 0), "%d layers in all %s", total + extra,
		              m ? "accepted" : "refused");
		cJSON_Delete(m);
		free(t);
	}
	/* a classifier needs the documented number of outputs */
	int minc = (int)cJSON_GetObjectItem(xl, "min_classification_outputs")->valuedouble;
	ck_assert_int_eq(minc, 2);
	char t[160];
	snprintf(t, sizeof t, "{\"task\":\"classification\",\"inputs\":2,\"outputs\":%d}", minc - 1);
	ck_assert_ptr_null(filled_spec(t));
	snprintf(t, sizeof t, "{\"task\":\"classification\",\"inputs\":2,\"outputs\":%d}", minc);
	m = filled_spec(t);
	ck_assert_ptr_nonnull(m);
	cJSON_Delete(m);

	/* the residual projection's place in the weights */
	const cJSON *w = schema(doc, "Weights");
	const cJSON *items = cJSON_GetObjectItem(prop(doc, w, "layers"), "items");
	const cJSON *proj = prop(doc, items, "projection");
	ck_assert_ptr_nonnull(proj);
	ck_assert_ptr_nonnull(prop(doc, proj, "weight"));
	cJSON_Delete(doc);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("openapi");
	TCase *t = tcase_create("openapi");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_every_route_of_the_router_is_documented);
	tcase_add_test(t, test_every_documented_operation_is_routed);
	tcase_add_test(t, test_operations_list_their_replies_and_problems);
	tcase_add_test(t, test_every_ref_resolves);
	tcase_add_test(t, test_path_parameters_and_open_routes);
	tcase_add_test(t, test_job_defaults_are_the_servers);
	tcase_add_test(t, test_model_defaults_and_limits_are_the_servers);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
