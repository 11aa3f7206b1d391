# Resource limits for the sandboxed child process.
#
# A limits list names each limit once: cpu (seconds), memory (bytes of
# address space), fsize (bytes), nproc, nofile and stack (bytes). The Rust
# launcher applies them with setrlimit() before R starts (see the `Limits`
# struct in src/rust/core/src/policy.rs).

limit_names <- c("cpu", "memory", "fsize", "nproc", "nofile", "stack")

# The largest finite limit we accept. jsonlite (digits = NA) prints whole
# numbers below 1e15 as plain integers; from 1e15 on it switches to
# scientific notation, which the launcher would refuse as a u64.
max_limit_value <- 1e15 - 1

#' Default resource limits for sandboxed sessions
#'
#' The limits a session applies when you do not choose your own:
#'
#' * `cpu`: 60 seconds of CPU time per process (`RLIMIT_CPU`).
#' * `memory`: 2 GiB, in bytes: the address space of each process
#'   (`RLIMIT_AS`) and the memory of the whole session, all its processes
#'   together (see below).
#' * `fsize`: 100 MiB, the largest file the code may write (`RLIMIT_FSIZE`).
#' * `nproc`: 256 processes: per user of the sandbox (`RLIMIT_NPROC`) and
#'   for the whole session.
#' * `nofile`: 256 open files per process (`RLIMIT_NOFILE`).
#'
#' `stack` (bytes, `RLIMIT_STACK`) is also accepted by [validate_limits()]
#' but is not set by default: R sets its own stack checks.
#'
#' In a sandboxed session `memory` and `nproc` bind the whole session: code
#' that starts several processes (`parallel::mclapply()`, `system()`)
#' cannot hold more between them. Without the sandbox (`sandbox = FALSE`)
#' all limits are per process. Where the host delegates a cgroup v2 subtree to your user (systemd
#' does on most desktops and servers), the kernel enforces them for
#' sessions started cold; otherwise, and for sessions forked from the warm
#' zygote, the session's supervisor measures the session's processes about
#' ten times a second and stops the session with a `securer_limit_error`
#' naming the limit when it passes one. `$sandbox_info()` says which. The
#' defaults let eight sessions run side by side on a machine with 24 GiB
#' of memory: 2 GiB each, plus each session's `/tmp` (256 MiB of memory in
#' the full sandbox, see [build_sandbox_config()]).
#'
#' Pass a partial list to a session to change some of these and keep the
#' rest, `Inf` to lift one limit, or `list()` to apply none.
#'
#' @return A named list of numbers.
#' @seealso [validate_limits()]
#' @export
#' @examples
#' default_limits()
#'
#' # Allow more memory, keep the other defaults:
#' utils::modifyList(default_limits(), list(memory = 4 * 1024^3))
default_limits <- function() {
  list(
    cpu = 60,
    memory = 2 * 1024^3,
    fsize = 100 * 1024^2,
    nproc = 256,
    nofile = 256
  )
}

#' Validate a limits list
#'
#' Checks a list of resource limits before it is given to a session.
#' Valid names are `"cpu"` (seconds), `"memory"` (bytes of address space),
#' `"fsize"` (bytes), `"nproc"`, `"nofile"` and `"stack"` (bytes). Each value
#' must be a single positive number; `Inf` means "no limit for this one".
#' Finite values must be below `1e15`. Limits too small for R to start
#' (`memory` below 128 MiB, `nofile` below 167, `stack` below 512 KiB) are
#' refused with a `securer_limit_error` that says so.
#'
#' @param limits `NULL` (use [default_limits()]), a named list, or a named
#'   numeric vector (converted to a list).
#' @return `limits` as a list, invisibly (`NULL` for `NULL`). Errors of class
#'   `securer_input_error` name the bad entry and list the valid names.
#' @seealso [default_limits()]
#' @export
#' @examples
#' validate_limits(list(cpu = 10, memory = 512 * 1024^2))
#' validate_limits(c(nproc = 50))
#' validate_limits(list(cpu = Inf))
#' try(validate_limits(list(cpu = -1)))
#' try(validate_limits(list(ram = 1e9)))
validate_limits <- function(limits) {
  if (is.null(limits)) {
    return(invisible(NULL))
  }
  if (is.numeric(limits) && !is.object(limits)) {
    limits <- as.list(limits)
  }
  if (!is.list(limits) || is.object(limits)) {
    securer_abort(
      c(
        "{.arg limits} must be a named list of numbers, not {.obj_type_friendly {limits}}.",
        i = "Valid names are {.val {limit_names}}."
      ),
      class = "securer_input_error"
    )
  }
  if (length(limits) == 0L) {
    return(invisible(list()))
  }

  nms <- names(limits)
  if (is.null(nms)) {
    nms <- rep("", length(limits))
  }
  unnamed <- as.character(which(is.na(nms) | nms == ""))
  if (length(unnamed) > 0L) {
    securer_abort(
      c(
        "Every entry of {.arg limits} must be named.",
        x = "Unnamed entr{?y/ies} at position{?s} {unnamed}.",
        i = "Valid names are {.val {limit_names}}."
      ),
      class = "securer_input_error"
    )
  }
  unknown <- setdiff(nms, limit_names)
  if (length(unknown) > 0L) {
    securer_abort(
      c(
        "Unknown limit{?s} in {.arg limits}: {.val {unknown}}.",
        i = "Valid names are {.val {limit_names}}."
      ),
      class = "securer_input_error"
    )
  }
  dups <- unique(nms[duplicated(nms)])
  if (length(dups) > 0L) {
    securer_abort(
      c(
        "Each limit may appear only once in {.arg limits}.",
        x = "Duplicated: {.val {dups}}."
      ),
      class = "securer_input_error"
    )
  }

  for (name in nms) {
    check_limit_value(limits[[name]], name)
  }
  invisible(limits)
}

check_limit_value <- function(value, name) {
  if (!is.numeric(value) || is.object(value) || length(value) != 1L) {
    securer_abort(
      c(
        "Limit {.field {name}} must be a single positive number, not {.obj_type_friendly {value}}.",
        i = "Use {.code Inf} for no limit on {.field {name}}."
      ),
      class = "securer_input_error"
    )
  }
  if (is.na(value) || value <= 0) {
    securer_abort(
      c(
        "Limit {.field {name}} must be a positive number, not {value}.",
        i = "Use {.code Inf} for no limit on {.field {name}}."
      ),
      class = "securer_input_error"
    )
  }
  if (is.finite(value) && value > max_limit_value) {
    securer_abort(
      c(
        "Limit {.field {name}} is too large: {format(value)}.",
        i = "Use a value below 1e15, or {.code Inf} for no limit."
      ),
      class = "securer_input_error"
    )
  }
  least <- limit_minimums[name]
  if (!is.na(least) && value < least) {
    shown <- describe_limit(name, value)
    needed <- describe_limit(name, least)
    securer_abort(
      c(
        "Limit {.field {name}} is too small to start R: {shown}.",
        i = "R needs at least {needed}; use a larger value, or {.code Inf} for no limit."
      ),
      class = c("securer_limit_error", "securer_input_error"), limit = name
    )
  }
  invisible(value)
}

# Below these R cannot start (measured with R 4.2 and securer's child
# runtime): its default packages need about 100 MB of address space, 60%
# of the open files must cover its 100 DLL slots, and a smaller stack
# crashes it while it starts.
limit_minimums <- c(memory = 128 * 1024^2, nofile = 167, stack = 512 * 1024)

# NULL -> the defaults; list() -> no limits at all; a partial list -> the
# defaults with those entries replaced. Inf removes an entry.
resolve_limits <- function(limits) {
  validate_limits(limits)
  if (is.null(limits)) {
    return(default_limits())
  }
  limits <- as.list(limits)
  if (length(limits) == 0L) {
    return(list())
  }
  out <- default_limits()
  for (name in names(limits)) {
    out[[name]] <- limits[[name]]
  }
  out <- out[vapply(out, is.finite, logical(1))]
  # Keep a stable order whatever order the user wrote.
  out[intersect(limit_names, names(out))]
}

# A resolved limits list -> the `Limits` object of the launcher JSON: all six
# names, whole numbers (cpu at least one second) or NULL for "not set".
# NULL means the defaults, as everywhere in the package. Serialise with
# jsonlite::toJSON(auto_unbox = TRUE, null = "null", digits = NA).
limits_spec <- function(limits) {
  if (is.null(limits)) {
    limits <- default_limits()
  }
  validate_limits(limits)
  limits <- as.list(limits)
  spec <- vector("list", length(limit_names))
  names(spec) <- limit_names
  for (name in limit_names) {
    value <- limits[[name]]
    if (is.null(value) || !is.finite(value)) {
      next
    }
    value <- ceiling(as.double(value))
    if (name == "cpu") {
      value <- max(value, 1)
    }
    spec[[name]] <- value
  }
  spec
}

# Human text for a limit, used when one is hit:
# "CPU time (60 s)", "memory (2 GiB)", "processes (256)".
describe_limit <- function(name, value) {
  check_string(name)
  if (!name %in% limit_names) {
    securer_abort(
      c(
        "Unknown limit {.val {name}}.",
        i = "Valid names are {.val {limit_names}}."
      ),
      class = "securer_input_error"
    )
  }
  label <- switch(name,
    cpu = "CPU time",
    memory = "memory",
    fsize = "file size",
    nproc = "processes",
    nofile = "open files",
    stack = "stack"
  )
  if (is.null(value) || !is.numeric(value) || length(value) != 1L ||
    is.na(value) || !is.finite(value)) {
    return(paste0(label, " (no limit)"))
  }
  amount <- switch(name,
    cpu = paste(format_number(value), "s"),
    memory = ,
    fsize = ,
    stack = format_bytes(value),
    format_number(value)
  )
  paste0(label, " (", amount, ")")
}

# The session limits a supervisor (or the kernel, in the session's cgroup)
# stops a session for: `memory` and `nproc` of `limits`, and `tmp_size`, the
# size of the fallback tier's temporary folder. "memory (2 GiB)",
# "temporary folder (256 MiB)".
describe_session_limit <- function(lim, opts) {
  if (identical(lim, "tmp_size")) {
    size <- opts$sandbox$tmp_size
    return(paste0("temporary folder (", if (is.numeric(size)) format_bytes(size) else "no limit", ")"))
  }
  if (!is.character(lim) || length(lim) != 1L || !lim %in% limit_names) {
    return("resource")
  }
  describe_limit(lim, opts$limits[[lim]])
}

# The setting that raises limit `lim`, for messages.
limit_setting <- function(lim) {
  if (identical(lim, "tmp_size")) {
    return("build_sandbox_fallback(tmp_size = ...)")
  }
  paste0("limits = list(", lim, " = ...)")
}

# The session limit whose passing made the child's supervisor stop it
# ("memory", "nproc" or "tmp_size"), or NULL.
child_exit_limit <- function(child) {
  if (is.null(child)) NULL else rs_exit_limit(child$handle)
}

format_number <- function(x) {
  format(x, scientific = FALSE, trim = TRUE, big.mark = "")
}

# 1024-based sizes: 104857600 -> "100 MiB", 1.5 * 1024^3 -> "1.5 GiB".
format_bytes <- function(x) {
  units <- c("B", "KiB", "MiB", "GiB", "TiB", "PiB")
  power <- max(which(x >= 1024^(seq_along(units) - 1L)), 1L)
  value <- round(x / 1024^(power - 1L), 1)
  paste(format_number(value), units[[power]])
}
