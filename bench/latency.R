# Latency of securer's core operations, with the issue's targets beside
# them, the callr-based approach securer replaces, and two floors: a bare
# round trip between two R processes, and between two C processes.
#   Rscript bench/latency.R [n]
# Medians over n repetitions (default 200; starts over n / 2, timeouts 3).
# Figures on a 2-core machine vary 2-3x between machines of one kind and
# with load: compare within one run. Run it quiet and with a core busy
# (`yes > /dev/null &`).
library(securer)
`%||%` <- function(x, y) if (is.null(x)) y else x

args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args)) as.integer(args[[1]]) else 200L

ms <- function(t0) (as.numeric(Sys.time()) - t0) * 1000
time_ms <- function(expr, times, between = NULL) {
  e <- substitute(expr)
  b <- substitute(between)
  pf <- parent.frame()
  vapply(seq_len(times), function(i) {
    if (!is.null(b)) eval(b, pf)
    t0 <- as.numeric(Sys.time())
    eval(e, pf)
    ms(t0)
  }, numeric(1))
}

tools <- list(securer_tool("echo", "Return its argument",
  fn = function(x) x, args = list(x = "numeric")
))

# Session start: until the session can execute (new() waits for that);
# closed between starts, outside the timing.
start_times <- function(sandbox, times) {
  s <- NULL
  time_ms(s <- SecureSession$new(sandbox = sandbox), times, between = {
    if (!is.null(s)) s$close()
    # A moment between starts, as between an agent's conversations.
    Sys.sleep(0.005)
  })
}

measure <- function(sandbox) {
  SecureSession$new(sandbox = sandbox)$close()
  start <- start_times(sandbox, max(20L, n %/% 2L))
  s <- SecureSession$new(tools = tools, sandbox = sandbox)
  on.exit(s$close())
  invisible(time_ms(s$execute("1 + 1"), 50L))
  # Executions 51 to 50 + n of a new session: a session forked from the
  # zygote still copies the zygote's heap pages as R allocates into them
  # (~15 page faults an execution, for its first ~600); then none. The
  # round trip proper is measured after 1,000.
  exec_early <- time_ms(s$execute("1 + 1"), n)
  for (i in seq_len(1000L)) s$execute("1 + 1")
  exec <- time_ms(s$execute("1 + 1"), n)
  # Tool calls: a batch inside one execution, per call, less the same loop
  # without the call.
  s$execute("bench_tool <- function(k) for (i in seq_len(k)) echo(1)")
  s$execute("bench_base <- function(k) for (i in seq_len(k)) identity(1)")
  k <- 2000L
  tool <- time_ms(s$execute(sprintf("bench_tool(%d)", k)), 10L) / k
  base <- time_ms(s$execute(sprintf("bench_base(%d)", k)), 10L) / k
  one_shot <- time_ms(execute_r("1 + 1", sandbox = sandbox), max(20L, n %/% 4L),
    between = Sys.sleep(0.005)
  )
  # A new session's first execution (pages R copies from the zygote).
  first <- vapply(seq_len(max(20L, n %/% 4L)), function(i) {
    Sys.sleep(0.005)
    fresh <- SecureSession$new(sandbox = sandbox)
    on.exit(fresh$close())
    time_ms(fresh$execute("1 + 1"), 1L)
  }, numeric(1))
  list(
    start = start, exec = exec, exec_early = exec_early,
    tool = stats::median(tool) - stats::median(base),
    one_shot = one_shot, first = first
  )
}

# How long `timeout = 1` takes to come back, on a ready session.
timeout_secs <- function(sandbox, zygote) {
  old <- options(securer.zygote = zygote)
  on.exit(options(old))
  s <- suppressWarnings(SecureSession$new(sandbox = sandbox))
  on.exit(s$close(), add = TRUE)
  vapply(1:3, function(i) {
    s$execute("1")
    t0 <- as.numeric(Sys.time())
    tryCatch(s$execute("Sys.sleep(30)", timeout = 1), securer_timeout = function(e) NULL)
    ms(t0) / 1000
  }, numeric(1))
}

sandbox_ok <- tryCatch(
  {
    SecureSession$new(sandbox = TRUE, sandbox_strict = TRUE)$close()
    TRUE
  },
  error = function(e) {
    message("sandbox = TRUE unavailable here: ", conditionMessage(e))
    FALSE
  }
)
none <- measure(FALSE)
boxed <- if (sandbox_ok) measure(TRUE)
timeouts <- list(
  none = timeout_secs(FALSE, TRUE),
  "forked (zygote)" = if (sandbox_ok) timeout_secs(TRUE, TRUE),
  cold = if (sandbox_ok) timeout_secs(TRUE, FALSE),
  fallback = timeout_secs(build_sandbox_fallback(), TRUE)
)

# The approach securer replaces: a callr::r_session per agent, code sent
# with $run() (a tool call there is one more such round trip).
callr_row <- if (requireNamespace("callr", quietly = TRUE)) {
  start <- time_ms({
    rs <- callr::r_session$new()
    rs$close()
  }, 5L)
  rs <- callr::r_session$new()
  invisible(rs$run(function() 1 + 1))
  rt <- time_ms(rs$run(function() 1 + 1), 50L)
  rs$close()
  c(start = stats::median(start), exec = stats::median(rt))
}

# The floor of a design with R at both ends: a forked R process reads
# code, parses and evaluates it and sends the serialized value back, over
# parallel's pipes; no ids, value checks, transcript, output capture,
# tools or sandbox. Both processes sleep while they wait (securer's host
# polls for a moment first: with idle cores it can beat this).
bare_rt <- if (.Platform$OS.type == "unix") {
  p <- parallel:::mcfork()
  if (inherits(p, "masterProcess")) {
    con <- file("stdin", "rb")
    repeat {
      len <- readBin(con, "integer", 1L)
      if (!length(len) || len == 0L) break
      code <- rawToChar(readBin(con, "raw", len))
      v <- withVisible(eval(str2expression(code)[[1L]], globalenv()))
      parallel:::sendMaster(serialize(v, NULL, xdr = FALSE))
    }
    parallel:::mcexit(0L)
  }
  req <- c(writeBin(5L, raw()), charToRaw("1 + 1"))
  bare <- function() {
    parallel:::sendChildStdin(p, req)
    unserialize(parallel:::readChild(p))
  }
  invisible(time_ms(bare(), 500L))
  # One at a time is too short for the clock: per 100.
  rt <- time_ms(for (i in 1:100) bare(), max(20L, n %/% 4L)) / 100
  parallel:::sendChildStdin(p, writeBin(0L, raw()))
  suppressWarnings(parallel::mccollect(p, wait = TRUE))
  rt
}

# The machine's floor: two C processes passing 64 bytes back and forth
# (bench/pingpong.c), built with R's C compiler when there is one.
pingpong <- local({
  script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  src <- file.path(dirname(script[1]), "pingpong.c")
  exe <- tempfile("pingpong")
  cc <- suppressWarnings(system2(file.path(R.home("bin"), "R"), c("CMD", "config", "CC"),
    stdout = TRUE, stderr = FALSE
  ))
  built <- length(script) && file.exists(src) && length(cc) &&
    system(paste(cc[1], "-O2 -o", shQuote(exe), shQuote(src)), ignore.stdout = TRUE, ignore.stderr = TRUE) == 0
  if (built) {
    us <- vapply(1:5, function(i) as.numeric(system2(exe, "20000", stdout = TRUE)), numeric(1))
    unlink(exe)
    us / 1000
  }
})

med <- function(x) if (is.null(x)) NA_real_ else stats::median(x)
p99 <- function(x) if (is.null(x)) NA_real_ else stats::quantile(x, 0.99, names = FALSE)
fmt <- function(x, d = 2) ifelse(is.na(x), "-", formatC(x, format = "f", digits = d))
rows <- rbind(
  c("warm session start, sandboxed (ms)", fmt(med(boxed$start)), "<= 4"),
  c("  p99 (ms)", fmt(p99(boxed$start)), "<= 15"),
  c("session start, sandbox = FALSE (ms)", fmt(med(none$start)), "<= 10"),
  c("  p99 (ms)", fmt(p99(none$start)), ""),
  c("execute_r('1 + 1') one-shot, sandboxed (ms)", fmt(med(boxed$one_shot)), "<= 6"),
  c("execute_r('1 + 1') one-shot, sandbox = FALSE (ms)", fmt(med(none$one_shot)), "<= 6"),
  c("first execute('1 + 1') of a session, sandboxed (ms)", fmt(med(boxed$first)), ""),
  c("first execute('1 + 1') of a session, sandbox = FALSE (ms)", fmt(med(none$first)), ""),
  c("execute('1 + 1') round trip, sandboxed (ms)", fmt(med(boxed$exec), 3), "<= 0.12"),
  c("execute('1 + 1') round trip, sandbox = FALSE (ms)", fmt(med(none$exec), 3), "<= 0.12"),
  c(sprintf("  in a new session's executions 51-%d, sandboxed (ms)", 50L + n), fmt(med(boxed$exec_early), 3), "<= 0.12"),
  c(sprintf("  in a new session's executions 51-%d, sandbox = FALSE (ms)", 50L + n), fmt(med(none$exec_early), 3), "<= 0.12"),
  c("tool call round trip, sandboxed (ms)", fmt(boxed$tool %||% NA_real_, 3), "<= 0.05"),
  c("tool call round trip, sandbox = FALSE (ms)", fmt(none$tool, 3), "<= 0.05"),
  do.call(rbind, lapply(names(timeouts), function(m) {
    c(sprintf("timeout = 1 returns after, %s (s)", m), fmt(med(timeouts[[m]]), 3), "<= 1.05")
  })),
  c("floor: bare R-to-R round trip, no safety (parallel::mcfork) (ms)", fmt(med(bare_rt), 3), ""),
  c("floor: round trip between two C processes (bench/pingpong.c) (ms)", fmt(med(pingpong), 3), ""),
  c("callr::r_session start (ms)", fmt(callr_row[["start"]]), ""),
  c("callr::r_session $run() round trip (ms)", fmt(callr_row[["exec"]], 3), "")
)
colnames(rows) <- c("measure", "securer", "target")
cat(sprintf(
  "securer latency, medians (n = %d), R %s, %s, %d cores, load %s\n\n",
  n, getRversion(), Sys.info()[["sysname"]], parallel::detectCores(),
  paste(utils::head(scan("/proc/loadavg", what = "", quiet = TRUE), 3), collapse = " ")
))
old <- options(width = 200)
print(noquote(rows), right = FALSE)
options(old)
