/*
 * cluster.c - the shared queue's thread (see cluster.h): LISTEN on the
 * store's channel, lease renewals, expired leases back to the queue.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "store_pg.h"
#include "util.h"

int cluster_lease_ms = 10000;
int cluster_max_attempts = 5;

struct cluster {
	store *st;
	pgs *p;
	cluster_hooks h;
	char owner[160];
	int workers;
	pthread_t lease_th, listen_th;
	int wake[2];              /* a byte here ends the thread's wait */
	volatile int stop;
};

/* Renews every lease held here; a lease found taken is marked lost (the
 * job stops at its next step), a cancel found asked for is handed on. */
static void renew_all(cluster *c)
{
	char (*ids)[API_ID_LEN] = NULL;
	int64_t *tokens = NULL;
	int n = pg_leases_held(&ids, &tokens);
	for (int i = 0; i < n; i++) {
		int cancel = 0;
		int r = pg_renew(c->p, ids[i], tokens[i], cluster_lease_ms, &cancel);
		if (r == 0) {
			pg_lease_mark_lost(ids[i]);
			util_log(1, "cluster: %s: the lease was lost (another daemon took the job)",
			         ids[i]);
		} else if (r == 1 && cancel) {
			c->h.cancel(c->h.ctx, ids[i]);
		}
	}
	free(ids);
	free(tokens);
}

/* A LISTEN connection, or NULL. */
static PGconn *listen_open(cluster *c)
{
	PGconn *ln = pg_connect_more(c->p);
	if (!ln)
		return NULL;
	char *ch = PQescapeIdentifier(ln, pg_channel(c->p), strlen(pg_channel(c->p)));
	char sql[300];
	snprintf(sql, sizeof sql, "LISTEN %s", ch ? ch : "\"nnd\"");
	PQfreemem(ch);
	PGresult *r = PQexec(ln, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok) {
		PQfinish(ln);
		return NULL;
	}
	return ln;
}

static void on_notify(cluster *c, const char *payload)
{
	if (!payload || !payload[0] || payload[1] != ':')
		return;
	const char *id = payload + 2;
	switch (payload[0]) {
	case 'q':
		c->h.queued(c->h.ctx);
		break;
	case 'c':
		c->h.cancel(c->h.ctx, id);
		break;
	case 'e':
		c->h.events(c->h.ctx, id);
		break;
	}
}

static int64_t now_ms(void)
{
	return util_mono_us() / 1000;
}

/* Waits up to ms for a byte on the wake pipe or input on fd (-1: none). */
static void wait_for(cluster *c, int fd, int ms)
{
	struct pollfd fds[2] = { { c->wake[0], POLLIN, 0 }, { fd, POLLIN, 0 } };
	if (ms > 0)
		poll(fds, fd >= 0 ? 2 : 1, ms);
}

/* The lease thread: renewals, and expired jobs back to the queue. */
static void *lease_loop(void *arg)
{
	cluster *c = arg;
	int64_t next_renew = 0, next_scan = 0;
	int scan_ms = cluster_lease_ms / 2 < 1000 ? cluster_lease_ms / 2 : 1000;
	while (!c->stop) {
		int64_t now = now_ms();
		if (now >= next_renew) {
			renew_all(c);
			next_renew = now + cluster_lease_ms / 3;
		}
		if (now >= next_scan) {
			if (pg_requeue_expired(c->p, cluster_max_attempts) > 0)
				c->h.queued(c->h.ctx);
			next_scan = now + scan_ms;
		}
		int64_t next = next_renew < next_scan ? next_renew : next_scan;
		wait_for(c, -1, (int)(next - now_ms()));
	}
	return NULL;
}

/* The listening thread: notifications to the hooks, and the ticks. */
static void *listen_loop(void *arg)
{
	cluster *c = arg;
	PGconn *ln = NULL;
	int64_t next_tick = 0, next_listen = 0;
	int ticks = 0;
	while (!c->stop) {
		int64_t now = now_ms();
		if (!ln && now >= next_listen) {
			ln = listen_open(c);
			next_listen = now + 1000;
			if (ln)   /* notifications may have gone by meanwhile */
				c->h.queued(c->h.ctx);
		}
		if (now >= next_tick) {
			c->h.tick(c->h.ctx, ticks++ % 5 == 0);
			next_tick = now + 200;
		}
		int64_t next = next_tick;
		if (!ln && next_listen < next)
			next = next_listen;
		wait_for(c, ln ? PQsocket(ln) : -1, (int)(next - now_ms()));
		if (!ln)
			continue;
		if (!PQconsumeInput(ln) || PQstatus(ln) != CONNECTION_OK) {
			util_log(1, "cluster: the LISTEN connection broke: %s", PQerrorMessage(ln));
			PQfinish(ln);
			ln = NULL;
			continue;
		}
		PGnotify *n;
		while ((n = PQnotifies(ln)) != NULL) {
			on_notify(c, n->extra);
			PQfreemem(n);
		}
	}
	PQfinish(ln);
	return NULL;
}

cluster *cluster_open(store *st, int workers, const cluster_hooks *h)
{
	if (strcmp(store_kind(st), "postgresql") != 0)
		return NULL;
	cluster *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->st = st;
	c->p = pg_clone(store_impl(st));
	if (!c->p) {
		free(c);
		return NULL;
	}
	c->h = *h;
	c->workers = workers;
	char host[128] = "?";
	gethostname(host, sizeof host - 1);
	snprintf(c->owner, sizeof c->owner, "%s/%ld", host, (long)getpid());
	if (pipe(c->wake) < 0) {
		pg_free(c->p);
		free(c);
		return NULL;
	}
	if (pthread_create(&c->lease_th, NULL, lease_loop, c) != 0) {
		close(c->wake[0]);
		close(c->wake[1]);
		pg_free(c->p);
		free(c);
		return NULL;
	}
	if (pthread_create(&c->listen_th, NULL, listen_loop, c) != 0) {
		cluster_close(c);
		return NULL;
	}
	util_log(2, "cluster: %s shares the queue (lease %d ms, %d attempts at most)", c->owner,
	         cluster_lease_ms, cluster_max_attempts);
	return c;
}

void cluster_close(cluster *c)
{
	if (!c)
		return;
	c->stop = 1;
	if (write(c->wake[1], "x", 1) < 0)
		util_log(0, "cluster: cannot wake the thread: %s", strerror(errno));
	pthread_join(c->lease_th, NULL);
	if (c->listen_th)
		pthread_join(c->listen_th, NULL);
	close(c->wake[0]);
	close(c->wake[1]);
	pg_free(c->p);
	free(c);
}

int cluster_claim(cluster *c, int free_workers, char id[API_ID_LEN])
{
	int64_t token = 0;
	int fit = free_workers < c->workers ? free_workers : c->workers;
	return fit > 0 && pg_claim(c->p, c->owner, fit, cluster_lease_ms, id, &token) == 1;
}

void cluster_release(cluster *c, const char *id)
{
	(void)c;
	pg_lease_drop(id);
}

int cluster_lost(cluster *c, const char *id)
{
	(void)c;
	return pg_lease_lost(id);
}

int cluster_cancel_queued(cluster *c, const char *id)
{
	return pg_cancel_queued(c->p, id);
}

const char *cluster_owner(const cluster *c)
{
	return c->owner;
}
