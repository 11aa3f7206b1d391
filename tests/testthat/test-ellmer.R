# The tool runs with `sandbox = FALSE` (fast) except where the sandbox is
# the point. ellmer tool objects are functions: the unit tests call them the
# way ellmer does, the end-to-end tests drive a real ellmer Chat against a
# local fake OpenAI server (webfakes), with no network and no API key.

# --- unit tests: the tool object and its function ---------------------------

test_that("securer_as_ellmer_tool() returns a callable ellmer tool named execute_r_code", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_true(S7::S7_inherits(run_r, ellmer::ToolDef))
  expect_true(is.function(run_r))
  expect_identical(run_r@name, "execute_r_code")
})

test_that("the tool takes one string argument, code", {
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
  desc <- securer_as_ellmer_tool(sandbox = FALSE, timeout = 12)@description
  expect_match(desc, "Run R code", fixed = TRUE)
  expect_match(desc, "State persists between calls", fixed = TRUE)
  expect_match(desc, "12 seconds", fixed = TRUE)
  expect_no_match(desc, "functions are available", fixed = TRUE)
})

test_that("the description lists the securer tools with descriptions and argument types", {
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
  desc <- securer_as_ellmer_tool(tools = list(echo_tool()))@description
  expect_match(desc, "sandboxed R process", fixed = TRUE)
  expect_match(desc, "outside the sandbox, on the host", fixed = TRUE)
})

test_that("the tool runs code and returns the printed value", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(run_r("x <- 6 * 7; x"), "[1] 42")
})

test_that("no session is started before the first call", {
  skip_if_not_installed("ellmer", "0.5.0")
  before <- securer_children()
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  # (Children of earlier tests may end meanwhile: only new ones count.)
  expect_length(setdiff(securer_children(), before), 0L)
  run_r("1")
  # One session: its R (and, forked from a zygote, its supervisor).
  expect_gte(length(setdiff(securer_children(), before)), 1L)
})

test_that("state persists across calls", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  run_r("x <- 6 * 7")
  expect_identical(run_r("x + 1"), "[1] 43")
})

test_that("the model gets the console's text: output and values in order", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(
    run_r("print('hi'); cat('there\\n'); 1 + 1"),
    "[1] \"hi\"\nthere\n[1] 2"
  )
})

test_that("results that cannot cross as values are shown as the console shows them", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  text <- run_r("fit <- lm(mpg ~ wt, mtcars); summary(fit)")
  expect_match(text, "Residual standard error: 3.046", fixed = TRUE)
  expect_identical(run_r("mpg ~ wt"), "mpg ~ wt")
  # The session is in step afterwards.
  expect_identical(run_r("coef(fit)[[1]] > 37"), "[1] TRUE")
})

test_that("plots reach the model as images, within the caps; images can be turned off", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, max_images = 2, plots = plot_options(width = 320, height = 240))
  value <- run_r("for (i in 1:3) plot(i); 7")
  expect_length(value, 3L)
  expect_true(S7::S7_inherits(value[[1]], ellmer::ContentText))
  expect_identical(value[[1]]@text, "[1] 7\n[1 more plot drawn but not shown]")
  for (img in value[2:3]) {
    expect_true(S7::S7_inherits(img, ellmer::ContentImageInline))
    expect_identical(img@type, "image/png")
    expect_match(img@data, "^[A-Za-z0-9+/]+=*$")
    png <- jsonlite::base64_dec(img@data)
    expect_identical(png[1:8], as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)))
    # Width and height from the IHDR chunk: the size asked for.
    expect_identical(readBin(png[17:24], "integer", 2L, endian = "big"), c(320L, 240L))
  }
  # Control: without images the same code gives text, and nothing is drawn.
  text_only <- securer_as_ellmer_tool(sandbox = FALSE, images = FALSE)
  expect_identical(text_only("plot(1); 7"), "[1] 7")
  expect_error(securer_as_ellmer_tool(sandbox = FALSE, images = NA), class = "securer_input_error")
  expect_error(securer_as_ellmer_tool(sandbox = FALSE, max_images = -1), class = "securer_input_error")
  expect_error(securer_as_ellmer_tool(sandbox = FALSE, plots = "big"), class = "securer_input_error")
})

test_that("printed output is kept when the value is NULL", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(run_r("cat('hello\\n')"), "hello")
})

test_that("an invisible value without output says there is no visible result", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_identical(run_r("y <- 1"), "(no visible result)")
})

test_that("a long result is truncated", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  res <- run_r("data.frame(i = 1:500)")
  # Its beginning and end, with what was left out in between.
  expect_match(res, "^      i\n1     1\n")
  expect_match(res, "[... 451 lines omitted ...]", fixed = TRUE)
  expect_match(res, "\n500 500$")
})

test_that("the code can call the securer tools", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(tools = list(query_db_tool()), sandbox = FALSE)
  expect_identical(run_r("nrow(query_db('iris', 3))"), "[1] 3")
})

test_that("an error in the code becomes an error that mentions it", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("stop('kaboom')"), class = "securer_child_error")
  expect_identical(conditionMessage(err), "Error: kaboom")
  expect_s3_class(err$parent, "securer_child_error")
})

test_that("an error message names the failing call", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("log('a')"), class = "securer_child_error")
  expect_identical(
    conditionMessage(err),
    "Error in log(\"a\") : non-numeric argument to mathematical function"
  )
})

test_that("an error message includes the output printed before the error", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("print('step 1'); stop('kaboom')"), class = "securer_error")
  expect_identical(conditionMessage(err), "Output:\n[1] \"step 1\"\n\nError: kaboom")
})

test_that("a syntax error is reported with R's parse message", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(run_r("if (TRUE {"), class = "securer_syntax_error")
  expect_match(conditionMessage(err), "^Syntax error; nothing was run.\nline 1:10: unexpected '\\{'\n")
})

test_that("a resource limit error says which limit the code hit", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_on_os(c("windows", "mac"))
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, limits = list(memory = 5e8))
  err <- expect_error(run_r("x <- numeric(1e9)"), class = "securer_limit_error")
  lines <- strsplit(conditionMessage(err), "\n", fixed = TRUE)[[1]]
  expect_match(lines[1], "memory", fixed = TRUE)
  expect_match(lines[2], "^Error: cannot allocate")
  expect_no_match(conditionMessage(err), "limits = list", fixed = TRUE)
})

test_that("the session keeps working after an error", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  run_r("x <- 1")
  expect_error(run_r("stop('no')"), class = "securer_child_error")
  expect_identical(run_r("x"), "[1] 1")
})

test_that("a timeout becomes an error that says it timed out", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, timeout = 1)
  err <- expect_error(run_r("Sys.sleep(30)"), class = "securer_timeout")
  expect_match(conditionMessage(err), "^Execution timed out after 1 seconds\\.")
  expect_match(conditionMessage(err), "objects from earlier calls are gone", fixed = TRUE)
})

test_that("the tool works again after a timeout", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, timeout = 1)
  expect_error(run_r("Sys.sleep(30)"), class = "securer_timeout")
  expect_identical(run_r("1 + 1"), "[1] 2")
})

test_that("a child that dies between calls is replaced and the model is told", {
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
  skip_on_os("windows")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  expect_error(run_r("tools::pskill(Sys.getpid(), tools::SIGKILL)"), class = "securer_child_error")
  expect_match(run_r("1 + 1"), "[1] 2", fixed = TRUE)
})

test_that("the tool runs code in a session passed to it", {
  skip_if_not_installed("ellmer", "0.5.0")
  session <- new_session()
  session$execute("x <- 'from the session'")
  run_r <- securer_as_ellmer_tool(session)
  expect_identical(run_r("x"), "[1] \"from the session\"")
})

test_that("a session passed to the tool and closed between calls is restarted", {
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
  session <- new_session(tools = list(query_db_tool()))
  desc <- securer_as_ellmer_tool(session)@description
  expect_match(desc, "- query_db(table = <character>, limit = <numeric>)", fixed = TRUE)
})

test_that("tools cannot be given together with a session", {
  skip_if_not_installed("ellmer", "0.5.0")
  session <- new_session()
  expect_error(
    securer_as_ellmer_tool(session, tools = list(echo_tool())),
    class = "securer_input_error"
  )
})

test_that("session must be a SecureSession", {
  skip_if_not_installed("ellmer", "0.5.0")
  expect_error(securer_as_ellmer_tool(session = "x"), class = "securer_input_error")
})

test_that("a wrong set-up fails when the tool is created, not on its first call", {
  skip_if_not_installed("ellmer", "0.5.0")
  expect_error(securer_as_ellmer_tool(sandbox = "yes"), class = "securer_input_error")
  expect_error(securer_as_ellmer_tool(tools = list("x")), class = "securer_tool_error")
  expect_error(securer_as_ellmer_tool(timeout = -1), class = "securer_input_error")
})

test_that("the tool runs code in the sandbox", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_on_os(c("windows", "mac"))
  run_r <- securer_as_ellmer_tool(tools = list(query_db_tool()))
  expect_identical(run_r("d <- query_db('mtcars', 5); nrow(d)"), "[1] 5")
})

# --- options: annotations, approval, sanitised errors, pools, promises --------

# Code that sleeps a second and returns when it ran, as text that a tool
# result keeps whole ("start end", in seconds).
span_text_code <- paste(
  "t0 <- Sys.time(); Sys.sleep(1)",
  "sprintf('%.3f %.3f', as.numeric(t0), as.numeric(Sys.time()))",
  sep = "; "
)

parse_span <- function(text) {
  as.numeric(regmatches(text, gregexpr("[0-9]+\\.[0-9]+", text))[[1]])
}

# Each of two executions started before the other finished.
expect_overlap <- function(spans) {
  expect_length(spans, 2L)
  expect_lt(spans[[1]][[1]], spans[[2]][[2]])
  expect_lt(spans[[2]][[1]], spans[[1]][[2]])
}


test_that("the tool is annotated: never read-only, harmless only in the sandbox", {
  skip_if_not_installed("ellmer", "0.5.0")
  hints <- function(tool) tool@annotations[c("read_only_hint", "destructive_hint", "open_world_hint")]
  # Without a sandbox the code can do anything the host can.
  expect_identical(
    hints(securer_as_ellmer_tool(sandbox = FALSE)),
    list(read_only_hint = FALSE, destructive_hint = TRUE, open_world_hint = TRUE)
  )
  # In the sandbox, with no way out, it can neither destroy nor reach anything.
  expect_identical(
    hints(securer_as_ellmer_tool()),
    list(read_only_hint = FALSE, destructive_hint = FALSE, open_world_hint = FALSE)
  )
  expect_identical(securer_as_ellmer_tool()@annotations$title, "Run R code")
})

test_that("host tools make the sandboxed tool destructive and open-world unless they say otherwise", {
  skip_if_not_installed("ellmer", "0.5.0")
  # Nothing is known of a plain securer tool.
  a <- securer_as_ellmer_tool(tools = list(echo_tool()))@annotations
  expect_true(a$destructive_hint)
  expect_true(a$open_world_hint)
  reader <- ellmer::tool(function() "data", name = "read_data", description = "Read the data.",
    annotations = ellmer::tool_annotations(read_only_hint = TRUE, open_world_hint = FALSE)
  )
  a <- securer_as_ellmer_tool(tools = list(reader))@annotations
  expect_false(a$destructive_hint)
  expect_false(a$open_world_hint)
  deleter <- ellmer::tool(function() "gone", name = "delete_data", description = "Delete the data.",
    annotations = ellmer::tool_annotations(destructive_hint = TRUE, open_world_hint = FALSE)
  )
  a <- securer_as_ellmer_tool(tools = list(reader, deleter))@annotations
  expect_true(a$destructive_hint)
  expect_false(a$open_world_hint)
})

test_that("annotations given to the tool override its own", {
  skip_if_not_installed("ellmer", "0.5.0")
  a <- securer_as_ellmer_tool(
    sandbox = FALSE,
    annotations = ellmer::tool_annotations(title = "R", destructive_hint = FALSE)
  )@annotations
  expect_identical(a$title, "R")
  expect_false(a$destructive_hint)
  expect_true(a$open_world_hint)
  expect_error(securer_as_ellmer_tool(annotations = "x"), class = "securer_input_error")
})

test_that("ellmer tools given as tools are functions in the session", {
  skip_if_not_installed("ellmer", "0.5.0")
  double_it <- ellmer::tool(function(x) x * 2, name = "double_it", description = "Double a number.",
    arguments = list(x = ellmer::type_number())
  )
  run_r <- securer_as_ellmer_tool(tools = list(double_it, echo_tool()), sandbox = FALSE)
  expect_match(run_r@description, "- double_it(x = <numeric>): Double a number.", fixed = TRUE)
  expect_identical(run_r("echo(double_it(21))"), "[1] 42")
})

test_that("approve refuses a tool call before the tool runs, with an error the code can catch", {
  skip_if_not_installed("ellmer", "0.5.0")
  ran <- character()
  logged <- securer_tool("log_it", "Log a message", fn = function(msg) {
    ran <<- c(ran, msg)
    "logged"
  }, args = list(msg = "character"))
  seen <- list()
  run_r <- securer_as_ellmer_tool(
    tools = list(logged), sandbox = FALSE,
    approve = function(tool, args) {
      seen[[length(seen) + 1L]] <<- list(tool = tool, args = args)
      if (identical(args$msg, "secret")) "not that one" else TRUE
    }
  )
  expect_identical(run_r("log_it('hello')"), "[1] \"logged\"")
  expect_identical(
    run_r("tryCatch(log_it('secret'), error = function(e) conditionMessage(e))"),
    "[1] \"Tool 'log_it' failed: the host refused this call: not that one\""
  )
  expect_identical(ran, "hello")
  expect_identical(seen[[2]], list(tool = "log_it", args = list(msg = "secret")))
})

test_that("approve cannot be combined with a session that has its tools", {
  skip_if_not_installed("ellmer", "0.5.0")
  session <- new_session()
  expect_error(
    securer_as_ellmer_tool(session, approve = function(tool, args) TRUE),
    class = "securer_input_error"
  )
})

test_that("sanitize_errors strips host paths from the errors the model gets", {
  skip_if_not_installed("ellmer", "0.5.0")
  code <- "stop('cannot open /home/alice/secret-project/data.csv')"
  plain <- securer_as_ellmer_tool(sandbox = FALSE)
  err <- expect_error(plain(code), class = "securer_child_error")
  expect_match(conditionMessage(err), "/home/alice/secret-project", fixed = TRUE)

  clean <- securer_as_ellmer_tool(sandbox = FALSE, sanitize_errors = TRUE)
  err <- expect_error(clean(code), class = "securer_child_error")
  expect_identical(conditionMessage(err), "Error: cannot open <path>")
})

test_that("sanitize_errors also cleans errors of a session given to the tool", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(new_session(), sanitize_errors = TRUE)
  err <- expect_error(run_r("print('/etc/hosts'); stop('in /var/lib/x')"), class = "securer_child_error")
  expect_identical(conditionMessage(err), "Output:\n[1] \"<path>\"\n\nError: in <path>")
})

test_that("async = TRUE returns a promise of the result", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, async = TRUE)
  p <- run_r("6 * 7")
  expect_true(promises::is.promise(p))
  expect_identical(wait_promise(p, 30)$value, "[1] 42")
})

test_that("an asynchronous call that fails rejects with the error written for the model", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, async = TRUE)
  got <- wait_promise(run_r("print('step 1'); stop('kaboom')"), 30)
  expect_false(got$ok)
  expect_s3_class(got$value, "securer_child_error")
  expect_identical(conditionMessage(got$value), "Output:\n[1] \"step 1\"\n\nError: kaboom")
  # A syntax error is refused before anything runs, as in a blocking call.
  got <- wait_promise(run_r("if (TRUE {"), 30)
  expect_s3_class(got$value, "securer_syntax_error")
})

test_that("asynchronous calls on one session run one after the other, in order", {
  skip_if_not_installed("ellmer", "0.5.0")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, async = TRUE)
  p1 <- run_r("Sys.sleep(0.3); x <- 6 * 7")
  p2 <- run_r("x")
  got <- wait_promise(promises::promise_all(p1, p2), 30)
  expect_identical(got$value, list("(no visible result)", "[1] 42"))
})

test_that("an asynchronous call replaces a dead session and says so", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_on_os("windows")
  run_r <- securer_as_ellmer_tool(sandbox = FALSE, async = TRUE)
  pid <- as.integer(sub("^\\[1\\] ", "", wait_promise(run_r("Sys.getpid()"), 30)$value))
  # As in the synchronous test: the supervisor above R reports R's end
  # and follows it a moment later; until then the session may count as
  # alive, and the call fails as one during which the child died.
  parent <- ps::ps_ppid(ps::ps_handle(pid))
  tools::pskill(pid, tools::SIGKILL)
  expect_true(wait_pid_gone(pid))
  if (parent != Sys.getpid()) expect_true(wait_pid_gone(parent))
  res <- wait_promise(run_r("1 + 1"), 30)$value
  expect_match(res, "^Note: the R session had stopped and was restarted")
  expect_match(res, "[1] 2", fixed = TRUE)
})

test_that("a tool on a pool runs calls on the pool's sessions and says state may not persist", {
  skip_if_not_installed("ellmer", "0.5.0")
  pool <- SecureSessionPool$new(size = 2, sandbox = FALSE, tools = list(echo_tool()))
  on.exit(pool$close(), add = TRUE)
  run_r <- securer_as_ellmer_tool(pool)
  expect_match(run_r@description, "Each call may run in a different R session", fixed = TRUE)
  expect_match(run_r@description, "- echo(x = <any>)", fixed = TRUE)
  expect_identical(run_r("echo(42)"), "[1] 42")
  expect_identical(run_r("y <- 1"), "(no visible result)")
  expect_identical(run_r("cat('hi\\n')"), "hi")
  err <- expect_error(run_r("stop('no')"), class = "securer_child_error")
  expect_identical(conditionMessage(err), "Error: no")
})

test_that("asynchronous calls on a pool run at the same time", {
  skip_if_not_installed("ellmer", "0.5.0")
  pool <- SecureSessionPool$new(size = 2, sandbox = FALSE)
  on.exit(pool$close(), add = TRUE)
  run_r <- securer_as_ellmer_tool(pool, async = TRUE)
  got <- wait_promise(promises::promise_all(run_r(span_text_code), run_r(span_text_code)), 60)
  expect_true(got$ok)
  expect_overlap(lapply(got$value, parse_span))
})

test_that("a closed pool cannot be given to the tool", {
  skip_if_not_installed("ellmer", "0.5.0")
  pool <- SecureSessionPool$new(size = 1, sandbox = FALSE)
  pool$close()
  expect_error(securer_as_ellmer_tool(pool), class = "securer_input_error")
})

test_that("content parts become one string, or ellmer content when there are images", {
  skip_if_not_installed("ellmer", "0.5.0")
  text <- list(type = "text", text = "[1] 42")
  expect_identical(content_value(list(text, list(type = "text", text = "more"))), "[1] 42\n\nmore")
  image <- list(type = "image", mime_type = "image/png", data = "iVBORw0KGgo=")
  value <- content_value(list(text, image))
  expect_length(value, 2L)
  expect_true(S7::S7_inherits(value[[1]], ellmer::ContentText))
  expect_identical(value[[1]]@text, "[1] 42")
  expect_true(S7::S7_inherits(value[[2]], ellmer::ContentImageInline))
  expect_identical(value[[2]]@type, "image/png")
  expect_identical(value[[2]]@data, "iVBORw0KGgo=")
})

# --- end to end: a real ellmer Chat against a fake OpenAI server -------------

# The fake server is in helper-fake-openai.R.

test_that("a Chat (Responses API) runs the code and the model gets the result", {
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
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
  skip_if_not_installed("ellmer", "0.5.0")
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

# --- end to end: asynchronous chats --------------------------------------------

test_that("an async Chat runs the code through a promise and the model gets the result", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai(c("x <- 6 * 7", "x"))
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE))

  got <- wait_promise(chat$chat_async("Compute it in two steps."), 60)
  expect_true(got$ok)
  expect_identical(as.character(got$value), "The answer is 42")
  reqs <- fake_requests(server)
  expect_length(reqs, 3L)
  expect_identical(fake_tool_results(reqs[[3]]), c("(no visible result)", "[1] 42"))
})

test_that("a streamed async Chat (Chat Completions) runs the code and streams the answer", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai("d <- query_db('mtcars', 7); nrow(d) * 6")
  chat <- fake_chat_completions(server)
  chat$register_tool(securer_as_ellmer_tool(tools = list(query_db_tool()), sandbox = FALSE))

  chunks <- character()
  stream <- chat$stream_async("How many rows, times 6?")
  done <- coro::async(function() {
    for (chunk in coro::await_each(stream)) chunks <<- c(chunks, chunk)
    "done"
  })()
  expect_true(wait_promise(done, 60)$ok)
  # The answer arrived in more than one piece.
  expect_gt(length(chunks), 1L)
  # (ellmer ends a streamed turn with a line break.)
  expect_identical(trimws(paste(chunks, collapse = "")), "The answer is 42")
  reqs <- fake_requests(server)
  expect_true(isTRUE(reqs[[1]]$stream))
  expect_identical(fake_tool_results(reqs[[2]]), "[1] 42")
})

test_that("an async Chat with the tool on a pool runs two tool calls at the same time", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_if_not_installed("webfakes")
  pool <- SecureSessionPool$new(size = 2, sandbox = FALSE)
  on.exit(pool$close(), add = TRUE)
  # The model asks for both calls in one reply.
  server <- local_fake_openai(list(c(span_text_code, span_text_code)))
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(pool))

  got <- wait_promise(chat$chat_async("Run both.", tool_mode = "concurrent"), 60)
  expect_true(got$ok)
  reqs <- fake_requests(server)
  expect_length(reqs, 2L)
  results <- fake_tool_results(reqs[[2]])
  expect_length(results, 2L)
  expect_overlap(lapply(results, parse_span))
})

test_that("concurrent tool calls of an async Chat on one session run in order", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai(list(c("Sys.sleep(0.3); x <- 6 * 7", "x")))
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE))

  got <- wait_promise(chat$chat_async("Both at once.", tool_mode = "concurrent"), 60)
  expect_identical(as.character(got$value), "The answer is 42")
  expect_identical(
    fake_tool_results(fake_requests(server)[[2]]),
    c("(no visible result)", "[1] 42")
  )
})

test_that("an error in an async Chat reaches the model as a failed tool result", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_if_not_installed("webfakes")
  server <- local_fake_openai("stop('object x not ready')")
  chat <- fake_chat_openai(server)
  chat$register_tool(securer_as_ellmer_tool(sandbox = FALSE))

  expect_warning(got <- wait_promise(chat$chat_async("Run it."), 60), class = "ellmer_tool_failure")
  expect_identical(
    as.character(got$value),
    "The tool said: Tool calling failed with error Error: object x not ready"
  )
})

test_that("a blocking Chat never gets a promise from the tool", {
  skip_if_not_installed("ellmer", "0.5.0")
  skip_if_not_installed("webfakes")
  # The same tool object serves a blocking and then an asynchronous chat.
  run_r <- securer_as_ellmer_tool(sandbox = FALSE)
  server <- local_fake_openai("x <- 6 * 7; x")
  chat <- fake_chat_openai(server)
  chat$register_tool(run_r)
  expect_identical(as.character(chat$chat("Go.")), "The answer is 42")
  chat2 <- fake_chat_openai(server)
  chat2$register_tool(run_r)
  expect_identical(as.character(wait_promise(chat2$chat_async("Go."), 60)$value), "The answer is 42")
})
