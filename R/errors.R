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
  # What cli_abort() makes, without raising it: raising and catching costs
  # a backtrace, ~100 ms per condition (a timeout would return that late).
  # (Text without braces has nothing to interpolate: cli's first use in a
  # session alone costs tens of milliseconds.)
  templated <- grepl("{", message, fixed = TRUE) | grepl("}", message, fixed = TRUE)
  message[templated] <- vapply(message[templated], cli::format_inline, "", .envir = .envir)
  rlang::error_cnd(
    class = c(class, "securer_error"), message = message, ...,
    use_cli_format = TRUE
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
# show: the Rust cleaner (securer_core::text, the only one) removes terminal
# control sequences and control characters other than newline and tab,
# replaces invalid UTF-8, and keeps at most `max_chars` characters, with a
# marker saying how many were cut. Linear time.
untrusted_text <- function(x, max_chars = getOption("securer.max_message_chars", 20000)) {
  if (!is.character(x) || length(x) == 0L) {
    return(NA_character_)
  }
  rs_clean_text(x[[1L]], max_chars)
}

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

# The one place where an error object from the Rust core (class
# "securer_rs_error": kind, layer, message, errno, pid) becomes a classed
# condition. `x` is returned unchanged when it is not one; `context` (a cli
# message, interpolated in the caller's frame) says what was being done.
rs_check <- function(x, context, .envir = parent.frame()) {
  if (!inherits(x, "securer_rs_error")) {
    return(x)
  }
  class <- switch(x$kind,
    input = "securer_input_error",
    spawn = ,
    zygote = "securer_child_error",
    launch = "securer_sandbox_error",
    value = c("securer_value_error", "securer_ipc_error"),
    audit = "securer_audit_error",
    random = NULL,
    "securer_ipc_error"
  )
  securer_abort(
    c(context, x = cli_escape(x$message)),
    class = class,
    kind = x$kind, layer = x$layer, errno = x$errno, pid = x$pid,
    .envir = .envir
  )
}
