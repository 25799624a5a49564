#!/usr/bin/env bash
# `make demo`: run sluice's main job on this machine (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE_BIN=${SLUICE_BIN:-$PWD/build/sluice} exec python3 -u scripts/demo.py
