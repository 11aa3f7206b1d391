# Classed conditions. Every error the package raises goes through
# securer_abort() so that its class chain ends in securer_error.

securer_abort <- function(message, class = NULL, ..., call = NULL,
                          .envir = parent.frame()) {
  cli::cli_abort(
    message,
    class = c(class, "securer_error"),
    ...,
    call = call,
    .envir = .envir
  )
}

# Text that came from the child must never be read as a cli template:
# braces would otherwise be interpolated (and evaluated) on the host.
cli_escape <- function(x) {
  gsub("}", "}}", gsub("{", "{{", x, fixed = TRUE), fixed = TRUE)
}

check_string <- function(x, arg = deparse(substitute(x))) {
  if (!is.character(x) || length(x) != 1L || is.na(x)) {
    securer_abort(
      "{.arg {arg}} must be a single string, not {.obj_type_friendly {x}}.",
      class = "securer_input_error"
    )
  }
  invisible(x)
}

check_flag <- function(x, arg = deparse(substitute(x))) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    securer_abort(
      "{.arg {arg}} must be {.code TRUE} or {.code FALSE}.",
      class = "securer_input_error"
    )
  }
  invisible(x)
}

check_number <- function(x, arg = deparse(substitute(x)), allow_null = FALSE,
                         min = 0, allow_inf = FALSE) {
  if (allow_null && is.null(x)) {
    return(invisible(x))
  }
  ok <- is.numeric(x) && length(x) == 1L && !is.na(x) && x > min &&
    (allow_inf || is.finite(x))
  if (!ok) {
    securer_abort(
      c(
        "{.arg {arg}} must be a single number greater than {min}.",
        x = "Got {.obj_type_friendly {x}}{if (is.numeric(x) && length(x) == 1L) paste0(': ', x) else ''}."
      ),
      class = "securer_input_error"
    )
  }
  invisible(x)
}
