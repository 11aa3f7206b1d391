# Sandbox configurations: what the sandboxed child may see and do.
#
# A configuration is plain data (an S3 list of class
# "securer_sandbox_config"). On Linux, sandbox_policy_spec() turns it into
# the `SandboxPolicy` JSON object that the Rust launcher applies (see
# src/rust/core/src/policy.rs). The macOS (Seatbelt profile) and Windows
# (environment + job object) configurations are generated here as text and
# data only; they are unit-tested on that text and have not been run on
# those systems.

sandbox_platforms <- c("linux", "macos", "windows")
sandbox_backends <- c(
  "linux-native", "linux-fallback", "seatbelt", "windows-job", "none"
)

# Folders that must never be granted whole: they hold other users' data,
# system secrets or the host's processes and devices.
broad_system_dirs <- c(
  "/etc", "/home", "/Users", "/root", "/var", "/run",
  "/private", "/private/etc", "/private/var"
)
pseudo_fs_dirs <- c("/proc", "/sys", "/dev")

# ---------------------------------------------------------------------------
# Exported builders

#' Build sandbox configuration for the current platform
#'
#' Describes what a sandboxed child R process may see and do, and picks the
#' backend for the platform:
#'
#' * Linux: `"linux-native"`, built by the package's own Rust launcher
#'   (namespaces, a fresh minimal root, Landlock, seccomp, resource limits
#'   and a clean environment); see [build_sandbox_linux()].
#' * macOS: `"seatbelt"`, a generated profile for `sandbox-exec`; see
#'   [build_sandbox_macos()].
#' * Windows: `"windows-job"`, environment isolation and job-object limits
#'   only; see [build_sandbox_windows()].
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
#' The macOS and Windows configurations are generated and unit-tested on
#' their text and data only: they have not been run on those systems.
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
#' `R_DOC_DIR`, `/etc/R`, every [.libPaths()] entry, and the system folders
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

#' Build fallback sandbox configuration (no OS sandbox)
#'
#' The tier used where the full sandbox cannot be built. On Linux, when user
#' namespaces are refused (Docker's default seccomp profile, Ubuntu 24.04's
#' AppArmor rules), the launcher still applies everything that needs no
#' privileges: Landlock rules for the same read-only and writable paths as
#' [build_sandbox_linux()], the seccomp filter (no network sockets),
#' resource limits and a clean environment. The backend is
#' `"linux-fallback"`; the child's `/tmp` is a host folder the session
#' creates, so `tmp_size` is not enforced there.
#'
#' On macOS and Windows there is no such tier: the backend is `"none"`, and
#' only resource limits and a clean environment apply (see `note`).
#'
#' @inheritParams build_sandbox_config
#' @return A `securer_sandbox_config` with backend `"linux-fallback"` on
#'   Linux and `"none"` elsewhere; see [build_sandbox_config()].
#' @export
#' @examples
#' build_sandbox_fallback(platform = "linux")$backend
#' build_sandbox_fallback(platform = "macos")$note
build_sandbox_fallback <- function(read_only = character(),
                                   writable = character(),
                                   tmp_size = 256 * 1024^2,
                                   platform = NULL) {
  platform <- check_platform(platform)
  tmp_size <- check_tmp_size(tmp_size)
  if (platform == "linux") {
    config <- build_sandbox_linux(read_only, writable, tmp_size)
    config$backend <- "linux-fallback"
    config$note <- paste(
      "No namespaces: Landlock, seccomp, resource limits and a clean",
      "environment only; /tmp is a host folder without a size cap."
    )
    return(config)
  }
  paths <- sandbox_paths(platform, character(), read_only, writable)
  new_sandbox_config(
    platform = platform,
    backend = "none",
    read_only = paths$read_only,
    writable = paths$writable,
    tmp_size = NA_real_,
    enforced = enforced_layers(FALSE, FALSE),
    note = paste0(
      "No OS sandbox on ", platform, ": the filesystem and the network are ",
      "not restricted; only resource limits and a clean environment apply."
    )
  )
}

#' Build macOS sandbox configuration
#'
#' The configuration for macOS: a Seatbelt profile (see
#' [generate_seatbelt_profile()]) for `/usr/bin/sandbox-exec`. The code may
#' read R's home, its library paths, `/usr/lib`, `/usr/share`, `/usr/bin`,
#' `/bin`, `/System/Library`, `/Library/Frameworks/R.framework` and the time
#' zone files, plus `read_only`; it may write only to `tmp_dir` and
#' `writable`; it has no network.
#'
#' On macOS the base paths are kept only if they exist, and their resolved
#' forms are added (Seatbelt matches resolved paths: `/tmp` is
#' `/private/tmp`). On other systems the configuration is generated for
#' inspection and tests, without checking any path.
#'
#' This configuration is generated and unit-tested on its text only; it has
#' not been run on macOS.
#'
#' @inheritParams build_sandbox_config
#' @param tmp_dir The folder the code may write to and use as its temporary
#'   directory. Use a resolved path (`/private/tmp/...`, not `/tmp/...`).
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
    note = "Generated profile, not tested on macOS by this package's tests."
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
#' Writes a Seatbelt (SBPL) profile for `sandbox-exec`: everything is denied
#' (`(deny default)`), then R is allowed to
#'
#' * fork, and execute programs found under the read-only paths only
#'   (never from `tmp_dir` or `writable`, so files the code writes cannot be
#'   run);
#' * signal itself only;
#' * read the metadata of the folders leading to the allowed paths, read the
#'   read-only paths, `writable` and `tmp_dir`, and `/dev/null`,
#'   `/dev/zero`, `/dev/random`, `/dev/urandom`;
#' * write to `tmp_dir`, `writable` and `/dev/null` only;
#' * read a short list of harmless `sysctl` values (CPU count, memory size,
#'   OS version; not the process table) and look up the directory service
#'   (user names).
#'
#' All network access is denied; the IPC channel is an inherited socket
#' pair, so no socket has to be created. Paths are written as escaped SBPL
#' string literals (`\` and `"` are escaped; control characters are
#' refused). The output is deterministic.
#'
#' This profile is generated and unit-tested on its text only; it has not
#' been run on macOS.
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

  writable_all <- unique(c(tmp_dir, writable))
  readable_all <- unique(c(read_only, writable_all))
  ancestors <- path_ancestors(readable_all)

  subpaths <- function(paths) sprintf("(subpath %s)", sbpl_string(paths))
  literals <- function(paths) sprintf("(literal %s)", sbpl_string(paths))
  devices <- c("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")

  lines <- c(
    "(version 1)",
    "; Generated by the securer R package. Everything not allowed below is denied.",
    "(deny default)",
    "",
    "; Processes: fork; exec only programs under the read-only paths.",
    "(allow process-fork)",
    sbpl_rule("allow process-exec", subpaths(read_only)),
    "(allow signal (target self))",
    "",
    "; System information R asks for at start-up.",
    sbpl_rule("allow sysctl-read", sprintf(
      "(sysctl-name %s)", sbpl_string(seatbelt_sysctls)
    )),
    sbpl_rule("allow mach-lookup", sprintf(
      "(global-name %s)", sbpl_string(seatbelt_mach_services)
    )),
    "",
    "; Files: metadata of the folders leading to the allowed paths,",
    "; read-only paths, writable paths and the temporary folder.",
    sbpl_rule("allow file-read-metadata", literals(ancestors)),
    sbpl_rule("allow file-read*", c(subpaths(readable_all), literals(devices))),
    sbpl_rule("allow file-write*", subpaths(writable_all)),
    "(allow file-write-data (literal \"/dev/null\"))",
    "",
    "; No network of any kind.",
    "(deny network*)"
  )
  paste0(paste(lines, collapse = "\n"), "\n")
}

#' Build Windows sandbox configuration
#'
#' Windows offers no unprivileged filesystem or network sandbox that securer
#' can build, so this configuration only isolates the environment and sets
#' job-object limits:
#'
#' * `env`: `HOME`, `USERPROFILE`, `R_USER`, `APPDATA`, `LOCALAPPDATA`,
#'   `TMPDIR`, `TEMP` and `TMP` point to `tmp_dir`; `R_LIBS_USER` is `"NULL"`
#'   (no user library); `R_ENVIRON_USER` and `R_PROFILE_USER` are `"NUL"`
#'   (no user start-up files).
#' * `job_limits`: process memory (bytes), active processes and per-process
#'   CPU time (seconds) from `limits`, and `kill_on_job_close = TRUE`. The
#'   file size, open files and stack limits cannot be set by a job object.
#'
#' The filesystem and the network are **not** restricted: `enforced` says
#' so (`filesystem = FALSE`, `network = FALSE`), and `read_only` and
#' `writable` are recorded but not enforced. For real isolation on Windows,
#' run R under WSL2 or in a Linux container and use the Linux sandbox.
#'
#' This configuration is generated and unit-tested as data only; it has not
#' been run on Windows.
#'
#' @param tmp_dir The folder used as home and temporary directory.
#' @param limits Resource limits: `NULL` for [default_limits()], or a list
#'   as accepted by [validate_limits()].
#' @inheritParams build_sandbox_config
#' @return A `securer_sandbox_config` with backend `"windows-job"` and the
#'   extra fields `env` (named character vector), `job_limits` (list) and
#'   `tmp_dir`; see [build_sandbox_config()].
#' @export
#' @examples
#' cfg <- build_sandbox_windows(tmp_dir = "C:/Temp/securer")
#' cfg$env
#' str(cfg$job_limits)
#' cfg$enforced
build_sandbox_windows <- function(tmp_dir = file.path(tempdir(), "securer"),
                                  limits = NULL,
                                  read_only = character(),
                                  writable = character()) {
  check_string(tmp_dir)
  if (!nzchar(tmp_dir)) {
    securer_abort(
      "{.arg tmp_dir} must be a folder path, not an empty string.",
      class = "securer_input_error"
    )
  }
  spec <- limits_spec(resolve_limits(limits))
  paths <- sandbox_paths("windows", character(), read_only, writable)

  env <- c(
    HOME = tmp_dir,
    USERPROFILE = tmp_dir,
    R_USER = tmp_dir,
    APPDATA = tmp_dir,
    LOCALAPPDATA = tmp_dir,
    TMPDIR = tmp_dir,
    TEMP = tmp_dir,
    TMP = tmp_dir,
    R_LIBS_USER = "NULL",
    R_ENVIRON_USER = "NUL",
    R_PROFILE_USER = "NUL"
  )
  job_limits <- list(
    process_memory = spec$memory,
    active_processes = spec$nproc,
    per_process_user_time = spec$cpu,
    kill_on_job_close = TRUE
  )

  config <- new_sandbox_config(
    platform = "windows",
    backend = "windows-job",
    read_only = paths$read_only,
    writable = unique(c(tmp_dir, paths$writable)),
    tmp_size = NA_real_,
    enforced = enforced_layers(FALSE, FALSE),
    note = paste(
      "Windows: environment isolation and job-object limits only;",
      "the filesystem and the network are not restricted."
    )
  )
  config$tmp_dir <- tmp_dir
  config$env <- env
  config$job_limits <- job_limits
  config
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
    "a host folder, without a size cap"
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

format_job_limits <- function(job_limits) {
  parts <- c(
    if (!is.null(job_limits$process_memory)) {
      paste("memory", format_bytes(job_limits$process_memory))
    },
    if (!is.null(job_limits$active_processes)) {
      paste("processes", format_number(job_limits$active_processes))
    },
    if (!is.null(job_limits$per_process_user_time)) {
      paste0("CPU ", format_number(job_limits$per_process_user_time), " s")
    },
    if (isTRUE(job_limits$kill_on_job_close)) "kill on close"
  )
  if (length(parts) == 0L) "none" else paste(parts, collapse = ", ")
}

# ---------------------------------------------------------------------------
# Internal: the glue to sessions and the launcher

# sandbox = TRUE / FALSE / a configuration -> a configuration or NULL.
as_sandbox_config <- function(sandbox) {
  if (inherits(sandbox, "securer_sandbox_config")) {
    return(sandbox)
  }
  if (isTRUE(sandbox)) {
    # Building the default policy checks many paths; sessions start often.
    key <- paste(c(R.home(), .libPaths()), collapse = "\n")
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

# A Linux configuration -> the `SandboxPolicy` object of the launcher JSON.
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
  if (!identical(config$platform, "linux") ||
    !config$backend %in% c("linux-native", "linux-fallback")) {
    platform <- config$platform
    backend <- config$backend
    securer_abort(
      c(
        "This sandbox configuration ({.val {backend}} for {platform}) cannot be applied on this platform.",
        i = "The securer launcher applies Linux configurations only; build one with {.fn build_sandbox_linux} or {.fn build_sandbox_config}."
      ),
      class = "securer_sandbox_error"
    )
  }
  list(
    strict = strict,
    read_only = I(as.character(config$read_only)),
    writable = I(as.character(config$writable)),
    tmp_size = ceiling(config$tmp_size),
    no_namespaces = identical(config$backend, "linux-fallback"),
    fallback_tmp = fallback_tmp
  )
}

# ---------------------------------------------------------------------------
# Internal: base paths

detect_platform <- function(sysname = Sys.info()[["sysname"]]) {
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

# R's own folders: home, share/include/doc, configuration, libraries, and
# the targets of packages that libraries hold as symbolic links (renv's
# cache, R CMD check's dependency library): a link alone shows nothing.
r_paths <- function() {
  env <- Sys.getenv(c("R_SHARE_DIR", "R_INCLUDE_DIR", "R_DOC_DIR"))
  c(R.home(), env[nzchar(env)], "/etc/R", .libPaths(), linked_packages(.libPaths()))
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

macos_base_paths <- function() {
  paths <- c(
    R.home(), .libPaths(),
    "/usr/lib", "/usr/share", "/usr/bin", "/bin",
    "/System/Library", "/Library/Frameworks/R.framework",
    "/private/etc/localtime", "/private/var/db/timezone"
  )
  tidy_paths(paths, on_host = detect_platform() == "macos")
}

# On the host: keep existing paths, add resolved forms (symbolic link
# targets), then drop paths nested in another listed real folder. Off the
# host (generating another platform's configuration): lexical only.
tidy_paths <- function(paths, on_host) {
  paths <- unique(paths[!is.na(paths) & nzchar(paths)])
  if (on_host) {
    paths <- paths[file.exists(paths)]
    resolved <- normalizePath(paths, winslash = "/", mustWork = FALSE)
    paths <- unique(c(paths, resolved))
    links <- is_symlink(paths)
  } else {
    paths <- unique(clean_path(paths))
    links <- rep(FALSE, length(paths))
  }
  drop_nested(paths, links)
}

# Drop each path that lies inside another listed path that is a real
# folder (not a symbolic link): that folder already makes it visible.
drop_nested <- function(paths, links = rep(FALSE, length(paths))) {
  parents <- paths[!links]
  keep <- vapply(
    paths,
    function(p) !any(parents != p & path_is_within(p, parents)),
    logical(1),
    USE.NAMES = FALSE
  )
  paths[keep]
}

is_symlink <- function(paths) {
  if (length(paths) == 0L) {
    return(logical())
  }
  links <- Sys.readlink(paths)
  !is.na(links) & nzchar(links)
}

# Is `child` equal to `parent` or inside it? (Lexical, vectorised.)
path_is_within <- function(child, parent) {
  parent <- sub("/+$", "", parent)
  child == parent | startsWith(child, paste0(parent, "/"))
}

# Lexical clean-up of absolute paths: no "//", "." or "..", no trailing "/".
clean_path <- function(paths) {
  vapply(paths, function(p) {
    parts <- strsplit(p, "/", fixed = TRUE)[[1]]
    out <- character()
    for (part in parts) {
      if (part == "" || part == ".") {
        next
      }
      if (part == "..") {
        out <- out[-length(out)]
        next
      }
      out <- c(out, part)
    }
    paste0(if (startsWith(p, "/")) "/" else "", paste(out, collapse = "/"))
  }, character(1), USE.NAMES = FALSE)
}

path_ancestors <- function(paths) {
  out <- character()
  for (p in paths) {
    repeat {
      parent <- dirname(p)
      out <- c(out, parent)
      if (parent == p || parent == "/" || parent == ".") {
        break
      }
      p <- parent
    }
  }
  sort(unique(out), method = "radix")
}

# ---------------------------------------------------------------------------
# Internal: extra paths granted by the user

# Base paths plus the user's grants -> list(read_only, writable).
sandbox_paths <- function(platform, base, read_only, writable) {
  protected <- protected_paths(base)
  read_only <- check_extra_paths(read_only, "read_only", platform, protected)
  writable <- check_extra_paths(
    writable, "writable", platform, protected,
    writable = TRUE
  )
  on_host <- identical(platform, detect_platform())
  ro <- if (platform == "windows") {
    unique(c(base, read_only))
  } else {
    tidy_paths(c(base, read_only), on_host = on_host)
  }
  list(read_only = setdiff(ro, writable), writable = writable)
}

protected_paths <- function(base) {
  paths <- unique(c(r_paths(), base))
  paths <- paths[nzchar(paths)]
  unique(c(paths, normalizePath(paths, winslash = "/", mustWork = FALSE)))
}

home_paths <- function() {
  home <- c(path.expand("~"), Sys.getenv("HOME"), Sys.getenv("USERPROFILE"))
  home <- home[nzchar(home) & home != "~"]
  home <- c(home, normalizePath(home, winslash = "/", mustWork = FALSE))
  home <- unique(sub("(.)/+$", "\\1", home))
  home[home != "/"]
}

is_absolute_path <- function(path, platform) {
  if (platform == "windows") {
    grepl("^([A-Za-z]:)?[/\\\\]", path)
  } else {
    startsWith(path, "/")
  }
}

check_extra_paths <- function(paths, arg, platform, protected,
                              writable = FALSE) {
  if (is.null(paths) || length(paths) == 0L) {
    return(character())
  }
  if (!is.character(paths) || anyNA(paths) || !all(nzchar(paths))) {
    securer_abort(
      "{.arg {arg}} must be a character vector of paths, not {.obj_type_friendly {paths}}.",
      class = "securer_input_error"
    )
  }
  on_host <- identical(platform, detect_platform())
  out <- character()
  for (path in paths) {
    expanded <- path.expand(path)
    if (on_host) {
      if (!file.exists(expanded)) {
        securer_abort(
          c(
            "The {.arg {arg}} path {.path {path}} does not exist.",
            i = "Create it first, or check the spelling."
          ),
          class = "securer_input_error"
        )
      }
      norm <- normalizePath(expanded, winslash = "/", mustWork = TRUE)
    } else {
      if (!is_absolute_path(expanded, platform)) {
        securer_abort(
          "The {.arg {arg}} path {.path {path}} must be absolute to build a {platform} configuration here.",
          class = "securer_input_error"
        )
      }
      norm <- if (platform == "windows") expanded else clean_path(expanded)
    }
    check_grant(unique(c(expanded, norm)), path, arg, protected, writable)
    out <- c(out, norm)
  }
  unique(out)
}

check_grant <- function(forms, path, arg, protected, writable) {
  forms <- unique(sub("(.)[/\\\\]+$", "\\1", forms))
  if (any(forms == "/" | grepl("^[A-Za-z]:[/\\\\]?$", forms))) {
    securer_abort(
      c(
        "Refusing to grant {.path {path}} ({.arg {arg}}): it is the root of the filesystem and would expose everything.",
        i = "Grant one specific folder instead, such as a data or output folder."
      ),
      class = "securer_input_error"
    )
  }
  home <- home_paths()
  for (h in home) {
    if (any(path_is_within(h, forms))) {
      securer_abort(
        c(
          "Refusing to grant {.path {path}} ({.arg {arg}}): it is or contains your home folder {.path {h}}, with its credentials and keys.",
          i = "Grant one specific folder inside it instead."
        ),
        class = "securer_input_error"
      )
    }
  }
  if (any(forms %in% broad_system_dirs) ||
    any(vapply(pseudo_fs_dirs, function(d) any(path_is_within(forms, d)), logical(1)))) {
    securer_abort(
      c(
        "Refusing to grant {.path {path}} ({.arg {arg}}): it is a system folder that would expose other users' data, secrets or the host's processes.",
        i = "Grant one specific folder with only the files the code needs."
      ),
      class = "securer_input_error"
    )
  }
  if (writable) {
    for (p in protected) {
      if (any(path_is_within(forms, p) | path_is_within(p, forms))) {
        securer_abort(
          c(
            "Refusing to make {.path {path}} writable: it is, contains or lies inside {.path {p}}, which the sandbox keeps read-only (R, its library paths or system files).",
            i = "Choose an output folder outside R's installation, its libraries and the system folders."
          ),
          class = "securer_input_error"
        )
      }
    }
  }
  invisible(forms)
}

# ---------------------------------------------------------------------------
# Internal: SBPL helpers

seatbelt_sysctls <- c(
  "hw.activecpu", "hw.byteorder", "hw.cachelinesize", "hw.cpufamily",
  "hw.cputype", "hw.l1dcachesize", "hw.l2cachesize", "hw.logicalcpu",
  "hw.logicalcpu_max", "hw.machine", "hw.memsize", "hw.model", "hw.ncpu",
  "hw.pagesize", "hw.physicalcpu", "hw.physicalcpu_max", "kern.argmax",
  "kern.hostname", "kern.maxfilesperproc", "kern.osproductversion",
  "kern.osrelease", "kern.ostype", "kern.osversion", "kern.usrstack64",
  "kern.version", "machdep.cpu.brand_string", "sysctl.proc_cputype"
)

seatbelt_mach_services <- "com.apple.system.opendirectoryd.libinfo"

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

# An SBPL string literal: backslashes and double quotes escaped.
sbpl_string <- function(x) {
  if (length(x) == 0L) {
    return(character())
  }
  paste0("\"", gsub("([\"\\\\])", "\\\\\\1", x), "\"")
}

# One rule over several filters. With no filter the rule is left out, as a
# bare `(allow op)` would allow everything.
sbpl_rule <- function(head, filters) {
  if (length(filters) == 0L) {
    return(character())
  }
  n <- length(filters)
  body <- paste0("  ", filters)
  body[[n]] <- paste0(body[[n]], ")")
  c(paste0("(", head), body)
}
