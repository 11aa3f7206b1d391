# securer_mcp_server(): the protocol, in process through connections, then
# a real server process spoken to as an MCP client does, with JSON-RPC
# messages on its standard input and output.

skip_if_not_installed("ellmer", "0.5.0")

# Runs a server over `messages` (lists, sent as JSON lines) and returns
# its replies, parsed.
serve_lines <- function(messages, ...) {
  lines <- vapply(messages, function(m) {
    if (is.character(m)) m else as.character(jsonlite::toJSON(m, auto_unbox = TRUE, null = "null"))
  }, character(1))
  input <- textConnection(lines)
  out <- textConnection(NULL, "w", local = TRUE)
  on.exit({
    close(input)
    close(out)
  })
  securer_mcp_server(..., input = input, output = out)
  lapply(textConnectionValue(out), jsonlite::parse_json)
}

request <- function(id, method, params = NULL) {
  msg <- list(jsonrpc = "2.0", id = id, method = method)
  if (!is.null(params)) msg$params <- params
  msg
}

test_that("initialize negotiates the protocol version and names the server", {
  replies <- serve_lines(list(
    request(1L, "initialize", list(protocolVersion = "2025-03-26")),
    request(2L, "initialize", list(protocolVersion = "2099-01-01"))
  ), sandbox = FALSE)
  expect_identical(replies[[1]]$id, 1L)
  expect_identical(replies[[1]]$result$protocolVersion, "2025-03-26")
  expect_identical(replies[[1]]$result$serverInfo$name, "securer")
  expect_identical(replies[[1]]$result$capabilities$tools$listChanged, FALSE)
  # A version the server does not know gets its latest.
  expect_identical(replies[[2]]$result$protocolVersion, "2025-06-18")
})

test_that("notifications get no reply; ping, unknown methods and bad messages get one each", {
  replies <- serve_lines(list(
    list(jsonrpc = "2.0", method = "notifications/initialized"),
    request(1L, "ping"),
    request(2L, "resources/list"),
    "this is not JSON",
    list(jsonrpc = "2.0", id = 3L),
    "",
    request(4L, "tools/call", list(name = "other_tool", arguments = list())),
    request(5L, "tools/call", list(name = "execute_r_code", arguments = list(code = 42)))
  ), sandbox = FALSE)
  expect_length(replies, 6L)
  expect_identical(replies[[1]], list(jsonrpc = "2.0", id = 1L, result = structure(list(), names = character())))
  expect_identical(replies[[2]]$error$code, -32601L)
  expect_identical(replies[[3]]$error$code, -32700L)
  expect_null(replies[[3]]$id)
  expect_identical(replies[[4]]$error$code, -32600L)
  expect_identical(replies[[4]]$id, 3L)
  expect_identical(replies[[5]]$error$code, -32602L)
  expect_match(replies[[5]]$error$message, "other_tool", fixed = TRUE)
  expect_identical(replies[[6]]$error$code, -32602L)
})

test_that("tools/call returns content blocks, and failures as tool errors", {
  replies <- serve_lines(list(
    request(1L, "tools/call", list(name = "execute_r_code", arguments = list(code = "x <- 41; x + 1"))),
    request(2L, "tools/call", list(name = "execute_r_code", arguments = list(code = "stop('no')")))
  ), sandbox = FALSE)
  expect_identical(replies[[1]]$result, list(
    content = list(list(type = "text", text = "[1] 42")), isError = FALSE
  ))
  expect_identical(replies[[2]]$result, list(
    content = list(list(type = "text", text = "Error: no")), isError = TRUE
  ))
})

test_that("image parts become MCP image content", {
  expect_identical(
    mcp_content_block(list(type = "image", mime_type = "image/png", data = "iVBORw0KGgo=")),
    list(type = "image", data = "iVBORw0KGgo=", mimeType = "image/png")
  )
  expect_identical(mcp_content_block(list(type = "text", text = "hi")), list(type = "text", text = "hi"))
})

test_that("a plot drawn by the code reaches the client as an image block; images can be turned off", {
  call <- request(1L, "tools/call", list(name = "execute_r_code", arguments = list(code = "plot(1:3); 7")))
  content <- serve_lines(list(call), sandbox = FALSE)[[1]]$result$content
  expect_identical(vapply(content, function(b) b$type, ""), c("text", "image"))
  expect_identical(content[[1]]$text, "[1] 7")
  expect_identical(content[[2]]$mimeType, "image/png")
  png <- jsonlite::base64_dec(content[[2]]$data)
  expect_identical(png[1:4], as.raw(c(0x89, 0x50, 0x4e, 0x47)))
  # Control: without images, text only.
  content <- serve_lines(list(call), sandbox = FALSE, images = FALSE)[[1]]$result$content
  expect_identical(content, list(list(type = "text", text = "[1] 7")))
})

# --- a real server process --------------------------------------------------------

skip_if_not_installed("processx")

# The host tools the server offers to sandboxed code: a securer tool and an
# ellmer tool (code mode), from a file, as a user would configure them.
local_tools_file <- function(.env = parent.frame()) {
  path <- withr::local_tempfile(fileext = ".R", .local_envir = .env)
  writeLines(c(
    "list(",
    "  securer::securer_tool('query_db', 'Query a database table',",
    "    fn = function(table, limit) head(get(table, 'package:datasets'), limit),",
    "    args = list(table = 'character', limit = 'numeric')),",
    "  ellmer::tool(function(city) paste('Sunny in', city), name = 'get-weather',",
    "    description = 'Get the weather in a city.',",
    "    arguments = list(city = ellmer::type_string()))",
    ")"
  ), path)
  path
}

# Starts `Rscript -e <call>` as an MCP client would (killed when `.env`
# ends if it is still running).
local_mcp_server <- function(call, .env = parent.frame()) {
  proc <- processx::process$new(
    file.path(R.home("bin"), "Rscript"), c("-e", call),
    stdin = "|", stdout = "|", stderr = "|",
    env = c("current", R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  )
  withr::defer(if (proc$is_alive()) proc$kill_tree(), envir = .env)
  proc
}

mcp_send <- function(proc, msg) {
  proc$write_input(paste0(jsonlite::toJSON(msg, auto_unbox = TRUE, null = "null"), "\n"))
}

# The next message from the server (parsed), waiting up to `timeout` s.
mcp_receive <- function(proc, timeout = 60) {
  deadline <- Sys.time() + timeout
  repeat {
    line <- proc$read_output_lines(n = 1)
    if (length(line) && nzchar(line)) {
      return(jsonlite::parse_json(line))
    }
    if (!proc$is_alive() || Sys.time() > deadline) {
      stop(
        "no reply from the MCP server; its stderr:\n",
        paste(proc$read_all_error_lines(), collapse = "\n")
      )
    }
    proc$poll_io(200)
  }
}

mcp_request <- function(proc, id, method, params = NULL) {
  msg <- list(jsonrpc = "2.0", id = id, method = method)
  if (!is.null(params)) msg$params <- params
  mcp_send(proc, msg)
  reply <- mcp_receive(proc)
  expect_identical(reply$jsonrpc, "2.0")
  expect_identical(reply$id, id)
  expect_null(reply$error)
  reply$result
}

mcp_initialize <- function(proc) {
  result <- mcp_request(proc, 1L, "initialize", list(
    protocolVersion = "2025-06-18", capabilities = structure(list(), names = character()),
    clientInfo = list(name = "securer-test", version = "1.0")
  ))
  mcp_send(proc, list(jsonrpc = "2.0", method = "notifications/initialized"))
  result
}

call_code <- function(proc, id, code) {
  mcp_request(proc, id, "tools/call", list(name = "execute_r_code", arguments = list(code = code)))
}

result_text <- function(result) {
  vapply(result$content, function(block) {
    expect_identical(block$type, "text")
    block$text
  }, character(1))
}

test_that("an MCP client lists the execute tool and runs sandboxed code that calls host tools", {
  tools_file <- local_tools_file()
  proc <- local_mcp_server(sprintf("securer::securer_mcp_server(tools = '%s')", tools_file))

  init <- mcp_initialize(proc)
  expect_identical(init$protocolVersion, "2025-06-18")
  expect_false(is.null(init$capabilities$tools))
  expect_identical(init$serverInfo$name, "securer")

  listed <- mcp_request(proc, 2L, "tools/list")
  expect_length(listed$tools, 1L)
  tool <- listed$tools[[1]]
  expect_identical(tool$name, "execute_r_code")
  expect_match(tool$description, "sandboxed R process", fixed = TRUE)
  expect_match(tool$description, "- query_db(table = <character>, limit = <numeric>)", fixed = TRUE)
  expect_match(tool$description, "- get_weather(city = <character>)", fixed = TRUE)
  expect_identical(tool$inputSchema$type, "object")
  expect_identical(tool$inputSchema$properties$code$type, "string")
  expect_identical(tool$inputSchema$required, list("code"))
  expect_identical(tool$annotations$title, "Run R code")
  expect_false(tool$annotations$readOnlyHint)
  # Host tools of unknown effect: the client is told the worst.
  expect_true(tool$annotations$destructiveHint)

  res <- call_code(proc, 3L, "paste(get_weather('Paris'), nrow(query_db('mtcars', 3)))")
  expect_false(isTRUE(res$isError))
  expect_identical(result_text(res), "[1] \"Sunny in Paris 3\"")

  # One session per client: state persists between calls.
  expect_identical(result_text(call_code(proc, 4L, "x <- 6 * 7")), "(no visible result)")
  expect_identical(result_text(call_code(proc, 5L, "x")), "[1] 42")

  # The code runs in the sandbox, not in the server's process.
  pid <- as.integer(sub("^\\[1\\] ", "", result_text(call_code(proc, 6L, "Sys.getpid()"))))
  expect_false(identical(pid, proc$get_pid()))

  # A plot drawn in the sandbox comes as an image block: a checked PNG.
  res <- call_code(proc, 7L, "d <- query_db('mtcars', 10); plot(d$wt, d$mpg); nrow(d)")
  expect_false(isTRUE(res$isError))
  expect_identical(vapply(res$content, function(b) b$type, ""), c("text", "image"))
  expect_identical(res$content[[1]]$text, "[1] 10")
  expect_identical(res$content[[2]]$mimeType, "image/png")
  png <- jsonlite::base64_dec(res$content[[2]]$data)
  expect_identical(png[1:8], as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)))

  # The client disconnects: the server exits, closing its session.
  close(proc$get_input_connection())
  proc$wait(30000)
  expect_false(proc$is_alive())
  expect_identical(proc$get_exit_status(), 0L)
})

test_that("a failing call is a tool error the model sees, and the server goes on", {
  proc <- local_mcp_server("securer::securer_mcp_server(sandbox = FALSE, timeout = 2)")
  mcp_initialize(proc)

  res <- call_code(proc, 2L, "print('step 1'); stop('kaboom')")
  expect_true(res$isError)
  text <- paste(result_text(res), collapse = "\n")
  expect_match(text, "Output:\n[1] \"step 1\"", fixed = TRUE)
  expect_match(text, "Error: kaboom", fixed = TRUE)

  res <- call_code(proc, 3L, "Sys.sleep(30)")
  expect_true(res$isError)
  expect_match(paste(result_text(res), collapse = "\n"), "timed out after 2 seconds", fixed = TRUE)

  res <- call_code(proc, 4L, "1 + 1")
  expect_false(isTRUE(res$isError))
  expect_identical(result_text(res), "[1] 2")

  # An unknown tool is a JSON-RPC error.
  mcp_send(proc, list(jsonrpc = "2.0", id = 5L, method = "tools/call",
    params = list(name = "no_such_tool", arguments = structure(list(), names = character()))))
  reply <- mcp_receive(proc)
  expect_identical(reply$id, 5L)
  expect_identical(reply$error$code, -32602L)

  close(proc$get_input_connection())
  proc$wait(30000)
  expect_identical(proc$get_exit_status(), 0L)
})

test_that("a tools file that does not exist or returns no tools stops the server with a clear error", {
  proc <- local_mcp_server("securer::securer_mcp_server(tools = '/no/such/tools.R')")
  proc$wait(30000)
  expect_false(identical(proc$get_exit_status(), 0L))
  # (cli wraps the message where the path's length puts it: compare words.)
  stderr_words <- function(proc) gsub("\\s+", " ", paste(proc$read_all_error_lines(), collapse = " "))
  expect_match(stderr_words(proc), "tools file .*/no/such/tools.R.* does not exist")

  path <- withr::local_tempfile(fileext = ".R")
  writeLines("42", path)
  proc <- local_mcp_server(sprintf("securer::securer_mcp_server(tools = '%s')", path))
  proc$wait(30000)
  expect_false(identical(proc$get_exit_status(), 0L))
  expect_match(stderr_words(proc), "must return a list")
})
