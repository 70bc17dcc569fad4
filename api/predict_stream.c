/*
 * predict_stream.c - predictions read as the body arrives (see
 * predict_stream.h): blocks of rows read by the codec and handed to
 * nn_predict as soon as they are full, or to the sink of a shared stream,
 * and each serving thread's scratch.
 *
 * Rows go into one block buffer (at most API_PREDICT_BLOCK rows, fewer
 * when the body's length says it holds fewer, so a single-row request
 * allocates a row, not a block); a full block is predicted at once into
 * the outputs, which grow with the rows. A shared stream's outputs are
 * allocated whole beforehand (the body's length bounds its rows), each
 * block writing its own rows, so that another thread may predict a block
 * while this one reads the next. Blocks are the same 256 rows from the
 * first, predicted with the same frozen scratch kind, so the outputs are
 * the same to the bit either way.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict_stream.h"

struct api_predict_stream {
	const api_backend *b;
	api_model_snap *snap;
	api_predict_kind kind;
	int binary_reply;
	int inputs, outputs;
	/* the rows not yet predicted: blk_cap rows of inputs floats */
	float *blk;
	int blk_cap, blk_rows;
	size_t blk_fill;         /* binary: bytes in blk */
	int64_t expect;          /* the rows the body may hold */
	/* the outputs: done rows predicted (or handed to the sink) so far,
	 * room for out_cap */
	float *out;
	int64_t done, out_cap;
	int64_t rows;            /* rows read */
	nn_status st;            /* the first forward failure */
	api_predict_sink sink;   /* shared: where full blocks go (block NULL: not shared) */
	api_rows_json rj;        /* JSON: where the reader is */
	int raw_records;         /* JSON for a model of typed columns: not read here */
	/* binary */
	int64_t total;           /* body bytes */
	int too_many;            /* more rows than API_PREDICT_MAX_ROWS */
	api_err *err;            /* non-finite values (NULL until one) */
	int oom;                 /* out of memory naming them */
};

/* ---- per-thread scratch */

/* ---- per-thread scratch */

typedef struct tl_scratch {
	uint64_t serial;
	nn_scratch *s;
} tl_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p)
{
	tl_scratch *t = p;
	if (t) {
		nn_scratch_free(t->s);
		free(t);
	}
}

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, scratch_destroy);
}

nn_scratch *api_predict_scratch(const api_model_snap *snap)
{
	pthread_once(&scratch_once, scratch_key_init);
	tl_scratch *t = pthread_getspecific(scratch_key);
	if (!t) {
		t = calloc(1, sizeof *t);
		if (!t)
			return NULL;
		pthread_setspecific(scratch_key, t);
	}
	if (!t->s || t->serial != snap->serial) {
		nn_scratch_free(t->s);
		t->s = nn_scratch_create_frozen(snap->model, API_PREDICT_BLOCK);
		t->serial = snap->serial;
	}
	return t->s;
}

nn_scratch *api_predict_stream_scratch_new(const api_predict_stream *ps)
{
	return nn_scratch_create_frozen(ps->snap->model, API_PREDICT_BLOCK);
}

/* ---- the stream */

api_predict_stream *api_predict_stream_new(const api_backend *b, const api_req *rq,
                                           api_predict_kind kind, int64_t expect_len,
                                           int binary_reply, api_err *e)
{
	api_model_snap *s = NULL;
	if (!b || !rq || !rq->id)
		return NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, e) < 0)
		return NULL;
	const nn_model_spec *spec = nn_model_spec_of(s->model);
	api_predict_stream *ps = calloc(1, sizeof *ps);
	if (!ps) {
		b->snap_release(b->ctx, s);
		if (e)
			api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	ps->b = b;
	ps->snap = s;
	ps->kind = kind;
	ps->binary_reply = binary_reply;
	ps->inputs = spec->inputs;
	ps->outputs = spec->outputs;
	ps->st = NN_OK;
	/* raw records: api_model_predict_general encodes them */
	ps->raw_records = kind == API_PREDICT_JSON && s->enc && !api_tab_enc_plain(s->enc);
	int64_t row_bytes = (int64_t)spec->inputs * 4;
	int64_t expect = API_PREDICT_BLOCK;
	if (expect_len >= 0) {
		/* a JSON number takes two bytes at least ("0,") */
		expect = kind == API_PREDICT_BINARY ? expect_len / row_bytes
		                                    : expect_len / (2 * (int64_t)spec->inputs) + 1;
		if (kind == API_PREDICT_BINARY && expect > 0 && expect <= API_PREDICT_MAX_ROWS &&
		    expect_len % row_bytes == 0) {
			ps->out = malloc((size_t)expect * (size_t)ps->outputs * sizeof(float));
			ps->out_cap = ps->out ? expect : 0;
		}
		if (expect < 1)
			expect = 1;
	}
	ps->expect = expect;
	ps->blk_cap = expect < API_PREDICT_BLOCK ? (int)expect : API_PREDICT_BLOCK;
	ps->blk = malloc((size_t)ps->blk_cap * (size_t)row_bytes);
	if (!ps->blk) {
		api_predict_stream_free(ps);
		if (e)
			api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	return ps;
}

void api_predict_stream_free(api_predict_stream *ps)
{
	if (!ps)
		return;
	if (ps->snap)
		ps->b->snap_release(ps->b->ctx, ps->snap);
	if (!ps->sink.block)
		free(ps->blk);   /* a shared stream's blocks are the sink's */
	free(ps->out);
	free(ps->err);
	free(ps);
}

int64_t api_predict_stream_capacity(const api_predict_stream *ps)
{
	return ps->expect;
}

size_t api_predict_stream_block_bytes(const api_predict_stream *ps)
{
	return (size_t)ps->blk_cap * (size_t)ps->inputs * sizeof(float);
}

const api_model_snap *api_predict_stream_snap(const api_predict_stream *ps)
{
	return ps->snap;
}

int api_predict_stream_share(api_predict_stream *ps, const api_predict_sink *sink,
                             float *first, int64_t rows, api_predict_text **text)
{
	*text = NULL;
	if (rows > API_PREDICT_MAX_ROWS)
		rows = API_PREDICT_MAX_ROWS;
	if (rows * ps->outputs > API_PREDICT_SHARE_MAX_OUTPUTS)
		return -1;
	if (ps->out_cap < rows) {
		float *o = malloc((size_t)rows * (size_t)ps->outputs * sizeof(float));
		if (!o)
			return -1;
		free(ps->out);
		ps->out = o;
		ps->out_cap = rows;
	}
	if (!ps->binary_reply) {
		/* some 10 bytes a number for the rows the body may hold (a JSON
		 * body holds about half as many, each number some 20 bytes) */
		int64_t hint = rows * ps->outputs * 10;
		hint = hint < ((int64_t)16 << 20) ? hint : (int64_t)16 << 20;
		if (!(*text = api_predict_text_new(ps->snap, (size_t)hint)))
			return -1;
	}
	free(ps->blk);
	ps->blk = first;
	ps->sink = *sink;
	return 0;
}

nn_status api_predict_stream_rows(api_predict_stream *ps, nn_scratch *sc, const float *x,
                                  int64_t first, int n)
{
	if (!sc)
		sc = api_predict_scratch(ps->snap);
	return sc ? nn_predict(ps->snap->model, sc, x, n, ps->out + first * ps->outputs)
	          : NN_ENOMEM;
}

void api_predict_stream_text(const api_predict_stream *ps, api_predict_text *t,
                             int64_t first, int n)
{
	api_predict_text_rows(t, ps->snap, ps->out + first * ps->outputs, first, n, ps->outputs);
}

/* Not shared: predicts n rows at x after those done. */
static void predict_rows(api_predict_stream *ps, const float *x, int n)
{
	if (n == 0 || ps->st != NN_OK)
		return;
	if (ps->done + n > ps->out_cap) {
		int64_t cap = ps->out_cap ? ps->out_cap : ps->blk_cap;
		while (cap < ps->done + n)
			cap *= 2;
		float *o = realloc(ps->out, (size_t)cap * (size_t)ps->outputs * sizeof *o);
		if (!o) {
			ps->st = NN_ENOMEM;
			return;
		}
		ps->out = o;
		ps->out_cap = cap;
	}
	ps->st = api_predict_stream_rows(ps, NULL, x, ps->done, n);
	ps->done += n;
}

/* Predicts the block's rows into the outputs, or hands them to the sink. */
static void flush(api_predict_stream *ps)
{
	int n = ps->blk_rows;
	ps->blk_rows = 0;
	ps->blk_fill = 0;
	if (n == 0)
		return;
	if (ps->sink.block) {
		ps->blk = ps->sink.block(ps->sink.ctx, ps->blk, ps->done, n);
		ps->done += n;
	} else {
		predict_rows(ps, ps->blk, n);
	}
}

void api_predict_stream_scan(api_predict_stream *ps, const char *body, size_t len)
{
	if (!ps || ps->kind != API_PREDICT_JSON || ps->raw_records)
		return;
	for (;;) {
		/* room for one more row: the request's limit, and a shared
		 * stream's outputs */
		int room = ps->rows < API_PREDICT_MAX_ROWS && !(ps->sink.block && ps->rows >= ps->out_cap);
		float *x = room ? ps->blk + (size_t)ps->blk_rows * ps->inputs : NULL;
		if (api_rows_json_next(&ps->rj, body, len, x, ps->inputs) <= 0)
			return;
		ps->rows++;
		if (++ps->blk_rows == ps->blk_cap)
			flush(ps);
	}
}

/* Binary: the n full rows in the block are read; check and predict them. */
static void binary_rows(api_predict_stream *ps, int n)
{
	if (ps->rows + n > API_PREDICT_MAX_ROWS)
		ps->too_many = 1;
	if (ps->too_many || ps->err) {
		ps->blk_fill = 0;
		return;
	}
	if (api_rows_f32(ps->blk, n, ps->inputs) < 0) {
		ps->err = calloc(1, sizeof *ps->err);
		if (!ps->err)
			ps->oom = 1;
		else
			api_rows_f32_name(ps->blk, n, ps->inputs, ps->rows, ps->err);
		ps->blk_fill = 0;
		return;
	}
	ps->blk_rows = n;
	ps->rows += n;
	flush(ps);
}

void api_predict_stream_feed(api_predict_stream *ps, const char *piece, size_t len)
{
	if (!ps || ps->kind != API_PREDICT_BINARY)
		return;
	ps->total += (int64_t)len;
	size_t cap = (size_t)ps->blk_cap * (size_t)ps->inputs * 4;
	while (len > 0) {
		size_t take = cap - ps->blk_fill;
		if (take > len)
			take = len;
		memcpy((char *)ps->blk + ps->blk_fill, piece, take);
		ps->blk_fill += take;
		piece += take;
		len -= take;
		if (ps->blk_fill == cap)
			binary_rows(ps, ps->blk_cap);
	}
}

/* The problem reply of a binary body: not whole rows (400), or the
 * non-finite values found, or no rows or too many (422). */
static void binary_problem(const api_predict_stream *ps, int bad_len, api_reply *rp)
{
	int64_t row_bytes = (int64_t)ps->inputs * 4;
	api_err *e = calloc(1, sizeof *e);
	if (!e) {
		api_reply_error(rp, NULL);   /* a 500 */
		return;
	}
	if (bad_len) {
		api_err_field(e, "body", "is %lld bytes, not a whole number of rows of %d "
		              "float32 values (%lld bytes each)", (long long)ps->total,
		              ps->inputs, (long long)row_bytes);
		api_err_set(e, 400, "malformed_body", "the body is not a whole number of "
		            "float32 rows of the model's %d inputs", ps->inputs);
	} else if (ps->err) {
		*e = *ps->err;
	} else {
		api_err_field(e, "body", "must hold 1 to %d rows of %d float32 values "
		              "(%lld bytes each); it holds %lld", API_PREDICT_MAX_ROWS,
		              ps->inputs, (long long)row_bytes, (long long)(ps->total / row_bytes));
	}
	api_reply_error(rp, e);
	free(e);
}

int api_predict_stream_close(api_predict_stream *ps, api_reply *rp)
{
	if (!ps)
		return 0;
	int64_t row_bytes = (int64_t)ps->inputs * 4;
	if (ps->kind == API_PREDICT_JSON) {
		if (ps->raw_records || !api_rows_json_done(&ps->rj) || ps->rows == 0)
			return 0;
		flush(ps);
		return 2;
	}
	if (ps->total % row_bytes == 0 && ps->blk_fill > 0)
		binary_rows(ps, (int)(ps->blk_fill / (size_t)row_bytes));
	int bad_len = ps->total % row_bytes != 0;
	if (bad_len || ps->err || ps->too_many || ps->rows == 0) {
		binary_problem(ps, bad_len, rp);
		return 1;
	}
	return 2;
}

void api_predict_stream_reply(api_predict_stream *ps, api_reply *rp, nn_status st,
                              api_predict_text *text)
{
	if (ps->st == NN_OK)
		ps->st = st;
	if (ps->oom && ps->st == NN_OK)
		ps->st = NN_ENOMEM;
	if (ps->st != NN_OK) {
		api_predict_text_free(text);
		api_err *e = calloc(1, sizeof *e);
		if (e)
			api_err_set(e, 500, "predict_failed", "prediction failed: %s",
			            nn_status_name(ps->st));
		api_reply_error(rp, e);
		free(e);
		return;
	}
	if (text) {
		/* the sink wrote the reply as it went */
		api_predict_reply_text(rp, text, ps->done);
		return;
	}
	float *out = ps->out;
	ps->out = NULL;
	api_predict_reply(rp, ps->snap, out, ps->done, ps->outputs, ps->binary_reply);
}

int api_predict_stream_finish(api_predict_stream *ps, const api_req *rq, api_reply *rp)
{
	(void)rq;
	int c = api_predict_stream_close(ps, rp);
	if (c == 2)
		api_predict_stream_reply(ps, rp, NN_OK, NULL);
	return c != 0;
}
