test_that("a value is printed as the R console prints it", {
  expect_identical(format_tool_result(42), "[1] 42")
  expect_identical(format_tool_result("a"), "[1] \"a\"")
  expect_identical(
    format_tool_result(list(a = 1)),
    paste(utils::capture.output(print(list(a = 1))), collapse = "\n")
  )
})

test_that("NULL becomes \"NULL\"", {
  expect_identical(format_tool_result(NULL), "NULL")
})

test_that("the result is a single string", {
  res <- format_tool_result(matrix(1:6, 2))
  expect_type(res, "character")
  expect_length(res, 1L)
  expect_identical(res, paste(utils::capture.output(print(matrix(1:6, 2))), collapse = "\n"))
})

test_that("a data frame of up to 20 rows is printed in full", {
  df <- data.frame(x = 1:20, y = letters[1:20])
  res <- format_tool_result(df)
  expect_identical(res, paste(utils::capture.output(print(df)), collapse = "\n"))
  expect_no_match(res, "more rows", fixed = TRUE)
})

test_that("a long data frame shows its first 10 rows and how many are left out", {
  res <- format_tool_result(mtcars)
  lines <- strsplit(res, "\n", fixed = TRUE)[[1]]
  expect_length(lines, 12L) # header, 10 rows, note
  expect_match(lines[2], "^Mazda RX4 ")
  expect_match(lines[11], "^Merc 280 ")
  expect_identical(lines[12], "# ... with 22 more rows (32 total)")
})

test_that("a long data frame keeps its row note when the line budget is small", {
  res <- format_tool_result(mtcars, max_lines = 4)
  lines <- strsplit(res, "\n", fixed = TRUE)[[1]]
  expect_identical(lines[length(lines)], "# ... with 29 more rows (32 total)")
  expect_lte(length(lines), 6L)
})

test_that("long output is cut after max_lines lines with a marker", {
  res <- format_tool_result(1:1000, max_lines = 3)
  lines <- strsplit(res, "\n", fixed = TRUE)[[1]]
  full <- utils::capture.output(print(1:1000))
  expect_length(lines, 4L)
  expect_identical(lines[1:3], full[1:3])
  expect_identical(lines[4], sprintf("[... truncated: %d more lines]", length(full) - 3L))
})

test_that("output within max_lines has no marker", {
  res <- format_tool_result(1:10, max_lines = 1)
  expect_identical(res, utils::capture.output(print(1:10)))
})

test_that("long text is cut after max_chars characters with a marker", {
  x <- strrep("a", 10000)
  res <- format_tool_result(x, max_chars = 100)
  full <- utils::capture.output(print(x))
  expect_identical(
    res,
    paste0(substr(full, 1, 100), "\n[... truncated: ", nchar(full) - 100L, " more characters]")
  )
  expect_lt(nchar(res), 150L)
})

test_that("the character cut falls on a line end when one is close", {
  x <- c(strrep("a", 60), strrep("b", 60))
  res <- format_tool_result(x, max_chars = 100)
  lines <- strsplit(res, "\n", fixed = TRUE)[[1]]
  full <- utils::capture.output(print(x))
  expect_identical(lines[1], full[1])
  expect_match(lines[length(lines)], "^\\[\\.\\.\\. truncated: \\d+ more characters\\]$")
})

test_that("a huge vector is printed only in part and says entries were left out", {
  x <- as.numeric(seq_len(1e7))
  res <- format_tool_result(x)
  lines <- strsplit(res, "\n", fixed = TRUE)[[1]]
  expect_lte(length(lines), 52L)
  expect_match(lines[length(lines) - 1L], "^\\[\\.\\.\\. truncated: \\d+ more lines\\]$")
  expect_match(lines[length(lines)], "max.print", fixed = TRUE)
})

test_that("the \"output\" attribute comes first under Output:, then the value under Result:", {
  value <- structure(3, output = c("[1] \"step 1\"", "done"))
  expect_identical(
    format_tool_result(value),
    "Output:\n[1] \"step 1\"\ndone\n\nResult:\n[1] 3"
  )
})

test_that("the \"output\" attribute is not printed as part of the value", {
  value <- structure(1:3, output = "hello")
  res <- format_tool_result(value)
  expect_no_match(res, "attr(", fixed = TRUE)
  expect_match(res, "Result:\n[1] 1 2 3", fixed = TRUE)
})

test_that("a value without output has no headings", {
  res <- format_tool_result(1:3)
  expect_no_match(res, "Output:", fixed = TRUE)
  expect_no_match(res, "Result:", fixed = TRUE)
})

test_that("output and value share the line budget and the value keeps its share", {
  value <- structure(1:1000, output = as.character(1:100))
  res <- format_tool_result(value, max_lines = 10)
  parts <- strsplit(res, "\n\nResult:\n", fixed = TRUE)[[1]]
  output_lines <- strsplit(sub("^Output:\n", "", parts[1]), "\n", fixed = TRUE)[[1]]
  value_lines <- strsplit(parts[2], "\n", fixed = TRUE)[[1]]
  expect_identical(output_lines, c(as.character(1:5), "[... truncated: 95 more lines]"))
  expect_length(value_lines, 6L)
  expect_match(value_lines[6], "^\\[\\.\\.\\. truncated: \\d+ more lines\\]$")
})

test_that("short output leaves the rest of the line budget to the value", {
  value <- structure(1:1000, output = "note")
  res <- format_tool_result(value, max_lines = 10)
  value_lines <- strsplit(strsplit(res, "Result:\n", fixed = TRUE)[[1]][2], "\n", fixed = TRUE)[[1]]
  expect_length(value_lines, 10L) # 9 lines and the marker
})

test_that("output and value share the character budget", {
  value <- structure(strrep("v", 5000), output = strrep("o", 5000))
  res <- format_tool_result(value, max_chars = 1000)
  expect_lt(nchar(res), 1200L)
  expect_identical(
    res,
    paste0(
      "Output:\n", strrep("o", 500), "\n[... truncated: 4500 more characters]",
      "\n\nResult:\n[1] \"", strrep("v", 495), "\n[... truncated: 4506 more characters]"
    )
  )
})

test_that("colour codes are removed", {
  value <- structure(1, output = "\033[31mred\033[39m")
  expect_match(format_tool_result(value), "Output:\nred\n", fixed = TRUE)
})

test_that("a value returned by $execute() shows its printed output", {
  session <- new_session()
  value <- session$execute("print('hi'); x <- 6 * 7; x")
  expect_identical(format_tool_result(value), "Output:\n[1] \"hi\"\n\nResult:\n[1] 42")
})

test_that("invalid budgets are refused", {
  expect_error(format_tool_result(1, max_lines = 0), class = "securer_input_error")
  expect_error(format_tool_result(1, max_chars = "a"), class = "securer_input_error")
})

