/*
 * util.c - clocks, CSPRNG ids, durable file writes and the log line writer
 * shared by the daemon's modules.
 */
#define _GNU_SOURCE /* sync_file_range */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int util_log_level = 2;

int64_t util_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int util_new_id(const char *prefix, char *out, size_t len)
{
	unsigned char r[8];
	size_t got = 0;
	while (got < sizeof r) {
		ssize_t n = getrandom(r + got, sizeof r - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	int n = snprintf(out, len, "%s_%02x%02x%02x%02x%02x%02x%02x%02x", prefix, r[0], r[1],
	                 r[2], r[3], r[4], r[5], r[6], r[7]);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Under AddressSanitizer its allocator serves every malloc: glibc's own is
 * never set up, so the first malloc_trim sets it up, and two workers going
 * idle at once race in that setup (a SEGV in glibc's mtrim, seen in make
 * sanitize; two threads' first malloc_trim at once crash the same way). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UTIL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UTIL_ASAN 1
#endif

void util_malloc_release(void)
{
#if defined(__GLIBC__) && !defined(UTIL_ASAN)
	malloc_trim(0);
#endif
}

int util_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int util_write_atomic(const char *dir, const char *name, const void *buf, size_t len)
{
	return util_write_atomic_pieces(dir, name, &buf, &len, 1);
}

/* Files of at least WRITE_EARLY_MIN bytes are written WRITE_SLICE at a
 * time, each slice's writeback started at once. */
#define WRITE_EARLY_MIN ((size_t)32 << 20)
#define WRITE_SLICE ((size_t)8 << 20)

int util_write_atomic_pieces(const char *dir, const char *name, const void *const *bufs,
                             const size_t *lens, int npieces)
{
	char tmp[4096], dst[4096];
	unsigned char r[4];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		memset(r, 0, sizeof r);
	if (snprintf(tmp, sizeof tmp, "%s/.tmp-%02x%02x%02x%02x-%s", dir, r[0], r[1], r[2], r[3],
	             name) >= (int)sizeof tmp ||
	    snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	size_t total = 0, off = 0, started = 0;
	for (int i = 0; i < npieces; i++)
		total += lens[i];
	for (int i = 0; i < npieces; i++) {
		const char *p = bufs[i];
		size_t left = lens[i];
		while (left > 0) {
			/* a large file goes in slices, each handed to the disk as
			 * soon as it is written (writeback starts, nothing waits),
			 * so the disk works while the next slices are copied and
			 * the fsync below waits for the last of them only */
			size_t want = total >= WRITE_EARLY_MIN && left > WRITE_SLICE ? WRITE_SLICE : left;
			ssize_t n = write(fd, p, want);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				goto fail;
			}
			p += n;
			left -= (size_t)n;
			off += (size_t)n;
			if (total >= WRITE_EARLY_MIN && off - started >= WRITE_SLICE) {
				(void)sync_file_range(fd, (off_t)started, (off_t)(off - started),
				                      SYNC_FILE_RANGE_WRITE);
				started = off;
			}
		}
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, dst) < 0)
		goto fail;
	return util_fsync_dir(dir);
fail:;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

int util_errno_is_space(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

int util_read_file(const char *path, void **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	size_t n = (size_t)st.st_size;
	char *b = malloc(n ? n : 1);
	if (!b) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(b);
			close(fd);
			return -1;
		}
		got += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

int util_mkdir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

int util_remove_temps(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	char path[4096];
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < (int)sizeof path &&
		    unlink(path) == 0)
			n++;
	}
	closedir(d);
	if (n)
		util_fsync_dir(dir);
	return n;
}

int util_unlink(const char *dir, const char *name)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return -1;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -1;   /* nothing changed: nothing to sync */
	return util_fsync_dir(dir);
}

int util_log_level_parse(const char *s)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++)
		if (s && strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* d[0..n) = v's last n decimal digits. */
static void put_digits(char *d, int v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		d[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* The time's text, "2026-12-07T17:39:57.598Z" (LOG_STAMP bytes), into d.
 * The text of the second is kept per thread: a line costs one clock read
 * and no calendar arithmetic but once a second. */
#define LOG_STAMP 24
static void log_stamp(char *d)
{
	static __thread int64_t sec = -1;
	static __thread char head[19];
	int64_t ms = util_now_ms();
	if (ms / 1000 != sec) {
		sec = ms / 1000;
		time_t t = (time_t)sec;
		struct tm tm;
		gmtime_r(&t, &tm);
		memcpy(head, "0000-00-00T00:00:00", 19);
		put_digits(head, tm.tm_year + 1900, 4);
		put_digits(head + 5, tm.tm_mon + 1, 2);
		put_digits(head + 8, tm.tm_mday, 2);
		put_digits(head + 11, tm.tm_hour, 2);
		put_digits(head + 14, tm.tm_min, 2);
		put_digits(head + 17, tm.tm_sec, 2);
	}
	memcpy(d, head, 19);
	d[19] = '.';
	put_digits(d + 20, (int)(ms % 1000), 3);
	d[23] = 'Z';
}

void util_log_text(int level, const char *text, size_t len)
{
	if (level > util_log_level)
		return;
	char line[LOG_STAMP + 1 + UTIL_LOG_MAX + 1];
	log_stamp(line);
	line[LOG_STAMP] = ' ';
	if (len > UTIL_LOG_MAX)
		len = UTIL_LOG_MAX;
	memcpy(line + LOG_STAMP + 1, text, len);
	size_t n = LOG_STAMP + 1 + len;
	line[n++] = '\n';
	/* one write(2) per line, and no stdio: lines from threads never
	 * interleave, and a thread never sleeps on stderr's lock while another
	 * one's write is in the kernel */
	for (size_t off = 0; off < n;) {
		ssize_t w = write(2, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

void util_log(int level, const char *fmt, ...)
{
	if (level > util_log_level)
		return;
	char line[UTIL_LOG_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	util_log_text(level, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}
