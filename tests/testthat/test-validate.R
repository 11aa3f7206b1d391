# validate_code(): parse without running; advisory warnings.

test_that("valid code gives list(valid = TRUE, error = NULL, warnings = character())", {
  expect_identical(
    validate_code("x <- 1 + 1\ny <- x * 2"),
    list(valid = TRUE, error = NULL, warnings = character())
  )
})

test_that("empty code and comments are valid", {
  expect_true(validate_code("")$valid)
  expect_true(validate_code("# only a comment")$valid)
})

test_that("a syntax error makes the code invalid with the parse message", {
  res <- validate_code("if (TRUE {")
  expect_named(res, c("valid", "error", "warnings"))
  expect_false(res$valid)
  expect_type(res$error, "character")
  expect_length(res$error, 1L)
  expect_match(res$error, "unexpected")
  expect_identical(res$warnings, character())
})

test_that("the parse message gives the line of the error", {
  res <- validate_code("x <- 1\ny <- )")
  expect_false(res$valid)
  expect_match(res$error, "^line 2:")
})

test_that("incomplete code is invalid", {
  res <- validate_code("f <- function(x) {")
  expect_false(res$valid)
  expect_match(res$error, "end of input")
})

test_that("validate_code() does not run the code", {
  marker <- withr::local_tempfile()
  res <- validate_code(sprintf("file.create(%s)", deparse(marker)))
  expect_true(res$valid)
  expect_false(file.exists(marker))
})

test_that("calls such as system() are flagged in warnings", {
  res <- validate_code("system('ls')")
  expect_true(res$valid)
  expect_null(res$error)
  expect_length(res$warnings, 1L)
  expect_match(res$warnings, "system()", fixed = TRUE)
})

test_that("each flagged function is reported once", {
  res <- validate_code("system('a'); system2('b'); system('c'); Sys.setenv(A = 1)")
  expect_length(res$warnings, 3L)
  expect_true(any(grepl("system()", res$warnings, fixed = TRUE)))
  expect_true(any(grepl("system2()", res$warnings, fixed = TRUE)))
  expect_true(any(grepl("Sys.setenv()", res$warnings, fixed = TRUE)))
})

test_that("only calls are flagged, not names in strings or symbols", {
  expect_identical(validate_code("x <- 'system'; y <- list(system = 1)")$warnings, character())
  expect_identical(validate_code("f <- mean; f(1:3)")$warnings, character())
})

test_that("flagged calls nested in other code are found", {
  res <- validate_code("f <- function() { if (TRUE) lapply(1, function(i) eval(quote(i))) }")
  expect_true(any(grepl("eval()", res$warnings, fixed = TRUE)))
})

test_that("warnings are advisory: execute() still runs flagged code", {
  code <- "eval(quote(1 + 1))"
  expect_true(length(validate_code(code)$warnings) > 0L)
  session <- new_session()
  expect_identical(session$execute(code), 2)
})

test_that("validate_code() requires a single string", {
  expect_error(validate_code(c("1", "2")), class = "securer_input_error")
  expect_error(validate_code(1), class = "securer_input_error")
  expect_error(validate_code(NA_character_), class = "securer_input_error")
})

test_that("calls the original documentation flags are flagged", {
  flagged <- function(code) validate_code(code)$warnings
  expect_match(flagged(".Fortran('f')"), ".Fortran()", fixed = TRUE)
  expect_match(flagged("processx::run('ls')"), "processx::run()", fixed = TRUE)
  expect_match(flagged("callr::r(function() 1)"), "callr::r()", fixed = TRUE)
  expect_match(flagged("base::system('ls')"), "base::system()", fixed = TRUE)
  expect_match(flagged("Sys.setenv(A = 1)"), "Sys.setenv()", fixed = TRUE)
  expect_true(any(grepl("eval(parse(text = ...))", flagged("eval(parse(text = 'q()'))"), fixed = TRUE)))
})

test_that("a flagged function passed by name to do.call() and friends is flagged", {
  for (code in c("do.call(system, list('ls'))", "do.call('system', list('ls'))", "match.fun('system2')('ls')")) {
    res <- validate_code(code)$warnings
    expect_true(any(grepl("through", res, fixed = TRUE)), label = code)
  }
})

test_that("file.remove() and unlink() on absolute paths say which path", {
  res <- validate_code("file.remove('/etc/passwd'); unlink('~/data', recursive = TRUE); unlink('rel.txt')")$warnings
  expect_true(any(grepl("file.remove() on the absolute path '/etc/passwd'", res, fixed = TRUE)))
  expect_true(any(grepl("unlink() on the absolute path '~/data'", res, fixed = TRUE)))
  expect_false(any(grepl("'rel.txt'", res, fixed = TRUE)))
})
