# Session event log: verbose messages for people, JSON lines for auditors.
# A logger is an environment; `log_event()` is cheap when both are off.

new_logger <- function(verbose = FALSE, audit_log = NULL,
                       sanitize_errors = FALSE) {
  check_flag(verbose)
  check_flag(sanitize_errors)
  logger <- new.env(parent = emptyenv())
  logger$verbose <- verbose
  logger$sanitize <- sanitize_errors
  logger$path <- if (!is.null(audit_log)) audit_log_path(audit_log)
  logger$on <- verbose || !is.null(logger$path)
  # From the kernel, not R's generator: starting a session leaves the
  # caller's random numbers (`set.seed()`) alone.
  logger$id <- paste(as.character(rs_random_token()[1:8]), collapse = "")
  logger
}

audit_log_path <- function(path) {
  check_string(path, "audit_log")
  if (!nzchar(path)) {
    securer_abort(
      c("{.arg audit_log} is empty.", i = "Give the path of a file, or {.code NULL} for no audit log."),
      class = c("securer_audit_error", "securer_input_error")
    )
  }
  path <- path.expand(path)
  dir <- dirname(path)
  if (!dir.exists(dir)) {
    securer_abort(
      c(
        "The directory of the audit log does not exist: {.path {dir}}.",
        i = "Create it first, for example with {.code dir.create({deparse(dir)}, recursive = TRUE)}."
      ),
      class = "securer_audit_error"
    )
  }
  # Sys.readlink() is NA for a file that does not exist yet, "" for a
  # regular file.
  link <- Sys.readlink(path)
  if (!is.na(link) && nzchar(link)) {
    securer_abort(
      c(
        "The audit log {.path {path}} is a symbolic link.",
        i = "For safety securer only writes regular files; give the real path."
      ),
      class = "securer_audit_error"
    )
  }
  path <- file.path(normalizePath(dir, mustWork = TRUE), basename(path))
  # Fails now, without waiting, for a FIFO, a device or a folder.
  rs_check(rs_audit_check(path), "Cannot use {.path {path}} as audit log.")
  path
}

utc_timestamp <- function() {
  format(Sys.time(), "%Y-%m-%dT%H:%M:%OS3Z", tz = "UTC")
}

# Records one event. `msg` is the verbose line (without the prefix);
# `fields` go to the audit log.
log_event <- function(logger, event, msg = NULL, ...) {
  if (!logger$on) {
    return(invisible())
  }
  if (logger$verbose && !is.null(msg)) {
    message("[securer] ", msg)
  }
  if (!is.null(logger$path)) {
    record <- c(
      list(timestamp = utc_timestamp(), event = event, session_id = logger$id),
      list(...)
    )
    line <- jsonlite::toJSON(record, auto_unbox = TRUE, null = "null", digits = NA, force = TRUE)
    rs_check(rs_audit_append(logger$path, line), "Cannot write the audit log.")
  }
  invisible()
}

# An audit log failure that must not hide another outcome: a warning.
audit_warn <- function(e) {
  msg <- plain_message(e)
  cli::cli_warn(c("An audit log record was lost.", x = "{msg}"),
    class = c("securer_audit_warning", "securer_warning")
  )
}

# A short call description for logs: name(arg="value", n=3).
describe_call <- function(name, args) {
  if (length(args) == 0L) {
    return(paste0(name, "()"))
  }
  shown <- vapply(args, describe_arg, character(1))
  paste0(name, "(", paste0(names(args), "=", shown, collapse = ", "), ")")
}

# One value, short, for logs and messages: "\"text\"", "3", "NA",
# "data.frame with 3 rows and 5 columns", "character of length 2".
describe_arg <- function(a) {
  if (is.data.frame(a)) {
    return(sprintf("data.frame with %d rows and %d columns", nrow(a), ncol(a)))
  }
  if (is.atomic(a) && length(a) == 1L && !is.object(a)) {
    s <- if (is.character(a) && !is.na(a)) encodeString(a, quote = "\"") else format(a)
    return(if (nchar(s) > 60L) paste0(substr(s, 1L, 57L), "...") else s)
  }
  sprintf("%s of length %d", class(a)[[1L]], length(a))
}

# Strips what an error message might reveal about the host: file paths,
# process ids and the host name.
sanitize_message <- function(x) {
  host <- Sys.info()[["nodename"]]
  x <- gsub("(~|\\.{0,2})?(/[A-Za-z0-9._@+-]+)+/?", "<path>", x, perl = TRUE)
  x <- gsub("\\b(pid|PID|process)( id)?[ =:]*[0-9]+", "\\1 <pid>", x, perl = TRUE)
  # Whole names only: a short host name ("vm") must not mangle other words.
  if (nzchar(host)) {
    x <- gsub(paste0("(?<![A-Za-z0-9-])\\Q", host, "\\E(?![A-Za-z0-9-])"), "<host>", x, perl = TRUE)
  }
  x
}
