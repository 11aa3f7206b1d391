# Approval hooks (`approve`): asked on the host before each tool call from
# the sandbox. Most tests use `sandbox = FALSE`; the attempts to get past
# the hook run in each sandbox tier.

skip_if_not_installed("ellmer", "0.5.0")

# A tool that records its calls in `log` (an environment).
recording_tool <- function(log) {
  log$calls <- character()
  securer_tool("delete_file", "Delete a file on the host.",
    fn = function(path) {
      log$calls <- c(log$calls, path)
      "deleted"
    },
    args = list(path = "character")
  )
}

approved_session <- function(approve, log, ..., make = new_session, .env = parent.frame()) {
  tools <- securer_tools_from_ellmer(list(recording_tool(log)), approve = approve)
  make(tools = tools, ..., .env = .env)
}

# What the sandboxed code got from `delete_file(path)`: the value, or the
# message of the error it caught.
attempt <- function(session, path = "notes.txt") {
  strip_output(session$execute(sprintf(
    "tryCatch(delete_file('%s'), error = function(e) conditionMessage(e))", path
  )))
}

test_that("TRUE lets the call run, and the hook sees the tool and its arguments", {
  log <- new.env()
  seen <- list()
  s <- approved_session(function(tool, args) {
    seen <<- list(tool = tool, args = args)
    TRUE
  }, log)
  expect_identical(attempt(s), "deleted")
  expect_identical(log$calls, "notes.txt")
  expect_identical(seen, list(tool = "delete_file", args = list(path = "notes.txt")))
})

test_that("FALSE refuses the call and the tool does not run", {
  log <- new.env()
  s <- approved_session(function(tool, args) FALSE, log)
  expect_identical(attempt(s), "Tool 'delete_file' failed: the host refused this call")
  expect_identical(log$calls, character())
})

test_that("a string refuses the call with that reason", {
  log <- new.env()
  s <- approved_session(function(tool, args) {
    if (startsWith(args$path, "/")) "only relative paths" else TRUE
  }, log)
  expect_identical(
    attempt(s, "/etc/passwd"),
    "Tool 'delete_file' failed: the host refused this call: only relative paths"
  )
  expect_identical(attempt(s, "a.txt"), "deleted")
  expect_identical(log$calls, "a.txt")
})

test_that("ellmer::tool_reject() refuses the call", {
  log <- new.env()
  s <- approved_session(function(tool, args) ellmer::tool_reject("not today"), log)
  expect_identical(
    attempt(s),
    "Tool 'delete_file' failed: the host refused this call: Tool call rejected. not today"
  )
  expect_identical(log$calls, character())
})

test_that("a failing hook refuses the call, warns the host and tells the code nothing of it", {
  log <- new.env()
  s <- approved_session(function(tool, args) stop("database of rules at /srv/rules is down"), log)
  expect_warning(got <- attempt(s), class = "securer_approval_warning")
  expect_identical(got, "Tool 'delete_file' failed: the host refused this call: the approval check did not allow it")
  expect_identical(log$calls, character())
})

test_that("anything but TRUE refuses the call", {
  log <- new.env()
  for (verdict in list(NULL, NA, "", 1, c(TRUE, TRUE), list(TRUE))) {
    s <- approved_session(function(tool, args) verdict, log)
    expect_match(attempt(s), "^Tool 'delete_file' failed: the host refused this call")
    s$close()
  }
  expect_identical(log$calls, character())
})

test_that("approve must be a function", {
  expect_error(
    securer_tools_from_ellmer(list(echo_tool()), approve = "yes"),
    class = "securer_input_error"
  )
})

# --- getting past the hook -------------------------------------------------------

# Sandboxed code that skips its stub and sends the tool call itself.
bypass_code <- paste(
  "send <- environment(delete_file)$.securer_call_tool",
  "tryCatch(send('delete_file', list(path = 'x'), list(path = 'any'), NULL),",
  "  error = function(e) conditionMessage(e))",
  sep = "\n"
)

expect_hook_holds <- function(session, log) {
  expect_identical(
    strip_output(session$execute(bypass_code)),
    "Tool 'delete_file' failed: the host refused this call: no"
  )
  expect_identical(log$calls, character())
}

deny <- function(tool, args) "no"

test_that("the hook runs even when sandboxed code skips its stubs (control: without it, the call runs)", {
  log <- new.env()
  s <- new_session(tools = list(recording_tool(log)))
  expect_identical(strip_output(s$execute(bypass_code)), "deleted")
  expect_identical(log$calls, "x")
  log2 <- new.env()
  expect_hook_holds(approved_session(deny, log2), log2)
})

test_that("the hook holds in a session forked from the zygote", {
  skip_if_no_sandbox()
  log <- new.env()
  s <- approved_session(deny, log, make = sandboxed_session)
  expect_true(zygote_session(s))
  expect_hook_holds(s, log)
})

test_that("the hook holds in a cold-started sandboxed session", {
  skip_if_no_sandbox()
  log <- new.env()
  s <- approved_session(deny, log, zygote = FALSE, make = sandboxed_session)
  expect_false(zygote_session(s))
  expect_hook_holds(s, log)
})

test_that("the hook holds in the fallback tier", {
  skip_if_no_sandbox()
  log <- new.env()
  expect_hook_holds(approved_session(deny, log, make = fallback_session), log)
})
