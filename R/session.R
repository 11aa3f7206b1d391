#' A sandboxed R session with tool calls
#'
#' @description
#' A `SecureSession` owns one child R process, started through securer's
#' launcher inside the sandbox. Code sent with `$execute()` runs there; its
#' global environment persists between calls. Tools (see [securer_tool()])
#' appear in the child as ordinary functions; calling one runs the tool's
#' function on the host and hands its value back.
#'
#' @details
#' The child is stopped by `$close()`, when the session is garbage
#' collected, and when the host R process exits. A timeout or a crash of
#' the child replaces it with a fresh one, so the session keeps answering
#' (its global environment starts empty again).
#'
#' **What the code shows.** Besides the value, each execution brings back
#' its console transcript, rendered in the child: what R's console would
#' have shown (printed output and messages, warnings as the console formats
#' them, the printed value of the last expression, an error), so that
#' values that cannot cross the boundary, such as `summary(lm(...))`, can
#' still be seen (`$last_console()`). Pages drawn by the code come back as
#' PNG images (`$last_plots()`, and the `"plots"` attribute of the value;
#' see [plot_options()]).
#'
#' **Files.** `$upload()`, `$download()` and `$files()` move files between
#' the host and the session's writable space: its `/tmp` (with the native
#' sandbox) or its own folder (fallback tier, `sandbox = FALSE`), and the
#' writable folders granted by [build_sandbox_config()]. Relative paths in
#' the session start at that root, which is also the code's working
#' directory. Files are capped in size (`max_size`, or
#' `options(securer.max_file_size)`, 100 MiB by default). Errors are
#' classed: `securer_file_not_found_error`, `securer_file_path_error` (a
#' path outside the writable space), `securer_file_symlink_error` (a link
#' that leads out of it), `securer_file_size_error`, all
#' `securer_file_error`s. A download is written only at the path you name,
#' through a new file beside it renamed over it when complete: nothing the
#' session sends can make it write elsewhere.
#'
#' A session is always in one of four states, returned by `$get_state()`:
#' `"starting"` (a child is on its way), `"idle"`, `"busy"` (an execution
#' is running) and `"closed"`.
#'
#' **Low-level methods.** `$call()`, `$poll_process()`, `$read()` and
#' `$poll_fds()` run an execution without blocking, for event loops that
#' drive several sessions (as [SecureSessionPool] does): `$call()` sends the
#' code, `$poll_process()` serves the child (output, tool calls) until it
#' has answered or the wait is over, and `$read()` returns the answer
#' (`$read_async()` is a promise of it, for asynchronous code that needs the
#' visibility and the output as well as the value).
#'
#' @examplesIf .Platform$OS.type == "unix"
#' session <- SecureSession$new(sandbox = FALSE)
#' session$execute("x <- 21")
#' session$execute("x * 2")
#'
#' # The same without blocking
#' session$call("Sys.sleep(0.2); x + 1")
#' while (session$poll_process(100) != "ready") {
#'   # do other work here
#' }
#' session$read()$value
#'
#' # What the console shows, for values that cannot come back
#' try(session$execute("fit <- lm(mpg ~ wt, mtcars); summary(fit)"))
#' cat(session$last_console())
#'
#' # Files in and out
#' csv <- tempfile(fileext = ".csv")
#' write.csv(mtcars, csv, row.names = FALSE)
#' session$upload(csv, "cars.csv")
#' session$execute("d <- read.csv('cars.csv'); write.csv(head(d), 'top.csv')")
#' session$files()
#' out <- tempfile(fileext = ".csv")
#' session$download("top.csv", out)
#' nrow(read.csv(out))
#' session$close()
#' @export
SecureSession <- R6::R6Class(
  "SecureSession",
  cloneable = FALSE,
  public = list(
    #' @description Start a session.
    #' @param tools A list of [securer_tool()] objects.
    #' @param sandbox `TRUE` (the default) for the platform's sandbox,
    #'   `FALSE` for none, or a configuration from [build_sandbox_config()].
    #' @param limits Resource limits: `NULL` for [default_limits()], a named
    #'   list overriding some of them, or `list()` for none.
    #' @param sandbox_strict If `TRUE`, fail with a `securer_sandbox_error`
    #'   when a sandbox layer cannot be applied, instead of warning once and
    #'   running with the layers that could.
    #' @param max_executions Maximum number of `$execute()` calls (a whole
    #'   number), or `NULL` for no maximum.
    #' @param pre_execute_hook A function of the code string; returning
    #'   `FALSE` blocks the execution.
    #' @param verbose Print `[securer]` progress messages (suppressible
    #'   with [suppressMessages()]).
    #' @param audit_log Path of a JSON-lines audit log (a regular file,
    #'   created 0600 if missing), or `NULL`.
    #' @param sanitize_errors Strip file paths, process ids and the host
    #'   name from error messages of the sandboxed code.
    #' @param wait Wait until the child is ready. With `FALSE` the child
    #'   starts and `new()` returns at once; the first execution (or
    #'   `$await_ready()`) waits for it, so that many sessions can start at
    #'   the same time.
    initialize = function(tools = list(), sandbox = TRUE, limits = NULL,
                          sandbox_strict = FALSE, max_executions = NULL,
                          pre_execute_hook = NULL, verbose = FALSE,
                          audit_log = NULL, sanitize_errors = FALSE,
                          wait = TRUE) {
      session_init(
        self, private, tools, sandbox, limits, sandbox_strict,
        max_executions, pre_execute_hook, verbose, audit_log, sanitize_errors,
        wait
      )
    },

    #' @description Wait until the session's child is ready (after
    #'   `wait = FALSE`, or after a timeout replaced it). Errors as `new()`
    #'   does when it cannot start.
    await_ready = function() session_await_ready(private),

    #' @description Run code in the child and return the value of its last
    #'   expression, with an `"output"` attribute holding the printed lines
    #'   (when the value can carry attributes; see `$last_output()`).
    #' @param code A single string of R code (valid UTF-8).
    #' @param timeout Seconds before the child is stopped and replaced;
    #'   `NULL` or `Inf` for no timeout.
    #' @param validate Parse the code on the host first and refuse syntax
    #'   errors without sending anything.
    #' @param output_handler A function called with each output line as it
    #'   arrives. If it fails, the execution is stopped and its error raised.
    #' @param max_tool_calls Maximum tool calls in this execution, or `NULL`.
    #' @param max_code_length Longest code accepted, in characters.
    #' @param max_output_lines Lines of output kept, or `NULL` for all (the
    #'   total is still capped in bytes, see `options(securer.max_output_bytes)`).
    #' @param plots Images of what the code draws: [plot_options()], `TRUE`
    #'   for the defaults, `FALSE` for none, or `NULL` for
    #'   `getOption("securer.plots", TRUE)`. They come back in the `"plots"`
    #'   attribute and from `$last_plots()`.
    execute = function(code, timeout = 30, validate = TRUE,
                       output_handler = NULL, max_tool_calls = NULL,
                       max_code_length = 100000, max_output_lines = NULL,
                       plots = NULL) {
      session_execute(
        self, private, code, timeout, validate, output_handler,
        max_tool_calls, max_code_length, max_output_lines, plots
      )
    },

    #' @description Run code without blocking: returns a promise (package
    #'   promises) of the value, settled through the later event loop when
    #'   the child answers (the host thread is free meanwhile), so it works
    #'   in Shiny (`ExtendedTask`), plumber and with ellmer's async chats.
    #' @param code,timeout,validate,output_handler,max_tool_calls,max_code_length,max_output_lines,plots
    #'   As for `$execute()`.
    execute_async = function(code, timeout = 30, validate = TRUE,
                             output_handler = NULL, max_tool_calls = NULL,
                             max_code_length = 100000,
                             max_output_lines = NULL, plots = NULL) {
      session_execute_async(
        private, code, timeout, validate, output_handler, max_tool_calls,
        max_code_length, max_output_lines, plots
      )
    },

    #' @description Start an execution without waiting for it (low level).
    #' @param code,timeout,validate,output_handler,max_tool_calls,max_code_length,max_output_lines,plots
    #'   As for `$execute()`.
    call = function(code, timeout = 30, validate = TRUE, output_handler = NULL,
                    max_tool_calls = NULL, max_code_length = 100000,
                    max_output_lines = NULL, plots = NULL) {
      execution_call(
        private, code, timeout, validate, output_handler, max_tool_calls,
        max_code_length, max_output_lines, plots
      )
    },

    #' @description Lend the child to a pool's batch (low level; used by
    #'   `SecureSessionPool$execute_many()`), which then sends it plain
    #'   executions itself. `NULL` when the session cannot take them (it is
    #'   not idle, or has a `pre_execute_hook`, an audit log or a
    #'   `max_executions`); otherwise the session is busy until the lease's
    #'   `give_back()` is called, and its last execution, if still running,
    #'   is then finished through `$poll_process()` and `$read()`.
    #' @param timeout,plots As for `$execute()`.
    lend = function(timeout = 30, plots = NULL) session_lend(private, timeout, plots),

    #' @description Serve the running execution for at most `timeout`
    #'   milliseconds (low level): `"ready"` once its answer can be read,
    #'   `"timeout"` before, `"nocall"` when no execution is running.
    #' @param timeout Milliseconds to wait; `0` only handles what is there.
    poll_process = function(timeout) execution_poll(private, timeout),

    #' @description The answer of the finished execution (low level):
    #'   `list(value, visible, error, output, console, plots)`, `error`
    #'   being the classed condition (a `securer_error`, which also carries
    #'   `console` and `plots`) or `NULL`, `console` the transcript (see
    #'   `$last_console()`) and `plots` a list of `securer_plot`s (an
    #'   attribute `"omitted"` counts images left out, if any); `NULL`
    #'   while it runs.
    read = function() execution_read(private),

    #' @description A promise (package promises) of what `$read()` returns,
    #'   settled through the later event loop once the execution started
    #'   by `$call()` has finished (low level): unlike `$execute_async()`,
    #'   it resolves with `list(value, visible, output, error)` even when
    #'   the code failed.
    read_async = function() session_read_async(private),

    #' @description Stop the running execution (low level): the child's
    #'   evaluation is interrupted, and the child replaced if it does not
    #'   stop within 2 seconds. `$read()` then returns a `securer_interrupt`.
    interrupt = function() execution_interrupt(private),

    #' @description File descriptors to watch for the child's next event
    #'   (low level, for [later::later_fd()]); empty when an event is
    #'   already waiting.
    poll_fds = function() session_poll_fds(private),

    #' @description The session's state: `"starting"`, `"idle"`, `"busy"`
    #'   or `"closed"`.
    get_state = function() private$state,

    #' @description Stop the child process and free its resources.
    close = function() session_close(private),

    #' @description Whether the child process is running.
    is_alive = function() session_is_alive(private),

    #' @description Replace the child with a fresh one (empty global
    #'   environment, same tools and sandbox).
    restart = function() session_restart(private),

    #' @description The session's tools, named by tool name.
    tools = function() private$opts$tools,

    #' @description Process id of the child (its launcher), or `NA`.
    pid = function() session_pid(private),

    #' @description The sandbox layers active in this session: a data frame
    #'   with `layer`, `active` and `detail` (why a layer is missing).
    sandbox_info = function() session_sandbox_info(private),

    #' @description Output lines of the last execution.
    last_output = function() private$output,

    #' @description The console transcript of the last execution: one
    #'   string with what R's console would have shown (printed output,
    #'   messages, warnings, the printed value of the last expression, an
    #'   error), rendered in the child and cleaned; at most
    #'   `options(securer.max_console_bytes)` (64 KiB; its first and last
    #'   halves with a marker between them past that). `NULL` when there is
    #'   none (the option is 0, or the child stopped before it answered).
    last_console = function() private$console,

    #' @description The images drawn by the last execution: a list of
    #'   `securer_plot` objects (see [plot_options()]).
    last_plots = function() private$plots,

    #' @description Copy a file from the host into the session's writable
    #'   space (see Details). Returns the path in the session, invisibly.
    #' @param path The file on the host.
    #' @param to Where it goes in the session: a path relative to the
    #'   session's root or an absolute one inside the writable space (a
    #'   folder there means the file's name in that folder); `NULL` for the
    #'   file's name in the root. An existing file is replaced; its folder
    #'   must exist.
    #' @param max_size Largest file, in bytes; `NULL` for
    #'   `getOption("securer.max_file_size")` (100 MiB).
    #' @param timeout Seconds to wait for the session at each step.
    upload = function(path, to = NULL, max_size = NULL, timeout = 60) {
      session_upload(private, path, to, max_size, timeout)
    },

    #' @description Copy a file from the session's writable space to the
    #'   host. Returns the path written, invisibly.
    #' @param from The file in the session (relative to its root, or
    #'   absolute inside the writable space). It must be a regular file; a
    #'   link is followed only while it stays inside the writable space.
    #' @param path Where to write it on the host; a folder means the file's
    #'   name in that folder.
    #' @param overwrite Replace an existing file at `path`.
    #' @param max_size,timeout As for `$upload()`.
    download = function(from, path, overwrite = TRUE, max_size = NULL, timeout = 60) {
      session_download(private, from, path, overwrite, max_size, timeout)
    },

    #' @description List files in the session's writable space: a data
    #'   frame with `path` (as the session sees it, usable in
    #'   `$download()`), `type` (`"file"`, `"directory"`, `"symlink"`,
    #'   `"other"`), `size` (bytes) and `modified`, sorted by path. Links
    #'   are listed, not followed.
    #' @param dir The folder; `NULL` for the session's root.
    #' @param recursive Also list the contents of subfolders.
    #' @param max_entries Most entries listed (a warning says when there
    #'   were more).
    #' @param timeout Seconds to wait for the session.
    files = function(dir = NULL, recursive = FALSE, max_entries = 10000, timeout = 60) {
      session_files(private, dir, recursive, max_entries, timeout)
    },

    #' @description One-line description.
    #' @param ... Ignored.
    format = function(...) session_format(self, private),

    #' @description Print the session.
    #' @param ... Ignored.
    print = function(...) {
      cat(self$format(), "\n", sep = "")
      invisible(self)
    }
  ),
  private = list(
    # What the session was created with (tools, sandbox, limits, ...).
    opts = NULL,
    # One of "starting", "idle", "busy", "closed"; see session_set_state().
    state = "starting",
    # The child process (see child.R), or NULL when none is running.
    child = NULL,
    # The execution in flight (see execution.R), or NULL.
    run = NULL,
    # Verbose messages and the audit log (see audit.R).
    logger = NULL,
    # Tool functions and argument types, by tool name; the types again
    # when Rust may read and check calls itself (see rs_next_step()), NULL
    # when every call goes through R (no tools, or a log to write).
    tool_fns = NULL,
    tool_args = NULL,
    ready_tools = NULL,
    max_executions = NULL,
    hook = NULL,
    executions = 0L,
    # The request settings of the last execution (execution_settings()).
    settings = NULL,
    # Output lines, console transcript and images of the last finished
    # execution.
    output = character(),
    console = NULL,
    plots = list(),
    finalize = function() session_drop_child(private)
  )
)

# States and the transitions allowed between them. Every change of
# `private$state` goes through session_set_state().
session_transitions <- list(
  starting = c("idle", "closed"),
  idle = c("busy", "starting", "closed"),
  busy = c("idle", "starting", "closed"),
  closed = "starting"
)

session_set_state <- function(private, to) {
  from <- private$state
  if (is.na(match(to, session_transitions[[from]]))) {
    stop(sprintf("securer internal error: session state %s -> %s", from, to))
  }
  private$state <- to
  invisible()
}

session_init <- function(self, private, tools, sandbox, limits, sandbox_strict,
                         max_executions, pre_execute_hook, verbose, audit_log,
                         sanitize_errors, wait) {
  check_session_platform()
  check_flag(sandbox_strict)
  check_flag(wait)
  check_count(max_executions, allow_null = TRUE, min = 1)
  if (!is.null(pre_execute_hook) && !is.function(pre_execute_hook)) {
    securer_abort("{.arg pre_execute_hook} must be a function or {.code NULL}.",
      class = "securer_input_error"
    )
  }
  tools <- validate_tools(tools)
  private$opts <- list(
    tools = tools,
    sandbox = as_sandbox_config(sandbox),
    limits = resolve_limits(limits),
    strict = sandbox_strict,
    max_frame = max_frame_option(),
    start_timeout = getOption("securer.start_timeout", 30)
  )
  if (zygote_wanted(private$opts)) {
    private$opts[c("zygote_key", "zygote_request")] <- zygote_json_of(private$opts)
  }
  private$tool_fns <- lapply(tools, function(t) t@fn)
  private$tool_args <- lapply(tools, function(t) t@args)
  private$max_executions <- max_executions
  private$hook <- pre_execute_hook
  private$logger <- new_logger(verbose, audit_log, sanitize_errors)
  if (length(tools) && !private$logger$on) private$ready_tools <- private$tool_args
  session_start_child(private)
  if (wait) session_await_child(private)
  sandboxed <- !is.null(private$opts$sandbox)
  log_event(private$logger, "session_start",
    sprintf("Session started (sandbox=%s, pid=%s)", sandboxed, private$child$pid),
    sandbox = sandboxed, pid = private$child$pid
  )
  invisible(self)
}

# Starts a child without waiting for it to be ready: the session is
# "starting" until session_await_child().
session_start_child <- function(private) {
  if (private$state != "starting") session_set_state(private, "starting")
  private$child <- child_spawn(private$opts)
  invisible()
}

# Waits until the session's child (started if there is none, or if it
# died) is ready. A child that cannot start is dropped; the session stays
# "starting", so the next execution tries again.
session_await_child <- function(private) {
  ok <- FALSE
  on.exit(if (!ok) session_drop_child(private))
  if (is.null(private$child) || !child_alive(private$child)) {
    session_drop_child(private)
    session_start_child(private)
  }
  child_setup(private$child, private$opts)
  warn_missing_layers(private$child$layers, private$opts$sandbox)
  session_set_state(private, "idle")
  ok <- TRUE
  invisible()
}

# The one place a child is stopped: close, restart, replacement, finalizer.
session_drop_child <- function(private) {
  child_stop(private$child)
  private$child <- NULL
  invisible()
}

# Replaces the child after a timeout, a crash or a reset, without keeping
# the caller waiting: the old one is killed but not waited for (see
# child_abandon()). The new one is forked at once from a running zygote;
# a cold one (which forks the host R process: tens of milliseconds a
# timeout would return later) starts when the event loop next runs, or
# with the next execution or `$is_alive()`, whichever comes first.
session_replace_child <- function(private, reason) {
  old_pid <- private$child$pid %||% NA_integer_
  child_abandon(private$child)
  private$child <- NULL
  if (private$state == "closed") {
    return(invisible())
  }
  if (private$state != "starting") session_set_state(private, "starting")
  if (zygote_ready(private$opts)) {
    # A fork request to a running zygote: a fraction of a millisecond.
    session_prestart(private)
  } else {
    later::later(function() session_prestart(private), 0)
  }
  log_event(private$logger, "session_restart",
    sprintf("Session restarted (%s)", reason),
    reason = reason, pid = old_pid
  )
  invisible()
}

# Starts the replacement child of a session that has none yet; an error
# is left for the next execution to report.
session_prestart <- function(private) {
  if (private$state == "starting" && is.null(private$child)) {
    tryCatch(session_start_child(private), securer_error = function(e) NULL)
  }
  invisible()
}

session_close <- function(private) {
  if (private$state == "closed") {
    return(invisible())
  }
  reap_abandoned()
  session_drop_child(private)
  private$run <- NULL
  session_set_state(private, "closed")
  # Closing never fails: a log that cannot be written is worth a warning.
  tryCatch(
    log_event(private$logger, "session_close", "Session closed"),
    securer_audit_error = audit_warn
  )
  invisible()
}

session_restart <- function(private) {
  if (private$state == "busy") {
    securer_abort("Cannot restart a session while it is executing code.",
      class = "securer_session_error"
    )
  }
  session_drop_child(private)
  if (private$state != "starting") session_set_state(private, "starting")
  session_await_child(private)
  log_event(private$logger, "session_restart", "Session restarted",
    reason = "restart", pid = private$child$pid
  )
  invisible()
}

session_await_ready <- function(private) {
  if (private$state == "closed") {
    securer_abort(
      c("This session is closed.", i = "Create a new session, or call {.code $restart()}."),
      class = "securer_session_error"
    )
  }
  if (private$state == "starting") session_await_child(private)
  invisible()
}

session_is_alive <- function(private) {
  # A replacement not started yet (see session_replace_child()) starts now.
  session_prestart(private)
  private$state != "closed" && child_alive(private$child)
}

session_pid <- function(private) {
  if (is.null(private$child)) NA_integer_ else as.integer(private$child$pid)
}

session_poll_fds <- function(private) {
  if (is.null(private$child)) integer() else rs_poll_fds(private$child$handle)
}

session_sandbox_info <- function(private) {
  layers <- private$child$layers
  if (is.null(layers)) {
    return(data.frame(layer = character(), active = logical(), detail = character()))
  }
  as.data.frame(layers, stringsAsFactors = FALSE)
}

session_format <- function(self, private) {
  state <- switch(private$state,
    closed = "closed",
    starting = "starting",
    paste0(if (private$state == "busy") "busy" else "running", ", pid ", self$pid())
  )
  sandbox <- if (is.null(private$opts$sandbox)) "off" else private$opts$sandbox$backend
  n_tools <- length(private$opts$tools)
  sprintf(
    "<SecureSession> %s; sandbox: %s; %d tool%s; %d execution%s",
    state, sandbox, n_tools, if (n_tools == 1L) "" else "s",
    private$executions, if (private$executions == 1L) "" else "s"
  )
}

# The sets of missing layers already warned about; `set` replaces them
# (tests of the "warns once" behaviour start afresh). Returns the old sets.
shown_layer_warnings <- function(set) {
  old <- the$warned
  if (!missing(set)) the$warned <- set
  invisible(old)
}

# The default (non-strict) mode runs with the layers that could be applied
# and says so once per R session and set of missing layers.
warn_missing_layers <- function(layers, sandbox) {
  if (is.null(sandbox) || is.null(layers) || all(layers$active | layers$layer == "limits")) {
    return(invisible())
  }
  missing <- as.data.frame(layers, stringsAsFactors = FALSE)
  missing <- missing[!missing$active & missing$layer != "limits", , drop = FALSE]
  key <- paste(missing$layer, collapse = ",")
  if (key %in% the$warned) {
    return(invisible())
  }
  the$warned <- c(the$warned, key)
  details <- cli_escape(paste0(missing$layer, ": ", missing$detail))
  cli::cli_warn(
    c(
      "Some sandbox layers are not active; running with the rest.",
      stats::setNames(details, rep("!", length(details))),
      i = "Use {.code sandbox_strict = TRUE} to fail instead. This warning is shown once per R session."
    ),
    class = c("securer_sandbox_warning", "securer_warning")
  )
}
