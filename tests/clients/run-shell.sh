#!/bin/sh
# run-shell.sh - tests clients/shell/*.sh against a real daemon, once with jq
# (when it is installed) and once without (NND_NO_JQ=1): upload, train, follow,
# predict on a separable CSV, the predicted labels, and error messages.
set -u
cd "$(dirname "$0")/../.."
. tests/clients/lib.sh
unset NND_API_KEY
start_daemon
W="$T_TMP"
S=clients/shell
write_sep_csv "$W/sep.csv"
cat >"$W/spec.json" <<'JSON'
{"task": "classification", "inputs": 2, "outputs": 2, "seed": 3,
 "layers": [{"type": "dense", "units": 8, "activation": "tanh"}]}
JSON
printf 'x0,x1\n2,2\n-2,-2\n1,0.5\n-0.5,-1\n' >"$W/rows.csv"

modes="nojq"
command -v jq >/dev/null 2>&1 && modes="jq nojq"
for mode in $modes; do
	if [ "$mode" = nojq ]; then export NND_NO_JQ=1; else unset NND_NO_JQ; fi
	DS="$($S/upload.sh "$W/sep.csv" label=label "name=sep $mode" 2>"$W/err")"
	check_eq "[$mode] upload.sh exits 0" "$?" 0
	check_match "[$mode] upload.sh prints the id" "$DS" '^ds_[0-9a-f]{16}$'
	check_match "[$mode] upload.sh summary on stderr" "$(cat "$W/err")" '12 rows x 2 features, classification'

	out="$($S/train.sh "$DS" "$W/spec.json" epochs=60 batch_size=4 optimizer=adam lr=0.05 seed=1 standardize=true log_every_steps=1 2>"$W/err")"
	check_eq "[$mode] train.sh exits 0" "$?" 0
	MODEL= JOB=
	eval "$out"
	check_match "[$mode] train.sh gives MODEL" "$MODEL" '^mdl_[0-9a-f]{16}$'
	check_match "[$mode] train.sh gives JOB" "$JOB" '^job_[0-9a-f]{16}$'

	check_eq "[$mode] train.sh sends the fields" \
		"$(curl -sS "$NND/v1/jobs/$JOB" | jget '[j["config"][k] for k in ("epochs", "batch_size", "seed", "standardize", "log_every_steps")] + [j["config"]["optimizer"]["type"], j["config"]["optimizer"]["lr"]]')" \
		'[60, 4, 1, true, 1, "adam", 0.05]'
	$S/follow.sh "$JOB" >"$W/follow.out"
	check_eq "[$mode] follow.sh exits 0 when the job succeeds" "$?" 0
	check_match "[$mode] follow.sh prints steps" "$(cat "$W/follow.out")" '^step [0-9]+  epoch [0-9]+  loss [0-9.e-]+'
	check_match "[$mode] follow.sh prints epochs" "$(cat "$W/follow.out")" '^epoch [0-9]+  train_loss [0-9.e-]+'
	check_eq "[$mode] follow.sh ends with the state" "$(tail -n 1 "$W/follow.out")" "state succeeded"

	out="$($S/predict.sh "$MODEL" "$W/rows.csv")"
	check_eq "[$mode] predict.sh exits 0" "$?" 0
	if [ "$mode" = jq ]; then
		check_eq "[$mode] predict.sh labels" "$(printf '%s' "$out" | tr '\n' ' ')" "pos neg pos neg"
		check_eq "[$mode] predict.sh inline JSON" "$($S/predict.sh "$MODEL" '[[3, 1]]')" "pos"
	else
		check_eq "[$mode] predict.sh raw reply labels" \
			"$(printf '%s' "$out" | jget '[p["label"] for p in j["predictions"]]')" '["pos", "neg", "pos", "neg"]'
	fi

	# a whole job document from config=FILE, with fields from the command line
	echo '{"epochs": 2, "optimizer": {"type": "momentum", "lr": 0.1, "momentum": 0.5}}' >"$W/job.json"
	if [ "$mode" = jq ]; then
		eval "$($S/train.sh "$DS" "$MODEL" config="$W/job.json" lr=0.2 seed=4 2>/dev/null)"
		check_eq "[$mode] config=FILE merged with lr= and seed=" \
			"$(curl -sS "$NND/v1/jobs/$JOB" | jget '[j["config"]["epochs"], j["config"]["seed"]] + [j["config"]["optimizer"][k] for k in ("type", "lr", "momentum")]')" \
			'[2, 4, "momentum", 0.2, 0.5]'
	else
		eval "$($S/train.sh "$DS" "$MODEL" config="$W/job.json" seed=4 2>/dev/null)"
		check_eq "[$mode] config=FILE with seed=" \
			"$(curl -sS "$NND/v1/jobs/$JOB" | jget '[j["config"]["epochs"], j["config"]["seed"]] + [j["config"]["optimizer"][k] for k in ("type", "lr", "momentum")]')" \
			'[2, 4, "momentum", 0.1, 0.5]'
		$S/train.sh "$DS" "$MODEL" config="$W/job.json" epochs=3 >/dev/null 2>"$W/err"
		check_eq "[$mode] a field in both config and key=value exits 1" "$?" 1
		check_match "[$mode] ... and says which" "$(cat "$W/err")" '"epochs" is both in'
	fi
	$S/follow.sh "$JOB" >/dev/null
	check_eq "[$mode] the config job succeeds" "$?" 0

	# a job that is already over replays and still ends with its state
	check_eq "[$mode] follow.sh replays a finished job" "$($S/follow.sh "$JOB" | tail -n 1)" "state succeeded"

	# errors: the problem's detail on stderr, non-zero status
	$S/follow.sh job_0000000000000000 >/dev/null 2>"$W/err"
	check_eq "[$mode] follow.sh on an unknown job exits 1" "$?" 1
	check_match "[$mode] follow.sh error detail" "$(cat "$W/err")" '^follow\.sh: .+'
	$S/predict.sh "$MODEL" '[[1, 2, 3]]' >/dev/null 2>"$W/err"
	check_eq "[$mode] predict.sh with the wrong width exits 1" "$?" 1
	check_match "[$mode] predict.sh error detail" "$(cat "$W/err")" '^predict\.sh: .+'
	echo '{"task": "classification", "inputs": 2, "outputs": 2, "layers": [{"type": "dense", "units": -1}]}' >"$W/bad.json"
	$S/train.sh "$DS" "$W/bad.json" >/dev/null 2>"$W/err"
	check_eq "[$mode] train.sh with a bad spec exits 1" "$?" 1
	[ "$mode" = jq ] && check_match "[$mode] train.sh names the field" "$(cat "$W/err")" 'layers\[0\]\.units'
done

# regression through a JSON upload and predict's raw outputs
unset NND_NO_JQ
python3 -c '
import json
xs = [[i / 10.0] for i in range(-20, 21)]
print(json.dumps({"task": "regression", "x": xs, "y": [2 * x[0] + 1 for x in xs]}))' >"$W/line.json"
DS="$($S/upload.sh "$W/line.json" 2>/dev/null)"
echo '{"task": "regression", "inputs": 1, "outputs": 1, "layers": []}' >"$W/lin.json"
eval "$($S/train.sh "$DS" "$W/lin.json" epochs=300 batch_size=41 shuffle=false optimizer=sgd lr=0.3 2>/dev/null)"
$S/follow.sh "$JOB" >/dev/null
check_eq "regression job succeeds" "$?" 0
out="$($S/predict.sh "$MODEL" '[[1.0]]' | tr -d '\n')"
if command -v jq >/dev/null 2>&1; then
	check_eq "regression prediction near 3" "$(python3 -c "print(round(float('$out'), 2))")" "3.0"
else
	check_eq "regression prediction near 3" "$(printf '%s' "$out" | jget 'round(j["predictions"][0][0], 2)')" "3.0"
fi

# the key reaches the daemon
stop_daemon
NND_API_KEY=sh-key start_daemon
$S/upload.sh "$W/sep.csv" >/dev/null 2>"$W/err"
check_eq "without the key: exit 1" "$?" 1
check_eq "with the key: an id" "$(NND_API_KEY=sh-key $S/upload.sh "$W/sep.csv" 2>/dev/null | cut -c1-3)" "ds_"

finish
