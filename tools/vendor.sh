#!/usr/bin/env bash
# Release step: vendors the Rust crates into src/rust/vendor.tar.xz so the
# package builds offline (CRAN's policy for Rust packages). tools/config.R
# switches to an offline build when the tarball is present.
#   bash tools/vendor.sh && R CMD build .
set -euo pipefail
cd "$(dirname "$0")/../src/rust"
rm -rf vendor vendor.tar.xz
cargo vendor --locked --versioned-dirs vendor >/dev/null
tar -cJf vendor.tar.xz vendor
rm -rf vendor
echo "wrote src/rust/vendor.tar.xz ($(du -h vendor.tar.xz | cut -f1))"
