# Serving the child's tool calls: the call is checked (known tool, declared
# arguments of the declared types, the per-execution maximum), the tool's
# function runs on the host, and its value or error goes back to the child.

serve_tool_event <- function(private, run, ev, wait_ms) {
  # The first call of a quick execution or of a batch's piece came with
  # the first event, which is read without the tools.
  if (ev$type == "tool_call" && !isTRUE(ev[["ready"]]) && !is.null(private$ready_tools)) {
    ev <- rs_ready_call(ev$payload, the$null_bytes, private$ready_tools) %||% ev
  }
  if (isTRUE(ev[["ready"]])) {
    serve_ready_calls(private, run, ev, wait_ms)
  } else if (ev$type == "refused") {
    reply_tool_error(private, run, paste0("The tool call was refused: ", ev$message))
  } else {
    serve_tool_call(private, run, ev$payload)
  }
}

reply_tool_error <- function(private, run, message) {
  child_send(private$child, "tool_error", message, max(1, run$deadline - now()))
}

serve_tool_call <- function(private, run, payload) {
  call <- unserialize(payload)
  if (!is.list(call)) call <- list()
  name <- call[["name"]]
  args <- call[["args"]]
  if (!is.character(name) || length(name) != 1L || is.na(name) || !is.list(args)) {
    return(reply_tool_error(private, run, "Malformed tool call."))
  }
  fn <- private$tool_fns[[name]]
  if (is.null(fn)) {
    return(reply_tool_error(private, run, sprintf("Unknown tool '%s'.", name)))
  }
  problem <- tool_args_problem(name, args, private$tool_args[[name]])
  if (!is.null(problem)) {
    return(reply_tool_error(private, run, problem))
  }
  run$tool_calls <- run$tool_calls + 1L
  if (!is.null(run$max_tool_calls) && run$tool_calls > run$max_tool_calls) {
    return(reply_tool_error(private, run, too_many_calls(run)))
  }
  logger <- private$logger
  if (logger$on) {
    log_event(logger, "tool_call", paste("Tool call:", describe_call(name, args)),
      tool = name, args = lapply(args, function(a) if (is.atomic(a) && length(a) <= 10L) a else class(a))
    )
  }
  started <- if (logger$on) now()
  res <- run_tool(name, fn, args)
  if (logger$on) {
    secs <- round(now() - started, 4)
    log_event(logger, "tool_result",
      if (res$ok) {
        sprintf("Tool result: %s -> %s (%ss)", name, describe_arg(res$value), format(secs))
      } else {
        sprintf("Tool failed: %s: %s (%ss)", name, res$message, format(secs))
      },
      tool = name, ok = res$ok, duration = secs, error = res$message
    )
  }
  if (!res$ok) {
    return(reply_tool_error(private, run, sprintf("Tool '%s' failed: %s", name, res$message)))
  }
  send_tool_value(private, run, name, res$value)
}

# Sends tool `name`'s value to the child.
send_tool_value <- function(private, run, name, value) {
  timeout_ms <- max(1, run$deadline - now()) * 1000
  # Plain data is written, checked and sent in Rust; anything else is
  # serialized here, and refused with the checker's reason.
  sent <- rs_send_plain(
    private$child$handle, "tool_result", value, the$null_bytes, private$opts$max_frame, timeout_ms
  )
  if (!isFALSE(sent)) {
    rs_check(sent, "Cannot send the tool result to the child.")
    return(invisible())
  }
  bytes <- serialize(value, NULL, xdr = FALSE)
  # Into the sandbox any class may go: only sandboxed code dispatches on it.
  refused <- rs_check_value(bytes, private$opts$max_frame, NULL)
  if (!is.null(refused)) {
    return(reply_tool_error(private, run, sprintf(
      "Tool '%s' returned a value that cannot be sent into the sandbox: %s", name, refused$message
    )))
  }
  rs_check(
    rs_send(private$child$handle, "tool_result", bytes, timeout_ms),
    "Cannot send the tool result to the child."
  )
  invisible()
}

# Calls that Rust read and checked already (rs_next_step(): a known tool,
# declared arguments of the declared types; no log to write), served one
# after another for `wait_ms` at most under one tryCatch(), which would
# cost as much as the rest of a call: until the next event is anything
# else (left for execution_step() in run$pending), nothing comes in time
# or the deadline passes. run$serving names the tool running, whose error
# goes back to the child; any other error is the host's.
serve_ready_calls <- function(private, run, ev, wait_ms) {
  until <- now() + wait_ms / 1000
  while (!is.null(ev)) {
    ev <- tryCatch(serve_ready_loop(private, run, ev, until), error = function(e) {
      name <- run$serving
      if (is.null(name)) stop(e)
      run$serving <- NULL
      reply_tool_error(private, run, sprintf("Tool '%s' failed: %s", name, conditionMessage(e)))
      next_ready_call(private, run, until)
    })
  }
  invisible()
}

serve_ready_loop <- function(private, run, ev, until) {
  fns <- private$tool_fns
  while (!is.null(ev)) {
    name <- ev$name
    run$tool_calls <- run$tool_calls + 1L
    if (!is.null(run$max_tool_calls) && run$tool_calls > run$max_tool_calls) {
      reply_tool_error(private, run, too_many_calls(run))
    } else {
      run$serving <- name
      # The arguments are plain values, which evaluate to themselves: no
      # quoting needed.
      value <- do.call(fns[[name]], ev$args)
      run$serving <- NULL
      send_tool_value(private, run, name, value)
    }
    ev <- next_ready_call(private, run, until)
  }
  NULL
}

# The next event when it is a ready call (see serve_ready_calls()); any
# other is kept in run$pending.
next_ready_call <- function(private, run, until) {
  wait <- min(until, run$deadline) - now()
  if (wait < 0) {
    return(NULL)
  }
  ev <- rs_check(
    rs_next_step(private$child$handle, wait * 1000, the$null_bytes, private$ready_tools),
    "Lost the child R process."
  )
  if (isTRUE(ev[["ready"]])) {
    return(ev)
  }
  run$pending <- ev
  NULL
}

too_many_calls <- function(run) {
  sprintf("Maximum tool calls (%d) exceeded for this execution.", as.integer(run$max_tool_calls))
}

# Why the arguments of a call of tool `name` are not acceptable, or NULL.
tool_args_problem <- function(name, args, types) {
  arg_names <- names(args)
  if (length(args) && (is.null(arg_names) || !all(arg_names %in% names(types)))) {
    bad <- setdiff(arg_names, names(types))
    return(sprintf(
      "Tool '%s' does not take argument%s %s.", name,
      if (length(bad) == 1L) "" else "s", paste0("'", bad, "'", collapse = ", ")
    ))
  }
  for (a in arg_names) {
    if (!tool_type_ok(args[[a]], types[[a]])) {
      return(sprintf("Tool '%s': argument '%s' must be %s.", name, a, types[[a]]))
    }
  }
  NULL
}

# Runs a tool's function: list(ok, value) or list(ok = FALSE, message). A
# function that leaves without returning (a condition that is not an
# error, a restart) still unwinds: the execution then settles the child
# (see execution_abandon()).
run_tool <- function(name, fn, args) {
  tryCatch(
    list(ok = TRUE, value = do.call(fn, args, quote = TRUE)),
    error = function(e) list(ok = FALSE, message = conditionMessage(e))
  )
}
