# Values from the sandbox are safe for the host to print, format,
# summarise and store (the checker in src/rust/core/src/rvalue/).
#
# Each attack is built by sandboxed code, returned by execute() and passed
# to a tool, in each tier (forked from the zygote, started cold, and the
# fallback tier). The host refuses it with a message naming the problem,
# the tool never runs, and the session answers the next call. A control
# per attack shows the same value hurting a plain R process on this
# machine (crash, hang on a file, gigabytes, C stack), so the tests fail if
# the checks are gone. The good cases cross and print as the host-built
# value does.

# Helpers shared by the sandboxed code and the host-side controls ------------

# Defined on the host and sent into the sandbox as source, so both sides
# build the same bytes.
value_helpers <- list(
  # Length of a version-3 native stream header: 18 bytes, then the name
  # of the writer's encoding.
  .header_len = function(b) 18L + readBin(b[15:18], "integer", size = 4L, endian = "little"),
  # The serialized item of `x`, without the stream header.
  .item = function(x) {
    b <- serialize(x, NULL, xdr = FALSE)
    b[-seq_len(.header_len(b))]
  },
  .find_raw = function(x, pat) {
    n <- length(pat)
    for (i in seq_len(length(x) - n + 1L)) {
      if (identical(x[i:(i + n - 1L)], pat)) return(i)
    }
    stop("marker not found")
  },
  # A stream made of a header and `item`.
  .stream = function(item) {
    b <- serialize(NULL, NULL, xdr = FALSE)
    c(b[seq_len(.header_len(b))], item)
  },
  # The string "SECURER-NUL" with a NUL byte: R cannot build it, a
  # stream can hold it.
  .nul_item = function() {
    b <- .item("SECURER-NUL")
    b[.find_raw(b, charToRaw("SECURER")) + 7L] <- as.raw(0L)
    b
  },
  # 1L with `n` attributes: R's reader recurses once per attribute.
  .attrs_item = function(n) {
    int <- function(v) writeBin(as.integer(v), raw(), size = 4L, endian = "little")
    nodes <- lapply(seq_len(n), function(i) {
      name <- charToRaw(paste0("a", i))
      c(int(1026L), int(1L), int(0x40009L), int(length(name)), name, int(13L), int(1L), int(i))
    })
    c(int(13L + 512L), int(1L), int(1L), unlist(nodes), int(254L))
  },
  # `x` with attribute `name` set without R's checks (renamed in the
  # serialized bytes from a placeholder of the same length).
  .raw_attr = function(x, name, value) {
    placeholder <- strrep("Q", nchar(name))
    attr(x, placeholder) <- value
    b <- serialize(x, NULL, xdr = FALSE)
    at <- .find_raw(b, charToRaw(placeholder))
    b[at:(at + nchar(name) - 1L)] <- charToRaw(name)
    unserialize(b)
  },
  # A time series with no observations and frequency 1e300.
  .empty_ts = function() {
    x <- .raw_attr(numeric(0), "tsp", c(1, 1, 1e300))
    oldClass(x) <- "ts"
    x
  },
  # Makes the child runtime send `item` in place of the next value it
  # sends that holds the string "SECURER-SPLICE": sandboxed code can
  # write any bytes to the host.
  .splice = function(item) {
    rt <- NULL
    for (f in sys.frames()) {
      if (exists("send_sym", envir = parent.env(f), inherits = FALSE)) rt <- parent.env(f)
    }
    orig <- rt$send_bytes
    marker <- .item("SECURER-SPLICE")
    # (The next message is serialized by R, not written by send_plain().)
    orig_plain <- rt$send_plain
    rt$send_plain <- function(kind, value) {
      rt$send_plain <- orig_plain
      FALSE
    }
    rt$send_bytes <- function(kind, b) {
      rt$send_bytes <- orig
      at <- .find_raw(b, marker)
      b <- c(b[seq_len(at - 1L)], item, b[-seq_len(at - 1L + length(marker))])
      .Call(rt$send_sym, kind, b)
    }
    invisible()
  }
)
for (name in names(value_helpers)) assign(name, value_helpers[[name]])

helpers_code <- paste(
  vapply(names(value_helpers), function(name) {
    paste0("`", name, "` <- ", paste(deparse(value_helpers[[name]]), collapse = "\n"))
  }, character(1)),
  collapse = "\n"
)

# A FIFO on the host: a time zone naming it makes glibc open it. Its path
# is kept short (under /tmp, not in a long tempdir()) so that the checker
# refuses it for naming a file, not for its length.
fifo_dir <- withr::local_tempdir("securer-values-", tmpdir = "/tmp")
fifo <- file.path(normalizePath(fifo_dir), "tz-fifo")
have_fifo <- nzchar(Sys.which("mkfifo")) && system2("mkfifo", fifo) == 0L

# Host-side calls of the probe tool.
tool_calls <- new.env(parent = emptyenv())
tool_calls$n <- 0L
probe_tool <- function() {
  securer_tool("echo", "Return the argument unchanged",
    fn = function(x) {
      tool_calls$n <- tool_calls$n + 1L
      x
    },
    args = list(x = "any")
  )
}

tier_sessions <- list(
  zygote = lazy_session(sandboxed_session, tools = list(probe_tool())),
  cold = lazy_session(sandboxed_session, zygote = FALSE, tools = list(probe_tool())),
  fallback = lazy_session(fallback_session, tools = list(probe_tool()))
)

tier_session <- function(tier) {
  skip_if_no_sandbox()
  session <- tier_sessions[[tier]]()
  if (tier == "fallback") skip_if_no_landlock(session)
  session
}

# Runs `code` (after the helpers) in `session`.
run_code <- function(session, code) {
  session$execute(paste(helpers_code, code, sep = "\n"))
}

# The host refuses the value `code` returns, naming `pattern`, and the
# session answers the next call.
expect_value_refused <- function(session, code, pattern) {
  err <- expect_error(run_code(session, code), class = "securer_value_error")
  expect_s3_class(err, "securer_ipc_error")
  expect_match(conditionMessage(err), pattern)
  expect_identical(strip_output(session$execute("1 + 1")), 2)
}

# The host refuses the tool call that carries the value: the tool does
# not run, the sandboxed code gets the refusal as an error (which it may
# catch), and the session answers the next call.
expect_argument_refused <- function(session, code, pattern) {
  before <- tool_calls$n
  err <- expect_error(run_code(session, code), class = "securer_child_error")
  expect_match(conditionMessage(err), "The tool call was refused", fixed = TRUE)
  expect_match(conditionMessage(err), pattern)
  expect_identical(tool_calls$n, before)
  expect_identical(strip_output(session$execute("1 + 1")), 2)
}

# Runs `code` in a throwaway R process on the host with `x` (saved to an
# RDS file), within `mem_mb` megabytes of address space if given, after the
# shell commands `shell`. Returns the processx process; "READY" on its
# stderr marks the start of `code`.
host_process <- function(x, code, mem_mb = NULL, shell = "", .env = parent.frame()) {
  skip_if_not_installed("processx")
  rds <- withr::local_tempfile(fileext = ".rds", .local_envir = .env)
  saveRDS(x, rds)
  script <- withr::local_tempfile(fileext = ".R", .local_envir = .env)
  writeLines(c(
    sprintf("x <- readRDS(%s)", deparse(rds)),
    "message('READY')",
    code,
    "message('DONE')"
  ), script)
  rscript <- shQuote(file.path(R.home("bin"), "Rscript"))
  limit <- if (is.null(mem_mb)) "" else sprintf("ulimit -v %d; ", as.integer(mem_mb * 1024))
  proc <- processx::process$new("bash",
    c("-c", paste0(limit, shell, "exec ", rscript, " --vanilla ", shQuote(script))),
    stderr = "|", stdout = "|"
  )
  withr::defer(proc$kill(), envir = .env)
  proc
}

# All of a host process's output, once it has exited.
host_output <- function(proc) {
  proc$wait()
  paste(c(proc$read_all_output_lines(), proc$read_all_error_lines()), collapse = "\n")
}

# Waits for a host process to print READY (it may be slow to start on a
# loaded machine).
wait_ready <- function(proc) {
  seen <- character()
  while (!"READY" %in% seen && proc$is_alive()) {
    proc$poll_io(1000)
    seen <- c(seen, proc$read_error_lines())
  }
  expect_true("READY" %in% seen)
}

# Does some process have the FIFO open for reading? (Opening it for
# writing without blocking succeeds only then.)
fifo_has_reader <- function(path) {
  con <- tryCatch(suppressWarnings(fifo(path, "wb", blocking = FALSE)), error = function(e) NULL)
  if (is.null(con)) {
    return(FALSE)
  }
  close(con)
  TRUE
}

# Waits until `done()` holds while `proc` runs; FALSE if `proc` ended
# first. (`done()` is called once per round: it may change what it sees.)
wait_until <- function(proc, done) {
  repeat {
    if (done()) {
      return(TRUE)
    }
    if (!proc$is_alive()) {
      return(FALSE)
    }
    Sys.sleep(0.05)
  }
}

# R 4.3 and later may not overflow; the crash control is R 4.2's.
skip_unless_r42 <- function() {
  skip_if(getRversion() >= "4.3.0", "the format.POSIXlt() buffer overflow is R 4.2's")
}

# The controls: each value hurts a plain R process -------------------------

test_that("control: a long time zone aborts R 4.2 when printed", {
  skip_unless_r42()
  for (x in list(
    structure(Sys.time(), tzone = paste0(strrep("A", 400), "5")),
    local({
      x <- as.POSIXlt(Sys.time())
      x$zone <- rep(strrep("A", 300), length(x$zone))
      x
    }),
    structure(as.POSIXlt(Sys.time(), "UTC"), tzone = strrep("B", 300))
  )) {
    out <- host_output(host_process(x, "print(x)"))
    expect_match(out, "buffer overflow detected", fixed = TRUE)
    expect_no_match(out, "DONE", fixed = TRUE)
  }
})

test_that("control: a time zone naming a FIFO makes R open it when printing", {
  require_or_skip(have_fifo, "mkfifo is needed for the FIFO control")
  relative <- paste0("../../..", fifo)
  for (tz in c(fifo, relative)) {
    expect_false(fifo_has_reader(fifo))
    proc <- host_process(structure(Sys.time(), tzone = tz), "print(x)")
    wait_ready(proc)
    # The printing process opened the FIFO named by the time zone (and
    # would wait for a writer forever).
    expect_true(wait_until(proc, function() fifo_has_reader(fifo)))
    proc$kill()
  }
})

test_that("control: a time zone naming /proc/self/fd/7 makes R open the file on fd 7", {
  require_or_skip(have_fifo, "mkfifo is needed for the FIFO control")
  # fd 7 is the FIFO (opened read-write so that opening it does not wait).
  proc <- host_process(structure(Sys.time(), tzone = "/proc/self/fd/7"), "print(x)",
    shell = sprintf("exec 7<>%s; ", shQuote(fifo))
  )
  wait_ready(proc)
  fds_on_fifo <- function() {
    fds <- list.files(sprintf("/proc/%d/fd", proc$get_pid()), full.names = TRUE)
    sum(Sys.readlink(fds) == fifo)
  }
  # A second descriptor on the FIFO: glibc opened /proc/self/fd/7 (and
  # now waits to read from it).
  expect_true(wait_until(proc, function() fds_on_fifo() >= 2L))
})

test_that("control: a 133-byte compact sequence expands to gigabytes on the host", {
  x <- seq_len(1.5e9)
  expect_lt(length(serialize(x, NULL)), 200)
  # format() (and arithmetic, subassignment, ...) expand it; within 2 GB
  # of address space that fails.
  out <- host_output(host_process(x, "format(x)", mem_mb = 2000))
  expect_match(out, "cannot allocate vector of size 11.2 Gb", fixed = TRUE)
  out <- host_output(host_process(x, "x[1] <- 0L", mem_mb = 2000))
  expect_match(out, "cannot allocate vector of size 5.6 Gb", fixed = TRUE)
})

test_that("control: 271 bytes of data frame with compact row names for 2^31 - 1 rows", {
  x <- structure(list(a = 1:3), row.names = c(NA, -2147483647L), class = "data.frame")
  expect_identical(length(serialize(x, NULL, xdr = FALSE)), 271L)
  out <- host_output(host_process(x, "format(x)", mem_mb = 2000))
  expect_match(out, "cannot allocate vector of size 8.0 Gb", fixed = TRUE)
})

test_that("control: an ftable whose row.vars hold 2 x 5000 strings", {
  x <- structure(1:4,
    dim = c(2L, 2L),
    row.vars = list(a = as.character(1:5000), b = as.character(1:5000)),
    col.vars = list(c = c("x", "y")), class = "ftable"
  )
  expect_lt(length(serialize(x, NULL)), 1000)
  out <- host_output(host_process(x, "format(x)", mem_mb = 1500))
  expect_match(out, "cannot allocate vector", fixed = TRUE)
})

test_that("control: the host cannot unserialize a string holding NUL", {
  expect_error(unserialize(.stream(.nul_item())), "embedded nul")
})

test_that("control: a string flagged UTF-8 that is not UTF-8 breaks string functions", {
  x <- "caf\xe9"
  Encoding(x) <- "UTF-8"
  expect_error(nchar(x), "invalid multibyte string")
})

test_that("control: 60000 attributes overflow R's C stack when unserialized", {
  bytes <- .stream(.attrs_item(60000))
  expect_lt(length(bytes), 8 * 1024^2)
  out <- host_output(host_process(bytes, "unserialize(x)"))
  expect_match(out, "C stack", fixed = TRUE)
  expect_no_match(out, "DONE", fixed = TRUE)
})

test_that("control: summary() of 100,000 package versions runs for minutes", {
  x <- structure(rep(list(1:3), 1e5), class = c("package_version", "numeric_version"))
  proc <- host_process(x, "summary(x)")
  wait_ready(proc)
  # 10,000 versions take about a second and the time grows with the square
  # of the count: ten seconds are far from enough for 100,000.
  proc$wait(10000)
  expect_true(proc$is_alive())
})

test_that("control: print() of a difftime writes escape sequences in its units to the terminal", {
  x <- structure(1, units = "secs\033]52;c;ZXZpbA==\a", class = "difftime")
  out <- host_output(host_process(x, "print(x)"))
  # OSC 52: the terminal would put "evil" on the clipboard.
  expect_match(out, "\033]52;c;ZXZpbA==\a", fixed = TRUE)
})

test_that("control: a factor whose codes point past its levels cannot be printed", {
  x <- structure(c(1L, 5L), levels = c("a", "b"), class = "factor")
  expect_error(print(x), "malformed factor")
})

test_that("control: a time series with no observations cannot be printed", {
  expect_error(print(.empty_ts()), "one or more observations")
})

# The attacks, in each tier ------------------------------------------------

attacks <- list(
  list(
    what = "a time zone of 401 bytes",
    code = 'structure(Sys.time(), tzone = paste0(strrep("A", 400), "5"))',
    pattern = "invalid 'tzone' attribute: time zone 'A+\\.\\.\\.' is longer than 64 bytes"
  ),
  list(
    what = "a POSIXlt zone of 300 bytes",
    code = '{x <- as.POSIXlt(Sys.time()); x$zone <- rep(strrep("A", 300), length(x$zone)); x}',
    pattern = "invalid 'POSIXlt' value: its component 'zone': time zone 'A+\\.\\.\\.' is longer than 64 bytes"
  ),
  list(
    what = "a POSIXlt tzone of 300 bytes",
    code = 'structure(as.POSIXlt(Sys.time(), "UTC"), tzone = strrep("B", 300))',
    pattern = "invalid 'tzone' attribute: .* is longer than 64 bytes"
  ),
  list(
    what = "a time zone naming a FIFO",
    code = sprintf("structure(Sys.time(), tzone = %s)", deparse(fifo)),
    pattern = "names a file"
  ),
  list(
    what = "a time zone leading out of the zone database",
    code = sprintf("structure(Sys.time(), tzone = %s)", deparse(paste0("../../..", fifo))),
    pattern = "leads out of the time zone database"
  ),
  list(
    what = "a time zone naming /proc/self/fd/7",
    code = 'structure(Sys.time(), tzone = "/proc/self/fd/7")',
    pattern = "'/proc/self/fd/7' names a file"
  ),
  list(
    what = "a compact sequence of 1.5e9 integers",
    code = "seq_len(1.5e9)",
    pattern = "a compact integer sequence of 1.5e9 elements expands to 5.6 GiB in memory, above the 8 MiB limit"
  ),
  list(
    what = "compact row names for 2^31 - 1 rows",
    code = "structure(list(a = 1:3), row.names = c(NA, -2147483647L), class = 'data.frame')",
    pattern = "compact row.names attribute of 2147483647 rows expands to 8 GiB"
  ),
  list(
    what = "an ftable whose row.vars hold 2 x 5000 strings",
    code = paste(
      "structure(1:4, dim = c(2L, 2L), row.vars = list(a = as.character(1:5000),",
      "b = as.character(1:5000)), col.vars = list(c = c('x', 'y')), class = 'ftable')"
    ),
    pattern = "invalid 'ftable' value: its 'row.vars' make 25000000 combinations"
  ),
  list(
    what = "a NUL byte inside a string",
    code = '.splice(.nul_item()); "SECURER-SPLICE"',
    tool_code = '.splice(.nul_item()); echo("SECURER-SPLICE")',
    pattern = "a string holds a NUL byte"
  ),
  list(
    what = "a string flagged UTF-8 that is not UTF-8",
    code = '{x <- "caf\\xe9"; Encoding(x) <- "UTF-8"; x}',
    pattern = "a string in UTF-8 is not valid UTF-8"
  ),
  list(
    what = "60000 attributes",
    code = '.splice(.attrs_item(60000)); "SECURER-SPLICE"',
    tool_code = '.splice(.attrs_item(60000)); echo("SECURER-SPLICE")',
    pattern = "nested deeper than 512 levels"
  ),
  list(
    what = "100,000 package versions",
    code = 'structure(rep(list(1:3), 1e5), class = c("package_version", "numeric_version"))',
    pattern = "invalid 'package_version' value: it holds 100000 versions, more than 10000"
  ),
  list(
    what = "an escape sequence that print() writes to the terminal",
    code = 'structure(1, units = "secs\\033]52;c;ZXZpbA==\\a", class = "difftime")',
    pattern = "invalid 'difftime' value: it holds a string with control characters"
  ),
  list(
    what = "a factor whose codes point past its levels",
    code = 'structure(c(1L, 5L), levels = c("a", "b"), class = "factor")',
    pattern = "invalid 'factor' value: its codes are not NA or between 1 and its 2 levels"
  ),
  list(
    what = "a time series with no observations and frequency 1e300",
    code = ".empty_ts()",
    pattern = "invalid 'tsp' attribute: the time series has no observations"
  )
)

for (tier in names(tier_sessions)) {
  for (attack in attacks) {
    test_that(sprintf("%s is refused as a result (%s)", attack$what, tier), {
      expect_value_refused(tier_session(tier), attack$code, attack$pattern)
    })
    test_that(sprintf("%s is refused as a tool argument (%s)", attack$what, tier), {
      code <- if (is.null(attack$tool_code)) sprintf("echo({%s})", attack$code) else attack$tool_code
      expect_argument_refused(tier_session(tier), code, attack$pattern)
    })
  }
}

# The good cases: they cross and print as the host-built value ---------------

t0 <- as.numeric(Sys.time())
good_values <- list(
    dates = "as.Date('2024-01-02') + 0:2",
    posixct_utc = sprintf(".POSIXct(%s + 0:2, tz = 'UTC')", t0),
    posixct_ny = sprintf(".POSIXct(%s, tz = 'America/New_York')", t0),
    posixct_local = sprintf(".POSIXct(%s, tz = '')", t0),
    posixct_no_tz = sprintf("structure(%s, class = c('POSIXct', 'POSIXt'))", t0),
    posixlt_paris = sprintf("as.POSIXlt(.POSIXct(%s), 'Europe/Paris')", t0),
    factor = "factor(c('lo', 'hi', NA, 'lo'), levels = c('lo', 'hi'))",
    ordered = "factor(c('S', 'L'), levels = c('S', 'M', 'L'), ordered = TRUE)",
    df_compact = "data.frame(a = 1:3, b = c('x', 'y', NA), f = factor(c('u', 'v', 'u')))",
    df_character = "data.frame(a = 1:2, row.names = c('first', 'second'))",
    mtcars = "mtcars",
    iris = "head(iris)",
    table = "table(mtcars$cyl, mtcars$gear)",
    xtabs = "{x <- xtabs(~ cyl + gear, mtcars); attr(x, 'call') <- NULL; x}",
    ftable = "ftable(Titanic, row.vars = 1:3)",
    difftime = "as.difftime(c(1.5, 2), units = 'hours')",
    numeric_version = "numeric_version(c('1.2.3', '4.5'))",
    package_version = "package_version('1.10.0')",
    htest = "t.test(mtcars$mpg)",
    density = "{d <- density(mtcars$mpg); d$call <- NULL; d}",
    ts = "ts(1:24, start = c(2020, 1), frequency = 12)",
    summary = "summary(mtcars$mpg)",
    condition = "simpleError('boom')"
)

for (tier in names(tier_sessions)) {
  test_that(sprintf("ordinary classed values cross and print as on the host (%s)", tier), {
    session <- tier_session(tier)
    for (name in names(good_values)) {
      code <- good_values[[name]]
      got <- strip_output(session$execute(code))
      want <- eval(parse(text = code))
      expect_identical(got, want, label = name)
      expect_identical(capture.output(print(got)), capture.output(print(want)), label = name)
    }
  })
}

for (tier in names(tier_sessions)) {
  test_that(sprintf("tibbles cross and print as on the host (%s)", tier), {
    skip_if_not_installed("tibble")
    session <- tier_session(tier)
    code <- "tibble::tibble(a = 1:3, b = letters[1:3], l = list(1, 'x', NULL))"
    got <- strip_output(session$execute(code))
    want <- eval(parse(text = code))
    expect_identical(got, want)
    expect_identical(capture.output(print(got)), capture.output(print(want)))
  })
}

for (tier in names(tier_sessions)) {
  test_that(sprintf("glue strings cross and print as on the host (%s)", tier), {
    skip_if_not_installed("glue")
    session <- tier_session(tier)
    code <- "glue::glue('{1 + 1} apples')"
    got <- strip_output(session$execute(code))
    want <- eval(parse(text = code))
    expect_identical(got, want)
    expect_identical(capture.output(print(got)), capture.output(print(want)))
  })
}

test_that("density() and xtabs() keep a call, which cannot cross", {
  session <- tier_session("zygote")
  for (code in c("density(mtcars$mpg)", "xtabs(~ cyl, mtcars)")) {
    err <- expect_error(session$execute(code), class = "securer_value_error")
    expect_match(conditionMessage(err), "language object")
  }
})

test_that("data.table is not among the default classes, and the refusal names it", {
  session <- tier_session("zygote")
  err <- expect_error(
    session$execute("structure(list(a = 1:2), row.names = c(NA, -2L), class = c('data.table', 'data.frame'))"),
    class = "securer_value_error"
  )
  expect_match(conditionMessage(err), "class 'data.table'", fixed = TRUE)
})
