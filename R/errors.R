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

# A classed condition object, not signalled: for execution outcomes that
# are returned (`$read()`, batch results, promise rejections) before they
# are raised.
securer_error_cnd <- function(message, class, ..., .envir = parent.frame()) {
  rlang::catch_cnd(
    securer_abort(message, class = class, ..., .envir = .envir),
    "securer_error"
  )
}

# conditionMessage() without colours and with as little line wrapping as
# cli allows.
plain_message <- function(e) {
  old <- options(cli.width = 10000, cli.num_colors = 1)
  on.exit(options(old), add = TRUE)
  cli::ansi_strip(conditionMessage(e))
}

# Text that came from the child (an error message, a call), made safe to
# show: terminal control sequences and control characters other than
# newline and tab removed, invalid UTF-8 replaced, and at most `max_chars`
# characters kept, with a marker saying how many were cut. Linear time.
untrusted_text <- function(x, max_chars = getOption("securer.max_message_chars", 20000)) {
  if (!is.character(x) || length(x) == 0L || is.na(x[[1L]])) {
    return(NA_character_)
  }
  x <- x[[1L]]
  if (Encoding(x) == "bytes" || !validUTF8(x)) {
    x <- iconv(x, "UTF-8", "UTF-8", sub = "\ufffd")
    if (is.na(x)) x <- "<unreadable text>"
  }
  x <- gsub(control_sequences, "", enc2utf8(x), perl = TRUE)
  n <- nchar(x, type = "chars")
  if (n > max_chars) {
    x <- paste0(
      substr(x, 1L, max_chars),
      sprintf("\n[securer: text truncated, %d more characters]", n - max_chars)
    )
  }
  x
}

# ESC-introduced strings (OSC, DCS, SOS, PM, APC) up to their terminator,
# CSI sequences, other escape sequences, then single control characters
# (C0 but newline and tab, DEL, C1).
control_sequences <- paste0(
  "\\x{1b}[\\]PX^_][^\\x{07}\\x{1b}]*(?:\\x{07}|\\x{1b}\\\\)?",
  "|\\x{1b}\\[[\\x{30}-\\x{3f}]*[\\x{20}-\\x{2f}]*[\\x{40}-\\x{7e}]?",
  "|\\x{1b}[\\x{20}-\\x{2f}]*[\\x{30}-\\x{7e}]?",
  "|[\\x{00}-\\x{08}\\x{0b}-\\x{1f}\\x{7f}-\\x{9f}]"
)

# Class names from the child: at most 20, each cleaned and short.
untrusted_classes <- function(x) {
  if (!is.character(x)) {
    return("error")
  }
  x <- utils::head(x[!is.na(x)], 20L)
  vapply(x, untrusted_text, character(1), max_chars = 100L, USE.NAMES = FALSE)
}

# A single string of valid UTF-8 (converted from a declared native or
# latin1 encoding): what the child will parse.
check_code <- function(code) {
  check_string(code)
  if (Encoding(code) == "bytes") {
    securer_abort(
      c(
        "{.arg code} is marked as bytes, not text.",
        i = "Give R code as UTF-8 text, e.g. with {.code enc2utf8()} or {.code iconv()}."
      ),
      class = "securer_input_error"
    )
  }
  code <- enc2utf8(code)
  if (!validUTF8(code)) {
    securer_abort(
      c(
        "{.arg code} is not valid UTF-8.",
        i = "Convert it first, e.g. with {.code iconv(code, from = \"latin1\", to = \"UTF-8\")}."
      ),
      class = "securer_input_error"
    )
  }
  code
}

# A timeout in seconds: NULL (as in the original API) or Inf means none.
check_timeout <- function(timeout, arg = "timeout") {
  if (is.null(timeout)) {
    return(Inf)
  }
  check_number(timeout, arg = arg, allow_inf = TRUE)
  timeout
}

# A whole number of at least `min` (NULL allowed when `allow_null`).
check_count <- function(x, arg = deparse(substitute(x)), allow_null = FALSE, min = 0) {
  if (allow_null && is.null(x)) {
    return(invisible(x))
  }
  ok <- is.numeric(x) && length(x) == 1L && !is.na(x) && is.finite(x) &&
    x >= min && x == round(x)
  if (!ok) {
    securer_abort(
      c(
        "{.arg {arg}} must be a whole number of at least {min}{if (allow_null) ' or NULL' else ''}.",
        x = "Got {.obj_type_friendly {x}}{if (is.numeric(x) && length(x) == 1L) paste0(': ', x) else ''}."
      ),
      class = "securer_input_error"
    )
  }
  invisible(x)
}
