# Windows: a description only. securer runs no sessions on Windows
# (check_session_platform() in sandbox.R says to use WSL2).

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
#' `writable` are recorded but not enforced.
#'
#' securer does not run sessions on Windows: `SecureSession$new()` (and
#' everything built on it) fails at once with a `securer_sandbox_error`,
#' with or without a sandbox. Run R under WSL2 (or in a Linux container)
#' and use the Linux sandbox there. This function describes what a Windows
#' backend could enforce, as data for inspection.
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
