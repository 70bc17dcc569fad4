#!/bin/sh
# entrypoint.sh - starts nnd in the container: listening on 0.0.0.0:8080, data
# in /data, the API key from NND_API_KEY (read by nnd itself) or else from a
# secret file (NND_API_KEY_FILE, default /run/secrets/nnd_api_key). Extra
# arguments (the container's command) go to nnd: e.g. --workers 4.
set -e
keyfile="${NND_API_KEY_FILE:-/run/secrets/nnd_api_key}"
if [ -z "${NND_API_KEY:-}" ] && [ -r "$keyfile" ]; then
	set -- --api-key-file "$keyfile" "$@"
fi
exec /usr/local/bin/nnd --listen 0.0.0.0:8080 --data-dir /data "$@"
