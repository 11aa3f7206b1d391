# The outcome of a finished execution: the final event from the child (or
# from the host: timeout, interrupt, host error) becomes the value, or a
# classed condition. Everything in these events that came from the child
# (messages, calls, classes) is untrusted text: cleaned and bounded by
# untrusted_text() before it reaches a condition, a log or a console.

execution_outcome <- function(private, run, ev) {
  switch(ev$type,
    result = result_outcome(private, run, ev),
    error = {
      cond <- unserialize(ev$payload)
      if (is.list(cond)) child_extras(run, cond)
      failed(child_error_cnd(private, run, cond))
    },
    interrupted = {
      failed(securer_error_cnd(
        c("Execution interrupted.", recovery_bullet(ev$recovery)),
        "securer_interrupt",
        output = lines_of(run$output)
      ))
    },
    timeout = {
      run$outcome <- "timeout"
      session_replace_child(private, "timeout")
      failed(securer_error_cnd(
        c(
          sprintf("Execution timed out after %s seconds.", format(run$timeout)),
          i = "The child was stopped and replaced; its global environment is empty again."
        ),
        "securer_timeout",
        output = lines_of(run$output)
      ))
    },
    refused = {
      if (identical(ev$kind, "result")) {
        return(failed(value_refused_cnd(run, ev$message, NULL, private$opts$max_frame)))
      }
      kind <- ev$kind
      msg <- untrusted_text(ev$message)
      run$error <- msg
      failed(securer_error_cnd(
        c(
          "The sandboxed code's {kind} cannot be returned to the host.",
          x = "{msg}",
          i = "Return plain data: vectors, lists, data frames, matrices."
        ),
        c("securer_value_error", "securer_ipc_error"),
        output = lines_of(run$output)
      ))
    },
    exited = {
      # Which session limit its supervisor stopped it for, if one did.
      ev$limit <- child_exit_limit(private$child)
      session_replace_child(private, "child died")
      failed(child_exit_cnd(private, run, ev))
    },
    host_error = failed(host_error_cnd(run, ev)),
    {
      # protocol_error, or anything unexpected: the child cannot be trusted.
      session_replace_child(private, "protocol error")
      msg <- untrusted_text(ev$message %||% ev$type)
      run$error <- msg
      failed(securer_error_cnd(
        c("The child R process broke the IPC protocol and was replaced.", x = "{msg}"),
        "securer_ipc_error",
        output = lines_of(run$output)
      ))
    }
  )
}

failed <- function(cnd) list(value = NULL, visible = TRUE, error = cnd)

result_outcome <- function(private, run, ev) {
  res <- unserialize(ev$payload)
  if (!is.list(res) || is.na(match("value", names(res))) || is.na(match("visible", names(res)))) {
    session_replace_child(private, "malformed result")
    return(failed(securer_error_cnd(
      "The child R process sent a malformed result and was replaced.",
      "securer_ipc_error"
    )))
  }
  child_extras(run, res)
  if (!is.null(res[["refused"]])) {
    return(failed(value_refused_cnd(run, res[["refused"]], res[["value_class"]], private$opts$max_frame)))
  }
  run$outcome <- "complete"
  value <- res[["value"]]
  output <- lines_of(run$output)
  if (!is.null(value)) {
    if (length(output)) attr(value, "output") <- output
    if (length(run$plots)) attr(value, "plots") <- run$plots
  }
  list(value = value, visible = !isFALSE(res[["visible"]]), error = NULL)
}

# What a result or error brings besides its value: the console transcript
# and how many images the child left out. Both are untrusted: cleaned and
# bounded. (Here and in what reads the child's lists, names are matched
# exactly, as Rust matches them: see quick_result().)
child_extras <- function(run, res) {
  run$console <- console_text(res[["console"]], run$console_cap)
  omitted <- res[["plots_omitted"]]
  if (is.numeric(omitted) && length(omitted) == 1L && !is.na(omitted) && omitted > 0) {
    run$plots_dropped <- run$plots_dropped + as.integer(min(omitted, 1e6))
  }
  invisible()
}

# The value of the last expression could not come back: the child's
# checker refused it (the same Rust checker the host runs), or it does not
# fit in a message. The message names why and what to return instead.
value_refused_cnd <- function(run, why, value_class, max_frame) {
  msg <- untrusted_text(why, max_chars = 2000)
  run$error <- msg
  cls <- if (is.character(value_class) && length(value_class)) {
    untrusted_classes(value_class)
  }
  what <- if (length(cls)) {
    paste0("an object of class ", paste0("\"", cls, "\"", collapse = "/"))
  } else {
    "the value of the last expression"
  }
  too_large <- grepl("exceeds limit of|above the .* limit", msg)
  cap <- format_bytes(max_frame)
  hints <- if (too_large) {
    c(i = "Return a summary or a part of it instead, or raise this session's cap ({cap}) with {.code options(securer.max_message_size = )} before creating the session.")
  } else {
    c(i = "Return plain data instead: {.code coef(fit)} or {.code broom::tidy(fit)} for a model, {.code as.data.frame(x)} for a table, {.code unclass(x)} or the parts you need for other objects.")
  }
  if (!is.null(run$console)) {
    hints <- c(hints, i = "What the console printed for it is in {.code $last_console()}.")
  }
  securer_error_cnd(
    c("The sandboxed code's result ({what}) cannot be returned to the host.", x = "{msg}", hints),
    c("securer_value_error", "securer_ipc_error"),
    output = lines_of(run$output), value_class = cls
  )
}

recovery_bullet <- function(recovery) {
  if (identical(recovery, "replaced")) {
    c(i = "The child did not stop in time and was replaced; its global environment is empty again.")
  } else {
    c(i = "The session is still usable.")
  }
}

host_error_cnd <- function(run, ev) {
  e <- ev$condition
  msg <- plain_message(e)
  run$error <- msg
  classes <- unique(c(grep("^securer_", class(e), value = TRUE), "securer_host_error"))
  securer_error_cnd(
    c(
      "The execution was stopped: the host failed while serving it.",
      x = "{msg}",
      recovery_bullet(ev$recovery)
    ),
    setdiff(classes, "securer_error"),
    parent = e, recovery = ev$recovery, output = lines_of(run$output)
  )
}

# Error messages the R process itself gives when a limit stops it.
limit_patterns <- c(
  memory = "cannot allocate (vector|memory|buffer)|could not allocate memory|memory exhausted|bad_alloc",
  nofile = "[Tt]oo many open files",
  nproc = "cannot (fork|popen)|Resource temporarily unavailable",
  fsize = "[Ff]ile too large"
)

child_error_cnd <- function(private, run, cond) {
  if (!is.list(cond) || !is.character(cond[["message"]]) || length(cond[["message"]]) != 1L) {
    cond <- list(message = "unknown error", call = NA_character_, class = "error")
  }
  msg <- untrusted_text(cond[["message"]])
  if (private$logger$sanitize) msg <- sanitize_message(msg)
  run$error <- msg
  call <- if (is.character(cond[["call"]]) && length(cond[["call"]]) == 1L && !is.na(cond[["call"]])) {
    untrusted_text(cond[["call"]], max_chars = 1000)
  }
  child_class <- untrusted_classes(cond[["class"]])
  output <- lines_of(run$output)
  if ("interrupt" %in% child_class) {
    return(securer_error_cnd("Execution interrupted.", "securer_interrupt", output = output))
  }
  limits <- private$opts$limits
  for (lim in names(limit_patterns)) {
    if (grepl(limit_patterns[[lim]], msg)) {
      hit <- if (!is.null(limits[[lim]])) describe_limit(lim, limits[[lim]]) else lim
      return(securer_error_cnd(
        c(
          "The sandboxed code hit the {hit} limit.",
          x = "{msg}",
          i = "Raise it with {.code limits = list({lim} = ...)} if the code needs more."
        ),
        c("securer_limit_error", "securer_child_error"),
        limit = lim, child_message = msg, child_call = call, output = output
      ))
    }
  }
  where <- if (!is.null(call)) paste0(" (in ", call, ")") else ""
  securer_error_cnd(
    c("Error in the sandboxed code{where}.", x = "{msg}"),
    "securer_child_error",
    child_message = msg, child_call = call, child_class = child_class,
    output = output
  )
}

child_exit_cnd <- function(private, run, ev) {
  sig <- ev$signal
  output <- lines_of(run$output)
  lim <- ev$limit %||% if (isTRUE(sig == 24)) "cpu" else if (isTRUE(sig == 25)) "fsize" else NULL
  if (!is.null(lim)) {
    hit <- describe_session_limit(lim, private$opts)
    setting <- limit_setting(lim)
    run$error <- paste("limit", hit)
    return(securer_error_cnd(
      c(
        "The sandboxed code hit the {hit} limit and was stopped.",
        i = "The child was replaced; raise the limit with {.code {setting}} if needed."
      ),
      c("securer_limit_error", "securer_child_error"),
      limit = lim, output = output
    ))
  }
  status <- if (!is.na(sig)) paste("signal", sig) else paste("status", ev$code)
  run$error <- paste("child died:", status)
  securer_error_cnd(
    c(
      "The child R process died during execution ({status}).",
      i = "It was replaced with a fresh one; its global environment is empty again."
    ),
    "securer_child_error",
    output = output
  )
}
