/*
 * test_dataset_file.c - the stored data-set file written without a second
 * copy of the matrix: api_dataset_serialize_pieces gives exactly the bytes
 * of api_dataset_serialize (header, x, labels/targets, names, CRC-32), for
 * classification, multi-output regression, image and empty data sets;
 * util_write_atomic_pieces puts those bytes in the file (a large one in
 * slices whose writeback starts as each is written), and a failed write
 * (a missing directory, a file-size limit hit midway, also in a large
 * file) returns -1 with errno set and leaves neither the file nor a
 * temporary behind.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset_io.h"
#include "util.h"
#include "check_main.h"

static char **names(int n, const char *prefix)
{
	char **v = calloc((size_t)n, sizeof *v);
	for (int i = 0; i < n; i++) {
		char b[32];
		snprintf(b, sizeof b, "%s%d", prefix, i);
		v[i] = strdup(b);
	}
	return v;
}

/* rows x features of classification (n_classes > 0) or regression with
 * `outputs` targets; values are distinct and include negatives. */
static void make(api_dataset *d, int64_t rows, int features, int outputs, int n_classes)
{
	memset(d, 0, sizeof *d);
	d->rows = rows;
	d->features = features;
	d->task = n_classes ? NN_TASK_CLASSIFICATION : NN_TASK_REGRESSION;
	d->outputs = n_classes ? n_classes : outputs;
	d->x = malloc(sizeof(float) * (size_t)(rows * features + 1));
	for (int64_t i = 0; i < rows * features; i++)
		d->x[i] = (float)i * 0.25f - 3.0f;
	if (n_classes) {
		d->labels = malloc(sizeof(int32_t) * (size_t)(rows + 1));
		for (int64_t r = 0; r < rows; r++)
			d->labels[r] = (int32_t)(r % n_classes);
		d->classes = names(n_classes, "class-");
		d->n_classes = n_classes;
	} else {
		d->targets = malloc(sizeof(float) * (size_t)(rows * outputs + 1));
		for (int64_t i = 0; i < rows * outputs; i++)
			d->targets[i] = -(float)i / 7.0f;
	}
	d->feature_names = names(features, "f");
}

/* The pieces, joined. */
static unsigned char *join(const api_dataset_pieces *pc, size_t *len)
{
	size_t n = 0;
	for (int i = 0; i < 4; i++)
		n += pc->len[i];
	unsigned char *b = malloc(n ? n : 1), *p = b;
	for (int i = 0; i < 4; i++) {
		if (pc->len[i])
			memcpy(p, pc->p[i], pc->len[i]);
		p += pc->len[i];
	}
	*len = n;
	return b;
}

static void check_same_bytes(const api_dataset *d)
{
	void *whole = NULL;
	size_t wlen = 0;
	ck_assert_int_eq(api_dataset_serialize(d, &whole, &wlen), 0);
	api_dataset_pieces pc;
	ck_assert_int_eq(api_dataset_serialize_pieces(d, &pc), 0);
	/* x and the labels/targets are the data set's own arrays, not copies */
	if (d->rows > 0 && d->features > 0)
		ck_assert_ptr_eq(pc.p[1], d->x);
	size_t plen;
	unsigned char *joined = join(&pc, &plen);
	ck_assert_uint_eq(plen, wlen);
	ck_assert_int_eq(memcmp(joined, whole, wlen), 0);
	/* the last four bytes are the CRC-32 of all before them */
	uLong c = crc32(crc32(0L, Z_NULL, 0), joined, (uInt)(plen - 4));
	const unsigned char *t = joined + plen - 4;
	ck_assert_uint_eq((uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
	                  (uint32_t)t[3] << 24, (uint32_t)c);
	/* and it reads back as the same data set */
	api_dataset back;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_dataset_deserialize(joined, plen, &back, &e), 0);
	ck_assert_int_eq(back.rows, d->rows);
	ck_assert_int_eq(back.features, d->features);
	ck_assert_int_eq(back.outputs, d->outputs);
	ck_assert_int_eq(back.width, d->width);
	size_t nx = (size_t)(d->rows * d->features);
	if (nx)
		ck_assert_int_eq(memcmp(back.x, d->x, nx * sizeof(float)), 0);
	if (d->task == NN_TASK_CLASSIFICATION) {
		ck_assert_int_eq(memcmp(back.labels, d->labels, (size_t)d->rows * 4), 0);
		ck_assert_int_eq(back.n_classes, d->n_classes);
		ck_assert_str_eq(back.classes[d->n_classes - 1], d->classes[d->n_classes - 1]);
	} else if (d->rows) {
		ck_assert_int_eq(memcmp(back.targets, d->targets,
		                        (size_t)(d->rows * d->outputs) * sizeof(float)), 0);
	}
	if (d->features)
		ck_assert_str_eq(back.feature_names[d->features - 1],
		                 d->feature_names[d->features - 1]);
	api_dataset_free(&back);
	free(joined);
	free(whole);
	api_dataset_pieces_release(&pc);
	ck_assert_ptr_null(pc.head);
	api_dataset_pieces_release(NULL);
}

START_TEST(test_pieces_are_the_serialized_bytes)
{
	api_dataset d;
	make(&d, 37, 5, 0, 3);
	check_same_bytes(&d);
	api_dataset_free(&d);

	make(&d, 11, 4, 3, 0);        /* regression, three targets a row */
	check_same_bytes(&d);
	api_dataset_free(&d);

	make(&d, 6, 12, 0, 2);        /* an image data set */
	d.width = 4;
	d.height = 3;
	d.channels = 1;
	check_same_bytes(&d);
	api_dataset_free(&d);

	make(&d, 0, 3, 1, 0);         /* no rows */
	check_same_bytes(&d);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_pieces_refuse_a_missing_matrix)
{
	api_dataset d;
	make(&d, 4, 2, 0, 2);
	float *x = d.x;
	d.x = NULL;
	api_dataset_pieces pc;
	ck_assert_int_eq(api_dataset_serialize_pieces(&d, &pc), -1);
	ck_assert_ptr_null(pc.head);
	ck_assert_ptr_null(pc.tail);
	d.x = x;
	api_dataset_free(&d);
	ck_assert_int_eq(api_dataset_serialize_pieces(NULL, &pc), -1);
}
END_TEST

/* Entries of dir (not . and ..). */
static int entries(const char *dir)
{
	DIR *dp = opendir(dir);
	ck_assert_ptr_nonnull(dp);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(dp)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(dp);
	return n;
}

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/test_dataset_file.XXXXXX";
	char *dir = mkdtemp(tmpl);
	ck_assert_ptr_nonnull(dir);
	return strdup(dir);
}

static void rmdir_all(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char p[512];
	while (dp && (de = readdir(dp)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (dp)
		closedir(dp);
	rmdir(dir);
}

/* util_write_atomic_pieces of pc under a file-size limit of `limit` bytes
 * (the soft limit only, put back after with the signal's handling:
 * CK_FORK=no runs share the process) into a new directory: asserts it
 * returned -1 and left the directory empty; gives its errno. */
static int write_limited(const api_dataset_pieces *pc, rlim_t limit)
{
	char *dir = tmpdir();
	void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, rl;
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl.rlim_cur = limit;
	rl.rlim_max = old.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	errno = 0;
	int rc = util_write_atomic_pieces(dir, "ds.bin", pc->p, pc->len, 4);
	int err = errno;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_sig);
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(entries(dir), 0);
	rmdir_all(dir);
	free(dir);
	return err;
}

/* The pieces of a rows x features data set written with
 * util_write_atomic_pieces: the file holds exactly their bytes, mode 0600,
 * and no temporary is left. */
static void write_and_compare(int64_t rows, int features)
{
	api_dataset d;
	make(&d, rows, features, 0, 4);
	api_dataset_pieces pc;
	ck_assert_int_eq(api_dataset_serialize_pieces(&d, &pc), 0);
	char *dir = tmpdir();
	ck_assert_int_eq(util_write_atomic_pieces(dir, "ds.bin", pc.p, pc.len, 4), 0);
	char path[512];
	snprintf(path, sizeof path, "%s/ds.bin", dir);
	void *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(util_read_file(path, &buf, &len), 0);
	size_t jl;
	unsigned char *joined = join(&pc, &jl);
	ck_assert_uint_eq(len, jl);
	ck_assert_int_eq(memcmp(buf, joined, len), 0);
	ck_assert_int_eq(entries(dir), 1);    /* no temporary left */
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	free(buf);
	free(joined);
	rmdir_all(dir);
	free(dir);
	api_dataset_pieces_release(&pc);
	api_dataset_free(&d);
}

START_TEST(test_atomic_write_of_pieces_gives_the_file)
{
	write_and_compare(300, 20);
}
END_TEST

/* 10,001 x 1,003 floats, about 40 MB: past the size written in slices
 * (32 MB), in slices of 8 MB that end inside the matrix, with the
 * labels and names after it in pieces of their own */
START_TEST(test_a_large_file_written_in_slices_holds_every_byte)
{
	write_and_compare(10001, 1003);
}
END_TEST

START_TEST(test_atomic_write_failures_leave_nothing)
{
	api_dataset d;
	make(&d, 2000, 50, 0, 4);    /* about 400 kB */
	api_dataset_pieces pc;
	ck_assert_int_eq(api_dataset_serialize_pieces(&d, &pc), 0);

	errno = 0;
	ck_assert_int_eq(util_write_atomic_pieces("/nonexistent-dir-of-nnd-tests", "ds.bin",
	                                          pc.p, pc.len, 4), -1);
	ck_assert_int_eq(errno, ENOENT);

	/* a write that stops midway (the file-size limit: EFBIG, one of the
	 * "disk full" errnos): -1, and the directory stays empty */
	ck_assert_int_eq(write_limited(&pc, 100000), EFBIG);
	ck_assert(util_errno_is_space(EFBIG));
	api_dataset_pieces_release(&pc);
	api_dataset_free(&d);
}
END_TEST

/* A large file (written in slices) that hits the file-size limit after
 * some slices went to the disk: -1 with EFBIG, nothing left behind. */
START_TEST(test_a_large_write_failing_midway_leaves_nothing)
{
	api_dataset d;
	make(&d, 10001, 1003, 0, 4);
	api_dataset_pieces pc;
	ck_assert_int_eq(api_dataset_serialize_pieces(&d, &pc), 0);
	ck_assert_int_eq(write_limited(&pc, 20u << 20), EFBIG);   /* inside the third slice */
	api_dataset_pieces_release(&pc);
	api_dataset_free(&d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dataset_file");
	TCase *t = tcase_create("dataset_file");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_pieces_are_the_serialized_bytes);
	tcase_add_test(t, test_pieces_refuse_a_missing_matrix);
	tcase_add_test(t, test_atomic_write_of_pieces_gives_the_file);
	tcase_add_test(t, test_atomic_write_failures_leave_nothing);
	tcase_add_test(t, test_a_large_file_written_in_slices_holds_every_byte);
	tcase_add_test(t, test_a_large_write_failing_midway_leaves_nothing);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
