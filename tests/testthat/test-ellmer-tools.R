# securer_tools_from_ellmer(): ellmer tools called from sandboxed code. Most
# tests use `sandbox = FALSE` (the checks run on the host either way); the
# attempts to get past the host-side checks run in each sandbox tier.

skip_if_not_installed("ellmer", "0.5.0")

weather_tool <- function() {
  ellmer::tool(
    function(city, unit = "celsius") paste("22 degrees", unit, "in", city),
    name = "get-weather",
    description = "Get the current weather in a city.",
    arguments = list(
      city = ellmer::type_string("City name."),
      unit = ellmer::type_enum(c("celsius", "fahrenheit"), required = FALSE)
    )
  )
}

# A tool whose function returns what it was given, to see what the host
# passes it (one argument of each kind).
inspect_tool <- function(convert = TRUE) {
  ellmer::tool(
    function(n = NULL, k = NULL, flag = NULL, tags = NULL, levels = NULL,
             people = NULL, filter = NULL, matrix = NULL, anything = NULL) {
      args <- as.list(environment())
      args[!vapply(args, is.null, logical(1))]
    },
    name = "inspect",
    description = "Return the arguments.",
    arguments = list(
      n = ellmer::type_number(required = FALSE),
      k = ellmer::type_integer(required = FALSE),
      flag = ellmer::type_boolean(required = FALSE),
      tags = ellmer::type_array(ellmer::type_string(), required = FALSE),
      levels = ellmer::type_array(ellmer::type_enum(c("low", "high")), required = FALSE),
      people = ellmer::type_array(
        ellmer::type_object(name = ellmer::type_string(), age = ellmer::type_integer(required = FALSE)),
        required = FALSE
      ),
      filter = ellmer::type_object(
        field = ellmer::type_string(),
        op = ellmer::type_enum(c("eq", "lt")),
        .required = FALSE
      ),
      matrix = ellmer::type_array(ellmer::type_array(ellmer::type_number()), required = FALSE),
      anything = ellmer::type_from_schema('{"type": "string"}')
    ),
    convert = convert
  )
}

code_mode_session <- function(tools, ..., .env = parent.frame()) {
  new_session(tools = securer_tools_from_ellmer(tools, ...), .env = .env)
}

# Runs `code` and returns the error message the sandboxed code caught.
caught <- function(session, code) {
  strip_output(session$execute(sprintf(
    "tryCatch({ %s; 'no error' }, error = function(e) conditionMessage(e))", code
  )))
}

# --- conversion ------------------------------------------------------------

test_that("an ellmer tool becomes a securer tool with an R name", {
  tools <- securer_tools_from_ellmer(weather_tool())
  expect_named(tools, "get_weather")
  tool <- tools$get_weather
  expect_true(S7::S7_inherits(tool, securer_tool_class))
  expect_identical(tool@args, list(city = "character", unit = "character"))
  expect_identical(
    tool@description,
    paste(
      "Get the current weather in a city.",
      "Arguments:",
      "  city: a string. City name.",
      "  unit (optional): one of \"celsius\", \"fahrenheit\"",
      sep = "\n"
    )
  )
})

test_that("names that are not R names are made into R names", {
  mk <- function(name) ellmer::tool(function() 1, name = name, description = "x")
  tools <- securer_tools_from_ellmer(list(mk("fetch-page"), mk("2fa"), mk("function")))
  expect_named(tools, c("fetch_page", "tool_2fa", "function_tool"))
})

test_that("ellmer types map to the securer types checked in the sandbox", {
  tool <- securer_tools_from_ellmer(inspect_tool())$inspect
  expect_identical(tool@args, list(
    n = "numeric", k = "integer", flag = "logical", tags = "character",
    levels = "any", people = "any", filter = "list", matrix = "list", anything = "any"
  ))
  expect_match(tool@description, "people (optional): a data frame with columns name (a string), age (a whole number, optional)", fixed = TRUE)
  expect_match(tool@description, "filter (optional): a named list with elements field (a string), op (one of \"eq\", \"lt\")", fixed = TRUE)
  # (Optional: the function has a default for it.)
  expect_match(tool@description, "anything (optional): a value matching the JSON schema {\"type\":\"string\"}", fixed = TRUE)
})

test_that("securer tools in the list are kept and anything else is refused", {
  tools <- securer_tools_from_ellmer(list(weather_tool(), echo_tool()))
  expect_named(tools, c("get_weather", "echo"))
  expect_identical(tools$echo@args, echo_tool()@args)
  expect_error(securer_tools_from_ellmer("get_weather"), class = "securer_tool_error")
  expect_error(securer_tools_from_ellmer(list(weather_tool(), 1)), class = "securer_tool_error")
})

# --- calls from sandboxed code --------------------------------------------------

test_that("sandboxed code calls an ellmer tool as an R function", {
  s <- code_mode_session(weather_tool())
  expect_identical(strip_output(s$execute("get_weather('Paris')")), "22 degrees celsius in Paris")
  expect_identical(
    strip_output(s$execute("get_weather(unit = 'fahrenheit', city = 'Oslo')")),
    "22 degrees fahrenheit in Oslo"
  )
})

test_that("arguments are checked against the ellmer types before the tool runs", {
  ran <- 0L
  counted <- ellmer::tool(
    function(city, unit = "celsius") {
      ran <<- ran + 1L
      city
    },
    name = "counted", description = "Count calls.",
    arguments = list(
      city = ellmer::type_string(),
      unit = ellmer::type_enum(c("celsius", "fahrenheit"), required = FALSE)
    )
  )
  s <- code_mode_session(counted)
  expect_identical(
    caught(s, "counted('Paris', unit = 'kelvin')"),
    "Tool 'counted' failed: argument 'unit' must be one of \"celsius\", \"fahrenheit\", not \"kelvin\"."
  )
  expect_identical(caught(s, "counted(unit = 'celsius')"), "Tool 'counted' failed: argument 'city' is required.")
  expect_identical(
    caught(s, "counted(c('Paris', 'Rome'))"),
    "Tool 'counted' failed: argument 'city' must be a string, not character of length 2."
  )
  expect_identical(caught(s, "counted(NA_character_)"), "Tool 'counted' failed: argument 'city' must be a string, not NA.")
  # The sandbox's own check comes first for what it knows.
  expect_match(caught(s, "counted(42)"), "argument 'city' must be character", fixed = TRUE)
  expect_identical(ran, 0L)
  expect_identical(strip_output(s$execute("counted('Paris')")), "Paris")
  expect_identical(ran, 1L)
})

test_that("values reach the tool as ellmer gives them from a model's JSON", {
  s <- code_mode_session(inspect_tool())
  got <- strip_output(s$execute(paste(
    "inspect(n = 1.5, k = 3, flag = TRUE, tags = c('a', 'b'), levels = c('high', 'low'),",
    "people = list(list(name = 'Ann', age = 30), list(name = 'Bo')),",
    "filter = list(field = 'x', op = 'lt'), matrix = list(c(1, 2), 3))"
  )))
  expect_identical(got$n, 1.5)
  expect_identical(got$k, 3L)
  expect_true(got$flag)
  expect_identical(got$tags, c("a", "b"))
  expect_identical(got$levels, factor(c("high", "low"), levels = c("low", "high")))
  expect_identical(got$people, data.frame(name = c("Ann", "Bo"), age = c(30L, NA)))
  expect_identical(got$filter, list(field = "x", op = "lt"))
  expect_identical(got$matrix, list(c(1, 2), 3))
})

test_that("an array of objects may be given as a data frame, checked column by column", {
  s <- code_mode_session(inspect_tool())
  got <- strip_output(s$execute("inspect(people = data.frame(name = c('Ann', 'Bo'), age = c(30, 41)))"))
  expect_identical(got$people, data.frame(name = c("Ann", "Bo"), age = c(30L, 41L)))
  expect_identical(
    caught(s, "inspect(people = data.frame(name = 1:2))"),
    "Tool 'inspect' failed: column 'name' of argument 'people' must be a character vector, not integer of length 2."
  )
  expect_identical(
    caught(s, "inspect(people = data.frame(name = 'A', shoe = 9))"),
    "Tool 'inspect' failed: argument 'people' has unknown column 'shoe'."
  )
})

test_that("nested values are checked all the way down", {
  s <- code_mode_session(inspect_tool())
  expect_identical(
    caught(s, "inspect(filter = list(field = 'x', op = 'gt'))"),
    "Tool 'inspect' failed: element 'op' of argument 'filter' must be one of \"eq\", \"lt\", not \"gt\"."
  )
  expect_identical(
    caught(s, "inspect(filter = list(field = 'x'))"),
    "Tool 'inspect' failed: element 'op' of argument 'filter' is required."
  )
  expect_identical(
    caught(s, "inspect(filter = list(field = 'x', op = 'eq', drop = TRUE))"),
    "Tool 'inspect' failed: argument 'filter' has unknown element 'drop'."
  )
  expect_identical(
    caught(s, "inspect(filter = list('x', 'eq'))"),
    "Tool 'inspect' failed: argument 'filter' must be a named list with elements field (a string), op (one of \"eq\", \"lt\"), not list of length 2."
  )
  expect_identical(
    caught(s, "inspect(people = list(list(name = 'Ann'), list(age = 3)))"),
    "Tool 'inspect' failed: element 'name' of element 2 of argument 'people' is required."
  )
  expect_identical(
    caught(s, "inspect(matrix = list(c(1, 2), 'x'))"),
    "Tool 'inspect' failed: element 2 of argument 'matrix' must be a numeric vector, not \"x\"."
  )
  expect_identical(
    caught(s, "inspect(levels = c('low', 'mid'))"),
    "Tool 'inspect' failed: argument 'levels' must be a character vector of \"low\", \"high\", not character of length 2."
  )
  # The sandbox refuses what its own types refuse.
  expect_match(caught(s, "inspect(k = 2.5)"), "argument 'k' must be integer", fixed = TRUE)
})

test_that("a tool made with convert = FALSE gets arguments as parsed JSON", {
  s <- code_mode_session(inspect_tool(convert = FALSE))
  got <- strip_output(s$execute(
    "inspect(tags = c('a', 'b'), people = data.frame(name = 'Ann', age = 3), filter = list(field = 'x', op = 'eq'))"
  ))
  expect_identical(got$tags, list("a", "b"))
  expect_identical(got$people, list(list(name = "Ann", age = 3L)))
  expect_identical(got$filter, list(field = "x", op = "eq"))
})

test_that("an argument the function has a default for may be left out", {
  # Like btw's `_intent`: required for the model, optional for R code.
  tool <- ellmer::tool(
    function(x, `_intent` = "") paste0(x, "|", `_intent`),
    name = "with_intent", description = "Has an intent.",
    arguments = list(x = ellmer::type_string(), `_intent` = ellmer::type_string())
  )
  s <- code_mode_session(tool)
  expect_identical(strip_output(s$execute("with_intent('a')")), "a|")
  expect_identical(strip_output(s$execute("with_intent('a', `_intent` = 'why')")), "a|why")
  expect_match(securer_tools_from_ellmer(tool)$with_intent@description, "_intent (optional)", fixed = TRUE)
})

# --- results ------------------------------------------------------------------

test_that("results become plain R data in the sandbox", {
  returns <- function(name, value) {
    ellmer::tool(function() value, name = name, description = "Return a fixed value.")
  }
  s <- code_mode_session(list(
    returns("json", jsonlite::toJSON(data.frame(a = 1:2, b = c("x", "y")))),
    returns("text", ellmer::ContentText("some text")),
    returns("result", ellmer::ContentToolResult(value = "the value", extra = list(display = "x"))),
    returns("image", ellmer::ContentImageInline(type = "image/png", data = "iVBORw0KGgo=")),
    returns("contents", list(ellmer::ContentText("a"), ellmer::ContentText("b"))),
    returns("frame", data.frame(x = 1:3))
  ))
  expect_identical(strip_output(s$execute("json()")), data.frame(a = 1:2, b = c("x", "y")))
  expect_identical(strip_output(s$execute("text()")), "some text")
  expect_identical(strip_output(s$execute("result()")), "the value")
  expect_identical(
    strip_output(s$execute("image()")),
    list(type = "image", mime_type = "image/png", data = "iVBORw0KGgo=")
  )
  expect_identical(strip_output(s$execute("contents()")), list("a", "b"))
  expect_identical(strip_output(s$execute("frame()")), data.frame(x = 1:3))
})

test_that("a tool's error, or an error result, is an error the sandboxed code can catch", {
  failing <- ellmer::tool(function() stop("the service is down"), name = "failing", description = "Fails.")
  erring <- ellmer::tool(
    function() ellmer::ContentToolResult(error = "no such record"),
    name = "erring", description = "Returns an error."
  )
  s <- code_mode_session(list(failing, erring))
  expect_identical(caught(s, "failing()"), "Tool 'failing' failed: the service is down")
  expect_identical(caught(s, "erring()"), "Tool 'erring' failed: no such record")
})

test_that("a tool that returns a promise is refused with a clear error", {
  later_tool <- ellmer::tool(function() promises::promise_resolve(1), name = "later_tool", description = "Async.")
  s <- code_mode_session(later_tool)
  expect_match(caught(s, "later_tool()"), "asynchronous tools cannot be called from sandboxed code", fixed = TRUE)
})

test_that("approve refuses calls of converted tools", {
  s <- code_mode_session(weather_tool(), approve = function(tool, args) {
    if (identical(args$city, "Atlantis")) ellmer::tool_reject("no such city") else TRUE
  })
  expect_identical(strip_output(s$execute("get_weather('Paris')")), "22 degrees celsius in Paris")
  expect_identical(
    caught(s, "get_weather('Atlantis')"),
    "Tool 'get_weather' failed: the host refused this call: Tool call rejected. no such city"
  )
})

test_that("btw's tools work from sandboxed code", {
  # In a process of its own: loading btw opens event-loop fds for good.
  skip_if_not_present("btw")
  skip_if_not_installed("callr")
  got <- callr::r(function() {
    tools <- suppressWarnings(btw::btw_tools("docs"))
    converted <- securer::securer_tools_from_ellmer(tools)
    s <- securer::SecureSession$new(tools = converted, sandbox = FALSE)
    on.exit(s$close())
    list(
      names = names(converted),
      topics = s$execute("btw_tool_docs_package_help_topics('stats')"),
      refused = s$execute(
        "tryCatch(btw_tool_docs_package_help_topics(42), error = function(e) conditionMessage(e))"
      )
    )
  }, libpath = .libPaths())
  expect_true("btw_tool_docs_package_help_topics" %in% got$names)
  expect_type(got$topics, "character")
  expect_match(got$topics, "\"topic_id\":\"median\"", fixed = TRUE)
  expect_match(got$refused, "argument 'package_name' must be character", fixed = TRUE)
})

test_that("tools that mcptools brings from another MCP server work from sandboxed code", {
  # In a process of its own: loading mcptools opens nanonext's event loop
  # for good. The other MCP server is securer's own.
  skip_if_not_present("mcptools")
  skip_if_not_installed("callr")
  config <- withr::local_tempfile(fileext = ".json")
  jsonlite::write_json(list(mcpServers = list(other = list(
    command = file.path(R.home("bin"), "Rscript"),
    args = list("-e", "securer::securer_mcp_server(sandbox = FALSE)"),
    env = list(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  ))), config, auto_unbox = TRUE)
  got <- callr::r(function(config) {
    tools <- mcptools::mcp_tools(config)
    converted <- securer::securer_tools_from_ellmer(tools)
    s <- securer::SecureSession$new(tools = converted, sandbox = FALSE)
    on.exit(s$close())
    list(
      names = names(converted),
      value = s$execute("execute_r_code('x <- 2; x * 21')"),
      error = s$execute("tryCatch(execute_r_code('stop(\\'far away\\')'), error = function(e) conditionMessage(e))")
    )
  }, args = list(config = config), libpath = .libPaths())
  expect_identical(got$names, "execute_r_code")
  expect_identical(got$value, "[1] 42")
  expect_identical(got$error, "Tool 'execute_r_code' failed: Error: far away")
})

# --- getting past the checks --------------------------------------------------

# Sandboxed code that skips its own stubs and sends a tool call with a
# value the stub would pass (a string) but the ellmer type refuses.
bypass_code <- paste(
  "send <- environment(get_weather)$.securer_call_tool",
  "tryCatch(send('get_weather', list(city = 'Paris', unit = 'kelvin'), list(city = 'any', unit = 'any'), NULL),",
  "  error = function(e) conditionMessage(e))",
  sep = "\n"
)

expect_host_check_holds <- function(session) {
  got <- strip_output(session$execute(bypass_code))
  expect_identical(
    got,
    "Tool 'get_weather' failed: argument 'unit' must be one of \"celsius\", \"fahrenheit\", not \"kelvin\"."
  )
}

test_that("the host checks the ellmer types even when sandboxed code skips its stubs (control)", {
  # Without the host-side check (a plain securer tool with the same
  # sandbox-side types), the value reaches the function.
  plain <- securer_tool("get_weather", "Weather.",
    fn = function(city, unit = "celsius") paste(unit, city),
    args = list(city = "character", unit = "character")
  )
  s <- new_session(tools = list(plain))
  expect_identical(strip_output(s$execute(bypass_code)), "kelvin Paris")
  expect_host_check_holds(code_mode_session(weather_tool()))
})

test_that("the host checks the ellmer types in a session forked from the zygote", {
  skip_if_no_sandbox()
  s <- sandboxed_session(tools = securer_tools_from_ellmer(weather_tool()))
  expect_true(zygote_session(s))
  expect_host_check_holds(s)
})

test_that("the host checks the ellmer types in a cold-started sandboxed session", {
  skip_if_no_sandbox()
  s <- sandboxed_session(tools = securer_tools_from_ellmer(weather_tool()), zygote = FALSE)
  expect_false(zygote_session(s))
  expect_host_check_holds(s)
})

test_that("the host checks the ellmer types in the fallback tier", {
  skip_if_no_sandbox()
  expect_host_check_holds(fallback_session(tools = securer_tools_from_ellmer(weather_tool())))
})
