/*
 * harness.c - starting, stopping and talking to a real nnd for the
 * integration tests (see harness.h). The daemon's stderr goes to a log file
 * in the temporary directory; its first line carries the bound port.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

int log_has(const nnd *d, const char *needle)
{
	FILE *f = fopen(d->log, "r");
	char line[2048];
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		found |= strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

int log_within(const nnd *d, const char *needle, int ms)
{
	for (int waited = 0;; waited += 10) {
		if (log_has(d, needle))
			return 1;
		if (waited >= ms)
			return 0;
		sleep_ms(10);
	}
}

const char *shared_dir(void)
{
	const char *s = getenv("NND_SHARED");
	return s && *s ? s : "../shared";
}

/* $NND_TEST_STORE with "@ID@" replaced by "t_" and the lowercase letters
 * and digits of d's directory name (malloc'd). */
static char *store_flags(const nnd *d)
{
	const char *t = getenv("NND_TEST_STORE");
	char id[64] = "t_";
	size_t k = 2;
	for (const char *c = strrchr(d->dir, '-') ? strrchr(d->dir, '-') + 1 : d->dir;
	     *c && k + 1 < sizeof id; c++)
		if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))
			id[k++] = *c;
		else if (*c >= 'A' && *c <= 'Z')
			id[k++] = (char)(*c - 'A' + 'a');
	id[k] = '\0';
	size_t cap = strlen(t) * 2 + 256, o = 0;
	char *out = malloc(cap);
	while (out && *t && o + 70 < cap) {
		if (strncmp(t, "@ID@", 4) == 0) {
			o += (size_t)snprintf(out + o, cap - o, "%s", id);
			t += 4;
		} else {
			out[o++] = *t++;
		}
	}
	if (out)
		out[o] = '\0';
	return out;
}

static int spawn(nnd *d)
{
	const char *bin = getenv("NND_BIN");
	char path[512];
	snprintf(path, sizeof path, "%s/nnd", bin && *bin ? bin : "bin");
	unlink(d->log);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		if (d->gid && (setgroups(0, NULL) < 0 || setgid(d->gid) < 0))
			_exit(126);
		if (d->uid && setuid(d->uid) < 0)
			_exit(126);
		/* a test that fails (check ends its process) takes its daemons
		 * with it: none is left training, or holding the store's locks,
		 * while the next suites run (after setuid, which clears it) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(126);
		char *argv[64];
		int n = 0;
		/* NND_WRAP: a prefix command (its words split on spaces) */
		char *wrap = getenv("NND_WRAP") ? strdup(getenv("NND_WRAP")) : NULL;
		for (char *w = wrap ? strtok(wrap, " ") : NULL; w && n < 24; w = strtok(NULL, " "))
			argv[n++] = w;
		const char *exe = n ? argv[0] : path;
		argv[n++] = path;
		argv[n++] = "--listen";
		argv[n++] = "127.0.0.1:0";
		argv[n++] = "--data-dir";
		argv[n++] = d->data;
		for (int i = 0; i < d->nargs && n < 62; i++)
			argv[n++] = d->args[i];
		/* NND_TEST_STORE: more flags (split on spaces), "@ID@" in them
		 * replaced by a name unique to this daemon's directory, e.g.
		 * "--store postgresql:///nnd?host=/tmp/pg&options=-csearch_path%3D@ID@"
		 * (tests/pg/run-pg.sh): a fresh store per test, kept across
		 * restarts like the data directory */
		char *extra = getenv("NND_TEST_STORE") ? store_flags(d) : NULL;
		for (char *w = extra ? strtok(extra, " ") : NULL; w && n < 62; w = strtok(NULL, " "))
			argv[n++] = w;
		argv[n] = NULL;
		execvp(exe, argv);
		_exit(127);
	}
	d->pid = pid;
	d->port = 0;
	/* the first line of the log: "listening on 127.0.0.1:PORT" (a
	 * wrapper such as valgrind may take a while to get there) */
	int tries = getenv("NND_WRAP") ? 30000 : 3000;
	for (int i = 0; i < tries && !d->port; i++) {
		FILE *f = fopen(d->log, "r");
		char line[256];
		if (f && fgets(line, sizeof line, f) && strchr(line, '\n')) {
			const char *c = strrchr(line, ':');
			if (strncmp(line, "listening on ", 13) == 0 && c)
				d->port = atoi(c + 1);
			else {
				fclose(f);
				return -1;
			}
		}
		if (f)
			fclose(f);
		int st;
		if (!d->port && waitpid(pid, &st, WNOHANG) == pid) {
			d->pid = 0;
			return -1;
		}
		if (!d->port)
			sleep_ms(10);
	}
	if (!d->port)
		return -1;
	for (int i = 0; i < tries; i++) {
		http_resp r;
		if (http_do_auth(d, "GET", "/readyz", NULL, NULL, 0, "", &r) == 200) {
			resp_free(&r);
			return 0;
		}
		resp_free(&r);
		sleep_ms(10);
	}
	return -1;
}

static int start(nnd *d, const char *const *flags, uid_t uid, gid_t gid)
{
	char key[128];
	char cainfo[256];
	snprintf(key, sizeof key, "%s", d->key);
	snprintf(cainfo, sizeof cainfo, "%s", d->cainfo);
	memset(d, 0, sizeof *d);
	snprintf(d->key, sizeof d->key, "%s", key);
	snprintf(d->cainfo, sizeof d->cainfo, "%s", cainfo);
	snprintf(d->dir, sizeof d->dir, "/tmp/nnd-itest-XXXXXX");
	if (!mkdtemp(d->dir))
		return -1;
	snprintf(d->data, sizeof d->data, "%s/data", d->dir);
	snprintf(d->log, sizeof d->log, "%s/nnd.log", d->dir);
	for (int i = 0; flags && flags[i] && i < 8; i++) {
		snprintf(d->args[i], sizeof d->args[i], "%s", flags[i]);
		d->nargs++;
	}
	static int curl_ready;
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = 1;
	}
	d->uid = uid;
	d->gid = gid;
	if ((uid || gid) && chown(d->dir, uid, gid) < 0)
		return -1;
	return spawn(d);
}

int nnd_start(nnd *d, const char *const *flags)
{
	return start(d, flags, 0, 0);
}

int nnd_start_as(nnd *d, const char *const *flags, uid_t uid, gid_t gid)
{
	return start(d, flags, uid, gid);
}

int nnd_restart(nnd *d)
{
	return spawn(d);
}

int nnd_wait(nnd *d, int timeout_s)
{
	for (int i = 0; d->pid > 0 && i < timeout_s * 100; i++) {
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		sleep_ms(10);
	}
	return -1;
}

int nnd_stop(nnd *d, int timeout_s)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (getenv("NND_WRAP"))
		timeout_s *= 6;   /* valgrind's exit (the leak check) takes long */
	int st = nnd_wait(d, timeout_s);
	if (st >= 0)
		return st;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
	return -1;
}

void nnd_kill9(nnd *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

int nnd_cleanup(nnd *d)
{
	int status = 0;
	if (d->pid > 0)
		status = nnd_stop(d, 10);
	if (d->dir[0] && strncmp(d->dir, "/tmp/nnd-itest-", 15) == 0) {
		char cmd[600];
		if (status != 0 || getenv("NND_KEEP_TMP")) {
			fprintf(stderr, "kept %s (exit status %d)\n", d->dir, status);
			return status;
		}
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", d->dir);
	}
	return status;
}

/* ---------------------------------------------------------------- http */

typedef struct sink {
	char *p;
	size_t len, cap;
} sink;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	sink *s = ud;
	size_t n = size * nmemb;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *p = realloc(s->p, cap);
		if (!p)
			return 0;
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, ptr, n);
	s->len += n;
	s->p[s->len] = '\0';
	return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	while (*v == ' ')
		v++;
	size_t vl = (size_t)(line + n - v);
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
		vl--;
	if (vl >= len)
		vl = len - 1;
	memcpy(out, v, vl);
	out[vl] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
	http_resp *r = ud;
	size_t n = size * nitems;
	header_value(buf, n, "Content-Type", r->ctype, sizeof r->ctype);
	header_value(buf, n, "Location", r->location, sizeof r->location);
	header_value(buf, n, "Allow", r->allow, sizeof r->allow);
	header_value(buf, n, "Retry-After", r->retry_after, sizeof r->retry_after);
	header_value(buf, n, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
	return n;
}

void resp_free(http_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* One easy handle per thread, kept so requests reuse the connection;
 * cleaned up when the thread exits (key destructor). */
static __thread CURL *tl_curl;
static pthread_key_t curl_key;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_release(void *h)
{
	curl_easy_cleanup(h);
}

static void curl_key_init(void)
{
	pthread_key_create(&curl_key, curl_release);
}

static CURL *thread_curl(void)
{
	if (!tl_curl) {
		pthread_once(&curl_once, curl_key_init);
		tl_curl = curl_easy_init();
		pthread_setspecific(curl_key, tl_curl);
	}
	return tl_curl;
}

static long perform(nnd *d, const char *method, const char *path, struct curl_slist *hdrs,
                    const char *body, size_t len, curl_mime *mime, http_resp *out)
{
	memset(out, 0, sizeof *out);
	CURL *c = thread_curl();
	curl_easy_reset(c);
	char url[512];
	snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", d->cainfo[0] ? "https" : "http", d->port,
	         path);
	if (d->cainfo[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, d->cainfo);
	sink s = { NULL, 0, 0 };
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (mime) {
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	} else if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (strcmp(method, "GET") == 0 && !body && !mime)
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	out->status = status;
	out->body = s.p ? s.p : strdup("");
	out->len = s.len;
	return status;
}

long http_do_auth(nnd *d, const char *method, const char *path, const char *ctype,
                  const char *body, size_t len, const char *bearer, http_resp *out)
{
	struct curl_slist *h = NULL;
	char line[300];
	if (ctype) {
		snprintf(line, sizeof line, "Content-Type: %s", ctype);
		h = curl_slist_append(h, line);
	}
	const char *key = bearer ? bearer : d->key;
	if (key && key[0]) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", key);
		h = curl_slist_append(h, line);
	}
	if (body && !ctype)
		h = curl_slist_append(h, "Content-Type:");
	return perform(d, method, path, h, body, len, NULL, out);
}

cJSON *http_post_text(nnd *d, const char *path, const char *body, long *status)
{
	http_resp r;
	*status = http_do(d, "POST", path, "application/json", body, strlen(body), &r);
	cJSON *j = cJSON_Parse(r.body ? r.body : "");
	resp_free(&r);
	return j;
}

long http_get_accept(nnd *d, const char *path, const char *accept, http_resp *out)
{
	struct curl_slist *h = NULL;
	char line[300];
	snprintf(line, sizeof line, "Accept: %s", accept);
	h = curl_slist_append(h, line);
	if (d->key[0]) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", d->key);
		h = curl_slist_append(h, line);
	}
	return perform(d, "GET", path, h, NULL, 0, NULL, out);
}

long http_do(nnd *d, const char *method, const char *path, const char *ctype,
             const char *body, size_t len, http_resp *out)
{
	return http_do_auth(d, method, path, ctype, body, len, NULL, out);
}

cJSON *http_json(nnd *d, const char *method, const char *path, const cJSON *body,
                 long *status)
{
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	http_resp r;
	long st = http_do(d, method, path, text ? "application/json" : NULL, text,
	                  text ? strlen(text) : 0, &r);
	free(text);
	if (status)
		*status = st;
	cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
	resp_free(&r);
	return j;
}

long http_multipart(nnd *d, const char *path, const char *images, size_t ilen,
                    const char *labels, size_t llen, http_resp *out)
{
	curl_mime *m = curl_mime_init(thread_curl());
	curl_mimepart *p = curl_mime_addpart(m);
	curl_mime_name(p, "images");
	curl_mime_filename(p, "images.idx");
	curl_mime_data(p, images, ilen);
	p = curl_mime_addpart(m);
	curl_mime_name(p, "labels");
	curl_mime_filename(p, "labels.idx");
	curl_mime_data(p, labels, llen);
	struct curl_slist *h = NULL;
	char line[300];
	if (d->key[0]) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", d->key);
		h = curl_slist_append(h, line);
	}
	long st = perform(d, "POST", path, h, NULL, 0, m, out);
	curl_mime_free(m);
	return st;
}

const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : -1e300;
}

cJSON *wait_job(nnd *d, const char *id, int timeout_s)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	for (int i = 0; i < timeout_s * 20; i++) {
		long st;
		cJSON *j = http_json(d, "GET", path, NULL, &st);
		const char *s = jstr(j, "state");
		if (st == 200 && (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 ||
		                  strcmp(s, "cancelled") == 0))
			return j;
		cJSON_Delete(j);
		sleep_ms(50);
	}
	return NULL;
}

char *read_stream(nnd *d, const char *path, const char *last_event_id)
{
	struct curl_slist *h = NULL;
	char line[300];
	if (last_event_id) {
		snprintf(line, sizeof line, "Last-Event-ID: %s", last_event_id);
		h = curl_slist_append(h, line);
	}
	if (d->key[0]) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", d->key);
		h = curl_slist_append(h, line);
	}
	http_resp r;
	perform(d, "GET", path, h, NULL, 0, NULL, &r);
	if (r.status != 200) {
		resp_free(&r);
		return NULL;
	}
	return r.body;
}

static void *bg_stream_run(void *arg)
{
	bg_stream *s = arg;
	s->text = read_stream(s->d, s->path, NULL);
	return NULL;
}

int bg_stream_start(bg_stream *s, nnd *d, const char *path)
{
	s->d = d;
	snprintf(s->path, sizeof s->path, "%s", path);
	s->text = NULL;
	return pthread_create(&s->th, NULL, bg_stream_run, s) == 0 ? 0 : -1;
}

char *bg_stream_join(bg_stream *s)
{
	pthread_join(s->th, NULL);
	return s->text;
}

/* ---------------------------------------------------------------- data */

static double gen_value(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return ((double)((*s >> 8) & 0xffff) / 65536.0) * 2.0 - 1.0;
}

char *gen_csv(int rows, int feats, int classes, unsigned seed)
{
	size_t cap = (size_t)rows * (size_t)(feats + 1) * 16 + 1024, n = 0;
	char *out = malloc(cap);
	for (int f = 0; f < feats; f++)
		n += (size_t)snprintf(out + n, cap - n, "f%d,", f);
	n += (size_t)snprintf(out + n, cap - n, "label\n");
	for (int r = 0; r < rows; r++) {
		int k = r % classes;
		for (int f = 0; f < feats; f++)
			n += (size_t)snprintf(out + n, cap - n, "%.4f,",
			                      gen_value(&seed) * 0.5 + (f % classes == k ? 1.5 : 0.0));
		n += (size_t)snprintf(out + n, cap - n, "c%d\n", k);
	}
	return out;
}

cJSON *gen_json(int rows, int feats, int classes, unsigned seed)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", "generated");
	cJSON_AddStringToObject(o, "task", "classification");
	cJSON *x = cJSON_AddArrayToObject(o, "x");
	cJSON *y = cJSON_AddArrayToObject(o, "y");
	for (int r = 0; r < rows; r++) {
		int k = r % classes;
		cJSON *row = cJSON_CreateArray();
		for (int f = 0; f < feats; f++)
			cJSON_AddItemToArray(row, cJSON_CreateNumber(
				gen_value(&seed) * 0.5 + (f % classes == k ? 1.5 : 0.0)));
		cJSON_AddItemToArray(x, row);
		cJSON_AddItemToArray(y, cJSON_CreateNumber(k));
	}
	return o;
}

int make_dataset_csv(nnd *d, int rows, int feats, int classes, char *ds_id)
{
	char *csv = gen_csv(rows, feats, classes, 42);
	http_resp r;
	long st = http_do(d, "POST", "/v1/datasets?name=gen", "text/csv", csv, strlen(csv), &r);
	free(csv);
	cJSON *j = cJSON_Parse(r.body);
	snprintf(ds_id, 32, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	resp_free(&r);
	return st == 201 ? 0 : -1;
}

long create_model(nnd *d, const char *spec, char *mdl_id)
{
	http_resp r;
	long st = http_do(d, "POST", "/v1/models", "application/json", spec, strlen(spec), &r);
	if (mdl_id) {
		cJSON *j = cJSON_Parse(r.body);
		snprintf(mdl_id, 32, "%s", jstr(j, "id"));
		cJSON_Delete(j);
	}
	resp_free(&r);
	return st;
}

int make_model(nnd *d, int inputs, int outputs, int hidden, int seed, char *mdl_id)
{
	char body[512];
	snprintf(body, sizeof body,
	         "{\"name\":\"m\",\"task\":\"classification\",\"inputs\":%d,\"outputs\":%d,"
	         "\"seed\":%d,\"layers\":[{\"type\":\"dense\",\"units\":%d,\"activation\":\"relu\"}]}",
	         inputs, outputs, seed, hidden);
	return create_model(d, body, mdl_id) == 201 ? 0 : -1;
}

long submit_job(nnd *d, const char *mdl, const char *ds, int epochs, int batch,
                const char *extra_json, char *job_id)
{
	char body[1024];
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":%d,\"batch_size\":%d,"
	         "\"seed\":1,\"optimizer\":{\"type\":\"adam\",\"lr\":0.01}%s%s}",
	         mdl, ds, epochs, batch, extra_json ? "," : "", extra_json ? extra_json : "");
	http_resp r;
	long st = http_do(d, "POST", "/v1/jobs", "application/json", body, strlen(body), &r);
	cJSON *j = cJSON_Parse(r.body);
	if (job_id)
		snprintf(job_id, 32, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	resp_free(&r);
	return st;
}
