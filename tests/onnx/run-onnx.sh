#!/bin/sh
# run-onnx.sh - ONNX export and import against the real runtimes (ONNX
# Runtime from npm, Debian's python3-onnx checker and python3-torch's
# exporter): tests/onnx/onnx_suite.py against a fresh daemon, and a second
# daemon with a small --max-body for the 413. Exits 77 (SKIP) when node,
# tools/node_modules/onnxruntime-node (scripts/install-deps) or the Python
# packages are missing. Run from the repository root.
cd "$(dirname "$0")/../.." || exit 1
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed"; exit 77; }
[ -d tools/node_modules/onnxruntime-node ] ||
	{ echo "SKIP: tools/node_modules/onnxruntime-node is missing (scripts/install-deps)"; exit 77; }
/usr/bin/python3 -c 'import onnx, torch, numpy' 2>/dev/null ||
	{ echo "SKIP: python3-onnx, python3-torch or python3-numpy is missing"; exit 77; }
. tests/clients/lib.sh
start_daemon --max-body 1000
NND_SMALL="$NND"
export NND_SMALL
start_daemon
# torch runs on one thread: the machine's two cores are shared
OMP_NUM_THREADS=1 /usr/bin/python3 tests/onnx/onnx_suite.py
