# SecureSession: life cycle, execute() and its limits, values, no leaks.
# One session is shared by the tests that do not depend on its state.
shared <- new_session(tools = list(echo_tool()))

# Life cycle ---------------------------------------------------------------

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
  start <- Sys.time()
  seen <- numeric()
  shared$execute(
    "cat('first\\n'); Sys.sleep(0.6); cat('second\\n')",
    output_handler = function(line) {
      seen[[line]] <<- as.numeric(difftime(Sys.time(), start, units = "secs"))
    }
  )
  expect_named(seen, c("first", "second"))
  expect_gt(seen[["second"]] - seen[["first"]], 0.4)
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

# Invisible values ----------------------------------------------------------

test_that("an invisible last value comes back invisibly", {
  res <- withVisible(shared$execute("invisible(5)"))
  expect_false(res$visible)
  expect_identical(res$value, 5)
  res <- withVisible(shared$execute("z <- 'assigned'"))
  expect_false(res$visible)
  expect_identical(res$value, "assigned")
  expect_true(withVisible(shared$execute("5"))$visible)
})

test_that("an invisible function definition as the last expression is not an error", {
  res <- withVisible(shared$execute("helper_fn <- function(x) x + 1"))
  expect_false(res$visible)
  expect_identical(shared$execute("helper_fn(1)"), 2)
})

# Errors ----------------------------------------------------------------------

test_that("an error in the child raises securer_child_error with its message and call", {
  err <- expect_error(
    shared$execute("g <- function(x) stop('inner failure: ', x); g('a')"),
    class = "securer_child_error"
  )
  expect_s3_class(err, "securer_error")
  expect_identical(err$child_message, "inner failure: a")
  expect_identical(err$child_call, "g(\"a\")")
  expect_match(conditionMessage(err), "inner failure: a", fixed = TRUE)
})

test_that("a top-level stop() in the child reports no call", {
  err <- expect_error(shared$execute("stop('top level')"), class = "securer_child_error")
  expect_identical(err$child_message, "top level")
  expect_null(err$child_call)
})

test_that("child error messages with braces are not interpolated on the host", {
  err <- expect_error(
    shared$execute("stop('{Sys.getpid()} {{x}}')"),
    class = "securer_child_error"
  )
  expect_identical(err$child_message, "{Sys.getpid()} {{x}}")
  expect_match(conditionMessage(err), "{Sys.getpid()} {{x}}", fixed = TRUE)
})

test_that("the session stays usable after a child error", {
  session <- new_session()
  session$execute("a <- 1")
  pid <- session$pid()
  expect_error(session$execute("stop('x')"), class = "securer_child_error")
  expect_identical(session$pid(), pid)
  expect_identical(session$execute("a"), 1)
})

test_that("output printed before an error is kept on the condition", {
  err <- expect_error(
    shared$execute("cat('before\\n'); stop('after')"),
    class = "securer_child_error"
  )
  expect_identical(err$output, "before")
})

test_that("a child that exits is replaced and the session keeps answering", {
  session <- new_session()
  pid <- session$pid()
  expect_error(session$execute("quit(save = 'no', status = 3)"), "died", class = "securer_child_error")
  expect_true(wait_pid_gone(pid))
  expect_false(identical(session$pid(), pid))
  expect_identical(session$execute("1 + 1"), 2)
})

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

test_that("SecureSession$new() checks its arguments", {
  expect_error(SecureSession$new(sandbox = FALSE, sandbox_strict = "yes"), class = "securer_input_error")
  expect_error(SecureSession$new(sandbox = FALSE, max_executions = "2"), class = "securer_input_error")
  expect_error(SecureSession$new(sandbox = FALSE, max_executions = 0), class = "securer_input_error")
})

# Limits and hooks ------------------------------------------------------------

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

# Timeouts --------------------------------------------------------------------

test_that("a timeout raises securer_timeout and replaces the child", {
  session <- new_session()
  session$execute("before_timeout <- TRUE")
  pid <- session$pid()
  started <- Sys.time()
  err <- expect_error(session$execute("Sys.sleep(30)", timeout = 1), class = "securer_timeout")
  elapsed <- as.numeric(difftime(Sys.time(), started, units = "secs"))
  expect_s3_class(err, "securer_error")
  expect_match(conditionMessage(err), "Execution timed out after 1 seconds", fixed = TRUE)
  expect_lt(elapsed, 10)
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

# Ctrl-C ----------------------------------------------------------------------

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
  sent <- Sys.time()
  proc$interrupt()
  proc$wait(15000)
  elapsed <- as.numeric(difftime(Sys.time(), sent, units = "secs"))
  out <- c(out, proc$read_all_output_lines())
  expect_false(proc$is_alive())
  expect_true("CAUGHT securer_interrupt" %in% out, label = paste(out, collapse = "\n"))
  expect_true(any(grepl("^NEXT 2", out)), label = paste(out, collapse = "\n"))
  expect_false("not interrupted" %in% out)
  expect_lt(elapsed, 5)
  expect_true(wait_pid_gone(child_pid))
})

# Values cross faithfully -----------------------------------------------------

test_that("data frames come back with factors, Dates, POSIXct and row names", {
  code <- "data.frame(
    n = c(1.5, NA, 3),
    i = c(1L, NA, 3L),
    f = factor(c('a', 'b', NA), levels = c('b', 'a')),
    d = as.Date(c('2024-01-01', NA, '2024-03-01')),
    t = as.POSIXct(c('2024-01-01 10:00:00', '2024-06-01 12:30:00', NA), tz = 'America/New_York'),
    s = c('x', NA, 'z'),
    l = c(TRUE, NA, FALSE),
    row.names = c('r1', 'r2', 'r3'),
    stringsAsFactors = FALSE
  )"
  expected <- eval(parse(text = code))
  res <- shared$execute(code)
  expect_identical(res, expected)
  expect_identical(attr(res$t, "tzone"), "America/New_York")
  expect_identical(levels(res$f), c("b", "a"))
  expect_identical(rownames(res), c("r1", "r2", "r3"))
})

test_that("built-in data frames come back identical", {
  expect_identical(shared$execute("mtcars"), mtcars)
  expect_identical(shared$execute("iris"), iris)
})

test_that("matrices keep their dimnames", {
  code <- "matrix(1:6, nrow = 2, dimnames = list(c('a', 'b'), c('x', 'y', 'z')))"
  expect_identical(shared$execute(code), eval(parse(text = code)))
  expect_identical(shared$execute("diag(3)"), diag(3))
  expect_identical(shared$execute("array(1:24, 2:4)"), array(1:24, 2:4))
})

test_that("named and nested lists come back identical", {
  code <- "list(a = 1, b = list(c = 'x', d = list(e = TRUE)), NULL, f = 1:3)"
  expect_identical(shared$execute(code), eval(parse(text = code)))
})

test_that("NA of every type comes back with its type", {
  res <- shared$execute("list(NA, NA_integer_, NA_real_, NA_character_, NA_complex_)")
  expect_identical(res, list(NA, NA_integer_, NA_real_, NA_character_, NA_complex_))
  expect_identical(vapply(res, typeof, ""), c("logical", "integer", "double", "character", "complex"))
  expect_identical(shared$execute("c(1, NA, NaN, Inf, -Inf)"), c(1, NA, NaN, Inf, -Inf))
})

test_that("attributes and classes are kept", {
  code <- "structure(1:3, my_attr = list(k = 'v'), units = 'cm', class = 'difftime')"
  expect_identical(shared$execute(code), eval(parse(text = code)))
  expect_identical(shared$execute("c(a = 1, b = 2)"), c(a = 1, b = 2))
})

test_that("raw and complex vectors come back identical", {
  expect_identical(shared$execute("as.raw(c(0, 1, 127, 255))"), as.raw(c(0, 1, 127, 255)))
  expect_identical(shared$execute("charToRaw('securer')"), charToRaw("securer"))
  expect_identical(shared$execute("complex(real = 1:3, imaginary = -1)"), complex(real = 1:3, imaginary = -1))
})

test_that("compact sequences come back as plain values", {
  res <- shared$execute("1:10")
  expect_identical(res, 1:10)
  expect_identical(res + 0L, 1:10)
  expect_identical(shared$execute("seq_len(1e5)")[1e5], 100000L)
})

test_that("a long vector of 1e6 doubles comes back identical", {
  res <- shared$execute("set.seed(42); runif(1e6)")
  set.seed(42)
  expect_identical(res, runif(1e6))
})

test_that("Unicode strings come back identical", {
  strings <- c("caf\u00e9", "\u65e5\u672c\u8a9e", "\U0001F600", "\u00fc\u00df\u2603", "")
  code <- "c('caf\\u00e9', '\\u65e5\\u672c\\u8a9e', '\\U0001F600', '\\u00fc\\u00df\\u2603', '')"
  expect_identical(shared$execute(code), strings)
  # Also when the code itself holds the characters.
  expect_identical(shared$execute("x <- 'caf\u00e9 \u65e5\u672c'; x"), "caf\u00e9 \u65e5\u672c")
  expect_identical(shared$execute("nchar('\u65e5\u672c\u8a9e')"), 3L)
})

# Value safety ----------------------------------------------------------------

test_that("a closure sent as a result is refused with a securer_value_error", {
  err <- expect_error(shared$execute("function(x) x"), class = "securer_value_error")
  expect_s3_class(err, "securer_error")
  expect_match(conditionMessage(err), "closure")
})

test_that("an environment sent as a result is refused", {
  err <- expect_error(shared$execute("new.env()"), class = "securer_value_error")
  expect_match(conditionMessage(err), "environment")
  err <- expect_error(shared$execute("globalenv()"), class = "securer_value_error")
  expect_match(conditionMessage(err), "environment")
})

test_that("a language object sent as a result is refused", {
  err <- expect_error(shared$execute("quote(x + 1)"), class = "securer_value_error")
  expect_match(conditionMessage(err), "language")
})

test_that("a symbol sent as a result is refused", {
  err <- expect_error(shared$execute("as.name('x')"), class = "securer_value_error")
  expect_match(conditionMessage(err), "symbol")
})

test_that("a function frame holding an unforced promise is refused", {
  # A promise hides in the frame of a function that never forced its argument.
  err <- expect_error(
    shared$execute("f <- function(x) environment(); f(stop('never run'))"),
    class = "securer_value_error"
  )
  expect_match(conditionMessage(err), "environment|promise")
})

test_that("a closure nested in a list is refused", {
  err <- expect_error(shared$execute("list(a = 1, b = list(f = mean))"), class = "securer_value_error")
  expect_match(conditionMessage(err), "closure|builtin")
})

test_that("the session stays usable after a refused value", {
  session <- new_session()
  session$execute("keep <- 'me'")
  expect_error(session$execute("new.env()"), class = "securer_value_error")
  expect_identical(session$execute("keep"), "me")
})

# No leaks ----------------------------------------------------------------------

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

test_that("values from the sandbox may carry only allowed S3 classes", {
  s <- new_session()
  # print() of a "vignette" would open the file it names on the host.
  err <- expect_error(
    s$execute('structure(list(pdf = "/etc/passwd"), class = "vignette")'),
    class = "securer_value_error"
  )
  expect_match(conditionMessage(err), "class 'vignette'", fixed = TRUE)
  expect_identical(s$execute("1 + 1"), 2)
  expect_s3_class(s$execute("data.frame(a = 1, d = Sys.Date())"), "data.frame")
})

test_that("options(securer.allowed_classes) extends the allowed classes", {
  withr::local_options(securer.allowed_classes = "my_result")
  s <- new_session()
  expect_s3_class(s$execute('structure(list(x = 1), class = "my_result")'), "my_result")
})

test_that("tool results may carry any class into the sandbox", {
  tool <- securer_tool("mk", "make an object",
    fn = function() structure(list(x = 1), class = "host_thing"), args = list()
  )
  s <- new_session(tools = list(tool))
  expect_identical(s$execute("class(mk())"), "host_thing")
})
