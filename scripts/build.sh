#!/bin/sh
# build.sh: bootstraps (from a git checkout), configures once and builds. Extra arguments go
# to configure.
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || ./bootstrap
[ -f Makefile ] || ./configure "$@"
make -j"$(nproc)"
