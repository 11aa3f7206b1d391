# Classed conditions and the helpers that clean and check what they carry.

test_that("untrusted_text() removes control sequences and keeps text", {
  untrusted_text <- securer:::untrusted_text
  expect_identical(untrusted_text("a\033[31mb\033]0;t\007c\rd\001e"), "abcde")
  expect_identical(untrusted_text("line\n\ttab"), "line\n\ttab")
  expect_identical(untrusted_text(NA_character_), NA_character_)
  expect_identical(untrusted_text(NULL), NA_character_)
  expect_identical(untrusted_text(1), NA_character_)
  bad <- "a\xffb"
  Encoding(bad) <- "UTF-8"
  expect_true(validUTF8(untrusted_text(bad)))
})

test_that("untrusted_text() cuts long text with a marker", {
  out <- securer:::untrusted_text(strrep("x", 100), max_chars = 10)
  expect_match(out, "^x{10}\\[\\.\\.\\. truncated: 90 more characters\\]$")
})

test_that("untrusted_classes() keeps at most 20 short, clean class names", {
  out <- securer:::untrusted_classes(c(paste0("c", 1:30), NA, "e\033[1m"))
  expect_length(out, 20L)
  expect_false(any(grepl("\033", out, fixed = TRUE)))
  expect_identical(securer:::untrusted_classes(1:3), "error")
})

test_that("rs_check() raises the class that matches the Rust error's kind", {
  rs_err <- function(kind) {
    structure(
      list(kind = kind, layer = NA_character_, message = "it {broke}", errno = NA_integer_, pid = NA_integer_),
      class = "securer_rs_error"
    )
  }
  expect_identical(securer:::rs_check(42, "never"), 42)
  expect_error(securer:::rs_check(rs_err("input"), "Doing it."), class = "securer_input_error")
  expect_error(securer:::rs_check(rs_err("spawn"), "Doing it."), class = "securer_child_error")
  expect_error(securer:::rs_check(rs_err("launch"), "Doing it."), class = "securer_sandbox_error")
  expect_error(securer:::rs_check(rs_err("value"), "Doing it."), class = "securer_value_error")
  expect_error(securer:::rs_check(rs_err("audit"), "Doing it."), class = "securer_audit_error")
  err <- expect_error(securer:::rs_check(rs_err("io"), "Doing it."), class = "securer_ipc_error")
  expect_s3_class(err, "securer_error")
  expect_identical(err$kind, "io")
  # The Rust message is text, not a template.
  expect_match(conditionMessage(err), "it {broke}", fixed = TRUE)
})

test_that("securer_error_cnd() makes the condition without signalling it", {
  cnd <- securer:::securer_error_cnd("Made {1 + 1}.", "securer_test_error", field = 3)
  expect_s3_class(cnd, c("securer_test_error", "securer_error"))
  expect_match(conditionMessage(cnd), "Made 2.", fixed = TRUE)
  expect_identical(cnd$field, 3)
})

test_that("check_count() and check_timeout() accept what they should", {
  expect_silent(securer:::check_count(3))
  expect_silent(securer:::check_count(NULL, allow_null = TRUE))
  expect_error(securer:::check_count(2.5), class = "securer_input_error")
  expect_error(securer:::check_count(Inf), class = "securer_input_error")
  expect_identical(securer:::check_timeout(NULL), Inf)
  expect_identical(securer:::check_timeout(2), 2)
  expect_error(securer:::check_timeout("2"), class = "securer_input_error")
})
