# Running one execution in a session: begin (check the request, send the
# code), step (handle one event from the child), read (turn the final
# event into a value or a classed error). `$execute()` is begin, steps
# until done, read; `$call()`, `$poll_process()` and `$read()` expose the
# same three to event loops (the pool, promises).
#
# Whatever happens on the host while an execution runs (an interrupt, an
# output_handler or audit log that fails, a tool that exits without
# returning), the session ends in a known state: the child answered
# (resynchronised) or was replaced, and the caller is told which. Replies
# carry the id of the request they answer, so a late reply can never be
# taken for the answer to a later call.

session_execute <- function(self, private, code, timeout, validate,
                            output_handler, max_tool_calls, max_code_length,
                            max_output_lines, plots) {
  if (execution_quick_begin(
    private, code, timeout, validate, output_handler, max_tool_calls,
    max_code_length, max_output_lines, plots
  )) {
    answered <- execution_quick_step(private, min(100, timeout * 1000))
  } else {
    execution_begin(
      private, code, timeout, validate, output_handler, max_tool_calls,
      max_code_length, max_output_lines, plots
    )
    answered <- FALSE
  }
  if (!answered) execution_wait(private)
  res <- execution_read(private)
  if (!is.null(res$error)) {
    stop(res$error)
  }
  if (isFALSE(res$visible)) invisible(res$value) else res$value
}

# The common execution in fewer steps. Most of a round trip's host time
# was R's own work spread over ~30 small steps: a request that needs none
# of the general machinery (no output handler, hook, log or limits, an
# idle child) is checked and sent in one (execution_quick_begin()), and
# its first event, when that is a plain result, is its answer
# (execution_quick_step()). Anything else goes on through the general
# machinery, which the quick steps leave in the state it expects.

# `$call()`: an execution started without waiting for it (event loops,
# a pool's batch), the common one in fewer steps.
execution_call <- function(private, code, timeout, validate, output_handler,
                           max_tool_calls, max_code_length, max_output_lines,
                           plots) {
  if (execution_quick_begin(
    private, code, timeout, validate, output_handler, max_tool_calls,
    max_code_length, max_output_lines, plots,
    batch = TRUE
  )) {
    return(invisible())
  }
  execution_begin(
    private, code, timeout, validate, output_handler, max_tool_calls,
    max_code_length, max_output_lines, plots
  )
}

# Sends a request that needs nothing else (the arguments are
# execution_begin()'s); FALSE when the request is not such a one (nothing
# was sent: execution_begin() then checks it again and raises its
# errors). `batch`: started by `$call()`, whose caller (an event loop, a
# pool's batch) serves other sessions before it sends this one's next
# request.
execution_quick_begin <- function(private, code, timeout, validate, output_handler,
                                  max_tool_calls, max_code_length, max_output_lines,
                                  plots, batch = FALSE) {
  if (!is.null(output_handler) || !is.null(max_tool_calls) || !is.null(max_output_lines) ||
    !is.character(code) || length(code) != 1L || is.na(code) ||
    !is.numeric(timeout) || length(timeout) != 1L || is.na(timeout) || timeout <= 0 ||
    !is.numeric(max_code_length) || length(max_code_length) != 1L ||
    is.na(max_code_length) || !(isTRUE(validate) || isFALSE(validate)) ||
    private$state != "idle" || !is.null(private$hook) || private$logger$on ||
    !is.null(private$max_executions)) {
    return(FALSE)
  }
  code <- enc2utf8(code)
  # `$call()` raises a syntax error itself, as it always has: the host
  # parses first, and code that does not parse takes the general path.
  if (batch && validate &&
    (Encoding(code) == "bytes" || !validUTF8(code) || !is.null(parse_error(code)))) {
    return(FALSE)
  }
  settings <- execution_settings(private, plots)
  child_set_output_limit(private$child, settings$output_limit)
  started <- now()
  # Sent when the child is idle and alive and the code is UTF-8 text within
  # max_code_length: the request is the settings' template with the code
  # spliced in (securer_core::request).
  sent <- rs_check(
    rs_send_exec(
      private$child$handle, code,
      if (batch) settings$batch_template else settings$template,
      max_code_length, min(timeout, 30) * 1000
    ),
    "Cannot send to the child R process."
  )
  if (isFALSE(sent)) {
    return(FALSE)
  }
  # The rest is done while the child works.
  run <- new_run(timeout, NULL, NULL, NULL, started)
  run$plots_cfg <- settings$plots
  run$console_cap <- settings$console
  run$quick <- TRUE
  # Otherwise the syntax check is the child's own parse, which runs first
  # and marks a failure (see quick_syntax_error()).
  if (validate && !batch) run$code <- code
  # (idle -> busy: checked above.)
  private$state <- "busy"
  private$executions <- private$executions + 1L
  private$run <- run
  TRUE
}

# The first event of a quick execution, waiting at most `wait_ms`: TRUE
# when that event is a plain result (or the child's syntax error), which
# is then the run's answer for execution_read(); FALSE otherwise, the
# event kept for the general machinery. An interrupt or a lost child
# settles the execution as the general path settles it.
execution_quick_step <- function(private, wait_ms) {
  run <- private$run
  run$quick <- FALSE
  taken <- FALSE
  on.exit(if (!taken) execution_abandon(private))
  ev <- rs_check(
    rs_next_answer(private$child$handle, wait_ms, run$console_cap, the$null_bytes),
    "Lost the child R process."
  )
  taken <- TRUE
  quick_take(run, ev)
}

# A quick execution's first event `ev` (NULL: none yet): TRUE when it is
# the answer, FALSE when it is left for the general machinery. A plain
# result whose value is a vector was read in Rust ("answer"); others are
# unserialized here.
quick_take <- function(run, ev) {
  if (!is.null(ev) && ev$type == "answer") {
    a <- ev$answer
    run$answer <- list(
      value = a[["value"]], visible = a[["visible"]], error = NULL,
      output = no_lines, console = a[["console"]], plots = list()
    )
  } else if (!is.null(ev) && ev$type == "result") {
    run$answer <- quick_result(ev$payload, run$console_cap)
  } else if (!is.null(ev) && ev$type == "error" && !is.null(run$code)) {
    run$answer <- quick_syntax_error(run, ev$payload)
  }
  if (is.null(run$answer)) {
    run$pending <- ev
    return(FALSE)
  }
  run$final <- list(type = "answered")
  TRUE
}

# A session lent to a pool's batch (`$lend()`): the batch sends plain
# executions to the child itself (rs_batch_run()), as the quick path
# would, and reads their answers; the session counts as busy meanwhile.
# NULL when the session cannot take them (the conditions of
# execution_quick_begin()), else the lease: the child's handle, the
# request template, the transcript's cap, and give_back() to end the
# loan. give_back(done, console, in_flight) counts `done` executions
# answered, `console` being the last one's transcript; `in_flight` is the
# one still running, if any, as list(code, started, event): it becomes the
# session's quick execution, with its first event (NULL if none came yet),
# for $poll_process() and $read() to finish.
session_lend <- function(private, timeout, plots) {
  timeout <- check_timeout(timeout)
  if (private$state != "idle" || !is.null(private$hook) || private$logger$on ||
    !is.null(private$max_executions) || !child_alive(private$child) ||
    !identical(rs_state(private$child$handle), "idle")) {
    return(NULL)
  }
  settings <- execution_settings(private, plots)
  child_set_output_limit(private$child, settings$output_limit)
  # (idle -> busy: checked above.)
  private$state <- "busy"
  lent <- TRUE
  give_back <- function(done, console = NULL, in_flight = NULL) {
    if (!lent) {
      return(invisible())
    }
    lent <<- FALSE
    if (done > 0L) {
      private$executions <- private$executions + done
      private$output <- no_lines
      private$console <- console
      private$plots <- list()
    }
    if (is.null(in_flight)) {
      private$state <- "idle"
      return(invisible())
    }
    run <- new_run(timeout, NULL, NULL, NULL, in_flight$started)
    run$plots_cfg <- settings$plots
    run$console_cap <- settings$console
    run$code <- in_flight$code
    private$executions <- private$executions + 1L
    private$run <- run
    if (is.null(in_flight$event)) run$quick <- TRUE else quick_take(run, in_flight$event)
    invisible()
  }
  list(
    handle = private$child$handle, template = settings$batch_template,
    console_cap = settings$console, give_back = give_back
  )
}

# An error that came first, for a request whose syntax the host was to
# check: when the child marks it as its parse's and the host's own parse
# fails too, it is the syntax error execution_begin() raises, with the
# host's message, and the execution did not happen (see quick_read()).
# The mark alone is not trusted: otherwise (NULL) the error is the
# child's.
quick_syntax_error <- function(run, payload) {
  cond <- unserialize(payload)
  err <- if (is.list(cond) && isTRUE(cond[["syntax"]])) parse_error(run$code)
  if (is.null(err)) {
    return(NULL)
  }
  list(
    value = NULL, visible = TRUE,
    error = securer_error_cnd(syntax_error_message(), "securer_syntax_error"),
    output = no_lines, console = NULL, plots = list(), syntax = TRUE
  )
}

# A result that came first (no output, images or tool calls before it):
# NULL when it is anything but a plain value (malformed, refused, images
# left out), for execution_read()'s general steps to take. Names are
# matched exactly, as Rust's check of a pool's replies matches them
# (rvalue::check_reply()).
quick_result <- function(payload, cap) {
  res <- unserialize(payload)
  if (!is.list(res) || is.na(match("value", names(res))) ||
    is.na(match("visible", names(res))) || !is.null(res[["refused"]]) ||
    !identical(res[["plots_omitted"]], 0L)) {
    return(NULL)
  }
  list(
    value = res[["value"]], visible = !isFALSE(res[["visible"]]), error = NULL,
    output = no_lines, console = console_text(res[["console"]], cap), plots = list()
  )
}

# The answer of a quick execution; the session is idle again. A syntax
# error leaves the last execution's output, transcript and images, and is
# not counted.
quick_read <- function(private, answer) {
  private$run <- NULL
  if (isTRUE(answer$syntax)) {
    answer$syntax <- NULL
    private$executions <- private$executions - 1L
  } else {
    private$output <- no_lines
    private$console <- answer$console
    private$plots <- list()
  }
  # (busy -> idle: always a transition session_set_state() allows.)
  private$state <- "idle"
  answer
}

no_lines <- character()

# Checks the request and sends the code; the session becomes busy.
execution_begin <- function(private, code, timeout, validate, output_handler,
                            max_tool_calls, max_code_length,
                            max_output_lines, plots = NULL) {
  code <- check_code(code)
  settings <- execution_settings(private, plots)
  timeout <- check_timeout(timeout)
  check_flag(validate)
  check_count(max_tool_calls, allow_null = TRUE)
  check_number(max_code_length, allow_inf = TRUE)
  check_count(max_output_lines, allow_null = TRUE)
  if (!is.null(output_handler) && !is.function(output_handler)) {
    securer_abort("{.arg output_handler} must be a function or {.code NULL}.",
      class = "securer_input_error"
    )
  }
  if (private$state == "busy") {
    securer_abort(
      c(
        "This session is already executing code.",
        i = "Wait for it to finish, or use another session (see {.cls SecureSessionPool})."
      ),
      class = "securer_session_error"
    )
  }
  if (private$state == "closed") {
    securer_abort(
      c("This session is closed.", i = "Create a new session, or call {.code $restart()}."),
      class = "securer_session_error"
    )
  }
  n <- nchar(code, type = "chars")
  if (n > max_code_length) {
    securer_abort(
      "Code is {n} characters long, more than {.arg max_code_length} ({max_code_length}).",
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
      securer_abort(syntax_error_message(), class = "securer_syntax_error")
    }
  }
  if (!is.null(private$hook) && identical(private$hook(code), FALSE)) {
    securer_abort("Execution blocked by pre_execute_hook.",
      class = "securer_blocked_error"
    )
  }
  if (private$state == "starting" || !child_alive(private$child)) {
    session_await_child(private)
  }
  # A child still on an earlier request (left behind by a failure the
  # session could not settle) is brought back in step first, or replaced.
  if (!identical(rs_state(private$child$handle), "idle") &&
    !child_resync(private$child, "the host abandoned the request")) {
    session_replace_child(private, "out of step")
    session_await_child(private)
  }
  run <- new_run(timeout, output_handler, max_tool_calls, max_output_lines)
  run$plots_cfg <- settings$plots
  run$console_cap <- settings$console
  if (private$logger$on) log_event(private$logger, "execute_start", NULL, code = code)
  child_set_output_limit(private$child, settings$output_limit)
  request <- list(code = code, plots = run$plots_cfg, console = run$console_cap)
  child_send(private$child, "exec", request, min(timeout, 30))
  # From here on the child is working for this run.
  session_set_state(private, "busy")
  private$executions <- private$executions + 1L
  private$run <- run
  invisible()
}

# What a request takes from `plots` and the options (images, transcript,
# output limit), checked when one of them changes rather than on every
# execution: the key is their values.
execution_settings <- function(private, plots) {
  key <- list(
    plots, getOption("securer.plots"), getOption("securer.max_console_bytes"),
    getOption("securer.max_output_bytes")
  )
  if (identical(private$settings$key, key)) {
    return(private$settings)
  }
  max_frame <- private$opts$max_frame
  settings <- list(
    key = key,
    plots = plots_request(resolve_plots(plots), max_frame),
    console = console_cap(max_frame),
    output_limit = output_limit()
  )
  # An exec request without its code, for rs_send_exec(): `soon` tells the
  # child that the next request follows its reply at once (a loop of
  # $execute()), which a pool's batch does not say.
  template <- function(soon) {
    serialize(
      list(code = "", plots = settings$plots, console = settings$console, soon = soon),
      NULL,
      xdr = FALSE
    )
  }
  settings$template <- template(TRUE)
  settings$batch_template <- template(FALSE)
  private$settings <- settings
  settings
}

new_run <- function(timeout, output_handler, max_tool_calls, max_output_lines,
                    started = now()) {
  run <- new.env(parent = emptyenv())
  run$started <- started
  run$deadline <- run$started + timeout
  run$timeout <- timeout
  run$handler <- output_handler
  run$max_tool_calls <- max_tool_calls
  run$max_lines <- max_output_lines
  run$tool_calls <- 0L
  # Made when the first output arrives (most executions print nothing).
  run$output <- NULL
  run$truncated <- FALSE
  # The final event, once it is known.
  run$final <- NULL
  # An event taken by the unguarded first step that needs host code.
  run$pending <- NULL
  # For the audit log: "complete", "timeout" or "error", and the message.
  run$outcome <- "error"
  run$error <- NULL
  # Checked images (securer_plot objects), how many were left out (by the
  # child, or dropped here), and why images were refused.
  run$plots <- list()
  run$plots_dropped <- 0L
  run$plot_errors <- character()
  # The console transcript, once the final event brought it.
  run$console <- NULL
  run
}

# Blocks until the execution is done, keeping the host thread responsive
# (each wait is at most 100 ms, and Ctrl-C interrupts the child).
execution_wait <- function(private) {
  finished <- FALSE
  # A non-local exit that is not an error (a tool calling
  # `stop(<condition>)` or `invokeRestart("abort")`) unwinds through here:
  # the child must not be left one reply behind.
  on.exit(if (!finished) execution_abandon(private))
  # Most executions answer with their final event at once: taking it runs
  # no host code that can fail, so it needs no guard (a tryCatch() costs
  # as much as the rest of the round trip on the host).
  if (identical(execution_step(private, 100, final_only = TRUE), "done")) {
    finished <- TRUE
    return(invisible())
  }
  execution_guard(private, repeat {
    ev <- execution_step(private, 100)
    if (identical(ev, "done")) break
    # R polls for Ctrl-C only every ~1000 evaluations, which is many
    # seconds of idle 100 ms waits; Sys.sleep(0) takes a pending interrupt
    # now (only after a wait: it would slow down a stream of events).
    if (is.null(ev)) Sys.sleep(0)
  })
  finished <- TRUE
  invisible()
}

# Serves the execution for at most `timeout` ms: "ready", "timeout" or
# "nocall".
execution_poll <- function(private, timeout) {
  check_number(timeout, min = -1, allow_inf = TRUE)
  run <- private$run
  if (is.null(run)) {
    return("nocall")
  }
  if (isTRUE(run$quick) && execution_quick_step(private, 0)) {
    return("ready")
  }
  # The final event may be there already: taken without a guard (see
  # execution_wait()), which is most of the cost of a poll.
  first <- execution_step(private, 0, final_only = TRUE)
  if (identical(first, "done")) {
    return("ready")
  }
  # Nothing arrived, and no wait was asked for (an event loop polling
  # several sessions): no guard to set up either.
  if (is.null(first) && timeout <= 0) {
    return("timeout")
  }
  deadline <- now() + timeout / 1000
  finished <- FALSE
  on.exit(if (!finished) execution_abandon(private))
  execution_guard(private, repeat {
    ev <- execution_step(private, max(0, min(100, (deadline - now()) * 1000)))
    if (identical(ev, "done")) break
    if (now() >= deadline) break
  })
  finished <- TRUE
  if (is.null(run$final)) "timeout" else "ready"
}

# Runs `expr` (which pumps the execution); a host-side error or an
# interrupt ends the execution in a known state instead of unwinding.
execution_guard <- function(private, expr) {
  tryCatch(
    expr,
    interrupt = function(e) execution_interrupt(private),
    error = function(e) execution_fail(private, e)
  )
}

# One step: waits at most `wait_ms` for an event and handles it. NULL when
# nothing happened, "progress" when an event was handled, "done" once the
# final event is known (result, error, refused value, exit, protocol error,
# timeout).
#
# With `final_only`, an event that needs host code (output, a tool call) is
# kept for the next step instead of being handled: "pending" then.
execution_step <- function(private, wait_ms, final_only = FALSE) {
  run <- private$run
  if (is.null(run) || !is.null(run$final)) {
    return("done")
  }
  left <- run$deadline - now()
  ev <- run$pending
  if (is.null(ev)) {
    # Past the deadline, what already arrived still counts (the host
    # thread may have been busy elsewhere, e.g. with another pool
    # session); only a child with nothing to say has timed out.
    ev <- rs_check(
      rs_next_step(
        private$child$handle, if (left > 0) min(wait_ms, left * 1000) else 0,
        the$null_bytes, private$ready_tools
      ),
      "Lost the child R process."
    )
  } else {
    run$pending <- NULL
  }
  if (final_only && !is.null(ev) &&
    (ev$type == "output" || ev$type == "tool_call" || ev$type == "refused")) {
    run$pending <- ev
    return("pending")
  }
  late <- left <= 0
  if (is.null(ev)) {
    if (!late) {
      return(NULL)
    }
    ev <- list(type = "timeout")
  } else if (ev$type == "output") {
    add_output(run, ev$lines)
    if (!late) {
      return("progress")
    }
    ev <- list(type = "timeout")
  } else if (ev$type == "tool_call" || (ev$type == "refused" && ev$kind == "tool_call")) {
    if (!late) {
      serve_tool_event(private, run, ev, wait_ms)
      return("progress")
    }
    ev <- list(type = "timeout")
  } else if (ev$type == "plot") {
    receive_plot(run, ev$payload)
    if (!late) {
      return("progress")
    }
    ev <- list(type = "timeout")
  }
  run$final <- ev
  "done"
}

# The answer of a finished execution (NULL while it runs); the session is
# idle again afterwards (or starting, when its child had to be replaced).
execution_read <- function(private) {
  run <- private$run
  if (is.null(run) || is.null(run$final)) {
    return(NULL)
  }
  if (!is.null(run$answer)) {
    return(quick_read(private, run$answer))
  }
  private$run <- NULL
  on.exit(if (private$state == "busy") session_set_state(private, "idle"), add = TRUE)
  output <- lines_of(run$output)
  private$output <- output
  # The result also carries the child's console text and counts: any
  # surprise there is the execution's error, never the host's.
  res <- tryCatch(
    execution_outcome(private, run, run$final),
    error = function(e) list(value = NULL, visible = TRUE, error = e)
  )
  res$output <- output
  res$console <- run$console
  res$plots <- run$plots
  if (run$plots_dropped > 0L) attr(res$plots, "omitted") <- run$plots_dropped
  if (!is.null(attr(res$value, "plots", exact = TRUE))) attr(res$value, "plots") <- res$plots
  private$console <- res$console
  private$plots <- res$plots
  if (!is.null(res$error)) {
    res$error$console <- res$console
    res$error$plots <- res$plots
  }
  warn_refused_plots(run)
  if (private$logger$on) {
    # An audit log that cannot be written fails the execution, unless it
    # failed already (then the first error is the one to see).
    logged <- tryCatch(log_execution_end(private$logger, run), securer_audit_error = identity)
    if (inherits(logged, "error")) {
      if (is.null(res$error)) res$error <- logged else audit_warn(logged)
    }
  }
  res
}

# Ctrl-C on the host, or `$interrupt()`: stop the child's evaluation, wait
# briefly for it to answer, and replace it if it does not.
execution_interrupt <- function(private) {
  run <- private$run
  if (is.null(run) || !is.null(run$final)) {
    return(invisible())
  }
  recovery <- execution_resync(private, run, "interrupted")
  run$final <- list(type = "interrupted", recovery = recovery)
  invisible()
}

# A host-side error while the execution ran: the child is brought back in
# step, and the error becomes the execution's outcome.
execution_fail <- function(private, e) {
  run <- private$run
  if (is.null(run) || !is.null(run$final)) {
    stop(e)
  }
  recovery <- execution_resync(private, run, "the host failed while serving the execution")
  run$final <- list(type = "host_error", condition = e, recovery = recovery)
  invisible()
}

# An execution left behind by a non-local exit: settle it now.
execution_abandon <- function(private) {
  run <- private$run
  if (is.null(run)) {
    return(invisible())
  }
  if (is.null(run$final)) execution_resync(private, run, "the host stopped waiting")
  private$run <- NULL
  if (private$state == "busy") session_set_state(private, "idle")
  invisible()
}

# Brings the child back in step after a host-side failure or an interrupt
# (see child_resync()): "resynchronised", or "replaced" when it did not
# answer in time.
execution_resync <- function(private, run, why) {
  ok <- tryCatch(child_resync(private$child, why), error = function(e) FALSE)
  if (ok) {
    return("resynchronised")
  }
  session_replace_child(private, why)
  "replaced"
}

add_output <- function(run, lines) {
  if (run$truncated) {
    return(invisible())
  }
  if (!is.null(run$max_lines)) {
    room <- max(0, run$max_lines - (run$output$n %||% 0L))
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
  if (is.null(run$output)) run$output <- new_line_buffer()
  push_lines(run$output, lines)
  if (!is.null(run$handler)) {
    for (line in lines) run$handler(line)
  }
  invisible()
}

# A character buffer that grows by doubling, so that appending lines one
# event at a time costs linear time in all.
new_line_buffer <- function() {
  buf <- new.env(parent = emptyenv())
  buf$x <- character(64L)
  buf$n <- 0L
  buf
}

push_lines <- function(buf, lines) {
  k <- length(lines)
  if (k == 0L) {
    return(invisible())
  }
  need <- buf$n + k
  if (need > length(buf$x)) length(buf$x) <- max(need, 2L * length(buf$x))
  buf$x[(buf$n + 1L):need] <- lines
  buf$n <- need
  invisible()
}

lines_of <- function(buf) if (is.null(buf)) character() else buf$x[seq_len(buf$n)]

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
    # `error` is the original API's field; `message` is kept for readers
    # of earlier logs.
    log_event(logger, "execute_error",
      sprintf("Execution failed (%ss): %s", format(secs), run$error %||% "error"),
      duration = secs, error = run$error, message = run$error
    )
  )
}

`%||%` <- function(x, y) if (is.null(x)) y else x
