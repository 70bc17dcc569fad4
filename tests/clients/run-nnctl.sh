#!/bin/sh
# run-nnctl.sh - tests bin/nnctl against a real daemon: every command's output
# and exit status, error details on stderr, --follow on a job that succeeds,
# one that is cancelled and one that fails, IDX uploads, weights, the API key.
set -u
cd "$(dirname "$0")/../.."
. tests/clients/lib.sh
NNCTL="$NND_BIN/nnctl"
[ -x "$NNCTL" ] || { echo "FATAL: $NNCTL is missing (make bin/nnctl)" >&2; exit 1; }
unset NND_API_KEY
start_daemon
W="$T_TMP"

# -- usage and help --
"$NNCTL" --help >"$W/out" 2>&1; check_eq "nnctl --help exits 0" "$?" 0
check_match "--help lists the commands" "$(cat "$W/out")" "nnctl train --model ID --dataset ID"
"$NNCTL" train --help >"$W/out" 2>&1; check_eq "train --help exits 0" "$?" 0
check_match "train --help explains --follow" "$(cat "$W/out")" "--follow"
"$NNCTL" frobnicate >/dev/null 2>"$W/err"; check_eq "unknown command exits 2" "$?" 2
check_match "unknown command is named" "$(cat "$W/err")" 'unknown command "frobnicate"'
"$NNCTL" datasets get >/dev/null 2>&1; check_eq "missing argument exits 2" "$?" 2
"$NNCTL" datasets list --epochs 3 >/dev/null 2>"$W/err"; check_eq "foreign option exits 2" "$?" 2

# -- data sets --
write_sep_csv "$W/sep.csv"
DS="$("$NNCTL" -q datasets upload "$W/sep.csv" --label label --name sep 2>"$W/err")"
check_eq "upload exits 0" "$?" 0
check_match "upload -q prints the id" "$DS" '^ds_[0-9a-f]{16}$'
out="$("$NNCTL" datasets upload "$W/sep.csv" --name 'two words')"
check_match "upload summary" "$out" '^ds_[0-9a-f]{16}  two words  classification  12 rows x 2 features  2 classes$'
"$NNCTL" --json datasets get "$DS" >"$W/ds.json"
check_eq "datasets get --json: rows" "$(jget 'j["rows"]' <"$W/ds.json")" 12
check_eq "datasets get --json: classes" "$(jget 'j["classes"]' <"$W/ds.json")" '["neg", "pos"]'
check_match "datasets list shows it" "$("$NNCTL" datasets list)" "^$DS +sep +classification +12 +2 "
check_match "datasets list -q" "$("$NNCTL" -q datasets list --limit 1000)" "^$DS\$"
check_eq "datasets data: the rows back as CSV" "$("$NNCTL" datasets data "$DS" --offset 6 --limit 2)" \
	"$(printf 'x0,x1,label\n-2,-1.5,neg\n-1,-2.5,neg')"
check_eq "datasets data --json: class indices" \
	"$("$NNCTL" --json datasets data "$DS" --limit 1 | jget 'j["y"], j["classes"]')" "([1], ['neg', 'pos'])"
DS2="$("$NNCTL" -q datasets upload "$W/sep.csv" --classes pos,neg,none)"
check_eq "upload --classes fixes the classes and their order" \
	"$("$NNCTL" --json datasets get "$DS2" | jget 'j["classes"]')" '["pos", "neg", "none"]'
"$NNCTL" datasets upload "$W/sep.csv" --classes pos >/dev/null 2>"$W/err"
check_match "a label outside --classes names its line" "$(cat "$W/err")" "line 8.*'neg' is not one of classes="
"$NNCTL" datasets data ds_0000000000000000 >/dev/null 2>"$W/err"
check_match "datasets data of an unknown set: 404 on stderr" "$(cat "$W/err")" 'HTTP 404'
"$NNCTL" datasets get ds_0000000000000000 >/dev/null 2>"$W/err"
check_eq "unknown data set exits 1" "$?" 1
check_match "404 detail on stderr" "$(cat "$W/err")" '^nnctl: .+'
check_match "404 status and code on stderr" "$(cat "$W/err")" 'HTTP 404'
printf 'a,b\n1,2\n3,4,5\n' >"$W/bad.csv"
"$NNCTL" datasets upload "$W/bad.csv" >/dev/null 2>"$W/err"
check_eq "malformed CSV exits 1" "$?" 1
check_match "malformed CSV names the line" "$(cat "$W/err")" '3'
"$NNCTL" datasets upload "$W/nonexistent.csv" >/dev/null 2>"$W/err"
check_eq "unreadable file exits non-zero" "$([ $? -ne 0 ] && echo yes)" yes

# IDX: 6 images of 2x3, labels 0..2
python3 - "$W" <<'PY'
import struct, sys, gzip
d = sys.argv[1]
imgs = bytes((i * 5 + j) % 256 for i in range(6) for j in range(6))
open(d + "/img.idx.gz", "wb").write(gzip.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 6, 2, 3) + imgs))
open(d + "/lab.idx", "wb").write(struct.pack(">BBBBI", 0, 0, 8, 1, 6) + bytes([0, 1, 2, 0, 1, 2]))
PY
"$NNCTL" --json datasets upload --images "$W/img.idx.gz" --labels "$W/lab.idx" --name idx >"$W/idx.json"
check_eq "IDX upload exits 0" "$?" 0
check_eq "IDX image shape" "$(jget '[j["image"][k] for k in ("width","height","channels")]' <"$W/idx.json")" "[3, 2, 1]"
check_eq "IDX rows x features" "$(jget '[j["rows"], j["features"]]' <"$W/idx.json")" "[6, 6]"
"$NNCTL" datasets upload --images "$W/img.idx.gz" >/dev/null 2>&1
check_eq "IDX without --labels exits 2" "$?" 2

# -- models --
cat >"$W/spec.json" <<'JSON'
{"task": "classification", "inputs": 2, "outputs": 2, "seed": 3,
 "layers": [{"type": "dense", "units": 8, "activation": "tanh"}]}
JSON
MDL="$("$NNCTL" -q models create "$W/spec.json" --name sep-mlp)"
check_match "models create -q prints the id" "$MDL" '^mdl_[0-9a-f]{16}$'
check_match "models get" "$("$NNCTL" models get "$MDL")" '"parameters":[[:space:]]*42'
check_match "models list" "$("$NNCTL" models list)" "^$MDL +sep-mlp +classification +2 +2 +42 +0 "
echo '{"task": "classification", "inputs": 2, "outputs": 2, "layers": [{"type": "dense", "units": 0}]}' >"$W/bad.json"
"$NNCTL" models create "$W/bad.json" >/dev/null 2>"$W/err"
check_eq "invalid spec exits 1" "$?" 1
check_match "invalid spec names the field" "$(cat "$W/err")" 'layers\[0\]\.units'
echo '{"task": ' >"$W/broken.json"
"$NNCTL" models create "$W/broken.json" >/dev/null 2>&1
check_eq "unparsable spec file exits 2" "$?" 2

# -- train --follow (not a terminal: plain lines) --
"$NNCTL" train --model "$MDL" --dataset "$DS" --epochs 60 --batch-size 4 --lr 0.05 \
	--optimizer adam --seed 1 --standardize --follow >"$W/follow.out" 2>"$W/follow.err"
check_eq "train --follow exits 0 on success" "$?" 0
check_match "follow prints step lines" "$(cat "$W/follow.out")" '^step [0-9]+  epoch [0-9]+  loss [0-9.e-]+'
check_match "follow prints epoch lines" "$(cat "$W/follow.out")" '^epoch 60/60  train_loss '
check_match "follow ends with the terminal state" "$(tail -n 1 "$W/follow.out")" '^job job_[0-9a-f]{16} succeeded'
check_eq "no carriage returns off a terminal" "$(tr -cd '\r' <"$W/follow.out" | wc -c)" 0
JOB="$(sed -n 's/^started job //p' "$W/follow.err")"
check_match "train --follow names the job on stderr" "$JOB" '^job_[0-9a-f]{16}$'

"$NNCTL" --json jobs get "$JOB" >"$W/job.json"
check_eq "train sends the options" \
	"$(jget '[j["config"][k] for k in ("epochs", "batch_size", "seed", "standardize")] + [j["config"]["optimizer"]["type"], j["config"]["optimizer"]["lr"]]' <"$W/job.json")" \
	'[60, 4, 1, true, "adam", 0.05]'
echo '{"epochs": 2, "batch_size": 6, "optimizer": {"type": "momentum", "lr": 0.1, "momentum": 0.5}, "standardize": false}' >"$W/job-config.json"
MDL2="$("$NNCTL" -q models create "$W/spec.json")"
JOB3="$("$NNCTL" -q train --model "$MDL2" --dataset "$DS" --config "$W/job-config.json" --lr 0.2)"
check_eq "--config with --lr overriding one field" \
	"$("$NNCTL" --json jobs get "$JOB3" | jget '[j["config"]["epochs"], j["config"]["batch_size"], j["config"]["standardize"], j["config"]["optimizer"]["type"], j["config"]["optimizer"]["lr"], j["config"]["optimizer"]["momentum"]]')" \
	'[2, 6, false, "momentum", 0.2, 0.5]'
"$NNCTL" jobs follow "$JOB3" >/dev/null
JOB4="$("$NNCTL" -q train --model "$MDL2" --dataset "$DS" --epochs 1 --lr 0.3)"
check_eq "--lr alone keeps the default optimizer (sgd)" \
	"$("$NNCTL" --json jobs get "$JOB4" | jget '[j["config"]["optimizer"]["type"], j["config"]["optimizer"]["lr"]]')" '["sgd", 0.3]'
"$NNCTL" jobs follow "$JOB4" >/dev/null
JOB5="$("$NNCTL" -q train --model "$MDL2" --dataset "$DS" --epochs 2 --replicas 2 --shards 4)"
"$NNCTL" jobs follow "$JOB5" >/dev/null
check_eq "--replicas and --shards reach the job; it ran on two threads" \
	"$("$NNCTL" --json jobs get "$JOB5" | jget '[j["config"]["replicas"], j["config"]["shards"], j["placement"], j["state"]]')" \
	'[2, 4, ["thread 0", "thread 1"], "succeeded"]'

# -- predict --
printf 'x0,x1\n2,2\n-2,-2\n1,0.5\n-0.5,-1\n' >"$W/rows.csv"
out="$("$NNCTL" predict "$MDL" --input "$W/rows.csv")"
check_eq "predict exits 0" "$?" 0
check_eq "predict CSV labels" "$(printf '%s\n' "$out" | cut -f1 | tr '\n' ' ')" "pos neg pos neg "
check_match "predict prints probabilities" "$out" '^pos	0\.[5-9][0-9]*|^pos	1\.0000'
echo '[[3, 1], [-1, -3]]' >"$W/rows.json"
check_eq "predict JSON rows" "$("$NNCTL" predict "$MDL" --input "$W/rows.json" | cut -f1 | tr '\n' ' ')" "pos neg "
check_eq "predict from stdin" "$(echo '{"instances": [[-4, -1]]}' | "$NNCTL" -q predict "$MDL" --input -)" "neg"
check_eq "predict --json has model_version 1" "$("$NNCTL" --json predict "$MDL" --input "$W/rows.json" | jget 'j["model_version"]')" 1
# the model was trained on a CSV (typed columns): CSV rows go as records by
# column name, in any column order, holes allowed; the server types them
printf 'x1,x0\n2,2\n-2,-2\n,3\n' >"$W/records.csv"
check_eq "predict CSV by column name" "$("$NNCTL" -q predict "$MDL" --input "$W/records.csv" | tr '\n' ' ')" "pos neg pos "
printf 'x0,x1\n1,2\n3,abc\n' >"$W/badrows.csv"
"$NNCTL" predict "$MDL" --input "$W/badrows.csv" >/dev/null 2>"$W/err"
check_eq "text in a numeric column exits 1" "$?" 1
check_match "text in a numeric column: the server names record and column" "$(cat "$W/err")" 'instances\[1\]\.x1'
"$NNCTL" predict "$MDL" --input "$W/bad.csv" >/dev/null 2>"$W/err"
check_eq "a record longer than the header exits 2" "$?" 2
check_match "a record longer than the header: its line" "$(cat "$W/err")" 'line 3 has 3 fields'


# -- jobs --
check_match "jobs get" "$("$NNCTL" jobs get "$JOB")" '"state":[[:space:]]*"succeeded"'
check_match "jobs list --state succeeded" "$("$NNCTL" jobs list --state succeeded)" "^$JOB +$MDL +$DS +succeeded"
check_match "jobs metrics" "$("$NNCTL" jobs metrics "$JOB")" '^ +[0-9]+ +[0-9.e-]+'
"$NNCTL" jobs cancel "$JOB" >/dev/null 2>"$W/err"
check_eq "cancelling a finished job exits 1" "$?" 1
check_match "409 on stderr" "$(cat "$W/err")" 'HTTP 409'
"$NNCTL" jobs follow "$JOB" >"$W/refollow.out"
check_eq "following a finished job replays it and exits 0" "$?" 0
check_match "replay ends with succeeded" "$(tail -n 1 "$W/refollow.out")" 'succeeded'
"$NNCTL" --json jobs follow "$JOB" >"$W/events.json"
check_eq "--json follow: one JSON object per event" "$(tail -n 1 "$W/events.json" | jget '[j["event"], j["data"]["state"]]')" '["state", "succeeded"]'

# -- a cancelled job: --follow exits 4 --
python3 -c '
import json
print(json.dumps({"task": "classification",
  "x": [[(i % 17) / 17.0, (i % 5) / 5.0] for i in range(3000)], "y": [i % 2 for i in range(3000)]}))' >"$W/big.json"
BIG="$("$NNCTL" -q datasets upload "$W/big.json")"
JOB2="$("$NNCTL" -q train --model "$MDL" --dataset "$BIG" --epochs 100000 --batch-size 1)"
"$NNCTL" jobs follow "$JOB2" >"$W/cancel.out" 2>"$W/cancel.err" &
FPID=$!
i=0
until grep -q '^step' "$W/cancel.out" 2>/dev/null || [ $i -gt 300 ]; do sleep 0.1; i=$((i + 1)); done
"$NNCTL" jobs cancel "$JOB2" >"$W/out"
check_eq "jobs cancel exits 0" "$?" 0
check_eq "jobs cancel says so" "$(cat "$W/out")" "cancelling $JOB2"
wait $FPID
check_eq "following a cancelled job exits 4" "$?" 4
check_match "cancelled on stderr" "$(cat "$W/cancel.err")" "job $JOB2 was cancelled"
"$NNCTL" datasets rm "$BIG" >/dev/null
check_eq "rm a data set no live job uses exits 0" "$?" 0

# -- a failed job: --follow exits 3 --
python3 -c '
import json
print(json.dumps({"task": "regression", "x": [[float(i)] for i in range(50)], "y": [1e6 * i for i in range(50)]}))' >"$W/div.json"
DIV="$("$NNCTL" -q datasets upload "$W/div.json")"
echo '{"task": "regression", "inputs": 1, "outputs": 1, "layers": []}' >"$W/lin.json"
LIN="$("$NNCTL" -q models create "$W/lin.json")"
"$NNCTL" train --model "$LIN" --dataset "$DIV" --epochs 200 --batch-size 50 --optimizer sgd --lr 1e6 --follow >"$W/fail.out" 2>"$W/fail.err"
check_eq "following a diverging job exits 3" "$?" 3
check_match "failure detail on stderr" "$(cat "$W/fail.err")" "failed: diverged"

# -- weights --
"$NNCTL" models weights "$LIN" >"$W/w.json"
check_eq "models weights: one layer" "$(jget 'len(j["layers"])' <"$W/w.json")" 1
echo '{"layers": [{"type": "dense", "weight": [[2.0]], "bias": [0.5]}]}' >"$W/w2.json"
check_match "models weights --put publishes a version" "$("$NNCTL" models weights "$LIN" --put "$W/w2.json")" 'version 1$'
check_eq "predict after --put" "$("$NNCTL" predict "$LIN" --input '-' <<'ROWS'
[[3]]
ROWS
)" "6.5"
echo '{"layers": [{"type": "dense", "weight": [[2.0, 1.0]], "bias": [0.5]}]}' >"$W/w3.json"
"$NNCTL" models weights "$LIN" --put "$W/w3.json" >/dev/null 2>"$W/err"
check_eq "weights of the wrong shape exit 1" "$?" 1

# -- ONNX export and import --
"$NNCTL" models export "$LIN" -o "$W/lin.onnx" --opset 15 2>"$W/err"
check_eq "models export exits 0" "$?" 0
check_match "models export says what it wrote" "$(cat "$W/err")" "wrote $W/lin.onnx \([0-9]+ bytes, opset 15\)"
check_eq "the file is an ONNX ModelProto (ir_version 8 first)" "$(od -A n -t x1 -N 2 "$W/lin.onnx" | tr -d ' ')" "0808"
IMP="$("$NNCTL" -q models import "$W/lin.onnx" --name lin-again)"
check_match "models import -q prints the id" "$IMP" '^mdl_[0-9a-f]{16}$'
check_eq "the imported model predicts like the original" "$("$NNCTL" predict "$IMP" --input '-' <<'ROWS'
[[3]]
ROWS
)" "6.5"
"$NNCTL" models export "$IMP" -o "$W/again.onnx" --opset 15 2>/dev/null
check_eq "export, import, export gives the same bytes" "$(cmp "$W/lin.onnx" "$W/again.onnx" && echo same)" same
"$NNCTL" models import "$W/w2.json" >/dev/null 2>"$W/err"
check_eq "importing a file that is not ONNX exits 1" "$?" 1
check_match "and says why" "$(cat "$W/err")" 'HTTP 400.*malformed_onnx|not a valid ONNX model'
"$NNCTL" models export "$LIN" --opset 12 -o "$W/x.onnx" >/dev/null 2>"$W/err"
check_eq "an opset out of range exits 1" "$?" 1
check_match "and names opset" "$(cat "$W/err")" 'opset'

# -- rm --
check_eq "models rm" "$("$NNCTL" models rm "$LIN")" "deleted $LIN"
"$NNCTL" models get "$LIN" >/dev/null 2>&1
check_eq "a removed model is gone" "$?" 1
"$NNCTL" datasets rm "not/an/id" >/dev/null 2>&1
check_eq "a malformed id exits 2" "$?" 2

# -- unreachable server --
"$NNCTL" --server http://127.0.0.1:1 info >/dev/null 2>"$W/err"
check_eq "unreachable server exits 1" "$?" 1
check_match "unreachable server says where" "$(cat "$W/err")" '127\.0\.0\.1:1'

# -- a stream that breaks off: reconnect with Last-Event-ID (a mock server) --
for final in succeeded failed; do
	python3 tests/clients/sse_mock.py "$final" >"$W/mock.port" &
	MPID=$!
	T_PIDS="$T_PIDS $MPID"
	i=0
	until [ -s "$W/mock.port" ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
	MOCK="http://127.0.0.1:$(cat "$W/mock.port")"
	"$NNCTL" --server "$MOCK" jobs follow job_1 >"$W/mock.out" 2>"$W/mock.err"
	rc=$?
	if [ "$final" = succeeded ]; then
		check_eq "[mock] a resumed stream that succeeds exits 0" "$rc" 0
		check_eq "[mock] every step once, in order (CRLF, multi-line data)" \
			"$(sed -n 's/^step \([0-9]*\) .*/\1/p' "$W/mock.out" | tr '\n' ' ')" "1 2 3 4 "
		check_eq "[mock] epochs shown from 1" "$(grep -c '^epoch [12]/2  train_loss' "$W/mock.out")" 2
		check_eq "[mock] reconnected once, after event 2" \
			"$(curl -sS "$MOCK/last-event-id" | jget '[j["connections"], j["last"]]')" '[2, "2"]'
	else
		check_eq "[mock] a resumed stream that fails exits 3" "$rc" 3
		check_match "[mock] the job's error on stderr" "$(cat "$W/mock.err")" 'job job_1 failed: diverged: the loss is not finite'
	fi
	if [ "$final" = succeeded ] && command -v script >/dev/null 2>&1; then
		# on a terminal: one progress line redrawn in place
		COLUMNS=120 script -qec "$NNCTL --server $MOCK jobs follow job_1" "$W/tty.out" >/dev/null 2>&1
		check_eq "[mock] on a terminal: exit 0" "$?" 0
		tty="$(tr '\r' '\n' <"$W/tty.out")"
		check_match "[mock] on a terminal: a progress bar" "$tty" 'epoch 2/2 \[#+-*\] +[0-9]+%  step [34]  loss 0\.[0-9]{4}'
		check_match "[mock] on a terminal: throughput and ETA" "$tty" 'ETA [0-9-]+:[0-9-]+'
		check_match "[mock] on a terminal: redrawn with CR and erase-line" "$(od -An -c "$W/tty.out" | tr -d ' \n')" '\\r033\[K'
		check_match "[mock] on a terminal: the final line" "$tty" 'job job_1 succeeded'
	fi
	"$NNCTL" --server "$MOCK" jobs follow job_2 >/dev/null 2>"$W/mock.err"
	[ "$final" = succeeded ] && check_match "[mock] an unknown job: the detail" "$(cat "$W/mock.err")" '^nnctl: no such job$'
	kill $MPID
	wait $MPID 2>/dev/null
	rm -f "$W/mock.port"
done

# -- studies --
GEN="$(curl -s -XPOST "$NND/v1/datasets" -H 'content-type: application/json' \
	-d '{"generator":{"function":"additive","inputs":3,"rows":300}}' | jget 'j["id"]')"
cat >"$W/study.json" <<EOF
{"dataset":"$GEN","validation":{"fraction":0.2},"objective":{"metric":"val_loss"},
 "model":{"layers":[{"type":"dense","units":8,"activation":"relu"}]},
 "job":{"epochs":9,"optimizer":{"type":"adam","lr":0.01}},
 "space":{"model.layers[0].units":[4,8,16]},"strategy":{"type":"halving","trials":3},"seed":2}
EOF
"$NNCTL" studies create "$W/study.json" --name demo --follow >"$W/out" 2>"$W/err"
check_eq "studies create --follow exits 0" "$?" 0
check_match "follow: one line per trial event" "$(cat "$W/out")" 'trial [0-2] pruned value [0-9.e-]+ epochs 1'
check_match "follow: the study's end" "$(cat "$W/out")" 'study std_[0-9a-f]{16}: succeeded'
SID="$("$NNCTL" -q studies list | tail -1)"
check_match "studies list -q" "$SID" '^std_[0-9a-f]{16}$'
check_match "studies list shows it" "$("$NNCTL" studies list)" "$SID +demo +halving +succeeded +3 +3 "
check_eq "studies get: the best trial" "$("$NNCTL" --json studies get "$SID" | jget 'j["best"]["trial"] in (0, 1, 2)')" true
out="$("$NNCTL" studies trials "$SID")"
check_match "studies trials: the winner first" "$(echo "$out" | sed -n 2p)" '^ +[0-2] succeeded '
check_eq "studies trials --sort number: in order" \
	"$("$NNCTL" studies trials "$SID" --sort number | awk 'NR>1 {print $1}' | tr '\n' ' ')" "0 1 2 "
"$NNCTL" studies cancel "$SID" >/dev/null 2>"$W/err"
check_eq "cancelling an ended study exits 1" "$?" 1
check_match "cancel: 409 on stderr" "$(cat "$W/err")" 'HTTP 409'
check_match "studies rm" "$("$NNCTL" studies rm "$SID" --keep-best)" "^deleted $SID\$"
"$NNCTL" studies get "$SID" >/dev/null 2>&1
check_eq "a deleted study: exit 1" "$?" 1
if command -v script >/dev/null 2>&1; then
	SID2="$("$NNCTL" -q studies create "$W/study.json")"
	COLUMNS=160 script -qec "$NNCTL --server $NND studies follow $SID2" "$W/tty.out" >/dev/null 2>&1
	check_eq "studies follow on a terminal: exit 0" "$?" 0
	check_match "studies follow on a terminal: the live line" "$(tr '\r' '\n' <"$W/tty.out")" \
		'[0-9]/3 trials done .* pruned .*best [0-9.e-]+ \(trial [0-2]\)'
fi

# -- API key --
stop_daemon
NND_API_KEY=k3y-for-tests start_daemon
"$NNCTL" info >/dev/null 2>"$W/err"
check_eq "no key: exit 1" "$?" 1
check_match "no key: 401 on stderr" "$(cat "$W/err")" 'HTTP 401'
NND_API_KEY=wrong "$NNCTL" info >/dev/null 2>&1
check_eq "wrong key: exit 1" "$?" 1
NND_API_KEY=k3y-for-tests "$NNCTL" --json info >"$W/info.json"
check_eq "right key: exit 0" "$?" 0
check_eq "info workers" "$(jget 'j["workers"]' <"$W/info.json")" 2

finish
