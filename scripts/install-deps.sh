#!/usr/bin/env bash
# Install what sluice needs to build, test and demo on Debian 12. Only installs missing
# packages (apt-get update first, as a brand-new machine has no lists). Needs root or sudo.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      liblmdb-dev lmdb-utils libuv1-dev libcurl4-openssl-dev libmsgpack-dev libcmocka-dev
      libyaml-dev libhttp-parser-dev zlib1g-dev libzstd-dev libbrotli-dev libmariadb-dev
      clickhouse-server clickhouse-client mariadb-server python3 python3-matplotlib nodejs npm curl wrk
      e2fsprogs              # mkfs.ext2 for the chaos test's full-disk case (required in Debian, listed anyway)
      buildah debootstrap)   # the image test: daemonless build on a debootstrapped base
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian (a newer node on PATH is fine).
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The modern ClickHouse engine for the e2e tests (npm chdb, pinned in package-lock.json).
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$here/tests/support/chserver/package-lock.json" ] && [ ! -d "$here/tests/support/chserver/node_modules" ]; then
  echo "install-deps: npm ci in tests/support/chserver"
  (cd "$here/tests/support/chserver" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The official ClickHouse JS client for tests/e2e/test_formats.py (npm @clickhouse/client).
if [ -f "$here/tests/support/jsclient/package-lock.json" ] && [ ! -d "$here/tests/support/jsclient/node_modules" ]; then
  echo "install-deps: npm ci in tests/support/jsclient"
  (cd "$here/tests/support/jsclient" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The Kubernetes schema validator for tests/e2e/test_deploy.py (npm kubernetes-models).
if [ -f "$here/tests/support/k8svalidate/package-lock.json" ] && [ ! -d "$here/tests/support/k8svalidate/node_modules" ]; then
  echo "install-deps: npm ci in tests/support/k8svalidate"
  (cd "$here/tests/support/k8svalidate" && npm ci --no-audit --no-fund --loglevel=error)
fi
