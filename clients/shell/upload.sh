#!/bin/sh
# upload.sh - uploads a data set to nnd and prints its id.
#
#   upload.sh FILE.csv [label=COL] [name=N] [task=T] [header=false]
#   upload.sh FILE.json [name=N]                 ({"x": [[...]], "y": [...]})
#   upload.sh IMAGES.idx[.gz] LABELS.idx[.gz] [name=N]   (MNIST-style IDX pair)
#
# A one-line summary goes to stderr; the id alone to stdout, so that
# DS=$(upload.sh data.csv) works. Environment: NND, NND_API_KEY (see common.sh).
set -eu
. "$(dirname "$0")/common.sh"

[ $# -ge 1 ] && [ "$1" != "-h" ] && [ "$1" != "--help" ] || {
	sed -n '2,11s/^# \{0,1\}//p' "$0"
	[ $# -ge 1 ]; exit
}
file="$1"; shift
labels=""
if [ $# -ge 1 ] && [ "${1#*=}" = "$1" ]; then
	labels="$1"; shift
fi
[ -r "$file" ] || nnd_die "cannot read $file"
query=""
for kv in "$@"; do
	case "$kv" in
	label=*|name=*|task=*|header=*) ;;
	*) nnd_die "unknown option $kv (label=, name=, task=, header=)" ;;
	esac
	k="${kv%%=*}"; v="${kv#*=}"
	query="$query&$k=$(printf '%s' "$v" | sed 's/%/%25/g; s/ /%20/g; s/&/%26/g; s/+/%2B/g; s/#/%23/g; s/?/%3F/g')"
done
query="${query#&}"
path="/v1/datasets${query:+?$query}"

if [ -n "$labels" ]; then
	[ -r "$labels" ] || nnd_die "cannot read $labels"
	reply="$(nnd_curl POST "$path" -F "images=@$file" -F "labels=@$labels")"
else
	case "$file" in
	*.json) ct=application/json ;;
	*) ct=text/csv ;;
	esac
	reply="$(nnd_curl POST "$path" -H "Content-Type: $ct" --data-binary "@$file")"
fi
id="$(printf '%s' "$reply" | nnd_field id)"
echo "$id: $(printf '%s' "$reply" | nnd_field rows) rows x $(printf '%s' "$reply" | nnd_field features) features, $(printf '%s' "$reply" | nnd_field task)" >&2
echo "$id"
