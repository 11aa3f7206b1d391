# format_tool_content() (R/tool-content.R): an execution as what an ellmer
# tool returns to the model, the console transcript and the plots as
# images; and end to end, a real ellmer Chat against a local fake OpenAI
# server (webfakes) with a tool built on it: the image arrives in the
# request the model receives.

shared <- lazy_session(function(..., .env) new_session(.env = .env))

small <- plot_options(width = 300, height = 200)

# The answer of `code` in `session`, as $read() gives it.
read_of <- function(session, code, plots = small) {
  session$call(code, plots = plots)
  while (session$poll_process(100) != "ready") NULL
  session$read()
}

test_that("the text is the console transcript", {
  res <- read_of(shared(), "print('a'); message('b'); 1 + 1")
  expect_identical(format_tool_content(res), "[1] \"a\"\nb\n[1] 2")
  expect_identical(format_tool_content(read_of(shared(), "y <- 1")), "(no visible result)")
})

test_that("a value that cannot cross is shown as the console shows it, not as an error", {
  res <- read_of(shared(), "fit <- lm(mpg ~ wt, mtcars); summary(fit)")
  expect_s3_class(res$error, "securer_value_error")
  text <- format_tool_content(res)
  expect_match(text, "Residual standard error: 3.046", fixed = TRUE)
  for (code in c("xtabs(~ cyl + gear, mtcars)", "t.test(extra ~ group, data = sleep)", "mpg ~ wt", "by(warpbreaks[, 1:2], warpbreaks[, 'tension'], summary)")) {
    res <- read_of(shared(), code)
    shown <- utils::capture.output(print(eval(str2lang(code), globalenv())))
    expect_identical(format_tool_content(res), sub("\n+$", "", paste(shown, collapse = "\n")), info = code)
  }
})

test_that("other errors are raised again, unchanged", {
  res <- read_of(shared(), "stop('kaboom')")
  err <- expect_error(format_tool_content(res), class = "securer_child_error")
  # The same condition (testthat may add a backtrace when it catches one).
  err["trace"] <- list(NULL)
  expect_identical(err, res$error)
  expect_match(err$console, "Error: kaboom", fixed = TRUE)
})

test_that("long transcripts keep their beginning and end", {
  res <- read_of(shared(), "for (i in 1:200) cat('line', i, '\\n'); 'the end'")
  text <- format_tool_content(res, max_lines = 10)
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  expect_length(lines, 11L)
  expect_identical(lines[[1]], "line 1 ")
  expect_identical(lines[[6]], "[... 191 lines omitted ...]")
  expect_identical(lines[[11]], "[1] \"the end\"")
  text <- format_tool_content(res, max_chars = 200)
  expect_lte(nchar(text), 200 + 40)
  expect_match(text, "^line 1 \n")
  expect_match(text, "characters omitted ...]", fixed = TRUE)
  expect_match(text, "\\[1\\] \"the end\"$")
})

test_that("plots come as PNG images; the text says how many more were drawn", {
  skip_if_not_installed("ellmer")
  res <- read_of(shared(), "plot(1:10); hist(rnorm(50)); barplot(1:3); 'three'")
  content <- format_tool_content(res, max_images = 2)
  expect_length(content, 3L)
  expect_true(S7::S7_inherits(content[[1]], ellmer::ContentText))
  expect_identical(content[[1]]@text, "[1] \"three\"\n[1 more plot drawn but not shown]")
  for (i in 1:2) {
    img <- content[[i + 1]]
    expect_true(S7::S7_inherits(img, ellmer::ContentImageInline))
    expect_identical(img@type, "image/png")
    expect_identical(jsonlite::base64_dec(img@data), res$plots[[i]]$png)
  }
  # Images off: text only, and it says what was left out.
  expect_identical(
    format_tool_content(res, images = FALSE),
    "[1] \"three\"\n[3 plots drawn; images are not sent]"
  )
  only <- format_tool_content(read_of(shared(), "plot(1)"))
  expect_identical(only[[1]]@text, "(no text output)")
  # Images the child left out count too.
  res <- read_of(shared(), "for (i in 1:4) plot(i)", plot_options(width = 300, height = 200, max_plots = 1))
  expect_identical(format_tool_content(res)[[1]]@text, "(no text output)\n[3 more plots drawn but not shown]")
})

test_that("a printed ggplot2 object reaches the model as an image", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("ggplot2")
  res <- read_of(shared(), "library(ggplot2); ggplot(mtcars, aes(wt, mpg)) + geom_point()")
  content <- format_tool_content(res)
  expect_length(content, 2L)
  expect_true(S7::S7_inherits(content[[2]], ellmer::ContentImageInline))
})

test_that("a list with the session's last transcript and plots works as well", {
  s <- shared()
  try(s$execute("plot(1); summary(lm(mpg ~ wt, mtcars))", plots = small), silent = TRUE)
  text <- format_tool_content(list(console = s$last_console(), plots = s$last_plots()), images = FALSE)
  expect_match(text, "Coefficients:", fixed = TRUE)
  expect_match(text, "[1 plot drawn; images are not sent]", fixed = TRUE)
})

test_that("without a transcript the value and output are formatted as format_tool_result() does", {
  withr::local_options(securer.max_console_bytes = 0)
  s <- new_session()
  res <- read_of(s, "print('hi'); 42")
  expect_identical(format_tool_content(res), "Output:\n[1] \"hi\"\n\nResult:\n[1] 42")
})

test_that("format_tool_content() checks its arguments", {
  expect_input_error(format_tool_content("x"), "result")
  expect_input_error(format_tool_content(list(), images = NA), "images")
  expect_input_error(format_tool_content(list(), max_images = -1), "max_images")
})

# --- end to end: a real ellmer Chat sees the image ---------------------------

# A fake OpenAI server for the Responses API (`chat_openai()`) and Chat
# Completions (`chat_openai_compatible()`): the first request gets a call
# of run_r with `code`; the next gets a reply that counts the images in
# the request. Every request body is written to `dir`.
image_app <- function(code, dir) {
  app <- webfakes::new_app()
  app$use(webfakes::mw_json())
  app$locals$code <- code
  app$locals$dir <- dir
  record <- function(req) {
    n <- length(list.files(req$app$locals$dir)) + 1L
    writeBin(req$.body, file.path(req$app$locals$dir, sprintf("%03d.json", n)))
  }
  args_json <- function(code) as.character(jsonlite::toJSON(list(code = code), auto_unbox = TRUE))
  count_images <- function(body) lengths(regmatches(body, gregexpr("data:image/png;base64,", body, fixed = TRUE)))

  app$post("/v1/responses", function(req, res) {
    record(req)
    called <- any(vapply(req$json$input, function(i) identical(i$type, "function_call_output"), logical(1)))
    output <- if (!called) {
      list(list(
        type = "function_call", id = "fc_1", call_id = "call_1", name = "run_r",
        arguments = args_json(req$app$locals$code), status = "completed"
      ))
    } else {
      list(list(
        type = "message", id = "msg_1", role = "assistant", status = "completed",
        content = list(list(
          type = "output_text", annotations = list(),
          text = sprintf("I see %d image(s)", count_images(rawToChar(req$.body)))
        ))
      ))
    }
    res$send_json(
      list(
        id = "resp_1", object = "response", status = "completed", model = "gpt-4o-mini",
        output = output, usage = list(input_tokens = 10, output_tokens = 5, total_tokens = 15)
      ),
      auto_unbox = TRUE
    )
  })

  app$post("/v1/chat/completions", function(req, res) {
    record(req)
    called <- any(vapply(req$json$messages, function(m) identical(m$role, "tool"), logical(1)))
    if (!called) {
      message <- list(role = "assistant", content = NULL, tool_calls = list(list(
        id = "call_1", type = "function",
        `function` = list(name = "run_r", arguments = args_json(req$app$locals$code))
      )))
      finish <- "tool_calls"
    } else {
      message <- list(role = "assistant", content = sprintf("I see %d image(s)", count_images(rawToChar(req$.body))))
      finish <- "stop"
    }
    res$send_json(
      list(
        id = "chatcmpl-1", object = "chat.completion", created = 0L, model = "gpt-4o-mini",
        choices = list(list(index = 0L, message = message, finish_reason = finish)),
        usage = list(prompt_tokens = 10, completion_tokens = 5, total_tokens = 15)
      ),
      auto_unbox = TRUE, null = "null"
    )
  })
  app
}

local_image_server <- function(code, .env = parent.frame()) {
  # Last of all: free the HTTP client's handles to the stopped server.
  withr::defer(gc(), envir = .env)
  dir <- withr::local_tempdir(.local_envir = .env)
  web <- webfakes::local_app_process(image_app(code, dir), .local_envir = .env)
  list(base_url = paste0(web$url(), "v1"), dir = dir)
}

requests_of <- function(server) {
  files <- sort(list.files(server$dir, full.names = TRUE))
  lapply(files, jsonlite::read_json, simplifyVector = FALSE)
}

# An ellmer tool of R code built on format_tool_content(), as
# securer_as_ellmer_tool() would be.
content_tool <- function(session, images = TRUE) {
  run_r <- function(code) {
    res <- read_of(session, code)
    format_tool_content(res, images = images, max_images = 2)
  }
  ellmer::tool(
    run_r,
    name = "run_r",
    description = "Run R code; see its console output and plots.",
    arguments = list(code = ellmer::type_string("R code"))
  )
}

for (api in c("responses", "completions")) {
  test_that(paste0("a Chat receives the plot drawn in the sandbox as an image (", api, ")"), {
    skip_if_not_installed("ellmer")
    skip_if_not_installed("webfakes")
    skip_if_no_sandbox()
    session <- sandboxed_session()
    server <- local_image_server("plot(pressure); nrow(pressure)")
    chat <- if (api == "responses") {
      ellmer::chat_openai(base_url = server$base_url, credentials = function() "test-key", model = "gpt-4o-mini", echo = "none")
    } else {
      ellmer::chat_openai_compatible(base_url = server$base_url, credentials = function() "test-key", model = "gpt-4o-mini", echo = "none")
    }
    chat$register_tool(content_tool(session))

    expect_identical(as.character(chat$chat("Plot the pressure data.")), "I see 1 image(s)")
    png <- session$last_plots()[[1]]$png
    want <- paste0("data:image/png;base64,", jsonlite::base64_enc(png))
    reqs <- requests_of(server)
    expect_length(reqs, 2L)
    body <- reqs[[2]]
    parts_of <- function(x) if (is.list(x)) x else list()
    text_of <- function(p) if (is.character(p$text)) p$text else ""
    if (api == "responses") {
      parts <- unlist(lapply(body$input, function(i) parts_of(i$content)), recursive = FALSE)
      images <- lapply(Filter(function(p) identical(p$type, "input_image"), parts), function(p) p$image_url)
      texts <- vapply(parts, text_of, "")
    } else {
      parts <- unlist(lapply(body$messages, function(m) parts_of(m$content)), recursive = FALSE)
      images <- lapply(Filter(function(p) identical(p$type, "image_url"), parts), function(p) p$image_url$url)
      texts <- c(vapply(parts, text_of, ""), unlist(lapply(body$messages, function(m) if (is.character(m$content)) m$content)))
    }
    expect_identical(images, list(want))
    # The console text came along.
    expect_true(any(grepl("[1] 19", texts, fixed = TRUE)))
    # And the image is the one the host checked: a PNG of the requested size.
    expect_identical(png[1:8], as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)))
  })
}

test_that("with images off, the Chat gets text only", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("webfakes")
  session <- new_session()
  server <- local_image_server("plot(pressure); nrow(pressure)")
  chat <- ellmer::chat_openai(base_url = server$base_url, credentials = function() "test-key", model = "gpt-4o-mini", echo = "none")
  chat$register_tool(content_tool(session, images = FALSE))
  expect_identical(as.character(chat$chat("Plot it.")), "I see 0 image(s)")
  outputs <- Filter(function(i) identical(i$type, "function_call_output"), requests_of(server)[[2]]$input)
  expect_identical(outputs[[1]]$output, "[1] 19\n[1 plot drawn; images are not sent]")
})
