#' Create an ellmer tool for secure R code execution
#'
#' Gives a language model an `execute_r_code` tool: it sends R code, the
#' code runs in a [SecureSession] (sandboxed by default), and the model
#' gets back what R's console would have shown (printed output, messages,
#' warnings and the printed value, rendered in the sandbox, so that
#' results such as `summary(lm(...))` that cannot cross as values are
#' shown too) and the plots the code drew, as PNG images (see
#' [format_tool_content()]). Register the tool with an
#' [ellmer](https://ellmer.tidyverse.org/) chat with `$register_tool()`.
#' `as_ellmer_tool()` is the same function.
#'
#' @details
#' **State.** One session serves every call of the tool, so objects,
#' functions and loaded packages persist across calls within a chat. With
#' `session = NULL` the session is started on the first call (with `tools`,
#' `sandbox` and `limits`) and closed when the tool object is garbage
#' collected. If the session has died or was closed between calls, a new
#' one is started transparently and the model is told that earlier objects
#' are gone. With a [SecureSessionPool] as `session`, each call runs on
#' whichever session of the pool is free, so several calls run at once;
#' the model is told not to rely on objects from earlier calls.
#'
#' **Synchronous and asynchronous chats.** In `chat$chat()` and
#' `chat$stream()` the tool runs the code and returns its result. In
#' `chat$chat_async()` and `chat$stream_async()` (as in a Shiny app) it
#' returns a promise instead, settled from the later event loop, so the
#' host R process stays responsive while the code runs; calls that ellmer
#' makes concurrently (`tool_mode = "concurrent"`) run at once on a pool,
#' and one after the other on a single session. ellmer accepts promises
#' from tools only in its asynchronous methods: the tool tells which kind
#' of chat calls it from ellmer's tool context (`async = NULL`), or always
#' returns a promise (`async = TRUE`) or never (`async = FALSE`).
#'
#' **Tools.** The securer tools of the session appear as functions in the
#' session; their names, descriptions and argument types are listed in the
#' tool description the model sees. ellmer tools given in `tools` are
#' converted with [securer_tools_from_ellmer()] ("code mode"). `approve` is
#' asked before each call of a tool from the sandboxed code; a refused call
#' raises a catchable error in the sandbox, and the tool does not run.
#'
#' **Annotations.** The tool carries MCP-style annotations
#' ([ellmer::tool_annotations()]): it is not read-only (the code changes
#' the session's state); it is marked destructive and open-world unless it
#' runs in the sandbox with tools known to be harmless (only tools
#' converted from ellmer tools annotated as read-only, or non-destructive
#' and closed-world). `annotations` overrides any of them.
#'
#' **Errors.** An error in the code, a syntax error, a timeout (the session
#' is then restarted) or a crash of the child is raised by the tool
#' function (or rejects its promise) as an R error whose message is plain
#' text written for the model (including any output printed before the
#' error). ellmer catches errors of tool functions and sends them to the
#' model as a failed tool result (`"Tool calling failed with error ..."`),
#' so the chat goes on and the model can fix its code; ellmer also warns
#' that a tool call failed (class `ellmer_tool_failure`). The error keeps
#' the `securer_*` classes of the original condition (say,
#' `securer_timeout`), which is in `$parent`.
#'
#' @param session A [SecureSession] to run the code in, a
#'   [SecureSessionPool] to run each call on one of its sessions, or `NULL`
#'   to start a session on the first call. A session passed here that was
#'   closed is restarted by the tool; its tools are set when it is created,
#'   so `tools` and `approve` must then be empty.
#' @param tools A list of [securer_tool()] objects or ellmer tools (with
#'   `session = NULL`).
#' @param sandbox `TRUE`, `FALSE`, or a [build_sandbox_config()] object
#'   (with `session = NULL`).
#' @param limits Resource limits (with `session = NULL`); see
#'   [default_limits()].
#' @param timeout Seconds each call may run before it is stopped.
#' @param async `NULL` to return a promise in ellmer's asynchronous chat
#'   methods and a value elsewhere, `TRUE` to always return a promise,
#'   `FALSE` never to.
#' @param approve `NULL`, or a function `function(tool, args)` asked before
#'   each call of a tool from the sandboxed code, with the tool's name and
#'   its named list of arguments. It returns `TRUE` to let the call run,
#'   `FALSE` or a string (the reason, shown to the code) to refuse it; it
#'   may also refuse with [ellmer::tool_reject()]. An error in it, or any
#'   other value, refuses the call.
#' @param sanitize_errors Strip file paths, process ids and the host name
#'   from the error messages the model gets.
#' @param annotations A list of annotations (see
#'   [ellmer::tool_annotations()]) that override the ones the tool sets.
#' @param images Send the plots the code draws to the model as images
#'   (they cost tokens; with `FALSE` none are rendered).
#' @param plots The size, resolution and caps of those images:
#'   [plot_options()] (or `TRUE` for the defaults).
#' @param max_images Most images sent per call; the text says how many
#'   more were drawn.
#' @return An ellmer tool (an `ellmer::ToolDef`, itself a function of
#'   `code`) named `execute_r_code`.
#' @seealso [format_tool_content()] for what the model receives,
#'   [securer_tools_from_ellmer()] for ellmer tools inside the sandbox,
#'   [securer_mcp_server()] to serve the tool over MCP.
#' @examplesIf .Platform$OS.type == "unix"
#' if (requireNamespace("ellmer", quietly = TRUE)) {
#'   run_r <- securer_as_ellmer_tool(sandbox = FALSE)
#'   # The tool is a function: call it the way ellmer does
#'   writeLines(run_r("x <- 6 * 7; x"))
#'   writeLines(run_r("x + 1")) # state persists between calls
#'   # Errors are raised with a message written for the model
#'   tryCatch(run_r("stop('oops')"), error = conditionMessage)
#'   run_r@annotations$destructive_hint
#' }
#'
#' if (FALSE) {
#'   # With a chat model (needs an API key)
#'   library(ellmer)
#'   tools <- list(securer_tool(
#'     "query_db", "Query a database table",
#'     fn = function(table, limit) head(get(table, "package:datasets"), limit),
#'     args = list(table = "character", limit = "numeric")
#'   ))
#'   chat <- chat_openai()
#'   chat$register_tool(securer_as_ellmer_tool(tools = tools))
#'   chat$chat("What is the mean mpg of the first 5 rows of mtcars?")
#'
#'   # Asynchronous: the R process stays free while the code runs, and
#'   # concurrent tool calls run at once on a pool
#'   pool <- SecureSessionPool$new(size = 2, tools = tools)
#'   chat <- chat_openai()
#'   chat$register_tool(securer_as_ellmer_tool(pool))
#'   promises::then(
#'     chat$chat_async("Compare the mean mpg of 4 and 6 cylinder cars."),
#'     function(answer) print(answer)
#'   )
#' }
#' @export
securer_as_ellmer_tool <- function(session = NULL, tools = list(),
                                   sandbox = TRUE, limits = NULL,
                                   timeout = 30, async = NULL,
                                   approve = NULL, sanitize_errors = FALSE,
                                   annotations = list(), images = TRUE,
                                   plots = plot_options(), max_images = 4) {
  state <- ellmer_tool_state(
    session, tools, sandbox, limits, timeout, async, approve, sanitize_errors,
    images, plots, max_images
  )
  if (!is.list(annotations) || (length(annotations) && is.null(names(annotations)))) {
    securer_abort("{.arg annotations} must be a named list, as made by {.fn ellmer::tool_annotations}.",
      class = "securer_input_error"
    )
  }
  execute_r_code <- function(code) {
    ellmer_tool_call(state, code, sys.nframe())
  }
  ellmer_tool_def(execute_r_code, state, annotations)
}

#' @rdname securer_as_ellmer_tool
#' @export
as_ellmer_tool <- securer_as_ellmer_tool

# Everything one tool (or MCP server) keeps between calls: where the code
# runs, and the options of each call.
ellmer_tool_state <- function(session, tools, sandbox, limits, timeout,
                              async, approve, sanitize_errors, images = TRUE,
                              plots = plot_options(), max_images = 4) {
  require_ellmer("create an ellmer tool")
  check_number(timeout, allow_inf = TRUE)
  check_flag(sanitize_errors)
  if (!is.null(async)) check_flag(async)
  check_flag(images)
  check_count(max_images)
  state <- new.env(parent = emptyenv())
  state$timeout <- timeout
  state$images <- images
  state$max_images <- max_images
  # No images sent, none rendered (nor when none may be sent).
  state$plots <- if (images && max_images > 0) resolve_plots(plots) else NULL
  if (is.null(state$plots)) state$plots <- FALSE
  state$async <- async
  state$sanitize <- sanitize_errors
  state$owned <- is.null(session)
  if (!is.null(session)) {
    is_pool <- inherits(session, "SecureSessionPool")
    if (!is_pool && !inherits(session, "SecureSession")) {
      securer_abort(
        "{.arg session} must be a {.cls SecureSession}, a {.cls SecureSessionPool} or {.code NULL}, not {.obj_type_friendly {session}}.",
        class = "securer_input_error"
      )
    }
    if (length(tools) > 0L || !is.null(approve)) {
      securer_abort(
        c(
          "Supply {.arg tools} and {.arg approve} when creating {.arg session}, not here.",
          i = "A session's tools are fixed when it starts; see {.fn securer_tools_from_ellmer} for {.arg approve}."
        ),
        class = "securer_input_error"
      )
    }
    if (is_pool) {
      members <- session$sessions()
      if (session$size() == 0L) {
        securer_abort("The pool given as {.arg session} is closed.",
          class = "securer_input_error"
        )
      }
      state$pool <- session
      member <- members[[1L]]
    } else {
      state$session <- session
      member <- session
    }
    state$tools <- member$tools()
    state$sandboxed <- session_is_sandboxed(member)
  } else {
    # Fail now, not on the model's first call, when the set-up is wrong.
    tools <- approve_tools(validate_tools(as_securer_tools(tools)), approve)
    state$tools <- tools
    state$sandboxed <- !is.null(as_sandbox_config(sandbox))
    resolve_limits(limits)
    state$new_session <- function() {
      SecureSession$new(
        tools = tools, sandbox = sandbox, limits = limits,
        sanitize_errors = sanitize_errors
      )
    }
  }
  state
}

# Stops the session a tool started itself (a session or pool given to the
# tool belongs to the caller).
ellmer_tool_close <- function(state) {
  if (state$owned && !is.null(state$session)) state$session$close()
  invisible()
}

ellmer_tool_def <- function(fn, state, annotations = list()) {
  ellmer::tool(
    fn,
    name = "execute_r_code",
    description = ellmer_tool_description(
      state$tools, state$sandboxed, state$timeout,
      shared = is.null(state$pool)
    ),
    arguments = list(
      code = ellmer::type_string(paste(
        "R code to run. The value of the last expression is printed, as at",
        "the R console; use print() or cat() to show intermediate results."
      ))
    ),
    annotations = utils::modifyList(
      execute_annotations(state$tools, state$sandboxed), annotations
    )
  )
}

# The execute tool's hints for clients (MCP's tool annotations): running
# code changes the session, so it is never read-only; it can reach
# nothing outside the sandbox but through its tools, so it is harmless
# (non-destructive, closed-world) only in the sandbox with tools that say
# they are.
execute_annotations <- function(tools, sandboxed) {
  hints <- lapply(tools, tool_hints)
  harmless <- function(h) {
    isTRUE(h$read_only_hint) || isFALSE(h$destructive_hint)
  }
  closed <- function(h) isFALSE(h$open_world_hint)
  ellmer::tool_annotations(
    title = "Run R code",
    read_only_hint = FALSE,
    destructive_hint = !(sandboxed && all(vapply(hints, harmless, logical(1)))),
    open_world_hint = !(sandboxed && all(vapply(hints, closed, logical(1)))),
    idempotent_hint = FALSE
  )
}

# ellmer's annotations of a tool converted from an ellmer tool; nothing
# is known of other securer tools.
tool_hints <- function(tool) {
  attr(tool@fn, "ellmer_annotations", exact = TRUE) %||% list()
}

# ellmer 0.5.0 brought the tool context that tells its asynchronous tool
# loop from its synchronous one.
require_ellmer <- function(what) {
  if (!requireNamespace("ellmer", quietly = TRUE) ||
    utils::packageVersion("ellmer") < "0.5.0") {
    securer_abort(
      c(
        "The {.pkg ellmer} package, version 0.5.0 or later, is required to {what}.",
        i = "Install it with {.code install.packages(\"ellmer\")}."
      ),
      class = "securer_input_error"
    )
  }
}

# One call of the tool. `frame` is the frame number of the tool function,
# to tell ellmer's asynchronous tool loop from its synchronous one.
ellmer_tool_call <- function(state, code, frame) {
  async <- state$async %||% called_from_async_ellmer(frame)
  if (async) {
    ellmer_execute_async(state, code)
  } else {
    ellmer_execute(state, code)
  }
}

# ellmer's asynchronous tool loop (`invoke_tool_async()`, behind
# `$chat_async()` and `$stream_async()`) calls a tool as
# `with_tool_context(context, do.call(tool, args))`: that frame sits just
# above the tool's. Its synchronous loop calls `do.call()` directly, and
# refuses a promise.
called_from_async_ellmer <- function(frame) {
  if (frame <= 1L) {
    return(FALSE)
  }
  with_context <- ellmer::with_tool_context
  for (i in seq(frame - 1L, max(1L, frame - 5L))) {
    if (identical(sys.function(i), with_context)) {
      return(TRUE)
    }
  }
  FALSE
}

# The session that runs the next call, started or restarted as needed:
# list(session, note), `note` telling the model when state was lost.
ellmer_session <- function(state) {
  if (is.null(state$session)) {
    state$session <- state$new_session()
    return(list(session = state$session, note = NULL))
  }
  if (state$session$is_alive()) {
    return(list(session = state$session, note = NULL))
  }
  if (state$owned) {
    try(state$session$close(), silent = TRUE)
    state$session <- state$new_session()
  } else {
    state$session$restart()
  }
  list(
    session = state$session,
    note = paste(
      "Note: the R session had stopped and was restarted;",
      "objects from earlier calls are gone."
    )
  )
}

# A blocking call: returns the text (or content) for the model, or raises
# the error written for it.
ellmer_execute <- function(state, code) {
  content_value(ellmer_parts(state, code))
}

# The content parts of a blocking call (see tool_content_parts()); the MCP
# server makes its own content of them.
ellmer_parts <- function(state, code) {
  if (!is.null(state$pool)) {
    res <- tryCatch(
      state$pool$with_session(
        function(s) run_and_read(s, code, state),
        acquire_timeout = state$timeout
      ),
      error = function(e) ellmer_tool_fail(e, code, state)
    )
    return(ellmer_answer(res, code, state, NULL))
  }
  got <- tryCatch(ellmer_session(state), error = function(e) ellmer_tool_fail(e, code, state))
  ellmer_answer(run_and_read(got$session, code, state), code, state, got$note)
}

# `$read()`'s answer for `code` run on `session`, blocking.
run_and_read <- function(session, code, state) {
  res <- tryCatch(
    {
      res <- withVisible(session$execute(code,
        timeout = state$timeout, max_output_lines = 1000, plots = state$plots
      ))
      list(value = res$value, visible = res$visible, output = session$last_output(), error = NULL)
    },
    error = function(e) list(value = NULL, visible = TRUE, output = NULL, error = e)
  )
  res$console <- session$last_console()
  res$plots <- session$last_plots()
  res
}

# An asynchronous call: a promise of the text (or content) for the model,
# rejected with the error written for it. On a single session the calls
# queue, each starting when the one before has settled; a pool runs them
# at once.
ellmer_execute_async <- function(state, code) {
  timeout <- state$timeout
  start <- function(session) {
    session$call(code, timeout = timeout, max_output_lines = 1000, plots = state$plots)
    session$read_async()
  }
  if (!is.null(state$pool)) {
    p <- state$pool$with_session_async(start)
    return(promises::then(p,
      onFulfilled = function(res) content_value(ellmer_answer(res, code, state, NULL)),
      onRejected = function(e) ellmer_tool_fail(e, code, state)
    ))
  }
  before <- state$queue %||% promises::promise_resolve(NULL)
  p <- promises::then(before, function(...) {
    got <- tryCatch(ellmer_session(state), error = function(e) ellmer_tool_fail(e, code, state))
    promises::then(
      tryCatch(start(got$session), error = function(e) promises::promise_reject(e)),
      onFulfilled = function(res) content_value(ellmer_answer(res, code, state, got$note)),
      onRejected = function(e) ellmer_tool_fail(e, code, state, note = got$note)
    )
  })
  # The next call waits for this one, however it ends.
  state$queue <- promises::then(p, function(...) NULL, function(...) NULL)
  p
}

# `$read()`'s answer made into what the model gets: the execution's
# content parts, after the note (if any); the error written for the model
# when the code failed (not when only its value could not cross: the
# transcript shows it).
ellmer_answer <- function(res, code, state, note) {
  if (!is.null(res$error) && !value_refused(res)) {
    ellmer_tool_fail(res$error, code, state, note = note)
  }
  parts <- tool_content_parts(res, state$images, state$max_images,
    max_lines = 50, max_chars = 4000
  )
  if (!is.null(note)) parts <- c(list(list(type = "text", text = note)), parts)
  parts
}

# Raises `e` again as an error whose message is plain text for the model
# (ellmer sends conditionMessage() of a tool's error verbatim). cli's
# formatting would wrap lines and add bullets, so this is a base condition;
# it keeps the securer classes of `e`, which is its parent.
ellmer_tool_fail <- function(e, code, state, note = NULL) {
  text <- ellmer_error_text(e, code, state$timeout)
  output <- clean_lines(e$output)
  if (length(output) > 0L) {
    output <- truncate_chars(
      paste(truncate_lines(output, 25), collapse = "\n"), 2000
    )
    text <- paste0("Output:\n", output, "\n\n", text)
  }
  if (isTRUE(state$sanitize)) text <- sanitize_message(text)
  text <- paste(c(note, text), collapse = "\n\n")
  classes <- unique(
    c(grep("^securer_", class(e), value = TRUE), "securer_error")
  )
  stop(errorCondition(text, class = classes, call = NULL, parent = e))
}

ellmer_error_text <- function(e, code, timeout) {
  if (inherits(e, "securer_syntax_error")) {
    # R's own parse message keeps its layout (the line and a caret).
    err <- tryCatch(
      {
        parse(text = code, keep.source = FALSE)
        NULL
      },
      error = function(err) sub("^<text>:", "line ", conditionMessage(err))
    )
    if (!is.null(err)) {
      return(paste0("Syntax error; nothing was run.\n", err))
    }
  }
  if (inherits(e, "securer_timeout")) {
    return(paste0(
      "Execution timed out after ", format(timeout), " seconds. ",
      "The R session was restarted, so objects from earlier calls are gone."
    ))
  }
  msg <- e$child_message
  if (inherits(e, "securer_limit_error") && inherits(e, "securer_child_error")) {
    # The condition's own hint (raise the limit) is advice for the host
    # developer, not the model.
    header <- strsplit(plain_message(e), "\n", fixed = TRUE)[[1]][1]
    detail <- if (is.character(msg) && length(msg) == 1L) {
      paste0("Error: ", msg)
    } else {
      "The R session was restarted, so objects from earlier calls are gone."
    }
    return(paste(
      c(header, detail, "Change the code to need less of that resource."),
      collapse = "\n"
    ))
  }
  if (inherits(e, "securer_child_error") &&
    !inherits(e, "securer_limit_error") &&
    is.character(msg) && length(msg) == 1L) {
    call <- e$child_call
    if (is.character(call) && length(call) == 1L && !is.na(call)) {
      return(paste0("Error in ", call, " : ", msg))
    }
    return(paste0("Error: ", msg))
  }
  plain_message(e)
}

session_is_sandboxed <- function(session) {
  info <- tryCatch(session$sandbox_info(), error = function(e) NULL)
  if (!is.data.frame(info) || !all(c("layer", "active") %in% names(info))) {
    return(FALSE)
  }
  isolating <- c(
    "namespaces", "root", "landlock", "seccomp", "seatbelt", "job_object"
  )
  any(info$active & info$layer %in% isolating)
}

# The tool description the model reads: what the tool does, what persists
# (`shared`: one session serves every call), and the securer tools
# available as functions in the session.
ellmer_tool_description <- function(tools, sandboxed, timeout, shared = TRUE) {
  where <- if (sandboxed) {
    paste(
      "The code runs in a separate, sandboxed R process without access to",
      "the network or to the host's files."
    )
  } else {
    "The code runs in a separate R process."
  }
  state <- if (shared) {
    paste(
      "State persists between calls: objects, functions and loaded packages",
      "from earlier calls stay available, unless the session is restarted",
      "after a timeout or a crash (you are told when that happens)."
    )
  } else {
    paste(
      "Each call may run in a different R session, so objects from earlier",
      "calls may be missing: give each call all the code it needs."
    )
  }
  text <- c(
    paste(
      "Run R code and see its result: the printed output and the value of",
      "the last expression, as at the R console (long results are truncated)."
    ),
    where,
    state,
    paste0("Each call may run for at most ", format(timeout), " seconds.")
  )
  if (length(tools) > 0L) {
    sigs <- vapply(tools, function(t) {
      args <- t@args
      sig <- if (length(args)) {
        paste0(names(args), " = <", unlist(args), ">", collapse = ", ")
      } else {
        ""
      }
      paste0("- ", t@name, "(", sig, "): ", t@description)
    }, character(1))
    where <- if (sandboxed) {
      "outside the sandbox, on the host"
    } else {
      "in the host R process"
    }
    text <- c(
      text, "",
      paste0(
        "These functions are available in the session. They run ", where,
        ", and return R values:"
      ),
      sigs
    )
  }
  paste(text, collapse = "\n")
}
