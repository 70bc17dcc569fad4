/*
 * store_pg.c - the PostgreSQL store (`nnd --store postgresql://...`): the
 * same rows as the SQLite store, and the bytes the SQLite store keeps in
 * files (data set matrices, model versions, checkpoints) in a table of
 * chunks (blobs: key, seq, data), CHUNK bytes each, so no value comes near
 * PostgreSQL's 1 GB limit and a big matrix never sits in one message.
 *
 * Several daemons share one database: everything a 2xx acknowledged is
 * committed first (synchronous_commit stays on), and writes that belong to
 * the daemon running a job go through the job's lease (pg_lease_*, used
 * by cluster.c): they lock the job's row and commit only while the row
 * still carries this daemon's lease token, so a daemon that lost its job
 * to another writes nothing more for it.
 *
 * The schema lives in the first schema of the connection's search_path
 * (created when missing, so one database can hold several independent
 * installations: `?options=-csearch_path%3Dteam_a`), and is created and
 * migrated at start by the steps of `migrations` under an advisory lock,
 * its version in nnd_schema.
 *
 * One connection behind a mutex; a broken connection is reset at the next
 * call (a restarted server is reconnected to), and the call that found it
 * broken fails with a 503.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "store_pg.h"
#include "storage.h"
#include "util.h"

#define CHUNK ((size_t)8 << 20)

static const char *const migrations[] = {
	/* 1: the tables of the SQLite store, jobs with their leases */
	"CREATE TABLE datasets(seq bigserial PRIMARY KEY, id text UNIQUE NOT NULL,"
	" doc text NOT NULL, task int, rows bigint, features int, outputs int, image int,"
	" bytes bigint, created_at bigint);"
	"CREATE TABLE models(seq bigserial PRIMARY KEY, id text UNIQUE NOT NULL, name text,"
	" spec text NOT NULL, task int, inputs int, outputs int, params bigint, version int,"
	" trained_by text, metrics text, classes text, created_at bigint);"
	"CREATE TABLE model_versions(model text, version int, job text, created_at bigint,"
	" PRIMARY KEY(model, version));"
	"CREATE TABLE jobs(seq bigserial PRIMARY KEY, id text UNIQUE NOT NULL, model text,"
	" dataset text, val_dataset text, state int, progress double precision, epoch int,"
	" step bigint, metrics text, best text, stopped_early int, model_version int,"
	" error text, config text, base_version int DEFAULT -1, created_at bigint,"
	" started_at bigint, finished_at bigint, cancel_requested int DEFAULT 0,"
	" replicas int DEFAULT 1, owner text, lease_token bigint, lease_until timestamptz,"
	" attempts int DEFAULT 0);"
	"CREATE INDEX jobs_state ON jobs(state, seq);"
	"CREATE TABLE job_steps(job text, step bigint, epoch int, loss double precision,"
	" lr double precision, PRIMARY KEY(job, step));"
	"CREATE TABLE job_epochs(job text, epoch int, end_step bigint, doc text,"
	" PRIMARY KEY(job, epoch));"
	"CREATE TABLE blobs(key text, seq int, data bytea NOT NULL, PRIMARY KEY(key, seq));",
	/* 2: fencing tokens, increasing across every daemon and restart */
	"CREATE SEQUENCE lease_tokens;"
	"CREATE INDEX jobs_lease ON jobs(lease_until) WHERE state=1;",
	/* 3: studies' trials (their study, number and the epoch they pause at) */
	"ALTER TABLE jobs ADD COLUMN study text, ADD COLUMN trial int DEFAULT 0,"
	" ADD COLUMN pause_at int DEFAULT 0;"
	"CREATE INDEX jobs_study ON jobs(study, trial);",
	/* 4: studies, their trials and events; one job per trial, whichever
	 * daemon makes it */
	"CREATE TABLE studies(seq bigserial PRIMARY KEY, id text UNIQUE NOT NULL, name text,"
	" state int, config text, error text, dataset text, val_dataset text, test_dataset text,"
	" created_at bigint, started_at bigint, finished_at bigint);"
	"CREATE INDEX studies_state ON studies(state, seq);"
	"CREATE TABLE trials(study text, number int, state int, params text,"
	" value double precision, epochs int, seconds double precision, rows bigint, seed bigint,"
	" job text, model text, rung int, PRIMARY KEY(study, number));"
	"CREATE INDEX trials_value ON trials(study, value, number);"
	"CREATE TABLE study_events(study text, seq bigint, kind int, data text,"
	" PRIMARY KEY(study, seq));"
	"CREATE UNIQUE INDEX jobs_trial ON jobs(study, trial) WHERE study IS NOT NULL;",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---------------------------------------------------------------- params */

/* The parameters of one statement: text values (NULL = SQL NULL), numbers
 * printed into buf, bytes sent binary. */
typedef struct pgp {
	int n;
	const char *v[16];
	int len[16];
	int fmt[16];
	char buf[16][32];
} pgp;

static void p_text(pgp *a, const char *s)
{
	a->v[a->n] = s;
	a->len[a->n] = 0;
	a->fmt[a->n] = 0;
	a->n++;
}

static void p_int(pgp *a, int64_t x)
{
	snprintf(a->buf[a->n], sizeof a->buf[0], "%lld", (long long)x);
	p_text(a, a->buf[a->n]);
}

static void p_dbl(pgp *a, double x)
{
	snprintf(a->buf[a->n], sizeof a->buf[0], "%.17g", x);
	p_text(a, a->buf[a->n]);
}

static void p_bin(pgp *a, const void *b, size_t n)
{
	a->v[a->n] = b;
	a->len[a->n] = (int)n;
	a->fmt[a->n] = 1;
	a->n++;
}

/* ---------------------------------------------------------------- connection */

struct pgs {
	PGconn *c;
	pthread_mutex_t mu;       /* guards c and the statements on it */
	char *url;
	char schema[128];         /* where the tables are (a quoted identifier) */
	char channel[160];        /* NOTIFY channel: "nnd:" and the schema's name */
	int in_tx;
	/* the studies' lock (pg_study_lock): a connection of its own, opened
	 * at the first use, and whether its transaction is open; used by one
	 * caller at a time (studies.c's lock) */
	PGconn *lockc;
	int lock_open;
};

static PGresult *run(pgs *p, const char *sql, const pgp *a, int binary_result);

/*
 * What every connection sets: its schema, and an end to transactions left
 * idle (a daemon frozen mid-write, SIGSTOP or a hung host, must not hold
 * a job's row lock past its lease: the server ends its session, and its
 * commit fails). 0 or -1.
 */
static int session_setup(PGconn *c, const char *schema)
{
	char sql[400];
	snprintf(sql, sizeof sql, "SET search_path TO %s; SET idle_in_transaction_session_timeout"
	         " = %d", schema, pg_idle_tx_ms);
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok ? 0 : -1;
}

/* Resets a broken connection (outside a transaction). 0 when usable. */
static int reconnect(pgs *p)
{
	if (PQstatus(p->c) == CONNECTION_OK)
		return 0;
	PQreset(p->c);
	if (PQstatus(p->c) != CONNECTION_OK)
		return -1;
	util_log(1, "store: reconnected to PostgreSQL");
	return session_setup(p->c, p->schema);
}

static PGresult *exec_once(pgs *p, const char *sql, const pgp *a, int binary_result)
{
	/* without parameters: the simple protocol (several statements allowed) */
	if (!a && !binary_result)
		return PQexec(p->c, sql);
	return PQexecParams(p->c, sql, a ? a->n : 0, NULL, a ? a->v : NULL, a ? a->len : NULL,
	                    a ? a->fmt : NULL, binary_result);
}

static int result_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* One statement; the result, or NULL (logged) when it failed. */
static PGresult *run(pgs *p, const char *sql, const pgp *a, int binary_result)
{
	if (!p->in_tx && reconnect(p) < 0) {
		util_log(0, "store: PostgreSQL unreachable: %s", PQerrorMessage(p->c));
		return NULL;
	}
	PGresult *r = exec_once(p, sql, a, binary_result);
	if (result_ok(r))
		return r;
	if (!p->in_tx && PQstatus(p->c) != CONNECTION_OK && reconnect(p) == 0) {
		/* the server restarted since the last statement: once more on
		 * the new connection (nothing of this statement was applied) */
		PQclear(r);
		r = exec_once(p, sql, a, binary_result);
		if (result_ok(r))
			return r;
	}
	util_log(0, "store: %.80s: %s", sql, PQerrorMessage(p->c));
	PQclear(r);
	return NULL;
}

/* A statement whose result is not needed: 0, or -1. */
static int cmd(pgs *p, const char *sql, const pgp *a)
{
	PGresult *r = run(p, sql, a, 0);
	PQclear(r);
	return r ? 0 : -1;
}

static int begin(pgs *p)
{
	if (cmd(p, "BEGIN", NULL) < 0)
		return -1;
	p->in_tx = 1;
	return 0;
}

static int commit(pgs *p)
{
	int rc = cmd(p, "COMMIT", NULL);
	p->in_tx = 0;
	return rc;
}

static void rollback(pgs *p)
{
	if (p->in_tx)
		cmd(p, "ROLLBACK", NULL);
	p->in_tx = 0;
}

/* A failed statement: 503 while the server is unreachable, 507 when its
 * disk is full, else 500. */
static int fail(pgs *p, api_err *e, const char *what)
{
	if (PQstatus(p->c) != CONNECTION_OK)
		return api_err_set(e, 503, "store_unavailable", "the database is unreachable (%s)",
		                   what);
	const char *msg = PQerrorMessage(p->c);
	if (msg && strstr(msg, "No space left"))
		return api_err_set(e, 507, "insufficient_storage", "the store is out of space (%s)",
		                   what);
	return api_err_set(e, 500, "store_failed", "the store failed (%s)", what);
}

/* NOTIFY the daemons sharing the store (delivered at the commit of the
 * transaction it is in): kind 'q' (a job was queued), 'c' (job id's
 * cancel was asked for), 'e' (job id has new rows: events, state). The
 * payload holds ids only, far below NOTIFY's 8000 bytes: readers read the
 * rows. */
static int notify(pgs *p, char kind, const char *id)
{
	char payload[64];
	snprintf(payload, sizeof payload, "%c:%s", kind, id ? id : "");
	pgp a = { 0 };
	p_text(&a, p->channel);
	p_text(&a, payload);
	return cmd(p, "SELECT pg_notify($1, $2)", &a);
}

static int not_found(api_err *e, const char *what, const char *id)
{
	return api_err_set(e, 404, "not_found", "no %s with id %s", what, id);
}

static const char *val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t ival(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : atoll(PQgetvalue(r, row, col));
}

static void copy_id(const PGresult *r, int row, int col, char *dst, size_t n)
{
	const char *v = val(r, row, col);
	snprintf(dst, n, "%s", v ? v : "");
}

/* The study lock's connection while this thread holds the lock (see
 * pg_study_lock): the statements of the studies' tables go into the
 * lock's transaction then, so they commit only while the lock is held. */
static __thread PGconn *pass_c;
static __thread int pass_failed;      /* a statement of the pass failed */

/* One statement, in this thread's study lock transaction when it holds
 * one, else on the store's connection: the result, or NULL (logged). */
static PGresult *srun(pgs *p, const char *sql, const pgp *a)
{
	if (!pass_c) {
		pthread_mutex_lock(&p->mu);
		PGresult *r = run(p, sql, a, 0);
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	PGresult *r = PQexecParams(pass_c, sql, a ? a->n : 0, NULL, a ? a->v : NULL,
	                           a ? a->len : NULL, a ? a->fmt : NULL, 0);
	if (result_ok(r))
		return r;
	/* the transaction is aborted: nothing of the pass commits */
	pass_failed = 1;
	util_log(0, "store: %.80s: %s", sql, PQerrorMessage(pass_c));
	PQclear(r);
	return NULL;
}

/* One statement with $1 = id and, when has_x, $2 = x (srun). */
static PGresult *query_by(pgs *p, const char *sql, const char *id, int has_x, int64_t x)
{
	pgp a = { 0 };
	p_text(&a, id);
	if (has_x)
		p_int(&a, x);
	return srun(p, sql, &a);
}

/* The first schema of the search_path, created when missing. */
static int pick_schema(pgs *p, char *err, size_t errlen)
{
	PGresult *r = run(p, "SELECT current_schema(), current_setting('search_path')", NULL, 0);
	if (!r) {
		snprintf(err, errlen, "cannot read the search_path: %s", PQerrorMessage(p->c));
		return -1;
	}
	const char *cur = val(r, 0, 0);
	char name[100] = "";
	if (cur) {
		snprintf(name, sizeof name, "%s", cur);
	} else {
		/* the first entry of the search_path does not exist yet */
		const char *sp = val(r, 0, 1);
		size_t i = 0;
		while (sp && *sp == ' ')
			sp++;
		int quoted = sp && *sp == '"';
		sp += quoted;
		while (sp && sp[i] && sp[i] != ',' && sp[i] != '"' && i + 1 < sizeof name) {
			/* an unquoted name is folded to lowercase, as PostgreSQL does */
			name[i] = !quoted && sp[i] >= 'A' && sp[i] <= 'Z' ? (char)(sp[i] + 32) : sp[i];
			i++;
		}
		name[i] = '\0';
	}
	PQclear(r);
	if (!name[0]) {
		snprintf(err, errlen, "the search_path names no schema");
		return -1;
	}
	char *q = PQescapeIdentifier(p->c, name, strlen(name));
	if (!q) {
		snprintf(err, errlen, "bad schema name %s", name);
		return -1;
	}
	snprintf(p->schema, sizeof p->schema, "%s", q);
	PQfreemem(q);
	snprintf(p->channel, sizeof p->channel, "nnd:%s", name);
	char sql[300];
	snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", p->schema);
	int rc = cur ? 0 : cmd(p, sql, NULL);
	if (rc < 0 || session_setup(p->c, p->schema) < 0) {
		snprintf(err, errlen, "cannot use schema %s: %s", p->schema, PQerrorMessage(p->c));
		return -1;
	}
	return 0;
}

/* Creates or migrates the tables, one daemon at a time. */
static int migrate(pgs *p, char *err, size_t errlen)
{
	pgp a = { 0 };
	p_text(&a, p->schema);
	int ok = begin(p) == 0 &&
	         cmd(p, "SELECT pg_advisory_xact_lock(hashtext('nnd_migrate:' || $1))", &a) == 0 &&
	         cmd(p, "CREATE TABLE IF NOT EXISTS nnd_schema(version int NOT NULL)", NULL) == 0;
	int version = 0;
	PGresult *r = ok ? run(p, "SELECT max(version) FROM nnd_schema", NULL, 0) : NULL;
	if (r) {
		version = (int)ival(r, 0, 0);
		PQclear(r);
	} else {
		ok = 0;
	}
	for (int v = version; ok && v < N_MIGRATIONS; v++) {
		pgp b = { 0 };
		p_int(&b, v + 1);
		ok = cmd(p, migrations[v], NULL) == 0 &&
		     cmd(p, "INSERT INTO nnd_schema(version) VALUES($1)", &b) == 0;
		if (ok)
			util_log(2, "store: schema %s migrated to version %d", p->schema, v + 1);
	}
	if (ok && version > N_MIGRATIONS) {
		snprintf(err, errlen, "the database's schema (version %d) is newer than this nnd's (%d)",
		         version, N_MIGRATIONS);
		rollback(p);
		return -1;
	}
	if (ok && commit(p) == 0)
		return 0;
	snprintf(err, errlen, "cannot create the schema: %s", PQerrorMessage(p->c));
	rollback(p);
	return -1;
}

static void pg_close(void *be)
{
	pgs *p = be;
	if (!p)
		return;
	PQfinish(p->c);
	PQfinish(p->lockc);
	free(p->url);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static int pg_ready(void *be)
{
	pgs *p = be;
	pthread_mutex_lock(&p->mu);
	int ok = cmd(p, "SELECT 1", NULL) == 0;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

/* ---------------------------------------------------------------- blobs */

/* Writes bytes (n pieces) as key's chunks, replacing what key held; inside
 * the caller's transaction. 0 or -1. */
static int blob_put(pgs *p, const char *key, const void *const *bufs, const size_t *lens,
                    int n)
{
	pgp a = { 0 };
	p_text(&a, key);
	if (cmd(p, "DELETE FROM blobs WHERE key=$1", &a) < 0)
		return -1;
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += lens[i];
	char *chunk = malloc(total < CHUNK ? (total ? total : 1) : CHUNK);
	if (!chunk)
		return -1;
	int seq = 0, piece = 0, rc = 0;
	size_t off = 0;           /* within bufs[piece] */
	while (rc == 0 && (piece < n || seq == 0)) {
		size_t fill = 0;
		while (piece < n && fill < CHUNK) {
			size_t take = lens[piece] - off;
			if (take > CHUNK - fill)
				take = CHUNK - fill;
			memcpy(chunk + fill, (const char *)bufs[piece] + off, take);
			fill += take;
			off += take;
			if (off == lens[piece]) {
				piece++;
				off = 0;
			}
		}
		pgp b = { 0 };
		p_text(&b, key);
		p_int(&b, seq++);
		p_bin(&b, chunk, fill);
		rc = cmd(p, "INSERT INTO blobs(key, seq, data) VALUES($1,$2,$3)", &b);
	}
	free(chunk);
	return rc;
}

/* Reads key's chunks into one buffer: *buf an anonymous mapping of *len
 * bytes (munmap it), or NULL with 0 when key has none. 0 or -1. */
static int blob_get(pgs *p, const char *key, void **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	pgp a = { 0 };
	p_text(&a, key);
	PGresult *r = run(p, "SELECT count(*), coalesce(sum(length(data)), 0) FROM blobs"
	                     " WHERE key=$1", &a, 0);
	if (!r)
		return -1;
	int64_t chunks = ival(r, 0, 0), total = ival(r, 0, 1);
	PQclear(r);
	if (chunks == 0)
		return 0;
	char *dst = mmap(NULL, total ? (size_t)total : 1, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED)
		return -1;
	/* chunk by chunk: never the whole value in one result */
	size_t off = 0;
	int rc = 0;
	for (int64_t s = 0; rc == 0 && s < chunks; s++) {
		pgp b = { 0 };
		p_text(&b, key);
		p_int(&b, s);
		r = run(p, "SELECT data FROM blobs WHERE key=$1 AND seq=$2", &b, 1);
		if (!r || PQntuples(r) != 1 ||
		    off + (size_t)PQgetlength(r, 0, 0) > (size_t)total) {
			rc = -1;
		} else {
			memcpy(dst + off, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
			off += (size_t)PQgetlength(r, 0, 0);
		}
		PQclear(r);
	}
	if (rc < 0 || off != (size_t)total) {
		munmap(dst, total ? (size_t)total : 1);
		return -1;
	}
	*buf = dst;
	*len = (size_t)total;
	return 0;
}

static int blob_delete(pgs *p, const char *key, int prefix)
{
	pgp a = { 0 };
	p_text(&a, key);
	return cmd(p, prefix ? "DELETE FROM blobs WHERE key LIKE $1 || '%'"
	                     : "DELETE FROM blobs WHERE key=$1", &a);
}

/* ---------------------------------------------------------------- data sets */

#define DS_COLS "id, doc, task, rows, features, outputs, image, bytes, created_at"

static int ds_info(const PGresult *r, int i, api_dataset_info *out)
{
	return store_ds_info_make(out, val(r, i, 0), val(r, i, 1), (int)ival(r, i, 2),
	                          ival(r, i, 3), (int)ival(r, i, 4), (int)ival(r, i, 5),
	                          (int)ival(r, i, 6), ival(r, i, 7), ival(r, i, 8));
}

static int pg_dataset_get(void *be, const char *id, api_dataset_info *out, api_err *e);

static int pg_dataset_create(void *be, const api_dataset *d, const char *name,
                             api_dataset_info *out, api_err *e)
{
	pgs *p = be;
	char id[API_ID_LEN], key[64];
	if (util_new_id("ds", id, sizeof id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	cJSON *doc = api_dataset_doc(d, name);
	char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
	cJSON_Delete(doc);
	api_dataset_pieces pc;
	void *buf = NULL;
	size_t len = 0;
	int pieces = 0;
	if (text && api_dataset_serialize_pieces(d, &pc) == 0)
		pieces = 4;
	else if (text && api_dataset_serialize(d, &buf, &len) == 0)
		pieces = 1;
	if (!pieces) {
		free(text);
		return api_err_set(e, 500, "out_of_memory", "cannot serialise the data set");
	}
	const void *const *bufs = pieces == 4 ? pc.p : (const void *const *)&buf;
	const size_t *lens = pieces == 4 ? pc.len : &len;
	size_t total = 0;
	for (int i = 0; i < pieces; i++)
		total += lens[i];
	snprintf(key, sizeof key, "d:%s", id);
	pgp a = { 0 };
	p_text(&a, id);
	p_text(&a, text);
	p_int(&a, d->task == NN_TASK_REGRESSION);
	p_int(&a, d->rows);
	p_int(&a, d->features);
	p_int(&a, d->outputs);
	p_int(&a, d->width > 0);
	p_int(&a, (int64_t)total);
	p_int(&a, util_now_ms());
	pthread_mutex_lock(&p->mu);
	int ok = begin(p) == 0 && blob_put(p, key, bufs, lens, pieces) == 0 &&
	         cmd(p, "INSERT INTO datasets(id, doc, task, rows, features, outputs, image, bytes,"
	                " created_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)", &a) == 0 &&
	         commit(p) == 0;
	if (!ok) {
		fail(p, e, "insert data set");
		rollback(p);
	}
	pthread_mutex_unlock(&p->mu);
	if (pieces == 4)
		api_dataset_pieces_release(&pc);
	free(buf);
	free(text);
	return ok ? pg_dataset_get(be, id, out, e) : -1;
}

/* One row by id, made into *out by make: 0, 404 naming `what`, or -1. */
static int get_by_id(pgs *p, const char *sql, const char *id, const char *what,
                     int (*make)(const PGresult *, int, void *), void *out, api_err *e)
{
	pgp a = { 0 };
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	PGresult *r = run(p, sql, &a, 0);
	int rc = -1;
	if (!r)
		fail(p, e, what);
	else if (PQntuples(r) == 0)
		not_found(e, what, id);
	else if (make(r, 0, out) < 0)
		fail(p, e, what);
	else
		rc = 0;
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int ds_info_v(const PGresult *r, int i, void *out)
{
	return ds_info(r, i, out);
}

static int pg_dataset_get(void *be, const char *id, api_dataset_info *out, api_err *e)
{
	return get_by_id(be, "SELECT " DS_COLS " FROM datasets WHERE id=$1", id, "data set",
	                 ds_info_v, out, e);
}

/* The count and one page of a table, as served objects appended to items. */
static int list_page(pgs *p, const char *count_sql, const char *page_sql, int64_t limit,
                     int64_t offset, cJSON *items, int64_t *total,
                     int (*make)(const PGresult *, int, cJSON **), api_err *e)
{
	pgp a = { 0 };
	p_int(&a, limit);
	p_int(&a, offset);
	pthread_mutex_lock(&p->mu);
	PGresult *c = run(p, count_sql, NULL, 0);
	PGresult *r = c ? run(p, page_sql, &a, 0) : NULL;
	int rc = 0;
	if (!r) {
		rc = fail(p, e, "list");
	} else {
		*total = ival(c, 0, 0);
		for (int i = 0; i < PQntuples(r); i++) {
			cJSON *o = NULL;
			if (make(r, i, &o) == 0)
				cJSON_AddItemToArray(items, o);
		}
	}
	PQclear(c);
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int ds_make(const PGresult *r, int i, cJSON **o)
{
	api_dataset_info info;
	if (ds_info(r, i, &info) < 0)
		return -1;
	*o = info.doc;
	return 0;
}

static int pg_dataset_list(void *be, int64_t limit, int64_t offset, cJSON *items,
                           int64_t *total, api_err *e)
{
	return list_page(be, "SELECT count(*) FROM datasets",
	                 "SELECT " DS_COLS " FROM datasets ORDER BY seq LIMIT $1 OFFSET $2", limit,
	                 offset, items, total, ds_make, e);
}

/* A delete refused (409) while a queued or running job uses the row: the
 * row is locked first (FOR UPDATE), so no job can be submitted on it
 * meanwhile. The statements of del (NULL-terminated, $1 = id) and the
 * blobs whose key starts with blob_prefix go in one transaction. */
static int delete_unused(pgs *p, const char *id, const char *what, const char *lock_sql,
                         const char *use_sql, const char *const *del, const char *blob_prefix,
                         api_err *e)
{
	pgp a = { 0 };
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	int rc = -1;
	PGresult *r = NULL, *u = NULL;
	if (begin(p) < 0 || !(r = run(p, lock_sql, &a, 0)) || !(u = run(p, use_sql, &a, 0))) {
		fail(p, e, what);
	} else if (PQntuples(r) == 0) {
		not_found(e, what, id);
	} else if (PQntuples(u) > 0) {
		api_err_set(e, 409, "in_use", "%s %s is used by a queued or running job or study",
		            what, id);
	} else {
		int ok = 1;
		for (int i = 0; ok && del[i]; i++)
			ok = cmd(p, del[i], &a) == 0;
		if (ok && blob_delete(p, blob_prefix, 1) == 0 && commit(p) == 0)
			rc = 0;
		else
			fail(p, e, what);
	}
	PQclear(r);
	PQclear(u);
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pg_dataset_delete(void *be, const char *id, api_err *e)
{
	static const char *const del[] = { "DELETE FROM datasets WHERE id=$1", NULL };
	char key[64];
	snprintf(key, sizeof key, "d:%s", id);
	return delete_unused(be, id, "data set", "SELECT 1 FROM datasets WHERE id=$1 FOR UPDATE",
	                     "SELECT 1 FROM jobs WHERE (dataset=$1 OR val_dataset=$1) AND state IN (0,1,5)"
	                     " UNION ALL SELECT 1 FROM studies WHERE (dataset=$1 OR val_dataset=$1"
	                     " OR test_dataset=$1) AND state<2 LIMIT 1", del, key, e);
}

static int pg_dataset_load(void *be, const char *id, api_dataset *out, api_err *e)
{
	pgs *p = be;
	char key[64];
	snprintf(key, sizeof key, "d:%s", id);
	void *buf = NULL;
	size_t len = 0;
	pthread_mutex_lock(&p->mu);
	int rc = blob_get(p, key, &buf, &len);
	if (rc < 0)
		fail(p, e, "read data set");
	pthread_mutex_unlock(&p->mu);
	if (rc < 0)
		return -1;
	if (!buf)
		return api_err_set(e, 404, "not_found", "the data of data set %s is missing", id);
	if (api_dataset_deserialize_mapped(buf, len, out, e) == 0)
		return 0;
	munmap(buf, len);
	return -1;
}

/* ---------------------------------------------------------------- models */

#define MDL_COLS "id, name, spec, params, version, trained_by, metrics, classes, created_at," \
	" task, inputs, outputs"

static int mdl_info(const PGresult *r, int i, api_model_info *out)
{
	store_mdl_row m = {
		val(r, i, 0), val(r, i, 1), val(r, i, 2), ival(r, i, 3), (int)ival(r, i, 4),
		val(r, i, 5), val(r, i, 6), val(r, i, 7), ival(r, i, 8), (int)ival(r, i, 9),
		(int)ival(r, i, 10), (int)ival(r, i, 11)
	};
	return store_mdl_info_make(out, &m);
}

static int mdl_make(const PGresult *r, int i, cJSON **o)
{
	api_model_info info;
	if (mdl_info(r, i, &info) < 0)
		return -1;
	*o = info.doc;
	return 0;
}

static void mdl_key(const char *id, int version, char *key, size_t n)
{
	snprintf(key, n, "m:%s:%d", id, version);
}

static int pg_model_get(void *be, const char *id, api_model_info *out, api_err *e);

/* Writes model m as version v of id (inside a transaction). */
static int put_version(pgs *p, const char *id, int v, const nn_model *m, const char *job,
                       int64_t now)
{
	void *buf = NULL;
	size_t len = 0;
	if (nn_model_save(m, &buf, &len) != NN_OK)
		return -1;
	char key[64];
	mdl_key(id, v, key, sizeof key);
	const void *bufs[1] = { buf };
	int rc = blob_put(p, key, bufs, &len, 1);
	free(buf);
	pgp a = { 0 };
	p_text(&a, id);
	p_int(&a, v);
	p_text(&a, job);
	p_int(&a, now);
	if (rc == 0)
		rc = cmd(p, "INSERT INTO model_versions(model, version, job, created_at)"
		            " VALUES($1,$2,$3,$4) ON CONFLICT (model, version) DO UPDATE SET"
		            " job=EXCLUDED.job, created_at=EXCLUDED.created_at", &a);
	return rc;
}

static int pg_model_create(void *be, const char *name, const nn_model *m, api_model_info *out,
                           api_err *e)
{
	pgs *p = be;
	char id[API_ID_LEN];
	if (util_new_id("mdl", id, sizeof id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	const nn_model_spec *spec = nn_model_spec_of(m);
	cJSON *sj = api_model_spec_to_json(spec);
	char *text = sj ? cJSON_PrintUnformatted(sj) : NULL;
	cJSON_Delete(sj);
	if (!text)
		return api_err_set(e, 500, "out_of_memory", "cannot serialise the model");
	int64_t now = util_now_ms();
	pgp a = { 0 };
	p_text(&a, id);
	p_text(&a, name);
	p_text(&a, text);
	p_int(&a, spec->task == NN_TASK_REGRESSION);
	p_int(&a, spec->inputs);
	p_int(&a, spec->outputs);
	p_int(&a, nn_model_param_count(m));
	p_int(&a, now);
	pthread_mutex_lock(&p->mu);
	int ok = begin(p) == 0 &&
	         cmd(p, "INSERT INTO models(id, name, spec, task, inputs, outputs, params, version,"
	                " created_at) VALUES($1,$2,$3,$4,$5,$6,$7,0,$8)", &a) == 0 &&
	         put_version(p, id, 0, m, NULL, now) == 0 && commit(p) == 0;
	if (!ok) {
		fail(p, e, "insert model");
		rollback(p);
	}
	pthread_mutex_unlock(&p->mu);
	free(text);
	return ok ? pg_model_get(be, id, out, e) : -1;
}

static int mdl_info_v(const PGresult *r, int i, void *out)
{
	return mdl_info(r, i, out);
}

static int pg_model_get(void *be, const char *id, api_model_info *out, api_err *e)
{
	return get_by_id(be, "SELECT " MDL_COLS " FROM models WHERE id=$1", id, "model",
	                 mdl_info_v, out, e);
}

static int pg_model_list(void *be, int64_t limit, int64_t offset, cJSON *items,
                         int64_t *total, api_err *e)
{
	return list_page(be, "SELECT count(*) FROM models",
	                 "SELECT " MDL_COLS " FROM models ORDER BY seq LIMIT $1 OFFSET $2", limit,
	                 offset, items, total, mdl_make, e);
}

static int pg_model_delete(void *be, const char *id, api_err *e)
{
	static const char *const del[] = { "DELETE FROM models WHERE id=$1",
	                                   "DELETE FROM model_versions WHERE model=$1", NULL };
	char key[64];
	snprintf(key, sizeof key, "m:%s:", id);
	return delete_unused(be, id, "model", "SELECT 1 FROM models WHERE id=$1 FOR UPDATE",
	                     "SELECT 1 FROM jobs WHERE model=$1 AND state IN (0,1,5) LIMIT 1", del, key, e);
}

static int pg_model_head(void *be, const char *id, int *version, char **classes, api_err *e)
{
	pgs *p = be;
	pgp a = { 0 };
	p_text(&a, id);
	*classes = NULL;
	pthread_mutex_lock(&p->mu);
	PGresult *r = run(p, "SELECT version, classes FROM models WHERE id=$1", &a, 0);
	int rc = -1;
	if (!r) {
		fail(p, e, "get model");
	} else if (PQntuples(r) == 0) {
		not_found(e, "model", id);
	} else {
		*version = (int)ival(r, 0, 0);
		*classes = val(r, 0, 1) ? strdup(val(r, 0, 1)) : NULL;
		rc = 0;
	}
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pg_model_load(void *be, const char *id, int version, nn_model **out, api_err *e)
{
	pgs *p = be;
	char key[64];
	mdl_key(id, version, key, sizeof key);
	void *buf = NULL;
	size_t len = 0;
	pthread_mutex_lock(&p->mu);
	int rc = blob_get(p, key, &buf, &len);
	if (rc < 0)
		fail(p, e, "read model");
	pthread_mutex_unlock(&p->mu);
	if (rc < 0)
		return -1;
	if (!buf)
		return api_err_set(e, 404, "not_found", "version %d of model %s is missing", version, id);
	char err[256] = "";
	nn_status st = nn_model_load(buf, len, out, err, sizeof err);
	munmap(buf, len);
	if (st != NN_OK)
		return api_err_set(e, 500, "corrupt_model", "model %s version %d: %s", id, version, err);
	return 0;
}

static int again(const api_err *e, const char *job, int tries);
static int job_row_update(pgs *p, const api_job *j);
static int lease_check(pgs *p, const char *job);
static int64_t job_int(pgs *p, const char *id, const char *sql, int64_t def, int *found);

static int publish_once(void *be, const char *id, const nn_model *m, api_job *j,
                        const char *classes, int *version, api_err *e);

static int pg_model_publish(void *be, const char *id, const nn_model *m, api_job *j,
                            const char *classes, int *version, api_err *e)
{
	int rc;
	for (int tries = 0; (rc = publish_once(be, id, m, j, classes, version, e)) < 0 &&
	                    again(e, j ? j->id : NULL, tries); tries++)
		e->status = 0;
	return rc;
}

static int publish_once(void *be, const char *id, const nn_model *m, api_job *j,
                        const char *classes, int *version, api_err *e)
{
	pgs *p = be;
	pgp a = { 0 };
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	int ok = begin(p) == 0 && (!j || lease_check(p, j->id) == 0);
	/* the row lock orders publishers: each takes the next number */
	PGresult *r = ok ? run(p, "SELECT version FROM models WHERE id=$1 FOR UPDATE", &a, 0) : NULL;
	int rc = -1, v = -1;
	if (!r) {
		if (ok || !p->in_tx)
			fail(p, e, "publish");
		else
			api_err_set(e, 409, "lease_lost", "another daemon holds the job now");
	} else if (PQntuples(r) == 0) {
		not_found(e, "model", id);
	} else {
		v = (int)ival(r, 0, 0) + 1;
		int64_t now = util_now_ms();
		pgp b = { 0 };
		p_int(&b, v);
		p_text(&b, id);
		if (j) {
			p_text(&b, j->id);
			p_text(&b, j->metrics);
			p_text(&b, classes);
		}
		ok = put_version(p, id, v, m, j ? j->id : NULL, now) == 0 &&
		     cmd(p, j ? "UPDATE models SET version=$1, trained_by=$3, metrics=$4,"
		                " classes=coalesce($5, classes) WHERE id=$2"
		              : "UPDATE models SET version=$1 WHERE id=$2", &b) == 0;
		if (ok && j) {
			j->model_version = v;
			ok = job_row_update(p, j) == 0 && notify(p, 'e', j->id) == 0;
		}
		if (ok && commit(p) == 0)
			rc = 0;
		else
			fail(p, e, "publish");
	}
	PQclear(r);
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	if (rc == 0 && version)
		*version = v;
	return rc;
}

/* ---------------------------------------------------------------- leases */

/*
 * The leases this daemon holds: job id -> token, set by cluster.c when it
 * claims a job and cleared when the job leaves it. Writes for a held job
 * (its row, metrics, checkpoint, published version) first lock the row and
 * check the token inside their transaction (lease_check); a mismatch marks
 * the lease lost (the job stops at its next step) and the write is rolled
 * back.
 */
typedef struct held {
	char id[API_ID_LEN];
	int64_t token;
	int lost;
	struct held *next;
} held;

static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static held *helds;

void pg_lease_hold(const char *job, int64_t token)
{
	held *h = calloc(1, sizeof *h);
	if (!h)
		return;
	snprintf(h->id, sizeof h->id, "%s", job);
	h->token = token;
	pthread_mutex_lock(&held_mu);
	h->next = helds;
	helds = h;
	pthread_mutex_unlock(&held_mu);
}

void pg_lease_drop(const char *job)
{
	pthread_mutex_lock(&held_mu);
	for (held **pp = &helds; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->id, job) == 0) {
			held *h = *pp;
			*pp = h->next;
			free(h);
			break;
		}
	pthread_mutex_unlock(&held_mu);
}

/* The token held for job (0 when none); *lost when it was found lost. */
static int64_t held_token(const char *job, int *lost)
{
	int64_t t = 0;
	pthread_mutex_lock(&held_mu);
	for (held *h = helds; h; h = h->next)
		if (strcmp(h->id, job) == 0) {
			t = h->token;
			if (lost)
				*lost = h->lost;
			break;
		}
	pthread_mutex_unlock(&held_mu);
	return t;
}

void pg_lease_mark_lost(const char *job)
{
	pthread_mutex_lock(&held_mu);
	for (held *h = helds; h; h = h->next)
		if (strcmp(h->id, job) == 0)
			h->lost = 1;
	pthread_mutex_unlock(&held_mu);
}

int pg_leases_held(char (**ids)[API_ID_LEN], int64_t **tokens)
{
	*ids = NULL;
	*tokens = NULL;
	pthread_mutex_lock(&held_mu);
	int n = 0;
	for (held *h = helds; h; h = h->next)
		n += !h->lost;
	if (n > 0) {
		*ids = calloc((size_t)n, sizeof **ids);
		*tokens = calloc((size_t)n, sizeof **tokens);
	}
	int k = 0;
	for (held *h = helds; h && *ids && *tokens; h = h->next)
		if (!h->lost) {
			snprintf((*ids)[k], API_ID_LEN, "%s", h->id);
			(*tokens)[k++] = h->token;
		}
	pthread_mutex_unlock(&held_mu);
	if (n > 0 && (!*ids || !*tokens)) {
		free(*ids);
		free(*tokens);
		*ids = NULL;
		*tokens = NULL;
		return -1;
	}
	return n;
}

int pg_lease_lost(const char *job)
{
	int lost = 0;
	held_token(job, &lost);
	return lost;
}

int64_t pg_lease_fenced_writes;

/* Inside a transaction: 0 when this daemon holds no lease on job, or holds
 * it and it is still current (the row is then locked until the commit);
 * -1 otherwise (the lease is marked lost). */
static int lease_check(pgs *p, const char *job)
{
	int lost = 0;
	int64_t token = held_token(job, &lost);
	if (!token)
		return 0;
	pgp a = { 0 };
	p_text(&a, job);
	p_int(&a, token);
	PGresult *r = lost ? NULL : run(p, "SELECT 1 FROM jobs WHERE id=$1 AND lease_token=$2"
	                                   " FOR UPDATE", &a, 0);
	int ok = r && PQntuples(r) == 1;
	PQclear(r);
	if (!ok && (lost || PQstatus(p->c) == CONNECTION_OK)) {
		pg_lease_mark_lost(job);
		__atomic_add_fetch(&pg_lease_fenced_writes, 1, __ATOMIC_RELAXED);
		util_log(1, "store: %s: lease lost, write refused", job);
	}
	return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- jobs */

#define JOB_COLS "id, model, dataset, val_dataset, state, progress, epoch, step, metrics," \
	" best, stopped_early, model_version, error, config, created_at, started_at, finished_at," \
	" study, trial"

static char *dup_val(const PGresult *r, int i, int c)
{
	const char *v = val(r, i, c);
	return v ? strdup(v) : NULL;
}

static void job_from(const PGresult *r, int i, api_job *j)
{
	memset(j, 0, sizeof *j);
	copy_id(r, i, 0, j->id, sizeof j->id);
	copy_id(r, i, 1, j->model, sizeof j->model);
	copy_id(r, i, 2, j->dataset, sizeof j->dataset);
	copy_id(r, i, 3, j->val_dataset, sizeof j->val_dataset);
	j->state = (int)ival(r, i, 4);
	j->progress = val(r, i, 5) ? atof(val(r, i, 5)) : 0;
	j->epoch = (int)ival(r, i, 6);
	j->step = ival(r, i, 7);
	j->metrics = dup_val(r, i, 8);
	j->best = dup_val(r, i, 9);
	j->stopped_early = (int)ival(r, i, 10);
	j->model_version = PQgetisnull(r, i, 11) ? -1 : (int)ival(r, i, 11);
	j->error = dup_val(r, i, 12);
	j->config = dup_val(r, i, 13);
	j->created_at = ival(r, i, 14);
	j->started_at = ival(r, i, 15);
	j->finished_at = ival(r, i, 16);
	copy_id(r, i, 17, j->study, sizeof j->study);
	j->trial = (int)ival(r, i, 18);
}

static int job_make(const PGresult *r, int i, cJSON **o)
{
	api_job j;
	job_from(r, i, &j);
	*o = api_job_to_json(&j);
	api_job_release(&j);
	return *o ? 0 : -1;
}

/* The replicas a job's config asks for (1 when it says nothing). */
static int config_replicas(const char *config)
{
	cJSON *c = config ? cJSON_Parse(config) : NULL;
	const cJSON *r = c ? cJSON_GetObjectItemCaseSensitive(c, "replicas") : NULL;
	int n = cJSON_IsNumber(r) && r->valuedouble >= 1 ? (int)r->valuedouble : 1;
	cJSON_Delete(c);
	return n;
}

static int pg_job_insert(void *be, api_job *j, api_err *e)
{
	pgs *p = be;
	if (util_new_id("job", j->id, sizeof j->id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	j->created_at = util_now_ms();
	pgp a = { 0 };
	p_text(&a, j->id);
	p_text(&a, j->model);
	p_text(&a, j->dataset);
	p_text(&a, j->val_dataset[0] ? j->val_dataset : NULL);
	p_int(&a, j->state);
	p_text(&a, j->config);
	p_int(&a, j->created_at);
	p_int(&a, config_replicas(j->config));
	p_text(&a, j->study[0] ? j->study : NULL);
	p_int(&a, j->trial);
	p_int(&a, j->pause_at);
	pgp m = { 0 };
	p_text(&m, j->model);
	pgp d = { 0 };
	p_text(&d, j->dataset);
	pgp v = { 0 };
	p_text(&v, j->val_dataset);
	pthread_mutex_lock(&p->mu);
	int rc = -1;
	/* the referenced rows are locked (shared) until the insert commits,
	 * so a concurrent delete cannot slip in between */
	PGresult *rm = NULL, *rd = NULL, *rv = NULL;
	if (begin(p) < 0 ||
	    !(rm = run(p, "SELECT 1 FROM models WHERE id=$1 FOR SHARE", &m, 0)) ||
	    !(rd = run(p, "SELECT 1 FROM datasets WHERE id=$1 FOR SHARE", &d, 0)) ||
	    !(rv = run(p, "SELECT 1 FROM datasets WHERE id=$1 FOR SHARE", &v, 0)))
		fail(p, e, "insert job");
	else if (PQntuples(rm) == 0)
		api_err_field(e, "model", "no model with this id");
	else if (PQntuples(rd) == 0)
		api_err_field(e, "dataset", "no data set with this id");
	else if (j->val_dataset[0] && PQntuples(rv) == 0)
		api_err_field(e, "validation.dataset", "no data set with this id");
	else if (cmd(p, "INSERT INTO jobs(id, model, dataset, val_dataset, state, progress, epoch,"
	                " step, stopped_early, config, created_at, started_at, finished_at, replicas,"
	                " study, trial, pause_at)"
	                " VALUES($1,$2,$3,$4,$5,0,0,0,0,$6,$7,0,0,$8,$9,$10,$11)", &a) == 0 &&
	         notify(p, 'q', j->id) == 0 && commit(p) == 0)
		rc = 0;
	else if (j->study[0] && strstr(PQerrorMessage(p->c), "jobs_trial"))
		/* another daemon made this trial's job first (see jobs_trial) */
		api_err_set(e, 409, "trial_exists", "trial %d of study %s has a job already",
		            j->trial, j->study);
	else
		fail(p, e, "insert job");
	PQclear(rm);
	PQclear(rd);
	PQclear(rv);
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int job_from_v(const PGresult *r, int i, void *out)
{
	job_from(r, i, out);
	return 0;
}

static int pg_job_get(void *be, const char *id, api_job *out, api_err *e)
{
	return get_by_id(be, "SELECT " JOB_COLS " FROM jobs WHERE id=$1", id, "job", job_from_v,
	                 out, e);
}

/* The jobs in one state (state < 0: any) or of one study (study not
 * NULL), in submission order, or trial order for a study. */
static int list_jobs(pgs *p, int state, const char *study, int64_t limit, int64_t offset,
                     cJSON *items, int64_t *total, api_err *e)
{
	char *lit = NULL;
	if (study && !(lit = PQescapeLiteral(p->c, study, strlen(study))))
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	/* state is an int the handler parsed, study a quoted literal */
	char where[200], count[300], page[600];
	snprintf(where, sizeof where, "(%d<0 OR state=%d) AND (%s IS NULL OR study=%s)", state,
	         state, lit ? lit : "NULL::text", lit ? lit : "NULL::text");
	PQfreemem(lit);
	snprintf(count, sizeof count, "SELECT count(*) FROM jobs WHERE %s", where);
	snprintf(page, sizeof page, "SELECT " JOB_COLS " FROM jobs WHERE %s ORDER BY %s"
	         " LIMIT $1 OFFSET $2", where, study ? "trial, seq" : "seq");
	return list_page(p, count, page, limit, offset, items, total, job_make, e);
}

static int pg_job_list(void *be, int state, int64_t limit, int64_t offset, cJSON *items,
                       int64_t *total, api_err *e)
{
	return list_jobs(be, state, NULL, limit, offset, items, total, e);
}

static int pg_job_list_study(void *be, const char *study, int64_t limit, int64_t offset,
                             cJSON *items, int64_t *total, api_err *e)
{
	return list_jobs(be, -1, study, limit, offset, items, total, e);
}

static int pg_job_pause_at(void *be, const char *id)
{
	return (int)job_int(be, id, "SELECT pause_at FROM jobs WHERE id=$1", 0, NULL);
}

static int pg_job_resume(void *be, const char *id, int pause_at)
{
	pgs *p = be;
	pgp a = { 0 };
	p_int(&a, pause_at);
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	int rc = begin(p) == 0 &&
	         cmd(p, "UPDATE jobs SET pause_at=$1, state=0 WHERE id=$2 AND state=5", &a) == 0 &&
	         notify(p, 'q', id) == 0 && commit(p) == 0 ? 0 : -1;
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Writes every mutable field of j (inside the caller's transaction). */
static int job_row_update(pgs *p, const api_job *j)
{
	pgp a = { 0 };
	p_int(&a, j->state);
	p_dbl(&a, j->progress);
	p_int(&a, j->epoch);
	p_int(&a, j->step);
	p_text(&a, j->metrics);
	p_text(&a, j->best);
	p_int(&a, j->stopped_early);
	if (j->model_version >= 0)
		p_int(&a, j->model_version);
	else
		p_text(&a, NULL);
	p_text(&a, j->error);
	p_int(&a, j->started_at);
	p_int(&a, j->finished_at);
	p_text(&a, j->id);
	p_int(&a, util_now_ms());
	/* a job that leaves this daemon (queued again or final) gives up its
	 * lease in the same write; a trial pausing although its cancel was
	 * asked for (after its daemon last looked) ends cancelled instead */
	return cmd(p, "UPDATE jobs SET state=CASE WHEN $1::int=5 AND cancel_requested=1 THEN 4"
	              " ELSE $1 END, progress=$2, epoch=$3, step=$4, metrics=$5,"
	              " best=$6, stopped_early=$7, model_version=$8, error=$9, started_at=$10,"
	              " finished_at=CASE WHEN $1::int=5 AND cancel_requested=1 THEN $13::bigint"
	              " ELSE $11::bigint END,"
	              " owner=CASE WHEN $1::int=1 THEN owner END,"
	              " attempts=CASE WHEN $1::int IN (0,5) THEN greatest(attempts-1, 0)"
	              " ELSE attempts END,"
	              " lease_token=CASE WHEN $1::int=1 THEN lease_token END,"
	              " lease_until=CASE WHEN $1::int=1 THEN lease_until END WHERE id=$12", &a);
}

/* While a write failed only because the server is unreachable (a restart)
 * and the job's lease is not known lost, it is tried again every 200 ms
 * for up to a minute: a running job rides out a database restart instead
 * of failing. 1 to try again (after the pause), else 0. */
static int again(const api_err *e, const char *job, int tries)
{
	if (e->status != 503 || tries >= 300 || (job && pg_lease_lost(job)))
		return 0;
	struct timespec ts = { 0, 200 * 1000000L };
	nanosleep(&ts, NULL);
	return 1;
}

static int guarded_once(pgs *p, const char *job, int (*body)(pgs *, void *), void *arg,
                        int events, api_err *e, const char *what);

/* A write through the job's lease: begin, check, body, commit. */
static int guarded(pgs *p, const char *job, int (*body)(pgs *, void *), void *arg,
                   int events, api_err *e, const char *what)
{
	int rc;
	for (int tries = 0; (rc = guarded_once(p, job, body, arg, events, e, what)) < 0 &&
	                    again(e, job, tries); tries++)
		e->status = 0;
	return rc;
}

static int guarded_once(pgs *p, const char *job, int (*body)(pgs *, void *), void *arg,
                        int events, api_err *e, const char *what)
{
	pthread_mutex_lock(&p->mu);
	int rc = -1;
	if (begin(p) < 0)
		fail(p, e, what);
	else if (lease_check(p, job) < 0)
		api_err_set(e, 409, "lease_lost", "another daemon holds job %s now", job);
	else if (body(p, arg) == 0 && (!events || notify(p, 'e', job) == 0) && commit(p) == 0)
		rc = 0;
	else
		fail(p, e, what);
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int update_body(pgs *p, void *arg)
{
	return job_row_update(p, arg);
}

static int pg_job_update(void *be, const api_job *j, api_err *e)
{
	return guarded(be, j->id, update_body, (void *)j, 1, e, "update job");
}

typedef struct start_arg {
	const api_job *j;
	int base;
} start_arg;

static int start_body(pgs *p, void *arg)
{
	start_arg *s = arg;
	if (s->base >= 0) {
		pgp a = { 0 };
		p_int(&a, s->base);
		p_text(&a, s->j->id);
		if (cmd(p, "UPDATE jobs SET base_version=$1 WHERE id=$2", &a) < 0)
			return -1;
	}
	return job_row_update(p, s->j);
}

static int pg_job_start(void *be, const api_job *j, int base_version, api_err *e)
{
	start_arg s = { j, base_version };
	return guarded(be, j->id, start_body, &s, 1, e, "start job");
}

static int pg_job_request_cancel(void *be, const char *id)
{
	pgs *p = be;
	pgp a = { 0 };
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	p_int(&a, util_now_ms());
	/* a trial that paused meanwhile (its daemon saw no cancel yet) is
	 * cancelled here; job_row_update does the same the other way round */
	int rc = begin(p) == 0 &&
	         cmd(p, "UPDATE jobs SET cancel_requested=1, state=CASE WHEN state=5 THEN 4 ELSE"
	                " state END, finished_at=CASE WHEN state=5 THEN $2 ELSE finished_at END"
	                " WHERE id=$1", &a) == 0 &&
	         notify(p, 'c', id) == 0 && notify(p, 'e', id) == 0 && commit(p) == 0 ? 0 : -1;
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* One integer of a job's row (def when there is no such row or NULL). */
static int64_t job_int(pgs *p, const char *id, const char *sql, int64_t def, int *found)
{
	pgp a = { 0 };
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	PGresult *r = run(p, sql, &a, 0);
	int64_t v = def;
	if (found)
		*found = r && PQntuples(r) == 1;
	if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = ival(r, 0, 0);
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return v;
}

static int pg_job_cancel_requested(void *be, const char *id)
{
	return job_int(be, id, "SELECT cancel_requested FROM jobs WHERE id=$1", 0, NULL) != 0;
}

static int pg_job_base_version(void *be, const char *id, int *version)
{
	int found = 0;
	*version = (int)job_int(be, id, "SELECT base_version FROM jobs WHERE id=$1", -1, &found);
	return found ? 0 : -1;
}

static int pg_job_set_base_version(void *be, const char *id, int version)
{
	pgs *p = be;
	pgp a = { 0 };
	p_int(&a, version);
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	int rc = cmd(p, "UPDATE jobs SET base_version=$1 WHERE id=$2", &a);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pg_jobs_unfinished(void *be, char (**ids)[API_ID_LEN], int *n)
{
	pgs *p = be;
	*ids = NULL;
	*n = 0;
	pthread_mutex_lock(&p->mu);
	PGresult *r = run(p, "SELECT id FROM jobs WHERE state IN (0,1,5) ORDER BY seq", NULL, 0);
	int rc = r ? 0 : -1, k = r ? PQntuples(r) : 0;
	if (k > 0 && (*ids = calloc((size_t)k, sizeof **ids)) != NULL) {
		for (int i = 0; i < k; i++)
			copy_id(r, i, 0, (*ids)[i], API_ID_LEN);
		*n = k;
	} else if (k > 0) {
		rc = -1;
	}
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pg_job_counts(void *be, int64_t counts[API_JOB_NSTATES])
{
	pgs *p = be;
	memset(counts, 0, sizeof(int64_t) * API_JOB_NSTATES);
	pthread_mutex_lock(&p->mu);
	PGresult *r = run(p, "SELECT state, count(*) FROM jobs GROUP BY state", NULL, 0);
	for (int i = 0; r && i < PQntuples(r); i++) {
		int64_t k = ival(r, i, 0);
		if (k >= 0 && k < API_JOB_NSTATES)
			counts[k] = ival(r, i, 1);
	}
	int rc = r ? 0 : -1;
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ---------------------------------------------------------------- metrics */

typedef struct metrics_arg {
	const char *job;
	const store_step *steps;
	int n, epoch;
	int64_t end_step;
	const char *doc;
	const api_job *j;
} metrics_arg;

/* The steps in one statement per 1000 (unnest of arrays as text). */
static int insert_steps(pgs *p, const char *job, const store_step *steps, int n)
{
	for (int from = 0; from < n; from += 1000) {
		int k = n - from < 1000 ? n - from : 1000;
		size_t cap = (size_t)k * 32 + 8;
		char *st = malloc(cap), *ep = malloc(cap), *lo = malloc(cap), *lr = malloc(cap);
		int rc = st && ep && lo && lr ? 0 : -1;
		size_t ns = 0, ne = 0, nl = 0, nr = 0;
		for (int i = 0; rc == 0 && i < k; i++) {
			const store_step *s = &steps[from + i];
			const char *sep = i ? "," : "{";
			ns += (size_t)snprintf(st + ns, cap - ns, "%s%lld", sep, (long long)s->step);
			ne += (size_t)snprintf(ep + ne, cap - ne, "%s%d", sep, s->epoch);
			if (isfinite(s->loss))
				nl += (size_t)snprintf(lo + nl, cap - nl, "%s%.9g", sep, (double)s->loss);
			else
				nl += (size_t)snprintf(lo + nl, cap - nl, "%sNULL", sep);
			nr += (size_t)snprintf(lr + nr, cap - nr, "%s%.9g", sep,
			                       isfinite(s->lr) ? (double)s->lr : 0.0);
		}
		if (rc == 0) {
			snprintf(st + ns, cap - ns, "}");
			snprintf(ep + ne, cap - ne, "}");
			snprintf(lo + nl, cap - nl, "}");
			snprintf(lr + nr, cap - nr, "}");
			pgp a = { 0 };
			p_text(&a, job);
			p_text(&a, st);
			p_text(&a, ep);
			p_text(&a, lo);
			p_text(&a, lr);
			rc = cmd(p, "INSERT INTO job_steps(job, step, epoch, loss, lr) SELECT $1, s, e,"
			            " l::real, r::real FROM unnest($2::bigint[], $3::int[],"
			            " $4::double precision[], $5::double precision[]) AS t(s, e, l, r)"
			            " ON CONFLICT (job, step) DO UPDATE SET epoch=EXCLUDED.epoch,"
			            " loss=EXCLUDED.loss, lr=EXCLUDED.lr", &a);
		}
		free(st);
		free(ep);
		free(lo);
		free(lr);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int metrics_body(pgs *p, void *arg)
{
	metrics_arg *m = arg;
	if (m->n > 0 && insert_steps(p, m->job, m->steps, m->n) < 0)
		return -1;
	if (m->doc) {
		pgp a = { 0 };
		p_text(&a, m->job);
		p_int(&a, m->epoch);
		p_int(&a, m->end_step);
		p_text(&a, m->doc);
		if (cmd(p, "INSERT INTO job_epochs(job, epoch, end_step, doc) VALUES($1,$2,$3,$4)"
		           " ON CONFLICT (job, epoch) DO UPDATE SET end_step=EXCLUDED.end_step,"
		           " doc=EXCLUDED.doc", &a) < 0)
			return -1;
	}
	return m->j ? job_row_update(p, m->j) : 0;
}

static int pg_metrics_write(void *be, const char *job, const store_step *steps, int n,
                            int epoch, int64_t end_step, const char *epoch_doc,
                            const api_job *j, api_err *e)
{
	metrics_arg m = { job, steps, n, epoch, end_step, epoch_doc, j };
	return guarded(be, job, metrics_body, &m, 1, e, "write metrics");
}

static int pg_metrics_get(void *be, const char *job, int64_t since_step, cJSON **out,
                          api_err *e)
{
	pgs *p = be;
	*out = NULL;
	pgp a = { 0 };
	p_text(&a, job);
	pgp b = { 0 };
	p_text(&b, job);
	p_int(&b, since_step);
	pthread_mutex_lock(&p->mu);
	/* one snapshot for the three reads */
	PGresult *j = NULL, *s = NULL, *ep = NULL;
	int rc = -1;
	if (begin(p) < 0 || cmd(p, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", NULL) < 0 ||
	    !(j = run(p, "SELECT 1 FROM jobs WHERE id=$1", &a, 0)) ||
	    !(s = run(p, "SELECT step, epoch, loss, lr FROM job_steps WHERE job=$1 AND step>$2"
	                 " ORDER BY step", &b, 0)) ||
	    !(ep = run(p, "SELECT doc FROM job_epochs WHERE job=$1 ORDER BY epoch", &a, 0))) {
		fail(p, e, "read metrics");
	} else if (PQntuples(j) == 0) {
		not_found(e, "job", job);
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON *steps = cJSON_AddArrayToObject(o, "steps");
		cJSON *epochs = cJSON_AddArrayToObject(o, "epochs");
		for (int i = 0; i < PQntuples(s); i++)
			cJSON_AddItemToArray(steps, store_step_json(ival(s, i, 0), (int)ival(s, i, 1),
			                                            !PQgetisnull(s, i, 2),
			                                            atof(PQgetvalue(s, i, 2)),
			                                            atof(PQgetvalue(s, i, 3))));
		for (int i = 0; i < PQntuples(ep); i++) {
			cJSON *d = val(ep, i, 0) ? cJSON_Parse(val(ep, i, 0)) : NULL;
			if (d)
				cJSON_AddItemToArray(epochs, d);
		}
		*out = o;
		rc = 0;
	}
	PQclear(j);
	PQclear(s);
	PQclear(ep);
	if (p->in_tx)
		commit(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Events from rows (kind, id, epoch, loss, lr, doc): a step's data is
 * made from its columns (kind 0), any other's is doc. r is cleared. */
static int events_from(PGresult *r, store_event **out, int *n)
{
	*out = NULL;
	*n = 0;
	if (!r)
		return -1;
	int k = PQntuples(r), rc = 0;
	if (k > 0 && !(*out = calloc((size_t)k, sizeof **out)))
		rc = -1;
	for (int i = 0; rc == 0 && i < k; i++) {
		store_event *ev = &(*out)[i];
		ev->kind = (int)ival(r, i, 0);
		ev->id = ival(r, i, 1);
		if (ev->kind == 0) {
			cJSON *o = store_step_json(ev->id, (int)ival(r, i, 2), !PQgetisnull(r, i, 3),
			                           atof(PQgetvalue(r, i, 3)), atof(PQgetvalue(r, i, 4)));
			ev->data = cJSON_PrintUnformatted(o);
			cJSON_Delete(o);
		} else {
			ev->data = dup_val(r, i, 5);
		}
		if (!ev->data)
			ev->data = strdup("{}");
		*n = i + 1;
	}
	PQclear(r);
	return rc;
}

static int pg_history_after(void *be, const char *job, int64_t after, store_event **out,
                            int *n)
{
	return events_from(query_by(be, "SELECT 0 AS k, step, epoch, loss, lr, NULL AS doc"
	                            " FROM job_steps WHERE job=$1 AND step>=$2 UNION ALL SELECT 1,"
	                            " end_step, epoch, NULL, NULL, doc FROM job_epochs WHERE job=$1"
	                            " AND end_step>=$2 ORDER BY 2, 1", job, 1, after), out, n);
}

static int pg_history(void *be, const char *job, store_event **out, int *n)
{
	return pg_history_after(be, job, -1, out, n);
}

/* ---------------------------------------------------------------- checkpoints */

typedef struct ckpt_arg {
	const char *key;
	const void *buf;
	size_t len;
} ckpt_arg;

static int ckpt_body(pgs *p, void *arg)
{
	ckpt_arg *c = arg;
	const void *bufs[1] = { c->buf };
	return blob_put(p, c->key, bufs, &c->len, 1);
}

static int pg_checkpoint_put(void *be, const char *job, const void *buf, size_t len)
{
	char key[64];
	snprintf(key, sizeof key, "c:%s", job);
	ckpt_arg c = { key, buf, len };
	api_err e = API_ERR_INIT;
	if (guarded(be, job, ckpt_body, &c, 0, &e, "write checkpoint") == 0)
		return 0;
	errno = e.status == 507 ? ENOSPC : EIO;
	return -1;
}

static int pg_checkpoint_get(void *be, const char *job, void **buf, size_t *len)
{
	pgs *p = be;
	char key[64];
	snprintf(key, sizeof key, "c:%s", job);
	void *map = NULL;
	size_t n = 0;
	*buf = NULL;
	*len = 0;
	pthread_mutex_lock(&p->mu);
	int rc = blob_get(p, key, &map, &n);
	pthread_mutex_unlock(&p->mu);
	if (rc < 0 || !map)
		return rc;
	*buf = malloc(n ? n : 1);
	if (*buf) {
		memcpy(*buf, map, n);
		*len = n;
	}
	munmap(map, n);
	return *buf ? 0 : -1;
}

/* A checkpoint goes once its job is final (whoever ended it), or through
 * the job's lease; never under a daemon that lost the job while it lives. */
static int pg_checkpoint_delete(void *be, const char *job)
{
	pgs *p = be;
	char key[64];
	snprintf(key, sizeof key, "c:%s", job);
	pgp a = { 0 };
	p_text(&a, job);
	p_int(&a, held_token(job, NULL));
	pthread_mutex_lock(&p->mu);
	PGresult *r = NULL;
	int rc = begin(p) == 0 &&
	         (r = run(p, "SELECT 1 FROM jobs WHERE id=$1 AND (state IN (2,3,4) OR"
	                     " $2::bigint=0 OR lease_token=$2) FOR UPDATE", &a, 0)) != NULL &&
	         PQntuples(r) == 1 && blob_delete(p, key, 0) == 0 && commit(p) == 0 ? 0 : -1;
	PQclear(r);
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ---------------------------------------------------------------- studies
 * The rows of storage.c's studies block, the same contracts. Which daemon
 * works on a study at a time is settled by pg_study_lock; a trial's job is
 * made once whatever happens (jobs_trial, a unique index). */

static int pg_job_of_trial(void *be, const char *study, int number, char job[API_ID_LEN],
                           char model[API_ID_LEN])
{
	PGresult *r = query_by(be, "SELECT id, model FROM jobs WHERE study=$1 AND trial=$2"
	                       " ORDER BY seq LIMIT 1", study, 1, number);
	int found = r && PQntuples(r) == 1;
	if (found) {
		copy_id(r, 0, 0, job, API_ID_LEN);
		copy_id(r, 0, 1, model, API_ID_LEN);
	}
	PQclear(r);
	return found;
}

static int pg_job_delete(void *be, const char *id, api_err *e)
{
	static const char *const del[] = { "DELETE FROM job_steps WHERE job=$1",
		"DELETE FROM job_epochs WHERE job=$1", "DELETE FROM jobs WHERE id=$1", NULL };
	char key[64];
	snprintf(key, sizeof key, "c:%s", id);
	return delete_unused(be, id, "job", "SELECT 1 FROM jobs WHERE id=$1 FOR UPDATE",
	                     "SELECT 1 FROM jobs WHERE id=$1 AND state IN (0,1,5)", del, key, e);
}

static int pg_study_insert(void *be, store_study *st, const char *dataset, const char *val,
                           const char *test, api_err *e)
{
	pgs *p = be;
	if (util_new_id("std", st->id, sizeof st->id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	st->created_at = util_now_ms();
	pgp a = { 0 };
	p_text(&a, st->id);
	p_text(&a, st->name);
	p_int(&a, st->state);
	p_text(&a, st->config);
	p_text(&a, dataset);
	p_text(&a, val);
	p_text(&a, test);
	p_int(&a, st->created_at);
	pthread_mutex_lock(&p->mu);
	int rc = cmd(p, "INSERT INTO studies(id, name, state, config, dataset, val_dataset,"
	                " test_dataset, created_at, started_at, finished_at)"
	                " VALUES($1,$2,$3,$4,$5,$6,$7,$8,0,0)", &a);
	if (rc < 0)
		fail(p, e, "insert study");
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int study_from_v(const PGresult *r, int i, void *out)
{
	store_study *st = out;
	memset(st, 0, sizeof *st);
	copy_id(r, i, 0, st->id, sizeof st->id);
	st->name = dup_val(r, i, 1);
	st->state = (int)ival(r, i, 2);
	st->config = dup_val(r, i, 3);
	st->error = dup_val(r, i, 4);
	st->created_at = ival(r, i, 5);
	st->started_at = ival(r, i, 6);
	st->finished_at = ival(r, i, 7);
	return 0;
}

static int pg_study_get(void *be, const char *id, store_study *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	PGresult *r = query_by(be, "SELECT id, name, state, config, error, created_at, started_at,"
	                       " finished_at FROM studies WHERE id=$1", id, 0, 0);
	int rc = !r ? fail(be, e, "study") : PQntuples(r) == 0 ? not_found(e, "study", id)
	         : study_from_v(r, 0, out);
	PQclear(r);
	return rc;
}

static int pg_study_ids(void *be, int active_only, int64_t limit, int64_t offset,
                        char (**ids)[API_ID_LEN], int *n, int64_t *total)
{
	pgs *p = be;
	*ids = NULL;
	*n = 0;
	pgp a = { 0 };
	p_int(&a, active_only);
	p_int(&a, limit);
	p_int(&a, offset);
	pthread_mutex_lock(&p->mu);
	PGresult *r = run(p, "SELECT id, count(*) OVER () FROM studies WHERE $1::int=0 OR state<2"
	                     " ORDER BY seq LIMIT $2 OFFSET $3", &a, 0);
	int rc = r ? 0 : -1, k = r ? PQntuples(r) : 0;
	if (k > 0 && (*ids = calloc((size_t)k, sizeof **ids)) != NULL) {
		for (int i = 0; i < k; i++)
			copy_id(r, i, 0, (*ids)[i], API_ID_LEN);
		*n = k;
	} else if (k > 0) {
		rc = -1;
	}
	PQclear(r);
	if (total && rc == 0 && k == 0 && offset > 0) {
		/* past the end: the count comes from the table */
		pgp b = { 0 };
		p_int(&b, active_only);
		r = run(p, "SELECT count(*) FROM studies WHERE $1::int=0 OR state<2", &b, 0);
		*total = r ? ival(r, 0, 0) : 0;
		PQclear(r);
	} else if (total) {
		*total = k > 0 ? ival(r, 0, 1) : 0;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pg_study_update(void *be, const store_study *st)
{
	pgs *p = be;
	pgp a = { 0 };
	p_int(&a, st->state);
	p_text(&a, st->error);
	p_int(&a, st->started_at);
	p_int(&a, st->finished_at);
	p_text(&a, st->id);
	PGresult *r = srun(p, "UPDATE studies SET state=$1, error=$2, started_at=$3,"
	                   " finished_at=$4 WHERE id=$5", &a);
	PQclear(r);
	return r ? 0 : -1;
}

static int pg_study_delete(void *be, const char *id)
{
	pgs *p = be;
	pgp a = { 0 };
	p_text(&a, id);
	pthread_mutex_lock(&p->mu);
	int rc = begin(p) == 0 && cmd(p, "DELETE FROM trials WHERE study=$1", &a) == 0 &&
	         cmd(p, "DELETE FROM study_events WHERE study=$1", &a) == 0 &&
	         cmd(p, "DELETE FROM studies WHERE id=$1", &a) == 0 && commit(p) == 0 ? 0 : -1;
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pg_trial_put(void *be, const char *study, const store_trial *t)
{
	pgs *p = be;
	pgp a = { 0 };
	p_text(&a, study);
	p_int(&a, t->number);
	p_int(&a, t->state);
	p_text(&a, t->params);
	if (isfinite(t->value))
		p_dbl(&a, t->value);
	else
		p_text(&a, NULL);
	p_int(&a, t->epochs);
	p_dbl(&a, t->seconds);
	p_int(&a, t->rows);
	p_int(&a, t->seed);
	p_text(&a, t->job);
	p_text(&a, t->model);
	p_int(&a, t->rung);
	PGresult *r = srun(p, "INSERT INTO trials(study, number, state, params, value, epochs, seconds,"
	                " rows, seed, job, model, rung) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"
	                " ON CONFLICT(study, number) DO UPDATE SET state=$3,"
	                " params=coalesce($4, trials.params), value=$5, epochs=$6, seconds=$7,"
	                " rows=$8, seed=$9, job=$10, model=$11, rung=$12"
	                /* a row naming no job never replaces one that names it
	                 * (a daemon's late write of a trial another made) */
	                " WHERE trials.job = '' OR $10 <> ''", &a);
	PQclear(r);
	return r ? 0 : -1;
}

#define TRIAL_COLS "number, state, params, value, epochs, seconds, rows, seed, job, model, rung"

static void trial_from(const PGresult *r, int i, store_trial *t)
{
	memset(t, 0, sizeof *t);
	t->number = (int)ival(r, i, 0);
	t->state = (int)ival(r, i, 1);
	t->params = dup_val(r, i, 2);
	t->value = PQgetisnull(r, i, 3) ? NAN : strtod(PQgetvalue(r, i, 3), NULL);
	t->epochs = (int)ival(r, i, 4);
	t->seconds = val(r, i, 5) ? strtod(val(r, i, 5), NULL) : 0;
	t->rows = ival(r, i, 6);
	t->seed = ival(r, i, 7);
	copy_id(r, i, 8, t->job, sizeof t->job);
	copy_id(r, i, 9, t->model, sizeof t->model);
	t->rung = (int)ival(r, i, 10);
}

static int pg_trials_get(void *be, const char *study, store_trial **out, int *n)
{
	*out = NULL;
	*n = 0;
	PGresult *r = query_by(be, "SELECT " TRIAL_COLS " FROM trials WHERE study=$1"
	                       " ORDER BY number", study, 0, 0);
	int k = r ? PQntuples(r) : 0, rc = r ? 0 : -1;
	if (k > 0 && !(*out = calloc((size_t)k, sizeof **out)))
		rc = -1;
	for (int i = 0; rc == 0 && i < k; i++)
		trial_from(r, i, &(*out)[i]);
	if (rc == 0)
		*n = k;
	PQclear(r);
	return rc;
}

static int pg_trials_page(void *be, const char *study, int by_number, int maximize,
                          int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                          api_err *e)
{
	pgs *p = be;
	const char *sql = by_number
		? "SELECT " TRIAL_COLS " FROM trials WHERE study=$1 ORDER BY number LIMIT $2 OFFSET $3"
		: maximize ? "SELECT " TRIAL_COLS " FROM trials WHERE study=$1"
		             " ORDER BY value IS NULL, value DESC, number LIMIT $2 OFFSET $3"
		           : "SELECT " TRIAL_COLS " FROM trials WHERE study=$1"
		             " ORDER BY value IS NULL, value, number LIMIT $2 OFFSET $3";
	pgp c = { 0 };
	p_text(&c, study);
	pgp a = { 0 };
	p_text(&a, study);
	p_int(&a, limit);
	p_int(&a, offset);
	pthread_mutex_lock(&p->mu);
	PGresult *rc_ = run(p, "SELECT count(*) FROM trials WHERE study=$1", &c, 0);
	PGresult *r = rc_ ? run(p, sql, &a, 0) : NULL;
	int rc = 0;
	if (!r) {
		rc = fail(p, e, "list trials");
	} else {
		*total = ival(rc_, 0, 0);
		for (int i = 0; i < PQntuples(r); i++) {
			store_trial t;
			trial_from(r, i, &t);
			cJSON_AddItemToArray(items, store_trial_json(&t));
			free(t.params);
		}
	}
	PQclear(rc_);
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pg_trial_counts(void *be, const char *study, int64_t counts[7], int64_t *epochs)
{
	pgs *p = be;
	memset(counts, 0, sizeof(int64_t) * 7);
	*epochs = 0;
	PGresult *r = query_by(p, "SELECT state, count(*), coalesce(sum(epochs), 0) FROM trials"
	                       " WHERE study=$1 GROUP BY state", study, 0, 0);
	for (int i = 0; r && i < PQntuples(r); i++) {
		int64_t k = ival(r, i, 0);
		if (k >= 0 && k < 7)
			counts[k] = ival(r, i, 1);
		*epochs += ival(r, i, 2);
	}
	int rc = r ? 0 : -1;
	PQclear(r);
	return rc;
}

static int pg_study_event(void *be, const char *study, int kind, const char *data, int64_t *seq)
{
	pgs *p = be;
	pgp a = { 0 };
	p_text(&a, study);
	p_int(&a, kind);
	p_text(&a, data);
	/* the next number; taken meanwhile (a study's first event, written
	 * by its creator without the lock) means another try */
	int rc = -1;
	for (int tries = 0; rc < 0 && tries < 5; tries++) {
		PGresult *r = srun(p, "INSERT INTO study_events(study, seq, kind, data)"
		                   " SELECT $1, coalesce(max(seq), 0) + 1, $2, $3 FROM study_events"
		                   " WHERE study=$1 ON CONFLICT (study, seq) DO NOTHING RETURNING seq",
		                   &a);
		if (!r)
			break;
		if (PQntuples(r) == 1) {
			*seq = ival(r, 0, 0);
			rc = 0;
		}
		PQclear(r);
	}
	return rc;
}

/* pg_trial_put and pg_study_event in one commit: the study lock's
 * transaction when this thread holds it (pass_c), else one of their own on
 * the store's connection (pass_c pointing at it while p->mu is held). */
static int pg_trial_record(void *be, const char *study, const store_trial *t, int kind,
                           const char *data, int64_t *seq)
{
	pgs *p = be;
	if (pass_c)
		return pg_trial_put(be, study, t) == 0 &&
		       pg_study_event(be, study, kind, data, seq) == 0 ? 0 : -1;
	pthread_mutex_lock(&p->mu);
	int ok = begin(p) == 0;
	pass_c = ok ? p->c : NULL;
	ok = ok && pg_trial_put(be, study, t) == 0 &&
	     pg_study_event(be, study, kind, data, seq) == 0 && !pass_failed;
	pass_c = NULL;
	pass_failed = 0;
	if (ok)
		ok = commit(p) == 0;
	else
		rollback(p);
	pthread_mutex_unlock(&p->mu);
	return ok ? 0 : -1;
}

static int pg_study_events(void *be, const char *study, int64_t after, store_event **out,
                           int *n)
{
	return events_from(query_by(be, "SELECT kind, seq, NULL, NULL, NULL, data FROM study_events"
	                            " WHERE study=$1 AND seq>$2 ORDER BY seq", study, 1, after),
	                   out, n);
}

/*
 * The studies' lock: an advisory lock taken by a transaction left open on
 * the lock connection until pg_study_unlock. A daemon killed meanwhile
 * loses its connection and with it the lock; a frozen one loses it when
 * idle_in_transaction_session_timeout (the lease) ends its session. The
 * holder's writes to the studies' tables (srun) go into that transaction:
 * they commit with the lock's end, or not at all when the lock was lost,
 * so a daemon thawed mid-pass cannot overwrite what the next holder did.
 * (Jobs and models are written on the store's connection: one job per
 * trial is the unique index jobs_trial's.)
 */
static int pg_study_lock(void *be, const char *id, int wait)
{
	pgs *p = be;
	if (p->lockc && PQstatus(p->lockc) != CONNECTION_OK) {
		PQfinish(p->lockc);
		p->lockc = NULL;
	}
	if (!p->lockc && !(p->lockc = pg_connect_more(p)))
		return -1;
	char sql[400];
	snprintf(sql, sizeof sql, "BEGIN; SET LOCAL lock_timeout = '30s';"
	         " SELECT %s(hashtext('nnd_study:' || current_schema() || ':' || '%s'))",
	         wait ? "1 FROM pg_advisory_xact_lock" : "pg_try_advisory_xact_lock",
	         api_id_valid(id, "std") ? id : "");
	p->lock_open = 1;
	PGresult *r = PQexec(p->lockc, sql);
	int rc = PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ? -1
	         : wait ? 1 : strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (rc == 1)
		pass_c = p->lockc;
	return rc;
}

static int pg_study_lock_held(void *be)
{
	pgs *p = be;
	if (!p->lock_open || !p->lockc || pass_failed)
		return 0;
	PGresult *r = PQexec(p->lockc, "SELECT 1");
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	return ok;
}

static void pg_study_unlock(void *be)
{
	pgs *p = be;
	if (!p->lock_open || !p->lockc)
		return;
	/* the pass's writes to the studies' tables commit with the lock's end;
	 * a session the server ended meanwhile (a frozen daemon's) commits
	 * none of them */
	PGresult *r = PQexec(p->lockc, pass_c ? "COMMIT" : "ROLLBACK");
	if (pass_c && PQresultStatus(r) != PGRES_COMMAND_OK)
		util_log(1, "store: a study's lock ended before its writes: %s",
		         PQerrorMessage(p->lockc));
	PQclear(r);
	pass_c = NULL;
	pass_failed = 0;
	p->lock_open = 0;
}

/* ---------------------------------------------------------------- claims */

int pg_claim(pgs *p, const char *owner, int workers, int lease_ms, char id[API_ID_LEN],
             int64_t *token)
{
	pgp a = { 0 };
	p_text(&a, owner);
	p_int(&a, lease_ms);
	p_int(&a, workers);
	pthread_mutex_lock(&p->mu);
	/* the oldest queued job that fits, and, a study's trial, whose study
	 * runs fewer trials than its parallelism; rows other daemons are
	 * claiming are skipped, not waited for. Claims take turns (a lock of
	 * the schema's), so two daemons never both see a study's last free
	 * place. */
	PGresult *r = NULL;
	int rc = -1;
	if (begin(p) == 0 &&
	    cmd(p, "SELECT pg_advisory_xact_lock(hashtext('nnd_claim:' || current_schema()))",
	        NULL) == 0 &&
	    (r = run(p, "UPDATE jobs SET state=1, owner=$1, lease_token=nextval('lease_tokens'),"
	                " lease_until=clock_timestamp() + $2 * interval '1 millisecond',"
	                " attempts=attempts+1 WHERE id=(SELECT id FROM jobs j WHERE state=0 AND"
	                " replicas<=$3 AND (study IS NULL OR (SELECT count(*) FROM jobs o"
	                " WHERE o.study=j.study AND o.state=1) < coalesce((SELECT (s.config::json"
	                " ->>'parallelism')::int FROM studies s WHERE s.id=j.study), 1))"
	                " ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 1)"
	                " RETURNING id, lease_token", &a, 0)) != NULL && commit(p) == 0)
		rc = PQntuples(r) == 1;
	rollback(p);
	if (rc == 1) {
		copy_id(r, 0, 0, id, API_ID_LEN);
		*token = ival(r, 0, 1);
		pg_lease_hold(id, *token);
	}
	PQclear(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int pg_renew(pgs *p, const char *id, int64_t token, int lease_ms, int *cancel)
{
	pgp a = { 0 };
	p_text(&a, id);
	p_int(&a, token);
	p_int(&a, lease_ms);
	pthread_mutex_lock(&p->mu);
	PGresult *r = run(p, "UPDATE jobs SET lease_until=clock_timestamp() + $3 * interval"
	                     " '1 millisecond' WHERE id=$1 AND lease_token=$2 AND state=1"
	                     " RETURNING cancel_requested", &a, 0);
	int rc = r ? PQntuples(r) == 1 : -1;
	if (rc == 1)
		*cancel = ival(r, 0, 0) != 0;
	PQclear(r);
	if (rc == 0) {
		/* not ours any more: ended by this daemon's own last write (a
		 * final or paused state, in the instant before the worker let go
		 * of the lease), or taken (queued again, another's token) */
		pgp b = { 0 };
		p_text(&b, id);
		r = run(p, "SELECT state FROM jobs WHERE id=$1", &b, 0);
		if (r && PQntuples(r) == 1 && ival(r, 0, 0) >= 2)
			rc = 2;
		PQclear(r);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int pg_requeue_expired(pgs *p, int max_attempts)
{
	pgp a = { 0 };
	p_int(&a, max_attempts);
	p_int(&a, util_now_ms());
	pthread_mutex_lock(&p->mu);
	/* a job whose daemons keep dying with it fails after max_attempts
	 * claims instead of taking the next one down too */
	int rc = -1;
	PGresult *r = NULL;
	if (begin(p) == 0 &&
	    (r = run(p, "UPDATE jobs SET owner=NULL, lease_token=NULL, lease_until=NULL,"
	                " state=CASE WHEN attempts>=$1 THEN 3 ELSE 0 END,"
	                " finished_at=CASE WHEN attempts>=$1 THEN $2 ELSE finished_at END,"
	                " error=CASE WHEN attempts>=$1 THEN json_build_object('code',"
	                " 'too_many_attempts', 'detail', 'the job was claimed ' || attempts ||"
	                " ' times and each time the daemon running it died or lost it')::text"
	                " ELSE error END WHERE id IN (SELECT id FROM jobs WHERE state=1 AND"
	                " lease_until < clock_timestamp() FOR UPDATE SKIP LOCKED)"
	                " RETURNING id, state", &a, 0)) != NULL) {
		int ok = 1;
		for (int i = 0; ok && i < PQntuples(r); i++) {
			util_log(1, "store: %s: its lease ended; %s", val(r, i, 0),
			         ival(r, i, 1) == 0 ? "queued again" : "failed (too many attempts)");
			ok = notify(p, ival(r, i, 1) == 0 ? 'q' : 'e', val(r, i, 0)) == 0;
		}
		if (ok && commit(p) == 0)
			rc = PQntuples(r);
	}
	PQclear(r);
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int pg_cancel_queued(pgs *p, const char *id)
{
	pgp a = { 0 };
	p_text(&a, id);
	p_int(&a, util_now_ms());
	pthread_mutex_lock(&p->mu);
	int rc = -1;
	PGresult *r = NULL;
	if (begin(p) == 0 &&
	    (r = run(p, "UPDATE jobs SET state=4, finished_at=$2 WHERE id=$1 AND state IN (0,5)"
	                " RETURNING id", &a, 0)) != NULL &&
	    (PQntuples(r) == 0 || notify(p, 'e', id) == 0) && commit(p) == 0)
		rc = PQntuples(r);
	PQclear(r);
	rollback(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

const char *pg_channel(const pgs *p)
{
	return p->channel;
}

/* ---------------------------------------------------------------- the table */

static const store_ops pg_ops = {
	.name = "postgresql",
	.close = pg_close,
	.ready = pg_ready,
	.dataset_create = pg_dataset_create,
	.dataset_get = pg_dataset_get,
	.dataset_list = pg_dataset_list,
	.dataset_delete = pg_dataset_delete,
	.dataset_load = pg_dataset_load,
	.model_create = pg_model_create,
	.model_get = pg_model_get,
	.model_list = pg_model_list,
	.model_delete = pg_model_delete,
	.model_head = pg_model_head,
	.model_load = pg_model_load,
	.model_publish = pg_model_publish,
	.job_insert = pg_job_insert,
	.job_get = pg_job_get,
	.job_list = pg_job_list,
	.job_update = pg_job_update,
	.job_base_version = pg_job_base_version,
	.job_set_base_version = pg_job_set_base_version,
	.job_start = pg_job_start,
	.job_request_cancel = pg_job_request_cancel,
	.job_cancel_requested = pg_job_cancel_requested,
	.jobs_unfinished = pg_jobs_unfinished,
	.job_counts = pg_job_counts,
	.metrics_write = pg_metrics_write,
	.metrics_get = pg_metrics_get,
	.history = pg_history,
	.history_after = pg_history_after,
	.job_pause_at = pg_job_pause_at,
	.job_resume = pg_job_resume,
	.job_list_study = pg_job_list_study,
	.checkpoint_put = pg_checkpoint_put,
	.checkpoint_get = pg_checkpoint_get,
	.checkpoint_delete = pg_checkpoint_delete,
	.job_of_trial = pg_job_of_trial,
	.job_delete = pg_job_delete,
	.study_insert = pg_study_insert,
	.study_get = pg_study_get,
	.study_ids = pg_study_ids,
	.study_update = pg_study_update,
	.study_delete = pg_study_delete,
	.trial_put = pg_trial_put,
	.trials_get = pg_trials_get,
	.trials_page = pg_trials_page,
	.trial_counts = pg_trial_counts,
	.study_event = pg_study_event,
	.trial_record = pg_trial_record,
	.study_events = pg_study_events,
	.study_lock = pg_study_lock,
	.study_lock_held = pg_study_lock_held,
	.study_unlock = pg_study_unlock,
};

int pg_idle_tx_ms = 10000;

/* Server notices (CREATE ... IF NOT EXISTS that skipped) are not news. */
static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Opens one more connection to the same database and schema (for
 * LISTEN and the claim loop in cluster.c). NULL when it cannot. */
PGconn *pg_connect_more(pgs *p)
{
	PGconn *c = PQconnectdb(p->url);
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet, NULL);
	if (session_setup(c, p->schema) < 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

pgs *pg_clone(pgs *p)
{
	pgs *c = calloc(1, sizeof *c);
	if (!c || !(c->url = strdup(p->url))) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	snprintf(c->schema, sizeof c->schema, "%s", p->schema);
	snprintf(c->channel, sizeof c->channel, "%s", p->channel);
	c->c = pg_connect_more(p);
	PGresult *r = c->c ? PQexec(c->c, "SET lock_timeout = '1s'") : NULL;
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok) {
		pg_close(c);
		return NULL;
	}
	return c;
}

void pg_free(pgs *p)
{
	pg_close(p);
}

const char *pg_schema(const pgs *p)
{
	return p->schema;
}

int store_pg_open(const char *url, void **be, const store_ops **ops, char *err,
                  size_t errlen)
{
	pgs *p = calloc(1, sizeof *p);
	if (!p || !(p->url = strdup(url))) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->c = PQconnectdb(url);
	if (PQstatus(p->c) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(p->c));
		pg_close(p);
		return -1;
	}
	PQsetNoticeProcessor(p->c, quiet, NULL);
	if (pick_schema(p, err, errlen) < 0 || migrate(p, err, errlen) < 0) {
		pg_close(p);
		return -1;
	}
	*be = p;
	*ops = &pg_ops;
	return 0;
}
