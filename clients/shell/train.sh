#!/bin/sh
# train.sh - starts a training job on nnd, creating the model first if given
# a spec file, and prints MODEL=<id> and JOB=<id> (for eval).
#
#   train.sh DATASET_ID MODEL_ID|SPEC.json [key=value ...] [config=JOB.json]
#
# key=value sets a job field: epochs=20 batch_size=64 seed=1 standardize=true
# log_every_steps=10 (numbers, true and false pass as JSON); optimizer=adam and
# lr=0.01 fill "optimizer" (lr alone keeps the server's default, sgd);
# validation=0.1 holds out that fraction. config=FILE starts from a whole job
# document; key=value fields override it (with jq, merged deeply; without jq, a
# field may not be in both).
#   eval "$(train.sh "$DS" model.json epochs=10)" && follow.sh "$JOB"
set -eu
. "$(dirname "$0")/common.sh"

[ $# -ge 2 ] || {
	sed -n '2,14s/^# \{0,1\}//p' "$0"
	case "${1:-}" in -h|--help) exit 0 ;; esac
	exit 2
}
ds="$1"; model="$2"; shift 2

if [ -f "$model" ]; then
	reply="$(nnd_curl POST /v1/models -H 'Content-Type: application/json' --data-binary "@$model")"
	model="$(printf '%s' "$reply" | nnd_field id)"
	echo "created model $model ($(printf '%s' "$reply" | nnd_field parameters) parameters)" >&2
fi

fields=""; opt=""; config=""; keys=""
for kv in "$@"; do
	k="${kv%%=*}"; v="${kv#*=}"
	[ "$k" != "$kv" ] || nnd_die "expected key=value, got $kv"
	case "$k" in
	config) ;;
	lr|optimizer) keys="$keys optimizer" ;;
	*) keys="$keys $k" ;;
	esac
	case "$k" in
	config) config="$v" ;;
	lr) opt="$opt,\"lr\":$v" ;;
	optimizer) opt="$opt,\"type\":\"$v\"" ;;
	validation) fields="$fields,\"validation\":{\"fraction\":$v}" ;;
	*[!a-z0-9_]*) nnd_die "bad field name $k" ;;
	*)
		case "$v" in
		true|false|null|[-0-9]*|\{*|\[*) fields="$fields,\"$k\":$v" ;;
		*) fields="$fields,\"$k\":\"$v\"" ;;
		esac
		;;
	esac
done
# lr alone keeps the server's default optimizer type, sgd (or the config's)
if [ -n "$opt" ]; then
	if [ -z "$config" ] || [ -z "$NND_JQ" ]; then
		case "$opt" in *'"type"'*) ;; *) opt=",\"type\":\"sgd\"$opt" ;; esac
	fi
	fields="$fields,\"optimizer\":{${opt#,}}"
fi
body="{\"model\":\"$model\",\"dataset\":\"$ds\"$fields}"
if [ -n "$config" ]; then
	[ -r "$config" ] || nnd_die "cannot read $config"
	if [ -n "$NND_JQ" ]; then
		body="$(jq -c --argjson cli "$body" '. * $cli
			| if .optimizer and (.optimizer.type | not) then .optimizer.type = "sgd" else . end' "$config")" ||
			nnd_die "$config is not a JSON object"
	else
		for k in model dataset $keys; do
			! grep -q "\"$k\"" "$config" ||
				nnd_die "\"$k\" is both in $config and on the command line (without jq they cannot be merged)"
		done
		rest="$(tr -d '\n' <"$config" | sed 's/^[[:space:]]*{//')"
		case "$rest" in
		[[:space:]]*\}*|\}*) ;;
		*) body="${body%\}},$rest" ;;
		esac
	fi
fi
reply="$(nnd_curl POST /v1/jobs -H 'Content-Type: application/json' --data-binary "$body")"
job="$(printf '%s' "$reply" | nnd_field id)"
echo "started job $job ($(printf '%s' "$reply" | nnd_field state))" >&2
echo "MODEL=$model"
echo "JOB=$job"
