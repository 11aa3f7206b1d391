# The native Linux sandbox: its configuration, the paths it always shows,
# and the `SandboxPolicy` JSON the Rust launcher applies (see
# src/rust/core/src/policy.rs and src/rust/core/src/sandbox/), on Linux
# and, rendered as a Seatbelt profile, on macOS.

#' Build Linux sandbox configuration
#'
#' The configuration of the native Linux sandbox. The package's Rust
#' launcher applies it before R starts: user, mount, PID, network, IPC, UTS
#' and cgroup namespaces; a fresh root that holds only the paths listed
#' here (read-only), a small `/dev`, a new `/proc` and a private writable
#' `/tmp` capped at `tmp_size`; Landlock rules for the same paths; a seccomp
#' filter; resource limits; and a clean environment. No external tool
#' (such as bubblewrap) is needed.
#'
#' The read-only list holds R's home, `R_SHARE_DIR`, `R_INCLUDE_DIR`,
#' `R_DOC_DIR`, the files of `/etc/R` that R reads (`Renviron`, `Makeconf`,
#' `ldpaths`, `repositories`; not `Renviron.site` or `Rprofile.site`, which
#' may hold site secrets), every [.libPaths()] entry, and the system folders
#' `/usr`, `/bin`, `/sbin`, `/lib`, `/lib32`, `/lib64`, `/libx32`,
#' `/etc/alternatives`, `/etc/ld.so.cache`, `/etc/localtime` and
#' `/etc/fonts`, keeping those that exist. Symbolic links (such as `/bin`
#' pointing into `/usr` on Debian) stay in the list, together with their
#' targets, so the launcher can recreate them. Paths inside another listed
#' folder are dropped. It never holds `$HOME`, the working directory,
#' `/home`, `/root`, `/tmp`, `/etc/passwd` or `/etc/shadow`.
#'
#' @inheritParams build_sandbox_config
#' @return A `securer_sandbox_config` with backend `"linux-native"`; see
#'   [build_sandbox_config()].
#' @seealso [build_sandbox_fallback()] for hosts without user namespaces.
#' @export
#' @examples
#' cfg <- build_sandbox_linux()
#' cfg$read_only
#' cfg$tmp_size
build_sandbox_linux <- function(read_only = character(),
                                writable = character(),
                                tmp_size = 256 * 1024^2) {
  tmp_size <- check_tmp_size(tmp_size)
  paths <- sandbox_paths("linux", linux_base_paths(), read_only, writable)
  new_sandbox_config(
    platform = "linux",
    backend = "linux-native",
    read_only = paths$read_only,
    writable = paths$writable,
    tmp_size = tmp_size,
    enforced = enforced_layers(TRUE, TRUE)
  )
}

# A configuration -> the `SandboxPolicy` object of the launcher JSON.
# Serialise with jsonlite::toJSON(auto_unbox = TRUE, null = "null",
# digits = NA); path vectors are wrapped in I() so they stay arrays.
sandbox_policy_spec <- function(config, strict = FALSE, fallback_tmp = NULL) {
  if (!inherits(config, "securer_sandbox_config")) {
    securer_abort(
      "{.arg config} must be a sandbox configuration from {.fn build_sandbox_config}, not {.obj_type_friendly {config}}.",
      class = "securer_input_error"
    )
  }
  check_flag(strict)
  if (!is.null(fallback_tmp)) {
    check_string(fallback_tmp)
    if (!startsWith(fallback_tmp, "/")) {
      securer_abort(
        "{.arg fallback_tmp} must be an absolute path, not {.path {fallback_tmp}}.",
        class = "securer_input_error"
      )
    }
  }
  applies <- switch(config$backend,
    "linux-native" = ,
    "linux-fallback" = "linux",
    seatbelt = "macos",
    NA_character_
  )
  if (!identical(config$platform, applies) || !identical(applies, session_platform())) {
    platform <- config$platform
    backend <- config$backend
    securer_abort(
      c(
        "This sandbox configuration ({.val {backend}} for {platform}) cannot be applied on this platform.",
        i = "Build one for this system with {.fn build_sandbox_config}."
      ),
      class = "securer_sandbox_error"
    )
  }
  policy <- list(
    strict = strict,
    read_only = I(as.character(config$read_only)),
    writable = I(as.character(config$writable)),
    tmp_size = if (is.na(config$tmp_size)) 0 else ceiling(config$tmp_size),
    no_namespaces = !identical(config$backend, "linux-native"),
    fallback_tmp = fallback_tmp
  )
  # One policy, two renderings: on macOS the launcher turns it into a
  # Seatbelt profile for sandbox-exec instead of the Linux layers.
  if (applies == "macos") policy$sandbox_exec <- sandbox_exec_path(config)
  policy
}

# The sandbox-exec the launcher runs R through: macOS's, unless the test
# hook SECURER_SANDBOX_EXEC names a stand-in (tests/testthat/
# test-sandbox-portable.R). The launcher never counts a stand-in as a
# sandbox: its Seatbelt layer is then reported inactive.
sandbox_exec_path <- function(config) {
  hook <- Sys.getenv("SECURER_SANDBOX_EXEC")
  if (nzchar(hook)) hook else config$command
}

# What R needs of /etc/R (Debian's R_HOME/etc links there): the system
# Renviron that R always reads, and what R CMD and the R front-end script
# read (Makeconf, ldpaths, repositories). Not Renviron.site or
# Rprofile.site, where administrators keep site settings and sometimes
# secrets: sessions start R with --no-environ --no-site-file.
r_etc_files <- c("Renviron", "Makeconf", "ldpaths", "repositories")

# R's own folders: home, share/include/doc, configuration, libraries, and
# the targets of packages that libraries hold as symbolic links (renv's
# cache, R CMD check's dependency library): a link alone shows nothing.
r_paths <- function() {
  env <- Sys.getenv(c("R_SHARE_DIR", "R_INCLUDE_DIR", "R_DOC_DIR"))
  c(
    R.home(), env[nzchar(env)], file.path("/etc/R", r_etc_files),
    .libPaths(), linked_packages(.libPaths())
  )
}

linked_packages <- function(libs) {
  entries <- list.files(libs, full.names = TRUE)
  links <- Sys.readlink(entries)
  entries <- entries[!is.na(links) & nzchar(links)]
  unique(normalizePath(entries, winslash = "/", mustWork = FALSE))
}

linux_base_paths <- function() {
  system_paths <- c(
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/etc/fonts"
  )
  tidy_paths(c(r_paths(), system_paths), on_host = detect_platform() == "linux")
}
