# SecureSessionPool: one host R thread driving several sessions. Most tests
# use `sandbox = FALSE` (fast, and independent of the sandbox); the last
# ones run a sandboxed pool, whose sessions are forked from a warm zygote.

# A pool closed when `.env` ends (a test, or the file).
local_pool <- function(size = 2, ..., sandbox = FALSE, .env = parent.frame()) {
  pool <- SecureSessionPool$new(size = size, sandbox = sandbox, ...)
  withr::defer(pool$close(), envir = .env)
  pool
}

pool_sessions <- function(pool) pool$sessions()

pool_pids <- function(pool) {
  vapply(pool_sessions(pool), function(s) s$pid(), integer(1))
}

# The pids of the sessions' R processes: a forked session's R runs under
# its supervisor (the session's pid); a cold one's R is the launcher.
pool_r_pids <- function(pool) {
  vapply(pool_pids(pool), function(pid) {
    kids <- ps::ps_children(ps::ps_handle(pid))
    if (length(kids)) ps::ps_pid(kids[[1]]) else pid
  }, integer(1))
}

# Code that sleeps `secs` seconds and returns when it ran, c(start, end),
# on the wall clock that every process shares.
span_code <- function(secs) {
  sprintf("t0 <- Sys.time(); Sys.sleep(%s); c(as.numeric(t0), as.numeric(Sys.time()))", secs)
}

# The largest number of the intervals `spans` (a list of c(start, end))
# that were running at one moment.
max_overlap <- function(spans) {
  starts <- vapply(spans, `[[`, numeric(1), 1L)
  ends <- vapply(spans, `[[`, numeric(1), 2L)
  max(vapply(starts, function(t) sum(starts <= t & ends > t), integer(1)))
}

# A pool that the read-only tests share (they leave it as they found it).
shared_pool <- lazy_session(function(.env) local_pool(2, .env = .env))

# Size and status --------------------------------------------------------------

test_that("status() is a list of counts, as in the original API", {
  st <- shared_pool()$status()
  expect_type(st, "list")
  expect_identical(c(st$total, st$busy, st$idle, st$dead), c(2L, 0L, 2L, 0L))
})

test_that("a new pool has `size` idle sessions, each its own process", {
  pool <- shared_pool()
  expect_identical(pool$size(), 2L)
  expect_identical(pool$available(), 2L)
  expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
  pids <- pool_pids(pool)
  expect_length(unique(pids), 2L)
  expect_true(all(vapply(pids, pid_running, logical(1))))
})

test_that("print() shows the counts and returns the pool invisibly", {
  pool <- shared_pool()
  expect_output(
    expect_invisible(print(pool)),
    "^<SecureSessionPool> 2 sessions: 0 busy, 2 idle, 0 dead$"
  )
})

test_that("size must be a whole number", {
  expect_error(SecureSessionPool$new(size = 1.5, sandbox = FALSE), class = "securer_input_error")
})

test_that("a busy session counts as busy, not available", {
  pool <- local_pool(2)
  p <- pool$execute_async("Sys.sleep(0.3); 1")
  expect_identical(pool$status(), list(total = 2L, busy = 1L, idle = 1L, dead = 0L))
  expect_identical(pool$available(), 1L)
  expect_output(print(pool), "1 busy, 1 idle, 0 dead")
  expect_true(wait_promise(p)$ok)
  expect_identical(pool$available(), 2L)
})

# execute() ------------------------------------------------------------------

test_that("execute() returns the value of the code", {
  expect_identical(strip_output(shared_pool()$execute("sqrt(16)")), 4)
  expect_identical(shared_pool()$execute("letters[1:3]"), c("a", "b", "c"))
})

test_that("without reset_between_uses a session keeps its global environment", {
  pool <- local_pool(1)
  pool$execute("x <- 41")
  expect_identical(pool$execute("x + 1"), 42)
})

test_that("execute() raises the child's error as a classed condition", {
  pool <- shared_pool()
  err <- expect_error(pool$execute("stop('boom')"), class = "securer_child_error")
  expect_match(conditionMessage(err), "boom")
  expect_identical(pool$status()[["idle"]], 2L)
})

# execute_many() ---------------------------------------------------------------

test_that("execute_many() returns the results in the order of the code", {
  # The first piece finishes last.
  res <- shared_pool()$execute_many(c("Sys.sleep(0.4); 'a'", "'b'", "'c'"))
  expect_identical(lapply(res, strip_output), list("a", "b", "c"))
})

test_that("execute_many() returns a failed piece as a condition and runs the rest", {
  pool <- shared_pool()
  res <- pool$execute_many(c("1", "stop('no good')", "3", "Sys.sleep(0.2); 4"))
  expect_length(res, 4L)
  expect_s3_class(res[[2]], "securer_child_error")
  expect_s3_class(res[[2]], "condition")
  expect_match(conditionMessage(res[[2]]), "no good")
  expect_identical(lapply(res[-2], strip_output), list(1, 3, 4))
  expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
})

test_that("execute_many() runs its pieces concurrently across the sessions", {
  pool <- shared_pool()
  res <- pool$execute_many(rep(span_code(0.5), 4))
  # Two sessions: two pieces at a time, never more.
  expect_identical(max_overlap(lapply(res, strip_output)), 2L)
  pids <- pool$execute_many(rep("Sys.sleep(0.2); Sys.getpid()", 4))
  expect_setequal(unlist(lapply(pids, strip_output)), pool_r_pids(pool))
})

test_that("execute_many() of no code is an empty list", {
  expect_identical(shared_pool()$execute_many(character()), list())
})

test_that("execute_many() needs a character vector without NA", {
  pool <- shared_pool()
  expect_error(pool$execute_many(1:2), class = "securer_input_error")
  expect_error(pool$execute_many(c("1", NA)), class = "securer_input_error")
})

test_that("execute_many() serves the tool calls of concurrent sessions", {
  calls <- new.env()
  calls$n <- 0L
  double_it <- securer_tool("double_it", "Double a number",
    fn = function(x) {
      calls$n <- calls$n + 1L
      x * 2
    },
    args = list(x = "numeric")
  )
  pool <- local_pool(2, tools = list(double_it))
  codes <- sprintf("a <- double_it(%d); Sys.sleep(0.2); b <- double_it(a); a + b", 1:4)
  res <- pool$execute_many(codes)
  expect_identical(lapply(res, strip_output), as.list(6 * (1:4)))
  expect_identical(calls$n, 8L)
})

test_that("a session that dies while its tool call is served fails only its piece", {
  # The tool kills the calling child, so the host cannot send it the result.
  kill_caller <- securer_tool("kill_caller", "Kill the calling process",
    fn = function(pid) {
      tools::pskill(pid, tools::SIGKILL)
      Sys.sleep(0.3)
      "too late"
    },
    args = list(pid = "numeric")
  )
  pool <- local_pool(2, tools = list(kill_caller))
  res <- pool$execute_many(c("kill_caller(Sys.getpid())", "Sys.sleep(0.5); 'fine'"))
  expect_s3_class(res[[1]], "securer_error")
  expect_identical(strip_output(res[[2]]), "fine")
  expect_identical(pool$status()[["busy"]], 0L)
  expect_identical(lapply(pool$execute_many(c("1", "2")), strip_output), list(1, 2))
})

test_that("a batch leaves its sessions as $execute() would", {
  pool <- local_pool(1)
  s <- pool_sessions(pool)[[1]]
  codes <- c("1 + 1", "stop('no good')", "print('p'); 3", "if (", "'two'")
  res <- pool$execute_many(codes)
  expect_identical(lapply(res[c(1, 3, 5)], strip_output), list(2, 3, "two"))
  expect_s3_class(res[[2]], "securer_child_error")
  # A syntax error is the host's, as from $execute(), and is not counted.
  expect_s3_class(res[[4]], "securer_syntax_error")
  expect_identical(
    conditionMessage(res[[4]]),
    conditionMessage(expect_error(s$execute("if ("), class = "securer_syntax_error"))
  )
  expect_match(format(s), "; 4 executions$")
  expect_identical(s$last_console(), "[1] \"two\"\n")
  expect_identical(s$get_state(), "idle")
  # The session is lent to the next batch again, and to no one meanwhile.
  expect_identical(lapply(pool$execute_many(c("5", "6")), strip_output), list(5, 6))
  expect_identical(s$execute("7"), 7)
  expect_match(format(s), "; 7 executions$")
})

test_that("a lent session whose child dies fails only its piece", {
  pool <- local_pool(2)
  codes <- c("tools::pskill(Sys.getpid(), tools::SIGKILL); Sys.sleep(5)", sprintf("%d", 1:20))
  res <- pool$execute_many(codes, timeout = 20)
  # Seen as the death it is, not as a timeout.
  expect_s3_class(res[[1]], "securer_child_error")
  expect_match(conditionMessage(res[[1]]), "died")
  expect_identical(lapply(res[-1], strip_output), as.list(as.numeric(1:20)))
  expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
  expect_identical(lapply(pool$execute_many(c("1", "2")), strip_output), list(1, 2))
})

test_that("$lend() lends an idle session once, and give_back() returns it", {
  pool <- local_pool(1)
  s <- pool_sessions(pool)[[1]]
  lease <- s$lend()
  expect_named(lease, c("handle", "template", "console_cap", "give_back"))
  expect_identical(s$get_state(), "busy")
  expect_null(s$lend())
  expect_error(s$execute("1"), class = "securer_session_error")
  lease$give_back(0L)
  # A second give_back() does nothing.
  lease$give_back(3L)
  expect_identical(s$get_state(), "idle")
  expect_match(format(s), "; 0 executions$")
  expect_identical(s$execute("1"), 1)
})

test_that("a session with a hook, an audit log or an execution limit is not lent", {
  path <- withr::local_tempfile(fileext = ".jsonl")
  pool <- local_pool(2, audit_log = path)
  expect_null(pool_sessions(pool)[[1]]$lend())
  res <- pool$execute_many(sprintf("%d * 2", 1:6))
  expect_identical(lapply(res, strip_output), as.list((1:6) * 2))
  # Each piece went through the session's own steps, which log it.
  expect_identical(sum(audit_events(path) == "execute_start"), 6L)
  s <- new_session(pre_execute_hook = function(code) TRUE)
  expect_null(s$lend())
  s <- new_session(max_executions = 5)
  expect_null(s$lend())
})

test_that("a piece a lent session cannot be sent fails alone, as from $execute()", {
  pool <- local_pool(1)
  s <- pool_sessions(pool)[[1]]
  long <- strrep("1", 100001)
  res <- pool$execute_many(c("1", long, "3"))
  expect_identical(lapply(res[-2], strip_output), list(1, 3))
  expect_s3_class(res[[2]], "securer_limit_error")
  expect_identical(
    conditionMessage(res[[2]]),
    conditionMessage(expect_error(s$execute(long), class = "securer_limit_error"))
  )
})

test_that("execute_many() waits for asynchronous executions that hold every session", {
  pool <- local_pool(1)
  p <- pool$execute_async("Sys.sleep(0.3); 'async'")
  # Without running the event loop the batch would wait forever.
  setTimeLimit(elapsed = 15)
  withr::defer(setTimeLimit(elapsed = Inf))
  res <- pool$execute_many(c("2", "3"))
  setTimeLimit(elapsed = Inf)
  expect_identical(lapply(res, strip_output), list(2, 3))
  got <- wait_promise(p)
  expect_true(got$ok)
  expect_identical(strip_output(got$value), "async")
})

test_that("Ctrl-C during execute_many() stops the batch and leaves the pool usable", {
  skip_on_os("windows")
  skip_if_not_installed("callr")
  proc <- r_bg_lines(function() {
    library(securer)
    pool <- SecureSessionPool$new(size = 2, sandbox = FALSE)
    cat("READY\n")
    flush(stdout())
    res <- tryCatch(
      pool$execute_many(rep("Sys.sleep(30); 'not interrupted'", 2)),
      securer_interrupt = function(e) "CAUGHT securer_interrupt",
      interrupt = function(e) "CAUGHT plain interrupt"
    )
    cat(unlist(res), "\n", sep = "")
    cat("NEXT", unlist(pool$execute_many(c("1 + 1", "2 + 2"))), "\n")
    cat("STATUS", unlist(pool$status()), "\n")
    pool$close()
    flush(stdout())
  })
  withr::defer(proc$kill())
  out <- read_until(proc, "^READY")
  expect_true("READY" %in% out, label = paste(out, collapse = "\n"))
  Sys.sleep(0.5)
  proc$interrupt()
  proc$wait(15000)
  out <- c(out, proc$read_all_output_lines())
  expect_true("CAUGHT securer_interrupt" %in% out, label = paste(out, collapse = "\n"))
  expect_true(any(grepl("^NEXT 2 4", out)), label = paste(out, collapse = "\n"))
  expect_true(any(grepl("^STATUS 2 0 2 0", out)), label = paste(out, collapse = "\n"))
})

# execute_async() ------------------------------------------------------------

test_that("execute_async() returns a promise resolved with the value", {
  pool <- shared_pool()
  p <- pool$execute_async("Sys.sleep(0.1); 6 * 7")
  expect_true(promises::is.promise(p))
  got <- wait_promise(p)
  expect_true(got$ok)
  expect_identical(strip_output(got$value), 42)
})

test_that("execute_async() rejects with a classed error for failing code", {
  got <- wait_promise(shared_pool()$execute_async("stop('async trouble')"))
  expect_false(got$ok)
  expect_s3_class(got$value, "securer_child_error")
  expect_match(conditionMessage(got$value), "async trouble")
})

test_that("several asynchronous executions run at once", {
  pool <- local_pool(2)
  ps <- lapply(1:4, function(i) pool$execute_async(span_code(0.5)))
  got <- wait_promise(promises::promise_all(.list = ps))
  expect_true(got$ok)
  # Queued work starts as sessions free up: two at a time, never more.
  expect_identical(max_overlap(lapply(got$value, strip_output)), 2L)
})

# with_session() and with_session_async() ------------------------------------

test_that("with_session() lends a session for the call and takes it back", {
  pool <- local_pool(2)
  res <- pool$with_session(function(s) {
    list(available = pool$available(), value = withVisible(s$execute("x <- 1")))
  })
  expect_identical(res$available, 1L)
  expect_false(res$value$visible)
  expect_identical(pool$available(), 2L)
  expect_error(pool$with_session(function(s) stop("inside")), "inside")
  expect_identical(pool$available(), 2L)
  expect_error(pool$with_session("no"), class = "securer_input_error")
})

test_that("with_session_async() resolves with what fn's promise gives", {
  pool <- local_pool(1)
  p <- pool$with_session_async(function(s) {
    s$call("cat('hi\\n'); invisible(7)")
    s$read_async()
  })
  got <- wait_promise(p)
  expect_true(got$ok)
  expect_identical(strip_output(got$value$value), 7)
  expect_false(got$value$visible)
  expect_identical(got$value$output, "hi")
  expect_identical(pool$available(), 1L)
})

test_that("a session lent asynchronously is not handed out again until fn's promise settles", {
  pool <- local_pool(1)
  events <- character()
  # fn does not make the session busy: the pool must still hold it.
  first <- pool$with_session_async(function(s) {
    promises::promise(function(resolve, reject) {
      later::later(function() {
        events <<- c(events, "first done")
        resolve("first")
      }, 0.3)
    })
  })
  second <- pool$with_session_async(function(s) {
    events <<- c(events, "second starts")
    "second"
  })
  got <- wait_promise(promises::promise_all(first, second))
  expect_identical(got$value, list("first", "second"))
  expect_identical(events, c("first done", "second starts"))
})

test_that("an error in with_session_async()'s fn rejects and frees the session", {
  pool <- local_pool(1)
  got <- wait_promise(pool$with_session_async(function(s) stop("fn failed")))
  expect_false(got$ok)
  expect_match(conditionMessage(got$value), "fn failed")
  expect_identical(pool$available(), 1L)
  expect_identical(strip_output(wait_promise(pool$execute_async("2"))$value), 2)
})

# Fresh children, dead and timed-out sessions -------------------------------------

test_that("with reset_between_uses no state leaks from one use to the next", {
  pool <- local_pool(1, reset_between_uses = TRUE)
  pid <- pool$execute("x <- 1; Sys.getpid()")
  expect_false(pool$execute("exists('x')"))
  expect_false(identical(pool_pids(pool), pid))
  expect_true(wait_pid_gone(pid))
  res <- pool$execute_many(c("y <- 1", "exists('y')"))
  expect_false(strip_output(res[[2]]))
})

test_that("a killed session is replaced without the caller noticing", {
  pool <- local_pool(2)
  pid <- pool_pids(pool)[[1]]
  tools::pskill(pid, tools::SIGKILL)
  expect_true(wait_pid_gone(pid))
  expect_identical(pool$status()[["dead"]], 1L)
  expect_identical(pool$execute("1 + 1"), 2)
  res <- pool$execute_many(c("Sys.sleep(0.2); 'a'", "Sys.sleep(0.2); 'b'"))
  expect_identical(lapply(res, strip_output), list("a", "b"))
  expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
  expect_false(pid %in% pool_pids(pool))
})

test_that("a timed-out execution is stopped and its session replaced", {
  pool <- local_pool(1)
  pid <- pool_pids(pool)
  expect_error(pool$execute("Sys.sleep(30)", timeout = 0.5), class = "securer_timeout")
  expect_true(wait_pid_gone(pid))
  expect_identical(pool$status(), list(total = 1L, busy = 0L, idle = 1L, dead = 0L))
  expect_identical(pool$execute("'next'"), "next")
})

test_that("a timed-out piece of execute_many() fails alone", {
  pool <- shared_pool()
  res <- pool$execute_many(c("Sys.sleep(30)", "'quick'"), timeout = 0.5)
  expect_s3_class(res[[1]], "securer_timeout")
  expect_identical(strip_output(res[[2]]), "quick")
  expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
})

test_that("a piece past its deadline times out while the other session keeps answering", {
  pool <- local_pool(2)
  before <- pool_r_pids(pool)
  # The sleeper's child never speaks, so only its deadline ends it; the
  # other session answers all the while (each piece sleeps, so that over a
  # second's worth is left when the sleeper's second is up).
  codes <- c("Sys.sleep(30)", rep("Sys.sleep(0.002); Sys.getpid()", 1500))
  res <- pool$execute_many(codes, timeout = 1)
  expect_s3_class(res[[1]], "securer_timeout")
  pids <- vapply(res[-1], strip_output, integer(1))
  # Pieces ran in the child that replaced the sleeper's: its timeout was
  # served while the batch went on, not once the other session ran dry.
  expect_true(any(!pids %in% before))
  expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
})

# Attacks on a batch: its lent sessions get their next piece as soon as
# Rust has read a plain result, before R has: nothing a child sends may
# answer another piece. In every tier.

# A 2-session pool of `tier`, closed when `.env` ends.
tier_pool <- function(tier, .env = parent.frame()) {
  if (tier %in% c("zygote", "cold", "fallback")) {
    skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the Linux sandbox tiers need Linux")
  }
  if (tier %in% c("zygote", "cold")) {
    skip_if_no_sandbox()
    withr::local_options(securer.zygote = tier == "zygote")
    pool <- local_pool(2, sandbox = TRUE, sandbox_strict = TRUE, .env = .env)
    forked <- vapply(pool_sessions(pool), zygote_session, logical(1))
    require_or_skip(all(forked == (tier == "zygote")), paste("the sessions are not", tier))
    return(pool)
  }
  if (tier == "fallback") {
    local_fresh_warnings(.env = .env)
    pool <- suppressWarnings(
      local_pool(2, sandbox = build_sandbox_fallback(), .env = .env),
      classes = "securer_sandbox_warning"
    )
    info <- pool_sessions(pool)[[1]]$sandbox_info()
    require_or_skip(
      all(info$active[info$layer %in% c("landlock", "seccomp")]),
      "the fallback tier needs Landlock and seccomp here"
    )
    return(pool)
  }
  local_pool(2, .env = .env)
}

# Code that sends forged results of its own (through the runtime's send(),
# its plain writer and the glue's send function, found as sandboxed code
# can find them) before its real one.
forge_results <- paste(
  find_runtime,
  "rt$send('result', list(value = 'forged by send()', visible = TRUE))",
  "rt$send_plain('result', list(value = 'forged plain', visible = TRUE, plots_omitted = 0L))",
  ".Call('wrap__rs_child_send', 'result', serialize(list(value = 'forged by .Call', visible = TRUE,",
  "  plots_omitted = 0L), NULL, xdr = FALSE), PACKAGE = 'securer')",
  "'real'",
  sep = "\n"
)

for (tier in c("zygote", "cold", "fallback", "none")) {
  test_that(paste0("a forged result never answers another piece of a batch (", tier, ")"), {
    pool <- tier_pool(tier)
    codes <- c(rbind(forge_results, sprintf("%d * 10", 1:20)))
    res <- lapply(pool$execute_many(codes), strip_output)
    # A piece may answer itself as it likes (the first reply counts) ...
    forged <- unlist(res[c(TRUE, FALSE)])
    expect_true(all(forged %in% c("forged by send()", "real")), label = paste(forged, collapse = ", "))
    # ... but nothing it sent answers the pieces after it, in either
    # session.
    expect_identical(res[c(FALSE, TRUE)], as.list((1:20) * 10))
    expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
    expect_identical(lapply(pool$execute_many(c("1", "2")), strip_output), list(1, 2))
  })

  test_that(paste0("a reply that only looks plain is not taken as a batch's answer (", tier, ")"), {
    pool <- tier_pool(tier)
    # Replies the host must not take at once: images said to be left out,
    # a value said to be refused, a name that is "refused" only when
    # partially matched (taken, as the host matches names exactly).
    reply <- function(extra) {
      paste(
        find_runtime,
        sprintf("rt$send_plain('result', c(list(value = 'v', visible = TRUE), %s))", extra),
        "invisible()",
        sep = "\n"
      )
    }
    codes <- c(
      reply("list(plots_omitted = 2L)"),
      reply("list(plots_omitted = 0L, refused = 'forged refusal')"),
      reply("list(plots_omitted = 0L, refusedX = 'x')"),
      "'after'"
    )
    res <- pool$execute_many(codes)
    expect_identical(strip_output(res[[1]]), "v")
    expect_s3_class(res[[2]], "securer_value_error")
    expect_match(conditionMessage(res[[2]]), "forged refusal")
    expect_identical(strip_output(res[[3]]), "v")
    expect_identical(strip_output(res[[4]]), "after")
    expect_identical(pool$status(), list(total = 2L, busy = 0L, idle = 2L, dead = 0L))
  })
}

# Waiting for a session ------------------------------------------------------------

test_that("execute() fails with securer_pool_timeout when no session frees up in time", {
  pool <- local_pool(1)
  # The asynchronous run holds the only session until the test lets it go.
  marker <- withr::local_tempfile()
  p <- pool$execute_async(sprintf("while (!file.exists('%s')) Sys.sleep(0.01); 1", marker))
  expect_error(pool$execute("1", acquire_timeout = 0.2), class = "securer_pool_timeout")
  file.create(marker)
  expect_true(wait_promise(p)$ok)
  expect_identical(pool$execute("2"), 2)
})

test_that("execute() waits for an asynchronous execution to release a session", {
  pool <- local_pool(1)
  p <- pool$execute_async("Sys.sleep(0.3); 'first'")
  expect_identical(pool$execute("'second'", acquire_timeout = 10), "second")
  got <- wait_promise(p)
  expect_identical(strip_output(got$value), "first")
})

# close() ------------------------------------------------------------------------------

test_that("close() rejects pending work and stops the children for good", {
  pool <- local_pool(1)
  before <- securer_children()
  pids <- pool_pids(pool)
  running <- pool$execute_async("Sys.sleep(30)")
  queued <- pool$execute_async("'never run'")
  later::run_now(0.1)
  pool$close()
  got <- wait_promise(queued, timeout = 5)
  expect_false(got$ok)
  expect_s3_class(got$value, "securer_session_error")
  got <- wait_promise(running, timeout = 5)
  expect_false(got$ok)
  expect_s3_class(got$value, "securer_error")
  expect_true(wait_pid_gone(pids))
  # No child was started again for the interrupted run.
  expect_identical(setdiff(securer_children(), before), integer())
})

test_that("a closed pool has no sessions available", {
  pool <- local_pool(2)
  pool$close()
  expect_identical(pool$available(), 0L)
  expect_identical(pool$size(), 0L)
})

test_that("acquire_timeout must be a number, at once, even when the pool is busy", {
  pool <- local_pool(1)
  marker <- withr::local_tempfile()
  p <- pool$execute_async(sprintf("while (!file.exists('%s')) Sys.sleep(0.01); 1", marker))
  for (bad in list("x", NA, NULL, -1)) {
    expect_error(pool$execute("1", acquire_timeout = bad), class = "securer_input_error")
  }
  file.create(marker)
  expect_true(wait_promise(p)$ok)
})

test_that("a closed pool refuses work and says it is closed", {
  pool <- local_pool(1)
  pool$close()
  expect_error(pool$execute("1"), class = "securer_session_error")
  expect_error(pool$execute_many("1"), class = "securer_session_error")
  expect_error(pool$execute_async("1"), class = "securer_session_error")
  expect_output(print(pool), "\\(closed\\)$")
  expect_identical(pool$status()[["dead"]], 1L)
})

# A sandboxed pool -----------------------------------------------------------------

test_that("a sandboxed pool runs its sessions concurrently, each in its own namespaces", {
  skip_if_no_sandbox()
  pool <- local_pool(2, sandbox = TRUE, sandbox_strict = TRUE)
  sessions <- pool_sessions(pool)
  infos <- lapply(sessions, function(s) s$sandbox_info())
  expect_true(all(vapply(infos, function(i) all(i$active), logical(1))))
  # Forked from the warm zygote wherever the policy allows one.
  if (securer:::zygote_wanted(list(sandbox = build_sandbox_config()))) {
    expect_true(all(vapply(sessions, zygote_session, logical(1))))
  }
  res <- pool$execute_many(rep(span_code(0.5), 4))
  expect_identical(max_overlap(lapply(res, strip_output)), 2L)
  # Each session has its own pid namespace, where it has the same small pid.
  res <- pool$execute_many(rep("Sys.getpid()", 4))
  pids <- unique(unlist(lapply(res, strip_output)))
  expect_length(pids, 1L)
  expect_lte(pids, 2L)
})

test_that("a sandboxed pool with reset_between_uses gives each use a fresh /tmp", {
  skip_if_no_sandbox()
  pool <- local_pool(1, sandbox = TRUE, sandbox_strict = TRUE, reset_between_uses = TRUE)
  expect_true(pool$execute("x <- 1; writeLines('left behind', '/tmp/marker'); file.exists('/tmp/marker')"))
  expect_false(pool$execute("file.exists('/tmp/marker')"))
  expect_false(pool$execute("exists('x')"))
})
