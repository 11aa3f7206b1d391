# The tier without namespaces: what the launcher can apply where user
# namespaces are refused, and what other systems fall back to.

#' Build fallback sandbox configuration (no OS sandbox)
#'
#' The tier used where the full sandbox cannot be built. On Linux, when user
#' namespaces are refused (Docker's default seccomp profile, Ubuntu 24.04's
#' AppArmor rules), the launcher still applies everything that needs no
#' privileges: Landlock rules for the same read-only and writable paths as
#' [build_sandbox_linux()], resource limits, a clean environment, and a
#' stricter seccomp filter that covers what the namespaces cover elsewhere
#' (no network sockets, no signals, `prlimit`, `ptrace` or scheduling
#' changes on other processes, no `chmod`/`chown`/`utime` of host files, no
#' SysV IPC or POSIX message queues, no inotify). The backend is
#' `"linux-fallback"`. The child's `/tmp` is a host folder the session
#' creates; the session's supervisor measures it (never following a link)
#' and stops the session with a `securer_limit_error` (`limit =
#' "tmp_size"`) when it holds more than `tmp_size` bytes.
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
      "environment only; /tmp is a host folder whose size the session's",
      "supervisor caps."
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
