#!/bin/sh
# Install chserver's node_modules from package-lock.json when they are missing (npm ci, npm
# registry only; ~540 MB, the ClickHouse engine as a native library). Idempotent; for the
# Makefile's test target and .ci/run.
set -e
cd "$(dirname "$0")"
if [ ! -f node_modules/chdb/package.json ] || [ ! -d node_modules/@chdb ]; then
    npm ci --no-audit --no-fund
fi
