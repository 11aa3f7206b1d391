# Shared helpers for the session-core tests. Every session here runs with
# `sandbox = FALSE`: the sandbox layers have their own tests.

# A session closed when `.env` ends (a test, or the file when called at the
# top level of a test file). The close is quiet even for verbose sessions.
new_session <- function(..., .env = parent.frame()) {
  session <- SecureSession$new(sandbox = FALSE, ...)
  withr::defer(suppressMessages(session$close()), envir = .env)
  session
}

# A tool that returns its argument unchanged (any type).
echo_tool <- function(name = "echo") {
  securer_tool(name, "Return the argument unchanged",
    fn = function(x) x,
    args = list(x = "any")
  )
}

# The README's example tool.
query_db_tool <- function() {
  securer_tool(
    "query_db", "Query a database table",
    fn = function(table, limit) head(get(table, "package:datasets"), limit),
    args = list(table = "character", limit = "numeric")
  )
}

# A value without the "output" attribute that execute() adds.
strip_output <- function(x) {
  attr(x, "output") <- NULL
  x
}

# Is process `pid` running (a zombie waiting to be reaped does not count)?
pid_running <- function(pid) {
  if (is.na(pid)) {
    return(FALSE)
  }
  handle <- tryCatch(ps::ps_handle(as.integer(pid)), error = function(e) NULL)
  if (is.null(handle)) {
    return(FALSE)
  }
  status <- tryCatch(ps::ps_status(handle), error = function(e) "gone")
  !status %in% c("gone", "zombie", "dead")
}

# Waits up to `timeout` seconds for process `pid` to end; TRUE if it did.
wait_pid_gone <- function(pid, timeout = 5) {
  deadline <- Sys.time() + timeout
  repeat {
    if (!pid_running(pid)) {
      return(TRUE)
    }
    if (Sys.time() > deadline) {
      return(FALSE)
    }
    Sys.sleep(0.05)
  }
}

# Running child processes of this R process whose command line mentions
# securer's child runtime.
securer_children <- function() {
  kids <- tryCatch(ps::ps_children(ps::ps_handle(), recursive = TRUE),
    error = function(e) list()
  )
  runtime <- function(p) {
    cmd <- tryCatch(ps::ps_cmdline(p), error = function(e) character())
    any(grepl("runtime.R", cmd, fixed = TRUE))
  }
  zygotes <- vapply(securer:::zygote_list(), function(z) as.integer(z$pid), integer(1))
  # A warm zygote's own processes (it outlives sessions on purpose): those
  # on the way down from a zygote's launcher to its R, whose children are
  # sessions (their parent is an R process).
  is_zygote <- function(p) {
    repeat {
      if (ps::ps_pid(p) %in% zygotes) {
        return(TRUE)
      }
      p <- tryCatch(ps::ps_parent(p), error = function(e) NULL)
      if (is.null(p) || ps::ps_name(p) == "R") {
        return(FALSE)
      }
    }
  }
  pids <- vapply(kids, function(p) {
    # A zygote's spare sessions (forked ahead of demand) belong to no one.
    spare <- identical(tryCatch(ps::ps_name(p), error = function(e) ""), "securer-spare")
    if (!spare && runtime(p) && pid_running(ps::ps_pid(p)) &&
      !tryCatch(is_zygote(p), error = function(e) TRUE)) {
      ps::ps_pid(p)
    } else {
      NA_integer_
    }
  }, integer(1))
  pids[!is.na(pids)]
}

# The session directories ("securer-*") in this R process's tempdir().
securer_tempdirs <- function() {
  list.files(tempdir(), pattern = "^securer-", full.names = TRUE)
}

# The events of a JSON-lines audit log, one list per line.
read_audit <- function(path) {
  lines <- readLines(path, warn = FALSE)
  lapply(lines, jsonlite::fromJSON, simplifyVector = FALSE)
}

audit_events <- function(path) {
  vapply(read_audit(path), function(r) r$event, character(1))
}

# Runs `fn` in a fresh R process in the background (with this library
# search path); stdout and stderr are merged and readable as lines.
r_bg_lines <- function(fn) {
  callr::r_bg(fn, stdout = "|", stderr = "2>&1", libpath = .libPaths())
}

# Reads a background process's output until a line matches `pattern` (or
# the process ends, or `timeout` seconds pass); returns all lines so far.
read_until <- function(proc, pattern, timeout = 20, lines = character()) {
  deadline <- Sys.time() + timeout
  while (!any(grepl(pattern, lines)) && Sys.time() < deadline) {
    proc$poll_io(100)
    lines <- c(lines, proc$read_output_lines())
    if (!proc$is_alive()) {
      lines <- c(lines, proc$read_output_lines())
      break
    }
  }
  lines
}

# Runs the later event loop until promise `p` settles (at most `timeout`
# seconds): list(ok, value), `value` being the rejection's condition when
# `ok` is FALSE. Fails the test when the promise does not settle.
wait_promise <- function(p, timeout = 10) {
  state <- new.env(parent = emptyenv())
  state$done <- FALSE
  promises::then(p,
    onFulfilled = function(value) {
      state$done <- TRUE
      state$ok <- TRUE
      state$value <- value
    },
    onRejected = function(err) {
      state$done <- TRUE
      state$ok <- FALSE
      state$value <- err
    }
  )
  deadline <- proc.time()[[3L]] + timeout
  while (!state$done && proc.time()[[3L]] < deadline) later::run_now(0.05)
  if (!state$done) stop("the promise did not settle within ", timeout, " seconds")
  list(ok = state$ok, value = state$value)
}

# Child code that finds the runtime's environment (which holds its send()
# and its other steps) through the call stack, as sandboxed code can, as
# `rt`.
find_runtime <- paste(
  "rt <- Filter(function(e) exists(\"recv_sym\", envir = e, inherits = FALSE),",
  "  lapply(sys.frames(), parent.env))[[1]]"
)

# Replaces securer's internal function `name` with `value` until `.env`
# ends (this testthat predates local_mocked_bindings()).
local_internal <- function(name, value, .env = parent.frame()) {
  ns <- asNamespace("securer")
  real <- get(name, envir = ns)
  unlockBinding(name, ns)
  assign(name, value, envir = ns)
  withr::defer(
    {
      assign(name, real, envir = ns)
      lockBinding(name, ns)
    },
    envir = .env
  )
  invisible(real)
}
