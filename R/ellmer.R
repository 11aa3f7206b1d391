#' Create an ellmer tool for secure R code execution
#'
#' Gives a language model an `execute_r_code` tool: it sends R code, the
#' code runs in a [SecureSession] (sandboxed by default), and the model
#' gets back the printed output and the value of the last expression, as
#' compact text made by [format_tool_result()]. Register the tool with an
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
#' are gone.
#'
#' **Tools.** The securer tools of the session appear as functions in the
#' session; their names, descriptions and argument types are listed in the
#' tool description the model sees.
#'
#' **Errors.** An error in the code, a syntax error, a timeout (the session
#' is then restarted) or a crash of the child is raised by the tool
#' function as an R error whose message is plain text written for the
#' model (including any output printed before the error). ellmer catches
#' errors of tool functions and sends them to the model as a failed tool
#' result (`"Tool calling failed with error ..."`), so the chat goes on and
#' the model can fix its code; ellmer also warns that a tool call failed
#' (class `ellmer_tool_failure`). The error keeps the `securer_*` classes of
#' the original condition (say, `securer_timeout`), which is in `$parent`.
#'
#' @param session A [SecureSession] to run the code in, or `NULL` to start
#'   one on the first call. A session passed here that was closed is
#'   restarted by the tool; its tools are set when it is created, so
#'   `tools` must then be empty.
#' @param tools A list of [securer_tool()] objects (with `session = NULL`).
#' @param sandbox `TRUE`, `FALSE`, or a [build_sandbox_config()] object
#'   (with `session = NULL`).
#' @param limits Resource limits (with `session = NULL`); see
#'   [default_limits()].
#' @param timeout Seconds each call may run before it is stopped.
#' @return An ellmer tool (an `ellmer::ToolDef`, itself a function of
#'   `code`) named `execute_r_code`.
#' @seealso [format_tool_result()] for the text the model receives.
#' @examples
#' if (requireNamespace("ellmer", quietly = TRUE)) {
#'   run_r <- securer_as_ellmer_tool(sandbox = FALSE)
#'   # The tool is a function: call it the way ellmer does
#'   writeLines(run_r("x <- 6 * 7; x"))
#'   writeLines(run_r("x + 1")) # state persists between calls
#'   # Errors are raised with a message written for the model
#'   tryCatch(run_r("stop('oops')"), error = conditionMessage)
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
#' }
#' @export
securer_as_ellmer_tool <- function(session = NULL, tools = list(),
                                   sandbox = TRUE, limits = NULL,
                                   timeout = 30) {
  if (!requireNamespace("ellmer", quietly = TRUE)) {
    securer_abort(
      c(
        "The {.pkg ellmer} package is required to create an ellmer tool.",
        i = "Install it with {.code install.packages(\"ellmer\")}."
      ),
      class = "securer_input_error"
    )
  }
  check_number(timeout, allow_inf = TRUE)
  if (!is.null(session)) {
    if (!inherits(session, "SecureSession")) {
      securer_abort(
        "{.arg session} must be a {.cls SecureSession} or {.code NULL}, not {.obj_type_friendly {session}}.",
        class = "securer_input_error"
      )
    }
    if (length(tools) > 0L) {
      securer_abort(
        c(
          "Supply {.arg tools} when creating {.arg session}, not here.",
          i = "A session's tools are fixed when it starts."
        ),
        class = "securer_input_error"
      )
    }
    tools <- session$tools()
    sandboxed <- session_is_sandboxed(session)
  } else {
    # Fail now, not on the model's first call, when the set-up is wrong.
    tools <- validate_tools(tools)
    sandboxed <- !is.null(as_sandbox_config(sandbox))
    resolve_limits(limits)
  }

  state <- new.env(parent = emptyenv())
  state$session <- session
  state$owned <- is.null(session)
  state$new_session <- function() {
    SecureSession$new(tools = tools, sandbox = sandbox, limits = limits)
  }

  execute_r_code <- function(code) {
    ellmer_execute(state, code, timeout)
  }
  ellmer::tool(
    execute_r_code,
    name = "execute_r_code",
    description = ellmer_tool_description(tools, sandboxed, timeout),
    arguments = list(
      code = ellmer::type_string(paste(
        "R code to run. The value of the last expression is printed, as at",
        "the R console; use print() or cat() to show intermediate results."
      ))
    ),
    annotations = ellmer::tool_annotations(title = "Run R code")
  )
}

#' @rdname securer_as_ellmer_tool
#' @export
as_ellmer_tool <- securer_as_ellmer_tool

# One call of the tool: makes sure a live session exists, runs the code and
# returns the formatted result, or raises an error written for the model.
ellmer_execute <- function(state, code, timeout) {
  note <- NULL
  session <- tryCatch(
    {
      if (is.null(state$session)) {
        state$session <- state$new_session()
      } else if (!state$session$is_alive()) {
        note <- paste(
          "Note: the R session had stopped and was restarted;",
          "objects from earlier calls are gone."
        )
        if (state$owned) {
          try(state$session$close(), silent = TRUE)
          state$session <- state$new_session()
        } else {
          state$session$restart()
        }
      }
      state$session
    },
    error = function(e) ellmer_tool_fail(e, code, timeout, note = note)
  )
  res <- tryCatch(
    withVisible(
      session$execute(code, timeout = timeout, max_output_lines = 1000)
    ),
    error = function(e) ellmer_tool_fail(e, code, timeout, note = note)
  )
  value <- res$value
  if (!is.null(value)) attr(value, "output") <- NULL
  text <- format_execution(value, session$last_output(), res$visible,
    max_lines = 50, max_chars = 4000
  )
  paste(c(note, text), collapse = "\n\n")
}

# Raises `e` again as an error whose message is plain text for the model
# (ellmer sends conditionMessage() of a tool's error verbatim). cli's
# formatting would wrap lines and add bullets, so this is a base condition;
# it keeps the securer classes of `e`, which is its parent.
ellmer_tool_fail <- function(e, code, timeout, note = NULL) {
  text <- ellmer_error_text(e, code, timeout)
  output <- clean_lines(e$output)
  if (length(output) > 0L) {
    output <- truncate_chars(
      paste(truncate_lines(output, 25), collapse = "\n"), 2000
    )
    text <- paste0("Output:\n", output, "\n\n", text)
  }
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

# The tool description the model reads: what the tool does, what persists,
# and the securer tools available as functions in the session.
ellmer_tool_description <- function(tools, sandboxed, timeout) {
  where <- if (sandboxed) {
    paste(
      "The code runs in a separate, sandboxed R process without access to",
      "the network or to the host's files."
    )
  } else {
    "The code runs in a separate R process."
  }
  text <- c(
    paste(
      "Run R code and see its result: the printed output and the value of",
      "the last expression, as at the R console (long results are truncated)."
    ),
    where,
    paste(
      "State persists between calls: objects, functions and loaded packages",
      "from earlier calls stay available, unless the session is restarted",
      "after a timeout or a crash (you are told when that happens)."
    ),
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
