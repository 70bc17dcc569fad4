/*
 * test_util_log.c - the daemon's log lines (server/util.c): the UTC time
 * to the millisecond, the text, a newline, one write each; dropped above
 * the level; cut at UTIL_LOG_MAX; and whole when threads log at once.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <check.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "util.h"

static char path[64];
static int saved = -1;

/* stderr to a fresh temporary file. */
static void capture(void)
{
	snprintf(path, sizeof path, "/tmp/nnd-log-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
	close(fd);
}

/* stderr back; the file's text (to be freed). */
static char *captured(size_t *len)
{
	dup2(saved, 2);
	close(saved);
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *t = calloc(1, (size_t)n + 1);
	ck_assert_int_eq(fread(t, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(path);
	*len = (size_t)n;
	return t;
}

static int matches(const char *text, const char *pattern)
{
	regex_t re;
	ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	int ok = regexec(&re, text, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

START_TEST(test_a_line_is_the_utc_time_the_text_and_a_newline)
{
	util_log_level = 2;
	/* the clock the log reads: time() reads a coarser one, up to a tick
	 * behind, so a line logged just past a second showed a time after it */
	time_t before = util_now_ms() / 1000;
	capture();
	util_log(2, "GET %s %d", "/healthz", 200);
	util_log_text(2, "POST /v1/models 201 57 812us", 28);
	util_log(3, "debug: dropped at level 2");
	util_log_text(3, "dropped too", 11);
	size_t n;
	char *t = captured(&n);
	time_t after = util_now_ms() / 1000;
	ck_assert_msg(matches(t, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	                         "GET /healthz 200\n"
	                         "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	                         "POST /v1/models 201 57 812us\n$"),
	              "log: %s", t);
	/* the time is now's, in UTC */
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	ck_assert_ptr_nonnull(strptime(t, "%Y-%m-%dT%H:%M:%S", &tm));
	time_t logged = timegm(&tm);
	ck_assert(logged >= before && logged <= after);
	free(t);
}
END_TEST

START_TEST(test_a_long_text_is_cut_and_still_ends_its_line)
{
	util_log_level = 2;
	size_t big = UTIL_LOG_MAX + 500;
	char *text = malloc(big);
	memset(text, 'x', big);
	capture();
	util_log_text(2, text, big);
	util_log(2, "%.*s", (int)big, text);
	size_t n;
	char *t = captured(&n);
	const size_t line = 24 + 1 + UTIL_LOG_MAX + 1;
	ck_assert_uint_eq(n, 2 * line);
	ck_assert_int_eq(t[line - 1], '\n');
	ck_assert_int_eq(t[line - 2], 'x');
	ck_assert_int_eq(t[2 * line - 1], '\n');
	ck_assert_int_eq(t[2 * line - 2], 'x');
	free(t);
	free(text);
}
END_TEST

#define THREADS 4
#define LINES 2000

static void *logger(void *arg)
{
	char text[128];
	int id = (int)(long)arg;
	for (int i = 0; i < LINES; i++) {
		int k = snprintf(text, sizeof text, "thread %d line %d %s", id, i,
		                 "padding-padding-padding-padding-padding-padding");
		util_log_text(2, text, (size_t)k);
	}
	return NULL;
}

START_TEST(test_lines_of_threads_logging_at_once_stay_whole)
{
	util_log_level = 2;
	capture();
	pthread_t th[THREADS];
	for (long i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, logger, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	size_t n;
	char *t = captured(&n);
	int next[THREADS] = { 0 };
	int lines = 0;
	for (char *p = t, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1, lines++) {
		*nl = 0;
		int id = -1, i = -1;
		ck_assert_msg(sscanf(p + 25, "thread %d line %d padding-", &id, &i) == 2 &&
		                      id >= 0 && id < THREADS,
		              "a broken line: %s", p);
		ck_assert_int_eq(i, next[id]);   /* each thread's lines whole and in order */
		next[id]++;
	}
	ck_assert_int_eq(lines, THREADS * LINES);
	free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("util_log");
	TCase *t = tcase_create("core");
	tcase_set_timeout(t, 30);
	tcase_add_test(t, test_a_line_is_the_utc_time_the_text_and_a_newline);
	tcase_add_test(t, test_a_long_text_is_cut_and_still_ends_its_line);
	tcase_add_test(t, test_lines_of_threads_logging_at_once_stay_whole);
	suite_add_tcase(s, t);
	return check_run(s);
}
