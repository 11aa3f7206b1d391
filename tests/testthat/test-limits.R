# default_limits() -------------------------------------------------------

test_that("default_limits() has the documented values", {
  expect_identical(
    default_limits(),
    list(
      cpu = 60,
      memory = 2 * 1024^3,
      fsize = 100 * 1024^2,
      nproc = 256,
      nofile = 256
    )
  )
})

test_that("default_limits() passes validation", {
  expect_identical(validate_limits(default_limits()), default_limits())
})

# validate_limits() ------------------------------------------------------

test_that("validate_limits() accepts NULL and returns it invisibly", {
  expect_invisible(validate_limits(NULL))
  expect_null(validate_limits(NULL))
})

test_that("validate_limits() returns a valid list invisibly", {
  limits <- list(cpu = 10, memory = 512 * 1024^2, stack = 8 * 1024^2)
  expect_invisible(validate_limits(limits))
  expect_identical(validate_limits(limits), limits)
})

test_that("validate_limits() converts a named numeric vector to a list", {
  expect_identical(
    validate_limits(c(cpu = 5, nproc = 10)),
    list(cpu = 5, nproc = 10)
  )
  expect_identical(validate_limits(c(nofile = 200L)), list(nofile = 200L))
})

test_that("validate_limits() accepts an empty list", {
  expect_identical(validate_limits(list()), list())
})

test_that("validate_limits() accepts Inf as 'no limit'", {
  expect_identical(
    validate_limits(list(cpu = Inf, memory = Inf)),
    list(cpu = Inf, memory = Inf)
  )
})

test_that("validate_limits() refuses an unknown name and lists the valid ones", {
  expect_input_error(
    validate_limits(list(cpu = 1, ram = 1e9)),
    c("ram", "cpu", "memory", "fsize", "nproc", "nofile", "stack")
  )
})

test_that("validate_limits() refuses a negative value", {
  expect_input_error(validate_limits(list(cpu = -1)), c("cpu", "-1"))
})

test_that("validate_limits() refuses zero", {
  expect_input_error(validate_limits(list(memory = 0)), c("memory", "positive"))
})

test_that("validate_limits() refuses NA", {
  expect_input_error(validate_limits(list(nproc = NA_real_)), "nproc")
  expect_input_error(validate_limits(list(nproc = NA)), "nproc")
})

test_that("validate_limits() refuses non-numeric values", {
  expect_input_error(validate_limits(list(cpu = "60")), c("cpu", "string"))
  expect_input_error(validate_limits(list(cpu = TRUE)), "cpu")
  expect_input_error(validate_limits(list(cpu = NULL)), "cpu")
})

test_that("validate_limits() refuses more than one number per limit", {
  expect_input_error(validate_limits(list(cpu = c(1, 2))), "cpu")
})

test_that("validate_limits() refuses unnamed entries", {
  expect_input_error(validate_limits(list(60)), c("named", "position 1"))
  expect_input_error(
    validate_limits(list(cpu = 60, 10)),
    c("named", "position 2", "nofile")
  )
  expect_input_error(validate_limits(c(1, 2)), "named")
})

test_that("validate_limits() refuses duplicated names", {
  expect_input_error(validate_limits(list(cpu = 1, cpu = 2)), "cpu")
})

test_that("validate_limits() refuses something that is not a list", {
  expect_input_error(validate_limits("cpu"), "named list")
  expect_input_error(validate_limits(data.frame(cpu = 1)), "named list")
})

test_that("validate_limits() refuses finite values too large for the launcher", {
  expect_input_error(validate_limits(list(memory = 1e15)), c("memory", "Inf"))
  expect_silent(validate_limits(list(memory = 1e15 - 1)))
})

# resolve_limits() -------------------------------------------------------

test_that("resolve_limits(NULL) gives the defaults", {
  expect_identical(resolve_limits(NULL), default_limits())
})

test_that("resolve_limits(list()) turns every limit off", {
  expect_identical(resolve_limits(list()), list())
})

test_that("resolve_limits() merges a partial list over the defaults", {
  expect_identical(
    resolve_limits(list(memory = 1024^3, stack = 8 * 1024^2)),
    list(
      cpu = 60,
      memory = 1024^3,
      fsize = 100 * 1024^2,
      nproc = 256,
      nofile = 256,
      stack = 8 * 1024^2
    )
  )
})

test_that("resolve_limits() removes the entries set to Inf", {
  out <- resolve_limits(list(cpu = Inf, nproc = 32))
  expect_named(out, c("memory", "fsize", "nproc", "nofile"))
  expect_identical(out$nproc, 32)
})

test_that("resolve_limits() keeps a stable order whatever the input order", {
  out <- resolve_limits(list(stack = 1024^2, cpu = 1))
  expect_named(out, c("cpu", "memory", "fsize", "nproc", "nofile", "stack"))
})

test_that("resolve_limits() validates first", {
  expect_input_error(resolve_limits(list(cpu = 0)), "cpu")
})

# limits_spec() ----------------------------------------------------------

test_that("limits_spec() of the defaults gives the launcher JSON", {
  expect_identical(
    to_json(limits_spec(resolve_limits(NULL))),
    paste0(
      '{"cpu":60,"memory":2147483648,"fsize":104857600,',
      '"nproc":256,"nofile":256,"stack":null}'
    )
  )
})

test_that("limits_spec() writes null for every limit when all are off", {
  expect_identical(
    to_json(limits_spec(list())),
    '{"cpu":null,"memory":null,"fsize":null,"nproc":null,"nofile":null,"stack":null}'
  )
})

test_that("limits_spec() prints large values as integers", {
  spec <- limits_spec(list(memory = 64 * 1024^3, fsize = 1e15 - 1, stack = 8 * 1024^2))
  expect_identical(
    to_json(spec),
    paste0(
      '{"cpu":null,"memory":68719476736,"fsize":999999999999999,',
      '"nproc":null,"nofile":null,"stack":8388608}'
    )
  )
})

test_that("limits_spec() rounds up to whole numbers, cpu to at least 1 s", {
  spec <- limits_spec(list(cpu = 0.2, memory = 2^30 + 0.5, nproc = 2.1))
  expect_identical(spec$cpu, 1)
  expect_identical(spec$memory, 2^30 + 1)
  expect_identical(spec$nproc, 3)
  expect_identical(limits_spec(list(cpu = 90.5))$cpu, 91)
})

test_that("limits_spec() names all six launcher fields in order", {
  expect_named(
    limits_spec(list(cpu = 1)),
    c("cpu", "memory", "fsize", "nproc", "nofile", "stack")
  )
})

test_that("limits_spec() drops Inf entries and treats NULL as the defaults", {
  expect_null(limits_spec(list(cpu = Inf))$cpu)
  expect_identical(limits_spec(NULL), limits_spec(default_limits()))
})

# describe_limit() -------------------------------------------------------

test_that("describe_limit() describes each limit for error messages", {
  expect_identical(describe_limit("cpu", 60), "CPU time (60 s)")
  expect_identical(describe_limit("memory", 2 * 1024^3), "memory (2 GiB)")
  expect_identical(describe_limit("fsize", 100 * 1024^2), "file size (100 MiB)")
  expect_identical(describe_limit("nproc", 256), "processes (256)")
  expect_identical(describe_limit("nofile", 256), "open files (256)")
  expect_identical(describe_limit("stack", 8 * 1024^2), "stack (8 MiB)")
})

test_that("describe_limit() formats odd sizes readably", {
  expect_identical(describe_limit("memory", 1.5 * 1024^3), "memory (1.5 GiB)")
  expect_identical(describe_limit("fsize", 512), "file size (512 B)")
  expect_identical(describe_limit("memory", 2147483648), "memory (2 GiB)")
  expect_identical(describe_limit("nofile", 100000), "open files (100000)")
})

test_that("describe_limit() says when there is no limit", {
  expect_identical(describe_limit("cpu", NULL), "CPU time (no limit)")
  expect_identical(describe_limit("memory", Inf), "memory (no limit)")
})

test_that("describe_limit() refuses an unknown limit name", {
  expect_input_error(describe_limit("ram", 1), c("ram", "memory"))
})

# ===========================================================================
# Limits in real sessions, without the sandbox and inside it.
#
# Everything above tests the limits lists. Everything below starts real
# sessions and hits each limit: the error must be a classed
# `securer_limit_error` whose `limit` names it, and the session must answer
# afterwards. Sessions are shared where a test leaves nothing behind.
# ===========================================================================

shared_limits <- list(memory = 1024^3, fsize = 1024^2, nofile = 200)
lim_plain <- lazy_session(function(.env) new_session(limits = shared_limits, .env = .env))
lim_box <- lazy_session(sandboxed_session, limits = shared_limits)

test_that("limits are set in the child without the sandbox", {
  got <- limits_in(lim_plain())
  expect_identical(got[["Max address space"]], format(1024^3, scientific = FALSE))
  expect_identical(got[["Max file size"]], format(1024^2, scientific = FALSE))
  expect_identical(got[["Max open files"]], "200")
  expect_identical(got[["Max cpu time"]], "60")
})

test_that("limits are set in the child inside the sandbox", {
  skip_if_no_sandbox()
  got <- limits_in(lim_box())
  expect_identical(got[["Max address space"]], format(1024^3, scientific = FALSE))
  expect_identical(got[["Max file size"]], format(1024^2, scientific = FALSE))
  expect_identical(got[["Max open files"]], "200")
  expect_identical(got[["Max cpu time"]], "60")
  expect_identical(got[["Max processes"]], "256")
})

test_that("the CPU limit stops a busy loop without the sandbox", {
  s <- new_session(limits = list(cpu = 1))
  err <- expect_error(s$execute("repeat {}", timeout = 20), class = "securer_limit_error")
  expect_s3_class(err, "securer_child_error")
  expect_identical(err$limit, "cpu")
  expect_match(conditionMessage(err), "CPU", fixed = TRUE)
  expect_identical(strip_output(s$execute("1 + 1")), 2)
})

# Warm sessions are forked from the zygote (the default), cold ones are
# started through the launcher.
for (kind in c("warm", "cold")) {
  test_that(paste0("the CPU limit stops a busy loop inside the sandbox (", kind, " session)"), {
    skip_if_no_sandbox()
    s <- sandboxed_session(limits = list(cpu = 1), zygote = kind == "warm")
    err <- expect_error(s$execute("repeat {}", timeout = 20), class = "securer_child_error")
    expect_s3_class(err, "securer_limit_error")
    expect_identical(err$limit, "cpu")
    expect_match(conditionMessage(err), "CPU", fixed = TRUE)
    expect_identical(run_in(s, quote(1 + 1)), 2)
  })
}

test_that("the file size limit stops a large write without the sandbox", {
  s <- lim_plain()
  err <- expect_error(
    s$execute("writeLines(strrep('x', 2 * 1024^2), file.path(tempdir(), 'big.txt'))"),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "fsize")
  expect_match(conditionMessage(err), "file size", fixed = TRUE)
  expect_identical(strip_output(s$execute("1 + 1")), 2)
})

test_that("the file size limit stops a large write inside the sandbox", {
  skip_if_no_sandbox()
  s <- lim_box()
  err <- expect_error(
    s$execute("writeLines(strrep('x', 2 * 1024^2), file.path(tempdir(), 'big.txt'))"),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "fsize")
  expect_lte(run_in(s, quote(max(0, file.size(file.path(tempdir(), "big.txt")), na.rm = TRUE))), 1024^2)
  expect_identical(run_in(s, quote(1 + 1)), 2)
})

test_that("the memory limit stops a large allocation without the sandbox", {
  s <- lim_plain()
  err <- expect_error(s$execute("x <- numeric(2e8)"), class = "securer_limit_error")
  expect_identical(err$limit, "memory")
  expect_match(conditionMessage(err), "memory (1 GiB)", fixed = TRUE)
  expect_identical(strip_output(s$execute("exists('x')")), FALSE)
})

test_that("the memory limit stops a large allocation inside the sandbox", {
  skip_if_no_sandbox()
  s <- lim_box()
  err <- expect_error(s$execute("x <- numeric(2e8)"), class = "securer_limit_error")
  expect_identical(err$limit, "memory")
  expect_identical(run_in(s, quote(1 + 1)), 2)
})

test_that("memory errors of R's C allocators are memory limit errors too", {
  s <- lim_plain()
  # R_Calloc: "'R_Calloc' could not allocate memory (...)".
  err <- expect_error(s$execute("x <- strrep('a', 1.5e9)"), class = "securer_limit_error")
  expect_identical(err$limit, "memory")
  expect_match(err$child_message, "could not allocate memory", fixed = TRUE)
  # serialize(): "cannot allocate buffer" (or the vector itself).
  err <- expect_error(
    s$execute("x <- runif(6e7); y <- serialize(x, NULL)"),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "memory")
  expect_identical(strip_output(s$execute("rm(list = ls()); invisible(gc()); 1 + 1")), 2)
})

test_that("the open files limit stops opening too many files without the sandbox", {
  skip_if_not_installed("processx")
  s <- lim_plain()
  # R's own connections stop at 128, below any nofile R can start with
  # (167), so open raw file handles through processx.
  err <- expect_error(
    s$execute("f <- tempfile(); file.create(f); cs <- lapply(1:300, function(i) processx::conn_create_file(f, read = TRUE))"),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "nofile")
  expect_match(conditionMessage(err), "open files (200)", fixed = TRUE)
  expect_identical(strip_output(s$execute("invisible(gc()); 1 + 1")), 2)
})

test_that("the open files limit stops opening too many files inside the sandbox", {
  skip_if_no_sandbox()
  skip_if_not_installed("processx")
  s <- lim_box()
  err <- expect_error(
    s$execute("f <- tempfile(); file.create(f); cs <- lapply(1:300, function(i) processx::conn_create_file(f, read = TRUE))"),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "nofile")
  expect_identical(run_in(s, quote({
    invisible(gc())
    1 + 1
  })), 2)
})

test_that("limits too small for R to start are refused at once, naming the least", {
  for (lim in list(list(memory = 1), list(memory = 100 * 1024^2), list(nofile = 100), list(stack = 64 * 1024))) {
    err <- expect_error(validate_limits(lim), class = "securer_limit_error")
    expect_s3_class(err, "securer_input_error")
    expect_identical(err$limit, names(lim))
    expect_match(conditionMessage(err), "too small to start R", fixed = TRUE)
  }
  expect_match(
    conditionMessage(expect_error(validate_limits(list(memory = 1)))),
    "at least memory (128 MiB)",
    fixed = TRUE
  )
  # Refused before any child is started.
  expect_error(SecureSession$new(sandbox = FALSE, limits = list(memory = 1)), class = "securer_limit_error")
  expect_silent(validate_limits(list(memory = 128 * 1024^2, nofile = 167, stack = 512 * 1024)))
})

test_that("an open files limit too low for R to start is a limit error", {
  # R checks the limit when it starts: a cold start.
  withr::local_options(securer.zygote = FALSE)
  err <- expect_error(
    SecureSession$new(sandbox = FALSE, limits = list(nofile = 64)),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "nofile")
  expect_match(conditionMessage(err), "nofile", fixed = TRUE)
})

test_that("a forked session refuses an open files limit R could not start with, as a cold one does", {
  skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the zygote is Linux only")
  withr::local_options(securer.zygote = TRUE)
  err <- expect_error(new_session(limits = list(nofile = 64)), class = "securer_limit_error")
  expect_identical(err$limit, "nofile")
  s <- new_session(limits = list(nofile = 200))
  expect_identical(run_in(s, quote(system("ulimit -n", intern = TRUE))), "200")
})

test_that("the process limit stops forking too many workers inside the sandbox", {
  skip_if_no_sandbox()
  s <- sandboxed_session(limits = list(nproc = 16))
  err <- expect_error(
    s$execute("jobs <- lapply(1:40, function(i) parallel::mcparallel(Sys.sleep(2)))", timeout = 20),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "nproc")
  expect_match(conditionMessage(err), "processes (16)", fixed = TRUE)
  expect_identical(run_in(s, quote(1 + 1)), 2)
})

test_that("the process limit stops forking too many workers without the sandbox", {
  # The kernel does not apply RLIMIT_NPROC to root; inside the sandbox root
  # is mapped to nobody, so the sandboxed test above always runs.
  skip_if(identical(ps::ps_uids()[["real"]], 0L), "RLIMIT_NPROC does not bind root")
  s <- new_session(limits = list(nproc = 16))
  err <- expect_error(
    s$execute("jobs <- lapply(1:400, function(i) parallel::mcparallel(Sys.sleep(2)))", timeout = 20),
    class = "securer_limit_error"
  )
  expect_identical(err$limit, "nproc")
})

for (kind in c("warm", "cold")) {
  test_that(paste0("background commands leave no zombies that eat the process limit (", kind, " session)"), {
    skip_if_no_sandbox()
    s <- sandboxed_session(limits = list(nproc = 64), zygote = kind == "warm")
    states <- run_in(s, quote({
      for (i in 1:20) system("true &")
      Sys.sleep(1)
      procs <- list.files("/proc", pattern = "^[0-9]+$", full.names = TRUE)
      vapply(procs, function(p) strsplit(readLines(file.path(p, "stat")), " ")[[1]][[3]], character(1))
    }), timeout = 20)
    expect_false(any(states == "Z"))
  })
}

test_that("limits = list() sets no limit without the sandbox", {
  s <- new_session(limits = list())
  expect_identical(
    strip_output(s$execute("system('ulimit -t; ulimit -f', intern = TRUE)")),
    c("unlimited", "unlimited")
  )
  info <- s$sandbox_info()
  expect_false(info$active[info$layer == "limits"])
})

test_that("limits = list() sets no limit inside the sandbox", {
  skip_if_no_sandbox()
  s <- sandboxed_session(limits = list())
  expect_identical(
    run_in(s, quote(system("ulimit -t; ulimit -f; ulimit -v", intern = TRUE))),
    c("unlimited", "unlimited", "unlimited")
  )
  info <- s$sandbox_info()
  expect_false(info$active[info$layer == "limits"])
})

# Limits inside the default sandbox (a shared session of the default
# limits) -------------------------------------------------------------------

box <- lazy_session()

test_that("allocating 8 GB is a memory limit error and the session goes on", {
  skip_if_no_sandbox()
  s <- box()
  err <- expect_error(s$execute("x <- numeric(1e9)"), class = "securer_limit_error")
  expect_identical(err$limit, "memory")
  expect_match(conditionMessage(err), "memory", fixed = TRUE)
  expect_identical(run_in(s, quote(1 + 1)), 2)
})

test_that("a fork bomb is contained by nproc and leaves no process behind", {
  skip_if_no_sandbox()
  s <- sandboxed_session(limits = list(nproc = 32))
  start_fork_bomb(s, 32)
  Sys.sleep(1.5)
  n <- run_in(s, quote(length(list.files("/proc", pattern = "^[0-9]+$"))), timeout = 10)
  # The bomb ran (it wants thousands) and stopped at the limit.
  expect_gte(n, 16L)
  expect_lte(n, 32L)
  tree <- process_tree(s$pid())
  expect_lte(length(tree), 32L + 2L)
  # The host still forks.
  expect_identical(system("true"), 0L)
  # The session still answers (its R process needs no fork for this).
  expect_identical(run_in(s, quote(1 + 1), timeout = 10), 2)
  s$close()
  expect_true(wait_handles_gone(tree, timeout = 10))
})

test_that("a fork bomb within its nproc limit does not starve another session", {
  skip_if_no_sandbox()
  a <- sandboxed_session(limits = list(nproc = 32))
  b <- box()
  start_fork_bomb(a, 32)
  Sys.sleep(1.5)
  expect_identical(run_in(b, quote(system("echo hi", intern = TRUE))), "hi")
  expect_identical(
    run_in(b, quote(parallel::mccollect(parallel::mcparallel(6 * 7))[[1]])),
    42
  )
})

test_that("a fork bomb at the default nproc does not starve another session", {
  skip_if_no_sandbox()
  a <- sandboxed_session()
  b <- box()
  start_fork_bomb(a, 256)
  Sys.sleep(2)
  got <- tryCatch(
    run_in(b, quote(parallel::mccollect(parallel::mcparallel(6 * 7))[[1]])),
    securer_limit_error = function(e) e
  )
  expect_identical(got, 42)
})

test_that("filling /tmp stops at its cap and the session goes on", {
  skip_if_no_sandbox()
  s <- sandboxed_session(sandbox = build_sandbox_config(tmp_size = 16 * 1024^2))
  res <- s$execute("
    f <- file.path(tempdir(), 'big')
    writeBin(raw(32 * 1024^2), f)
    file.size(f)
  ")
  expect_lte(strip_output(res), 16 * 1024^2)
  expect_true(any(grepl("problem writing", attr(res, "output"))))
  out <- run_in(s, quote(suppressWarnings(
    system("head -c 33554432 /dev/zero 2>&1 >/tmp/more", intern = TRUE)
  )))
  expect_false(is.null(attr(out, "status")))
  expect_true(any(grepl("No space left on device", out)))
  expect_identical(run_in(s, quote(1 + 1)), 2)
})

# Limits on the whole session ----------------------------------------------
#
# In a sandboxed session memory and nproc bind all of its processes
# together: a cgroup where the host delegates one, else the session's
# supervisor, which stops the session when it passes one. Each tier is
# tried with eight R processes (the session's R and seven forked workers)
# that together hold more than the limit, and a control without the limit
# shows they do. Without the sandbox limits are per process.

# Code that makes eight processes each hold about 128 MB for `hold`
# seconds; it returns the memory R says they used (bytes), summed. (R's
# own count: forked workers of the fallback tier cannot read /proc/self.)
eight_workers <- function(hold = 3) {
  bquote({
    got <- parallel::mclapply(1:8, function(i) {
      x <- runif(16e6)
      used <- sum(gc()[, 2]) * 1024^2
      Sys.sleep(.(hold))
      used + 0 * x[[1]]
    }, mc.cores = 8)
    sum(unlist(got))
  })
}

for (tier in sandbox_tiers) {
  test_that(paste0("the memory limit binds all of a session's processes together (", tier, ")"), {
    skip_if_no_sandbox()
    s <- tier_session(tier, limits = list(memory = 512 * 1024^2))
    err <- expect_error(run_in(s, eight_workers(), timeout = 60), class = "securer_limit_error")
    expect_s3_class(err, "securer_child_error")
    expect_identical(err$limit, "memory")
    expect_match(conditionMessage(err), "memory (512 MiB)", fixed = TRUE)
    # The session was replaced and answers.
    expect_identical(run_in(s, quote(1 + 1)), 2)
    # Control: without a memory limit the same code holds more than 512 MiB.
    free <- tier_session(tier, limits = list(memory = Inf))
    expect_gt(run_in(free, eight_workers(hold = 0), timeout = 60), 512 * 1024^2)
  })

  test_that(paste0("the process limit binds all of a session's processes together (", tier, ")"), {
    skip_if_no_sandbox()
    start <- quote({
      for (i in 1:40) system("sleep 30 &")
      Sys.sleep(1)
      "started"
    })
    s <- tier_session(tier, limits = list(nproc = 16))
    # Either the forks beyond the limit fail (RLIMIT_NPROC, the cgroup) or
    # the supervisor stops the session: never more than 16 processes.
    got <- tryCatch(run_in(s, start, timeout = 60), securer_limit_error = function(e) e)
    if (inherits(got, "securer_limit_error")) {
      expect_identical(got$limit, "nproc")
    } else {
      expect_identical(got, "started")
      expect_lte(length(process_tree(s$pid())), 16L + 2L)
    }
    # Control: without the limit all 40 run.
    free <- tier_session(tier, limits = list(nproc = Inf))
    expect_identical(run_in(free, start, timeout = 60), "started")
    expect_gte(length(process_tree(free$pid())), 40L)
  })
}
