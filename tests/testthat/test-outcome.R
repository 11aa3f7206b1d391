# What the host makes of the child's answer: values, and errors whose text
# came from the child (cleaned and bounded before it reaches a console).

# One session is shared by the tests that do not depend on its state.
shared <- new_session(tools = list(echo_tool()))

test_that("terminal escape sequences in a child's error never reach the host's console", {
  err <- expect_error(
    shared$execute(paste0(
      "stop('\\033]52;c;ZXZpbA==\\a copied \\033]0;title\\033\\\\ ",
      "\\033[31mred\\033[0m \\033P1;2q\\033\\\\ bell\\a cr\\r end')"
    )),
    class = "securer_child_error"
  )
  for (text in c(err$child_message, conditionMessage(err))) {
    expect_false(grepl("[\x01-\x08\x0b-\x1f\x7f]", text, useBytes = TRUE), label = text)
  }
  expect_match(err$child_message, "copied", fixed = TRUE)
  expect_match(err$child_message, "red", fixed = TRUE)
  expect_match(err$child_message, "end", fixed = TRUE)
  expect_no_match(err$child_message, "ZXZpbA==", fixed = TRUE)
})

test_that("C1 control sequences are removed, printable Unicode is kept", {
  err <- expect_error(
    shared$execute("stop('a\\u009b31mb \\u00e9\\u4e2d\\u2603')"),
    class = "securer_child_error"
  )
  # U+009B is the one-character CSI: "\u009b31m" is a colour sequence.
  expect_identical(err$child_message, "ab \u00e9\u4e2d\u2603")
})

test_that("a huge error message is cut with a marker, and its condition formats", {
  withr::local_options(securer.max_message_chars = 1000)
  err <- expect_error(
    shared$execute("stop(paste(rep('word', 1e5), collapse = ' '))"),
    class = "securer_child_error"
  )
  expect_lt(nchar(err$child_message), 1100)
  # (R itself cut the message at 8 KB in the child.)
  expect_match(err$child_message, "\\[\\.\\.\\. truncated: [0-9]+ more characters\\]$")
  expect_type(conditionMessage(err), "character")
})

test_that("the call and the classes of a child's error are bounded too", {
  err <- expect_error(
    shared$execute(paste0(
      "stop(structure(class = c(strrep('k', 150), paste0('c', 1:100), 'error', 'condition'),",
      " list(message = 'many classes', call = quote(f(`\\033[2J` = 1)))))"
    )),
    class = "securer_child_error"
  )
  expect_length(err$child_class, 20L)
  expect_true(all(nchar(err$child_class) <= 100L + 40L))
  expect_false(grepl("\033", err$child_call, fixed = TRUE))
})

test_that("braces in a child's error are text, never cli templates", {
  err <- expect_error(shared$execute("stop('{Sys.getpid()} {.strong x}')"), class = "securer_child_error")
  expect_match(conditionMessage(err), "{Sys.getpid()} {.strong x}", fixed = TRUE)
})

test_that("an invisible result stays invisible; a visible one visible", {
  expect_invisible(shared$execute("y <- 5"))
  expect_visible(shared$execute("y"))
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

# Errors of the sandboxed code ----------------------------------------------

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

# Values cross faithfully ---------------------------------------------------

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

# Value safety --------------------------------------------------------------

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
