#!/usr/bin/env bash
# R CMD check --as-cran on the built tarball. Fails on any ERROR or
# WARNING, and on NOTEs other than the ones CRAN gives every new package.
#   bash tools/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The check library must be readable by the sandbox's unprivileged uid and
# live outside /tmp (sandboxed sessions mount their own /tmp).
out=/var/tmp/securer-check
rm -rf "$out" && mkdir -p "$out" && chmod 755 "$out"
build=$(mktemp -d /var/tmp/securer-build.XXXXXX)
chmod 755 "$build"
git ls-files -z 2>/dev/null | xargs -0 -I{} cp --parents {} "$build" 2>/dev/null || cp -r . "$build"
(cd "$build" && rm -rf src/rust/target && R CMD build . >"$out/build.log" 2>&1) || {
  tail -40 "$out/build.log"
  exit 1
}
tarball=$(ls "$build"/securer_*.tar.gz)
# CI has no network: skip the checks that need one (CRAN's incoming
# checks of remote URLs, the time server); everything else is --as-cran.
# The whole suite runs (NOT_CRAN), and a sandbox that cannot start fails.
NOT_CRAN=true SECURER_REQUIRE_SANDBOX=true \
_R_CHECK_CRAN_INCOMING_REMOTE_=false _R_CHECK_FUTURE_FILE_TIMESTAMPS_=false \
  R CMD check --as-cran --no-manual -o "$out" "$tarball" >"$out/check.log" 2>&1 || true
rm -rf "$build"
log="$out/securer.Rcheck/00check.log"
grep -E "^Status:" "$log" || { tail -60 "$out/check.log"; exit 1; }
if grep -qE "^Status:.*(ERROR|WARNING)" "$log"; then
  grep -E -A15 "\.\.\. (ERROR|WARNING)$" "$log" | head -80
  exit 1
fi
# Notes CRAN always gives a new package are fine; anything else is not.
# ("future file timestamps" needs a time server: offline it can only say
# "unable to verify current time".)
notes=$(grep -E "\.\.\. NOTE$" "$log" | grep -v -e "CRAN incoming feasibility" -e "future file timestamps" || true)
if [ -n "$notes" ]; then
  echo "R CMD check notes:"
  grep -E -A10 "\.\.\. NOTE$" "$log" | head -60
  exit 1
fi
echo "R CMD check --as-cran: $(grep -E '^Status:' "$log")"
