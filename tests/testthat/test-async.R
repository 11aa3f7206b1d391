# SecureSession$execute_async(): promises settled from the later event loop.

test_that("execute_async() resolves with the value and frees the host thread meanwhile", {
  s <- new_session()
  p <- s$execute_async("Sys.sleep(0.3); 6 * 7")
  expect_true(promises::is.promise(p))
  # The call returned at once: the session is busy while the host goes on.
  expect_identical(s$get_state(), "busy")
  got <- wait_promise(p)
  expect_true(got$ok)
  expect_identical(strip_output(got$value), 42)
  expect_identical(s$get_state(), "idle")
})

test_that("execute_async() rejects with the classed error of failing code", {
  s <- new_session()
  got <- wait_promise(s$execute_async("stop('async trouble')"))
  expect_false(got$ok)
  expect_s3_class(got$value, "securer_child_error")
  expect_match(conditionMessage(got$value), "async trouble", fixed = TRUE)
  expect_identical(s$execute("'next'"), "next")
})

test_that("execute_async() serves tool calls", {
  s <- new_session(tools = list(echo_tool()))
  got <- wait_promise(s$execute_async("echo(21) * 2"))
  expect_identical(strip_output(got$value), 42)
})

test_that("two sessions' asynchronous executions overlap in time", {
  a <- new_session()
  b <- new_session()
  code <- "t0 <- Sys.time(); Sys.sleep(0.5); c(as.numeric(t0), as.numeric(Sys.time()))"
  got <- wait_promise(promises::promise_all(a$execute_async(code), b$execute_async(code)))
  spans <- lapply(got$value, strip_output)
  # Each started before the other finished.
  expect_lt(spans[[1]][[1]], spans[[2]][[2]])
  expect_lt(spans[[2]][[1]], spans[[1]][[2]])
})

test_that("execute_async() times out and the session is replaced", {
  s <- new_session()
  got <- wait_promise(s$execute_async("Sys.sleep(30)", timeout = 1))
  expect_s3_class(got$value, "securer_timeout")
  expect_identical(s$execute("1"), 1)
})

test_that("closing the session rejects its pending execution", {
  s <- new_session()
  p <- s$execute_async("Sys.sleep(30)")
  later::run_now(0.05)
  s$close()
  got <- wait_promise(p)
  expect_false(got$ok)
  expect_s3_class(got$value, "securer_session_error")
})

test_that("execute_async() on a busy session rejects", {
  s <- new_session()
  p1 <- s$execute_async("Sys.sleep(0.2); 1")
  got <- wait_promise(s$execute_async("2"))
  expect_s3_class(got$value, "securer_session_error")
  expect_identical(strip_output(wait_promise(p1)$value), 1)
})

test_that("read_async() resolves with read()'s answer: value, visibility, output", {
  s <- new_session()
  s$call("cat('working\\n'); x <- 6 * 7")
  got <- wait_promise(s$read_async())
  expect_true(got$ok)
  expect_identical(strip_output(got$value$value), 42)
  expect_false(got$value$visible)
  expect_identical(got$value$output, "working")
  expect_null(got$value$error)
  expect_identical(s$get_state(), "idle")
})

test_that("read_async() resolves with the error of failing code, as read() does", {
  s <- new_session()
  s$call("stop('no luck')")
  got <- wait_promise(s$read_async())
  expect_true(got$ok)
  expect_s3_class(got$value$error, "securer_child_error")
})

test_that("read_async() without a running execution rejects", {
  s <- new_session()
  got <- wait_promise(s$read_async())
  expect_false(got$ok)
  expect_s3_class(got$value, "securer_session_error")
})
