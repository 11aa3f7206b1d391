# The execution engine: begin / wait / read, the low-level methods, and
# what happens when the host fails while an execution runs. Sessions run
# with `sandbox = FALSE` (the sandbox has its own tests).
# One session is shared by the tests that do not depend on its state.
shared <- new_session(tools = list(echo_tool()))

# Host-side failures never leave the session one reply behind ----------------

test_that("an output_handler that fails stops the execution; the next call gets its own answer", {
  s <- new_session()
  err <- expect_error(
    s$execute("cat('line\\n'); 'first'", output_handler = function(line) stop("handler broke")),
    class = "securer_host_error"
  )
  expect_match(conditionMessage(err), "handler broke", fixed = TRUE)
  expect_identical(err$recovery, "resynchronised")
  expect_identical(s$get_state(), "idle")
  # Before the fix the child's 'first' was still unread and came back here.
  expect_identical(s$execute("'second'"), "second")
  expect_identical(s$execute("'third'"), "third")
})

test_that("an interrupt while an execution awaits its first event leaves the session in step", {
  s <- new_session()
  # The common execution's first wait is its own (execution_quick_step()):
  # Ctrl-C there, played by the first wait raising an interrupt.
  ns <- asNamespace("securer")
  real <- ns$rs_next_answer
  first <- TRUE
  unlockBinding("rs_next_answer", ns)
  assign("rs_next_answer", function(...) {
    if (first) {
      first <<- FALSE
      rlang::interrupt()
    }
    real(...)
  }, envir = ns)
  withr::defer({
    assign("rs_next_answer", real, envir = ns)
    lockBinding("rs_next_answer", ns)
  })
  got <- tryCatch(s$execute("'first'"), interrupt = function(e) "interrupted")
  expect_identical(got, "interrupted")
  expect_false(first)
  expect_identical(s$get_state(), "idle")
  expect_identical(s$execute("'second'"), "second")
  expect_identical(s$execute("'third'"), "third")
})

test_that("a tool that leaves with a condition that is not an error leaves the session in step", {
  weird <- securer_tool("weird", "Signals a condition that is not an error",
    fn = function() {
      stop(structure(
        class = c("weird_condition", "condition"),
        list(message = "not an error", call = NULL)
      ))
    }
  )
  s <- new_session(tools = list(weird))
  # stop() of a non-error condition passes tryCatch(error = ) and unwinds
  # through execute() to the caller's handler.
  got <- tryCatch(s$execute("weird(); 'unreachable'"), weird_condition = identity)
  expect_s3_class(got, "weird_condition")
  expect_identical(s$get_state(), "idle")
  expect_identical(s$execute("'own answer'"), "own answer")
  # The child saw its tool call fail, and went on.
  expect_true(s$execute("exists('weird')"))
})

test_that("an audit log that fails during an execution stops it with a classed error", {
  dir <- withr::local_tempdir()
  log <- file.path(dir, "audit.jsonl")
  breaker <- securer_tool("breaker", "Replaces the audit log with a folder",
    fn = function() {
      unlink(log)
      dir.create(log)
      TRUE
    }
  )
  s <- new_session(tools = list(breaker), audit_log = log)
  # The end of the failed execution cannot be logged either: a warning.
  expect_warning(
    err <- expect_error(s$execute("breaker(); 'first'"), class = "securer_host_error"),
    class = "securer_audit_warning"
  )
  expect_s3_class(err, "securer_audit_error")
  unlink(log, recursive = TRUE)
  expect_identical(s$execute("'second'"), "second")
})

test_that("an interrupt during a tool call is answered in the child, which stays usable", {
  slow <- securer_tool("slow", "Interrupts the host", fn = function() {
    rlang::interrupt()
  })
  s <- new_session(tools = list(slow))
  err <- expect_error(s$execute("x <- 1; slow()"), class = "securer_interrupt")
  expect_match(conditionMessage(err), "still usable", fixed = TRUE)
  expect_identical(s$execute("x"), 1)
})

# Timeouts ---------------------------------------------------------------------

test_that("a timeout is raised before the replacement child is ready", {
  s <- new_session()
  s$execute("before <- TRUE")
  expect_error(s$execute("Sys.sleep(30)", timeout = 1), class = "securer_timeout")
  # The new child was started but not waited for: the caller got the error
  # first. The next execution waits for it.
  expect_identical(s$get_state(), "starting")
  expect_identical(s$execute("exists('before')"), FALSE)
  expect_identical(s$get_state(), "idle")
})

test_that("timeout = NULL means no timeout", {
  s <- new_session()
  expect_identical(s$execute("Sys.sleep(0.2); 'done'", timeout = NULL), "done")
  expect_identical(s$execute("'inf'", timeout = Inf), "inf")
})

# Bad input gets a classed error at once ---------------------------------------

test_that("code that is not valid UTF-8 text is refused", {
  s <- new_session()
  bad <- "x <- '\xff'"
  Encoding(bad) <- "UTF-8"
  expect_error(s$execute(bad), class = "securer_input_error")
  bytes <- "'\xc3\xa9'"
  Encoding(bytes) <- "bytes"
  expect_error(s$execute(bytes), class = "securer_input_error")
  latin1 <- "'caf\xe9'"
  Encoding(latin1) <- "latin1"
  expect_identical(s$execute(latin1), "caf\u00e9")
})

test_that("max_code_length counts characters, not bytes, on every path", {
  s <- new_session()
  value <- strrep("\u00e9", 10)
  # 12 characters, 22 bytes: the request is built in Rust for the common
  # execution, in R for one with an output handler.
  code <- paste0("'", value, "'")
  expect_identical(s$execute(code, max_code_length = 12), value)
  expect_identical(
    strip_output(s$execute(code, max_code_length = 12, output_handler = function(line) NULL)),
    value
  )
  expect_error(s$execute(code, max_code_length = 11), class = "securer_limit_error")
  expect_error(
    s$execute(code, max_code_length = 11, output_handler = function(line) NULL),
    class = "securer_limit_error"
  )
})

test_that("the numbers of execute() and $new() are checked", {
  s <- new_session()
  expect_error(s$execute("1", max_tool_calls = 1.5), class = "securer_input_error")
  expect_error(s$execute("1", max_output_lines = -1), class = "securer_input_error")
  expect_error(s$execute("1", timeout = "x"), class = "securer_input_error")
  expect_error(s$execute("1", timeout = NA), class = "securer_input_error")
  expect_error(SecureSession$new(sandbox = FALSE, max_executions = 2.5), class = "securer_input_error")
  expect_identical(s$execute("1"), 1)
})

# The low-level methods ----------------------------------------------------------

test_that("call(), poll_process() and read() run an execution without blocking", {
  s <- new_session()
  expect_identical(s$get_state(), "idle")
  expect_identical(s$poll_process(0), "nocall")
  expect_null(s$read())
  s$call("Sys.sleep(0.3); cat('hi\\n'); 6 * 7")
  expect_identical(s$get_state(), "busy")
  expect_identical(s$poll_process(0), "timeout")
  expect_null(s$read())
  while (s$poll_process(100) != "ready") NULL
  res <- s$read()
  expect_identical(s$get_state(), "idle")
  expect_identical(strip_output(res$value), 42)
  expect_true(res$visible)
  expect_identical(res$output, "hi")
  expect_null(res$error)
  expect_null(s$read())
})

test_that("read() returns a failed execution's condition instead of raising it", {
  s <- new_session()
  s$call("stop('low level')")
  while (s$poll_process(100) != "ready") NULL
  res <- s$read()
  expect_s3_class(res$error, "securer_child_error")
  expect_match(conditionMessage(res$error), "low level", fixed = TRUE)
})

test_that("poll_fds() gives the fds to wait on while an execution runs", {
  s <- new_session()
  s$call("Sys.sleep(0.2); 1")
  fds <- s$poll_fds()
  expect_type(fds, "integer")
  expect_true(length(fds) >= 1L)
  while (s$poll_process(100) != "ready") NULL
  expect_identical(strip_output(s$read()$value), 1)
})

test_that("interrupt() stops a running execution and the session answers afterwards", {
  s <- new_session()
  s$execute("kept <- 'yes'")
  s$call("Sys.sleep(30)")
  s$interrupt()
  res <- s$read()
  expect_s3_class(res$error, "securer_interrupt")
  expect_identical(s$execute("kept"), "yes")
})

test_that("a second call() while one runs is refused", {
  s <- new_session()
  s$call("Sys.sleep(0.2)")
  expect_error(s$call("1"), class = "securer_session_error")
  while (s$poll_process(100) != "ready") NULL
  s$read()
  expect_identical(s$execute("2"), 2)
})

# Output --------------------------------------------------------------------

test_that("the output attribute holds stdout and stderr lines", {
  res <- shared$execute("cat('to stdout\\n'); message('to stderr'); 42")
  expect_identical(attr(res, "output"), c("to stdout", "to stderr"))
  expect_identical(strip_output(res), 42)
})

test_that("visible values of earlier expressions are printed, as at the console", {
  res <- shared$execute("1:3\ninvisible(4)\n5")
  expect_identical(attr(res, "output"), "[1] 1 2 3")
  expect_identical(strip_output(res), 5)
})

test_that("warnings in the child appear in the output", {
  res <- shared$execute("f <- function() { warning('careful'); 7 }; f()")
  out <- attr(res, "output")
  expect_true(any(grepl("Warning message", out)))
  expect_true(any(grepl("careful", out, fixed = TRUE)))
  expect_identical(strip_output(res), 7)
})

test_that("a value without output has no output attribute", {
  expect_null(attributes(shared$execute("c(1, 2)")))
})

test_that("last_output() returns the lines of the last execution", {
  shared$execute("cat('one\\ntwo\\n')")
  expect_identical(shared$last_output(), c("one", "two"))
  shared$execute("1")
  expect_identical(shared$last_output(), character())
})

test_that("output_handler receives each line in order", {
  lines <- character()
  shared$execute(
    "for (i in 1:5) cat(sprintf('line %d\\n', i)); 0",
    output_handler = function(line) lines <<- c(lines, line)
  )
  expect_identical(lines, sprintf("line %d", 1:5))
})

test_that("output_handler receives lines as they arrive, not at the end", {
  # The child prints its second line only once the handler has seen the
  # first (a file the handler creates): delivered at the end, it would
  # wait until the timeout.
  marker <- withr::local_tempfile()
  seen <- character()
  shared$execute(
    sprintf(
      "cat('first\\n'); while (!file.exists('%s')) Sys.sleep(0.01); cat('second\\n')",
      marker
    ),
    timeout = 60,
    output_handler = function(line) {
      seen <<- c(seen, line)
      if (line == "first") file.create(marker)
    }
  )
  expect_identical(seen, c("first", "second"))
})

test_that("output_handler must be a function", {
  expect_error(shared$execute("1", output_handler = "cat"), class = "securer_input_error")
})

test_that("max_output_lines truncates the output with a marker line", {
  seen <- character()
  res <- shared$execute(
    "cat(paste0('l', 1:20), sep = '\\n'); 1",
    max_output_lines = 5,
    output_handler = function(line) seen <<- c(seen, line)
  )
  expected <- c(paste0("l", 1:5), "[output truncated after 5 lines]")
  expect_identical(attr(res, "output"), expected)
  expect_identical(shared$last_output(), expected)
  expect_identical(seen, expected)
})

test_that("output that fits max_output_lines gets no marker", {
  res <- shared$execute("cat(paste0('l', 1:5), sep = '\\n'); 1", max_output_lines = 5)
  expect_identical(attr(res, "output"), paste0("l", 1:5))
})

test_that("max_output_lines also truncates output arriving over time", {
  seen <- character()
  res <- shared$execute(
    "for (i in 1:6) { cat(sprintf('%d\\n', i)); Sys.sleep(0.05) }; 1",
    max_output_lines = 3,
    output_handler = function(line) seen <<- c(seen, line)
  )
  expected <- c("1", "2", "3", "[output truncated after 3 lines]")
  expect_identical(attr(res, "output"), expected)
  expect_identical(seen, expected)
})

# Requests and their checks -------------------------------------------------

test_that("a syntax error is refused before anything is sent", {
  session <- new_session()
  session$execute("y <- 1")
  pid <- session$pid()
  err <- expect_error(session$execute("y <- 2\nif ("), class = "securer_syntax_error")
  expect_s3_class(err, "securer_error")
  expect_match(conditionMessage(err), "nothing was run", fixed = TRUE)
  # The first line was not run, and the child was not replaced.
  expect_identical(session$execute("y"), 1)
  expect_identical(session$pid(), pid)
})

test_that("a syntax error found by the child's own parse is the host's syntax error", {
  session <- new_session()
  session$execute("cat('hi\\n'); y <- 1; y")
  output <- session$last_output()
  console <- session$last_console()
  # The common execution leaves the check to the child's parse; with an
  # output handler the host parses first: the same error either way.
  quick <- expect_error(session$execute("y <- 2\nif ("), class = "securer_syntax_error")
  general <- expect_error(
    session$execute("y <- 2\nif (", output_handler = function(line) NULL),
    class = "securer_syntax_error"
  )
  expect_identical(class(quick), class(general))
  expect_identical(conditionMessage(quick), conditionMessage(general))
  # Nothing was run, and the last execution's output and transcript stay.
  expect_identical(session$last_output(), output)
  expect_identical(session$last_console(), console)
  expect_match(format(session), "; 1 execution$")
  expect_identical(session$execute("y"), 1)
  # $call() raises it at once, as it always has.
  expect_error(session$call("if ("), class = "securer_syntax_error")
  expect_identical(session$get_state(), "idle")
  # In a batch, the piece's error.
  pool <- SecureSessionPool$new(size = 1, sandbox = FALSE)
  withr::defer(pool$close())
  res <- pool$execute_many(c("1", "if (", "3"))
  expect_identical(res[c(1, 3)], list(1, 3))
  expect_s3_class(res[[2]], "securer_syntax_error")
})

test_that("validate = FALSE lets the child report the syntax error", {
  err <- expect_error(shared$execute("if (", validate = FALSE), class = "securer_child_error")
  expect_match(err$child_message, "unexpected")
})

test_that("execute() checks its arguments", {
  expect_error(shared$execute(c("1", "2")), class = "securer_input_error")
  expect_error(shared$execute(NA_character_), class = "securer_input_error")
  expect_error(shared$execute(1), class = "securer_input_error")
  expect_error(shared$execute("1", timeout = -1), class = "securer_input_error")
  expect_error(shared$execute("1", validate = NA), class = "securer_input_error")
})

test_that("a second execute() while one runs is refused", {
  holder <- new.env()
  reenter <- securer_tool("reenter", "Calls execute() again",
    fn = function() holder$session$execute("1 + 1")
  )
  session <- new_session(tools = list(reenter))
  holder$session <- session
  msg <- session$execute("tryCatch(reenter(), error = function(e) conditionMessage(e))")
  expect_match(msg, "already executing", fixed = TRUE)
  # The host-side condition is a securer_session_error.
  inner <- NULL
  catcher <- securer_tool("catcher", "Records the re-entrant error",
    fn = function() {
      inner <<- tryCatch(holder$session$execute("1"), error = function(e) e)
      TRUE
    }
  )
  session2 <- new_session(tools = list(catcher))
  holder$session <- session2
  expect_true(session2$execute("catcher()"))
  expect_s3_class(inner, "securer_session_error")
  # Both sessions answer afterwards.
  expect_identical(session$execute("1 + 1"), 2)
  expect_identical(session2$execute("1 + 1"), 2)
})

test_that("an uncaught re-entrant execute() surfaces as a tool error in the child", {
  holder <- new.env()
  reenter <- securer_tool("reenter", "Calls execute() again",
    fn = function() holder$session$execute("1")
  )
  session <- new_session(tools = list(reenter))
  holder$session <- session
  err <- expect_error(session$execute("reenter()"), class = "securer_child_error")
  expect_match(err$child_message, "Tool 'reenter' failed", fixed = TRUE)
  expect_match(err$child_message, "already executing", fixed = TRUE)
})

test_that("restart() while executing is refused", {
  holder <- new.env()
  restarter <- securer_tool("restarter", "Calls restart()",
    fn = function() holder$session$restart()
  )
  session <- new_session(tools = list(restarter))
  holder$session <- session
  session$execute("kept <- 'yes'")
  pid <- session$pid()
  msg <- session$execute("tryCatch(restarter(), error = function(e) conditionMessage(e))")
  expect_match(msg, "Cannot restart a session while it is executing code", fixed = TRUE)
  expect_identical(session$pid(), pid)
  expect_identical(session$execute("kept"), "yes")
})

# Limits and hooks ----------------------------------------------------------

test_that("max_executions limits the number of executions", {
  session <- new_session(max_executions = 2)
  expect_identical(session$execute("1"), 1)
  expect_identical(session$execute("2"), 2)
  err <- expect_error(session$execute("3"), class = "securer_limit_error")
  expect_s3_class(err, "securer_error")
  expect_match(
    conditionMessage(err),
    "Maximum executions (2) reached for this session",
    fixed = TRUE
  )
})

test_that("a pre_execute_hook returning FALSE blocks the execution", {
  seen <- character()
  session <- new_session(pre_execute_hook = function(code) {
    seen <<- c(seen, code)
    !grepl("forbidden", code)
  })
  session$execute("v <- 'before'")
  err <- expect_error(
    session$execute("v <- 'forbidden'"),
    "Execution blocked by pre_execute_hook",
    class = "securer_blocked_error"
  )
  expect_s3_class(err, "securer_error")
  expect_identical(session$execute("v"), "before")
  expect_identical(seen, c("v <- 'before'", "v <- 'forbidden'", "v"))
})

test_that("a pre_execute_hook returning NULL or TRUE allows the execution", {
  session <- new_session(pre_execute_hook = function(code) if (grepl("null", code)) NULL else TRUE)
  expect_identical(session$execute("'null'"), "null")
  expect_identical(session$execute("'true'"), "true")
})

test_that("pre_execute_hook must be a function", {
  expect_error(
    SecureSession$new(sandbox = FALSE, pre_execute_hook = "no"),
    class = "securer_input_error"
  )
})

test_that("max_code_length refuses longer code", {
  code <- strrep("1", 60)
  err <- expect_error(
    shared$execute(code, max_code_length = 50),
    class = "securer_limit_error"
  )
  expect_match(conditionMessage(err), "60 characters", fixed = TRUE)
  code <- paste0("'", strrep("a", 48), "'")
  expect_identical(nchar(code), 50L)
  expect_identical(shared$execute(code, max_code_length = 50), strrep("a", 48))
})

test_that("the default max_code_length is 100000 characters", {
  code <- paste0("'", strrep("a", 100001), "'")
  expect_error(shared$execute(code), class = "securer_limit_error")
})

test_that("max_tool_calls makes the extra call fail inside the child", {
  res <- shared$execute(
    "n <- 0
     msg <- tryCatch({ for (i in 1:3) { echo(i); n <- n + 1 }; 'no error' },
       error = function(e) conditionMessage(e))
     list(n = n, msg = msg)",
    max_tool_calls = 2
  )
  expect_identical(res$n, 2)
  expect_match(res$msg, "Maximum tool calls (2)", fixed = TRUE)
  # The limit is per execution.
  expect_identical(shared$execute("a <- echo(1); b <- echo(2); echo(3)", max_tool_calls = 3), 3)
})

# Timeouts ------------------------------------------------------------------

test_that("a timeout raises securer_timeout and replaces the child", {
  session <- new_session()
  session$execute("before_timeout <- TRUE")
  pid <- session$pid()
  err <- expect_error(session$execute("Sys.sleep(30)", timeout = 1), class = "securer_timeout")
  expect_s3_class(err, "securer_error")
  expect_match(conditionMessage(err), "Execution timed out after 1 seconds", fixed = TRUE)
  expect_false(identical(session$pid(), pid))
  expect_true(wait_pid_gone(pid))
  expect_true(session$is_alive())
  expect_identical(session$execute("1 + 1"), 2)
  expect_false(session$execute("exists('before_timeout')"))
})

test_that("a busy loop that never checks for interrupts still times out", {
  session <- new_session()
  pid <- session$pid()
  expect_error(session$execute("repeat {}", timeout = 1), class = "securer_timeout")
  expect_true(wait_pid_gone(pid))
  expect_identical(session$execute("'alive'"), "alive")
})

test_that("output printed before a timeout is kept on the condition", {
  session <- new_session()
  err <- expect_error(
    session$execute("cat('started\\n'); Sys.sleep(30)", timeout = 1),
    class = "securer_timeout"
  )
  expect_identical(err$output, "started")
})

# Ctrl-C --------------------------------------------------------------------

test_that("interrupting execute() stops the evaluation and leaves the session usable", {
  skip_on_os("windows")
  skip_if_not_installed("callr")
  proc <- r_bg_lines(function() {
    library(securer)
    session <- SecureSession$new(sandbox = FALSE)
    cat("CHILD_PID", session$pid(), "\n")
    res <- tryCatch(
      session$execute(
        "cat('STARTED\\n'); Sys.sleep(30); 'not interrupted'",
        output_handler = function(line) {
          cat(line, "\n", sep = "")
          flush(stdout())
        }
      ),
      securer_interrupt = function(e) "CAUGHT securer_interrupt",
      interrupt = function(e) "CAUGHT plain interrupt"
    )
    cat(res, "\n", sep = "")
    cat("NEXT", session$execute("1 + 1"), "\n")
    session$close()
    flush(stdout())
  })
  withr::defer(proc$kill())
  out <- read_until(proc, "^STARTED")
  expect_true(any(out == "STARTED"), label = paste(out, collapse = "\n"))
  child_pid <- as.integer(sub("CHILD_PID ", "", grep("^CHILD_PID", out, value = TRUE)))
  proc$interrupt()
  proc$wait(15000)
  out <- c(out, proc$read_all_output_lines())
  expect_false(proc$is_alive())
  expect_true("CAUGHT securer_interrupt" %in% out, label = paste(out, collapse = "\n"))
  expect_true(any(grepl("^NEXT 2", out)), label = paste(out, collapse = "\n"))
  expect_false("not interrupted" %in% out)
  expect_true(wait_pid_gone(child_pid))
})
