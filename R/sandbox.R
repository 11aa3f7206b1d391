# Sandbox configurations: what the sandboxed child may see and do.
#
# A configuration is plain data (an S3 list of class
# "securer_sandbox_config"). This file holds the object, the builder that
# picks the platform's backend, and the glue to sessions. Each backend has a
# file of its own: sandbox-linux.R (the native Linux sandbox and its launcher
# policy), sandbox-fallback.R, sandbox-macos.R (Seatbelt) and
# sandbox-windows.R; sandbox-paths.R checks and tidies the paths they grant.
# On macOS the launcher runs R under the Seatbelt profile the Rust core
# renders from the same policy as the Linux layers (tested here through a
# stand-in sandbox-exec, never against macOS's kernel); Windows runs no
# sessions (check_session_platform()).

sandbox_platforms <- c("linux", "macos", "windows")
sandbox_backends <- c(
  "linux-native", "linux-fallback", "seatbelt", "windows-job", "none"
)

#' Build sandbox configuration for the current platform
#'
#' Describes what a sandboxed child R process may see and do, and picks the
#' backend for the platform:
#'
#' * Linux: `"linux-native"`, built by the package's own Rust launcher
#'   (namespaces, a fresh minimal root, Landlock, seccomp, resource limits
#'   and a clean environment); see [build_sandbox_linux()].
#' * macOS: `"seatbelt"`, a Seatbelt profile that the launcher applies
#'   through `/usr/bin/sandbox-exec` (after resource limits, a clean
#'   environment and closing inherited files); see [build_sandbox_macos()].
#' * Windows: `"windows-job"`, a description only: securer runs no
#'   sessions on Windows (`SecureSession$new()` fails with a
#'   `securer_sandbox_error`; use WSL2); see [build_sandbox_windows()].
#'
#' The sandbox always sees R itself, its library paths (read-only, so
#' installed packages load) and the system files R needs. It never sees
#' your home directory, the working directory or `/etc/passwd`, and it has
#' no network. Use `read_only` to grant one data folder and `writable` to
#' grant one output folder without weakening the rest. Extra paths must
#' exist; they are expanded (`~`) and normalised (symbolic links resolved).
#' The filesystem root, your home directory (or a folder containing it),
#' whole system folders such as `/etc` or `/var`, and `/proc`, `/sys` or
#' `/dev` are refused. A writable path may not overlap R's installation, its
#' library paths or the system folders the sandbox keeps read-only.
#'
#' The macOS profile is checked by this package's tests on its text and
#' through a stand-in `sandbox-exec` on Linux; that macOS's kernel enforces
#' it is not tested here (see `vignette("security-model")`).
#'
#' @param read_only Character vector of extra folders or files the sandboxed
#'   code may read.
#' @param writable Character vector of extra folders the sandboxed code may
#'   read and write.
#' @param tmp_size Size cap of the sandbox's private `/tmp`, in bytes
#'   (Linux; macOS and Windows cannot cap it and ignore it).
#' @param platform One of `"linux"`, `"macos"` or `"windows"`; `NULL` (the
#'   default) detects the current one.
#' @return A `securer_sandbox_config` object: a list with `platform`,
#'   `backend` (`"linux-native"`, `"linux-fallback"`, `"seatbelt"`,
#'   `"windows-job"` or `"none"`), `read_only` and `writable` (absolute
#'   paths), `network` (always `FALSE`), `tmp_size` (bytes, `NA` where not
#'   applicable), `enforced` (a named logical vector: `filesystem`,
#'   `network`, `environment`, `limits`), `note` (character), and
#'   backend-specific fields: `profile`, `command` and `tmp_dir` for
#'   Seatbelt; `env`, `job_limits` and `tmp_dir` for Windows.
#' @seealso [build_sandbox_linux()], [build_sandbox_fallback()],
#'   [build_sandbox_macos()], [build_sandbox_windows()]
#' @export
#' @examples
#' cfg <- build_sandbox_config()
#' cfg
#'
#' # Let the code read one data folder:
#' data_dir <- file.path(tempdir(), "data")
#' dir.create(data_dir, showWarnings = FALSE)
#' build_sandbox_config(read_only = data_dir)$read_only
#'
#' # The configuration another platform would use:
#' build_sandbox_config(platform = "windows")$backend
build_sandbox_config <- function(read_only = character(),
                                 writable = character(),
                                 tmp_size = 256 * 1024^2,
                                 platform = NULL) {
  platform <- check_platform(platform)
  tmp_size <- check_tmp_size(tmp_size)
  switch(platform,
    linux = build_sandbox_linux(read_only, writable, tmp_size),
    macos = build_sandbox_macos(read_only, writable),
    windows = build_sandbox_windows(read_only = read_only, writable = writable)
  )
}

# ---------------------------------------------------------------------------
# The object

new_sandbox_config <- function(platform, backend, read_only, writable,
                               tmp_size, enforced, note = character()) {
  structure(
    list(
      platform = platform,
      backend = backend,
      read_only = as.character(read_only),
      writable = as.character(writable),
      network = FALSE,
      tmp_size = tmp_size,
      enforced = enforced,
      note = note
    ),
    class = "securer_sandbox_config"
  )
}

enforced_layers <- function(filesystem, network) {
  c(
    filesystem = filesystem,
    network = network,
    environment = TRUE,
    limits = TRUE
  )
}

#' @param x A `securer_sandbox_config`.
#' @param max_paths How many paths of each list to show.
#' @param ... Unused.
#' @rdname build_sandbox_config
#' @export
format.securer_sandbox_config <- function(x, max_paths = 5L, ...) {
  show_paths <- function(label, paths) {
    if (length(paths) == 0L) {
      return(sprintf("%-10s none", label))
    }
    shown <- utils::head(paths, max_paths)
    more <- length(paths) - length(shown)
    c(
      sprintf("%-10s %d path%s", label, length(paths), if (length(paths) == 1L) "" else "s"),
      paste0("  ", shown),
      if (more > 0L) sprintf("  ... and %d more", more)
    )
  }
  enforced <- x$enforced
  on <- names(enforced)[enforced]
  off <- names(enforced)[!enforced]
  network <- if (isTRUE(enforced[["network"]])) "denied" else "not restricted"
  tmp <- if (identical(x$backend, "linux-fallback")) {
    paste("a host folder, capped at", format_bytes(x$tmp_size), "by the supervisor")
  } else if (is.numeric(x$tmp_size) && !is.na(x$tmp_size)) {
    paste("private, capped at", format_bytes(x$tmp_size))
  } else if (!is.null(x$tmp_dir)) {
    x$tmp_dir
  }

  c(
    "<securer_sandbox_config>",
    sprintf("%-10s %s", "platform:", x$platform),
    sprintf("%-10s %s", "backend:", x$backend),
    sprintf("%-10s %s", "network:", network),
    if (!is.null(tmp)) sprintf("%-10s %s", "tmp:", tmp),
    show_paths("read-only:", x$read_only),
    show_paths("writable:", x$writable),
    if (!is.null(x$profile)) {
      sprintf(
        "%-10s %d lines, run with %s",
        "profile:", length(strsplit(x$profile, "\n", fixed = TRUE)[[1]]),
        x$command
      )
    },
    if (!is.null(x$env)) {
      sprintf("%-10s %s", "env:", paste(names(x$env), collapse = ", "))
    },
    if (!is.null(x$job_limits)) {
      sprintf("%-10s %s", "job:", format_job_limits(x$job_limits))
    },
    sprintf(
      "%-10s %s", "enforced:",
      if (length(on) > 0L) paste(on, collapse = ", ") else "nothing"
    ),
    if (length(off) > 0L) {
      sprintf("%-10s %s", "not:", paste(off, collapse = ", "))
    },
    if (length(x$note) > 0L) paste0("note: ", x$note)
  )
}

#' @rdname build_sandbox_config
#' @export
print.securer_sandbox_config <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

# ---------------------------------------------------------------------------
# Internal: the glue to sessions, the platform

# sandbox = TRUE / FALSE / a configuration -> a configuration or NULL.
as_sandbox_config <- function(sandbox) {
  if (inherits(sandbox, "securer_sandbox_config")) {
    return(sandbox)
  }
  if (isTRUE(sandbox)) {
    # Building the default policy checks many paths; sessions start often.
    key <- paste(c(detect_platform(), R.home(), .libPaths()), collapse = "\n")
    if (!identical(the$default_sandbox_key, key)) {
      the$default_sandbox <- build_sandbox_config()
      the$default_sandbox_key <- key
    }
    return(the$default_sandbox)
  }
  if (isFALSE(sandbox)) {
    return(NULL)
  }
  securer_abort(
    c(
      "{.arg sandbox} must be {.code TRUE}, {.code FALSE} or a sandbox configuration, not {.obj_type_friendly {sandbox}}.",
      i = "Build a configuration with {.fn build_sandbox_config}, for example to grant a data folder."
    ),
    class = "securer_input_error"
  )
}

detect_platform <- function(sysname = host_sysname()) {
  switch(sysname,
    Linux = "linux",
    Darwin = "macos",
    Windows = "windows",
    securer_abort(
      c(
        "securer cannot build a sandbox on {sysname}.",
        i = "Supported systems are Linux, macOS and Windows; use {.code sandbox = FALSE} to run without one."
      ),
      class = "securer_sandbox_error"
    )
  )
}

# The operating system's name, asked once per R process (`Sys.info()` costs
# ~20 us, and every session start asks several times).
host_sysname <- function() {
  the$sysname <- the$sysname %||% Sys.info()[["sysname"]]
  the$sysname
}

# Sessions need Unix: a launcher that execs R with an inherited socket
# pair, process groups, rlimits. Windows has none of these in the same form,
# and a second implementation (job objects, named pipes) would be a second
# architecture: there, every session fails at once and points to WSL2, where
# the Linux sandbox works. The package itself installs, and the
# configuration builders and value checks work.
check_session_platform <- function() {
  if (identical(session_platform(), "windows")) {
    securer_abort(
      c(
        "securer cannot run sessions on Windows.",
        i = "Run R inside WSL2 (Windows Subsystem for Linux), where the Linux sandbox works, and install securer there.",
        i = "This applies to {.code sandbox = FALSE} too: sessions need a Unix system."
      ),
      class = "securer_sandbox_error"
    )
  }
  invisible()
}

# The platform sessions run on: detect_platform(), or "other" for a Unix
# that has no sandbox (sessions without one still run there).
session_platform <- function() {
  tryCatch(detect_platform(), securer_sandbox_error = function(e) "other")
}

check_platform <- function(platform) {
  if (is.null(platform)) {
    return(detect_platform())
  }
  if (!is.character(platform) || length(platform) != 1L || is.na(platform) ||
    !platform %in% sandbox_platforms) {
    securer_abort(
      c(
        "{.arg platform} must be one of {.val {sandbox_platforms}} or {.code NULL}.",
        x = "Got {.obj_type_friendly {platform}}{if (is.character(platform) && length(platform) == 1L) paste0(': ', platform) else ''}."
      ),
      class = "securer_input_error"
    )
  }
  platform
}

check_tmp_size <- function(tmp_size) {
  check_number(tmp_size, min = 0)
  if (tmp_size > max_limit_value) {
    securer_abort(
      "{.arg tmp_size} is too large: {format(tmp_size)} bytes; use a value below 1e15.",
      class = "securer_input_error"
    )
  }
  ceiling(tmp_size)
}
