# macOS: the sandbox is a Seatbelt profile that the launcher applies
# through sandbox-exec before R starts. The profile is rendered in Rust
# (src/rust/core/src/sandbox/seatbelt.rs) from the same `SandboxPolicy` the
# Linux launcher applies; this file builds the configuration and shows the
# profile.

#' Build macOS sandbox configuration
#'
#' The configuration for macOS, the default there (`sandbox = TRUE`). The
#' package's launcher applies resource limits, a clean environment and
#' closes inherited files as on Linux, then runs R through
#' `/usr/bin/sandbox-exec -p <profile>`: a Seatbelt profile rendered from
#' the same policy the Linux launcher applies (see
#' [generate_seatbelt_profile()]). The code may read R's home, its library
#' paths (read-only), `/usr/lib`, `/usr/share`, `/usr/bin`, `/bin`,
#' `/System/Library`, `/Library/Frameworks/R.framework` and the time zone
#' files, plus `read_only`; it may write only to its session's own
#' temporary folder and `writable`; it has no network; it cannot read your
#' home folder, the working directory or other users' files.
#'
#' On macOS the base paths are kept only if they exist, and the launcher
#' adds the resolved form of each path (Seatbelt matches resolved paths:
#' `/tmp` is `/private/tmp`). On other systems the configuration is
#' generated for inspection and tests, without checking any path.
#'
#' macOS has no namespaces: every session starts cold (no warm zygote, so
#' each has its own profile and folder), and the limits are per process
#' (macOS does not enforce the memory limit, and `nproc` counts all of your
#' user's processes). The profile's text and the launcher's steps are
#' tested on Linux through a stand-in `sandbox-exec`; that macOS's kernel
#' enforces the profile is not tested by this package (see
#' `vignette("security-model")`).
#'
#' @inheritParams build_sandbox_config
#' @param tmp_dir The writable temporary folder shown in the `profile`
#'   field. Sessions do not use it: each gets a private folder of its own,
#'   which its profile grants instead. Use a resolved path
#'   (`/private/tmp/...`, not `/tmp/...`).
#' @return A `securer_sandbox_config` with backend `"seatbelt"` and the
#'   extra fields `profile` (the profile text), `command`
#'   (`"/usr/bin/sandbox-exec"`) and `tmp_dir`; see [build_sandbox_config()].
#' @export
#' @examples
#' cfg <- build_sandbox_macos()
#' cat(cfg$profile)
build_sandbox_macos <- function(read_only = character(),
                                writable = character(),
                                tmp_dir = "/private/tmp/securer") {
  check_string(tmp_dir)
  tmp_dir <- check_profile_paths(tmp_dir, "tmp_dir")
  paths <- sandbox_paths("macos", macos_base_paths(), read_only, writable)
  writable <- setdiff(paths$writable, tmp_dir)
  config <- new_sandbox_config(
    platform = "macos",
    backend = "seatbelt",
    read_only = paths$read_only,
    writable = writable,
    tmp_size = NA_real_,
    enforced = enforced_layers(TRUE, TRUE),
    note = paste(
      "Seatbelt through sandbox-exec; each session starts cold with a",
      "private folder. Tested through a stand-in, not against macOS's kernel."
    )
  )
  config$tmp_dir <- tmp_dir
  config$command <- "/usr/bin/sandbox-exec"
  config$profile <- generate_seatbelt_profile(
    read_only = paths$read_only,
    writable = writable,
    tmp_dir = tmp_dir
  )
  config
}

#' Generate a macOS Seatbelt profile for the sandboxed R session
#'
#' Renders a Seatbelt (SBPL) profile for `sandbox-exec`, with the same code
#' and from the same policy the launcher uses when it starts a session on
#' macOS: everything is denied (`(deny default)`), then R is allowed to
#'
#' * fork, and run and map as code only what lies under the read-only
#'   paths (never a file under `tmp_dir` or `writable`, so files the code
#'   writes cannot be run);
#' * signal itself only;
#' * read the metadata of the folders leading to the allowed paths; read
#'   the read-only paths, `writable`, `tmp_dir` and `/dev/null`,
#'   `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`;
#' * write to `tmp_dir`, `writable` and those devices only;
#' * read a short list of harmless `sysctl` values (CPU count and features,
#'   memory size, OS version; not the process table) and look up user
#'   names.
#'
#' All network access is denied; the IPC channel is an inherited socket
#' pair, so no socket has to be created. Paths are written as SBPL string
#' literals with `\` and `"` escaped, and paths holding control characters
#' (such as newlines) are refused, so that no path can add rules of its
#' own. The output is deterministic. A session's launcher also grants the
#' resolved form of each path that passes through a symbolic link.
#'
#' @param read_only Character vector of absolute paths the code may read.
#' @param writable Character vector of absolute paths the code may read and
#'   write.
#' @param tmp_dir Absolute path of the code's temporary folder (writable).
#' @return A single string: the profile.
#' @export
#' @examples
#' profile <- generate_seatbelt_profile(
#'   read_only = c("/Library/Frameworks/R.framework", "/usr/lib"),
#'   writable = character(),
#'   tmp_dir = "/private/tmp/securer"
#' )
#' cat(profile)
generate_seatbelt_profile <- function(read_only = character(),
                                      writable = character(),
                                      tmp_dir = "/private/tmp/securer") {
  read_only <- check_profile_paths(read_only, "read_only")
  writable <- check_profile_paths(writable, "writable")
  check_string(tmp_dir)
  tmp_dir <- check_profile_paths(tmp_dir, "tmp_dir")
  policy <- list(
    read_only = I(read_only),
    writable = I(setdiff(writable, tmp_dir)),
    tmp_size = 0,
    no_namespaces = TRUE,
    fallback_tmp = tmp_dir
  )
  json <- jsonlite::toJSON(policy, auto_unbox = TRUE, null = "null", digits = NA)
  rs_check(rs_seatbelt_profile(json), "Cannot write the Seatbelt profile.")
}

macos_base_paths <- function() {
  paths <- c(
    R.home(), .libPaths(),
    "/usr/lib", "/usr/share", "/usr/bin", "/bin",
    "/System/Library", "/Library/Frameworks/R.framework",
    "/private/etc/localtime", "/private/var/db/timezone"
  )
  tidy_paths(paths, on_host = detect_platform() == "macos")
}

# ---------------------------------------------------------------------------
# Checks

check_profile_paths <- function(paths, arg) {
  if (is.null(paths) || length(paths) == 0L) {
    return(character())
  }
  if (!is.character(paths) || anyNA(paths)) {
    securer_abort(
      "{.arg {arg}} must be a character vector of absolute paths, not {.obj_type_friendly {paths}}.",
      class = "securer_input_error"
    )
  }
  bad <- paths[!startsWith(paths, "/")]
  if (length(bad) > 0L) {
    securer_abort(
      "{.arg {arg}} must hold absolute paths; {.path {bad}} {?is/are} not.",
      class = "securer_input_error"
    )
  }
  bad <- paths[grepl("[[:cntrl:]]", paths)]
  if (length(bad) > 0L) {
    securer_abort(
      "{.arg {arg}} paths must not contain control characters such as newlines.",
      class = "securer_input_error"
    )
  }
  paths <- clean_path(paths)
  if (any(paths == "/")) {
    securer_abort(
      c(
        "Refusing to allow {.path /} in {.arg {arg}}: it would expose the whole filesystem.",
        i = "Allow specific folders instead."
      ),
      class = "securer_input_error"
    )
  }
  unique(paths)
}
