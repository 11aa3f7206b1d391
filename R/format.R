#' Format an R value as a tool result string
#'
#' Turns the value of an execution into compact, bounded text for a
#' language model: the value is printed as the R console would print it,
#' and long results are cut with a marker saying how much was left out.
#'
#' * Printed lines captured during the execution (the `"output"` attribute
#'   that [SecureSession]'s `$execute()` adds) come first, under an
#'   `Output:` heading, followed by the value under `Result:`. A value
#'   without that attribute is printed on its own, with no heading.
#' * A data frame of more than 20 rows shows its first 10 rows and a line
#'   `# ... with N more rows (M total)`.
#' * Text longer than `max_lines` lines ends with
#'   `[... truncated: N more lines]`; text longer than `max_chars`
#'   characters ends with `[... truncated: N more characters]`. When there
#'   is both output and a value, the value gets at least half of each
#'   budget.
#' * `NULL` becomes `"NULL"`.
#' * The images of the `"plots"` attribute are not part of the text (see
#'   [format_tool_content()], which sends them as images).
#'
#' @param value An R value, typically returned by `$execute()` or
#'   [execute_r()].
#' @param max_lines Maximum number of lines kept (markers and headings are
#'   not counted).
#' @param max_chars Maximum number of characters kept (markers and
#'   headings are not counted).
#' @return A single string.
#' @seealso [securer_as_ellmer_tool()], which uses it for the text sent
#'   back to the model.
#' @examples
#' format_tool_result(42)
#' format_tool_result(NULL)
#' writeLines(format_tool_result(mtcars))
#' writeLines(format_tool_result(1:1000, max_lines = 3))
#'
#' # A value with printed output, as returned by $execute()
#' value <- structure(3, output = c("[1] \"step 1\"", "done"))
#' writeLines(format_tool_result(value))
#' @export
format_tool_result <- function(value, max_lines = 50, max_chars = 4000) {
  check_number(max_lines, min = 0, allow_inf = TRUE)
  check_number(max_chars, min = 0, allow_inf = TRUE)
  output <- attr(value, "output", exact = TRUE)
  if (is.character(output)) {
    attr(value, "output") <- NULL
  } else {
    output <- NULL
  }
  format_execution(value, output, TRUE, max_lines, max_chars)
}

# What a language model is shown of one finished execution, `res` being
# `$read()`'s answer (value, visible, output): a list of parts, each
# `list(type = "text", text = )` (or, for images, `list(type = "image",
# mime_type = , data = <base64>)`). The one place where an execution
# becomes content for a model: the ellmer tool (ellmer_tool_value()) and
# the MCP server (mcp_content_block()) turn these parts into their own
# content types, so what is rendered here (plots, console text) reaches
# both.
execution_content <- function(res) {
  value <- res$value
  if (!is.null(value)) attr(value, "output") <- NULL
  text <- format_execution(value, res$output, isTRUE(res$visible),
    max_lines = 50, max_chars = 4000
  )
  list(list(type = "text", text = text))
}

# The text of one execution: its printed `output` lines, then `value` when
# it was `visible`. Used by format_tool_result() and the ellmer tool (which
# knows visibility and takes output from `$last_output()`, so that output
# is not lost when the value is NULL and cannot carry an attribute).
format_execution <- function(value, output, visible, max_lines, max_chars) {
  output <- clean_lines(output)
  # Printing them would draw them.
  if (!is.null(attr(value, "plots", exact = TRUE))) attr(value, "plots") <- NULL
  if (!visible) {
    if (length(output) == 0L) {
      return("(no visible result)")
    }
    text <- truncate_chars(
      paste(truncate_lines(output, max_lines), collapse = "\n"), max_chars
    )
    return(paste0("Output:\n", text))
  }
  printed <- print_lines(value, max_lines)
  if (length(output) == 0L) {
    lines <- truncate_lines(printed$body, max_lines, printed$tail)
    return(truncate_chars(paste(lines, collapse = "\n"), max_chars))
  }
  # The value matters most: it keeps what it needs up to half of each
  # budget at least, and the output gets the rest.
  n_value <- length(printed$body) + length(printed$tail)
  value_share <- max(ceiling(max_lines / 2), max_lines - length(output))
  value_lines <- max(1, min(n_value, value_share))
  value_text <- paste(
    truncate_lines(printed$body, value_lines, printed$tail),
    collapse = "\n"
  )
  output_text <- paste(
    truncate_lines(output, max(1, max_lines - value_lines)),
    collapse = "\n"
  )
  value_share <- max(ceiling(max_chars / 2), max_chars - nchar(output_text))
  value_chars <- max(1, min(nchar(value_text), value_share))
  paste0(
    "Output:\n", truncate_chars(output_text, max(1, max_chars - value_chars)),
    "\n\nResult:\n", truncate_chars(value_text, value_chars)
  )
}

# Lines of `print(x)`, split into `body` (may be truncated) and `tail`
# (notes that must survive truncation: rows left out of a data frame, R's
# own max.print notice).
print_lines <- function(x, max_lines) {
  if (is.null(x)) {
    return(list(body = "NULL", tail = character()))
  }
  tail <- character()
  if (is.data.frame(x) && nrow(x) > 20L) {
    total <- nrow(x)
    shown <- as.integer(min(10, max(1, max_lines - 1)))
    x <- utils::head(x, shown)
    tail <- sprintf("# ... with %d more rows (%d total)", total - shown, total)
  }
  # Printing a huge vector only to drop most of it is slow: R stops after
  # max.print entries and says how many it left out.
  cap <- getOption("max.print")
  if (is.finite(max_lines)) cap <- max(1000, max_lines * 100)
  old <- options(max.print = cap)
  on.exit(options(old), add = TRUE)
  body <- tryCatch(
    utils::capture.output(print(x)),
    error = function(e) {
      tryCatch(
        utils::capture.output(utils::str(x)),
        error = function(e2) {
          paste0("<", paste(class(x), collapse = "/"), " that cannot be printed>")
        }
      )
    }
  )
  body <- clean_lines(body)
  reached <- grepl("getOption(\"max.print\")", body, fixed = TRUE)
  list(body = body[!reached], tail = c(body[reached], tail))
}

clean_lines <- function(x) {
  if (length(x) == 0L) {
    return(character())
  }
  cli::ansi_strip(as.character(x))
}

# First `max_lines` lines of `lines` and a marker, then `tail` (which
# counts towards the budget but is never dropped).
truncate_lines <- function(lines, max_lines, tail = character()) {
  room <- max(1, max_lines - length(tail))
  if (length(lines) <= room) {
    return(c(lines, tail))
  }
  room <- as.integer(room)
  c(
    lines[seq_len(room)],
    sprintf("[... truncated: %d more lines]", length(lines) - room),
    tail
  )
}

# The first `max_chars` characters of `text`, cut at a line end when one is
# close, and a marker.
truncate_chars <- function(text, max_chars) {
  n <- nchar(text, type = "chars")
  if (n <= max_chars) {
    return(text)
  }
  kept <- substr(text, 1L, max_chars)
  breaks <- gregexpr("\n", kept, fixed = TRUE)[[1]]
  last_break <- max(breaks)
  if (last_break > max_chars / 2) {
    kept <- substr(kept, 1L, last_break - 1L)
  }
  paste0(
    kept, "\n[... truncated: ", n - nchar(kept, type = "chars"),
    " more characters]"
  )
}
