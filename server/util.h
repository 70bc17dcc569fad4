/*
 * util.h - small pieces the daemon's modules share: clocks, ids from the
 * kernel's CSPRNG, durable file writes, and the log.
 */
#ifndef NND_UTIL_H
#define NND_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the epoch / monotonic microseconds. */
int64_t util_now_ms(void);
int64_t util_mono_us(void);

/* prefix "_" 16 lowercase hex digits from getrandom(2) into out (>= 24
 * bytes). 0 or -1. */
int util_new_id(const char *prefix, char *out, size_t len);

/*
 * Writes buf to dir/name durably: a temporary name in dir (".tmp-" prefix),
 * fsync, rename over name, fsync of dir. 0 or -1 (errno kept).
 */
int util_write_atomic(const char *dir, const char *name, const void *buf, size_t len);
/* The same, with the file's bytes given as n pieces written in order. */
int util_write_atomic_pieces(const char *dir, const char *name, const void *const *bufs,
                             const size_t *lens, int n);
/* Reads a whole file into a malloc'd buffer. 0 or -1. */
int util_read_file(const char *path, void **buf, size_t *len);
/* mkdir -p one level (0700); 0 when it exists. */
int util_mkdir(const char *path);
/* Hands the free pages of every arena back to the system (after a request
 * that freed much, and a worker going idle): well under a millisecond. */
void util_malloc_release(void);
/* fsync of a directory. */
int util_fsync_dir(const char *dir);
/* Removes every ".tmp-*" entry of dir. Returns how many. */
int util_remove_temps(const char *dir);
/* Is this errno a full disk or quota, or a file-size limit (ENOSPC,
 * EDQUOT, EFBIG)? Those are the store's 507, not a fault. */
int util_errno_is_space(int err);
/* Removes dir/name and fsyncs dir; 0 (and no fsync) when it does not exist. */
int util_unlink(const char *dir, const char *name);

/* Log levels: 0 error, 1 warn, 2 info, 3 debug. */
extern int util_log_level;
int util_log_level_parse(const char *s);
/* A log line of level (dropped above util_log_level): the UTC time to the
 * millisecond, a space, the text and a newline, in one write to stderr.
 * Text past UTIL_LOG_MAX bytes is cut. */
#define UTIL_LOG_MAX 2047
void util_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for text already made (len bytes): no printf, for lines a
 * request writes (glibc's printf takes its slow path in nnd: libquadmath,
 * which OpenBLAS's libgfortran loads, registers a printf type). */
void util_log_text(int level, const char *text, size_t len);

#endif
