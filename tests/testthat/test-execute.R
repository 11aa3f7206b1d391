# execute_r() and with_secure_session(): sessions that close themselves.

test_that("execute_r() returns the value of the last expression", {
  expect_identical(execute_r("x <- 20; x + 1", sandbox = FALSE), 21)
})

test_that("the README example returns 20.98 and prints [1] 20.98", {
  tools <- list(query_db_tool())
  res <- execute_r('data <- query_db("mtcars", 5); mean(data$mpg)',
    tools = tools, sandbox = FALSE
  )
  expect_equal(strip_output(res), mean(mtcars$mpg[1:5]))
  expect_output(print(strip_output(res)), "[1] 20.98", fixed = TRUE)
  expect_identical(capture.output(print(strip_output(res))), "[1] 20.98")
})

test_that("execute_r() keeps printed output in the output attribute", {
  res <- execute_r("print('hello'); 3", sandbox = FALSE)
  expect_identical(attr(res, "output"), "[1] \"hello\"")
  expect_identical(strip_output(res), 3)
})

test_that("execute_r() leaves no child process or temporary directory behind", {
  before_dirs <- securer_tempdirs()
  before_kids <- securer_children()
  pid <- execute_r("Sys.getpid()", sandbox = FALSE)
  expect_true(wait_pid_gone(pid))
  expect_identical(setdiff(securer_children(), before_kids), integer())
  expect_identical(setdiff(securer_tempdirs(), before_dirs), character())
})

test_that("execute_r() closes its session after an error", {
  before_dirs <- securer_tempdirs()
  before_kids <- securer_children()
  err <- expect_error(
    execute_r("stop('failed one-shot')", sandbox = FALSE),
    class = "securer_child_error"
  )
  expect_identical(err$child_message, "failed one-shot")
  deadline <- Sys.time() + 5
  while (length(setdiff(securer_children(), before_kids)) && Sys.time() < deadline) {
    Sys.sleep(0.05)
  }
  expect_identical(setdiff(securer_children(), before_kids), integer())
  expect_identical(setdiff(securer_tempdirs(), before_dirs), character())
})

test_that("execute_r() passes the timeout on", {
  err <- expect_error(
    execute_r("Sys.sleep(30)", timeout = 1, sandbox = FALSE),
    class = "securer_timeout"
  )
  expect_match(conditionMessage(err), "Execution timed out after 1 seconds", fixed = TRUE)
})

test_that("execute_r() validates the code unless told not to", {
  expect_error(execute_r("1 +", sandbox = FALSE), class = "securer_syntax_error")
  expect_error(execute_r("1 +", sandbox = FALSE, validate = FALSE), class = "securer_child_error")
})

test_that("execute_r() refuses code that is not a single string", {
  expect_error(execute_r(c("1", "2"), sandbox = FALSE), class = "securer_input_error")
})

test_that("execute_r() writes the audit log it is given", {
  path <- withr::local_tempfile(fileext = ".jsonl")
  execute_r("1", sandbox = FALSE, audit_log = path)
  events <- audit_events(path)
  expect_identical(events[[1]], "session_start")
  expect_true("execute_complete" %in% events)
  expect_identical(events[[length(events)]], "session_close")
})

test_that("with_secure_session() returns what fn returns and closes the session", {
  seen <- NULL
  res <- with_secure_session(function(s) {
    seen <<- s
    s$execute("x <- 2")
    s$execute("x^10")
  }, sandbox = FALSE)
  expect_identical(res, 1024)
  expect_s3_class(seen, "SecureSession")
  expect_false(seen$is_alive())
})

test_that("with_secure_session() passes its arguments to SecureSession$new()", {
  res <- with_secure_session(function(s) {
    list(tools = names(s$tools()), value = s$execute("query_db('iris', 2)"))
  }, tools = list(query_db_tool()), sandbox = FALSE)
  expect_identical(res$tools, "query_db")
  expect_identical(res$value, head(iris, 2))
})

test_that("with_secure_session() closes the session when fn fails", {
  seen <- NULL
  pid <- NA_integer_
  expect_error(
    with_secure_session(function(s) {
      seen <<- s
      pid <<- s$pid()
      stop("fn failed")
    }, sandbox = FALSE),
    "fn failed"
  )
  expect_false(seen$is_alive())
  expect_true(wait_pid_gone(pid))
})

test_that("with_secure_session() closes the session when the code fails", {
  seen <- NULL
  expect_error(
    with_secure_session(function(s) {
      seen <<- s
      s$execute("stop('code failed')")
    }, sandbox = FALSE),
    class = "securer_child_error"
  )
  expect_false(seen$is_alive())
})

test_that("with_secure_session() requires a function", {
  expect_error(with_secure_session("not a function", sandbox = FALSE), class = "securer_input_error")
})
