#!/usr/bin/env bash
# Runs the Rust tests, then the R test suite against the installed package.
# The last line is the R suite's totals.
#   bash tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
(cd src/rust && cargo test --workspace -j 2 --quiet 2>&1) | tail -n 40
SECURER_REQUIRE_SANDBOX=true Rscript tools/run-tests.R
