# Calls worth a second look before running code; advisory only.
advisory_calls <- c(
  "system", "system2", "shell", "Sys.setenv", "Sys.unsetenv", "file.remove",
  "unlink", "download.file", "url", "socketConnection", "pipe", "dyn.load",
  "library.dynam", ".Call", ".C", ".Fortran", ".External", ".Internal",
  "setwd", "Sys.chmod", "file.copy", "quit", "q", "eval", "parse", "assign",
  "get", "source", "sys.function"
)

# Packages whose functions start processes or reach into the system.
advisory_packages <- c("processx", "callr", "sys", "ps")

# Functions that call a function they are given (by name or as a value).
indirect_calls <- c(
  "do.call", "match.fun", "get", "get0", "getFunction", "Reduce", "Map",
  "lapply", "sapply", "vapply", "mapply"
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
  list(
    valid = TRUE,
    error = NULL,
    warnings = unique(advisory_findings(parse(text = code, keep.source = FALSE)))
  )
}

# Walks the code (never runs it) and describes each call worth a look.
advisory_findings <- function(exprs) {
  found <- character()
  flag <- function(what) {
    found <<- c(found, sprintf("Code calls %s; it runs inside the sandbox, but check it is intended.", what))
  }
  walk <- function(e) {
    if (!is.call(e)) {
      return(invisible())
    }
    name <- call_name(e[[1L]])
    if (!is.null(name)) {
      bare <- sub("^.*::", "", name)
      pkg <- if (grepl("::", name, fixed = TRUE)) sub(":::?.*$", "", name)
      if (bare %in% advisory_calls || isTRUE(pkg %in% advisory_packages)) {
        flag(paste0(name, "()"))
      }
      if (bare %in% indirect_calls && length(e) >= 2L) {
        target <- call_name(e[[2L]])
        if (!is.null(target) && sub("^.*::", "", target) %in% advisory_calls) {
          flag(sprintf("%s() through %s()", target, bare))
        }
      }
      if (bare %in% c("eval", "evalq") && length(e) >= 2L && is.call(e[[2L]]) &&
        identical(sub("^.*::", "", call_name(e[[2L]][[1L]]) %||% ""), "parse")) {
        flag("eval(parse(text = ...))")
      }
      if (bare %in% c("file.remove", "unlink")) {
        paths <- unlist(Filter(function(a) is.character(a) && length(a) == 1L, as.list(e)[-1L]))
        for (p in paths[grepl("^(/|~|[A-Za-z]:[/\\\\])", paths)]) {
          flag(sprintf("%s() on the absolute path '%s'", bare, p))
        }
      }
    }
    for (i in seq_along(e)) {
      arg <- e[[i]]
      if (!missing(arg)) walk(arg)
    }
    invisible()
  }
  for (e in exprs) walk(e)
  found
}

# The name a call's function is given by: `f`, `pkg::f`, `"f"`; NULL for
# anything else (an anonymous function, `x$f`, ...).
call_name <- function(fn) {
  if (is.symbol(fn)) {
    return(as.character(fn))
  }
  if (is.character(fn) && length(fn) == 1L) {
    return(fn)
  }
  if (is.call(fn) && length(fn) == 3L && is.symbol(fn[[1L]]) &&
    as.character(fn[[1L]]) %in% c("::", ":::")) {
    return(paste0(as.character(fn[[2L]]), as.character(fn[[1L]]), as.character(fn[[3L]])))
  }
  NULL
}

# The message of a syntax error: a cli template of `err`, the parse error,
# interpolated from the caller's frame.
syntax_error_message <- function() c("Syntax error in code; nothing was run.", x = "{err}")

# The parse error message of `code`, or NULL when it parses.
parse_error <- function(code) {
  # str2expression() is parse(text =, keep.source = FALSE) without the
  # R-level argument handling: a third of the cost on every execution.
  res <- tryCatch(str2expression(code), error = identity)
  if (inherits(res, "error")) sub("^<text>:", "line ", conditionMessage(res))
}
