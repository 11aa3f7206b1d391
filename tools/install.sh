#!/usr/bin/env bash
# Installs what securer needs, builds and installs it, and runs the README
# example. Idempotent: skips what is already installed.
#   bash tools/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "securer needs Rust: install it from https://rustup.rs (or 'apt-get install cargo')." >&2
  exit 1
fi

# System libraries some R dependencies (curl, for ellmer) compile against,
# pandoc for the vignettes, qpdf/checkbashisms (devscripts) for
# R CMD check --as-cran, bubblewrap to run generate_bwrap_args()'s output
# in its test, and Chromium, the headless browser of the Shiny example's
# test.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=()
  for p in libcurl4-openssl-dev libssl-dev pandoc qpdf devscripts bubblewrap chromium; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

Rscript tools/install-deps.R
R CMD INSTALL --no-multiarch . >/tmp/securer-install.log 2>&1 || {
  tail -50 /tmp/securer-install.log
  exit 1
}
echo "securer installed ($(Rscript -e 'cat(format(packageVersion("securer")))'))"
Rscript -e 'library(securer)
tools <- list(securer_tool("query_db", "Query a database table",
  fn = function(table, limit) head(get(table, "package:datasets"), limit),
  args = list(table = "character", limit = "numeric")))
print(execute_r("data <- query_db(\"mtcars\", 5); mean(data$mpg)", tools = tools))'
