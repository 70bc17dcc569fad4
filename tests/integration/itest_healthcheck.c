/*
 * itest_healthcheck.c - `nnd --healthcheck`, the probe a container's
 * HEALTHCHECK can run instead of curl: exit 0 against a serving daemon
 * (also when asked at its wildcard address, and with an API key set, as
 * /healthz stays open), exit 1 when nothing listens, when the listener
 * never answers, and when the answer is not a 200 {"status":"ok"}.
 */
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Runs bin/nnd --healthcheck --listen addr; returns its exit status (-1 if
 * it did not exit) and its stderr in err. */
static int probe(const char *addr, char *err, size_t errlen)
{
	const char *bin = getenv("NND_BIN");
	char path[512];
	snprintf(path, sizeof path, "%s/nnd", bin && *bin ? bin : "bin");
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		execl(path, path, "--healthcheck", "--listen", addr, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	size_t got = 0;
	ssize_t n;
	while (got + 1 < errlen && (n = read(pfd[0], err + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(pfd[0]);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A listening socket on 127.0.0.1 (any port); its port in *port. */
static int listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	socklen_t l = sizeof a;
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A child that answers one connection on fd with reply, then exits. */
static pid_t answer_once(int fd, const char *reply)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			_exit(1);
		char buf[1024];
		ssize_t n = read(c, buf, sizeof buf);   /* the request, in one piece here */
		(void)n;
		ssize_t w = write(c, reply, strlen(reply));
		(void)w;
		close(c);
		_exit(0);
	}
	return pid;
}

START_TEST(test_healthy_daemon_exits_0)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char addr[64], err[512];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", d.port);
	ck_assert_int_eq(probe(addr, err, sizeof err), 0);
	ck_assert_str_eq(err, "");
	/* the wildcard address a container listens on is asked on loopback */
	snprintf(addr, sizeof addr, "0.0.0.0:%d", d.port);
	ck_assert_int_eq(probe(addr, err, sizeof err), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);

	/* after the daemon is gone: 1, and why */
	ck_assert_int_eq(probe(addr, err, sizeof err), 1);
	ck_assert_ptr_nonnull(strstr(err, "unhealthy: cannot connect"));
}
END_TEST

START_TEST(test_healthz_needs_no_key)
{
	nnd d = { 0 };
	snprintf(d.key, sizeof d.key, "hc-secret-key");
	setenv("NND_API_KEY", "hc-secret-key", 1);
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	unsetenv("NND_API_KEY");
	char addr[64], err[512];
	http_resp r;
	/* the key is on: /v1 refuses a request without it */
	ck_assert_int_eq(http_do_auth(&d, "GET", "/v1/info", NULL, NULL, 0, "", &r), 401);
	resp_free(&r);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", d.port);
	ck_assert_int_eq(probe(addr, err, sizeof err), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_wrong_answers_exit_1)
{
	char addr[64], err[512];
	int port;
	int fd = listener(&port);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	static const struct {
		const char *reply, *why;
	} cases[] = {
		{ "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}", "answered 503" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", "without" },
		{ "SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP reply" },
		{ "", "not an HTTP reply" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pid_t srv = answer_once(fd, cases[i].reply);
		ck_assert_int_eq(probe(addr, err, sizeof err), 1);
		ck_assert_msg(strstr(err, cases[i].why) != NULL, "case %zu: %s", i, err);
		waitpid(srv, NULL, 0);
	}
	/* and the right answer from the same stand-in passes */
	pid_t srv = answer_once(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                            "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}");
	ck_assert_int_eq(probe(addr, err, sizeof err), 0);
	waitpid(srv, NULL, 0);

	/* a listener that never answers: the probe gives up (2 s) with 1 */
	ck_assert_int_eq(probe(addr, err, sizeof err), 1);
	ck_assert_ptr_nonnull(strstr(err, "timed out"));
	close(fd);

	/* no port to ask */
	ck_assert_int_eq(probe("127.0.0.1:0", err, sizeof err), 1);
	ck_assert_ptr_nonnull(strstr(err, "no port"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("healthcheck");
	TCase *t = tcase_create("healthcheck");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_healthy_daemon_exits_0);
	tcase_add_test(t, test_healthz_needs_no_key);
	tcase_add_test(t, test_wrong_answers_exit_1);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
