# tests/pg/nnd.sh - daemons sharing one PostgreSQL store, for the shell
# suites of tests/pg and bench/ (source tests/pg/lib.sh first, pg_start).
#   nnd_up NAME [flags]     starts bin/nnd NAME on 127.0.0.1:0 (store $STORE_URL),
#                           waits for /readyz; sets PORT_NAME, PID_NAME
#   nnd_kill9 NAME / nnd_term NAME
#   api NAME METHOD PATH [JSON]   prints the body (curl)
#   jfield FIELD            the first "FIELD": value of stdin (strings unquoted)
#   owner_of JOB            the daemon NAME whose pid holds JOB's lease
#   fail MSG / ok MSG
NND_BIN=${NND_BIN:-bin}
T=${T:-$(mktemp -d /tmp/nnd-pgt.XXXXXX)}
NAMES=""
FAILS=0

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

nnd_up() {
	n=$1; shift
	from=$(($(cat "$T/$n.log" 2>/dev/null | wc -l) + 1))
	"$NND_BIN/nnd" --listen 127.0.0.1:0 --store "$STORE_URL" --data-dir "$T/data-$n" "$@" \
		2>>"$T/$n.log" >/dev/null &
	eval "PID_$n=$!"
	eval "ARGS_$n=\"\$*\""
	case " $NAMES " in *" $n "*) ;; *) NAMES="$NAMES $n" ;; esac
	i=0
	while [ $i -lt 300 ]; do
		# this start's lines only (the log is appended to across restarts)
		p=$(tail -n +"$from" "$T/$n.log" | grep -a "^listening on" | tail -1 | sed 's/.*://')
		if [ -n "$p" ] && curl -sf "http://127.0.0.1:$p/readyz" >/dev/null 2>&1; then
			eval "PORT_$n=$p"
			return 0
		fi
		sleep 0.05; i=$((i + 1))
	done
	echo "cannot start daemon $n"; tail -5 "$T/$n.log"; return 1
}

nnd_pid() { eval "echo \$PID_$1"; }
nnd_port() { eval "echo \$PORT_$1"; }
nnd_kill9() { kill -9 "$(nnd_pid "$1")" 2>/dev/null; wait "$(nnd_pid "$1")" 2>/dev/null; eval "PID_$1="; }
nnd_term() { kill "$(nnd_pid "$1")" 2>/dev/null; wait "$(nnd_pid "$1")" 2>/dev/null; eval "PID_$1="; }
nnd_all_down() {
	for n in $NAMES; do
		[ -n "$(nnd_pid "$n")" ] && kill -CONT "$(nnd_pid "$n")" 2>/dev/null && nnd_term "$n"
	done
}

api() {
	if [ -n "${4:-}" ]; then
		curl -sS -X "$2" -H 'Content-Type: application/json' --data-binary "$4" \
			"http://127.0.0.1:$(nnd_port "$1")$3"
	else
		curl -sS -X "$2" "http://127.0.0.1:$(nnd_port "$1")$3"
	fi
}

jfield() { grep -o "\"$1\":\(\"[^\"]*\"\|[^,}]*\)" | head -1 | sed "s/^\"$1\"://; s/^\"//; s/\"$//"; }

# A small classification data set (rows x 4 features, 2 classes) on daemon $1.
make_data() {
	/usr/bin/python3 -c '
import random, sys
r = random.Random(7); n = int(sys.argv[1])
print("a,b,c,d,y")
for i in range(n):
    x = [r.uniform(-1, 1) for _ in range(4)]
    print(",".join("%.4f" % v for v in x) + ("," + ("p" if x[0] + x[1] > 0 else "n")))
' "${2:-200}" >"$T/data.csv"
	curl -sS -H 'Content-Type: text/csv' --data-binary @"$T/data.csv" \
		"http://127.0.0.1:$(nnd_port "$1")/v1/datasets?name=d" | jfield id
}

# A model with a fixed seed (every one made so starts from the same weights).
make_model() {
	api "$1" POST /v1/models '{"name":"m","task":"classification","inputs":4,"outputs":2,
	  "seed":3,"layers":[{"type":"dense","units":'"${2:-16}"',"activation":"tanh"}]}' | jfield id
}

# submit DAEMON MODEL DATASET EPOCHS [extra json]
submit() {
	api "$1" POST /v1/jobs '{"model":"'"$2"'","dataset":"'"$3"'","epochs":'"$4"',
	  "batch_size":10,"seed":5,"optimizer":{"type":"adam","lr":0.01},
	  "checkpoint_every_epochs":1,"log_every_steps":5'"${5:-}"'}' | jfield id
}

job_state() { api "$1" GET "/v1/jobs/$2" | jfield state; }

# wait_final DAEMON JOB SECONDS: prints the final state (or "timeout")
wait_final() {
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		s=$(job_state "$1" "$2" 2>/dev/null)
		case "$s" in succeeded|failed|cancelled) echo "$s"; return 0 ;; esac
		sleep 0.1; i=$((i + 1))
	done
	echo timeout
}

owner_of() {
	o=$(pg_psql -c "SELECT owner FROM $SCHEMA.jobs WHERE id='$1' AND state=1")
	pid=${o##*/}
	for n in $NAMES; do
		[ -n "$pid" ] && [ "$(nnd_pid "$n")" = "$pid" ] && { echo "$n"; return 0; }
	done
	echo ""
}

weights() { api "$1" GET "/v1/models/$2/weights"; }
