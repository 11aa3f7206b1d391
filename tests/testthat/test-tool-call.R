# Tool calls from the child: the stubs in the child, the checks on both
# sides, the values crossing both ways, and failures.

# Host-side counters of calls that reached the tool functions.
calls <- new.env()
calls$num <- 0L

host_value <- new.env()

tools <- list(
  echo_tool(),
  query_db_tool(),
  securer_tool("num", "Needs a number",
    fn = function(x) {
      calls$num <- calls$num + 1L
      x * 2
    },
    args = list(x = "numeric")
  ),
  securer_tool("int", "Needs whole numbers",
    fn = function(x) x, args = list(x = "integer")
  ),
  securer_tool("fail", "Always fails",
    fn = function() stop("the tool broke")
  ),
  securer_tool("give_env", "Returns an environment", fn = function() new.env()),
  securer_tool("give_fn", "Returns a closure", fn = function() function(x) x),
  securer_tool("opt", "Has a default",
    fn = function(a, b = 10) a + b,
    args = list(a = "numeric", b = "numeric")
  ),
  securer_tool("noargs", "Takes nothing", fn = function() "no arguments"),
  securer_tool("host_get", "Returns a value defined on the host",
    fn = function(name) host_value[[name]],
    args = list(name = "character")
  ),
  securer_tool("typed", "One argument of each type",
    fn = function(n = NULL, i = NULL, ch = NULL, lg = NULL, ls = NULL, df = NULL,
                  m = NULL, cx = NULL, rw = NULL) "ok",
    args = list(
      n = "numeric", i = "integer", ch = "character", lg = "logical",
      ls = "list", df = "data.frame", m = "matrix", cx = "complex", rw = "raw"
    )
  )
)
session <- new_session(tools = tools)

# Tools inside the child --------------------------------------------------------

test_that("inside the child each tool is a function with the declared arguments", {
  expect_true(session$execute("is.function(query_db)"))
  expect_identical(session$execute("names(formals(query_db))"), c("table", "limit"))
  expect_identical(session$execute("names(formals(noargs))"), NULL)
})

test_that("a tool call runs fn on the host and returns its value", {
  res <- session$execute("query_db('mtcars', 3)")
  expect_identical(res, head(mtcars, 3))
  expect_identical(session$execute("num(21)"), 42)
})

test_that("a tool without arguments can be called", {
  expect_identical(session$execute("noargs()"), "no arguments")
})

test_that("missing optional arguments use fn's defaults", {
  expect_identical(session$execute("opt(1)"), 11)
  expect_identical(session$execute("opt(1, 2)"), 3)
  expect_identical(session$execute("opt(b = 5, a = 1)"), 6)
})

test_that("arguments are type-checked in the child before the call leaves it", {
  before <- calls$num
  msg <- session$execute("tryCatch(num('a'), error = function(e) conditionMessage(e))")
  expect_identical(msg, "Tool 'num': argument 'x' must be numeric, not character.")
  expect_identical(calls$num, before)
})

test_that("arguments are type-checked again on the host", {
  before <- calls$num
  # Bypass the child's stub: call its transport with a lying type table.
  msg <- session$execute(
    "tryCatch(
       environment(num)$.securer_call_tool('num', list(x = 'a'), list(x = 'any'), NULL),
       error = function(e) conditionMessage(e))"
  )
  expect_match(msg, "Tool 'num': argument 'x' must be numeric", fixed = TRUE)
  expect_identical(calls$num, before)
})

test_that("the host refuses arguments the tool does not declare", {
  msg <- session$execute(
    "tryCatch(
       environment(num)$.securer_call_tool('num', list(y = 1), list(y = 'any'), NULL),
       error = function(e) conditionMessage(e))"
  )
  expect_match(msg, "does not take argument 'y'", fixed = TRUE)
})

test_that("the host refuses calls to unknown tools", {
  msg <- session$execute(
    "tryCatch(
       environment(num)$.securer_call_tool('nope', list(), list(), NULL),
       error = function(e) conditionMessage(e))"
  )
  expect_match(msg, "Unknown tool 'nope'", fixed = TRUE)
})

test_that("an integer argument accepts whole numbers only", {
  expect_identical(session$execute("int(2)"), 2)
  expect_identical(session$execute("int(c(1L, NA))"), c(1L, NA))
  msg <- session$execute("tryCatch(int(2.5), error = function(e) conditionMessage(e))")
  expect_match(msg, "must be integer", fixed = TRUE)
})

test_that("each argument type accepts its values and refuses others", {
  good <- c(
    n = "1.5", i = "3L", ch = "'a'", lg = "NA", ls = "list(1)",
    df = "data.frame(a = 1)", m = "matrix(1:4, 2)", cx = "1i", rw = "as.raw(1)"
  )
  bad <- c(
    n = "'1'", i = "'1'", ch = "1", lg = "1", ls = "1",
    df = "list(a = 1)", m = "1:4", cx = "1", rw = "1L"
  )
  for (a in names(good)) {
    expect_identical(
      session$execute(sprintf("typed(%s = %s)", a, good[[a]])), "ok",
      label = paste(a, "=", good[[a]])
    )
    msg <- session$execute(sprintf(
      "tryCatch(typed(%s = %s), error = function(e) conditionMessage(e))", a, bad[[a]]
    ))
    expect_match(msg, sprintf("argument '%s' must be", a), fixed = TRUE, label = paste(a, "=", bad[[a]]))
  }
})

test_that("a tool's error is an R error inside the child, catchable with tryCatch", {
  msg <- session$execute("tryCatch(fail(), error = function(e) conditionMessage(e))")
  expect_identical(msg, "Tool 'fail' failed: the tool broke")
  cls <- session$execute("tryCatch(fail(), error = function(e) class(e))")
  expect_true("securer_tool_error" %in% cls)
  expect_true("error" %in% cls)
})

test_that("an uncaught tool error becomes a securer_child_error on the host", {
  err <- expect_error(session$execute("fail()"), class = "securer_child_error")
  expect_identical(err$child_message, "Tool 'fail' failed: the tool broke")
  expect_identical(err$child_call, "fail()")
})

test_that("calling a tool with an unexpected argument is an error", {
  msg <- session$execute("tryCatch(num(1, y = 2), error = function(e) conditionMessage(e))")
  expect_match(msg, "unused argument", fixed = TRUE)
  msg <- session$execute("tryCatch(num(1, 2), error = function(e) conditionMessage(e))")
  expect_match(msg, "unused argument", fixed = TRUE)
})

test_that("a tool returning an environment is refused inside the child", {
  msg <- session$execute("tryCatch(give_env(), error = function(e) conditionMessage(e))")
  expect_match(msg, "Tool 'give_env' returned a value that cannot be sent", fixed = TRUE)
  expect_match(msg, "environment", fixed = TRUE)
})

test_that("a tool returning a closure is refused inside the child", {
  msg <- session$execute("tryCatch(give_fn(), error = function(e) conditionMessage(e))")
  expect_match(msg, "Tool 'give_fn' returned a value that cannot be sent", fixed = TRUE)
  expect_match(msg, "closure", fixed = TRUE)
})

test_that("a function passed to an 'any' argument is refused by the host", {
  msg <- session$execute("tryCatch(echo(function(x) x), error = function(e) conditionMessage(e))")
  expect_match(msg, "refused", fixed = TRUE)
  expect_match(msg, "closure", fixed = TRUE)
})

test_that("an environment or language object passed to an 'any' argument is refused", {
  msg <- session$execute("tryCatch(echo(new.env()), error = function(e) conditionMessage(e))")
  expect_match(msg, "environment", fixed = TRUE)
  msg <- session$execute("tryCatch(echo(quote(stop('ran on host'))), error = function(e) conditionMessage(e))")
  expect_false(grepl("ran on host", msg, fixed = TRUE))
  expect_match(msg, "language", fixed = TRUE)
})

test_that("the session keeps working after refused tool values", {
  session$execute("tryCatch(give_env(), error = function(e) NULL)")
  expect_identical(session$execute("echo(1:3)"), 1:3)
})

# Values cross faithfully through tools ----------------------------------------

# Sends `value` into the child through a tool, back out through a tool
# argument, and returns the child's identical() verdict and the value.
round_trip <- function(value) {
  host_value$v <- value
  session$execute("v <- host_get('v'); list(same = identical(echo(v), v), value = echo(v))")
}

values <- list(
  data_frame = data.frame(
    n = c(1.5, NA, 3),
    f = factor(c("a", NA, "b"), levels = c("b", "a")),
    d = as.Date(c("2024-01-01", "2024-02-29", NA)),
    t = as.POSIXct(c("2024-01-01 10:00:00", NA, "2024-06-01 12:30:00"), tz = "Asia/Tokyo"),
    s = c("x", NA, "z"),
    row.names = c("r1", "r2", "r3"),
    stringsAsFactors = FALSE
  ),
  mtcars = mtcars,
  matrix = matrix(c(1.5, 2, 3, 4), 2, dimnames = list(c("a", "b"), c("x", "y"))),
  named_list = list(a = 1L, b = list(c = "x", d = NULL), e = c(TRUE, NA)),
  nas = list(NA, NA_integer_, NA_real_, NA_character_, NA_complex_),
  attributes = structure(1:4, custom = list(k = "v"), class = "difftime", units = "secs"),
  raw = as.raw(0:255),
  complex = complex(real = c(1, NA, -2.5), imaginary = c(0, 1, 3)),
  compact = 1:10,
  long = as.numeric(seq_len(1e6)) / 7,
  unicode = c("caf\u00e9", "\u65e5\u672c\u8a9e", "\U0001F600", NA),
  latin1 = iconv(c("caf\u00e9", "na\u00efve"), "UTF-8", "latin1"),
  empty = list(character(), integer(), NULL)
)

for (nm in names(values)) {
  local({
    value <- values[[nm]]
    test_that(paste("a", nm, "value crosses a tool round trip unchanged"), {
      res <- round_trip(value)
      expect_true(res$same)
      expect_identical(res$value, value)
    })
  })
}

# A session with one tool, probe(x), which keeps its argument in
# `box$seen`.
probe_session <- function(box, .env = parent.frame()) {
  probe <- securer_tool("probe", "Records its argument",
    fn = function(x) {
      box$seen <- x
      TRUE
    },
    args = list(x = "any")
  )
  new_session(tools = list(probe), .env = .env)
}

test_that("the tool's arguments reach the host with their types", {
  box <- new.env()
  s <- probe_session(box)
  s$execute("probe(data.frame(d = as.Date('2024-05-01'), f = factor('q'), row.names = 'only'))")
  expect_identical(box$seen, data.frame(d = as.Date("2024-05-01"), f = factor("q"), row.names = "only"))
  s$execute("probe(c(a = 1i, b = NA))")
  expect_identical(box$seen, c(a = 1i, b = NA))
})

# Calls read and checked in Rust ------------------------------------------------

# Counts the calls that go through R's reader (serve_tool_call()) while
# `code` runs.
slow_calls <- function(code) {
  n <- 0L
  real <- securer:::serve_tool_call
  local_internal("serve_tool_call", function(...) {
    n <<- n + 1L
    real(...)
  })
  force(code)
  n
}

test_that("calls of plain values are read in Rust; the others, and logged sessions, in R", {
  expect_identical(slow_calls(session$execute("num(1); noargs(); opt(1, 2); typed(ls = list(a = 1))")), 0L)
  # Attributes (a data frame), a value nested deeper than Rust reads, and
  # a type Rust refuses all take R's path, which answers as before.
  deep <- "Reduce(function(x, i) list(x), 1:9, 1)"
  expect_identical(slow_calls(session$execute(sprintf(
    "typed(df = data.frame(a = 1)); echo(%s); tryCatch(environment(num)$.securer_call_tool('num', list(x = 'a'), list(x = 'any'), NULL), error = identity); NULL", deep
  ))), 3L)
  expect_identical(session$execute(sprintf("identical(echo(%s), %s)", deep, deep)), TRUE)
  # A session with a log: every call goes through R, and is logged.
  logged <- suppressMessages(new_session(tools = list(echo_tool()), verbose = TRUE))
  suppressMessages(expect_message(expect_identical(slow_calls(logged$execute("echo(1)")), 1L), "Tool call"))
})

test_that("plain arguments read in Rust are exactly what unserialize() gives", {
  box <- new.env()
  s <- probe_session(box)
  args <- c(
    "1.5", "c(NA, 1L)", "c(TRUE, NA)", "1i", "as.raw(0:3)", "NULL", "character()", "list()",
    "c('caf\\u00e9', NA, '\\u65e5\\u672c')", "iconv('na\\u00efve', 'UTF-8', 'latin1')",
    "list(a = 1L, b = list(c = 'x', d = NULL), list(NA_character_))"
  )
  for (code in args) {
    expect_identical(slow_calls(s$execute(sprintf("probe(%s)", code))), 0L, label = code)
    x <- eval(parse(text = code, encoding = "UTF-8"))
    expect_identical(box$seen, x, label = code)
    if (is.character(x)) expect_identical(Encoding(box$seen), Encoding(x), label = code)
  }
})

test_that("a failing tool answers with its error, and the calls after it are served", {
  before <- calls$num
  got <- session$execute(
    "c(tryCatch(fail(), error = function(e) conditionMessage(e)), num(2), tryCatch(fail(), error = function(e) 'again'), num(3))"
  )
  expect_identical(got, c("Tool 'fail' failed: the tool broke", "4", "again", "6"))
  expect_identical(calls$num, before + 2L)
})

test_that("a host failure while serving calls read in Rust is the host's error, and leaves the session in step", {
  s <- new_session(tools = list(echo_tool()))
  local_internal("send_tool_value", function(...) stop("the host broke"))
  err <- expect_error(s$execute("echo(1); 'first'"), class = "securer_host_error")
  expect_match(conditionMessage(err), "the host broke", fixed = TRUE)
  expect_identical(s$get_state(), "idle")
  expect_identical(s$execute("'second'"), "second")
})

test_that("a stream of calls read in Rust still times out", {
  s <- new_session(tools = list(echo_tool()))
  expect_error(s$execute("repeat echo(1)", timeout = 1), class = "securer_timeout")
  expect_identical(s$execute("echo('after')"), "after")
})

# Child code that sends each payload (raw vectors) as a tool call of its
# own, bypassing the stubs, and returns the host's answers as
# list(kind, value).
forge_calls <- function(payloads) {
  paste0(
    find_runtime, "\n",
    "lapply(", payloads, ", function(b) {\n",
    "  .Call('wrap__rs_child_send', 'tool_call', b, PACKAGE = 'securer')\n",
    "  m <- rt$recv(100)\n",
    "  list(kind = m$kind, value = unserialize(m$payload))\n",
    "})"
  )
}

for (tier in sandbox_tiers) {
  test_that(paste0("forged calls get the host's checks whichever reader reads them (", tier, ")"), {
    s <- tier_session(tier, tools = tools)
    call <- function(name, args) sprintf("serialize(list(id = 1L, name = %s, args = %s), NULL, xdr = FALSE)", name, args)
    cases <- list(
      # The control: a well-formed call reaches the tool.
      list(call("'num'", "list(x = 2)"), "tool_result", "^4$"),
      list(call("'nope'", "list()"), "tool_error", "Unknown tool 'nope'"),
      list(call("'n\\u00fcm'", "list(x = 2)"), "tool_error", "Unknown tool"),
      list(call("'num'", "list(x = 'a')"), "tool_error", "argument 'x' must be numeric"),
      list(call("'num'", "list(y = 1)"), "tool_error", "does not take argument 'y'"),
      list(call("'num'", "list(x = 1, x = 2)"), "tool_error", "Tool 'num' failed"),
      list(call("'num'", "list(1)"), "tool_error", "does not take argument"),
      list(call("'num'", "setNames(list(1), NA)"), "tool_error", "does not take argument"),
      list(call("'num'", "setNames(list(1), 'x\\u00e9')"), "tool_error", "does not take argument"),
      list(call("1", "list()"), "tool_error", "Malformed tool call"),
      list(call("c('num', 'num')", "list(x = 1)"), "tool_error", "Malformed tool call"),
      list(call("'num'", "'x'"), "tool_error", "Malformed tool call"),
      list("serialize(list(id = 1L, args = list(x = 1)), NULL, xdr = FALSE)", "tool_error", "Malformed tool call")
    )
    before <- calls$num
    got <- s$execute(forge_calls(paste0("list(", paste(vapply(cases, `[[`, "", 1L), collapse = ", "), ")")))
    expect_length(got, length(cases))
    for (i in seq_along(cases)) {
      expect_identical(got[[i]]$kind, cases[[i]][[2]], label = cases[[i]][[1]])
      expect_match(as.character(got[[i]]$value), cases[[i]][[3]], label = cases[[i]][[1]])
    }
    # Only the control ran the tool.
    expect_identical(calls$num, before + 1L)
    expect_identical(s$execute("num(5)"), 10)
  })
}
