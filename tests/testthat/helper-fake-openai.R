# A fake OpenAI server for the end-to-end tests of the agent integrations
# (ellmer chats, the Shiny example): no network, no API key. It speaks both
# APIs ellmer uses: the Responses API (`chat_openai()`, POST /v1/responses)
# and Chat Completions (`chat_openai_compatible()`, POST
# /v1/chat/completions), each plain or streamed (server-sent events, when
# the request says `stream: true`).

# The tool results in a Responses API `input`. A result with images is
# sent by ellmer as "See below", followed by user messages that hold its
# parts between <tool-content> markers.
responses_tool_results <- function(input) {
  at <- which(vapply(input, function(i) identical(i$type, "function_call_output"), logical(1)))
  vapply(at, function(j) {
    out <- input[[j]]$output
    if (!(is.character(out) && grepl("^See .*below", out))) {
      return(paste(unlist(out), collapse = "\n"))
    }
    texts <- character()
    for (item in input[-seq_len(j)]) {
      if (!identical(item$role, "user")) break
      for (p in item$content) {
        if (identical(p$type, "input_text") && !grepl("^</?tool-contents?( [^>]*)?>$", p$text)) {
          texts <- c(texts, p$text)
        }
      }
    }
    paste(texts, collapse = "\n")
  }, character(1))
}

# `turns` scripts the model: its k-th reply asks for calls of
# execute_r_code with the codes in `turns[[k]]` (several at once when that
# element has several; a character vector is one call per reply). Once
# the conversation holds a result for every call, the model answers "The
# answer is 42" if the last tool result contains 42, and otherwise quotes
# that result. Every request body is written to `dir` (the app runs in
# another process).
fake_openai_app <- function(turns, dir) {
  app <- webfakes::new_app()
  app$use(webfakes::mw_json())
  app$locals$turns <- as.list(turns)
  app$locals$dir <- dir
  # The app runs in another process: it gets the function, not this file.
  app$locals$tool_results <- rlang::set_env(responses_tool_results, baseenv())

  record <- function(req) {
    n <- length(list.files(req$app$locals$dir)) + 1L
    writeBin(req$.body, file.path(req$app$locals$dir, sprintf("%03d.json", n)))
  }
  reply_text <- function(results) {
    last <- results[[length(results)]]
    if (grepl("42", last, fixed = TRUE)) "The answer is 42" else paste("The tool said:", last)
  }
  # The calls of the next reply (list of id, code), or NULL when every
  # call has its result.
  next_calls <- function(turns, n_results) {
    ends <- cumsum(lengths(turns))
    k <- which(ends > n_results)[1]
    if (is.na(k)) {
      return(NULL)
    }
    ids <- seq(ends[[k]] - length(turns[[k]]) + 1L, ends[[k]])
    Map(function(id, code) list(id = id, code = code), ids, turns[[k]])
  }
  args_json <- function(code) {
    as.character(jsonlite::toJSON(list(code = code), auto_unbox = TRUE))
  }
  json <- function(x) as.character(jsonlite::toJSON(x, auto_unbox = TRUE, null = "null"))
  send_events <- function(res, events) {
    res$set_header("Content-Type", "text/event-stream")
    res$send(paste0(events, collapse = ""))
  }

  app$post("/v1/responses", function(req, res) {
    record(req)
    results <- req$app$locals$tool_results(req$json$input)
    calls <- next_calls(req$app$locals$turns, length(results))
    usage <- list(input_tokens = 10, output_tokens = 5, total_tokens = 15)
    text <- NULL
    if (!is.null(calls)) {
      output <- lapply(calls, function(call) {
        list(
          type = "function_call", id = paste0("fc_", call$id), call_id = paste0("call_", call$id),
          name = "execute_r_code", arguments = args_json(call$code), status = "completed"
        )
      })
    } else {
      text <- reply_text(results)
      output <- list(list(
        type = "message", id = "msg_1", role = "assistant", status = "completed",
        content = list(list(type = "output_text", text = text, annotations = list()))
      ))
    }
    response <- list(
      id = "resp_1", object = "response", status = "completed",
      model = "gpt-4o-mini", output = output, usage = usage
    )
    if (!isTRUE(req$json$stream)) {
      return(res$send_json(response, auto_unbox = TRUE))
    }
    # Text arrives in pieces; the completed response carries the rest.
    deltas <- if (!is.null(text)) strsplit(text, "(?<= )", perl = TRUE)[[1]] else character()
    events <- c(
      vapply(deltas, function(d) {
        paste0(
          "event: response.output_text.delta\ndata: ",
          json(list(type = "response.output_text.delta", delta = d)), "\n\n"
        )
      }, character(1)),
      paste0(
        "event: response.completed\ndata: ",
        json(list(type = "response.completed", response = response)), "\n\n"
      )
    )
    send_events(res, events)
  })

  app$post("/v1/chat/completions", function(req, res) {
    record(req)
    msgs <- Filter(function(m) identical(m$role, "tool"), req$json$messages)
    results <- vapply(msgs, function(m) m$content, character(1))
    calls <- next_calls(req$app$locals$turns, length(results))
    usage <- list(prompt_tokens = 10, completion_tokens = 5, total_tokens = 15)
    if (!is.null(calls)) {
      tool_calls <- lapply(seq_along(calls), function(i) {
        list(
          index = i - 1L, id = paste0("call_", calls[[i]]$id), type = "function",
          `function` = list(name = "execute_r_code", arguments = args_json(calls[[i]]$code))
        )
      })
      message <- list(role = "assistant", content = NULL, tool_calls = tool_calls)
      finish <- "tool_calls"
    } else {
      message <- list(role = "assistant", content = reply_text(results))
      finish <- "stop"
    }
    if (!isTRUE(req$json$stream)) {
      return(res$send_json(
        list(
          id = "chatcmpl-1", object = "chat.completion", created = 0L,
          model = "gpt-4o-mini",
          choices = list(list(index = 0L, message = message, finish_reason = finish)),
          usage = usage
        ),
        auto_unbox = TRUE, null = "null"
      ))
    }
    chunk <- function(delta, finish = NULL, usage = NULL) {
      paste0("data: ", json(list(
        id = "chatcmpl-1", object = "chat.completion.chunk", created = 0L,
        model = "gpt-4o-mini",
        choices = list(list(index = 0L, delta = delta, finish_reason = finish)),
        usage = usage
      )), "\n\n")
    }
    if (is.null(message$content)) {
      deltas <- list(list(role = "assistant", tool_calls = message$tool_calls))
    } else {
      pieces <- strsplit(message$content, "(?<= )", perl = TRUE)[[1]]
      deltas <- lapply(pieces, function(p) list(role = "assistant", content = p))
    }
    events <- c(
      vapply(deltas, chunk, character(1)),
      chunk(structure(list(), names = character()), finish, usage),
      "data: [DONE]\n\n"
    )
    send_events(res, events)
  })
  app
}

# Starts the fake server for `turns` (stopped when the calling test ends);
# returns its URL and the directory where request bodies are recorded.
local_fake_openai <- function(turns, .env = parent.frame()) {
  # Last of all: free the HTTP client's handles, whose connections to the
  # stopped server would stay open until the next garbage collection.
  withr::defer(gc(), envir = .env)
  dir <- withr::local_tempdir(.local_envir = .env)
  web <- webfakes::local_app_process(fake_openai_app(turns, dir), .local_envir = .env)
  list(base_url = paste0(web$url(), "v1"), dir = dir)
}

# The request bodies the fake server received, parsed, in order.
fake_requests <- function(server) {
  files <- sort(list.files(server$dir, full.names = TRUE))
  lapply(files, jsonlite::read_json, simplifyVector = FALSE)
}

# The tool results of a request, in order: Responses API items or Chat
# Completions messages.
fake_tool_results <- function(request) {
  if (!is.null(request$input)) {
    return(responses_tool_results(request$input))
  }
  msgs <- Filter(function(m) identical(m$role, "tool"), request$messages)
  vapply(msgs, function(m) m$content, character(1))
}

fake_chat_openai <- function(server) {
  ellmer::chat_openai(
    base_url = server$base_url, credentials = function() "test-key",
    model = "gpt-4o-mini", echo = "none"
  )
}

fake_chat_completions <- function(server) {
  ellmer::chat_openai_compatible(
    base_url = server$base_url, credentials = function() "test-key",
    model = "gpt-4o-mini", echo = "none"
  )
}
