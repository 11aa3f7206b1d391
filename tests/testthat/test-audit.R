# Audit log (JSON lines), verbose messages and error sanitising.

iso_utc <- "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$"

local_audit_path <- function(env = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = env)
  file.path(dir, "audit.jsonl")
}

# Audit log -------------------------------------------------------------------

test_that("the audit log records the whole life of a session", {
  path <- local_audit_path()
  session <- new_session(tools = list(query_db_tool()), audit_log = path)
  session$execute("query_db('iris', 3)")
  try(session$execute("stop('boom')"), silent = TRUE)
  try(session$execute("Sys.sleep(10)", timeout = 1), silent = TRUE)
  session$restart()
  session$close()
  expect_identical(
    audit_events(path),
    c(
      "session_start",
      "execute_start", "tool_call", "tool_result", "execute_complete",
      "execute_start", "execute_error",
      "execute_start", "session_restart", "execute_timeout",
      "session_restart",
      "session_close"
    )
  )
})

test_that("every audit line is one JSON object with a UTC timestamp and the session id", {
  path <- local_audit_path()
  session <- new_session(tools = list(query_db_tool()), audit_log = path)
  session$execute("query_db('iris', 3)")
  session$close()
  lines <- readLines(path)
  expect_gt(length(lines), 4L)
  for (line in lines) {
    expect_true(jsonlite::validate(line), label = line)
    rec <- jsonlite::fromJSON(line, simplifyVector = FALSE)
    expect_type(rec, "list")
    expect_match(rec$timestamp, iso_utc, perl = TRUE)
    expect_type(rec$session_id, "character")
    expect_true(nzchar(rec$session_id))
  }
  records <- read_audit(path)
  ids <- unique(vapply(records, function(r) r$session_id, ""))
  expect_length(ids, 1L)
  # jsonlite reads the whole file as a stream of objects too.
  df <- jsonlite::stream_in(file(path), verbose = FALSE)
  expect_identical(nrow(df), length(lines))
  expect_true(all(c("timestamp", "event", "session_id") %in% names(df)))
})

test_that("timestamps are in UTC and taken when the event happens", {
  path <- local_audit_path()
  before <- Sys.time()
  session <- new_session(audit_log = path)
  after <- Sys.time()
  rec <- read_audit(path)[[1]]
  when <- as.POSIXct(rec$timestamp, format = "%Y-%m-%dT%H:%M:%OSZ", tz = "UTC")
  # Between the two readings of the clock (to the millisecond).
  expect_gte(as.numeric(when), floor(as.numeric(before) * 1000) / 1000)
  expect_gte(ceiling(as.numeric(after) * 1000) / 1000, as.numeric(when))
})

test_that("the audit log records tool calls with their arguments and results", {
  path <- local_audit_path()
  session <- new_session(tools = list(query_db_tool()), audit_log = path)
  session$execute("query_db('iris', 3)")
  records <- read_audit(path)
  call <- Filter(function(r) r$event == "tool_call", records)[[1]]
  expect_identical(call$tool, "query_db")
  expect_identical(call$args$table, "iris")
  expect_equal(call$args$limit, 3)
  result <- Filter(function(r) r$event == "tool_result", records)[[1]]
  expect_identical(result$tool, "query_db")
  expect_true(result$ok)
  start <- Filter(function(r) r$event == "execute_start", records)[[1]]
  expect_identical(start$code, "query_db('iris', 3)")
  done <- Filter(function(r) r$event == "execute_complete", records)[[1]]
  expect_equal(done$tool_calls, 1)
  expect_true(is.numeric(done$duration))
})

test_that("a failed tool call is recorded as not ok", {
  path <- local_audit_path()
  bad <- securer_tool("bad", "Fails", fn = function() stop("no table"))
  session <- new_session(tools = list(bad), audit_log = path)
  session$execute("try(bad(), silent = TRUE); 1")
  result <- Filter(function(r) r$event == "tool_result", read_audit(path))[[1]]
  expect_false(result$ok)
  expect_match(result$error, "no table", fixed = TRUE)
})

test_that("the audit log records the child's error message", {
  path <- local_audit_path()
  session <- new_session(audit_log = path)
  try(session$execute("stop('recorded failure')"), silent = TRUE)
  err <- Filter(function(r) r$event == "execute_error", read_audit(path))[[1]]
  # `error` is the original API's field; `message` the same text.
  expect_match(err$error, "recorded failure", fixed = TRUE)
  expect_identical(err$message, err$error)
})

test_that("the audit log is created with mode 0600", {
  path <- local_audit_path()
  session <- new_session(audit_log = path)
  expect_true(file.exists(path))
  expect_identical(file.info(path)$mode, as.octmode("600"))
})

test_that("a symbolic link as audit log is refused", {
  skip_on_os("windows")
  dir <- withr::local_tempdir()
  target <- file.path(dir, "target.jsonl")
  file.create(target)
  link <- file.path(dir, "link.jsonl")
  skip_if_not(file.symlink(target, link), "cannot create symbolic links")
  before <- securer_children()
  err <- expect_error(
    SecureSession$new(sandbox = FALSE, audit_log = link),
    class = "securer_audit_error"
  )
  expect_s3_class(err, "securer_error")
  expect_match(conditionMessage(err), "symbolic link", fixed = TRUE)
  expect_identical(readLines(target), character())
  expect_identical(setdiff(securer_children(), before), integer())
})

test_that("a dangling symbolic link as audit log is refused", {
  skip_on_os("windows")
  dir <- withr::local_tempdir()
  link <- file.path(dir, "link.jsonl")
  skip_if_not(file.symlink(file.path(dir, "nowhere.jsonl"), link), "cannot create symbolic links")
  expect_error(
    SecureSession$new(sandbox = FALSE, audit_log = link),
    class = "securer_audit_error"
  )
  expect_false(file.exists(file.path(dir, "nowhere.jsonl")))
})

test_that("a symbolic link swapped in after the start is not followed", {
  skip_on_os("windows")
  dir <- withr::local_tempdir()
  path <- file.path(dir, "audit.jsonl")
  target <- file.path(dir, "target.jsonl")
  file.create(target)
  session <- new_session(audit_log = path)
  unlink(path)
  skip_if_not(file.symlink(target, path), "cannot create symbolic links")
  expect_error(session$execute("1"), class = "securer_audit_error")
  expect_identical(readLines(target), character())
  # The failed log write does not leave the session stuck.
  unlink(path)
  expect_identical(session$execute("1 + 1"), 2)
})

test_that("a missing audit log directory is a clear error", {
  dir <- withr::local_tempdir()
  path <- file.path(dir, "no", "such", "dir", "audit.jsonl")
  before <- securer_children()
  err <- expect_error(
    SecureSession$new(sandbox = FALSE, audit_log = path),
    class = "securer_audit_error"
  )
  expect_match(conditionMessage(err), "does not exist", fixed = TRUE)
  expect_match(conditionMessage(err), "such", fixed = TRUE)
  expect_false(dir.exists(file.path(dir, "no")))
  expect_identical(setdiff(securer_children(), before), integer())
})

test_that("an audit log that is a directory is an error", {
  dir <- withr::local_tempdir()
  expect_error(
    SecureSession$new(sandbox = FALSE, audit_log = dir),
    class = "securer_audit_error"
  )
})

test_that("two sessions writing one file append whole lines", {
  path <- local_audit_path()
  a <- new_session(audit_log = path)
  b <- new_session(audit_log = path)
  for (i in 1:5) {
    a$execute(sprintf("%d", i))
    b$execute(sprintf("%d", i))
  }
  records <- read_audit(path)
  ids <- unique(vapply(records, function(r) r$session_id, ""))
  expect_length(ids, 2L)
  per_id <- table(vapply(records, function(r) r$session_id, ""))
  # session_start + 5 x (execute_start + execute_complete) each.
  expect_equal(as.vector(per_id), c(11, 11))
})

test_that("two processes writing one file concurrently produce only whole lines", {
  skip_on_os("windows")
  skip_if_not_installed("callr")
  path <- local_audit_path()
  writer <- function(path) {
    library(securer)
    s <- SecureSession$new(sandbox = FALSE, audit_log = path)
    code <- paste0("'", strrep("x", 2000), "'")
    for (i in 1:40) s$execute(code)
    s$close()
    "done"
  }
  procs <- lapply(1:2, function(i) {
    callr::r_bg(writer, args = list(path = path), libpath = .libPaths())
  })
  withr::defer(for (p in procs) p$kill())
  for (p in procs) p$wait(60000)
  for (p in procs) expect_identical(p$get_result(), "done")
  lines <- readLines(path)
  # 2 x (session_start + 40 x 2 + session_close)
  expect_length(lines, 2L * (1L + 80L + 1L))
  ok <- vapply(lines, jsonlite::validate, logical(1), USE.NAMES = FALSE)
  expect_true(all(ok))
  ids <- vapply(lines, function(l) jsonlite::fromJSON(l)$session_id, "", USE.NAMES = FALSE)
  expect_length(unique(ids), 2L)
})

test_that("without audit_log no file is written", {
  dir <- withr::local_tempdir()
  withr::local_dir(dir)
  session <- new_session()
  session$execute("1")
  expect_identical(list.files(dir, all.files = TRUE, no.. = TRUE), character())
})

# Verbose messages ------------------------------------------------------------

test_that("verbose = TRUE reports the session start with the pid", {
  msgs <- character()
  session <- withCallingHandlers(
    new_session(verbose = TRUE),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  expect_identical(
    msgs,
    sprintf("[securer] Session started (sandbox=FALSE, pid=%d)\n", session$pid())
  )
})

test_that("verbose = TRUE reports tool calls and completed executions", {
  session <- suppressMessages(new_session(tools = list(query_db_tool()), verbose = TRUE))
  msgs <- character()
  withCallingHandlers(
    session$execute('query_db("iris", 3)'),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  expect_true("[securer] Tool call: query_db(table=\"iris\", limit=3)\n" %in% msgs)
  expect_true(any(grepl("^\\[securer\\] Tool result: query_db -> data.frame with 3 rows and 5 columns \\([0-9.e-]+s\\)\n$", msgs)))
  expect_true(any(grepl("^\\[securer\\] Execution complete \\([0-9.]+s\\)\n$", msgs)))
  # The tool call comes first, then its result, then the end.
  expect_identical(
    grep("Tool call|Tool result|Execution complete", msgs, value = TRUE) |> sub(pattern = ":.*|\\(.*", replacement = ""),
    c("[securer] Tool call", "[securer] Tool result", "[securer] Execution complete ")
  )
})

test_that("verbose = TRUE reports a failed tool call with its message", {
  bad <- securer_tool("bad", "Fails", fn = function() stop("no table"))
  session <- suppressMessages(new_session(tools = list(bad), verbose = TRUE))
  msgs <- character()
  withCallingHandlers(
    session$execute("try(bad(), silent = TRUE); 1"),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  expect_true("[securer] Tool call: bad()\n" %in% msgs)
  expect_true(any(grepl("^\\[securer\\] Tool failed: bad: no table \\(", msgs)))
})

test_that("verbose = TRUE reports failures, timeouts, restarts and closing", {
  session <- suppressMessages(new_session(verbose = TRUE))
  msgs <- capture_messages(try(session$execute("stop('x')"), silent = TRUE))
  expect_match(msgs, "^\\[securer\\] Execution failed \\([0-9.]+s\\): x\n$")
  msgs <- capture_messages(try(session$execute("Sys.sleep(10)", timeout = 1), silent = TRUE))
  expect_identical(
    sub("[0-9.]+s", "Ns", msgs),
    c("[securer] Session restarted (timeout)\n", "[securer] Execution timed out (Ns)\n")
  )
  expect_identical(capture_messages(session$restart()), "[securer] Session restarted\n")
  expect_identical(capture_messages(session$close()), "[securer] Session closed\n")
})

test_that("verbose messages can be suppressed with suppressMessages()", {
  expect_silent(suppressMessages({
    session <- new_session(tools = list(query_db_tool()), verbose = TRUE)
    session$execute('query_db("iris", 3)')
    session$close()
  }))
})

test_that("verbose = FALSE prints nothing", {
  expect_silent({
    session <- new_session(tools = list(query_db_tool()))
    session$execute('query_db("iris", 3)')
    session$close()
  })
})

test_that("verbose and sanitize_errors must be flags", {
  expect_error(SecureSession$new(sandbox = FALSE, verbose = "yes"), class = "securer_input_error")
  expect_error(SecureSession$new(sandbox = FALSE, sanitize_errors = NA), class = "securer_input_error")
})

# Sanitised errors -----------------------------------------------------------

sanitized <- new_session(sanitize_errors = TRUE)

test_that("sanitize_errors strips file paths from child errors", {
  err <- expect_error(
    sanitized$execute("stop('cannot open /home/alice/secret.csv')"),
    class = "securer_child_error"
  )
  expect_false(grepl("/home/alice", err$child_message, fixed = TRUE))
  expect_false(grepl("/home/alice", conditionMessage(err), fixed = TRUE))
  expect_false(grepl("secret.csv", err$child_message, fixed = TRUE))
  expect_match(err$child_message, "^cannot open ")
})

test_that("sanitize_errors strips paths from R's own errors", {
  err <- expect_error(
    sanitized$execute("readRDS('/srv/data/private/model.rds')"),
    class = "securer_child_error"
  )
  expect_false(grepl("/srv/data", conditionMessage(err), fixed = TRUE))
})

test_that("sanitize_errors strips process ids", {
  err <- expect_error(
    sanitized$execute("stop(paste('failed in pid', Sys.getpid()))"),
    class = "securer_child_error"
  )
  expect_false(grepl("[0-9]{2,}", err$child_message))
  expect_match(err$child_message, "failed in pid", fixed = TRUE)
})

test_that("sanitize_errors strips the host name", {
  host <- Sys.info()[["nodename"]]
  skip_if(!nzchar(host), "no host name")
  err <- expect_error(
    sanitized$execute("stop(paste('connecting to', Sys.info()[['nodename']], 'failed'))"),
    class = "securer_child_error"
  )
  expect_identical(err$child_message, "connecting to <host> failed")
})

test_that("sanitize_errors leaves words that merely contain the host name", {
  host <- Sys.info()[["nodename"]]
  skip_if(!nzchar(host) || grepl("[^A-Za-z0-9-]", host), "no simple host name")
  word <- paste0("x", host, "x")
  err <- expect_error(
    sanitized$execute(sprintf("stop('bad value %s')", word)),
    class = "securer_child_error"
  )
  expect_identical(err$child_message, paste("bad value", word))
})

test_that("sanitized messages are also what the audit log records", {
  path <- local_audit_path()
  session <- new_session(sanitize_errors = TRUE, audit_log = path)
  try(session$execute("stop('cannot open /home/alice/secret.csv')"), silent = TRUE)
  err <- Filter(function(r) r$event == "execute_error", read_audit(path))[[1]]
  expect_match(err$message, "^cannot open ")
  expect_false(grepl("/home/alice", err$message, fixed = TRUE))
})

test_that("without sanitize_errors the message is kept as is", {
  session <- new_session()
  err <- expect_error(
    session$execute("stop('cannot open /home/alice/secret.csv')"),
    class = "securer_child_error"
  )
  expect_identical(err$child_message, "cannot open /home/alice/secret.csv")
})
