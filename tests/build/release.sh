#!/usr/bin/env bash
# release.sh — the release builds CI holds to -Werror (issue 14): gcc and clang, each at -O2
# and at -O3 (CMake's Release), everything a plain `cmake` builds (binary, unit tests,
# benches), with SLUICE_WERROR=ON, in build-rel-<cc>-O<n>/ (ignored by git as /build*/; kept
# between runs, so a second run only recompiles what changed: a file that warned never got
# an object, so it is compiled, and fails, again). Also checks the -Werror policy itself:
# ON by default in a git checkout, OFF in a tree without .git (a release tarball).
# Run by `make test` through ctest (test build_release). Build only; JOBS (default 2).
set -euo pipefail
src=${SLUICE_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
jobs=${JOBS:-2}
fail=0
t0=$SECONDS
for cc in gcc clang; do
  command -v "$cc" >/dev/null || { echo "release.sh: $cc not installed (scripts/install-deps.sh)"; exit 1; }
  for opt in 2 3; do
    dir="$src/build-rel-$cc-O$opt"
    log="$dir/release.log"
    mkdir -p "$dir"
    t=$SECONDS
    if ! { nice cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release \
             -DCMAKE_C_FLAGS_RELEASE="-O$opt -DNDEBUG" -DSLUICE_WERROR=ON \
           && nice cmake --build "$dir" -j"$jobs"; } >"$log" 2>&1; then
      echo "FAIL $cc -O$opt: build failed ($log):"; grep -E "error|warning" "$log" | head -40
      fail=1
    elif grep -q "warning" "$log"; then
      # -Werror turns compiler warnings into errors; this catches what it does not (linker,
      # CMake) so that "warning-free" means what it says.
      echo "FAIL $cc -O$opt: warnings ($log):"; grep "warning" "$log" | head -40
      fail=1
    else
      echo "PASS $cc -O$opt ($((SECONDS - t))s, $dir)"
    fi
  done
done

# The policy: a checkout defaults to -Werror, a tree without .git (what a tarball unpacks to)
# does not. Configure-only, on a copy of just what CMakeLists.txt reads with tests off.
policy() { # dir -> the SLUICE_WERROR default and whether -Werror reaches the compile flags
  local d=$1
  cmake -S "$d/src" -B "$d/b" -DSLUICE_TESTS=OFF >/dev/null
  local v; v=$(sed -n 's/^SLUICE_WERROR:BOOL=//p' "$d/b/CMakeCache.txt")
  if grep -q -- "-Werror" "$d/b/CMakeFiles/sluice_config.dir/flags.make"; then echo "$v werror"; else echo "$v none"; fi
}
tmp=$(mktemp -d /tmp/sluice-release-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tar/src" "$tmp/git/src"
# the folders the binary is built from: the sluice_module()s and what else is globbed (cli/)
# shellcheck disable=SC2016  # the literal ${CMAKE_SOURCE_DIR} is what is searched for
mods=$( { sed -n 's/^sluice_module(\([a-z_]*\).*/\1/p' "$src/CMakeLists.txt"
          grep -o '${CMAKE_SOURCE_DIR}/[a-z_]*/' "$src/CMakeLists.txt" | sed 's#.*}/\(.*\)/#\1#'
        } | grep -vx tests | sort -u)
for m in $mods; do cp -r "$src/$m" "$tmp/tar/src/"; done
cp "$src/CMakeLists.txt" "$tmp/tar/src/"
cp -r "$tmp/tar/src/." "$tmp/git/src/"
echo "gitdir: /nonexistent" > "$tmp/git/src/.git"    # a worktree's .git is a file like this
got_tar=$(policy "$tmp/tar"); got_git=$(policy "$tmp/git")
if [ "$got_tar" = "OFF none" ] && [ "$got_git" = "ON werror" ]; then
  echo "PASS -Werror policy: tarball tree '$got_tar', git checkout '$got_git'"
else
  echo "FAIL -Werror policy: tarball tree '$got_tar' (want 'OFF none'), git checkout '$got_git' (want 'ON werror')"
  fail=1
fi
echo "release builds: $((SECONDS - t0))s"
exit $fail
