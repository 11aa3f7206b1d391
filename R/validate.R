# Calls worth a second look before running code; advisory only.
advisory_calls <- c(
  "system", "system2", "shell", "Sys.setenv", "Sys.unsetenv", "file.remove",
  "unlink", "download.file", "url", "socketConnection", "pipe", "dyn.load",
  "library.dynam", ".Call", ".C", ".External", ".Internal", "setwd",
  "Sys.chmod", "file.copy", "quit", "q", "eval", "parse", "assign",
  "get", "source", "sys.function"
)

#' Check R code before running it
#'
#' Parses `code` without running it. A syntax error makes it invalid. Calls
#' to functions such as `system()` are flagged in `warnings`; they are
#' advisory only (the sandbox, not this check, is what contains code).
#'
#' @param code A single string of R code.
#' @return A list with `valid` (logical), `error` (the parse error message
#'   or `NULL`) and `warnings` (character vector).
#' @examples
#' validate_code("x <- 1 + 1")
#' validate_code("if (TRUE {")$valid
#' validate_code("system('ls')")$warnings
#' @export
validate_code <- function(code) {
  check_string(code)
  err <- parse_error(code)
  if (!is.null(err)) {
    return(list(valid = FALSE, error = err, warnings = character()))
  }
  exprs <- parse(text = code, keep.source = TRUE)
  pd <- utils::getParseData(exprs)
  calls <- if (is.null(pd)) character() else pd$text[pd$token == "SYMBOL_FUNCTION_CALL"]
  flagged <- intersect(unique(calls), advisory_calls)
  list(
    valid = TRUE,
    error = NULL,
    warnings = if (length(flagged)) {
      sprintf("Code calls %s(); it runs inside the sandbox, but check it is intended.", flagged)
    } else {
      character()
    }
  )
}

# The parse error message of `code`, or NULL when it parses.
parse_error <- function(code) {
  # str2expression() is parse(text =, keep.source = FALSE) without the
  # R-level argument handling: a third of the cost on every execution.
  res <- tryCatch(str2expression(code), error = identity)
  if (inherits(res, "error")) sub("^<text>:", "line ", conditionMessage(res))
}
