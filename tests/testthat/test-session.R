# SecureSession: life cycle, state, arguments, no leaks. The execution
# engine (test-execution.R) and what comes back (test-outcome.R) have
# their own files.
# One session is shared by the tests that do not depend on its state.
shared <- new_session(tools = list(echo_tool()))

# Life cycle ----------------------------------------------------------------

test_that("a new session runs a child process", {
  expect_true(shared$is_alive())
  pid <- shared$pid()
  expect_type(pid, "integer")
  expect_true(pid > 0L)
  expect_false(pid == Sys.getpid())
  expect_true(pid_running(pid))
})

test_that("execute() returns the value of the last expression", {
  expect_identical(shared$execute("1 + 1"), 2)
  expect_identical(shared$execute("x <- 1L; y <- 2L; x + y"), 3L)
  expect_identical(shared$execute("letters[1:3]"), c("a", "b", "c"))
  expect_null(shared$execute("NULL"))
})

test_that("a session leaves the caller's random numbers alone", {
  # R's generator is the caller's (set.seed() makes an analysis
  # reproducible): starting, using and closing a session draws nothing
  # from it. Control: a session id drawn with sample.int() shifts the
  # caller's next numbers.
  want <- withr::with_seed(1, runif(3))
  for (sandbox in list(FALSE, TRUE)) {
    if (isTRUE(sandbox)) skip_if_no_sandbox()
    got <- withr::with_seed(1, {
      s <- SecureSession$new(sandbox = sandbox, audit_log = withr::local_tempfile())
      s$execute("runif(1)")
      s$close()
      runif(3)
    })
    expect_identical(got, want)
  }
})

test_that("state persists between execute() calls", {
  session <- new_session()
  session$execute("counter <- 10")
  session$execute("counter <- counter + 1")
  expect_identical(session$execute("counter"), 11)
  expect_identical(session$execute("exists('counter')"), TRUE)
})

test_that("restart() clears the global environment and replaces the child", {
  session <- new_session()
  session$execute("kept <- 1")
  old_pid <- session$pid()
  session$restart()
  expect_true(session$is_alive())
  expect_false(identical(session$pid(), old_pid))
  expect_true(wait_pid_gone(old_pid))
  expect_false(session$execute("exists('kept')"))
  expect_identical(session$execute("2 * 21"), 42)
})

test_that("close() stops the child and later calls are refused", {
  session <- new_session()
  pid <- session$pid()
  expect_invisible(session$close())
  expect_false(session$is_alive())
  expect_identical(session$pid(), NA_integer_)
  expect_true(wait_pid_gone(pid))
  expect_error(session$execute("1"), "closed", class = "securer_session_error")
  # Closing twice is harmless.
  expect_no_error(session$close())
})

test_that("restart() revives a closed session", {
  session <- new_session()
  session$close()
  session$restart()
  expect_true(session$is_alive())
  expect_identical(session$execute("1 + 2"), 3)
})

test_that("tools() returns the tools named by tool name", {
  session <- new_session(tools = list(query_db_tool(), echo_tool()))
  tools <- session$tools()
  expect_named(tools, c("query_db", "echo"))
  expect_true(S7::S7_inherits(tools$query_db, securer_tool_class))
  expect_identical(tools$echo@args, list(x = "any"))
  expect_identical(shared$tools()$echo@name, "echo")
  expect_length(new_session()$tools(), 0L)
})

test_that("format() and print() describe the session", {
  session <- new_session(tools = list(echo_tool()))
  expect_identical(
    session$format(),
    sprintf("<SecureSession> running, pid %d; sandbox: off; 1 tool; 0 executions", session$pid())
  )
  session$execute("1")
  expect_match(session$format(), "; 1 execution$")
  session$execute("1")
  expect_match(session$format(), "; 2 executions$")
  expect_output(print(session), session$format(), fixed = TRUE)
  out <- capture.output(res <- withVisible(print(session)))
  expect_false(res$visible)
  expect_identical(res$value, session)
  session$close()
  expect_match(session$format(), "^<SecureSession> closed; sandbox: off")
})

test_that("sandbox_info() is a data frame of layers", {
  info <- shared$sandbox_info()
  expect_s3_class(info, "data.frame")
  expect_named(info, c("layer", "active", "detail"))
  expect_type(info$layer, "character")
  expect_type(info$active, "logical")
  expect_type(info$detail, "character")
  # Without a sandbox no isolation layer may claim to be active.
  iso <- c("namespaces", "filesystem", "landlock", "seccomp", "network")
  expect_false(any(info$active[info$layer %in% iso]))
})

# Arguments -----------------------------------------------------------------

test_that("SecureSession$new() checks its arguments", {
  expect_error(SecureSession$new(sandbox = FALSE, sandbox_strict = "yes"), class = "securer_input_error")
  expect_error(SecureSession$new(sandbox = FALSE, max_executions = "2"), class = "securer_input_error")
  expect_error(SecureSession$new(sandbox = FALSE, max_executions = 0), class = "securer_input_error")
})

# No leaks ------------------------------------------------------------------

test_that("close() leaves no child process and no temporary directory", {
  before <- securer_tempdirs()
  session <- SecureSession$new(sandbox = FALSE)
  pid <- session$pid()
  expect_length(setdiff(securer_tempdirs(), before), 1L)
  expect_true(pid %in% securer_children())
  session$close()
  expect_true(wait_pid_gone(pid))
  expect_false(pid %in% securer_children())
  expect_identical(setdiff(securer_tempdirs(), before), character())
})

test_that("restarts and timeouts leave no child process or temporary directory", {
  before <- securer_tempdirs()
  session <- SecureSession$new(sandbox = FALSE)
  pids <- session$pid()
  session$restart()
  pids <- c(pids, session$pid())
  try(session$execute("Sys.sleep(10)", timeout = 1), silent = TRUE)
  pids <- c(pids, session$pid())
  expect_length(setdiff(securer_tempdirs(), before), 1L)
  session$close()
  for (pid in pids) expect_true(wait_pid_gone(pid), label = paste("pid", pid))
  expect_identical(setdiff(securer_tempdirs(), before), character())
})

test_that("garbage collection of an unreferenced session stops its child", {
  before <- securer_tempdirs()
  pid <- local({
    session <- SecureSession$new(sandbox = FALSE)
    session$execute("1")
    session$pid()
  })
  expect_true(pid_running(pid))
  invisible(gc())
  invisible(gc())
  expect_true(wait_pid_gone(pid))
  expect_identical(setdiff(securer_tempdirs(), before), character())
})

test_that("no child process remains after the host R process exits", {
  skip_on_os("windows")
  skip_if_not_installed("callr")
  proc <- r_bg_lines(function() {
    library(securer)
    session <- SecureSession$new(sandbox = FALSE)
    session$execute("x <- 1")
    cat("CHILD_PID", session$pid(), "\n")
    flush(stdout())
    invisible(NULL)
  })
  withr::defer(proc$kill())
  proc$wait(20000)
  out <- proc$read_all_output_lines()
  line <- grep("^CHILD_PID", out, value = TRUE)
  expect_length(line, 1L)
  child_pid <- as.integer(strsplit(line, " ")[[1]][[2]])
  expect_false(proc$is_alive())
  expect_true(wait_pid_gone(child_pid))
})

test_that("no child process remains after the host R process is killed", {
  skip_on_os("windows")
  skip_if_not_installed("callr")
  proc <- r_bg_lines(function() {
    library(securer)
    session <- SecureSession$new(sandbox = FALSE)
    cat("CHILD_PID", session$pid(), "\n")
    flush(stdout())
    Sys.sleep(60)
  })
  withr::defer(proc$kill())
  out <- read_until(proc, "^CHILD_PID")
  line <- grep("^CHILD_PID", out, value = TRUE)
  expect_length(line, 1L)
  child_pid <- as.integer(strsplit(line, " ")[[1]][[2]])
  expect_true(pid_running(child_pid))
  proc$kill()
  expect_true(wait_pid_gone(child_pid))
})
