/*
 * storage.c - the SQLite store and the binary files beside it (see
 * storage.h for the layout and the durability rules).
 *
 * Order of writes, so a crash at any point leaves no row naming a missing
 * file: write the file under a temporary name, fsync, rename, fsync the
 * directory, and only then commit the row. A crash between the rename and
 * the commit leaves an unreferenced file, removed at the next start.
 * synchronous=FULL makes every commit durable before the 2xx goes out.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage.h"
#include "store_ops.h"
#include "spec_json.h"
#include "util.h"

typedef struct snap {
	api_model_snap pub;     /* first: the handlers see this */
	int refs;
	nn_model *m;
	char model[API_ID_LEN];
	struct snap *next;      /* in the cache list */
	int cached;
	uint64_t used;          /* cache clock at the last lookup (LRU) */
	int64_t bytes;          /* parameters and state, for the cache budget */
	api_tab_enc *enc;       /* owned; pub.enc points here */
} snap;

/* The snapshot cache holds at most this many models and bytes of weights;
 * past either, the least recently used go (holders keep theirs alive). */
#define SNAP_CACHE_MAX 64
#define SNAP_CACHE_BYTES ((int64_t)1 << 30)

/*
 * A data set's stored matrix, mapped once and shared by the jobs training
 * on it (store_dataset_acquire). Checking a file (its CRC over every byte)
 * and mapping it costs some 20 ms per 100 MB; data files never change once
 * written, so a mapping checked once serves every later job, and one no
 * job holds stays cached until DS_CACHE_IDLE_MAX others or
 * DS_CACHE_IDLE_BYTES push it out, or its data set is deleted. The pages
 * are the file's page cache (clean, reclaimable), not a private copy.
 *
 * Invariants: refs counts the holders plus one while cached; d is freed
 * (unmapped) when refs reaches 0; guarded by store.ds_mu.
 *
 * An image data set's values are integers 0..255 held as floats. The
 * engine trains from a byte copy of such data (a quarter of the memory to
 * gather from) and would make one per job; store_dataset_bytes makes one
 * per data set instead, shared by every job holding it (see x8_state).
 */
enum {
	X8_NONE,                /* not made (or dropped: no holder) */
	X8_BUILDING,            /* chunks handed out to the holders asking */
	X8_READY,               /* x8 holds the copy */
	X8_NO                   /* not bytes, or too small to pay: never made */
};

typedef struct dsmap {
	api_dataset d;          /* first: holders see this */
	char id[API_ID_LEN];
	int refs;
	int cached;
	uint64_t used;          /* cache clock at the last acquire (LRU) */
	int64_t bytes;
	/* The byte copy: x8 (x8_len bytes of an anonymous mapping) is valid
	 * in X8_BUILDING and X8_READY only; once no holder is left (refs ==
	 * cached) it stays for the next job only while x8_trim_locked keeps
	 * it (a few recently used idle data sets), else an idle data set
	 * costs no memory beyond its file's page cache. While building, chunk c
	 * (X8_CHUNK values) belongs to the holder that took it (x8_next) until
	 * it counts it in x8_done; x8_bad records a value that is not a byte.
	 * Guarded by store.ds_mu, except a taken chunk's bytes. */
	int x8_state;
	uint8_t *x8;
	size_t x8_len;
	int64_t x8_chunks, x8_next, x8_done;
	int x8_bad;
	struct dsmap *next;
} dsmap;

/* Values per chunk of the byte copy (4 MiB of floats read per chunk). */
#define X8_CHUNK ((int64_t)1 << 20)

#define DS_CACHE_IDLE_MAX 4
#define DS_CACHE_IDLE_BYTES ((int64_t)1 << 31)
/* Idle data sets keep their byte copies for the next job (making one
 * again cost every job's start some 20 ms per 188 MB of floats):
 * the DS_IDLE_COPIES most recently used of them, each copy of at most
 * DS_IDLE_COPY_MAX bytes. */
#define DS_IDLE_COPIES 2
#define DS_IDLE_COPY_MAX ((size_t)512 << 20)

/*
 * Prepared statements are kept for reuse: parsing and planning a statement
 * cost more than running it (a study's trial makes some fifty store calls),
 * so prep() hands out the one prepared for the same text before, reset,
 * and unprep() resets it for the next caller instead of finalizing it. A
 * text whose statement is in use (nested) gets another one.
 */
#define STMT_CACHE 128
#define PUB_STRIPES 16

typedef struct stmt_slot {
	char *sql;
	uint32_t hash;
	int busy;
	sqlite3_stmt *st;
} stmt_slot;

struct store {
	/* another store chosen at start (store_open_url), else NULL: SQLite */
	const store_ops *ops;
	void *be;
	char dir[1024];
	char ds_dir[1100], mdl_dir[1100], ckpt_dir[1100];
	sqlite3 *db;
	pthread_mutex_t mu;       /* guards db */
	/* one model's publishers, one at a time (publish: taken before mu);
	 * striped by the model's id */
	pthread_mutex_t pub_mu[PUB_STRIPES];
	pthread_mutex_t snap_mu;  /* guards the snapshot cache and refs */
	snap *snaps;
	uint64_t serial;
	uint64_t clock;           /* LRU clock for the cache */
	pthread_mutex_t ds_mu;    /* guards the data set cache */
	pthread_cond_t ds_cv;     /* a byte copy finished building */
	dsmap *dsmaps;
	uint64_t ds_clock;
	stmt_slot stmts[STMT_CACHE];  /* prepared statements kept (guarded by mu) */
	int n_stmts;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS datasets(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT UNIQUE NOT NULL, doc TEXT NOT NULL, task INT, rows INT, features INT,"
	" outputs INT, image INT, bytes INT, created_at INT);"
	"CREATE TABLE IF NOT EXISTS models(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT UNIQUE NOT NULL, name TEXT, spec TEXT NOT NULL, task INT, inputs INT,"
	" outputs INT, params INT, version INT, trained_by TEXT, metrics TEXT, classes TEXT,"
	" created_at INT);"
	"CREATE TABLE IF NOT EXISTS model_versions(model TEXT, version INT, job TEXT,"
	" created_at INT, PRIMARY KEY(model, version)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT UNIQUE NOT NULL, model TEXT, dataset TEXT, val_dataset TEXT, state INT,"
	" progress REAL, epoch INT, step INT, metrics TEXT, best TEXT, stopped_early INT,"
	" model_version INT, error TEXT, config TEXT, base_version INT DEFAULT -1,"
	" created_at INT, started_at INT, finished_at INT);"
	"CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);"
	"CREATE TABLE IF NOT EXISTS job_steps(job TEXT, step INT, epoch INT, loss REAL,"
	" lr REAL, PRIMARY KEY(job, step)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS job_epochs(job TEXT, epoch INT, end_step INT, doc TEXT,"
	" PRIMARY KEY(job, epoch)) WITHOUT ROWID;";

/* ---------------------------------------------------------------- helpers */

/* The first line of a public function whose work another store does when
 * one was chosen at start (see store_ops.h). */
#define VIA(s, fn, ...) \
	do { \
		if ((s)->ops) \
			return (s)->ops->fn((s)->be, __VA_ARGS__); \
	} while (0)

/* A failed statement: a full disk is a 507, anything else a 500. Full
 * means SQLITE_FULL, or an I/O error whose errno is ENOSPC, EDQUOT or
 * EFBIG: SQLite's own record of it (sqlite3_system_errno, the main file's
 * last errno) or, for the write-ahead log whose errno SQLite does not
 * keep, errno as the failed call left it (callers come here straight
 * from the failing sqlite3 call). */
static int db_fail(store *s, api_err *e, const char *what)
{
	int err = errno;
	util_log(0, "store: %s: %s", what, sqlite3_errmsg(s->db));
	int rc = sqlite3_extended_errcode(s->db), last = 0;
	sqlite3_file_control(s->db, "main", SQLITE_FCNTL_LAST_ERRNO, &last);
	if ((rc & 0xff) == SQLITE_FULL ||
	    ((rc & 0xff) == SQLITE_IOERR && (util_errno_is_space(sqlite3_system_errno(s->db)) ||
	                                     util_errno_is_space(last) ||
	                                     util_errno_is_space(err))))
		return api_err_set(e, 507, "insufficient_storage", "the store is out of space (%s)",
		                   what);
	return api_err_set(e, 500, "store_failed", "the store failed (%s)", what);
}

/* A failed file write (errno set): 507 for a full disk, else 500. */
static int file_fail(api_err *e, const char *what)
{
	int err = errno;
	if (util_errno_is_space(err))
		return api_err_set(e, 507, "insufficient_storage", "cannot write the %s: %s", what,
		                   strerror(err));
	return api_err_set(e, 500, "store_failed", "cannot write the %s: %s", what,
	                   strerror(err));
}

static uint32_t sql_hash(const char *sql)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *c = (const unsigned char *)sql; *c; c++)
		h = (h ^ *c) * 16777619u;
	return h;
}

/* The statement of sql, ready to bind (caller holds s->mu); unprep() it
 * when done. NULL (logged) when sql does not prepare. */
static sqlite3_stmt *prep(store *s, const char *sql)
{
	uint32_t h = sql_hash(sql);
	for (int i = 0; i < s->n_stmts; i++) {
		stmt_slot *x = &s->stmts[i];
		if (x->hash == h && !x->busy && strcmp(x->sql, sql) == 0) {
			x->busy = 1;
			return x->st;
		}
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
	    SQLITE_OK) {
		util_log(0, "store: prepare: %s", sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return NULL;
	}
	char *copy = s->n_stmts < STMT_CACHE ? strdup(sql) : NULL;
	if (copy)
		s->stmts[s->n_stmts++] = (stmt_slot){ copy, h, 1, st };
	return st;
}

/* Done with a statement of prep(): reset for the next use when it is
 * kept, else finalized. */
static void unprep(store *s, sqlite3_stmt *st)
{
	if (!st)
		return;
	for (int i = 0; i < s->n_stmts; i++)
		if (s->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			s->stmts[i].busy = 0;
			return;
		}
	sqlite3_finalize(st);
}

static void stmts_free(store *s)
{
	for (int i = 0; i < s->n_stmts; i++) {
		sqlite3_finalize(s->stmts[i].st);
		free(s->stmts[i].sql);
	}
	s->n_stmts = 0;
}

static int exec(store *s, const char *sql)
{
	if (!strchr(sql, ';')) {
		/* one statement (BEGIN, COMMIT...): kept prepared too */
		sqlite3_stmt *st = prep(s, sql);
		int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			util_log(0, "store: %s: %s", sql, sqlite3_errmsg(s->db));
		unprep(s, st);
		return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
	}
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		util_log(0, "store: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(st, i, t, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static int not_found(api_err *e, const char *what, const char *id)
{
	return api_err_set(e, 404, "not_found", "no %s with id %s", what, id);
}

static void ds_file(const char *id, char *name, size_t n)
{
	snprintf(name, n, "%s.data", id);
}

static void mdl_file(const char *id, int version, char *name, size_t n)
{
	snprintf(name, n, "%s-v%d.model", id, version);
}

/* Removes files in dir named after ids the table no longer holds. With
 * `versioned`, names are "<id>-v<N>.model" and sql_has takes the version
 * as its second parameter: a version file written just before a crash,
 * whose commit never happened, goes too. */
static void remove_orphans(store *s, const char *dir, const char *sql_has, int versioned)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	int removed = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char id[64];
		size_t n = strcspn(de->d_name, ".-");
		if (n >= sizeof id)
			continue;
		memcpy(id, de->d_name, n);
		id[n] = '\0';
		int version = -1;
		char tail[16] = "";
		if (versioned && (sscanf(de->d_name + n, "-v%d%15s", &version, tail) != 2 ||
		                  strcmp(tail, ".model") != 0))
			version = -1;
		sqlite3_stmt *st = prep(s, sql_has);
		if (!st)
			break;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		if (versioned)
			sqlite3_bind_int(st, 2, version);
		int keep = sqlite3_step(st) == SQLITE_ROW;
		unprep(s, st);
		if (!keep) {
			char path[2400];
			snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
			if (unlink(path) == 0)
				removed++;
		}
	}
	closedir(d);
	if (removed) {
		util_fsync_dir(dir);
		util_log(2, "store: removed %d orphan files in %s", removed, dir);
	}
}

/* Studies (the block "studies" at the end of this file). A trial's row is
 * written before its model and job exist (job "" until then), so a crash
 * between them loses no trial; trials_value serves the leaderboard. */
static const char study_schema[] =
	"CREATE TABLE IF NOT EXISTS studies(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT UNIQUE NOT NULL, name TEXT, state INT, config TEXT NOT NULL, dataset TEXT,"
	" val_dataset TEXT, test_dataset TEXT, error TEXT, created_at INT, started_at INT,"
	" finished_at INT);"
	"CREATE TABLE IF NOT EXISTS trials(study TEXT, number INT, state INT, params TEXT,"
	" value REAL, epochs INT, seconds REAL, rows INT, seed INT, job TEXT, model TEXT,"
	" rung INT, PRIMARY KEY(study, number)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS trials_value ON trials(study, value);"
	"CREATE TABLE IF NOT EXISTS study_events(study TEXT, seq INT, kind INT, data TEXT,"
	" PRIMARY KEY(study, seq)) WITHOUT ROWID;";

/* Columns added after the first schema; "duplicate column" means done. */
static int migrate(store *s)
{
	static const char *const add[] = {
		"ALTER TABLE jobs ADD COLUMN cancel_requested INT DEFAULT 0",
		/* studies: a trial's job names its study and number; pause_at is
		 * the epoch successive halving stops it at (0 = none) */
		"ALTER TABLE jobs ADD COLUMN study TEXT",
		"ALTER TABLE jobs ADD COLUMN trial INT DEFAULT 0",
		"ALTER TABLE jobs ADD COLUMN pause_at INT DEFAULT 0",
	};
	for (size_t i = 0; i < sizeof add / sizeof add[0]; i++) {
		char *msg = NULL;
		int rc = sqlite3_exec(s->db, add[i], NULL, NULL, &msg);
		int ok = rc == SQLITE_OK || (msg && strstr(msg, "duplicate column"));
		if (!ok)
			util_log(0, "store: migrate: %s", msg ? msg : "?");
		sqlite3_free(msg);
		if (!ok)
			return -1;
	}
	return exec(s, "CREATE INDEX IF NOT EXISTS jobs_study ON jobs(study, trial)") < 0 ||
	       exec(s, study_schema) < 0 ? -1 : 0;
}

/* Drops a data set's byte copy (back to X8_NONE; X8_NO stays). */
static void x8_drop(dsmap *m)
{
	if (m->x8)
		munmap(m->x8, m->x8_len);
	m->x8 = NULL;
	m->x8_len = 0;
	if (m->x8_state != X8_NO)
		m->x8_state = X8_NONE;
}

static void dsmap_free(dsmap *m)
{
	x8_drop(m);
	api_dataset_free(&m->d);
	free(m);
}

/* A new store's locks (store_close destroys them). */
static void locks_init(store *s)
{
	pthread_mutex_init(&s->mu, NULL);
	for (int i = 0; i < PUB_STRIPES; i++)
		pthread_mutex_init(&s->pub_mu[i], NULL);
	pthread_mutex_init(&s->snap_mu, NULL);
	pthread_mutex_init(&s->ds_mu, NULL);
	pthread_cond_init(&s->ds_cv, NULL);
}

int store_open(const char *dir, store **out, char *err, size_t errlen)
{
	store *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	snprintf(s->ds_dir, sizeof s->ds_dir, "%s/datasets", dir);
	snprintf(s->mdl_dir, sizeof s->mdl_dir, "%s/models", dir);
	snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s/checkpoints", dir);
	locks_init(s);
	if (util_mkdir(dir) < 0 || util_mkdir(s->ds_dir) < 0 || util_mkdir(s->mdl_dir) < 0 ||
	    util_mkdir(s->ckpt_dir) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		store_close(s);
		return -1;
	}
	util_fsync_dir(dir);
	int n = util_remove_temps(dir) + util_remove_temps(s->ds_dir) +
	        util_remove_temps(s->mdl_dir) + util_remove_temps(s->ckpt_dir);
	if (n)
		util_log(2, "store: removed %d temporary files", n);
	char path[1200];
	snprintf(path, sizeof path, "%s/nnd.db", dir);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		         s->db ? sqlite3_errmsg(s->db) : "out of memory");
		store_close(s);
		return -1;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (exec(s, "PRAGMA journal_mode=WAL") < 0 || exec(s, "PRAGMA synchronous=FULL") < 0 ||
	    exec(s, schema) < 0 || migrate(s) < 0) {
		snprintf(err, errlen, "cannot initialise %s: %s", path, sqlite3_errmsg(s->db));
		store_close(s);
		return -1;
	}
	remove_orphans(s, s->ds_dir, "SELECT 1 FROM datasets WHERE id=?", 0);
	remove_orphans(s, s->mdl_dir,
	               "SELECT 1 FROM model_versions WHERE model=? AND version=?", 1);
	remove_orphans(s, s->ckpt_dir, "SELECT 1 FROM jobs WHERE id=? AND state IN (0,1,5)", 0);
	*out = s;
	return 0;
}

int store_open_url(const char *url, const char *dir, store **out, char *err, size_t errlen)
{
	if (!url || !*url)
		return store_open(dir, out, err, errlen);
	store *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	locks_init(s);
	if (strncmp(url, "postgresql://", 13) != 0 && strncmp(url, "postgres://", 11) != 0) {
		snprintf(err, errlen, "--store: not a postgresql:// URI");
		store_close(s);
		return -1;
	}
	if (store_pg_open(url, &s->be, &s->ops, err, errlen) < 0) {
		store_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

const char *store_kind(store *s)
{
	return s->ops ? s->ops->name : "sqlite";
}

int store_ready(store *s)
{
	return s->ops ? s->ops->ready(s->be) : 1;
}

void *store_impl(store *s)
{
	return s->be;
}

void store_close(store *s)
{
	if (!s)
		return;
	if (s->ops && s->be)
		s->ops->close(s->be);
	snap *p = s->snaps;
	while (p) {
		snap *next = p->next;
		p->cached = 0;
		if (--p->refs == 0) {
			nn_model_free(p->m);
			for (int i = 0; i < p->pub.n_classes; i++)
				free(p->pub.classes[i]);
			free(p->pub.classes);
			api_tab_enc_free(p->enc);
			free(p->enc);
			free(p);
		}
		p = next;
	}
	dsmap *dm = s->dsmaps;
	while (dm) {
		dsmap *next = dm->next;
		dm->cached = 0;
		if (--dm->refs == 0)
			dsmap_free(dm);
		dm = next;
	}
	if (s->db) {
		stmts_free(s);
		sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
		sqlite3_close(s->db);
	}
	pthread_mutex_destroy(&s->mu);
	for (int i = 0; i < PUB_STRIPES; i++)
		pthread_mutex_destroy(&s->pub_mu[i]);
	pthread_mutex_destroy(&s->snap_mu);
	pthread_mutex_destroy(&s->ds_mu);
	pthread_cond_destroy(&s->ds_cv);
	free(s);
}

/* ---------------------------------------------------------------- data sets */

int store_ds_info_make(api_dataset_info *out, const char *id, const char *doc, int regression,
                       int64_t rows, int features, int outputs, int image, int64_t bytes,
                       int64_t created_at)
{
	memset(out, 0, sizeof *out);
	snprintf(out->id, sizeof out->id, "%s", id ? id : "");
	out->task = regression ? NN_TASK_REGRESSION : NN_TASK_CLASSIFICATION;
	out->rows = rows;
	out->features = features;
	out->outputs = outputs;
	out->image = image;
	cJSON *d = doc ? cJSON_Parse(doc) : NULL;
	cJSON *o = cJSON_CreateObject();
	if (!o || !d) {
		cJSON_Delete(d);
		cJSON_Delete(o);
		return -1;
	}
	cJSON_AddStringToObject(o, "id", out->id);
	while (d->child) {
		cJSON *it = cJSON_DetachItemViaPointer(d, d->child);
		cJSON_AddItemToObject(o, it->string, it);
	}
	cJSON_Delete(d);
	cJSON_AddNumberToObject(o, "bytes", (double)bytes);
	char t[40];
	api_time_format(created_at, t, sizeof t);
	cJSON_AddStringToObject(o, "created_at", t);
	out->doc = o;
	return 0;
}

static int ds_info_from_row(sqlite3_stmt *st, api_dataset_info *out)
{
	/* columns: id, doc, task, rows, features, outputs, image, bytes, created_at */
	return store_ds_info_make(out, (const char *)sqlite3_column_text(st, 0),
	                          (const char *)sqlite3_column_text(st, 1),
	                          sqlite3_column_int(st, 2), sqlite3_column_int64(st, 3),
	                          sqlite3_column_int(st, 4), sqlite3_column_int(st, 5),
	                          sqlite3_column_int(st, 6), sqlite3_column_int64(st, 7),
	                          sqlite3_column_int64(st, 8));
}

#define DS_COLS "id, doc, task, rows, features, outputs, image, bytes, created_at"

int store_dataset_create(store *s, const api_dataset *d, const char *name,
                         api_dataset_info *out, api_err *e)
{
	VIA(s, dataset_create, d, name, out, e);
	char id[API_ID_LEN], file[64];
	if (util_new_id("ds", id, sizeof id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	cJSON *doc = api_dataset_doc(d, name);
	char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
	cJSON_Delete(doc);
	if (!text)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	/* the matrix goes to the file from the data set's own arrays: no
	 * second copy of it in memory */
	api_dataset_pieces pc;
	void *buf = NULL;
	size_t len = 0;
	int rc;
	ds_file(id, file, sizeof file);
	if (api_dataset_serialize_pieces(d, &pc) == 0) {
		len = pc.len[0] + pc.len[1] + pc.len[2] + pc.len[3];
		rc = util_write_atomic_pieces(s->ds_dir, file, pc.p, pc.len, 4);
		api_dataset_pieces_release(&pc);
	} else if (api_dataset_serialize(d, &buf, &len) == 0) {
		rc = util_write_atomic(s->ds_dir, file, buf, len);
		free(buf);
	} else {
		free(text);
		return api_err_set(e, 500, "out_of_memory", "cannot serialise the data set");
	}
	if (rc < 0) {
		free(text);
		return file_fail(e, "data set");
	}
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, "INSERT INTO datasets(id, doc, task, rows, features, outputs,"
	                           " image, bytes, created_at) VALUES(?,?,?,?,?,?,?,?,?)");
	int ok = 0;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 3, d->task == NN_TASK_REGRESSION);
		sqlite3_bind_int64(st, 4, d->rows);
		sqlite3_bind_int(st, 5, d->features);
		sqlite3_bind_int(st, 6, d->outputs);
		sqlite3_bind_int(st, 7, d->width > 0);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)len);
		sqlite3_bind_int64(st, 9, util_now_ms());
		ok = sqlite3_step(st) == SQLITE_DONE;
		unprep(s, st);
	}
	if (!ok)
		db_fail(s, e, "insert data set");
	pthread_mutex_unlock(&s->mu);
	free(text);
	if (!ok) {
		util_unlink(s->ds_dir, file);
		return -1;
	}
	return store_dataset_get(s, id, out, e);
}

int store_dataset_get(store *s, const char *id, api_dataset_info *out, api_err *e)
{
	VIA(s, dataset_get, id, out, e);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, "SELECT " DS_COLS " FROM datasets WHERE id=?");
	int rc = -1;
	if (!st) {
		db_fail(s, e, "get data set");
	} else {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW)
			rc = ds_info_from_row(st, out) == 0 ? 0 : db_fail(s, e, "data set row");
		else if (r == SQLITE_DONE)
			not_found(e, "data set", id);
		else
			db_fail(s, e, "get data set");
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int64_t count_rows(store *s, const char *sql)
{
	sqlite3_stmt *st = prep(s, sql);
	int64_t n = -1;
	if (st && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	unprep(s, st);
	return n;
}

/* One page of a table's rows, oldest first: each row's document (doc
 * makes it from the statement's row; NULL skips the row) into items, and
 * the table's row count into *total. what names the table in an error. */
static int list_page(store *s, const char *table, const char *cols,
                     cJSON *(*doc)(sqlite3_stmt *), const char *what, int64_t limit,
                     int64_t offset, cJSON *items, int64_t *total, api_err *e)
{
	char sql[512];
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	*total = count_rows(s, sql);
	snprintf(sql, sizeof sql, "SELECT %s FROM %s ORDER BY seq LIMIT ? OFFSET ?", cols, table);
	sqlite3_stmt *st = prep(s, sql);
	if (!st || *total < 0) {
		rc = db_fail(s, e, what);
	} else {
		sqlite3_bind_int64(st, 1, limit);
		sqlite3_bind_int64(st, 2, offset);
		while (sqlite3_step(st) == SQLITE_ROW) {
			cJSON *o = doc(st);
			if (o)
				cJSON_AddItemToArray(items, o);
		}
	}
	unprep(s, st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static cJSON *ds_doc_from_row(sqlite3_stmt *st)
{
	api_dataset_info info;
	return ds_info_from_row(st, &info) == 0 ? info.doc : NULL;
}

int store_dataset_list(store *s, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                       api_err *e)
{
	VIA(s, dataset_list, limit, offset, items, total, e);
	return list_page(s, "datasets", DS_COLS, ds_doc_from_row, "list data sets", limit, offset,
	                 items, total, e);
}

/* 1 when a queued or running job uses the data set / model. */
static int in_use(store *s, const char *sql, const char *id)
{
	sqlite3_stmt *st = prep(s, sql);
	if (!st)
		return 1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int used = sqlite3_step(st) == SQLITE_ROW;
	unprep(s, st);
	return used;
}

/* Drops the byte copies of idle data sets (no holder: none can be
 * building) but the DS_IDLE_COPIES most recently used, and any idle copy
 * over DS_IDLE_COPY_MAX bytes. Caller holds ds_mu. */
static void x8_trim_locked(store *s)
{
	for (;;) {
		int n = 0;
		dsmap *victim = NULL;
		for (dsmap *m = s->dsmaps; m; m = m->next) {
			if (m->refs > m->cached || !m->x8)
				continue;    /* held, or no copy */
			if (m->x8_len > DS_IDLE_COPY_MAX) {
				x8_drop(m);
				continue;
			}
			n++;
			if (!victim || m->used < victim->used)
				victim = m;
		}
		if (n <= DS_IDLE_COPIES)
			return;
		x8_drop(victim);
	}
}

static void ds_uncache(store *s, const char *id);

int store_dataset_delete(store *s, const char *id, api_err *e)
{
	if (s->ops) {
		if (s->ops->dataset_delete(s->be, id, e) < 0)
			return -1;
		ds_uncache(s, id);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	int rc = -1;
	if (in_use(s, "SELECT 1 FROM jobs WHERE (dataset=?1 OR val_dataset=?1) AND state IN (0,1,5)", id)) {
		api_err_set(e, 409, "in_use", "data set %s is used by a queued or running job", id);
	} else if (in_use(s, "SELECT 1 FROM studies WHERE (dataset=?1 OR val_dataset=?1 OR"
	                     " test_dataset=?1) AND state<2", id)) {
		api_err_set(e, 409, "in_use", "data set %s is used by a queued or running study", id);
	} else {
		sqlite3_stmt *st = prep(s, "DELETE FROM datasets WHERE id=?");
		if (st) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(st) != SQLITE_DONE)
				db_fail(s, e, "delete data set");
			else if (sqlite3_changes(s->db) == 0)
				not_found(e, "data set", id);
			else
				rc = 0;
		} else {
			db_fail(s, e, "delete data set");
		}
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == 0) {
		ds_uncache(s, id);
		char file[64];
		ds_file(id, file, sizeof file);
		util_unlink(s->ds_dir, file);
	}
	return rc;
}

int store_dataset_load(store *s, const char *id, api_dataset *out, api_err *e)
{
	VIA(s, dataset_load, id, out, e);
	char path[1200];
	snprintf(path, sizeof path, "%s/%s.data", s->ds_dir, id);
	/* Mapped, not read: the matrix stays in the page cache, shared by every
	 * job on the data set, instead of one private copy per job (and a
	 * second one while it was parsed). Data files never change once
	 * written, and one in use cannot be deleted. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0) {
		void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		close(fd);
		fd = -1;
		if (map != MAP_FAILED) {
			if (api_dataset_deserialize_mapped(map, (size_t)sb.st_size, out, e) == 0) {
				out->map_file = 1;
				return 0;
			}
			munmap(map, (size_t)sb.st_size);
			return -1;
		}
	}
	if (fd >= 0)
		close(fd);
	void *buf = NULL;
	size_t len = 0;
	if (util_read_file(path, &buf, &len) < 0)
		return api_err_set(e, 404, "not_found", "the data of data set %s is missing", id);
	int rc = api_dataset_deserialize(buf, len, out, e);
	free(buf);
	return rc;
}

/* ---- the data set cache (see dsmap) */

static void dsmap_unref_locked(dsmap *m)
{
	if (--m->refs == 0)
		dsmap_free(m);
}

/* Drops idle entries, least recently used first, past the idle budget.
 * Caller holds ds_mu. */
static void ds_evict_locked(store *s)
{
	for (;;) {
		int n = 0;
		int64_t bytes = 0;
		dsmap **victim = NULL;
		for (dsmap **pp = &s->dsmaps; *pp; pp = &(*pp)->next) {
			if ((*pp)->refs > 1)
				continue;    /* held by a job */
			n++;
			bytes += (*pp)->bytes;
			if (!victim || (*pp)->used < (*victim)->used)
				victim = pp;
		}
		if (!victim || (n <= DS_CACHE_IDLE_MAX && bytes <= DS_CACHE_IDLE_BYTES))
			return;
		dsmap *v = *victim;
		*victim = v->next;
		v->cached = 0;
		dsmap_unref_locked(v);
	}
}

static void ds_uncache(store *s, const char *id)
{
	pthread_mutex_lock(&s->ds_mu);
	for (dsmap **pp = &s->dsmaps; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->id, id) == 0) {
			dsmap *m = *pp;
			*pp = m->next;
			m->cached = 0;
			dsmap_unref_locked(m);
			break;
		}
	pthread_mutex_unlock(&s->ds_mu);
}

int store_dataset_acquire(store *s, const char *id, const api_dataset **out, api_err *e)
{
	*out = NULL;
	pthread_mutex_lock(&s->ds_mu);
	for (dsmap *m = s->dsmaps; m; m = m->next)
		if (strcmp(m->id, id) == 0) {
			m->refs++;
			m->used = ++s->ds_clock;
			pthread_mutex_unlock(&s->ds_mu);
			*out = &m->d;
			return 0;
		}
	pthread_mutex_unlock(&s->ds_mu);

	/* checked and mapped outside the lock; a racing acquire of the same
	 * data set that cached it first wins, and this copy goes */
	dsmap *m = calloc(1, sizeof *m);
	if (!m)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	if (store_dataset_load(s, id, &m->d, e) < 0) {
		free(m);
		return -1;
	}
	snprintf(m->id, sizeof m->id, "%s", id);
	m->bytes = m->d.map ? (int64_t)m->d.map_len
	                    : (int64_t)(m->d.rows * (m->d.features + m->d.outputs) * 4);
	pthread_mutex_lock(&s->ds_mu);
	for (dsmap *o = s->dsmaps; o; o = o->next)
		if (strcmp(o->id, id) == 0) {
			o->refs++;
			o->used = ++s->ds_clock;
			pthread_mutex_unlock(&s->ds_mu);
			api_dataset_free(&m->d);
			free(m);
			*out = &o->d;
			return 0;
		}
	m->refs = 2;              /* the caller and the cache */
	m->cached = 1;
	m->used = ++s->ds_clock;
	m->next = s->dsmaps;
	s->dsmaps = m;
	ds_evict_locked(s);
	pthread_mutex_unlock(&s->ds_mu);
	*out = &m->d;
	return 0;
}

void store_dataset_release(store *s, const api_dataset *d)
{
	if (!d)
		return;
	dsmap *m = (dsmap *)d;
	pthread_mutex_lock(&s->ds_mu);
	int last = m->refs == 1;  /* then m goes here (no longer cached) */
	dsmap_unref_locked(m);
	if (!last) {              /* still alive: it may be idle now */
		ds_evict_locked(s);
		x8_trim_locked(s);
	}
	pthread_mutex_unlock(&s->ds_mu);
}

/* ---- the shared byte copy (see dsmap) */

/* Starts m's byte copy (ds_mu held): X8_BUILDING with its memory, X8_NO
 * when it would not pay, or still X8_NONE without memory. */
static void x8_begin_locked(dsmap *m)
{
	int64_t n = m->d.rows * (int64_t)m->d.features;
	if (!m->d.x || n < STORE_BYTES_MIN) {
		m->x8_state = X8_NO;
		return;
	}
	/* whole huge pages: a few dozen faults instead of one per 4 KiB, and
	 * the steps' random rows miss the TLB less */
	const size_t huge = (size_t)2 << 20;
	size_t len = ((size_t)n + huge - 1) / huge * huge;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	nn_huge_pages(p, len);
	m->x8 = p;
	m->x8_len = len;
	m->x8_chunks = (n + X8_CHUNK - 1) / X8_CHUNK;
	m->x8_next = m->x8_done = 0;
	m->x8_bad = 0;
	m->x8_state = X8_BUILDING;
}

int64_t store_bytes_built;

/* Counts `k` chunks done (ds_mu held); the last one settles the copy. */
static void x8_done_locked(store *s, dsmap *m, int64_t k)
{
	m->x8_done += k;
	if (m->x8_done < m->x8_chunks)
		return;
	if (m->x8_bad) {
		x8_drop(m);
		m->x8_state = X8_NO;
	} else {
		m->x8_state = X8_READY;
		store_bytes_built++;
	}
	pthread_cond_broadcast(&s->ds_cv);
}

/* Lets the pages of x[0..n) that lie wholly inside it leave this process's
 * resident set: they stay in the page cache, and a later read maps them
 * again. A job that trains from the byte copy then holds the copy, not
 * both it and the floats (the floats are four times its size). */
static void drop_resident(const float *x, int64_t n)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)x + pg - 1) & ~(pg - 1);
	uintptr_t b = ((uintptr_t)(x + n)) & ~(pg - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

const uint8_t *store_dataset_bytes(store *s, const api_dataset *d)
{
	if (!d)
		return NULL;
	dsmap *m = (dsmap *)d;
	const int64_t n = d->rows * (int64_t)d->features;
	pthread_mutex_lock(&s->ds_mu);
	if (m->x8_state == X8_NONE)
		x8_begin_locked(m);
	while (m->x8_state == X8_BUILDING) {
		if (m->x8_bad && m->x8_next < m->x8_chunks) {
			/* no point converting the rest */
			int64_t left = m->x8_chunks - m->x8_next;
			m->x8_next = m->x8_chunks;
			x8_done_locked(s, m, left);
		} else if (m->x8_next < m->x8_chunks) {
			/* every holder asking converts chunks until none are left */
			int64_t c = m->x8_next++;
			int64_t from = c * X8_CHUNK, len = n - from < X8_CHUNK ? n - from : X8_CHUNK;
			uint8_t *dst = m->x8 + from;
			pthread_mutex_unlock(&s->ds_mu);
			int ok = nn_to_bytes(dst, d->x + from, len);
			if (ok && d->map_file)
				drop_resident(d->x + from, len);
			pthread_mutex_lock(&s->ds_mu);
			m->x8_bad |= !ok;
			x8_done_locked(s, m, 1);
		} else {
			pthread_cond_wait(&s->ds_cv, &s->ds_mu);
		}
	}
	const uint8_t *x8 = m->x8_state == X8_READY ? m->x8 : NULL;
	pthread_mutex_unlock(&s->ds_mu);
	return x8;
}

/* ---------------------------------------------------------------- models */

#define MDL_COLS "id, name, spec, params, version, trained_by, metrics, classes, created_at," \
	" task, inputs, outputs"

int store_mdl_info_make(api_model_info *out, const store_mdl_row *r)
{
	memset(out, 0, sizeof *out);
	snprintf(out->id, sizeof out->id, "%s", r->id ? r->id : "");
	out->version = r->version;
	out->task = r->regression ? NN_TASK_REGRESSION : NN_TASK_CLASSIFICATION;
	out->inputs = r->inputs;
	out->outputs = r->outputs;
	cJSON *sp = r->spec ? cJSON_Parse(r->spec) : NULL;
	cJSON *o = cJSON_CreateObject();
	if (!sp || !o) {
		cJSON_Delete(sp);
		cJSON_Delete(o);
		return -1;
	}
	cJSON_AddStringToObject(o, "id", out->id);
	if (r->name)
		cJSON_AddStringToObject(o, "name", r->name);
	else
		cJSON_AddNullToObject(o, "name");
	cJSON_DeleteItemFromObjectCaseSensitive(sp, "name");
	while (sp->child) {
		cJSON *it = cJSON_DetachItemViaPointer(sp, sp->child);
		cJSON_AddItemToObject(o, it->string, it);
	}
	cJSON_Delete(sp);
	cJSON_AddNumberToObject(o, "parameters", (double)r->params);
	cJSON_AddNumberToObject(o, "version", out->version);
	char t[40];
	api_time_format(r->created_at, t, sizeof t);
	cJSON_AddStringToObject(o, "created_at", t);
	if (r->trained_by) {
		cJSON_AddStringToObject(o, "trained_by", r->trained_by);
		cJSON *mj = r->metrics ? cJSON_Parse(r->metrics) : NULL;
		if (mj)
			cJSON_AddItemToObject(o, "metrics", mj);
	}
	cJSON *meta = r->classes ? cJSON_Parse(r->classes) : NULL;
	const cJSON *cj, *cols;
	api_tab_meta_parse(meta, &cj, &cols);
	if (cj)
		cJSON_AddItemToObject(o, "classes", cJSON_Duplicate(cj, 1));
	if (cols)
		cJSON_AddItemToObject(o, "columns", cJSON_Duplicate(cols, 1));
	cJSON_Delete(meta);
	out->doc = o;
	return 0;
}

static int mdl_info_from_row(sqlite3_stmt *st, api_model_info *out)
{
	/* columns: MDL_COLS */
	store_mdl_row r = {
		(const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
		(const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3),
		sqlite3_column_int(st, 4), (const char *)sqlite3_column_text(st, 5),
		(const char *)sqlite3_column_text(st, 6), (const char *)sqlite3_column_text(st, 7),
		sqlite3_column_int64(st, 8), sqlite3_column_int(st, 9), sqlite3_column_int(st, 10),
		sqlite3_column_int(st, 11)
	};
	return store_mdl_info_make(out, &r);
}

static void snap_cache_new(store *s, const char *id, const nn_model *m);

int store_model_create(store *s, const char *name, const nn_model *m, api_model_info *out,
                       api_err *e)
{
	if (s->ops) {
		if (s->ops->model_create(s->be, name, m, out, e) < 0)
			return -1;
		snap_cache_new(s, out->id, m);
		return 0;
	}
	char id[API_ID_LEN], file[64];
	if (util_new_id("mdl", id, sizeof id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	const nn_model_spec *spec = nn_model_spec_of(m);
	cJSON *sj = api_model_spec_to_json(spec);
	char *text = sj ? cJSON_PrintUnformatted(sj) : NULL;
	cJSON_Delete(sj);
	void *buf = NULL;
	size_t len = 0;
	if (!text || nn_model_save(m, &buf, &len) != NN_OK) {
		free(text);
		return api_err_set(e, 500, "out_of_memory", "cannot serialise the model");
	}
	mdl_file(id, 0, file, sizeof file);
	int rc = util_write_atomic(s->mdl_dir, file, buf, len);
	free(buf);
	if (rc < 0) {
		free(text);
		return file_fail(e, "model");
	}
	int64_t now = util_now_ms();
	pthread_mutex_lock(&s->mu);
	int ok = exec(s, "BEGIN IMMEDIATE") == 0;
	sqlite3_stmt *st = ok ? prep(s, "INSERT INTO models(id, name, spec, task, inputs, outputs,"
	                                " params, version, created_at) VALUES(?,?,?,?,?,?,?,0,?)")
	                      : NULL;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		bind_text(st, 2, name);
		sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 4, spec->task == NN_TASK_REGRESSION);
		sqlite3_bind_int(st, 5, spec->inputs);
		sqlite3_bind_int(st, 6, spec->outputs);
		sqlite3_bind_int64(st, 7, nn_model_param_count(m));
		sqlite3_bind_int64(st, 8, now);
		ok = sqlite3_step(st) == SQLITE_DONE;
		unprep(s, st);
	} else {
		ok = 0;
	}
	if (ok) {
		st = prep(s, "INSERT INTO model_versions(model, version, created_at) VALUES(?,0,?)");
		ok = st != NULL;
		if (st) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 2, now);
			ok = sqlite3_step(st) == SQLITE_DONE;
			unprep(s, st);
		}
	}
	if (ok)
		ok = exec(s, "COMMIT") == 0;
	if (!ok) {
		db_fail(s, e, "insert model");
		exec(s, "ROLLBACK");
	}
	pthread_mutex_unlock(&s->mu);
	free(text);
	if (!ok) {
		util_unlink(s->mdl_dir, file);
		return -1;
	}
	snap_cache_new(s, id, m);
	return store_model_get(s, id, out, e);
}

int store_model_get(store *s, const char *id, api_model_info *out, api_err *e)
{
	VIA(s, model_get, id, out, e);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, "SELECT " MDL_COLS " FROM models WHERE id=?");
	int rc = -1;
	if (!st) {
		db_fail(s, e, "get model");
	} else {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW)
			rc = mdl_info_from_row(st, out) == 0 ? 0 : db_fail(s, e, "model row");
		else if (r == SQLITE_DONE)
			not_found(e, "model", id);
		else
			db_fail(s, e, "get model");
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static cJSON *mdl_doc_from_row(sqlite3_stmt *st)
{
	api_model_info info;
	return mdl_info_from_row(st, &info) == 0 ? info.doc : NULL;
}

int store_model_list(store *s, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                     api_err *e)
{
	VIA(s, model_list, limit, offset, items, total, e);
	return list_page(s, "models", MDL_COLS, mdl_doc_from_row, "list models", limit, offset,
	                 items, total, e);
}

static void snap_unref_locked(snap *p)
{
	if (--p->refs > 0)
		return;
	nn_model_free(p->m);
	for (int i = 0; i < p->pub.n_classes; i++)
		free(p->pub.classes[i]);
	free(p->pub.classes);
	api_tab_enc_free(p->enc);
	free(p->enc);
	free(p);
}

/* Drops the cache's reference to model id's snapshot. Caller holds snap_mu. */
static void snap_uncache_locked(store *s, const char *id)
{
	for (snap **pp = &s->snaps; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->model, id) == 0) {
			snap *p = *pp;
			*pp = p->next;
			p->cached = 0;
			snap_unref_locked(p);
			return;
		}
	}
}

int store_model_delete(store *s, const char *id, api_err *e)
{
	if (s->ops) {
		if (s->ops->model_delete(s->be, id, e) < 0)
			return -1;
		pthread_mutex_lock(&s->snap_mu);
		snap_uncache_locked(s, id);
		pthread_mutex_unlock(&s->snap_mu);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	int rc = -1, version = -1;
	if (in_use(s, "SELECT 1 FROM jobs WHERE model=? AND state IN (0,1,5)", id)) {
		api_err_set(e, 409, "in_use", "model %s is used by a queued or running job", id);
		goto out;
	}
	sqlite3_stmt *st = prep(s, "SELECT max(version) FROM model_versions WHERE model=?");
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			version = sqlite3_column_int(st, 0);
		unprep(s, st);
	}
	if (exec(s, "BEGIN IMMEDIATE") < 0) {
		db_fail(s, e, "delete model");
		goto out;
	}
	st = prep(s, "DELETE FROM models WHERE id=?");
	int ok = st != NULL, changed = 0;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		ok = sqlite3_step(st) == SQLITE_DONE;
		changed = sqlite3_changes(s->db);
		unprep(s, st);
	}
	st = ok ? prep(s, "DELETE FROM model_versions WHERE model=?") : NULL;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		ok = sqlite3_step(st) == SQLITE_DONE;
		unprep(s, st);
	}
	if (ok && changed && exec(s, "COMMIT") == 0) {
		rc = 0;
	} else {
		exec(s, "ROLLBACK");
		if (ok && !changed)
			not_found(e, "model", id);
		else
			db_fail(s, e, "delete model");
	}
out:
	pthread_mutex_unlock(&s->mu);
	if (rc == 0) {
		pthread_mutex_lock(&s->snap_mu);
		snap_uncache_locked(s, id);
		pthread_mutex_unlock(&s->snap_mu);
		for (int v = 0; v <= version; v++) {
			char file[64];
			mdl_file(id, v, file, sizeof file);
			util_unlink(s->mdl_dir, file);
		}
	}
	return rc;
}

int store_model_load(store *s, const char *id, int version, nn_model **out, api_err *e)
{
	VIA(s, model_load, id, version, out, e);
	char file[64], path[1200];
	mdl_file(id, version, file, sizeof file);
	snprintf(path, sizeof path, "%s/%s", s->mdl_dir, file);
	void *buf = NULL;
	size_t len = 0;
	if (util_read_file(path, &buf, &len) < 0)
		return api_err_set(e, 404, "not_found", "version %d of model %s is missing", version, id);
	char err[256] = "";
	nn_status st = nn_model_load(buf, len, out, err, sizeof err);
	free(buf);
	if (st != NN_OK)
		return api_err_set(e, 500, "corrupt_model", "model %s version %d: %s", id, version, err);
	return 0;
}

static snap *snap_new(store *s, const char *id, nn_model *m, int version, const char *classes)
{
	snap *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->m = m;
	p->pub.model = m;
	p->pub.version = version;
	snprintf(p->model, sizeof p->model, "%s", id);
	cJSON *meta = classes ? cJSON_Parse(classes) : NULL;
	const cJSON *cj, *cols;
	api_tab_meta_parse(meta, &cj, &cols);
	int n = cJSON_IsArray(cj) ? cJSON_GetArraySize(cj) : 0;
	if (n > 0 && (p->pub.classes = calloc((size_t)n, sizeof(char *))) != NULL) {
		const cJSON *c;
		cJSON_ArrayForEach(c, cj) {
			p->pub.classes[p->pub.n_classes++] =
				strdup(cJSON_IsString(c) ? c->valuestring : "");
		}
	}
	api_err e = API_ERR_INIT;
	if (cols && (p->enc = calloc(1, sizeof *p->enc)) != NULL &&
	    api_tab_enc_from_json(cols, p->enc, &e) < 0) {
		free(p->enc);
		p->enc = NULL;
		util_log(0, "store: model %s: %s", id, e.detail);
	}
	p->pub.enc = p->enc;
	cJSON_Delete(meta);
	int64_t np = 0, ns = 0;
	nn_model_params(m, &np);
	nn_model_state(m, &ns);
	p->bytes = (np + ns) * (int64_t)sizeof(float);
	pthread_mutex_lock(&s->snap_mu);
	p->pub.serial = ++s->serial;
	pthread_mutex_unlock(&s->snap_mu);
	return p;
}

/* Evicts least recently used entries (never keep) past the budget.
 * Caller holds snap_mu. */
static void snap_evict_locked(store *s, const snap *keep)
{
	for (;;) {
		int n = 0;
		int64_t bytes = 0;
		snap **victim = NULL;
		for (snap **pp = &s->snaps; *pp; pp = &(*pp)->next) {
			n++;
			bytes += (*pp)->bytes;
			if (*pp != keep && (!victim || (*pp)->used < (*victim)->used))
				victim = pp;
		}
		if (!victim || (n <= SNAP_CACHE_MAX && bytes <= SNAP_CACHE_BYTES))
			return;
		snap *v = *victim;
		*victim = v->next;
		v->cached = 0;
		snap_unref_locked(v);
	}
}

/* Puts p in the cache unless a newer version is there. Takes one ref for
 * the cache when it does. Caller holds snap_mu. */
static void snap_cache_locked(store *s, snap *p)
{
	for (snap **pp = &s->snaps; *pp; pp = &(*pp)->next) {
		snap *q = *pp;
		if (strcmp(q->model, p->model) != 0)
			continue;
		if (q->pub.version >= p->pub.version)
			return;
		*pp = q->next;
		q->cached = 0;
		snap_unref_locked(q);
		break;
	}
	p->refs++;
	p->cached = 1;
	p->used = ++s->clock;
	p->next = s->snaps;
	s->snaps = p;
	snap_evict_locked(s, p);
}

/* Caches a copy of a just-created model as its version 0, so its first
 * job (or prediction) need not read back and check the file it was just
 * written to. Best effort: without memory the first reader loads it. */
static void snap_cache_new(store *s, const char *id, const nn_model *m)
{
	nn_model *c = nn_model_clone(m);
	snap *p = c ? snap_new(s, id, c, 0, NULL) : NULL;
	if (!p) {
		nn_model_free(c);
		return;
	}
	pthread_mutex_lock(&s->snap_mu);
	p->refs = 1;
	snap_cache_locked(s, p);
	snap_unref_locked(p);
	pthread_mutex_unlock(&s->snap_mu);
}

/* Loads version `version` of model id and caches it (replacing an older
 * version's snapshot); one reference for the caller. classes is taken. */
static int snap_load(store *s, const char *id, int version, char *classes,
                     api_model_snap **out, api_err *e)
{
	nn_model *m = NULL;
	if (store_model_load(s, id, version, &m, e) < 0) {
		free(classes);
		return -1;
	}
	snap *p = snap_new(s, id, m, version, classes);
	free(classes);
	if (!p) {
		nn_model_free(m);
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	}
	pthread_mutex_lock(&s->snap_mu);
	p->refs = 1;
	snap_cache_locked(s, p);
	pthread_mutex_unlock(&s->snap_mu);
	*out = &p->pub;
	return 0;
}

/*
 * A snapshot when another store is shared with other daemons: any of them
 * may have published since, so the newest version number is asked each
 * time (one indexed read) and the cached snapshot serves only while it is
 * that version; otherwise the version is loaded and replaces it.
 */
static int snapshot_shared(store *s, const char *id, api_model_snap **out, api_err *e)
{
	int version = -1;
	char *classes = NULL;
	if (s->ops->model_head(s->be, id, &version, &classes, e) < 0)
		return -1;
	pthread_mutex_lock(&s->snap_mu);
	for (snap *p = s->snaps; p; p = p->next)
		if (strcmp(p->model, id) == 0 && p->pub.version == version) {
			p->refs++;
			p->used = ++s->clock;
			pthread_mutex_unlock(&s->snap_mu);
			free(classes);
			*out = &p->pub;
			return 0;
		}
	pthread_mutex_unlock(&s->snap_mu);
	return snap_load(s, id, version, classes, out, e);
}

int store_model_snapshot(store *s, const char *id, api_model_snap **out, api_err *e)
{
	if (s->ops)
		return snapshot_shared(s, id, out, e);
	pthread_mutex_lock(&s->snap_mu);
	for (snap *p = s->snaps; p; p = p->next)
		if (strcmp(p->model, id) == 0) {
			p->refs++;
			p->used = ++s->clock;
			pthread_mutex_unlock(&s->snap_mu);
			*out = &p->pub;
			return 0;
		}
	pthread_mutex_unlock(&s->snap_mu);

	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, "SELECT version, classes FROM models WHERE id=?");
	int version = -1;
	char *classes = NULL;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW) {
			version = sqlite3_column_int(st, 0);
			classes = col_dup(st, 1);
		}
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	if (version < 0)
		return not_found(e, "model", id);
	return snap_load(s, id, version, classes, out, e);
}

void store_snap_release(store *s, api_model_snap *pub)
{
	if (!pub)
		return;
	snap *p = (snap *)pub;
	pthread_mutex_lock(&s->snap_mu);
	snap_unref_locked(p);
	pthread_mutex_unlock(&s->snap_mu);
}

static int job_update_locked(store *s, const api_job *j);

/* Writes m as version (current + 1) and commits it; j (may be NULL) is
 * updated in the same transaction. */
/* A published version's rows (caller holds s->mu, in a transaction): the
 * version, the model's current version, metrics and classes, and the
 * job's row. 1 when written. */
static int publish_rows(store *s, const char *id, int v, api_job *j, const char *classes,
                        int64_t now)
{
	sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO model_versions(model, version, job,"
	                           " created_at) VALUES(?,?,?,?)");
	int ok = st != NULL;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 2, v);
		bind_text(st, 3, j ? j->id : NULL);
		sqlite3_bind_int64(st, 4, now);
		ok = sqlite3_step(st) == SQLITE_DONE;
		unprep(s, st);
	}
	if (ok && j) {
		st = prep(s, "UPDATE models SET version=?, trained_by=?, metrics=?, classes=?"
		             " WHERE id=?");
		ok = st != NULL;
		if (st) {
			sqlite3_bind_int(st, 1, v);
			sqlite3_bind_text(st, 2, j->id, -1, SQLITE_TRANSIENT);
			bind_text(st, 3, j->metrics);
			bind_text(st, 4, classes);
			sqlite3_bind_text(st, 5, id, -1, SQLITE_TRANSIENT);
			ok = sqlite3_step(st) == SQLITE_DONE;
			unprep(s, st);
		}
	} else if (ok) {
		st = prep(s, "UPDATE models SET version=?, classes=? WHERE id=?");
		ok = st != NULL;
		if (st) {
			sqlite3_bind_int(st, 1, v);
			bind_text(st, 2, classes);
			sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
			ok = sqlite3_step(st) == SQLITE_DONE;
			unprep(s, st);
		}
	}
	if (ok && j) {
		j->model_version = v;
		ok = job_update_locked(s, j) == 0;
	}
	return ok;
}

/* Commits a publish (caller holds s->mu, in a transaction), taking m:
 * 1 when committed. */
static int publish_commit(store *s, const char *id, nn_model *m, int v, const char *classes)
{
	/* readers switch to the new version before the commit is visible, so
	 * nobody who sees the job succeeded or the model's new version number
	 * can still read the old weights; the file is already durable, and a
	 * failed commit drops the snapshot */
	snap *p = snap_new(s, id, m, v, classes);
	pthread_mutex_lock(&s->snap_mu);
	if (p) {
		snap_cache_locked(s, p);
		if (!p->cached) {
			p->refs = 1;
			snap_unref_locked(p);
		}
	} else {
		nn_model_free(m);
		snap_uncache_locked(s, id);   /* next reader reloads from disk */
	}
	pthread_mutex_unlock(&s->snap_mu);
	int ok = exec(s, "COMMIT") == 0;
	if (!ok) {
		pthread_mutex_lock(&s->snap_mu);
		snap_uncache_locked(s, id);
		pthread_mutex_unlock(&s->snap_mu);
	}
	return ok;
}

/* The model's current version and classes (caller holds s->mu): -1 when
 * there is no such model. */
static int model_version_locked(store *s, const char *id, char **classes)
{
	int cur = -1;
	sqlite3_stmt *st = prep(s, "SELECT version, classes FROM models WHERE id=?");
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW) {
			cur = sqlite3_column_int(st, 0);
			if (classes)
				*classes = col_dup(st, 1);
		}
		unprep(s, st);
	}
	return cur;
}

/* The rows of version v, once its file is durable: 1 when committed (m
 * taken), else e says why. The model must still be at version v - 1: it
 * may have been deleted while the file was written. */
static int publish_locked(store *s, const char *id, nn_model **m, int v, api_job *j,
                          const char *classes, api_err *e)
{
	if (exec(s, "BEGIN IMMEDIATE") < 0) {
		db_fail(s, e, "publish");
		return 0;
	}
	int cur = model_version_locked(s, id, NULL);
	int ok = cur == v - 1 && publish_rows(s, id, v, j, classes, util_now_ms());
	if (ok) {
		ok = publish_commit(s, id, *m, v, classes);
		*m = NULL;
	}
	if (!ok) {
		if (cur != v - 1)
			not_found(e, "model", id);
		else
			db_fail(s, e, "publish");
		exec(s, "ROLLBACK");
	}
	return ok;
}

#ifdef NND_TEST
void (*store_publish_hook)(store *s, const char *id, int version);
#define PUBLISH_HOOK(s, id, v) \
	do { \
		if (store_publish_hook) \
			store_publish_hook(s, id, v); \
	} while (0)
#else
#define PUBLISH_HOOK(s, id, v) ((void)0)
#endif

static int publish(store *s, const char *id, nn_model *m, api_job *j, const char *classes,
                   int *version, api_err *e)
{
	/* the version number is decided under the model's publish lock, which
	 * is held until the commit, so two publishers cannot race for the same
	 * number; the store's lock is taken only to read the version and to
	 * commit, so that writing and syncing the file (milliseconds on a
	 * disk) does not hold up every other store call */
	pthread_mutex_t *pm = &s->pub_mu[sql_hash(id) % PUB_STRIPES];
	char *old_classes = NULL;
	pthread_mutex_lock(pm);
	pthread_mutex_lock(&s->mu);
	int cur = model_version_locked(s, id, &old_classes);
	pthread_mutex_unlock(&s->mu);
	if (cur < 0) {
		pthread_mutex_unlock(pm);
		nn_model_free(m);
		free(old_classes);
		return not_found(e, "model", id);
	}
	int v = cur + 1;
	char file[64];
	mdl_file(id, v, file, sizeof file);
	void *buf = NULL;
	size_t len = 0;
	int ok = nn_model_save(m, &buf, &len) == NN_OK;
	if (ok && util_write_atomic(s->mdl_dir, file, buf, len) < 0) {
		ok = 0;
		file_fail(e, "model");
	} else if (!ok) {
		api_err_set(e, 500, "out_of_memory", "cannot serialise the model");
	}
	free(buf);
	if (ok) {
		PUBLISH_HOOK(s, id, v);
		pthread_mutex_lock(&s->mu);
		ok = publish_locked(s, id, &m, v, j, classes ? classes : old_classes, e);
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_unlock(pm);
	free(old_classes);
	if (!ok) {
		util_unlink(s->mdl_dir, file);
		nn_model_free(m);
		return -1;
	}
	if (version)
		*version = v;
	return 0;
}

/* publish() through another store: the version is written there; readers
 * load it at their next snapshot (snapshot_shared). m is taken. */
static int publish_via(store *s, const char *id, nn_model *m, api_job *j, const char *classes,
                       int *version, api_err *e)
{
	int rc = s->ops->model_publish(s->be, id, m, j, classes, version, e);
	nn_model_free(m);
	return rc;
}

int store_model_publish(store *s, const char *id, nn_model *m, int *version, api_err *e)
{
	return store_model_publish_classes(s, id, m, NULL, version, e);
}

int store_model_publish_classes(store *s, const char *id, nn_model *m, const char *classes,
                                int *version, api_err *e)
{
	if (s->ops)
		return publish_via(s, id, m, NULL, classes, version, e);
	return publish(s, id, m, NULL, classes, version, e);
}

/* ---------------------------------------------------------------- jobs */

#define JOB_COLS "id, model, dataset, val_dataset, state, progress, epoch, step, metrics," \
	" best, stopped_early, model_version, error, config, created_at, started_at, finished_at," \
	" study, trial"

static void job_from_row(sqlite3_stmt *st, api_job *j)
{
	memset(j, 0, sizeof *j);
	col_copy(st, 0, j->id, sizeof j->id);
	col_copy(st, 1, j->model, sizeof j->model);
	col_copy(st, 2, j->dataset, sizeof j->dataset);
	col_copy(st, 3, j->val_dataset, sizeof j->val_dataset);
	j->state = sqlite3_column_int(st, 4);
	j->progress = sqlite3_column_double(st, 5);
	j->epoch = sqlite3_column_int(st, 6);
	j->step = sqlite3_column_int64(st, 7);
	j->metrics = col_dup(st, 8);
	j->best = col_dup(st, 9);
	j->stopped_early = sqlite3_column_int(st, 10);
	j->model_version = sqlite3_column_type(st, 11) == SQLITE_NULL ? -1
	                                                               : sqlite3_column_int(st, 11);
	j->error = col_dup(st, 12);
	j->config = col_dup(st, 13);
	j->created_at = sqlite3_column_int64(st, 14);
	j->started_at = sqlite3_column_int64(st, 15);
	j->finished_at = sqlite3_column_int64(st, 16);
	col_copy(st, 17, j->study, sizeof j->study);
	j->trial = sqlite3_column_int(st, 18);
}

static int exists(store *s, const char *sql, const char *id)
{
	return in_use(s, sql, id);
}

int store_job_insert(store *s, api_job *j, api_err *e)
{
	VIA(s, job_insert, j, e);
	if (util_new_id("job", j->id, sizeof j->id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	j->created_at = util_now_ms();
	pthread_mutex_lock(&s->mu);
	int rc = -1;
	if (!exists(s, "SELECT 1 FROM models WHERE id=?", j->model)) {
		api_err_field(e, "model", "no model with this id");
	} else if (!exists(s, "SELECT 1 FROM datasets WHERE id=?", j->dataset)) {
		api_err_field(e, "dataset", "no data set with this id");
	} else if (j->val_dataset[0] &&
	           !exists(s, "SELECT 1 FROM datasets WHERE id=?", j->val_dataset)) {
		api_err_field(e, "validation.dataset", "no data set with this id");
	} else {
		sqlite3_stmt *st = prep(s, "INSERT INTO jobs(id, model, dataset, val_dataset, state,"
		                           " progress, epoch, step, stopped_early, config, created_at,"
		                           " started_at, finished_at, study, trial, pause_at)"
		                           " VALUES(?,?,?,?,?,0,0,0,0,?,?,0,0,?,?,?)");
		if (st) {
			sqlite3_bind_text(st, 1, j->id, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 2, j->model, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 3, j->dataset, -1, SQLITE_TRANSIENT);
			bind_text(st, 4, j->val_dataset[0] ? j->val_dataset : NULL);
			sqlite3_bind_int(st, 5, j->state);
			bind_text(st, 6, j->config);
			sqlite3_bind_int64(st, 7, j->created_at);
			bind_text(st, 8, j->study[0] ? j->study : NULL);
			sqlite3_bind_int(st, 9, j->trial);
			sqlite3_bind_int(st, 10, j->pause_at);
			if (sqlite3_step(st) == SQLITE_DONE)
				rc = 0;
			else
				db_fail(s, e, "insert job");
		} else {
			db_fail(s, e, "insert job");
		}
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_job_get(store *s, const char *id, api_job *out, api_err *e)
{
	VIA(s, job_get, id, out, e);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE id=?");
	int rc = -1;
	if (!st) {
		db_fail(s, e, "get job");
	} else {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			job_from_row(st, out);
			rc = 0;
		} else if (r == SQLITE_DONE) {
			not_found(e, "job", id);
		} else {
			db_fail(s, e, "get job");
		}
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The jobs in one state (state < 0: any) or of one study (study not
 * NULL), in submission order, or trial order for a study. */
static int list_jobs(store *s, int state, const char *study, int64_t limit, int64_t offset,
                     cJSON *items, int64_t *total, api_err *e)
{
	VIA(s, job_list, state, limit, offset, items, total, e);
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	sqlite3_stmt *c = prep(s, "SELECT count(*) FROM jobs WHERE (?1<0 OR state=?1)"
	                          " AND (?2 IS NULL OR study=?2)");
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE (?1<0 OR state=?1)"
	                           " AND (?2 IS NULL OR study=?2)"
	                           " ORDER BY CASE WHEN ?2 IS NULL THEN seq ELSE trial END, seq"
	                           " LIMIT ?3 OFFSET ?4");
	if (!c || !st) {
		rc = db_fail(s, e, "list jobs");
	} else {
		sqlite3_bind_int(c, 1, state);
		bind_text(c, 2, study);
		*total = sqlite3_step(c) == SQLITE_ROW ? sqlite3_column_int64(c, 0) : 0;
		sqlite3_bind_int(st, 1, state);
		bind_text(st, 2, study);
		sqlite3_bind_int64(st, 3, limit);
		sqlite3_bind_int64(st, 4, offset);
		while (sqlite3_step(st) == SQLITE_ROW) {
			api_job j;
			job_from_row(st, &j);
			cJSON_AddItemToArray(items, api_job_to_json(&j));
			api_job_release(&j);
		}
	}
	unprep(s, c);
	unprep(s, st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_job_list(store *s, int state, int64_t limit, int64_t offset, cJSON *items,
                   int64_t *total, api_err *e)
{
	return list_jobs(s, state, NULL, limit, offset, items, total, e);
}

/* Caller holds s->mu. */
static int job_update_locked(store *s, const api_job *j)
{
	sqlite3_stmt *st = prep(s, "UPDATE jobs SET state=?, progress=?, epoch=?, step=?,"
	                           " metrics=?, best=?, stopped_early=?, model_version=?, error=?,"
	                           " started_at=?, finished_at=? WHERE id=?");
	if (!st)
		return -1;
	sqlite3_bind_int(st, 1, j->state);
	sqlite3_bind_double(st, 2, j->progress);
	sqlite3_bind_int(st, 3, j->epoch);
	sqlite3_bind_int64(st, 4, j->step);
	bind_text(st, 5, j->metrics);
	bind_text(st, 6, j->best);
	sqlite3_bind_int(st, 7, j->stopped_early);
	if (j->model_version >= 0)
		sqlite3_bind_int(st, 8, j->model_version);
	else
		sqlite3_bind_null(st, 8);
	bind_text(st, 9, j->error);
	sqlite3_bind_int64(st, 10, j->started_at);
	sqlite3_bind_int64(st, 11, j->finished_at);
	sqlite3_bind_text(st, 12, j->id, -1, SQLITE_TRANSIENT);
	int ok = sqlite3_step(st) == SQLITE_DONE;
	unprep(s, st);
	return ok ? 0 : -1;
}

int store_job_update(store *s, const api_job *j, api_err *e)
{
	VIA(s, job_update, j, e);
	pthread_mutex_lock(&s->mu);
	int rc = job_update_locked(s, j);
	if (rc < 0)
		db_fail(s, e, "update job");
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_job_start(store *s, const api_job *j, int base_version, api_err *e)
{
	VIA(s, job_start, j, base_version, e);
	pthread_mutex_lock(&s->mu);
	int ok = exec(s, "BEGIN IMMEDIATE") == 0;
	if (ok && base_version >= 0) {
		sqlite3_stmt *st = prep(s, "UPDATE jobs SET base_version=? WHERE id=?");
		ok = st != NULL;
		if (st) {
			sqlite3_bind_int(st, 1, base_version);
			sqlite3_bind_text(st, 2, j->id, -1, SQLITE_TRANSIENT);
			ok = sqlite3_step(st) == SQLITE_DONE;
			unprep(s, st);
		}
	}
	if (ok)
		ok = job_update_locked(s, j) == 0;
	if (ok)
		ok = exec(s, "COMMIT") == 0;
	if (!ok) {
		db_fail(s, e, "start job");
		exec(s, "ROLLBACK");
	}
	pthread_mutex_unlock(&s->mu);
	return ok ? 0 : -1;
}

/* One integer column of a job's row (sql: "SELECT col FROM jobs WHERE
 * id=?"): 0 with *v set (def when NULL), or -1 when there is no such row. */
static int job_int(store *s, const char *sql, const char *id, int def, int *v)
{
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, sql);
	int rc = -1;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*v = sqlite3_column_type(st, 0) == SQLITE_NULL ? def : sqlite3_column_int(st, 0);
			rc = 0;
		}
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* A single-statement update of a job's row: sql with ?1 = x, ?2 = id.
 * 0 or -1. */
static int job_set_int(store *s, const char *sql, int x, const char *id)
{
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, sql);
	int rc = -1;
	if (st) {
		sqlite3_bind_int(st, 1, x);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
		unprep(s, st);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_job_request_cancel(store *s, const char *id)
{
	VIA(s, job_request_cancel, id);
	return job_set_int(s, "UPDATE jobs SET cancel_requested=?1 WHERE id=?2", 1, id);
}

int store_job_cancel_requested(store *s, const char *id)
{
	VIA(s, job_cancel_requested, id);
	int yes = 0;
	job_int(s, "SELECT cancel_requested FROM jobs WHERE id=?", id, 0, &yes);
	return yes != 0;
}

int store_job_base_version(store *s, const char *id, int *version)
{
	VIA(s, job_base_version, id, version);
	return job_int(s, "SELECT base_version FROM jobs WHERE id=?", id, -1, version);
}

int store_job_set_base_version(store *s, const char *id, int version)
{
	VIA(s, job_set_base_version, id, version);
	return job_set_int(s, "UPDATE jobs SET base_version=?1 WHERE id=?2", version, id);
}

int store_jobs_unfinished(store *s, char (**ids)[API_ID_LEN], int *n)
{
	VIA(s, jobs_unfinished, ids, n);
	*ids = NULL;
	*n = 0;
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, "SELECT id FROM jobs WHERE state IN (0,1,5) ORDER BY seq");
	int rc = st ? 0 : -1, cap = 0;
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			char (*p)[API_ID_LEN] = realloc(*ids, (size_t)cap * sizeof **ids);
			if (!p) {
				rc = -1;
				break;
			}
			*ids = p;
		}
		col_copy(st, 0, (*ids)[*n], API_ID_LEN);
		(*n)++;
	}
	unprep(s, st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_job_counts(store *s, int64_t counts[API_JOB_NSTATES])
{
	VIA(s, job_counts, counts);
	memset(counts, 0, sizeof(int64_t) * API_JOB_NSTATES);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *st = prep(s, "SELECT state, count(*) FROM jobs GROUP BY state");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		int k = sqlite3_column_int(st, 0);
		if (k >= 0 && k < API_JOB_NSTATES)
			counts[k] = sqlite3_column_int64(st, 1);
	}
	unprep(s, st);
	pthread_mutex_unlock(&s->mu);
	return st ? 0 : -1;
}

int store_metrics_write(store *s, const char *job, const store_step *steps, int n, int epoch,
                        int64_t end_step, const char *epoch_doc, const api_job *j, api_err *e)
{
	VIA(s, metrics_write, job, steps, n, epoch, end_step, epoch_doc, j, e);
	store_epoch_rec one = { epoch, end_step, (char *)epoch_doc };
	return store_metrics_write_batch(s, job, steps, n, &one, epoch_doc ? 1 : 0, j, e);
}

int store_metrics_write_batch(store *s, const char *job, const store_step *steps, int n,
                              const store_epoch_rec *eps, int n_eps, const api_job *j,
                              api_err *e)
{
	if (s->ops) {
		/* each record with the steps up to its end: a reader following
		 * the history by id (a shared store's event feeds) never meets a
		 * record below an id it has passed */
		int at = 0;
		for (int i = 0; i < n_eps; i++) {
			int k = 0;
			while (at + k < n && steps[at + k].step <= eps[i].end_step)
				k++;
			int last = i == n_eps - 1 && at + k == n;
			if (store_metrics_write(s, job, k ? steps + at : NULL, k, eps[i].epoch,
			                        eps[i].end_step, eps[i].doc, last ? j : NULL, e) < 0)
				return -1;
			at += k;
		}
		if (at < n || n_eps == 0)
			return store_metrics_write(s, job, at < n ? steps + at : NULL, n - at, 0, 0, NULL,
			                           j, e);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	int ok = exec(s, "BEGIN IMMEDIATE") == 0;
	if (ok && n > 0) {
		sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO job_steps(job, step, epoch, loss, lr)"
		                           " VALUES(?,?,?,?,?)");
		ok = st != NULL;
		for (int i = 0; ok && i < n; i++) {
			sqlite3_bind_text(st, 1, job, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 2, steps[i].step);
			sqlite3_bind_int(st, 3, steps[i].epoch);
			if (isfinite(steps[i].loss))
				sqlite3_bind_double(st, 4, steps[i].loss);
			else
				sqlite3_bind_null(st, 4);
			sqlite3_bind_double(st, 5, steps[i].lr);
			ok = sqlite3_step(st) == SQLITE_DONE;
			sqlite3_reset(st);
		}
		unprep(s, st);
	}
	if (ok && n_eps > 0) {
		sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO job_epochs(job, epoch, end_step, doc)"
		                           " VALUES(?,?,?,?)");
		ok = st != NULL;
		for (int i = 0; ok && i < n_eps; i++) {
			sqlite3_bind_text(st, 1, job, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int(st, 2, eps[i].epoch);
			sqlite3_bind_int64(st, 3, eps[i].end_step);
			sqlite3_bind_text(st, 4, eps[i].doc, -1, SQLITE_TRANSIENT);
			ok = sqlite3_step(st) == SQLITE_DONE;
			sqlite3_reset(st);
		}
		unprep(s, st);
	}
	if (ok && j)
		ok = job_update_locked(s, j) == 0;
	if (ok)
		ok = exec(s, "COMMIT") == 0;
	if (!ok) {
		db_fail(s, e, "write metrics");
		exec(s, "ROLLBACK");
	}
	pthread_mutex_unlock(&s->mu);
	return ok ? 0 : -1;
}

cJSON *store_step_json(int64_t step, int epoch, int has_loss, double loss, double lr)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "step", (double)step);
	cJSON_AddNumberToObject(o, "epoch", epoch);
	if (!has_loss)
		cJSON_AddNullToObject(o, "loss");
	else
		cJSON_AddNumberToObject(o, "loss", api_float_json((float)loss));
	cJSON_AddNumberToObject(o, "lr", api_float_json((float)lr));
	return o;
}

static cJSON *step_json(sqlite3_stmt *st)
{
	/* columns: step, epoch, loss, lr */
	return store_step_json(sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1),
	                       sqlite3_column_type(st, 2) != SQLITE_NULL,
	                       sqlite3_column_double(st, 2), sqlite3_column_double(st, 3));
}

int store_metrics_get(store *s, const char *job, int64_t since_step, cJSON **out, api_err *e)
{
	VIA(s, metrics_get, job, since_step, out, e);
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	if (!exists(s, "SELECT 1 FROM jobs WHERE id=?", job)) {
		pthread_mutex_unlock(&s->mu);
		return not_found(e, "job", job);
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *steps = cJSON_AddArrayToObject(o, "steps");
	cJSON *epochs = cJSON_AddArrayToObject(o, "epochs");
	sqlite3_stmt *st = prep(s, "SELECT step, epoch, loss, lr FROM job_steps WHERE job=? AND"
	                           " step>? ORDER BY step");
	if (st) {
		sqlite3_bind_text(st, 1, job, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, since_step);
		while (sqlite3_step(st) == SQLITE_ROW)
			cJSON_AddItemToArray(steps, step_json(st));
		unprep(s, st);
	} else {
		rc = -1;
	}
	st = prep(s, "SELECT doc FROM job_epochs WHERE job=? ORDER BY epoch");
	if (st) {
		sqlite3_bind_text(st, 1, job, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const unsigned char *d = sqlite3_column_text(st, 0);
			cJSON *dj = d ? cJSON_Parse((const char *)d) : NULL;
			if (dj)
				cJSON_AddItemToArray(epochs, dj);
		}
		unprep(s, st);
	} else {
		rc = -1;
	}
	if (rc < 0) {
		db_fail(s, e, "read metrics");
		cJSON_Delete(o);
		o = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	*out = o;
	return rc;
}

int store_history(store *s, const char *job, store_event **out, int *n)
{
	VIA(s, history, job, out, n);
	*out = NULL;
	*n = 0;
	int cap = 0, rc = 0;
	pthread_mutex_lock(&s->mu);
	/* steps and epochs merged by step number; an epoch after its steps */
	sqlite3_stmt *st = prep(s,
		"SELECT 0, step, epoch, loss, lr, NULL FROM job_steps WHERE job=?1"
		" UNION ALL SELECT 1, end_step, epoch, NULL, NULL, doc FROM job_epochs WHERE job=?1"
		" ORDER BY 2, 1");
	if (!st)
		rc = -1;
	else
		sqlite3_bind_text(st, 1, job, -1, SQLITE_TRANSIENT);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			store_event *p = realloc(*out, (size_t)cap * sizeof *p);
			if (!p) {
				rc = -1;
				break;
			}
			*out = p;
		}
		store_event *ev = &(*out)[*n];
		ev->kind = sqlite3_column_int(st, 0);
		ev->id = sqlite3_column_int64(st, 1);
		if (ev->kind == 0) {
			cJSON *o = store_step_json(ev->id, sqlite3_column_int(st, 2),
			                           sqlite3_column_type(st, 3) != SQLITE_NULL,
			                           sqlite3_column_double(st, 3),
			                           sqlite3_column_double(st, 4));
			ev->data = cJSON_PrintUnformatted(o);
			cJSON_Delete(o);
		} else {
			ev->data = col_dup(st, 5);
		}
		if (!ev->data)
			ev->data = strdup("{}");
		(*n)++;
	}
	unprep(s, st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_history_after(store *s, const char *job, int64_t after, store_event **out, int *n)
{
	VIA(s, history_after, job, after, out, n);
	return store_history(s, job, out, n);   /* SQLite: streams never need less */
}

void store_history_free(store_event *ev, int n)
{
	for (int i = 0; ev && i < n; i++)
		free(ev[i].data);
	free(ev);
}

int store_checkpoint_put(store *s, const char *job, const void *buf, size_t len)
{
	VIA(s, checkpoint_put, job, buf, len);
	char file[64];
	snprintf(file, sizeof file, "%s.ckpt", job);
	return util_write_atomic(s->ckpt_dir, file, buf, len);
}

int store_checkpoint_get(store *s, const char *job, void **buf, size_t *len)
{
	VIA(s, checkpoint_get, job, buf, len);
	char path[1200];
	snprintf(path, sizeof path, "%s/%s.ckpt", s->ckpt_dir, job);
	*buf = NULL;
	*len = 0;
	if (util_read_file(path, buf, len) < 0)
		return errno == ENOENT ? 0 : -1;
	return 0;
}

int store_checkpoint_delete(store *s, const char *job)
{
	VIA(s, checkpoint_delete, job);
	char file[64];
	snprintf(file, sizeof file, "%s.ckpt", job);
	return util_unlink(s->ckpt_dir, file);
}

int store_job_publish(store *s, api_job *j, nn_model *m, const char *classes_json, api_err *e)
{
	if (s->ops)
		return publish_via(s, j->model, m, j, classes_json, NULL, e);
	return publish(s, j->model, m, j, classes_json, NULL, e);
}

/* ---------------------------------------------------------------- studies: jobs
 * (the study tables and their functions are in the block at the end) */

int store_job_pause_at(store *s, const char *id)
{
	VIA(s, job_pause_at, id);
	int v = 0;
	job_int(s, "SELECT pause_at FROM jobs WHERE id=?", id, 0, &v);
	return v;
}

int store_job_resume(store *s, const char *id, int pause_at)
{
	VIA(s, job_resume, id, pause_at);
	return job_set_int(s, "UPDATE jobs SET pause_at=?1, state=0 WHERE id=?2 AND state=5",
	                   pause_at, id);
}

int store_job_list_study(store *s, const char *study, int64_t limit, int64_t offset,
                         cJSON *items, int64_t *total, api_err *e)
{
	VIA(s, job_list_study, study, limit, offset, items, total, e);
	return list_jobs(s, -1, study, limit, offset, items, total, e);
}

/* ---------------------------------------------------------------- studies */
/* Runs sql with ?1 = id (caller holds s->mu). */
static int exec_id(store *s, const char *sql, const char *id)
{
	sqlite3_stmt *q = prep(s, sql);
	int ok = 0;
	if (q) {
		sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
		ok = sqlite3_step(q) == SQLITE_DONE;
	}
	unprep(s, q);
	return ok ? 0 : -1;
}

int store_job_of_trial(store *s, const char *study, int number, char job[API_ID_LEN],
                       char model[API_ID_LEN])
{
	VIA(s, job_of_trial, study, number, job, model);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = prep(s, "SELECT id, model FROM jobs WHERE study=? AND trial=? ORDER BY seq"
	                          " LIMIT 1");
	int found = 0;
	if (q) {
		sqlite3_bind_text(q, 1, study, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(q, 2, number);
		if (sqlite3_step(q) == SQLITE_ROW) {
			col_copy(q, 0, job, API_ID_LEN);
			col_copy(q, 1, model, API_ID_LEN);
			found = 1;
		}
	}
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return found;
}

int store_job_delete(store *s, const char *id, api_err *e)
{
	VIA(s, job_delete, id, e);
	pthread_mutex_lock(&s->mu);
	int rc = -1;
	if (in_use(s, "SELECT 1 FROM jobs WHERE id=? AND state IN (0,1,5)", id)) {
		api_err_set(e, 409, "in_use", "job %s has not finished", id);
	} else {
		int ok = exec(s, "BEGIN IMMEDIATE") == 0;
		ok = ok && exec_id(s, "DELETE FROM job_steps WHERE job=?1", id) == 0 &&
		     exec_id(s, "DELETE FROM job_epochs WHERE job=?1", id) == 0 &&
		     exec_id(s, "DELETE FROM jobs WHERE id=?1", id) == 0;
		exec(s, ok ? "COMMIT" : "ROLLBACK");
		rc = ok ? 0 : db_fail(s, e, "delete job");
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == 0)
		store_checkpoint_delete(s, id);
	return rc;
}


void store_study_release(store_study *st)
{
	if (!st)
		return;
	free(st->name);
	free(st->config);
	free(st->error);
	st->name = st->config = st->error = NULL;
}

int store_study_insert(store *s, store_study *st, const char *dataset, const char *val,
                       const char *test, api_err *e)
{
	VIA(s, study_insert, st, dataset, val, test, e);
	if (util_new_id("std", st->id, sizeof st->id) < 0)
		return api_err_set(e, 500, "random_failed", "cannot make an id");
	st->created_at = util_now_ms();
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = prep(s, "INSERT INTO studies(id, name, state, config, dataset, val_dataset,"
	                          " test_dataset, created_at, started_at, finished_at)"
	                          " VALUES(?,?,?,?,?,?,?,?,0,0)");
	int ok = 0;
	if (q) {
		sqlite3_bind_text(q, 1, st->id, -1, SQLITE_TRANSIENT);
		bind_text(q, 2, st->name);
		sqlite3_bind_int(q, 3, st->state);
		bind_text(q, 4, st->config);
		bind_text(q, 5, dataset);
		bind_text(q, 6, val);
		bind_text(q, 7, test);
		sqlite3_bind_int64(q, 8, st->created_at);
		ok = sqlite3_step(q) == SQLITE_DONE;
	}
	unprep(s, q);
	if (!ok)
		db_fail(s, e, "insert study");
	pthread_mutex_unlock(&s->mu);
	return ok ? 0 : -1;
}

int store_study_get(store *s, const char *id, store_study *out, api_err *e)
{
	VIA(s, study_get, id, out, e);
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = prep(s, "SELECT id, name, state, config, error, created_at, started_at,"
	                          " finished_at FROM studies WHERE id=?");
	int rc = -1;
	if (!q) {
		db_fail(s, e, "get study");
	} else {
		sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
		int r = sqlite3_step(q);
		if (r == SQLITE_ROW) {
			col_copy(q, 0, out->id, sizeof out->id);
			out->name = col_dup(q, 1);
			out->state = sqlite3_column_int(q, 2);
			out->config = col_dup(q, 3);
			out->error = col_dup(q, 4);
			out->created_at = sqlite3_column_int64(q, 5);
			out->started_at = sqlite3_column_int64(q, 6);
			out->finished_at = sqlite3_column_int64(q, 7);
			rc = 0;
		} else if (r == SQLITE_DONE) {
			not_found(e, "study", id);
		} else {
			db_fail(s, e, "get study");
		}
	}
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_study_ids(store *s, int active_only, int64_t limit, int64_t offset,
                    char (**ids)[API_ID_LEN], int *n, int64_t *total)
{
	VIA(s, study_ids, active_only, limit, offset, ids, n, total);
	*ids = NULL;
	*n = 0;
	pthread_mutex_lock(&s->mu);
	if (total)
		*total = count_rows(s, active_only ? "SELECT count(*) FROM studies WHERE state<2"
		                                   : "SELECT count(*) FROM studies");
	sqlite3_stmt *q = prep(s, active_only
	                          ? "SELECT id FROM studies WHERE state<2 ORDER BY seq LIMIT ? OFFSET ?"
	                          : "SELECT id FROM studies ORDER BY seq LIMIT ? OFFSET ?");
	int cap = 0, rc = q ? 0 : -1;
	if (q) {
		sqlite3_bind_int64(q, 1, limit);
		sqlite3_bind_int64(q, 2, offset);
		while (sqlite3_step(q) == SQLITE_ROW) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				void *p = realloc(*ids, sizeof **ids * (size_t)cap);
				if (!p) {
					rc = -1;
					break;
				}
				*ids = p;
			}
			col_copy(q, 0, (*ids)[(*n)++], API_ID_LEN);
		}
	}
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_study_update(store *s, const store_study *st)
{
	VIA(s, study_update, st);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = prep(s, "UPDATE studies SET state=?, error=?, started_at=?, finished_at=?"
	                          " WHERE id=?");
	int ok = 0;
	if (q) {
		sqlite3_bind_int(q, 1, st->state);
		bind_text(q, 2, st->error);
		sqlite3_bind_int64(q, 3, st->started_at);
		sqlite3_bind_int64(q, 4, st->finished_at);
		sqlite3_bind_text(q, 5, st->id, -1, SQLITE_TRANSIENT);
		ok = sqlite3_step(q) == SQLITE_DONE;
	}
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return ok ? 0 : -1;
}

int store_study_delete(store *s, const char *id)
{
	VIA(s, study_delete, id);
	pthread_mutex_lock(&s->mu);
	int ok = exec(s, "BEGIN IMMEDIATE") == 0;
	ok = ok && exec_id(s, "DELETE FROM trials WHERE study=?1", id) == 0 &&
	     exec_id(s, "DELETE FROM study_events WHERE study=?1", id) == 0 &&
	     exec_id(s, "DELETE FROM studies WHERE id=?1", id) == 0;
	exec(s, ok ? "COMMIT" : "ROLLBACK");
	pthread_mutex_unlock(&s->mu);
	return ok ? 0 : -1;
}

/* store_trial_put's row (caller holds s->mu). 0 or -1. */
static int trial_put_locked(store *s, const char *study, const store_trial *t)
{
	sqlite3_stmt *q = prep(s, "INSERT INTO trials(study, number, state, params, value, epochs,"
	                          " seconds, rows, seed, job, model, rung)"
	                          " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"
	                          " ON CONFLICT(study, number) DO UPDATE SET state=?3,"
	                          " params=coalesce(?4, params), value=?5, epochs=?6, seconds=?7,"
	                          " rows=?8, seed=?9, job=?10, model=?11, rung=?12");
	int ok = 0;
	if (q) {
		sqlite3_bind_text(q, 1, study, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(q, 2, t->number);
		sqlite3_bind_int(q, 3, t->state);
		bind_text(q, 4, t->params);
		if (isfinite(t->value))
			sqlite3_bind_double(q, 5, t->value);
		else
			sqlite3_bind_null(q, 5);
		sqlite3_bind_int(q, 6, t->epochs);
		sqlite3_bind_double(q, 7, t->seconds);
		sqlite3_bind_int64(q, 8, t->rows);
		sqlite3_bind_int64(q, 9, t->seed);
		sqlite3_bind_text(q, 10, t->job, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 11, t->model, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(q, 12, t->rung);
		ok = sqlite3_step(q) == SQLITE_DONE;
	}
	unprep(s, q);
	return ok ? 0 : -1;
}

int store_trial_put(store *s, const char *study, const store_trial *t)
{
	VIA(s, trial_put, study, t);
	pthread_mutex_lock(&s->mu);
	int rc = trial_put_locked(s, study, t);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

#define TRIAL_COLS "number, state, params, value, epochs, seconds, rows, seed, job, model, rung"

static void trial_from_row(sqlite3_stmt *q, store_trial *t)
{
	memset(t, 0, sizeof *t);
	t->number = sqlite3_column_int(q, 0);
	t->state = sqlite3_column_int(q, 1);
	t->params = col_dup(q, 2);
	t->value = sqlite3_column_type(q, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 3);
	t->epochs = sqlite3_column_int(q, 4);
	t->seconds = sqlite3_column_double(q, 5);
	t->rows = sqlite3_column_int64(q, 6);
	t->seed = sqlite3_column_int64(q, 7);
	col_copy(q, 8, t->job, sizeof t->job);
	col_copy(q, 9, t->model, sizeof t->model);
	t->rung = sqlite3_column_int(q, 10);
}

int store_trials_get(store *s, const char *study, store_trial **out, int *n)
{
	VIA(s, trials_get, study, out, n);
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = prep(s, "SELECT " TRIAL_COLS " FROM trials WHERE study=? ORDER BY number");
	int cap = 0, rc = q ? 0 : -1;
	if (q) {
		sqlite3_bind_text(q, 1, study, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(q) == SQLITE_ROW) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				void *p = realloc(*out, sizeof **out * (size_t)cap);
				if (!p) {
					rc = -1;
					break;
				}
				*out = p;
			}
			trial_from_row(q, &(*out)[(*n)++]);
		}
	}
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void store_trials_free(store_trial *t, int n)
{
	for (int i = 0; t && i < n; i++)
		free(t[i].params);
	free(t);
}

static const char *const trial_states[7] = {
	"queued", "running", "succeeded", "failed", "cancelled", "paused", "pruned"
};

static cJSON *trial_json(const store_trial *t)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "number", t->number);
	cJSON *p = t->params ? cJSON_Parse(t->params) : NULL;
	cJSON_AddItemToObject(o, "params", p ? p : cJSON_CreateObject());
	cJSON_AddStringToObject(o, "state", t->state >= 0 && t->state < 7 ? trial_states[t->state]
	                                                                   : "unknown");
	cJSON_AddItemToObject(o, "value", isfinite(t->value) ? cJSON_CreateNumber(t->value)
	                                                     : cJSON_CreateNull());
	cJSON_AddNumberToObject(o, "epochs", t->epochs);
	cJSON_AddNumberToObject(o, "seconds", t->seconds);
	if (t->rows > 0)
		cJSON_AddNumberToObject(o, "rows", (double)t->rows);
	else
		cJSON_AddNullToObject(o, "rows");
	cJSON_AddNumberToObject(o, "seed", (double)t->seed);
	if (t->job[0])
		cJSON_AddStringToObject(o, "job", t->job);
	else
		cJSON_AddNullToObject(o, "job");
	if (t->model[0])
		cJSON_AddStringToObject(o, "model", t->model);
	else
		cJSON_AddNullToObject(o, "model");
	return o;
}

cJSON *store_trial_json(const store_trial *t)
{
	return trial_json(t);
}

int store_trials_page(store *s, const char *study, int by_number, int maximize, int64_t limit,
                      int64_t offset, cJSON *items, int64_t *total, api_err *e)
{
	VIA(s, trials_page, study, by_number, maximize, limit, offset, items, total, e);
	const char *sql = by_number
		? "SELECT " TRIAL_COLS " FROM trials WHERE study=? ORDER BY number LIMIT ? OFFSET ?"
		: maximize ? "SELECT " TRIAL_COLS " FROM trials WHERE study=?"
		             " ORDER BY value IS NULL, value DESC, number LIMIT ? OFFSET ?"
		           : "SELECT " TRIAL_COLS " FROM trials WHERE study=?"
		             " ORDER BY value IS NULL, value, number LIMIT ? OFFSET ?";
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *c = prep(s, "SELECT count(*) FROM trials WHERE study=?");
	sqlite3_stmt *q = prep(s, sql);
	int rc = 0;
	if (!c || !q) {
		rc = db_fail(s, e, "list trials");
	} else {
		sqlite3_bind_text(c, 1, study, -1, SQLITE_TRANSIENT);
		*total = sqlite3_step(c) == SQLITE_ROW ? sqlite3_column_int64(c, 0) : 0;
		sqlite3_bind_text(q, 1, study, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, limit);
		sqlite3_bind_int64(q, 3, offset);
		while (sqlite3_step(q) == SQLITE_ROW) {
			store_trial t;
			trial_from_row(q, &t);
			cJSON_AddItemToArray(items, trial_json(&t));
			free(t.params);
		}
	}
	unprep(s, c);
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_trial_counts(store *s, const char *study, int64_t counts[7], int64_t *epochs)
{
	VIA(s, trial_counts, study, counts, epochs);
	memset(counts, 0, sizeof(int64_t) * 7);
	*epochs = 0;
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = prep(s, "SELECT state, count(*), sum(epochs) FROM trials WHERE study=?"
	                          " GROUP BY state");
	if (q) {
		sqlite3_bind_text(q, 1, study, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(q) == SQLITE_ROW) {
			int k = sqlite3_column_int(q, 0);
			if (k >= 0 && k < 7)
				counts[k] = sqlite3_column_int64(q, 1);
			*epochs += sqlite3_column_int64(q, 2);
		}
	}
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return q ? 0 : -1;
}

/* store_study_event's row (caller holds s->mu). 0 or -1. */
static int study_event_locked(store *s, const char *study, int kind, const char *data,
                              int64_t *seq)
{
	sqlite3_stmt *q = prep(s, "INSERT INTO study_events(study, seq, kind, data)"
	                          " SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3 FROM study_events"
	                          " WHERE study=?1 RETURNING seq");
	int ok = 0;
	if (q) {
		sqlite3_bind_text(q, 1, study, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(q, 2, kind);
		bind_text(q, 3, data);
		if (sqlite3_step(q) == SQLITE_ROW) {
			*seq = sqlite3_column_int64(q, 0);
			ok = sqlite3_step(q) == SQLITE_DONE;
		}
	}
	unprep(s, q);
	return ok ? 0 : -1;
}

int store_study_event(store *s, const char *study, int kind, const char *data, int64_t *seq)
{
	VIA(s, study_event, study, kind, data, seq);
	pthread_mutex_lock(&s->mu);
	int rc = study_event_locked(s, study, kind, data, seq);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_trial_record(store *s, const char *study, const store_trial *t, int kind,
                       const char *data, int64_t *seq)
{
	VIA(s, trial_record, study, t, kind, data, seq);
	pthread_mutex_lock(&s->mu);
	int ok = exec(s, "BEGIN IMMEDIATE") == 0;
	ok = ok && trial_put_locked(s, study, t) == 0 &&
	     study_event_locked(s, study, kind, data, seq) == 0 && exec(s, "COMMIT") == 0;
	if (!ok)
		exec(s, "ROLLBACK");
	pthread_mutex_unlock(&s->mu);
	return ok ? 0 : -1;
}

int store_study_events(store *s, const char *study, store_event **out, int *n)
{
	return store_study_events_after(s, study, 0, out, n);
}

int store_study_lock(store *s, const char *id, int wait)
{
	VIA(s, study_lock, id, wait);
	return 1;
}

int store_study_lock_held(store *s)
{
	return s->ops ? s->ops->study_lock_held(s->be) : 1;
}

void store_study_unlock(store *s)
{
	if (s->ops)
		s->ops->study_unlock(s->be);
}

int store_study_events_after(store *s, const char *study, int64_t after, store_event **out,
                             int *n)
{
	VIA(s, study_events, study, after, out, n);
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = prep(s, "SELECT kind, seq, data FROM study_events WHERE study=?"
	                          " AND seq>? ORDER BY seq");
	int cap = 0, rc = q ? 0 : -1;
	if (q) {
		sqlite3_bind_text(q, 1, study, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, after);
		while (sqlite3_step(q) == SQLITE_ROW) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				void *p = realloc(*out, sizeof **out * (size_t)cap);
				if (!p) {
					rc = -1;
					break;
				}
				*out = p;
			}
			store_event *ev = &(*out)[(*n)++];
			ev->kind = sqlite3_column_int(q, 0);
			ev->id = sqlite3_column_int64(q, 1);
			ev->data = col_dup(q, 2);
		}
	}
	unprep(s, q);
	pthread_mutex_unlock(&s->mu);
	return rc;
}
