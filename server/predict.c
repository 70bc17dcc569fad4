/*
 * predict.c - the predict route's streamed rows (see predict.h): the api/
 * stream, and the helper thread that shares its blocks on long bodies.
 *
 * A body long enough to hold HELPER_MIN_ROWS rows (and of HELPER_MIN_BYTES
 * at least) gets a second thread: the connection's thread reads while the
 * helper predicts the blocks already read, and the JSON reply is written
 * as rows are predicted, so on two cores parsing, the forward passes and
 * the reply overlap. HELPER_MAX of them at once; other bodies predict
 * alone.
 *
 * The reader fills a free slot of the ring and queues it (the stream's
 * sink, helper_block); the helper predicts the queued blocks, the lowest
 * rows first. When no slot is free the reader predicts a queued block
 * itself rather than wait, so the two threads share the forward passes by
 * how fast each goes. The stream's outputs are allocated whole beforehand
 * (the body's length bounds its rows), each block writing its own rows, so
 * rows before done (every block below it predicted) are final. The JSON
 * reply's text is written in row order, one thread at a time: by the
 * helper when nothing is queued or the text lags more than HELPER_TEXT_LAG
 * rows, by the reader when no slot is free (before it predicts) and at the
 * end, so that little is left for the end. Under mu: the slots, done,
 * texted, texting, st.
 *
 * A helper thread lives for one request, so its scratch (some 0.7 ms to
 * build for a 784-256-128-10 MLP) is kept for the next helper on the same
 * snapshot (serial), SPARE_SCRATCHES of them at most.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "predict.h"

#define HELPER_MIN_ROWS (2 * API_PREDICT_BLOCK)  /* bodies that may hold this many rows get a helper */
#define HELPER_MIN_BYTES ((int64_t)256 << 10)    /* and are this long (a thread costs some 30 us) */
#define SPARE_SCRATCHES 2  /* helpers' scratches kept for the next helper */
#define HELPER_MAX 4       /* helpers at once, at most (more streams predict alone) */
#define HELPER_RING 4      /* blocks between the reader and the helper */
#define HELPER_TEXT_LAG (2 * API_PREDICT_BLOCK)  /* rows predicted but not yet in the text, at most */

#ifdef NND_TEST
static int64_t helper_min_bytes = HELPER_MIN_BYTES;   /* tests lower it */
#define MIN_BYTES __atomic_load_n(&helper_min_bytes, __ATOMIC_RELAXED)
#else
#define MIN_BYTES HELPER_MIN_BYTES
#endif

enum { SLOT_FREE, SLOT_FILLING, SLOT_QUEUED, SLOT_BUSY };

static int64_t helper_streams;   /* streams that got a helper, ever */
static int helpers_live;         /* helpers now */

typedef struct helper {
	api_predict_stream *ps;
	pthread_t th;
	int threaded;             /* th runs (else the reader does all the work) */
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* any change below */
	float *ring[HELPER_RING];
	int state[HELPER_RING];
	int rows[HELPER_RING];    /* a queued block's rows */
	int64_t first[HELPER_RING];  /* and the first of them */
	int64_t cap;              /* rows the outputs hold */
	int64_t queued;           /* rows queued so far */
	int64_t done;             /* rows before it all predicted */
	int64_t texted;           /* rows written into text */
	int texting;              /* a thread is writing text */
	int closing;              /* no more blocks come: predict the rest, then end */
	int stop;                 /* end now (the result is not wanted) */
	int joined;
	nn_status st;             /* the first failure */
	api_predict_text *text;   /* the JSON reply, or NULL (a float32 reply) */
} helper;

struct predict_body {
	api_predict_stream *ps;
	helper *hp;               /* NULL: the stream predicts alone */
};

/* ---- the helpers' spare scratches */

static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { uint64_t serial; nn_scratch *s; } spare[SPARE_SCRATCHES];
static unsigned spare_next;   /* the slot to reuse when all are taken */

static nn_scratch *spare_take(const api_predict_stream *ps)
{
	uint64_t serial = api_predict_stream_snap(ps)->serial;
	nn_scratch *s = NULL;
	pthread_mutex_lock(&spare_mu);
	for (int i = 0; i < SPARE_SCRATCHES && !s; i++)
		if (spare[i].s && spare[i].serial == serial) {
			s = spare[i].s;
			spare[i].s = NULL;
		}
	pthread_mutex_unlock(&spare_mu);
	return s ? s : api_predict_stream_scratch_new(ps);
}

static void spare_put(uint64_t serial, nn_scratch *s)
{
	if (!s)
		return;
	nn_scratch *old = NULL;
	pthread_mutex_lock(&spare_mu);
	int k = -1;
	for (int i = 0; i < SPARE_SCRATCHES && k < 0; i++)
		if (!spare[i].s)
			k = i;
	if (k < 0) {
		k = (int)(spare_next++ % SPARE_SCRATCHES);
		old = spare[k].s;
	}
	spare[k].serial = serial;
	spare[k].s = s;
	pthread_mutex_unlock(&spare_mu);
	nn_scratch_free(old);
}

/* ---- the helper */

/* The queued slot with the lowest rows, or -1. Under mu, as the rest. */
static int slot_next(const helper *hp)
{
	int best = -1;
	for (int i = 0; i < HELPER_RING; i++)
		if (hp->state[i] == SLOT_QUEUED && (best < 0 || hp->first[i] < hp->first[best]))
			best = i;
	return best;
}

/* Predicts the queued block in slot i with scratch sc, NULL for this
 * thread's (mu held on entry and exit). */
static void slot_predict(helper *hp, int i, nn_scratch *sc)
{
	hp->state[i] = SLOT_BUSY;
	nn_status st = hp->st;
	if (st == NN_OK) {
		pthread_mutex_unlock(&hp->mu);
		st = api_predict_stream_rows(hp->ps, sc, hp->ring[i], hp->first[i], hp->rows[i]);
		pthread_mutex_lock(&hp->mu);
	}
	if (hp->st == NN_OK)
		hp->st = st;
	hp->state[i] = SLOT_FREE;
	int64_t done = hp->queued;
	for (int k = 0; k < HELPER_RING; k++)
		if ((hp->state[k] == SLOT_QUEUED || hp->state[k] == SLOT_BUSY) && hp->first[k] < done)
			done = hp->first[k];
	hp->done = done;
	pthread_cond_broadcast(&hp->cv);
}

/* Writes the next predicted rows not yet in the text, a block at most,
 * unless another thread is writing it (mu held on entry and exit). 1 when
 * it wrote some. */
static int text_step(helper *hp)
{
	if (!hp->text || hp->texting || hp->st != NN_OK || hp->texted >= hp->done)
		return 0;
	int64_t from = hp->texted;
	int n = hp->done - from < API_PREDICT_BLOCK ? (int)(hp->done - from) : API_PREDICT_BLOCK;
	hp->texting = 1;
	pthread_mutex_unlock(&hp->mu);
	api_predict_stream_text(hp->ps, hp->text, from, n);
	pthread_mutex_lock(&hp->mu);
	hp->texted = from + n;
	hp->texting = 0;
	pthread_cond_broadcast(&hp->cv);
	return 1;
}

/* The helper's thread: predicts queued blocks, else writes text, else
 * waits; ends when stopped, or closing with nothing left to do. */
static void *helper_main(void *arg)
{
	helper *hp = arg;
	/* a kept scratch, or a new one (NULL: this thread's, as a last resort) */
	nn_scratch *sc = spare_take(hp->ps);
	pthread_mutex_lock(&hp->mu);
	while (!hp->stop) {
		/* blocks first, but the text lags HELPER_TEXT_LAG rows at most
		 * (what is left of it at the end is written by one thread alone) */
		if (hp->done - hp->texted > HELPER_TEXT_LAG && text_step(hp))
			continue;
		int i = slot_next(hp);
		if (i >= 0)
			slot_predict(hp, i, sc);
		else if (!text_step(hp)) {
			if (hp->closing)
				break;
			pthread_cond_wait(&hp->cv, &hp->mu);
		}
	}
	pthread_mutex_unlock(&hp->mu);
	spare_put(api_predict_stream_snap(hp->ps)->serial, sc);
	return NULL;
}

/* The stream's sink: queues the block x (rows [first, first + n)) and
 * takes a free slot; while none is free, writes text, else predicts a
 * queued block, else waits. */
static float *helper_block(void *ctx, float *x, int64_t first, int n)
{
	helper *hp = ctx;
	pthread_mutex_lock(&hp->mu);
	int f = 0;
	while (hp->state[f] != SLOT_FILLING)   /* x's */
		f++;
	if (first + n > hp->cap) {
		/* never: the rows a body can hold were counted from its length */
		if (hp->st == NN_OK)
			hp->st = NN_EINVAL;
		pthread_mutex_unlock(&hp->mu);
		return x;
	}
	hp->state[f] = SLOT_QUEUED;
	hp->rows[f] = n;
	hp->first[f] = first;
	hp->queued = first + n;
	pthread_cond_broadcast(&hp->cv);
	for (;;) {
		for (f = 0; f < HELPER_RING && hp->state[f] != SLOT_FREE; f++)
			;
		if (f < HELPER_RING)
			break;
		/* the text first: what is left of it at the end is written by one
		 * thread while the other waits */
		if (text_step(hp))
			continue;
		int i = slot_next(hp);
		if (i >= 0)
			slot_predict(hp, i, NULL);
		else
			pthread_cond_wait(&hp->cv, &hp->mu);
	}
	hp->state[f] = SLOT_FILLING;
	pthread_mutex_unlock(&hp->mu);
	return hp->ring[f];
}

static void helper_release(helper *hp)
{
	for (int i = 0; i < HELPER_RING; i++)
		free(hp->ring[i]);
	api_predict_text_free(hp->text);
	free(hp);
	__atomic_sub_fetch(&helpers_live, 1, __ATOMIC_RELAXED);
}

/* Starts the helper of a body of up to expect rows (pb->hp stays NULL when
 * the outputs would be too large or anything fails: the stream then
 * predicts on its own thread). */
static void helper_start(predict_body *pb, int64_t expect)
{
	/* more helpers than cores only add switching and memory */
	if (__atomic_add_fetch(&helpers_live, 1, __ATOMIC_RELAXED) > HELPER_MAX) {
		__atomic_sub_fetch(&helpers_live, 1, __ATOMIC_RELAXED);
		return;
	}
	helper *hp = calloc(1, sizeof *hp);
	if (!hp) {
		__atomic_sub_fetch(&helpers_live, 1, __ATOMIC_RELAXED);
		return;
	}
	size_t bytes = api_predict_stream_block_bytes(pb->ps);
	int ok = 1;
	for (int i = 0; i < HELPER_RING; i++)
		ok &= (hp->ring[i] = malloc(bytes)) != NULL;
	hp->ps = pb->ps;
	hp->st = NN_OK;
	hp->state[0] = SLOT_FILLING;
	hp->cap = expect < API_PREDICT_MAX_ROWS ? expect : API_PREDICT_MAX_ROWS;
	if (ok && pthread_mutex_init(&hp->mu, NULL) != 0) {
		ok = 0;
	} else if (ok && pthread_cond_init(&hp->cv, NULL) != 0) {
		pthread_mutex_destroy(&hp->mu);
		ok = 0;
	}
	api_predict_sink sink = { helper_block, hp };
	if (ok && api_predict_stream_share(pb->ps, &sink, hp->ring[0], hp->cap, &hp->text) < 0) {
		pthread_cond_destroy(&hp->cv);
		pthread_mutex_destroy(&hp->mu);
		ok = 0;
	}
	if (!ok) {
		helper_release(hp);
		return;
	}
	/* the stream is shared from here on: without a thread, the reader
	 * does all the work through the same sink */
	pb->hp = hp;
	hp->threaded = pthread_create(&hp->th, NULL, helper_main, hp) == 0;
	if (hp->threaded)
		__atomic_add_fetch(&helper_streams, 1, __ATOMIC_RELAXED);
}

/* Ends the helper: stop, at once (the result is not wanted); else after
 * every queued block is predicted and every row is in the text, this
 * thread sharing the work. */
static void helper_end(helper *hp, int stop)
{
	if (!hp || hp->joined)
		return;
	pthread_mutex_lock(&hp->mu);
	hp->closing = 1;
	if (stop)
		hp->stop = 1;
	pthread_cond_broadcast(&hp->cv);
	while (!stop) {
		int i = slot_next(hp), busy = 0;
		for (int k = 0; k < HELPER_RING; k++)
			busy |= hp->state[k] == SLOT_BUSY;
		if (i >= 0)
			slot_predict(hp, i, NULL);
		else if (text_step(hp))
			continue;
		else if (busy || hp->texting)
			pthread_cond_wait(&hp->cv, &hp->mu);
		else
			break;   /* all predicted, and the text (if any) written */
	}
	pthread_mutex_unlock(&hp->mu);
	if (hp->threaded)
		pthread_join(hp->th, NULL);
	hp->joined = 1;
}

static void helper_free(helper *hp)
{
	if (!hp)
		return;
	helper_end(hp, 1);
	pthread_cond_destroy(&hp->cv);
	pthread_mutex_destroy(&hp->mu);
	helper_release(hp);
}

int64_t predict_helper_streams(void)
{
	return __atomic_load_n(&helper_streams, __ATOMIC_RELAXED);
}

#ifdef NND_TEST
int64_t predict_helper_min_bytes(int64_t bytes)
{
	int64_t was = __atomic_load_n(&helper_min_bytes, __ATOMIC_RELAXED);
	if (bytes >= 0)
		__atomic_store_n(&helper_min_bytes, bytes, __ATOMIC_RELAXED);
	return was;
}
#endif

/* ---- the body */

predict_body *predict_begin(const api_backend *b, const api_req *rq, api_predict_kind kind,
                            int64_t expect_len, int binary_reply, api_err *e)
{
	api_predict_stream *ps = api_predict_stream_new(b, rq, kind, expect_len, binary_reply, e);
	if (!ps)
		return NULL;
	predict_body *pb = calloc(1, sizeof *pb);
	if (!pb) {
		api_predict_stream_free(ps);
		if (e)
			api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	pb->ps = ps;
	int64_t expect = api_predict_stream_capacity(ps);
	if (expect_len >= 0 && expect >= HELPER_MIN_ROWS && expect_len >= MIN_BYTES)
		helper_start(pb, expect);
	return pb;
}

void predict_feed(predict_body *pb, const char *piece, size_t len)
{
	if (pb)
		api_predict_stream_feed(pb->ps, piece, len);
}

void predict_scan(predict_body *pb, const char *body, size_t len)
{
	if (pb)
		api_predict_stream_scan(pb->ps, body, len);
}

int predict_finish(predict_body *pb, api_reply *rp)
{
	if (!pb)
		return 0;
	int c = api_predict_stream_close(pb->ps, rp);
	if (c < 2)
		return c;
	nn_status st = NN_OK;
	api_predict_text *text = NULL;
	if (pb->hp) {
		helper_end(pb->hp, 0);
		st = pb->hp->st;
		text = pb->hp->text;
		pb->hp->text = NULL;
	}
	api_predict_stream_reply(pb->ps, rp, st, text);
	return 1;
}

void predict_free(predict_body *pb)
{
	if (!pb)
		return;
	helper_free(pb->hp);
	api_predict_stream_free(pb->ps);
	free(pb);
}
