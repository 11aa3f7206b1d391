#!/usr/bin/env bash
# Runs the Rust tests, then the R test suite against the installed package.
# The last line is the R suite's totals.
#   bash tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
(cd src/rust && cargo test --workspace -j 2 --quiet 2>&1) | tail -n 40
# The macOS code path, built and tested here (issue 11): the core, the
# glue and the launcher with the `portable` feature. Its own target
# directory, which tests/testthat/test-sandbox-portable.R builds its
# launcher into too.
(cd src/rust && cargo test --workspace -j 2 --quiet --features portable \
  --target-dir target/portable 2>&1) | tail -n 40
SECURER_REQUIRE_SANDBOX=true Rscript tools/run-tests.R
