/*
 * follow.c - `nnctl jobs follow` and `nnctl train --follow`: reads a job's
 * Server-Sent Events and shows them. On a terminal it keeps one progress line
 * redrawn in place with \r (epoch, bar, step, loss, validation metrics,
 * throughput, ETA) and prints a permanent line per finished epoch; otherwise
 * it prints one plain line per event, for logs and scripts. The exit status
 * says how the job ended. The server counts epochs from 0; the display counts
 * them from 1 ("epoch 10/10" is the last).
 */
#include "nnctl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct follow {
	const nc_ctx *c;
	const char *job_id;
	int tty;
	int epochs;            /* total, from the job's config (0 unknown) */
	long batch_size;       /* from the config (0 unknown) */
	double steps_per_epoch;/* estimated from the data set's rows (0 unknown) */
	double t0;             /* when the first live step arrived */
	long step0;
	int have_t0;
	long step;
	long epoch;            /* as the server counts: from 0 (shown from 1) */
	double loss, lr, val_loss, val_acc, sps;
	double last_draw;
	int drawn;             /* a progress line is on screen */
	char state[16];        /* the last state seen */
	char error[512];       /* the job's error detail, when it failed */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int term_width(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	return 80;
}

/* Reads the job's config and its data set's size to size the bar. */
static void learn_shape(struct follow *f)
{
	char path[160];
	nc_reply r = NC_REPLY_INIT;
	snprintf(path, sizeof path, "/v1/jobs/%s", f->job_id);
	if (nc_request(f->c, "GET", path, NULL, NULL, 0, &r) != 0) {
		nc_reply_release(&r);
		return;
	}
	cJSON *job = cJSON_Parse(r.body.data);
	nc_reply_release(&r);
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(job, "config");
	double e = num(cfg, "epochs"), b = num(cfg, "batch_size");
	f->epochs = isnan(e) ? 0 : (int)e;
	f->batch_size = isnan(b) ? 0 : (long)b;
	double frac = num(cJSON_GetObjectItemCaseSensitive(cfg, "validation"), "fraction");
	const char *ds = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "dataset"));
	if (ds && f->batch_size > 0) {
		snprintf(path, sizeof path, "/v1/datasets/%s", ds);
		if (nc_request(f->c, "GET", path, NULL, NULL, 0, &r) == 0) {
			cJSON *d = cJSON_Parse(r.body.data);
			double rows = num(d, "rows");
			if (!isnan(rows)) {
				if (!isnan(frac))
					rows -= floor(rows * frac);
				f->steps_per_epoch = ceil(rows / f->batch_size);
			}
			cJSON_Delete(d);
		}
		nc_reply_release(&r);
	}
	cJSON_Delete(job);
}

static double progress(const struct follow *f)
{
	if (f->epochs > 0 && f->steps_per_epoch > 0) {
		double p = f->step / (f->steps_per_epoch * f->epochs);
		return p > 1 ? 1 : p;
	}
	return NAN;
}

static void fmt_secs(char *out, size_t n, double s)
{
	if (!(s >= 0) || s > 360000)
		snprintf(out, n, "--:--");
	else if (s >= 3600)
		snprintf(out, n, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
	else
		snprintf(out, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

static void clear_line(struct follow *f)
{
	if (f->tty && f->drawn) {
		fputs("\r\033[K", stdout);
		f->drawn = 0;
	}
}

static void draw(struct follow *f, int force)
{
	double t = now();
	if (!force && t - f->last_draw < 0.1)
		return;
	f->last_draw = t;
	char line[512], bar[64], eta[32] = "--:--", rate[32] = "";
	size_t o = 0;
	double p = progress(f);
	int w = 24;
	for (int i = 0; i < w; i++)
		bar[i] = !isnan(p) && i < (int)(p * w + 0.5) ? '#' : '-';
	bar[w] = '\0';
	double sps = f->sps;
	if (f->have_t0 && t - f->t0 > 0.5 && f->batch_size > 0 && f->step > f->step0)
		sps = (f->step - f->step0) * (double)f->batch_size / (t - f->t0);
	if (!isnan(sps)) {
		if (sps >= 1e4)
			snprintf(rate, sizeof rate, "  %.1fk samples/s", sps / 1e3);
		else
			snprintf(rate, sizeof rate, "  %.0f samples/s", sps);
	}
	if (!isnan(p) && f->have_t0 && f->steps_per_epoch > 0 && f->step > f->step0) {
		double per_step = (t - f->t0) / (f->step - f->step0);
		double left = f->steps_per_epoch * f->epochs - f->step;
		fmt_secs(eta, sizeof eta, left > 0 ? left * per_step : 0);
	}
	if (f->epochs > 0)
		o += snprintf(line + o, sizeof line - o, "epoch %ld/%d", f->epoch + 1, f->epochs);
	else
		o += snprintf(line + o, sizeof line - o, "epoch %ld", f->epoch + 1);
	if (!isnan(p))
		o += snprintf(line + o, sizeof line - o, " [%s] %3.0f%%", bar, p * 100);
	o += snprintf(line + o, sizeof line - o, "  step %ld", f->step);
	if (!isnan(f->loss))
		o += snprintf(line + o, sizeof line - o, "  loss %.4f", f->loss);
	if (!isnan(f->val_loss))
		o += snprintf(line + o, sizeof line - o, "  val_loss %.4f", f->val_loss);
	if (!isnan(f->val_acc))
		o += snprintf(line + o, sizeof line - o, "  val_acc %.4f", f->val_acc);
	if (o < sizeof line)
		snprintf(line + o, sizeof line - o, "%s  ETA %s", rate, eta);
	int tw = term_width() - 1;
	if ((int)strlen(line) > tw)
		line[tw] = '\0';
	fputs("\r\033[K", stdout);
	fputs(line, stdout);
	fflush(stdout);
	f->drawn = 1;
}

static void print_epoch(struct follow *f, const cJSON *d)
{
	char buf[300];
	size_t o = 0;
	if (f->epochs > 0)
		o += snprintf(buf + o, sizeof buf - o, "epoch %ld/%d", f->epoch + 1, f->epochs);
	else
		o += snprintf(buf + o, sizeof buf - o, "epoch %ld", f->epoch + 1);
	static const char *keys[] = { "train_loss", "val_loss", "val_accuracy", "lr" };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		double v = num(d, keys[i]);
		if (!isnan(v))
			o += snprintf(buf + o, sizeof buf - o, "  %s %.6g", keys[i], v);
		if (o >= sizeof buf)
			break;
	}
	double s = num(d, "seconds");
	if (!isnan(s) && o < sizeof buf)
		o += snprintf(buf + o, sizeof buf - o, "  %.2fs", s);
	double sps = num(d, "samples_per_second");
	if (!isnan(sps) && o < sizeof buf)
		snprintf(buf + o, sizeof buf - o, "  %.0f samples/s", sps);
	clear_line(f);
	puts(buf);
}

static int on_event(const char *event, const char *id, const char *data, void *user)
{
	struct follow *f = user;
	if (f->c->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "event", event);
		if (id && *id)
			cJSON_AddStringToObject(o, "id", id);
		cJSON *d = cJSON_Parse(data);
		cJSON_AddItemToObject(o, "data", d ? d : cJSON_CreateString(data));
		char *s = cJSON_PrintUnformatted(o);
		if (s)
			puts(s);
		free(s);
		cJSON_Delete(o);
	}
	cJSON *d = cJSON_Parse(data);
	if (!d)
		return 0;
	int stop = 0;
	if (strcmp(event, "step") == 0) {
		double v = num(d, "step");
		if (!isnan(v))
			f->step = (long)v;
		v = num(d, "epoch");
		if (!isnan(v))
			f->epoch = (long)v;
		f->loss = num(d, "loss");
		f->lr = num(d, "lr");
		if (!f->have_t0) {
			f->have_t0 = 1;
			f->t0 = now();
			f->step0 = f->step;
		}
		if (!f->c->json) {
			if (f->tty)
				draw(f, 0);
			else
				printf("step %ld  epoch %ld  loss %.6g  lr %.6g\n", f->step, f->epoch + 1,
				       f->loss, f->lr);
		}
	} else if (strcmp(event, "epoch") == 0) {
		double v = num(d, "epoch");
		if (!isnan(v))
			f->epoch = (long)v;
		v = num(d, "val_loss");
		if (!isnan(v))
			f->val_loss = v;
		v = num(d, "val_accuracy");
		if (!isnan(v))
			f->val_acc = v;
		v = num(d, "samples_per_second");
		if (!isnan(v))
			f->sps = v;
		if (!f->c->json) {
			print_epoch(f, d);
			if (f->tty)
				draw(f, 1);
		}
	} else if (strcmp(event, "state") == 0) {
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "state"));
		if (st)
			snprintf(f->state, sizeof f->state, "%s", st);
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(d, "error");
		const char *det = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "detail"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "code"));
		if (det || code)
			snprintf(f->error, sizeof f->error, "%s%s%s", code ? code : "",
			         code && det ? ": " : "", det ? det : "");
		stop = st && (!strcmp(st, "succeeded") || !strcmp(st, "failed") ||
		              !strcmp(st, "cancelled"));
		if (!f->c->json) {
			clear_line(f);
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(d, "model_version");
			if (stop && strcmp(st, "succeeded") == 0 && cJSON_IsNumber(m))
				printf("job %s %s (model version %d)\n", f->job_id, st, m->valueint);
			else
				printf("job %s %s\n", f->job_id, st ? st : "?");
		}
	}
	fflush(stdout);
	cJSON_Delete(d);
	return stop;
}

static int terminal(const char *st)
{
	return !strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled");
}

int nc_follow(const nc_ctx *c, const char *job_id)
{
	struct follow f;
	memset(&f, 0, sizeof f);
	f.c = c;
	f.job_id = job_id;
	f.tty = isatty(STDOUT_FILENO) && !c->json;
	f.loss = f.lr = f.val_loss = f.val_acc = f.sps = NAN;
	learn_shape(&f);
	char path[160], last_id[64] = "";
	snprintf(path, sizeof path, "/v1/jobs/%s/events", job_id);
	for (int tries = 0; !terminal(f.state) && tries < 4; tries++) {
		nc_reply r = NC_REPLY_INIT;
		int rc = nc_stream(c, path, last_id, on_event, &f, &r);
		if (rc != 0 && r.status >= 300) {
			clear_line(&f);
			nc_print_problem(&r);
			nc_reply_release(&r);
			return NC_ERR;
		}
		nc_reply_release(&r);
		if (!terminal(f.state)) {
			/* the stream ended early: ask the job itself */
			nc_reply jr = NC_REPLY_INIT;
			snprintf(path, sizeof path, "/v1/jobs/%s", job_id);
			if (nc_request(c, "GET", path, NULL, NULL, 0, &jr) == 0) {
				cJSON *j = cJSON_Parse(jr.body.data);
				const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "state"));
				if (st && terminal(st) && jr.body.data)
					on_event("state", last_id, jr.body.data, &f);
				cJSON_Delete(j);
			}
			nc_reply_release(&jr);
			snprintf(path, sizeof path, "/v1/jobs/%s/events", job_id);
			if (!terminal(f.state))
				sleep(1);
		}
	}
	clear_line(&f);
	fflush(stdout);
	if (!strcmp(f.state, "succeeded"))
		return NC_OK;
	if (!strcmp(f.state, "failed")) {
		fprintf(stderr, "nnctl: job %s failed%s%s\n", job_id, f.error[0] ? ": " : "", f.error);
		return NC_JOB_FAILED;
	}
	if (!strcmp(f.state, "cancelled")) {
		fprintf(stderr, "nnctl: job %s was cancelled\n", job_id);
		return NC_JOB_CANCELLED;
	}
	fprintf(stderr, "nnctl: lost the event stream of job %s before it ended\n", job_id);
	return NC_ERR;
}
