# A chat with a model that answers questions by running R code in
# securer's sandbox. The chat streams (ellmer's stream_async() into
# shinychat); the code runs without blocking the app (the tool returns a
# promise in asynchronous chats), so other users' sessions stay responsive;
# the panel on the right shows each piece of code the model ran, what it
# printed and the plots it drew.
#
# Run it with:
#   shiny::runApp(system.file("examples", "shiny-chat", package = "securer"))
#
# The model is OpenAI's (set OPENAI_API_KEY); OPENAI_BASE_URL points it at
# any server that speaks OpenAI's Responses API, and SECURER_CHAT_MODEL
# picks the model. Use any other ellmer chat_*() in new_chat().

library(shiny)
library(bslib)
library(shinychat)
library(securer)

new_chat <- function() {
  ellmer::chat_openai(
    base_url = Sys.getenv("OPENAI_BASE_URL", "https://api.openai.com/v1"),
    model = Sys.getenv("SECURER_CHAT_MODEL", "gpt-4.1-mini"),
    system_prompt = paste(
      "You answer questions about data by running R code with the",
      "execute_r_code tool, then explain the result in a sentence or two.",
      "Query tables with the query_db() function available in the R session."
    )
  )
}

# Host functions the sandboxed code may call: they run here, in the app's
# process, with its data.
host_tools <- list(
  securer_tool(
    "query_db", "Return the first `limit` rows of a dataset (mtcars, iris, airquality, ...).",
    fn = function(table, limit) utils::head(get(table, "package:datasets"), limit),
    args = list(table = "character", limit = "numeric")
  )
)

# One code run in the side panel. Shiny escapes the text, so nothing that
# the sandboxed code prints can become markup here.
run_card <- function(run) {
  status <- switch(run$status,
    running = tags$span(class = "badge text-bg-secondary", "running"),
    error = tags$span(class = "badge text-bg-danger", "error"),
    tags$span(class = "badge text-bg-success", "done")
  )
  div(
    class = "securer-run mb-3",
    `data-status` = run$status,
    div(class = "d-flex justify-content-between", tags$strong(paste("Run", run$n)), status),
    tags$pre(class = "securer-code", run$code),
    if (length(run$text)) tags$pre(class = "securer-output", paste(run$text, collapse = "\n\n")),
    # Plots: drawn in the sandbox, checked as PNGs on the host, returned by
    # the tool as ellmer image content; each is shown here.
    if (length(run$images)) {
      div(class = "securer-plots", lapply(run$images, function(img) {
        tags$img(src = paste0("data:", img$type, ";base64,", img$data), class = "img-fluid")
      }))
    }
  )
}

# What the tool returned: one string, or its text and images (a list of
# ellmer content objects) when the code drew.
run_result <- function(result) {
  if (!is.null(result@error)) {
    err <- result@error
    return(list(status = "error", text = if (inherits(err, "condition")) conditionMessage(err) else err))
  }
  value <- result@value
  if (is.character(value)) {
    return(list(status = "done", text = value))
  }
  is_a <- function(x, class) S7::S7_inherits(x, class)
  list(
    status = "done",
    text = unlist(lapply(Filter(function(x) is_a(x, ellmer::ContentText), value), function(x) x@text)),
    images = lapply(Filter(function(x) is_a(x, ellmer::ContentImageInline), value), function(x) {
      list(type = x@type, data = x@data)
    })
  )
}

ui <- page_fillable(
  title = "securer chat",
  layout_columns(
    col_widths = c(7, 5),
    card(
      card_header("Chat"),
      chat_ui("chat", placeholder = "Ask about mtcars, iris, airquality...")
    ),
    card(
      card_header("Code runs in the sandbox"),
      card_body(uiOutput("runs"))
    )
  )
)

server <- function(input, output, session) {
  # One sandboxed R session per browser session, closed when it ends.
  sandbox <- SecureSession$new(tools = host_tools)
  session$onSessionEnded(sandbox$close)

  chat <- new_chat()
  chat$register_tool(securer_as_ellmer_tool(sandbox, timeout = 60))

  runs <- reactiveVal(list())
  chat$on_tool_request(function(request) {
    if (request@name != "execute_r_code") {
      return()
    }
    all <- isolate(runs())
    all[[request@id]] <- list(
      n = length(all) + 1L, code = request@arguments$code, status = "running"
    )
    runs(all)
  })
  chat$on_tool_result(function(result) {
    id <- result@request@id
    all <- isolate(runs())
    if (is.null(all[[id]])) {
      return()
    }
    all[[id]] <- utils::modifyList(all[[id]], run_result(result))
    runs(all)
  })

  observeEvent(input$chat_user_input, {
    # (The input is the typed text, or a list of ellmer content objects
    # when attachments are on: spliced either way.)
    stream <- chat$stream_async(!!!input$chat_user_input, stream = "content")
    chat_append("chat", stream)
  })

  output$runs <- renderUI({
    all <- runs()
    if (length(all) == 0L) {
      return(p(class = "text-muted", "The code the model runs appears here."))
    }
    lapply(rev(all), run_card)
  })
}

shinyApp(ui, server)
