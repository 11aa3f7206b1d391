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
#' @examples
#' session <- SecureSession$new(sandbox = FALSE)
#' session$execute("x <- 21")
#' session$execute("x * 2")
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
    #' @param max_executions Maximum number of `$execute()` calls, or `NULL`.
    #' @param pre_execute_hook A function of the code string; returning
    #'   `FALSE` blocks the execution.
    #' @param verbose Print `[securer]` progress messages (suppressible
    #'   with [suppressMessages()]).
    #' @param audit_log Path of a JSON-lines audit log (created 0600), or
    #'   `NULL`.
    #' @param sanitize_errors Strip file paths, process ids and the host
    #'   name from error messages of the sandboxed code.
    initialize = function(tools = list(), sandbox = TRUE, limits = NULL,
                          sandbox_strict = FALSE, max_executions = NULL,
                          pre_execute_hook = NULL, verbose = FALSE,
                          audit_log = NULL, sanitize_errors = FALSE) {
      check_flag(sandbox_strict)
      check_number(max_executions, allow_null = TRUE)
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
        max_frame = getOption("securer.max_message_size", 8 * 1024^2),
        start_timeout = getOption("securer.start_timeout", 30)
      )
      if (zygote_wanted(private$opts)) {
        private$opts$zygote_key <- zygote_key(private$opts)
        private$opts$zygote_request <- zygote_request_json(private$opts)
      }
      private$tool_fns <- lapply(tools, function(t) t@fn)
      private$tool_args <- lapply(tools, function(t) t@args)
      private$max_executions <- max_executions
      private$hook <- pre_execute_hook
      private$logger <- new_logger(verbose, audit_log, sanitize_errors)
      private$start()
      log_event(private$logger, "session_start",
        sprintf(
          "Session started (sandbox=%s, pid=%s)",
          !is.null(private$opts$sandbox), private$child$pid
        ),
        sandbox = !is.null(private$opts$sandbox), pid = private$child$pid
      )
      invisible(self)
    },

    #' @description Run code in the child and return the value of its last
    #'   expression, with an `"output"` attribute holding the printed lines
    #'   (when the value can carry attributes; see `$last_output()`).
    #' @param code A single string of R code.
    #' @param timeout Seconds before the child is killed and replaced.
    #' @param validate Parse the code on the host first and refuse syntax
    #'   errors without sending anything.
    #' @param output_handler A function called with each output line as it
    #'   arrives.
    #' @param max_tool_calls Maximum tool calls in this execution, or `NULL`.
    #' @param max_code_length Longest code accepted, in characters.
    #' @param max_output_lines Lines of output kept, or `NULL` for all.
    execute = function(code, timeout = 30, validate = TRUE,
                       output_handler = NULL, max_tool_calls = NULL,
                       max_code_length = 100000, max_output_lines = NULL) {
      session_execute(
        self, private, code, timeout, validate, output_handler,
        max_tool_calls, max_code_length, max_output_lines
      )
    },

    #' @description Stop the child process and free its resources.
    close = function() {
      if (!private$closed) {
        child_stop(private$child)
        private$child <- NULL
        private$closed <- TRUE
        log_event(private$logger, "session_close", "Session closed")
      }
      invisible(self)
    },

    #' @description Whether the child process is running.
    is_alive = function() {
      !private$closed && child_alive(private$child)
    },

    #' @description Replace the child with a fresh one (empty global
    #'   environment, same tools and sandbox).
    restart = function() {
      if (private$busy) {
        securer_abort("Cannot restart a session while it is executing code.",
          class = "securer_session_error"
        )
      }
      child_stop(private$child)
      private$child <- NULL
      private$closed <- FALSE
      private$start()
      log_event(private$logger, "session_restart", "Session restarted",
        reason = "restart", pid = private$child$pid
      )
      invisible(self)
    },

    #' @description The session's tools, named by tool name.
    tools = function() private$opts$tools,

    #' @description Process id of the child (its launcher), or `NA`.
    pid = function() {
      if (is.null(private$child)) NA_integer_ else as.integer(private$child$pid)
    },

    #' @description The sandbox layers active in this session: a data frame
    #'   with `layer`, `active` and `detail` (why a layer is missing).
    sandbox_info = function() {
      layers <- private$child$layers
      if (is.null(layers)) {
        layers <- data.frame(layer = character(), active = logical(), detail = character())
      }
      layers
    },

    #' @description Output lines of the last execution.
    last_output = function() private$output,

    #' @description One-line description.
    #' @param ... Ignored.
    format = function(...) {
      state <- if (self$is_alive()) paste0("running, pid ", self$pid()) else "closed"
      sandbox <- if (is.null(private$opts$sandbox)) "off" else private$opts$sandbox$backend
      sprintf(
        "<SecureSession> %s; sandbox: %s; %d tool%s; %d execution%s",
        state, sandbox, length(private$opts$tools),
        if (length(private$opts$tools) == 1L) "" else "s",
        private$executions, if (private$executions == 1L) "" else "s"
      )
    },

    #' @description Print the session.
    #' @param ... Ignored.
    print = function(...) {
      cat(self$format(), "\n", sep = "")
      invisible(self)
    }
  ),
  private = list(
    opts = NULL,
    child = NULL,
    logger = NULL,
    tool_fns = NULL,
    tool_args = NULL,
    max_executions = NULL,
    hook = NULL,
    executions = 0L,
    busy = FALSE,
    closed = FALSE,
    output = character(),

    start = function() {
      private$child <- child_start(private$opts)
      warn_missing_layers(private$child$layers, private$opts$sandbox)
    },

    # Replaces a dead or stuck child; the session stays usable.
    replace_child = function(reason = "child died") {
      child_stop(private$child)
      private$child <- NULL
      private$start()
      log_event(private$logger, "session_restart",
        sprintf("Session restarted (%s)", reason),
        reason = reason, pid = private$child$pid
      )
    },

    finalize = function() {
      child_stop(private$child)
      private$child <- NULL
    }
  )
)

session_execute <- function(self, private, code, timeout, validate,
                            output_handler, max_tool_calls, max_code_length,
                            max_output_lines) {
  run <- execution_begin(
    private, code, timeout, validate, output_handler, max_tool_calls,
    max_code_length, max_output_lines
  )
  on.exit(private$busy <- FALSE, add = TRUE)
  outcome <- tryCatch(
    pump_execution(private, run),
    interrupt = function(e) {
      interrupt_execution(private, run)
      list(type = "interrupted")
    }
  )
  execution_end(private, run, outcome)
}

# Checks the request, marks the session busy and sends the code. Returns
# the run state that `execution_step()` advances.
execution_begin <- function(private, code, timeout, validate, output_handler,
                            max_tool_calls, max_code_length,
                            max_output_lines) {
  check_string(code)
  check_number(timeout, allow_inf = TRUE)
  check_flag(validate)
  check_number(max_tool_calls, allow_null = TRUE, min = -1)
  check_number(max_code_length)
  check_number(max_output_lines, allow_null = TRUE, min = -1)
  if (!is.null(output_handler) && !is.function(output_handler)) {
    securer_abort("{.arg output_handler} must be a function or {.code NULL}.",
      class = "securer_input_error"
    )
  }
  if (private$busy) {
    securer_abort(
      c(
        "This session is already executing code.",
        i = "Wait for it to finish, or use another session (see {.cls SecureSessionPool})."
      ),
      class = "securer_session_error"
    )
  }
  if (private$closed) {
    securer_abort(
      c("This session is closed.", i = "Create a new session, or call {.code $restart()}."),
      class = "securer_session_error"
    )
  }
  if (nchar(code, type = "chars") > max_code_length) {
    securer_abort(
      "Code is {nchar(code)} characters long, more than {.arg max_code_length} ({max_code_length}).",
      class = "securer_limit_error", limit = "code_length"
    )
  }
  if (!is.null(private$max_executions) && private$executions >= private$max_executions) {
    securer_abort(
      c(
        "Maximum executions ({private$max_executions}) reached for this session.",
        i = "Create a new session to run more code."
      ),
      class = "securer_limit_error", limit = "executions"
    )
  }
  if (validate) {
    err <- parse_error(code)
    if (!is.null(err)) {
      securer_abort(
        c("Syntax error in code; nothing was run.", x = "{err}"),
        class = "securer_syntax_error"
      )
    }
  }
  if (!is.null(private$hook) && identical(private$hook(code), FALSE)) {
    securer_abort("Execution blocked by pre_execute_hook.",
      class = "securer_blocked_error"
    )
  }
  if (is.null(private$child) || !rs_alive(private$child$handle)) {
    private$replace_child()
  }
  # Until the code is sent, any error (say, an audit log that cannot be
  # written) must not leave the session marked busy.
  sent <- FALSE
  on.exit(if (!sent) private$busy <- FALSE, add = TRUE)
  private$busy <- TRUE
  private$executions <- private$executions + 1L
  run <- new_run(timeout, output_handler, max_tool_calls, max_output_lines)
  logger <- private$logger
  if (logger$on) log_event(logger, "execute_start", NULL, code = code)
  child_send(private$child, kinds[["exec"]], code, min(timeout, 30))
  sent <- TRUE
  run
}

# The value of a finished run, or its classed error.
execution_end <- function(private, run, outcome) {
  on.exit(
    {
      private$busy <- FALSE
      if (private$logger$on) log_execution_end(private$logger, run)
    },
    add = TRUE
  )
  private$output <- run$output
  finish_execution(private, run, outcome, run$timeout)
}

new_run <- function(timeout, output_handler, max_tool_calls, max_output_lines) {
  run <- new.env(parent = emptyenv())
  run$deadline <- now() + timeout
  run$timeout <- timeout
  run$handler <- output_handler
  run$max_tool_calls <- max_tool_calls
  run$max_lines <- max_output_lines
  run$tool_calls <- 0L
  run$output <- character()
  run$truncated <- FALSE
  run$started <- now()
  run$outcome <- "error"
  run$error <- NULL
  run
}

log_execution_end <- function(logger, run) {
  secs <- round(now() - run$started, 3)
  switch(run$outcome,
    complete = log_event(logger, "execute_complete",
      sprintf("Execution complete (%ss)", format(secs)),
      duration = secs, tool_calls = run$tool_calls
    ),
    timeout = log_event(logger, "execute_timeout",
      sprintf("Execution timed out (%ss)", format(secs)),
      duration = secs
    ),
    log_event(logger, "execute_error",
      sprintf("Execution failed (%ss): %s", format(secs), run$error %||% "error"),
      duration = secs, message = run$error
    )
  )
}

`%||%` <- function(x, y) if (is.null(x)) y else x

add_output <- function(run, lines) {
  if (run$truncated) {
    return(invisible())
  }
  if (!is.null(run$max_lines)) {
    room <- max(0, run$max_lines - length(run$output))
    # The marker follows the last kept line, even when that line and the
    # first dropped one arrive together.
    if (length(lines) > room) {
      run$truncated <- TRUE
      lines <- c(
        lines[seq_len(room)],
        sprintf("[output truncated after %d lines]", as.integer(run$max_lines))
      )
    }
  }
  run$output <- c(run$output, lines)
  if (!is.null(run$handler)) {
    for (line in lines) run$handler(line)
  }
  invisible()
}

# One step of an execution: waits at most `wait_ms` for an event and
# handles it. Returns NULL when nothing happened, TRUE when an event was
# handled and the run goes on, else the run's final event (result, error,
# refused value, exit, protocol error or timeout).
execution_step <- function(private, run, wait_ms) {
  left <- run$deadline - now()
  # Past the deadline, what already arrived still counts (the host thread
  # may have been busy elsewhere, e.g. with another pool session); only
  # a child with nothing to say has timed out.
  ev <- rs_next_event(private$child$handle, if (left > 0) min(wait_ms, left * 1000) else 0)
  late <- left <= 0
  if (is.null(ev)) {
    return(if (late) list(type = "timeout"))
  }
  type <- ev$type
  if (type == "output") {
    add_output(run, ev$lines)
    return(if (late) list(type = "timeout") else TRUE)
  }
  if (late && (type == "tool_call" || type == "refused" && ev$kind == "tool_call")) {
    return(list(type = "timeout"))
  }
  if (type == "tool_call") {
    serve_tool_call(private, run, ev$payload)
    return(TRUE)
  }
  if (type == "refused" && ev$kind == "tool_call") {
    reply_tool_error(private, run, paste0("The tool call was refused: ", ev$message))
    return(TRUE)
  }
  ev
}

pump_execution <- function(private, run) {
  repeat {
    ev <- execution_step(private, run, 100)
    if (is.list(ev)) {
      return(ev)
    }
    # R polls for Ctrl-C only every ~1000 evaluations, which is many
    # seconds of idle 100 ms waits; Sys.sleep(0) takes a pending interrupt
    # now. (Only after a wait: it would slow down a stream of events.)
    if (is.null(ev)) Sys.sleep(0)
  }
}

reply_tool_error <- function(private, run, message) {
  child_send(private$child, kinds[["tool_error"]], message, max(1, run$deadline - now()))
}

serve_tool_call <- function(private, run, payload) {
  call <- unserialize(payload)
  if (!is.list(call)) call <- list()
  name <- call$name
  args <- call$args
  if (!is.character(name) || length(name) != 1L || is.na(name) || !is.list(args)) {
    return(reply_tool_error(private, run, "Malformed tool call."))
  }
  fn <- private$tool_fns[[name]]
  if (is.null(fn)) {
    return(reply_tool_error(private, run, sprintf("Unknown tool '%s'.", name)))
  }
  types <- private$tool_args[[name]]
  arg_names <- names(args)
  if (length(args) && (is.null(arg_names) || !all(arg_names %in% names(types)))) {
    bad <- setdiff(arg_names, names(types))
    return(reply_tool_error(private, run, sprintf(
      "Tool '%s' does not take argument%s %s.", name,
      if (length(bad) == 1L) "" else "s", paste0("'", bad, "'", collapse = ", ")
    )))
  }
  for (a in arg_names) {
    if (!tool_type_ok(args[[a]], types[[a]])) {
      return(reply_tool_error(private, run, sprintf(
        "Tool '%s': argument '%s' must be %s.", name, a, types[[a]]
      )))
    }
  }
  run$tool_calls <- run$tool_calls + 1L
  if (!is.null(run$max_tool_calls) && run$tool_calls > run$max_tool_calls) {
    return(reply_tool_error(private, run, sprintf(
      "Maximum tool calls (%d) exceeded for this execution.", as.integer(run$max_tool_calls)
    )))
  }
  logger <- private$logger
  if (logger$on) {
    log_event(logger, "tool_call", paste("Tool call:", describe_call(name, args)),
      tool = name, args = lapply(args, function(a) if (is.atomic(a) && length(a) <= 10L) a else class(a))
    )
    started <- now()
  }
  res <- tryCatch(
    list(ok = TRUE, value = do.call(fn, args, quote = TRUE)),
    error = function(e) list(ok = FALSE, message = conditionMessage(e))
  )
  if (logger$on) {
    log_event(logger, "tool_result", NULL,
      tool = name, ok = res$ok, duration = round(now() - started, 4),
      error = res$message
    )
  }
  if (!res$ok) {
    return(reply_tool_error(private, run, sprintf("Tool '%s' failed: %s", name, res$message)))
  }
  bytes <- serialize(res$value, NULL, xdr = FALSE)
  # Into the sandbox any class may go: only sandboxed code dispatches on it.
  refused <- rs_check_value(bytes, private$opts$max_frame, NULL)
  if (!is.null(refused)) {
    return(reply_tool_error(private, run, sprintf(
      "Tool '%s' returned a value that cannot be sent into the sandbox: %s", name, refused
    )))
  }
  err <- rs_send(private$child$handle, kinds[["tool_result"]], bytes, max(1, run$deadline - now()) * 1000)
  if (!is.null(err)) {
    securer_abort(c("Cannot send the tool result to the child.", x = "{err$message}"),
      class = "securer_ipc_error"
    )
  }
  invisible()
}

# Ctrl-C on the host: interrupt the child's evaluation, wait briefly for
# it to report back, and replace it if it does not.
interrupt_execution <- function(private, run) {
  child <- private$child
  if (is.null(child)) {
    return(invisible())
  }
  rs_signal(child$handle, 2L)
  grace <- now() + 2
  repeat {
    if (now() > grace) break
    ev <- rs_next_event(child$handle, 100)
    if (is.null(ev)) next
    if (ev$type == "output") next
    if (ev$type == "tool_call") {
      reply_tool_error(private, run, "interrupted")
      next
    }
    if (ev$type %in% c("result", "error", "refused")) {
      return(invisible())
    }
    break
  }
  private$replace_child()
  invisible()
}

finish_execution <- function(private, run, ev, timeout) {
  type <- ev$type
  if (type == "result") {
    res <- unserialize(ev$payload)
    if (!is.list(res) || !identical(names(res), c("value", "visible"))) {
      private$replace_child("malformed result")
      securer_abort("The child R process sent a malformed result and was replaced.",
        class = "securer_ipc_error"
      )
    }
    run$outcome <- "complete"
    value <- res$value
    if (length(run$output) && !is.null(value)) attr(value, "output") <- run$output
    if (isFALSE(res$visible)) {
      return(invisible(value))
    }
    return(value)
  }
  if (type == "error") {
    raise_child_error(private, run, unserialize(ev$payload))
  }
  if (type == "interrupted") {
    securer_abort(
      c("Execution interrupted.", i = "The session is still usable."),
      class = "securer_interrupt"
    )
  }
  if (type == "timeout") {
    run$outcome <- "timeout"
    private$replace_child("timeout")
    securer_abort(
      c(
        "Execution timed out after {timeout} seconds.",
        i = "The child was stopped and replaced; its global environment is empty again."
      ),
      class = "securer_timeout", output = run$output
    )
  }
  if (type == "refused") {
    securer_abort(
      c(
        "The sandboxed code's {ev$kind} cannot be returned to the host.",
        x = "{ev$message}",
        i = "Return plain data: vectors, lists, data frames, matrices."
      ),
      class = c("securer_value_error", "securer_ipc_error"), output = run$output
    )
  }
  if (type == "exited") {
    ev$limit <- child_exit_limit(private$child)
    private$replace_child()
    raise_child_exit(private, run, ev)
  }
  # protocol_error, or anything unexpected: the child cannot be trusted.
  private$replace_child()
  securer_abort(
    c("The child R process broke the IPC protocol and was replaced.", x = "{ev$message}"),
    class = "securer_ipc_error", output = run$output
  )
}

limit_patterns <- c(
  memory = "cannot allocate (vector|memory|buffer)|could not allocate memory|memory exhausted|bad_alloc",
  nofile = "[Tt]oo many open files",
  nproc = "cannot (fork|popen)|Resource temporarily unavailable",
  fsize = "[Ff]ile too large"
)

raise_child_error <- function(private, run, cond) {
  if (!is.list(cond) || !is.character(cond$message) || length(cond$message) != 1L) {
    cond <- list(message = "unknown error", call = NA_character_, class = "error")
  }
  msg <- cond$message
  if (private$logger$sanitize) msg <- sanitize_message(msg)
  run$error <- msg
  call <- if (is.character(cond$call) && length(cond$call) == 1L && !is.na(cond$call)) cond$call else NULL
  if ("interrupt" %in% cond$class) {
    securer_abort("Execution interrupted.", class = "securer_interrupt", output = run$output)
  }
  limits <- private$opts$limits
  for (lim in names(limit_patterns)) {
    if (grepl(limit_patterns[[lim]], msg)) {
      hit <- if (!is.null(limits[[lim]])) describe_limit(lim, limits[[lim]]) else lim
      securer_abort(
        c(
          "The sandboxed code hit the {hit} limit.",
          x = "{msg}",
          i = "Raise it with {.code limits = list({lim} = ...)} if the code needs more."
        ),
        class = c("securer_limit_error", "securer_child_error"),
        limit = lim, child_message = msg, child_call = call, output = run$output
      )
    }
  }
  securer_abort(
    c(
      "Error in the sandboxed code{if (!is.null(call)) paste0(' (in ', call, ')') else ''}.",
      x = "{msg}"
    ),
    class = "securer_child_error",
    child_message = msg, child_call = call, child_class = cond$class,
    output = run$output
  )
}

raise_child_exit <- function(private, run, ev) {
  sig <- ev$signal
  lim <- ev$limit %||% if (isTRUE(sig == 24)) "cpu" else if (isTRUE(sig == 25)) "fsize" else NULL
  if (!is.null(lim)) {
    hit <- describe_session_limit(lim, private$opts)
    setting <- limit_setting(lim)
    securer_abort(
      c(
        "The sandboxed code hit the {hit} limit and was stopped.",
        i = "The child was replaced; raise the limit with {.code {setting}} if needed."
      ),
      class = c("securer_limit_error", "securer_child_error"), limit = lim,
      output = run$output
    )
  }
  status <- if (!is.na(sig)) paste("signal", sig) else paste("status", ev$code)
  securer_abort(
    c(
      "The child R process died during execution ({status}).",
      i = "It was replaced with a fresh one; its global environment is empty again."
    ),
    class = "securer_child_error", output = run$output
  )
}


# The default (non-strict) mode runs with the layers that could be applied
# and says so once per R session and set of missing layers.
warn_missing_layers <- function(layers, sandbox) {
  if (is.null(sandbox) || is.null(layers) || nrow(layers) == 0L) {
    return(invisible())
  }
  missing <- layers[!layers$active & layers$layer != "limits", , drop = FALSE]
  if (nrow(missing) == 0L) {
    return(invisible())
  }
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
