#' Serve sandboxed R over the Model Context Protocol
#'
#' Runs an [MCP](https://modelcontextprotocol.io) server on standard input
#' and output whose one tool, `execute_r_code`, runs R code in a sandboxed
#' [SecureSession]: the tool of [securer_as_ellmer_tool()], for MCP clients
#' such as Claude Desktop, Claude Code, VS Code or Positron. Host tools given
#' in `tools` are functions inside the session (code mode), so the client's
#' model reaches them only through code that runs in the sandbox; they may
#' be ellmer tools, including those that `mcptools::mcp_tools()` brings from
#' other MCP servers.
#'
#' @details
#' An MCP client starts one server process per connection, so each client
#' gets its own sandboxed session: it starts on the first call and is
#' closed when the client disconnects (when standard input closes). Objects
#' persist between calls; after a timeout or a crash the session is
#' replaced and the model is told.
#'
#' A call whose code fails returns the error text as a tool error
#' (`isError: true`), so the model sees it and can fix its code. The tool's
#' annotations tell clients that it is not read-only, and whether it can
#' reach anything outside the sandbox (see [securer_as_ellmer_tool()]).
#'
#' The server speaks MCP's JSON-RPC over stdio (protocol versions
#' 2024-11-05 to 2025-06-18: `initialize`, `ping`, `tools/list`,
#' `tools/call`). It is securer's own rather than `mcptools::mcp_server()`,
#' which cannot serve ellmer tools on R older than 4.3 (it reads their S7
#' properties with base R's `@`).
#'
#' The function blocks until the client disconnects and is meant for
#' `Rscript`, not for an interactive session. Configure it in Claude Code
#' with
#'
#' ```
#' claude mcp add securer -- Rscript -e "securer::securer_mcp_server()"
#' ```
#'
#' or in Claude Desktop's `claude_desktop_config.json`:
#'
#' ```
#' {"mcpServers": {"securer": {"command": "Rscript",
#'   "args": ["-e", "securer::securer_mcp_server()"]}}}
#' ```
#'
#' With host tools, give the path of an R file that returns them:
#' `securer::securer_mcp_server(tools = "~/mcp/tools.R")`.
#'
#' @param tools A list of [securer_tool()]s or ellmer tools (see
#'   [securer_tools_from_ellmer()]), or the path of an R file that returns
#'   such a list when sourced (on the host, once, at start).
#' @param sandbox,limits,timeout,approve,sanitize_errors,images,plots,max_images As for
#'   [securer_as_ellmer_tool()].
#' @param input,output Connections the messages are read from and written
#'   to: standard input and output by default.
#' @return Nothing; returns when the client disconnects.
#' @seealso [securer_as_ellmer_tool()] for the same tool in an ellmer chat.
#' @examplesIf .Platform$OS.type == "unix"
#' # One client session, its messages in a file instead of standard input
#' if (requireNamespace("ellmer", quietly = TRUE)) {
#'   requests <- tempfile()
#'   writeLines(c(
#'     '{"jsonrpc": "2.0", "id": 1, "method": "initialize",
#'       "params": {"protocolVersion": "2025-06-18"}}',
#'     '{"jsonrpc": "2.0", "id": 2, "method": "tools/call",
#'       "params": {"name": "execute_r_code", "arguments": {"code": "sqrt(2)"}}}'
#'   ), requests)
#'   securer_mcp_server(sandbox = FALSE, input = file(requests))
#'   unlink(requests)
#' }
#'
#' if (FALSE) {
#'   # As an MCP client starts it (from a shell):
#'   # Rscript -e "securer::securer_mcp_server()"
#'   securer_mcp_server(tools = "tools.R", timeout = 60)
#' }
#' @export
securer_mcp_server <- function(tools = list(), sandbox = TRUE, limits = NULL,
                               timeout = 30, approve = NULL,
                               sanitize_errors = FALSE, images = TRUE,
                               plots = plot_options(), max_images = 4,
                               input = file("stdin"), output = stdout()) {
  require_ellmer("serve MCP")
  if (is.character(tools)) tools <- source_tools_file(tools)
  # Calls block: one client, one message at a time.
  state <- ellmer_tool_state(
    NULL, tools, sandbox, limits, timeout,
    async = FALSE, approve = approve, sanitize_errors = sanitize_errors,
    images = images, plots = plots, max_images = max_images
  )
  on.exit(ellmer_tool_close(state), add = TRUE)
  execute_r_code <- function(code) ellmer_execute(state, code)
  server <- list(state = state, tool = ellmer_tool_def(execute_r_code, state))
  if (!isOpen(input)) {
    open(input, "r")
    on.exit(close(input), add = TRUE)
  }
  repeat {
    line <- readLines(input, n = 1L, warn = FALSE)
    if (length(line) == 0L) break
    reply <- mcp_handle(server, line)
    if (!is.null(reply)) {
      writeLines(mcp_json(reply), output, useBytes = TRUE)
      flush(output)
    }
  }
  invisible()
}

# MCP protocol versions this server speaks, oldest first.
mcp_protocol_versions <- c("2024-11-05", "2025-03-26", "2025-06-18")

# The reply to one line from the client (a list), or NULL for a
# notification.
mcp_handle <- function(server, line) {
  if (!nzchar(trimws(line))) {
    return(NULL)
  }
  msg <- tryCatch(jsonlite::parse_json(line), error = function(e) NULL)
  if (is.null(msg)) {
    return(mcp_error(NULL, -32700L, "Parse error: the message is not JSON."))
  }
  id <- if (is.list(msg)) msg$id
  if (!is.list(msg) || is.null(names(msg)) || !is.character(msg$method) || length(msg$method) != 1L) {
    return(mcp_error(id, -32600L, "Invalid request: a JSON-RPC request names its method."))
  }
  # Notifications (no id) get no reply: `initialized`, `cancelled`.
  if (is.null(id)) {
    return(NULL)
  }
  params <- msg$params
  switch(msg$method,
    initialize = mcp_result(id, mcp_initialize_result(params)),
    ping = mcp_result(id, mcp_object()),
    "tools/list" = mcp_result(id, list(tools = list(mcp_tool_json(server$tool)))),
    "tools/call" = mcp_call(server, id, params),
    mcp_error(id, -32601L, paste0("Method not found: ", msg$method))
  )
}

mcp_initialize_result <- function(params) {
  asked <- params$protocolVersion
  version <- if (is.character(asked) && length(asked) == 1L && asked %in% mcp_protocol_versions) {
    asked
  } else {
    mcp_protocol_versions[[length(mcp_protocol_versions)]]
  }
  list(
    protocolVersion = version,
    capabilities = list(tools = list(listChanged = FALSE)),
    serverInfo = list(name = "securer", version = format(utils::packageVersion("securer"))),
    instructions = paste(
      "Runs R code in a sandboxed R session with the execute_r_code tool;",
      "objects persist between calls."
    )
  )
}

mcp_call <- function(server, id, params) {
  if (!identical(params$name, "execute_r_code")) {
    return(mcp_error(id, -32602L, paste0("Unknown tool: ", format(params$name %||% "(none)"))))
  }
  code <- params$arguments$code
  if (!is.character(code) || length(code) != 1L) {
    return(mcp_error(id, -32602L, "Invalid arguments: `code` must be a string of R code."))
  }
  mcp_result(id, mcp_execute(server$state, code))
}

# One call: the execution's content parts (see tool_content_parts()) as MCP
# content blocks, or its error, written for the model, as a tool error.
mcp_execute <- function(state, code) {
  tryCatch(
    {
      parts <- ellmer_parts(state, code)
      list(content = lapply(parts, mcp_content_block), isError = FALSE)
    },
    error = function(e) {
      list(content = list(list(type = "text", text = conditionMessage(e))), isError = TRUE)
    }
  )
}

mcp_content_block <- function(part) {
  switch(part$type,
    text = list(type = "text", text = part$text),
    image = list(type = "image", data = part$data, mimeType = part$mime_type)
  )
}

# The MCP description of an ellmer tool: name, schema of its arguments
# (the execute tool takes one string), annotations under MCP's names.
mcp_tool_json <- function(tool) {
  props <- tool@arguments@properties
  ann <- tool@annotations
  mcp_names <- c(
    read_only_hint = "readOnlyHint", destructive_hint = "destructiveHint",
    idempotent_hint = "idempotentHint", open_world_hint = "openWorldHint"
  )
  known <- names(ann) %in% names(mcp_names)
  names(ann)[known] <- mcp_names[names(ann)[known]]
  list(
    name = tool@name,
    title = ann$title,
    description = tool@description,
    inputSchema = list(
      type = "object",
      properties = lapply(props, function(p) list(type = p@type, description = p@description)),
      required = as.list(names(props)),
      additionalProperties = FALSE
    ),
    annotations = ann
  )
}

mcp_result <- function(id, result) list(jsonrpc = "2.0", id = id, result = result)

mcp_error <- function(id, code, message) {
  list(jsonrpc = "2.0", id = id, error = list(code = code, message = message))
}

# An empty JSON object ({}, not []).
mcp_object <- function() structure(list(), names = character())

mcp_json <- function(x) {
  as.character(jsonlite::toJSON(x, auto_unbox = TRUE, null = "null", digits = NA))
}

source_tools_file <- function(path) {
  check_string(path, "tools")
  path <- path.expand(path)
  if (!file.exists(path)) {
    securer_abort(
      c(
        "The tools file {.path {path}} does not exist.",
        i = "Give the path of an R file whose last value is a list of tools."
      ),
      class = "securer_input_error"
    )
  }
  tools <- tryCatch(
    source(path, local = new.env(parent = globalenv()))$value,
    error = function(e) {
      securer_abort(
        c("Sourcing the tools file {.path {path}} failed.", x = "{conditionMessage(e)}"),
        class = "securer_input_error"
      )
    }
  )
  if (is_tool_def(tools) || S7::S7_inherits(tools, securer_tool_class)) tools <- list(tools)
  if (!is.list(tools)) {
    securer_abort(
      "The tools file {.path {path}} must return a list of tools, not {.obj_type_friendly {tools}}.",
      class = "securer_input_error"
    )
  }
  tools
}
