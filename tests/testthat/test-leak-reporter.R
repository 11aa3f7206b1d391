# The reporter that fails test files which leave processes, fds,
# connections or temporary files behind (tests/testthat/leak-reporter.R).

source(test_path("leak-reporter.R"), local = TRUE)

# Runs the test file made of `code` under a LeakReporter; returns the
# reporter (its `found` field lists what each file left behind).
run_with_leak_reporter <- function(code) {
  dir <- withr::local_tempdir()
  path <- file.path(dir, "test-probe.R")
  writeLines(code, path)
  reporter <- LeakReporter(testthat::SilentReporter)$new()
  testthat::with_reporter(reporter, testthat::test_file(path, reporter = reporter))
  reporter
}

test_that("a file that cleans up passes", {
  reporter <- run_with_leak_reporter(c(
    'test_that("clean", {',
    '  s <- securer::SecureSession$new(sandbox = FALSE)',
    '  expect_identical(s$execute("1"), 1)',
    '  s$close()',
    '})'
  ))
  expect_length(reporter$found, 0L)
})

test_that("a session left open is a leaked process, fds and a temporary folder", {
  reporter <- run_with_leak_reporter(c(
    'test_that("leaky", {',
    # Cold: a session forked from a zygote dies with it when the reporter
    # stops the zygotes (its fds and folder still show the leak).
    '  withr::local_options(securer.zygote = FALSE)',
    '  s <- securer::SecureSession$new(sandbox = FALSE)',
    '  assign("s", s, envir = globalenv())',
    '  expect_true(TRUE)',
    '})'
  ))
  s <- get("s", envir = globalenv())
  rm("s", envir = globalenv())
  found <- reporter$found[["test-probe.R"]]
  pid <- s$pid()
  s$close()
  expect_true(any(endsWith(found$processes, paste0(" ", pid))), label = paste(found$processes, collapse = ", "))
  expect_true(length(found$fds) >= 1L)
  expect_true(any(startsWith(found$files, "securer-")))
})

test_that("an open connection and a stray temporary file are leaks", {
  reporter <- run_with_leak_reporter(c(
    'test_that("leaky", {',
    '  con <- file(file.path(tempdir(), "stray-file"), "w")',
    '  assign("con", con, envir = globalenv())',
    '  expect_true(TRUE)',
    '})'
  ))
  con <- get("con", envir = globalenv())
  rm("con", envir = globalenv())
  close(con)
  unlink(file.path(tempdir(), "stray-file"))
  found <- reporter$found[["test-probe.R"]]
  expect_length(found$connections, 1L)
  expect_identical(found$files, "stray-file")
  expect_true(any(grepl("stray-file", found$fds, fixed = TRUE)))
})
