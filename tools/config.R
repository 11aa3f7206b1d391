# Build configuration: checks that cargo and rustc are present and recent
# enough, then writes src/Makevars from src/Makevars.in.

msrv <- "1.77.0"

fail <- function(...) {
  message(paste0(...))
  quit(save = "no", status = 1)
}

# Windows builds the R bindings only (no launcher: sessions need Unix, and
# SecureSession$new() says to use WSL2 there): src/Makevars.win.
windows <- .Platform$OS.type == "windows"

cargo_bin <- Sys.which("cargo")
if (!nzchar(cargo_bin)) {
  home_cargo <- file.path(Sys.getenv("HOME"), ".cargo", "bin", "cargo")
  if (file.exists(home_cargo)) cargo_bin <- home_cargo
}
if (!nzchar(cargo_bin)) {
  fail(
    "------------------ RUST TOOLCHAIN NOT FOUND ------------------\n",
    "securer needs Rust (cargo and rustc >= ", msrv, ") to build.\n",
    "Install it from https://rustup.rs (or your system's package manager,\n",
    "e.g. 'apt-get install cargo'), then install securer again.\n",
    "---------------------------------------------------------------"
  )
}

rustc_bin <- file.path(dirname(cargo_bin), "rustc")
if (!file.exists(rustc_bin)) rustc_bin <- Sys.which("rustc")
version_line <- tryCatch(
  system2(rustc_bin, "--version", stdout = TRUE, stderr = TRUE),
  error = function(e) character()
)
version <- regmatches(version_line, regexpr("[0-9]+\\.[0-9]+\\.[0-9]+", version_line))
if (length(version) != 1L) {
  fail("Cannot tell the version of rustc (", rustc_bin, "). Reinstall Rust from https://rustup.rs.")
}
if (package_version(version) < package_version(msrv)) {
  fail(
    "rustc ", version, " is too old: securer needs rustc >= ", msrv, ".\n",
    "Update it with 'rustup update stable', then install securer again."
  )
}
message("Using ", version_line[[1]], " (", cargo_bin, ")")

# A release tarball ships vendored crates (tools/vendor.sh): build offline
# from them, as CRAN's policy asks. A source checkout uses cargo's registry.
vendored <- file.exists("src/rust/vendor.tar.xz")
debug <- identical(Sys.getenv("SECURER_DEBUG"), "true")
profile_dir <- if (debug) "debug" else "release"
flags <- c(if (!debug) "--release", "-j 2", if (vendored) "--offline")

vendor_setup <- if (vendored) {
  paste(
    "mkdir -p ./rust/.cargo && tar -xJf ./rust/vendor.tar.xz -C ./rust &&",
    "printf '[source.crates-io]\\nreplace-with = \"vendored-sources\"\\n\\n[source.vendored-sources]\\ndirectory = \"vendor\"\\n' > ./rust/.cargo/config.toml"
  )
} else {
  ""
}
clean_vendor <- if (vendored) "rm -Rf ./rust/vendor ./rust/.cargo" else ""

# Linker flags: only the code that is used (--gc-sections; macOS's ld
# calls it -dead_strip), no debug information (-S), no local symbols (-x).
# On Linux the static library's symbols are not exported (--exclude-libs):
# R finds the routines through their registration, and code that nothing
# calls is then dropped too (the library was 3.1 MB with every public Rust
# function exported, 1.6 MB without).
link_flags <- if (identical(Sys.info()[["sysname"]], "Darwin")) {
  "-Wl,-dead_strip,-S,-x"
} else {
  "-Wl,--gc-sections,--exclude-libs,ALL,-S,-x"
}

makevars <- if (windows) "src/Makevars.win" else "src/Makevars"
tpl <- readLines(paste0(makevars, ".in"))
tpl <- gsub("@CARGO@", cargo_bin, tpl, fixed = TRUE)
tpl <- gsub("@CARGO_FLAGS@", paste(flags, collapse = " "), tpl, fixed = TRUE)
tpl <- gsub("@PROFILE_DIR@", profile_dir, tpl, fixed = TRUE)
tpl <- gsub("@VENDOR_SETUP@", vendor_setup, tpl, fixed = TRUE)
tpl <- gsub("@CLEAN_VENDOR@", clean_vendor, tpl, fixed = TRUE)
tpl <- gsub("@LINK_FLAGS@", link_flags, tpl, fixed = TRUE)
writeLines(tpl, makevars)
