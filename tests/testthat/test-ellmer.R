# The tool runs with `sandbox = FALSE` (fast) except where the sandbox is
# the point. ellmer tool objects are functions: the unit tests call them the
# way ellmer does, the end-to-end tests drive a real ellmer Chat against a
# local fake OpenAI server (webfakes), with no network and no API key.

# --- unit tests: the tool object and its function ---------------------------

test_that("securer_as_ellmer_tool() returns a callable ellmer tool named execute_r_code", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_true(S7::S7_inherits(run_r, ellmer::ToolDef))
  expect_true(is.function(run_r))
  expect_identical(run_r@name, "execute_r_code")
})

test_that("the tool takes one string argument, code", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  props <- run_r@arguments@properties
  expect_named(props, "code")
  expect_true(S7::S7_inherits(props$code, ellmer::TypeBasic))
  expect_identical(props$code@type, "string")
  expect_match(props$code@description, "R code")
})

test_that("as_ellmer_tool() is securer_as_ellmer_tool()", {
  expect_identical(as_ellmer_tool, securer_as_ellmer_tool)
})

test_that("the description says what the tool does and that state persists", {
  skip_if_not_installed("ellmer")
  desc <- securer_as_ellmer_tool(sandbox = FALSE, timeout = 12)@description
  expect_match(desc, "Run R code", fixed = TRUE)
  expect_match(desc, "State persists between calls", fixed = TRUE)
  expect_match(desc, "12 seconds", fixed = TRUE)
  expect_no_match(desc, "functions are available", fixed = TRUE)
})

test_that("the description lists the securer tools with descriptions and argument types", {
  skip_if_not_installed("ellmer")
  tools <- list(query_db_tool(), echo_tool())
  desc <- securer_as_ellmer_tool(tools = tools, sandbox = FALSE)@description
  expect_match(desc, "These functions are available in the session", fixed = TRUE)
  expect_match(
    desc, "- query_db(table = <character>, limit = <numeric>): Query a database table",
    fixed = TRUE
  )
  expect_match(desc, "- echo(x = <any>): Return the argument unchanged", fixed = TRUE)
})

test_that("the description of a sandboxed tool mentions the sandbox", {
  skip_if_not_installed("ellmer")
  desc <- securer_as_ellmer_tool(tools = list(echo_tool()))@description
  expect_match(desc, "sandboxed R process", fixed = TRUE)
  expect_match(desc, "outside the sandbox, on the host", fixed = TRUE)
})

test_that("the tool runs code and returns the printed value", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(run_r("x <- 6 * 7; x"), "[1] 42")
})

test_that("no session is started before the first call", {
  skip_if_not_installed("ellmer")
  before <- securer_children()
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  # (Children of earlier tests may end meanwhile: only new ones count.)
  expect_length(setdiff(securer_children(), before), 0L)
  run_r("1")
  # One session: its R (and, forked from a zygote, its supervisor).
  expect_gte(length(setdiff(securer_children(), before)), 1L)
})

test_that("state persists across calls", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  run_r("x <- 6 * 7")
  expect_identical(run_r("x + 1"), "[1] 43")
})

test_that("printed output comes before the value", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(
    run_r("print('hi'); cat('there\\n'); 1 + 1"),
    "Output:\n[1] \"hi\"\nthere\n\nResult:\n[1] 2"
  )
})

test_that("printed output is kept when the value is NULL", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(run_r("cat('hello\\n')"), "Output:\nhello")
})

test_that("an invisible value without output says there is no visible result", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(run_r("y <- 1"), "(no visible result)")
})

test_that("a long result is truncated", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  res <- run_r("data.frame(i = 1:500)")
  expect_match(res, "# ... with 490 more rows (500 total)", fixed = TRUE)
})

test_that("the code can call the securer tools", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(tools = list(query_db_tool()), sandbox = FALSE)
  expect_identical(run_r("nrow(query_db('iris', 3))"), "[1] 3")
})

test_that("an error in the code becomes an error that mentions it", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("stop('kaboom')"), class = "securer_child_error")
  expect_identical(conditionMessage(err), "Error: kaboom")
  expect_s3_class(err$parent, "securer_child_error")
})

test_that("an error message names the failing call", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("log('a')"), class = "securer_child_error")
  expect_identical(
    conditionMessage(err),
    "Error in log(\"a\") : non-numeric argument to mathematical function"
  )
})

test_that("an error message includes the output printed before the error", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("print('step 1'); stop('kaboom')"), class = "securer_error")
  expect_identical(conditionMessage(err), "Output:\n[1] \"step 1\"\n\nError: kaboom")
})

test_that("a syntax error is reported with R's parse message", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("if (TRUE {"), class = "securer_syntax_error")
  expect_match(conditionMessage(err), "^Syntax error; nothing was run.\nline 1:10: unexpected '\\{'\n")
})

test_that("a resource limit error says which limit the code hit", {
  skip_if_not_installed("ellmer")
  skip_on_os(c("windows", "mac"))
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, limits = list(memory = 5e8))
  err <- expect_error(run_r("x <- numeric(1e9)"), class = "securer_limit_error")
  lines <- strsplit(conditionMessage(err), "\n", fixed = TRUE)[[1]]
  expect_match(lines[1], "memory", fixed = TRUE)
  expect_match(lines[2], "^Error: cannot allocate")
  expect_no_match(conditionMessage(err), "limits = list", fixed = TRUE)
})

test_that("the session keeps working after an error", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  run_r("x <- 1")
  expect_error(run_r("stop('no')"), class = "securer_child_error")
  expect_identical(run_r("x"), "[1] 1")
})

test_that("a timeout becomes an error that says it timed out", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, timeout = 1)
  err <- expect_error(run_r("Sys.sleep(30)"), class = "securer_timeout")
  expect_match(conditionMessage(err), "^Execution timed out after 1 seconds\\.")
  expect_match(conditionMessage(err), "objects from earlier calls are gone", fixed = TRUE)
})

test_that("the tool works again after a timeout", {
  skip_if_not_installed("ellmer")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, timeout = 1)
  expect_error(run_r("Sys.sleep(30)"), class = "securer_timeout")
  expect_identical(run_r("1 + 1"), "[1] 2")
})

test_that("a child that dies between calls is replaced and the model is told", {
  skip_if_not_installed("ellmer")
  skip_on_os("windows")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  # Without a sandbox the child's own pid is the host's pid of it (other
  # tests' children may come and go meanwhile: no process list is used).
  pid <- as.integer(sub("^\\[1\\] ", "", run_r("x <- 1; Sys.getpid()")))
  expect_true(pid_running(pid))
  # A session forked from a zygote has a supervisor above R, which reports
  # R's end and follows it a moment later.
  parent <- ps::ps_ppid(ps::ps_handle(pid))
  tools::pskill(pid, tools::SIGKILL)
  expect_true(wait_pid_gone(pid))
  if (parent != Sys.getpid()) expect_true(wait_pid_gone(parent))
  res <- run_r("exists('x')")
  expect_match(res, "^Note: the R session had stopped and was restarted")
  expect_match(res, "[1] FALSE", fixed = TRUE)
})

test_that("a child that dies during a call becomes an error and the next call works", {
  skip_if_not_installed("ellmer")
  skip_on_os("windows")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_error(run_r("tools::pskill(Sys.getpid(), tools::SIGKILL)"), class = "securer_child_error")
  expect_match(run_r("1 + 1"), "[1] 2", fixed = TRUE)
})

test_that("the tool runs code in a session passed to it", {
  skip_if_not_installed("ellmer")
  session <- new_session()
  session$execute("x <- 'from the session'")
  run_r <- securer_as_ellmer_tool(session)
  expect_identical(run_r("x"), "[1] \"from the session\"")
})

test_that("a session passed to the tool and closed between calls is restarted", {
  skip_if_not_installed("ellmer")
  session <- new_session()
  run_r <- securer_as_ellmer_tool(session)
  run_r("x <- 1")
  session$close()
  res <- run_r("1 + 1")
  expect_match(res, "^Note: the R session had stopped and was restarted")
  expect_match(res, "[1] 2", fixed = TRUE)
  expect_true(session$is_alive())
})

test_that("the tools of a session passed to the tool are listed", {
  skip_if_not_installed("ellmer")
  session <- new_session(tools = list(query_db_tool()))
  desc <- securer_as_ellmer_tool(session)@description
  expect_match(desc, "- query_db(table = <character>, limit = <numeric>)", fixed = TRUE)
})

test_that("tools cannot be given together with a session", {
  skip_if_not_installed("ellmer")
  session <- new_session()
  expect_error(
    securer_as_ellmer_tool(session, tools = list(echo_tool())),
    class = "securer_input_error"
  )
})

test_that("session must be a SecureSession", {
  skip_if_not_installed("ellmer")
  expect_error(securer_as_ellmer_tool(session = "x"), class = "securer_input_error")
})

test_that("a wrong set-up fails when the tool is created, not on its first call", {
  skip_if_not_installed("ellmer")
  expect_error(securer_as_ellmer_tool(sandbox = "yes"), class = "securer_input_error")
  expect_error(securer_as_ellmer_tool(tools = list("x")), class = "securer_tool_error")
  expect_error(securer_as_ellmer_tool(timeout = -1), class = "securer_input_error")
})

test_that("the tool runs code in the sandbox", {
  skip_if_not_installed("ellmer")
  skip_on_os(c("windows", "mac"))
  run_r <- securer_as_ellmer_tool(tools = list(query_db_tool()))
  expect_identical(run_r("d <- query_db('mtcars', 5); nrow(d)"), "[1] 5")
})

# --- end to end: a real ellmer Chat against a fake OpenAI server -------------

# A fake OpenAI server for both APIs ellmer speaks: the Responses API
# (`chat_openai()`, POST /v1/responses) and Chat Completions
# (`chat_openai_compatible()`, POST /v1/chat/completions). While the
# conversation holds fewer tool results than `codes`, it asks for a call of
# execute_r_code with the next code; then it answers "The answer is 42" if
# the last tool result contains 42, and otherwise quotes that result. Every
# request body is written to `dir` (the app runs in another process).
fake_openai_app <- function(codes, dir) {
  app <- webfakes::new_app()
  app$use(webfakes::mw_json())
  app$locals$codes <- codes
  app$locals$dir <- dir

  record <- function(req) {
    n <- length(list.files(req$app$locals$dir)) + 1L
    writeBin(req$.body, file.path(req$app$locals$dir, sprintf("%03d.json", n)))
  }
  reply_text <- function(results) {
    last <- results[[length(results)]]
    if (grepl("42", last, fixed = TRUE)) "The answer is 42" else paste("The tool said:", last)
  }
  args_json <- function(code) {
    as.character(jsonlite::toJSON(list(code = code), auto_unbox = TRUE))
  }

  app$post("/v1/responses", function(req, res) {
    record(req)
    items <- Filter(function(i) identical(i$type, "function_call_output"), req$json$input)
    results <- vapply(items, function(i) i$output, character(1))
    codes <- req$app$locals$codes
    usage <- list(input_tokens = 10, output_tokens = 5, total_tokens = 15)
    if (length(results) < length(codes)) {
      n <- length(results) + 1L
      output <- list(list(
        type = "function_call", id = paste0("fc_", n), call_id = paste0("call_", n),
        name = "execute_r_code", arguments = args_json(codes[[n]]), status = "completed"
      ))
    } else {
      output <- list(list(
        type = "message", id = "msg_1", role = "assistant", status = "completed",
        content = list(list(type = "output_text", text = reply_text(results), annotations = list()))
      ))
    }
    res$send_json(
      list(
        id = "resp_1", object = "response", status = "completed",
        model = "gpt-4o-mini", output = output, usage = usage
      ),
      auto_unbox = TRUE
    )
  })

  app$post("/v1/chat/completions", function(req, res) {
    record(req)
    msgs <- Filter(function(m) identical(m$role, "tool"), req$json$messages)
    results <- vapply(msgs, function(m) m$content, character(1))
    codes <- req$app$locals$codes
    if (length(results) < length(codes)) {
      n <- length(results) + 1L
      message <- list(role = "assistant", content = NULL, tool_calls = list(list(
        id = paste0("call_", n), type = "function",
        `function` = list(name = "execute_r_code", arguments = args_json(codes[[n]]))
      )))
      finish <- "tool_calls"
    } else {
      message <- list(role = "assistant", content = reply_text(results))
      finish <- "stop"
    }
    res$send_json(
      list(
        id = "chatcmpl-1", object = "chat.completion", created = 0L,
        model = "gpt-4o-mini",
        choices = list(list(index = 0L, message = message, finish_reason = finish)),
        usage = list(prompt_tokens = 10, completion_tokens = 5, total_tokens = 15)
      ),
      auto_unbox = TRUE, null = "null"
    )
  })
  app
}

# Starts the fake server for `codes` (stopped when the calling test ends);
# returns its URL and the directory where request bodies are recorded.
local_fake_openai <- function(codes, .env = parent.frame()) {
  # Last of all: free the HTTP client's handles, whose connections to the
  # stopped server would stay open until the next garbage collection.
  withr::defer(gc(), envir = .env)
  dir <- withr::local_tempdir(.local_envir = .env)
  web <- webfakes::local_app_process(fake_openai_app(codes, dir), .local_envir = .env)
  list(base_url = paste0(web$url(), "v1"), dir = dir)
}

# The request bodies the fake server received, parsed, in order.
fake_requests <- function(server) {
  files <- sort(list.files(server$dir, full.names = TRUE))
  lapply(files, jsonlite::read_json, simplifyVector = FALSE)
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

test_that("a Chat (Responses API) runs the code and the model gets the result", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai("x <- 6 * 7; x")
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE))

  answer <- chat$chat("What is 6 times 7? Use R.")
  expect_identical(as.character(answer), "The answer is 42")

  reqs <- fake_requests(server)
  expect_length(reqs, 2L)
  expect_identical(reqs[[1]]$tools[[1]]$name, "execute_r_code")
  outputs <- Filter(function(i) identical(i$type, "function_call_output"), reqs[[2]]$input)
  expect_length(outputs, 1L)
  expect_identical(outputs[[1]]$output, "[1] 42")
})

test_that("a Chat (Chat Completions API) runs the code and the model gets the result", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai("x <- 6 * 7; x")
  chat <- fake_chat_completions(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE))

  answer <- chat$chat("What is 6 times 7? Use R.")
  expect_identical(as.character(answer), "The answer is 42")

  reqs <- fake_requests(server)
  expect_length(reqs, 2L)
  tool_msgs <- Filter(function(m) identical(m$role, "tool"), reqs[[2]]$messages)
  expect_length(tool_msgs, 1L)
  expect_identical(tool_msgs[[1]]$content, "[1] 42")
  expect_identical(tool_msgs[[1]]$tool_call_id, "call_1")
})

test_that("state persists across tool calls of one Chat", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai(c("x <- 6 * 7", "x"))
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE))

  expect_identical(as.character(chat$chat("Compute it in two steps.")), "The answer is 42")

  reqs <- fake_requests(server)
  expect_length(reqs, 3L)
  outputs <- Filter(function(i) identical(i$type, "function_call_output"), reqs[[3]]$input)
  expect_identical(
    vapply(outputs, function(i) i$output, character(1)),
    c("(no visible result)", "[1] 42")
  )
})

test_that("an error in the code reaches the model as a failed tool result and the Chat goes on", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai("stop('object x not ready')")
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE))

  expect_warning(
    answer <- chat$chat("Run it."),
    class = "ellmer_tool_failure"
  )
  expect_identical(
    as.character(answer),
    "The tool said: Tool calling failed with error Error: object x not ready"
  )

  reqs <- fake_requests(server)
  expect_length(reqs, 2L)
  outputs <- Filter(function(i) identical(i$type, "function_call_output"), reqs[[2]]$input)
  expect_identical(
    outputs[[1]]$output,
    "Tool calling failed with error Error: object x not ready"
  )
})

test_that("a timeout reaches the model as a failed tool result and the Chat goes on", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai("Sys.sleep(30)")
  chat <- fake_chat_completions(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE, timeout = 1))

  expect_warning(answer <- chat$chat("Wait."), class = "ellmer_tool_failure")
  expect_match(as.character(answer), "^The tool said: Tool calling failed with error Execution timed out")

  reqs <- fake_requests(server)
  tool_msgs <- Filter(function(m) identical(m$role, "tool"), reqs[[2]]$messages)
  expect_match(tool_msgs[[1]]$content, "timed out after 1 seconds", fixed = TRUE)
})

test_that("a Chat can use the sandboxed tool with securer tools", {
  skip_if_not_installed("ellmer")
  skip_if_not_installed("webfakes")
  skip_on_os(c("windows", "mac"))
  server <- local_fake_openai("d <- query_db('mtcars', 7); nrow(d) * 6")
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(tools = list(query_db_tool())))

  expect_identical(as.character(chat$chat("How many rows?")), "The answer is 42")
  reqs <- fake_requests(server)
  outputs <- Filter(function(i) identical(i$type, "function_call_output"), reqs[[2]]$input)
  expect_identical(outputs[[1]]$output, "[1] 42")
})
