# Starting, talking to and stopping one child R process. Internal: the
# session and pool classes are thin layers over these functions. Messages
# go by kind name ("exec", "tool_result", ...); the protocol's constants
# live in Rust (rs_protocol()).

# Seconds on a monotonic clock, for deadlines (see rs_now()).
now <- function() rs_now()

launcher_path <- function() {
  path <- getOption("securer.launcher", Sys.getenv("SECURER_LAUNCHER"))
  if (!nzchar(path)) {
    path <- system.file("bin", "securer-launcher", package = "securer")
  }
  if (!nzchar(path) || !file.exists(path)) {
    securer_abort(
      c(
        "Cannot find the securer launcher executable.",
        i = "Reinstall securer; the launcher is built with the package."
      ),
      class = "securer_child_error"
    )
  }
  path
}

r_binary <- function() {
  exe <- file.path(R.home("bin"), "exec", paste0("R", .Platform$r_arch))
  if (!file.exists(exe)) exe <- file.path(R.home("bin"), "exec", "R")
  exe
}

child_runtime_path <- function() {
  path <- system.file("child", "runtime.R", package = "securer")
  if (!nzchar(path)) {
    securer_abort("Cannot find securer's child runtime; reinstall securer.",
      class = "securer_child_error"
    )
  }
  path
}

# The child's whole environment: an allowlist, nothing secret.
child_env <- function(home, token, max_frame) {
  keep <- c(
    "R_HOME", "R_SHARE_DIR", "R_INCLUDE_DIR", "R_DOC_DIR", "R_ARCH",
    "LD_LIBRARY_PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_COLLATE",
    "LC_MESSAGES", "LC_MONETARY", "LC_NUMERIC", "LC_TIME", "TZ",
    "R_PAPERSIZE"
  )
  inherited <- Sys.getenv(keep, unset = NA)
  inherited <- inherited[!is.na(inherited)]
  dll <- getLoadedDLLs()[["securer"]][["path"]]
  c(
    inherited,
    PATH = "/usr/local/bin:/usr/bin:/bin",
    HOME = home,
    TMPDIR = home,
    R_USER = home,
    R_LIBS = paste(.libPaths(), collapse = ":"),
    R_LIBS_USER = file.path(home, ".no-user-library"),
    SECURER_DLL = dll,
    SECURER_TOKEN = paste(as.character(token), collapse = ""),
    SECURER_MAX_FRAME = format(max_frame, scientific = FALSE)
  )
}

launch_spec_json <- function(opts, token, dir, zygote = FALSE) {
  sandbox <- opts$sandbox
  native <- !is.null(sandbox) && identical(sandbox$backend, "linux-native")
  home <- if (native) "/tmp" else dir
  env <- child_env(home, token, opts$max_frame)
  # A zygote starts with a lower collection trigger than R's 350k cells:
  # R's heap keeps the pages of its highest point, which every forked
  # session copies at its first full collection (the runtime unsets it).
  if (zygote) env[c("SECURER_ZYGOTE", "R_NSIZE")] <- c("1", "200000")
  # A "none" configuration (build_sandbox_fallback() off Linux) asks for
  # limits and a clean environment only.
  policy <- if (!is.null(sandbox) && !identical(sandbox$backend, "none")) {
    sandbox_policy_spec(sandbox, strict = opts$strict, fallback_tmp = dir)
  }
  if (zygote && !is.null(policy)) policy$zygote <- TRUE
  spec <- list(
    program = r_binary(),
    args = I(c(
      "--no-echo", "--no-restore", "--no-save", "--no-site-file",
      "--no-init-file", "--no-environ",
      paste0("--file=", child_runtime_path())
    )),
    env = unname(Map(function(k, v) I(c(k, v)), names(env), env)),
    cwd = home,
    ipc_fd = 3L,
    limits = limits_spec(if (zygote) list() else opts$limits),
    sandbox = policy
  )
  jsonlite::toJSON(spec, auto_unbox = TRUE, null = "null", digits = NA)
}

# Starts a child without waiting for it: with the native Linux sandbox it
# is forked from a warm zygote (see zygote.R); otherwise, or when no zygote
# can run, it is launched cold. child_setup() waits until it is ready.
child_spawn <- function(opts) {
  reap_abandoned()
  if (zygote_wanted(opts)) {
    child <- zygote_fork(opts)
    if (!is.null(child)) {
      return(child)
    }
  }
  child_launch(opts)
}

# Waits until the child has said hello, then sends its set-up (tools,
# classes). Does nothing for a child that is ready already.
child_setup <- function(child, opts) {
  if (isTRUE(child$ready)) {
    return(invisible(child))
  }
  child_wait_ready(child, opts$start_timeout, opts$strict)
  classes <- allowed_classes()
  if (!is.null(getOption("securer.allowed_classes"))) {
    rs_check(rs_set_allowed_classes(child$handle, classes), "Cannot set the classes allowed from the child.")
  }
  setup <- list(
    tools = tool_specs(opts$tools), max_frame = opts$max_frame,
    classes = classes
  )
  child_send(child, "setup", setup, opts$start_timeout)
  child$ready <- TRUE
  invisible(child)
}

new_child <- function(handle, dir) {
  child <- new.env(parent = emptyenv())
  child$handle <- handle
  child$dir <- dir
  child$pid <- rs_pid(handle)
  child$layers <- NULL
  child$ready <- FALSE
  # The output limit last given to its pump.
  child$output_limit <- NULL
  child
}

# A cold start through the launcher. With `zygote = TRUE` the child becomes
# a warm zygote: it says hello, then waits for fork requests.
# A session's own folder on the host (its home without a sandbox, or in
# the fallback tier), removed with the session.
session_dir <- function() {
  dir <- tempfile("securer-")
  dir.create(dir, mode = "0700")
  dir
}

child_launch <- function(opts, zygote = FALSE) {
  token <- rs_check(rs_random_token(), "Cannot make a session token.")
  dir <- session_dir()
  json <- launch_spec_json(opts, token, dir, zygote)
  handle <- rs_spawn(launcher_path(), json, token, opts$max_frame)
  if (inherits(handle, "securer_rs_error")) unlink(dir, recursive = TRUE)
  rs_check(handle, "Cannot start the child R process.")
  new_child(handle, dir)
}

child_wait_ready <- function(child, timeout, strict = FALSE) {
  deadline <- now() + timeout
  lines <- character()
  repeat {
    left <- deadline - now()
    if (left <= 0) {
      securer_abort(
        c(
          "The child R process did not start within {timeout} seconds.",
          i = "The machine may be overloaded; try again or raise {.code options(securer.start_timeout = )}."
        ),
        class = "securer_child_error"
      )
    }
    ev <- rs_check(rs_next_event(child$handle, min(100, left * 1000)), "Lost the child R process while it started.")
    if (is.null(ev)) next
    switch(ev$type,
      output = lines <- utils::tail(c(lines, ev$lines), 20L),
      ready = {
        # A list of columns; a data frame only when someone asks (see
        # session_sandbox_info()): as.data.frame() costs a tenth of a start.
        child$layers <- ev$layers
        return(invisible(child))
      },
      launch_failed = securer_abort(
        c(
          "The sandbox could not be set up: the {.field {ev$layer}} layer failed.",
          x = "{ev$message}",
          i = if (isTRUE(strict)) "With {.code sandbox_strict = FALSE} securer runs with the layers that can be applied, and warns." else "See {.code vignette(\"deployment\", package = \"securer\")} for what each layer needs."
        ),
        class = "securer_sandbox_error",
        layer = ev$layer
      ),
      exited = {
        # R refuses to start below about 167 open files (60% of them must
        # cover its 100 DLL slots).
        if (any(grepl("limit on the number of open files is too low", lines, fixed = TRUE))) {
          securer_abort(
            c(
              "The child R process cannot start: the open files limit is too low for R.",
              i = "R needs at least 167; raise it with {.code limits = list(nofile = ...)}."
            ),
            class = c("securer_limit_error", "securer_child_error"), limit = "nofile"
          )
        }
        report <- rs_launch_report(child$handle)
        layers <- if (nzchar(report)) jsonlite::fromJSON(report)$layers
        root <- if (is.data.frame(layers)) layers$detail[layers$layer == "root"]
        securer_abort(
          c(
            "The child R process exited while starting (status {ev$code}, signal {ev$signal}).",
            if (length(lines)) c(i = "Its last output:", stats::setNames(cli_escape(lines), rep(" ", length(lines)))),
            if (length(root)) c(i = "Its sandbox root: {root}")
          ),
          class = "securer_child_error"
        )
      },
      protocol_error = securer_abort(
        c("The child R process broke the protocol while starting.", x = "{ev$message}"),
        class = "securer_ipc_error"
      )
    )
  }
}

# S3 classes a value from the sandbox may carry: the Rust defaults (classes
# whose methods only format data) and the user's additions. The host
# dispatches on a class when it prints a value, so a class is not just data.
allowed_classes <- function() {
  extra <- getOption("securer.allowed_classes")
  if (!is.null(extra) && (!is.character(extra) || anyNA(extra))) {
    securer_abort("{.code options(securer.allowed_classes)} must be a character vector.",
      class = "securer_input_error"
    )
  }
  the$default_classes <- the$default_classes %||% rs_default_allowed_classes()
  union(the$default_classes, extra)
}

# The wire protocol's constants (rs_protocol()), read from Rust once.
protocol <- function() {
  if (is.null(the$protocol)) the$protocol <- rs_protocol()
  the$protocol
}

# Bytes of output one execution stores; later output is dropped behind one
# marker line.
output_limit <- function() {
  # (getOption()'s default argument builds the whole options() list.)
  limit <- getOption("securer.max_output_bytes") %||% protocol()$max_output_bytes
  check_number(limit, arg = "options(securer.max_output_bytes)", allow_inf = TRUE)
  limit
}

# Gives the child's pump the output limit for the next execution (a call
# into Rust only when it changed).
child_set_output_limit <- function(child, limit) {
  if (!identical(child$output_limit, limit)) {
    rs_check(rs_set_output_limit(child$handle, limit), "Cannot set the output limit.")
    child$output_limit <- limit
  }
  invisible()
}

child_send <- function(child, kind, value, timeout) {
  bytes <- serialize(value, NULL, xdr = FALSE)
  rs_check(rs_send(child$handle, kind, bytes, timeout * 1000), "Cannot send to the child R process.")
  invisible()
}

child_alive <- function(child) {
  !is.null(child) && rs_alive(child$handle)
}

# After a failure on the host while the child works on a request (an error
# in a handler, a tool or the host's own code, an interrupt): interrupts the
# child and drains its events until it is idle again, answering its tool
# calls with the error `why`. TRUE when the child is back in step within
# `grace` seconds; FALSE when it must be replaced. The signal is repeated:
# one that reaches the child before it has read the request is dropped by
# the child runtime as stale.
child_resync <- function(child, why = "interrupted", grace = 2) {
  if (is.null(child)) {
    return(FALSE)
  }
  handle <- child$handle
  working <- c("busy", "tool_call")
  deadline <- now() + grace
  while (rs_state(handle) %in% working && now() < deadline) {
    if (identical(rs_state(handle), "tool_call")) {
      rs_send(handle, "tool_error", serialize(why, NULL, xdr = FALSE), 1000)
    }
    rs_signal(handle, 2L)
    # Output and the abandoned request's reply are dropped.
    rs_next_event(handle, 200)
  }
  identical(rs_state(handle), "idle")
}

# Stops a session's child: a forked sandboxed session is only signalled
# (its zygote reaps it, and it has no folder on the host: its namespaces
# take milliseconds to go, which close() need not wait for); a child with
# a folder on the host is waited for, then its folder removed.
child_stop <- function(child) child_release(child)

# Kills a child without waiting for it to die: reap_abandoned() reaps it
# and removes its folder, at the next start or close of a session, when
# the zygotes are stopped, or from the later event loop.
child_abandon <- function(child) {
  if (is.null(child)) {
    return(invisible())
  }
  rs_signal(child$handle, 9L)
  if (!length(the$abandoned)) later::later(reap_abandoned, 0.1)
  the$abandoned <- c(the$abandoned, list(child))
  invisible()
}

reap_abandoned <- function() {
  children <- the$abandoned
  the$abandoned <- list()
  for (child in children) child_release(child)
  invisible()
}

# Kills a child and removes its folder (once the child is gone, waiting at
# most a moment).
child_release <- function(child) {
  if (is.null(child)) {
    return(invisible())
  }
  rs_kill(child$handle, length(child$dir) > 0L)
  if (length(child$dir)) {
    # Stopping never fails (it runs in finalizers too): a folder that could
    # not be removed whole is worth a warning.
    err <- rs_remove_tree(child$dir)
    if (inherits(err, "securer_rs_error")) {
      msg <- err$message
      cli::cli_warn(c("Part of a session's folder was left behind.", x = "{msg}"),
        class = c("securer_cleanup_warning", "securer_warning")
      )
    }
  }
  invisible()
}

# The largest message accepted from the child, in bytes: the option,
# clamped by the one rule in Rust (unset: the default).
max_frame_option <- function() {
  max <- getOption("securer.max_message_size")
  if (!is.null(max)) check_number(max, arg = "options(securer.max_message_size)")
  rs_frame_limit(max)
}
