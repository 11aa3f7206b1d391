# securer_tool(): definition and validation. Calls from the child are in
# test-tool-call.R.

expect_tool_error <- function(expr, pattern = NULL) {
  err <- expect_error(expr, class = "securer_tool_error")
  expect_s3_class(err, "securer_error")
  if (!is.null(pattern)) expect_match(conditionMessage(err), pattern, fixed = TRUE)
  invisible(err)
}


# Definition ---------------------------------------------------------------------

test_that("securer_tool() returns an S7 object with the given properties", {
  fn <- function(x, y) x + y
  tool <- securer_tool("add", "Add two numbers", fn = fn, args = list(x = "numeric", y = "numeric"))
  expect_true(S7::S7_inherits(tool, securer_tool_class))
  expect_s3_class(tool, "securer::securer_tool")
  expect_identical(tool@name, "add")
  expect_identical(tool@description, "Add two numbers")
  expect_identical(tool@fn, fn)
  expect_identical(tool@args, list(x = "numeric", y = "numeric"))
})

test_that("securer_tool() accepts every documented argument type", {
  types <- c(
    "numeric", "integer", "character", "logical", "list", "data.frame",
    "matrix", "complex", "raw", "any"
  )
  for (type in types) {
    tool <- securer_tool("t", "d", fn = function(x) x, args = list(x = type))
    expect_identical(tool@args, list(x = type), label = type)
  }
})

test_that("securer_tool() accepts a named character vector of types", {
  tool <- securer_tool("t", "d", fn = function(a, b) a, args = c(a = "numeric", b = "raw"))
  expect_identical(tool@args, list(a = "numeric", b = "raw"))
})

test_that("securer_tool() accepts a tool without arguments", {
  tool <- securer_tool("now", "d", fn = function() 1)
  expect_identical(tool@args, list())
})

test_that("the type 'function' is refused", {
  expect_tool_error(
    securer_tool("t", "d", fn = function(f) f(), args = list(f = "function")),
    "cannot be of type"
  )
})

test_that("an unknown type is refused", {
  expect_tool_error(
    securer_tool("t", "d", fn = function(x) x, args = list(x = "double")),
    "Unknown type"
  )
  expect_tool_error(securer_tool("t", "d", fn = function(x) x, args = list(x = c("numeric", "raw"))))
  expect_tool_error(securer_tool("t", "d", fn = function(x) x, args = list(x = 1)))
})

test_that("invalid tool names are refused", {
  for (name in c("1abc", "my tool", "a-b", "_x", ".1x", "if", "TRUE", "")) {
    expect_tool_error(securer_tool(name, "d", fn = function() 1))
  }
  expect_error(securer_tool(c("a", "b"), "d", fn = function() 1), class = "securer_error")
  expect_error(securer_tool(NA_character_, "d", fn = function() 1), class = "securer_error")
})

test_that("valid tool names are accepted", {
  for (name in c("a", "query_db", "q.db", ".hidden", "x1")) {
    expect_identical(securer_tool(name, "d", fn = function() 1)@name, name)
  }
})

test_that("arguments that fn does not take are refused", {
  expect_tool_error(
    securer_tool("t", "d", fn = function(x) x, args = list(x = "numeric", y = "numeric")),
    "does not take"
  )
})

test_that("a fn with ... takes any declared argument", {
  tool <- securer_tool("t", "d", fn = function(...) list(...), args = list(y = "numeric"))
  expect_identical(tool@args, list(y = "numeric"))
})

test_that("unnamed or duplicated argument names are refused", {
  expect_tool_error(securer_tool("t", "d", fn = function(x) x, args = list("numeric")))
  expect_tool_error(
    securer_tool("t", "d", fn = function(x) x, args = list(x = "numeric", x = "raw")),
    "unique name"
  )
})

test_that("fn must be a function", {
  expect_tool_error(securer_tool("t", "d", fn = "mean"), "must be a function")
})

test_that("description must be a single string", {
  expect_error(securer_tool("t", c("a", "b"), fn = function() 1), class = "securer_error")
})

test_that("print() shows the signature and description", {
  tool <- securer_tool("add", "Add two numbers",
    fn = function(x, y) x + y, args = list(x = "numeric", y = "numeric")
  )
  expect_output(print(tool), "<securer_tool> add(x: numeric, y: numeric)", fixed = TRUE)
  expect_output(print(tool), "Add two numbers", fixed = TRUE)
})

# Tools given to a session ---------------------------------------------------

test_that("duplicated tool names are refused by SecureSession$new()", {
  expect_tool_error(
    SecureSession$new(sandbox = FALSE, tools = list(echo_tool(), echo_tool())),
    "unique"
  )
})

test_that("elements that are not tools are refused by SecureSession$new()", {
  expect_tool_error(
    SecureSession$new(sandbox = FALSE, tools = list(echo_tool(), function(x) x)),
    "Element 2"
  )
  expect_tool_error(
    SecureSession$new(sandbox = FALSE, tools = list(list(name = "x", fn = identity)))
  )
  expect_tool_error(SecureSession$new(sandbox = FALSE, tools = "echo"))
})

test_that("a single tool need not be wrapped in a list", {
  s <- new_session(tools = echo_tool())
  expect_named(s$tools(), "echo")
  expect_identical(s$execute("echo(5L)"), 5L)
})

# The original API -------------------------------------------------------------

test_that("a NULL argument type means not checked ('any')", {
  t <- securer_tool("show", "Shows anything", fn = function(a, b) NULL, args = list(a = "character", b = NULL))
  expect_identical(t@args, list(a = "character", b = "any"))
  s <- new_session(tools = list(t))
  expect_null(s$execute("show('x', list(1, 'two'))"))
})

test_that("a bad type's message says how to leave an argument unchecked", {
  err <- expect_error(
    securer_tool("f", "d", fn = function(a) a, args = list(a = 1)),
    class = "securer_tool_error"
  )
  expect_match(conditionMessage(err), "\"any\"", fixed = TRUE)
})

test_that("securer_tool_class() validates as securer_tool() does", {
  expect_error(
    securer_tool_class(name = "not valid", description = "d", fn = function() 1, args = list()),
    class = "securer_tool_error"
  )
  expect_error(
    securer_tool_class(name = "f", description = "d", fn = function(x) x, args = list(x = "nope")),
    class = "securer_tool_error"
  )
  expect_error(
    securer_tool_class(name = "f", description = "d", fn = function(x) x, args = list(y = "numeric")),
    class = "securer_tool_error"
  )
  ok <- securer_tool_class(name = "f", description = "d", fn = function(x) x, args = list(x = NULL))
  expect_identical(ok@args, list(x = "any"))
  # A property set later is checked too.
  expect_error(ok@name <- "still not valid")
})

test_that("tools() is usable as result$add$name and result$add$args", {
  add <- securer_tool("add", "Add", fn = function(x, y) x + y, args = list(x = "numeric", y = "numeric"))
  s <- new_session(tools = list(add))
  res <- s$tools()
  expect_identical(res$add$name, "add")
  expect_identical(res$add$args, list(x = "numeric", y = "numeric"))
  expect_identical(res$add$description, "Add")
  expect_null(res$add$nothing)
})
