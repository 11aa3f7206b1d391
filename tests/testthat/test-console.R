# The console transcript (R/console.R, rendered by inst/child/runtime.R):
# what R's console would show for the code, in order, rendered in the
# child so that values that cannot cross still show; cleaned and bounded on
# the host whatever the child sends. The behaviour runs without a sandbox
# (fast); the attacks and the key cases run in every tier.

shared <- lazy_session(function(..., .env) new_session(.env = .env))

console_of <- function(session, code, ...) {
  tryCatch(session$execute(code, ...), error = function(e) NULL)
  session$last_console()
}

# Sessions of each tier, made on first use and shared by this file.
console_tiers <- c("warm", "cold", "fallback", "none")
tier_sessions <- list(
  warm = lazy_session(tier_session, "warm"),
  cold = lazy_session(tier_session, "cold"),
  fallback = lazy_session(tier_session, "fallback"),
  none = shared
)
console_session <- function(tier) {
  if (tier != "none") skip_if_no_sandbox()
  s <- tier_sessions[[tier]]()
  if (tier == "warm") require_or_skip(zygote_session(s), "the session was not forked from the zygote")
  s
}

# What a fresh R process prints for `code` at its console (R -q
# --no-echo would hide the values: the script is sourced with echo off but
# print.eval on, which prints visible values as the console does).
host_console <- function(code) {
  f <- withr::local_tempfile(fileext = ".R")
  writeLines(code, f)
  out <- system2(
    file.path(R.home("bin"), "Rscript"),
    c("--vanilla", "-e", shQuote(sprintf("invisible(source(%s, print.eval = TRUE))", deparse(f)))),
    stdout = TRUE, stderr = TRUE
  )
  paste(out, collapse = "\n")
}

test_that("the transcript holds output, messages, warnings and the value, in order", {
  s <- shared()
  got <- console_of(s, "print('a'); message('b'); cat('c\\n'); x <- log(-1); 42")
  expect_identical(
    got,
    paste0(
      "[1] \"a\"\nb\nc\nWarning message:\nIn log(-1) : NaNs produced\n[1] 42\n"
    )
  )
  # The value is not among the output lines; execute() keeps its contract.
  v <- s$execute("print('a'); 42")
  expect_identical(strip_output(v), 42)
  expect_identical(attr(v, "output"), "[1] \"a\"")
})

test_that("warnings come after their expression's value, formatted as the console does", {
  s <- shared()
  got <- console_of(s, "f <- function(x) { warning('careful'); x }; f(1)")
  expect_identical(got, "[1] 1\nWarning message:\nIn f(1) : careful\n")
  got <- console_of(s, "for (i in 1:3) warning(paste('w', i)); 0")
  expect_match(got, "Warning messages:\n1: w 1\n2: w 2\n3: w 3\n[1] 0\n", fixed = TRUE)
  got <- console_of(s, "for (i in 1:12) warning('again')")
  expect_identical(got, "There were 12 warnings (use warnings() to see them)\n")
  # warn = 1 shows a warning at once, warn = 2 makes it an error.
  got <- console_of(s, "options(warn = 1); warning('now'); print('after'); options(warn = 0)")
  expect_match(got, "^Warning: now\n\\[1\\] \"after\"\n")
  err <- expect_error(s$execute("options(warn = 2); warning('fatal')"), class = "securer_child_error")
  expect_match(conditionMessage(err), "(converted from warning) fatal", fixed = TRUE)
  s$execute("options(warn = 0)")
})

test_that("the transcript matches a real R console for typical analyses", {
  s <- shared()
  code <- paste(
    "fit <- lm(mpg ~ wt, mtcars)",
    "summary(fit)",
    "xtabs(~ cyl + gear, mtcars)",
    "t.test(extra ~ group, data = sleep)",
    "mpg ~ wt + hp",
    "simpleCondition('a condition')",
    sep = "\n"
  )
  got <- console_of(s, code)
  want <- host_console(code)
  expect_identical(sub("\n$", "", got), want)
  expect_match(got, "Residual standard error: 3.046 on 30 degrees of freedom", fixed = TRUE)
  expect_match(got, "Welch Two Sample t-test", fixed = TRUE)
})

test_that("S4 objects are shown as show() shows them", {
  s <- shared()
  got <- console_of(s, "setClass('Pt', representation(x = 'numeric')); new('Pt', x = 1)")
  expect_match(got, "An object of class \"Pt\"\nSlot \"x\":\n[1] 1", fixed = TRUE)
})

test_that("a value that cannot cross names its class, says what to return, and its console shows it", {
  s <- shared()
  err <- expect_error(s$execute("lm(mpg ~ wt, mtcars)"), class = "securer_value_error")
  msg <- conditionMessage(err)
  expect_match(msg, "class \"lm\"", fixed = TRUE)
  # The first part of it that cannot cross (its QR decomposition).
  expect_match(msg, "values of class 'qr' cannot cross", fixed = TRUE)
  expect_match(msg, "coef(fit)", fixed = TRUE)
  expect_match(msg, "broom::tidy(fit)", fixed = TRUE)
  expect_match(msg, "as.data.frame(x)", fixed = TRUE)
  expect_match(msg, "$last_console()", fixed = TRUE)
  expect_match(s$last_console(), "Coefficients:", fixed = TRUE)
  expect_match(err$console, "Coefficients:", fixed = TRUE)
  # A closure too, and the session goes on.
  expect_error(s$execute("function(x) x"), class = "securer_value_error")
  expect_identical(s$last_console(), "function (x) \nx\n")
  expect_identical(s$execute("1 + 1"), 2)
})

test_that("an oversized value raises the documented securer_value_error, naming the option", {
  withr::local_options(securer.max_message_size = 1024^2)
  s <- new_session()
  err <- expect_error(s$execute("runif(2e5)"), class = "securer_value_error")
  expect_s3_class(err, "securer_ipc_error")
  expect_match(conditionMessage(err), "exceeds limit of", fixed = TRUE)
  expect_match(conditionMessage(err), "options(securer.max_message_size = )", fixed = TRUE)
  expect_match(conditionMessage(err), "1 MiB", fixed = TRUE)
  # Its printed form is in the transcript, cut to the transcript's cap.
  expect_match(s$last_console(), "[1] ", fixed = TRUE)
  # A value just under the cap comes back, with its transcript cut to fit.
  v <- s$execute("as.raw(rep(1, 1024^2 - 1000))")
  expect_length(strip_output(v), 1024^2 - 1000)
  expect_match(s$last_console(), "output cut to fit the message limit", fixed = TRUE)
})

test_that("errors close the transcript as the console does", {
  s <- shared()
  got <- console_of(s, "cat('before\\n'); warning('w'); stop('boom')")
  expect_identical(got, "before\nWarning message:\nw \nError: boom\n")
  got <- console_of(s, "f <- function() { warning('first'); stop('second') }; f()")
  expect_identical(got, "Error in f() : second\nIn addition: Warning message:\nIn f() : first\n")
  err <- expect_error(s$execute("log('a')"), class = "securer_child_error")
  expect_identical(err$console, "Error in log(\"a\") : non-numeric argument to mathematical function\n")
  got <- console_of(s, "h <- function(x) stop(strrep('long message ', 8)); h(1)")
  expect_match(got, "^Error in h\\(1\\) : \n  long message")
})

test_that("the transcript is available from $read() and for invisible results", {
  s <- shared()
  s$call("invisible(7)")
  while (s$poll_process(100) != "ready") NULL
  res <- s$read()
  expect_identical(res$console, "")
  expect_identical(res$value, 7)
  s$call("cat('x\\n'); y <- 1")
  while (s$poll_process(100) != "ready") NULL
  expect_identical(s$read()$console, "x\n")
})

test_that("the code closing every connection or leaving sinks does not break the transcript", {
  s <- shared()
  # Closing every connection ends (and loses) this execution's transcript.
  expect_null(console_of(s, "print(1); closeAllConnections(); print(2); 3"))
  expect_identical(strip_output(s$execute("4")), 4)
  expect_identical(s$last_console(), "[1] 4\n")
  sink_file <- "sunk.txt"
  got <- console_of(s, sprintf("sink(%s); print('hidden'); 5", deparse(sink_file)))
  expect_identical(s$execute("6"), 6)
  expect_identical(s$last_console(), "[1] 6\n")
  s$execute(sprintf("unlink(%s)", deparse(sink_file)))
})

test_that("the transcript keeps its head and tail beyond the cap, with a marker", {
  withr::local_options(securer.max_console_bytes = 4000)
  s <- new_session()
  got <- console_of(s, "cat('FIRST\\n'); for (i in 1:2000) cat(i, '\\n'); 'LAST'")
  expect_lte(nchar(got, "bytes"), 4000 + 200)
  expect_match(got, "^FIRST\n")
  expect_match(got, "\\[1\\] \"LAST\"\n$")
  expect_match(got, "bytes of output omitted ...]", fixed = TRUE)
  # The output lines are not cut by the transcript's cap.
  expect_length(s$last_output(), 2001L)
})

test_that("bytes that are not UTF-8 reach the transcript as replacement characters", {
  s <- shared()
  got <- console_of(s, "cat(rawToChar(as.raw(c(0x41, 0xff, 0x42, 0x0a)))); 1")
  expect_true(validUTF8(got))
  expect_match(got, "^A\ufffdB\n")
})

test_that("options(securer.max_console_bytes = 0) turns the transcript off", {
  withr::local_options(securer.max_console_bytes = 0)
  s <- new_session()
  expect_identical(strip_output(s$execute("print('a'); 1")), 1)
  expect_null(s$last_console())
  expect_error(s$execute("lm(mpg ~ wt, mtcars)"), class = "securer_value_error")
})

test_that("a value R cannot print safely is not printed into the transcript", {
  s <- shared()
  # R 4.2's format.POSIXlt overflows a buffer on a long zone name: the
  # checker refuses it, and the child does not print it either.
  expect_error(
    s$execute('structure(Sys.time(), tzone = paste0(strrep("A", 400), "5"))'),
    class = "securer_value_error"
  )
  expect_match(s$last_console(), "[securer: the value is not printed: invalid", fixed = TRUE)
  expect_identical(s$execute("1"), 1)
})

# Attacks: what the child sends as its transcript is untrusted --------------

# Code that makes the runtime send `console` as the transcript of its
# answer (found through the call stack, as sandboxed code can).
forge_console <- function(console_expr) {
  paste0(
    find_runtime, "\n",
    "op <- rt$send_plain; rt$send_plain <- function(kind, value) { rt$send_plain <- op; FALSE }\n",
    "orig <- rt$send_bytes\n",
    "rt$send_bytes <- function(kind, bytes) { rt$send_bytes <- orig; value <- unserialize(bytes); value$console <- ", console_expr, "; orig(kind, serialize(value, NULL, xdr = FALSE)) }\n",
    "'forged'"
  )
}

for (tier in console_tiers) {
  test_that(paste0("a forged transcript is cleaned and bounded on the host (", tier, ")"), {
    s <- console_session(tier)
    # Terminal escapes (OSC 52 clipboard write, colours), NUL-free control
    # bytes, invalid UTF-8 and 10 MB where at most 64 KiB is kept.
    v <- s$execute(forge_console(
      "paste0('FORGED\\033]52;c;ZXZpbA==\\a\\033[31mred\\001\\002', strrep('x', 1e6))"
    ))
    expect_identical(strip_output(v), "forged")
    got <- s$last_console()
    # Control: the forged text is what reached the host.
    expect_match(got, "^FORGED")
    expect_match(got, "red", fixed = TRUE)
    expect_false(grepl("[\001-\010\013-\037\177]", got, useBytes = TRUE))
    expect_true(validUTF8(got))
    expect_lte(nchar(got), 64 * 1024 + 300)
    # Not a string at all: no transcript, and the value still comes.
    expect_identical(strip_output(s$execute(forge_console("list(1, 2)"))), "forged")
    expect_null(s$last_console())
    expect_identical(strip_output(s$execute("2 + 2")), 4)
  })

  test_that(paste0("summary(lm()) and a refused value show in the transcript (", tier, ")"), {
    s <- console_session(tier)
    err <- expect_error(s$execute("summary(lm(mpg ~ wt, mtcars))"), class = "securer_value_error")
    expect_match(s$last_console(), "Multiple R-squared:  0.7528", fixed = TRUE)
    expect_match(s$last_console(), "Coefficients:", fixed = TRUE)
    expect_identical(strip_output(s$execute("coef(lm(mpg ~ wt, mtcars))[['wt']]")), unname(coef(lm(mpg ~ wt, mtcars))[["wt"]]))
  })
}
