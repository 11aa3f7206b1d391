#' Format an execution as tool content for a language model
#'
#' Turns what an execution brought back into what an
#' [ellmer](https://ellmer.tidyverse.org/) tool returns to the model: the
#' console transcript, as R's console would have shown it (rendered in the
#' sandbox, so results that cannot cross the boundary, such as
#' `summary(lm(...))`, `t.test()` or a formula, are shown too), and the
#' plots the code drew, as PNG images the model can look at.
#'
#' The text is bounded: past `max_lines` lines or `max_chars` characters
#' its beginning and its end are kept (the end holds the value of the last
#' expression and any error) with a marker saying how much was left out in
#' between. Images are attached up to `max_images` (each already checked
#' and capped in size, see [plot_options()]); the text says how many more
#' were drawn. Images cost tokens: `images = FALSE` sends text only.
#'
#' A result whose value could not be returned to the host (a
#' `securer_value_error`) is not an error here: its console transcript is
#' what the model needs. Any other error is signalled again (so an ellmer
#' tool reports it to the model as a failed call).
#'
#' @param result The answer of an execution: what `$read()` returns (after
#'   `$call()`), or a list with `console` and `plots` such as
#'   `list(console = s$last_console(), plots = s$last_plots())`.
#' @param images Attach the plots as images.
#' @param max_images Most images attached.
#' @param max_lines,max_chars Bounds of the text.
#' @return A string when there is no image to attach; otherwise a list of
#'   ellmer content: an `ellmer::ContentText` and one
#'   `ellmer::ContentImageInline` (PNG) per image.
#' @seealso [format_tool_result()] for a value on its own;
#'   [securer_as_ellmer_tool()].
#' @examplesIf .Platform$OS.type == "unix"
#' session <- SecureSession$new(sandbox = FALSE)
#' session$call("fit <- lm(mpg ~ wt, mtcars); summary(fit)")
#' while (session$poll_process(100) != "ready") NULL
#' cat(format_tool_content(session$read(), max_lines = 12))
#'
#' # A tool of your own that shows the model its plots
#' if (requireNamespace("ellmer", quietly = TRUE)) {
#'   run_r <- function(code) {
#'     session$call(code, plots = plot_options(width = 600, height = 400))
#'     while (session$poll_process(100) != "ready") NULL
#'     format_tool_content(session$read(), max_images = 2)
#'   }
#'   content <- run_r("plot(pressure); nrow(pressure)")
#'   content
#' }
#' session$close()
#' @export
format_tool_content <- function(result, images = TRUE, max_images = 4,
                                max_lines = 50, max_chars = 4000) {
  if (!is.list(result)) {
    securer_abort(
      "{.arg result} must be a list such as {.code $read()} returns, not {.obj_type_friendly {result}}.",
      class = "securer_input_error"
    )
  }
  check_flag(images)
  check_count(max_images)
  check_number(max_lines, min = 0, allow_inf = TRUE)
  check_number(max_chars, min = 0, allow_inf = TRUE)
  if (!is.null(result$error) && !value_refused(result)) {
    stop(result$error)
  }
  content_value(tool_content_parts(result, images, max_images, max_lines, max_chars))
}

# An answer whose only failure is a value that could not cross: its
# transcript shows the value, which is what a model needs.
value_refused <- function(result) {
  inherits(result$error, "securer_value_error") && is.character(result$console)
}

# What a language model is shown of one execution (`result` as for
# format_tool_content()): a list of parts, `list(type = "text", text = )`
# or `list(type = "image", mime_type = , data = <base64>)`. The one place
# where an execution becomes content for a model: format_tool_content()
# and the ellmer tool make ellmer content of the parts (content_value()),
# the MCP server MCP content blocks (mcp_content_block()).
tool_content_parts <- function(result, images, max_images, max_lines, max_chars) {
  console <- result$console
  plots <- Filter(function(p) inherits(p, "securer_plot"), result$plots)
  omitted <- attr(result$plots, "omitted", exact = TRUE)
  omitted <- if (is.numeric(omitted) && length(omitted) == 1L && !is.na(omitted)) omitted else 0
  shown <- if (images) utils::head(plots, max_images) else list()
  drawn <- length(plots) + omitted
  text <- if (is.character(console)) {
    console_for_model(console, max_lines, max_chars)
  } else {
    # No transcript (options(securer.max_console_bytes = 0)): the value.
    value <- result$value
    if (!is.null(value)) attr(value, "output") <- NULL
    format_execution(value, result$output, !isFALSE(result$visible), max_lines, max_chars)
  }
  if (!nzchar(text)) {
    text <- if (drawn > 0) "(no text output)" else "(no visible result)"
  }
  left <- drawn - length(shown)
  if (left > 0) {
    text <- paste0(text, "\n", if (images) {
      sprintf("[%d more plot%s drawn but not shown]", left, if (left == 1) "" else "s")
    } else {
      sprintf("[%d plot%s drawn; images are not sent]", left, if (left == 1) "" else "s")
    })
  }
  c(
    list(list(type = "text", text = text)),
    lapply(shown, function(p) {
      list(type = "image", mime_type = "image/png", data = base64_line(p$png))
    })
  )
}

# Base64 on one line, as data URLs need it (jsonlite wraps at 76 columns).
base64_line <- function(bytes) gsub("[\r\n]", "", jsonlite::base64_enc(bytes))

# Content parts as an ellmer tool returns them: one string when all are
# text, else a list of ellmer content objects (which ellmer sends to the
# model, and mcptools turns into MCP content).
content_value <- function(parts) {
  types <- vapply(parts, function(p) p$type, character(1))
  if (all(types == "text")) {
    return(paste(vapply(parts, function(p) p$text, character(1)), collapse = "\n\n"))
  }
  if (!requireNamespace("ellmer", quietly = TRUE)) {
    securer_abort(
      c(
        "The {.pkg ellmer} package is needed to send images.",
        i = "Install it, or use {.code images = FALSE}."
      ),
      class = "securer_input_error"
    )
  }
  lapply(parts, function(p) {
    switch(p$type,
      text = ellmer::ContentText(p$text),
      image = ellmer::ContentImageInline(type = p$mime_type, data = p$data)
    )
  })
}

# A transcript cut to `max_lines` lines and `max_chars` characters,
# keeping its beginning and its end (where the value and errors are).
console_for_model <- function(text, max_lines, max_chars) {
  text <- sub("\n+$", "", text)
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  if (length(lines) > max_lines) {
    head_n <- floor(max_lines / 2)
    tail_n <- max(1, max_lines - head_n)
    cut <- length(lines) - head_n - tail_n
    lines <- c(
      lines[seq_len(head_n)],
      sprintf("[... %d lines omitted ...]", cut),
      lines[length(lines) - tail_n + seq_len(tail_n)]
    )
  }
  text <- paste(lines, collapse = "\n")
  n <- nchar(text, type = "chars")
  if (n <= max_chars) {
    return(text)
  }
  half <- max(1, floor(max_chars / 2))
  head <- substr(text, 1L, half)
  tail <- substr(text, n - half + 1L, n)
  # Cut at line ends when one is near.
  nl <- max(gregexpr("\n", head, fixed = TRUE)[[1]])
  if (nl > half / 2) head <- substr(head, 1L, nl - 1L)
  first <- regexpr("\n", tail, fixed = TRUE)
  if (first > 0 && first < half / 2) tail <- substr(tail, first + 1L, nchar(tail))
  cut <- n - nchar(head) - nchar(tail)
  paste0(head, "\n[... ", cut, " characters omitted ...]\n", tail)
}
