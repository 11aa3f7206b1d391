#' Run R code once in a fresh sandboxed session
#'
#' Starts a [SecureSession], runs `code`, closes the session and returns
#' the value of the last expression (with an `"output"` attribute holding
#' printed lines).
#'
#' @param code A single string of R code.
#' @param tools A list of [securer_tool()] objects.
#' @param timeout Seconds before the execution is stopped.
#' @param sandbox `TRUE`, `FALSE`, or a [build_sandbox_config()] object.
#' @param limits Resource limits; see [default_limits()].
#' @param verbose Print progress messages.
#' @param validate Refuse syntax errors before running anything.
#' @param sandbox_strict Fail instead of warning when a sandbox layer is
#'   missing.
#' @param audit_log Path of a JSON-lines audit log, or `NULL`.
#' @return The value of the code's last expression.
#' @examplesIf .Platform$OS.type == "unix"
#' execute_r("1 + 1", sandbox = FALSE)
#'
#' tools <- list(securer_tool(
#'   "query_db", "Query a database table",
#'   fn = function(table, limit) head(get(table, "package:datasets"), limit),
#'   args = list(table = "character", limit = "numeric")
#' ))
#' execute_r('data <- query_db("mtcars", 5); mean(data$mpg)',
#'   tools = tools, sandbox = FALSE
#' )
#' @export
execute_r <- function(code, tools = list(), timeout = 30, sandbox = TRUE,
                      limits = NULL, verbose = FALSE, validate = TRUE,
                      sandbox_strict = FALSE, audit_log = NULL) {
  check_string(code)
  session <- SecureSession$new(
    tools = tools, sandbox = sandbox, limits = limits,
    sandbox_strict = sandbox_strict, verbose = verbose, audit_log = audit_log
  )
  on.exit(session$close(), add = TRUE)
  session$execute(code, timeout = timeout, validate = validate)
}

#' Run a function with a session that is closed afterwards
#'
#' @param fn A function taking the session as its only argument.
#' @param ... Passed to `SecureSession$new()`.
#' @return What `fn` returns.
#' @examplesIf .Platform$OS.type == "unix"
#' with_secure_session(function(s) {
#'   s$execute("x <- 2")
#'   s$execute("x^10")
#' }, sandbox = FALSE)
#' @export
with_secure_session <- function(fn, ...) {
  if (!is.function(fn)) {
    securer_abort("{.arg fn} must be a function taking the session.",
      class = "securer_input_error"
    )
  }
  session <- SecureSession$new(...)
  on.exit(session$close(), add = TRUE)
  fn(session)
}
