#' Serve sandboxed R over the Model Context Protocol
#'
#' Runs an [MCP](https://modelcontextprotocol.io) server on standard input
#' and output, built on [mcptools](https://posit-dev.github.io/mcptools/),
#' whose one tool, `execute_r_code`, runs R code in a sandboxed
#' [SecureSession]: the tool of [securer_as_ellmer_tool()], for MCP clients
#' such as Claude Desktop, Claude Code, VS Code or Positron. Host tools given
#' in `tools` are functions inside the session (code mode), so the client's
#' model reaches them only through code that runs in the sandbox.
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
#' @param sandbox,limits,timeout,approve,sanitize_errors As for
#'   [securer_as_ellmer_tool()].
#' @return Nothing; returns when the client disconnects.
#' @seealso [securer_as_ellmer_tool()] for the same tool in an ellmer chat.
#' @examples
#' # The server's tool is the one securer_as_ellmer_tool() makes, whose
#' # errors it returns as tool errors; its annotations reach the client:
#' if (requireNamespace("ellmer", quietly = TRUE)) {
#'   str(securer_as_ellmer_tool(sandbox = FALSE)@annotations)
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
                               sanitize_errors = FALSE) {
  if (!requireNamespace("mcptools", quietly = TRUE)) {
    securer_abort(
      c(
        "The {.pkg mcptools} package is required to serve MCP.",
        i = "Install it with {.code install.packages(\"mcptools\")}."
      ),
      class = "securer_input_error"
    )
  }
  if (is.character(tools)) tools <- source_tools_file(tools)
  # The stdio loop of mcptools runs no event loop: calls block.
  state <- ellmer_tool_state(
    NULL, tools, sandbox, limits, timeout,
    async = FALSE, approve = approve, sanitize_errors = sanitize_errors
  )
  on.exit(ellmer_tool_close(state), add = TRUE)
  mcptools::mcp_server(
    tools = list(mcp_execute_tool(state)), type = "stdio", session_tools = FALSE
  )
  invisible()
}

# The execute tool as MCP serves it: a failed execution is a tool result
# with `isError` (which the model sees), not a JSON-RPC error (which the
# client would take for a broken server).
mcp_execute_tool <- function(state) {
  execute_r_code <- function(code) {
    tryCatch(
      ellmer_execute(state, code),
      error = function(e) ellmer::ContentToolResult(error = conditionMessage(e))
    )
  }
  ellmer_tool_def(execute_r_code, state)
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
