# tests/pg/lib.sh - a throwaway PostgreSQL cluster for tests and benchmarks.
# Source it, then:
#   pg_have || { echo "SKIP: ..."; exit 77; }
#   pg_start            # a cluster in a new temporary directory, Unix socket only
#   ... bin/nnd --store "$PG_URL" ...
#   pg_restart [fast|immediate]   # the database restarted under the daemons
#   pg_stop             # stops it and removes the directory (also on exit)
# Debian's postgresql package: initdb and pg_ctl from $PG_BIN. initdb refuses
# root, so the cluster runs as the postgres user (runuser), in a directory
# given to it. The superuser is "nnd" (trust on the socket): PG_URL needs no
# password. PG_LISTEN (default '': no TCP) may name addresses to listen on
# (the several-hosts script listens inside a network namespace it made).
# PG_NOSYNC=1 (the test suites set it; benchmarks leave it unset): nothing is
# flushed to disk (initdb --no-sync, fsync off), so a cluster that is thrown
# away stops in a fraction of a second instead of seconds of fsyncs. A
# server killed or restarted (pg_restart immediate too) loses nothing: its
# writes are in the kernel's cache; only a crash of the machine would.
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=
PG_URL=

pg_have() {
	[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && [ -x "$PG_BIN/postgres" ] &&
		command -v runuser >/dev/null 2>&1 && id postgres >/dev/null 2>&1
}

# PG_EXEC: a prefix for the server's commands (the several-hosts script runs it
# inside a network namespace: PG_EXEC="ip netns exec NAME")
pg_as() { ${PG_EXEC:-} runuser -u postgres -- "$@"; }

pg_start() {
	PG_DIR=$(mktemp -d /tmp/nnd-pg.XXXXXX) || return 1
	chown postgres: "$PG_DIR" && chmod 755 "$PG_DIR" || return 1
	pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U nnd -A trust -E UTF8 --no-locale \
		$([ "${PG_NOSYNC:-0}" = 1 ] && echo --no-sync) \
		>"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log"; return 1; }
	{
		echo "listen_addresses = '${PG_LISTEN:-}'"
		echo "unix_socket_directories = '$PG_DIR'"
		echo "max_connections = ${PG_MAX_CONNECTIONS:-200}"
		echo "shared_buffers = 64MB"
		[ "${PG_NOSYNC:-0}" = 1 ] && printf 'fsync = off\nfull_page_writes = off\n'
		[ -n "${PG_LISTEN:-}" ] && echo "port = ${PG_PORT:-5432}"
	} >>"$PG_DIR/data/postgresql.conf"
	if [ -n "${PG_LISTEN:-}" ]; then
		echo "host all all 0.0.0.0/0 trust" >>"$PG_DIR/data/pg_hba.conf"
	fi
	pg_ctl_start || return 1
	"$PG_BIN/createdb" -h "$PG_DIR" -U nnd nnd || return 1
	PG_URL="postgresql:///nnd?host=$PG_DIR&user=nnd"
	trap pg_stop EXIT
	export PG_DIR PG_URL
}

pg_ctl_start() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/pg.log" -w -t 60 start >/dev/null ||
		{ tail -20 "$PG_DIR/pg.log"; return 1; }
}

# Stops the server (mode fast or immediate: as a crash), waits SECONDS (default
# 0) and starts it again on the same data.
pg_restart() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "${1:-fast}" -w stop >/dev/null
	sleep "${2:-0}"
	pg_ctl_start
}

pg_psql() {
	"$PG_BIN/psql" -X -q -At -h "$PG_DIR" -U nnd -d nnd "$@"
}

pg_stop() {
	[ -n "$PG_DIR" ] && [ -d "$PG_DIR" ] || return 0
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
	case "${NND_KEEP_TMP:-}" in
	"") rm -rf "$PG_DIR" ;;
	*) echo "kept $PG_DIR" ;;
	esac
	PG_DIR=
}
