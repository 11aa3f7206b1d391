# Warm zygotes: sandboxed sessions forked from an R process started once per
# sandbox policy. Each forked session must stay isolated from its siblings:
# own /tmp, cannot see, signal or ptrace them, own limits, fresh global
# environment. Sessions here are strict (every layer or an error).

skip_if_no_zygote <- function() {
  skip_if_no_sandbox()
  skip_if_not(isTRUE(getOption("securer.zygote", TRUE)), "the zygote is turned off")
  require_or_skip(
    securer:::zygote_wanted(list(sandbox = build_sandbox_config())),
    "sessions of the default policy start cold here"
  )
}

# The running zygote of `key` (list(key, pid)), or NULL.
zygote_by_key <- function(key) securer:::zygote_list()[[key]]

# The zygote (list(key, pid)) a session was forked from: the one whose
# process tree holds the session's supervisor. NULL for a cold session.
zygote_of <- function(session) {
  for (z in securer:::zygote_list()) {
    if (session$pid() %in% tree_pids(z$pid)) {
      return(z)
    }
  }
  NULL
}

zygote_key_for <- function(sandbox, strict = TRUE) {
  securer:::zygote_key(list(
    sandbox = sandbox, strict = strict,
    max_frame = getOption("securer.max_message_size", 8 * 1024^2)
  ))
}

# Stops the zygote of this policy when `.env` ends (for policies that only
# one test uses).
local_zygote_cleanup <- function(key, .env = parent.frame()) {
  withr::defer(securer:::zygote_stop(key), envir = .env)
}

forked <- function(session) {
  any(grepl("zygote", session$sandbox_info()$detail))
}

# Host pids of every process under host pid `pid`, itself included.
tree_pids <- function(pid) vapply(process_tree(pid), ps::ps_pid, integer(1))

# Whether a session (either mode) runs under one of the running zygotes.
under_a_zygote <- function(session) {
  any(vapply(securer:::zygote_list(), function(z) session$pid() %in% tree_pids(z$pid), logical(1)))
}

# Lazy start and reuse -----------------------------------------------------------

test_that("a policy's zygote starts with its first sandboxed session", {
  skip_if_no_zygote()
  # A policy no other test uses, so no zygote can exist for it yet.
  cfg <- build_sandbox_config(tmp_size = 48 * 1024^2)
  key <- zygote_key_for(cfg)
  local_zygote_cleanup(key)
  expect_null(zygote_by_key(key))
  s <- sandboxed_session(sandbox = cfg)
  z <- zygote_by_key(key)
  expect_false(is.null(z))
  expect_identical(zygote_of(s), z)
  expect_true(pid_running(z$pid))
  expect_true(forked(s))
  expect_identical(s$execute("1 + 1"), 2)
})

test_that("sessions of one policy are forked from the same zygote", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  b <- sandboxed_session()
  za <- zygote_of(a)
  expect_false(is.null(za))
  expect_identical(zygote_of(b), za)
  expect_true(forked(a))
  expect_true(forked(b))
  # Both supervisors are processes under that one zygote.
  under <- tree_pids(za$pid)
  expect_true(a$pid() %in% under)
  expect_true(b$pid() %in% under)
  expect_false(a$pid() == b$pid())
  # It is kept for later sessions after these close.
  a$close()
  b$close()
  c <- sandboxed_session()
  expect_identical(zygote_of(c), za)
  expect_true(c$pid() %in% tree_pids(za$pid))
})

test_that("a different sandbox policy gets a zygote of its own", {
  skip_if_no_zygote()
  cfg <- build_sandbox_config(tmp_size = 32 * 1024^2)
  local_zygote_cleanup(zygote_key_for(cfg))
  plain <- sandboxed_session()
  small <- sandboxed_session(sandbox = cfg)
  z1 <- zygote_of(plain)
  z2 <- zygote_of(small)
  expect_false(is.null(z2))
  expect_false(identical(z1$pid, z2$pid))
  expect_true(small$pid() %in% tree_pids(z2$pid))
  expect_false(small$pid() %in% tree_pids(z1$pid))
  info <- small$sandbox_info()
  expect_match(info$detail[info$layer == "root"], format(32 * 1024^2, scientific = FALSE), fixed = TRUE)
})

test_that("a dead zygote is replaced and sessions go on starting", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  z <- zygote_of(a)
  old <- process_tree(z$pid)
  expect_gte(length(old), 3L)
  tools::pskill(z$pid, tools::SIGKILL)
  # The zygote's whole tree goes, its sessions included.
  expect_true(wait_handles_gone(old))
  b <- sandboxed_session()
  expect_identical(b$execute("1 + 1"), 2)
  z2 <- zygote_of(b)
  expect_false(identical(z2$pid, z$pid))
  expect_true(pid_running(z2$pid))
  expect_true(forked(b))
  # The session whose zygote died is replaced on its next use.
  expect_identical(a$execute("'back'"), "back")
  expect_true(a$pid() %in% tree_pids(z2$pid))
})

# Isolation between forked sessions ------------------------------------------------

test_that("forked sessions each have their own /tmp", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  b <- sandboxed_session()
  marker <- random_token()
  expect_true(run_in(a, bquote({
    writeLines(.(marker), "/tmp/marker")
    file.exists("/tmp/marker")
  })))
  expect_false(run_in(b, quote(file.exists("/tmp/marker"))))
  expect_false(any(grepl(marker, run_in(b, quote(list.files("/tmp", recursive = TRUE, all.files = TRUE))))))
  # A session forked after the marker was written does not see it either.
  c <- sandboxed_session()
  expect_false(run_in(c, quote(file.exists("/tmp/marker"))))
})

test_that("forked sessions cannot see each other's processes", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  b <- sandboxed_session()
  a_pids <- tree_pids(a$pid())
  seen <- run_in(b, quote(as.integer(list.files("/proc", pattern = "^[0-9]+$"))))
  # Only B's own few processes, numbered from 1 in its pid namespace (its
  # init, pid 1, is hidden from R: it is not R's to inspect).
  expect_lte(length(seen), 3L)
  expect_true(2L %in% seen)
  expect_true(all(seen < 100L))
  expect_false(any(a_pids %in% seen))
  expect_false(any(run_in(b, bquote(file.exists(sprintf("/proc/%d", .(a_pids)))))))
  expect_identical(run_in(b, quote(Sys.getpid())), 2L)
})

test_that("a forked session cannot signal its siblings or the zygote", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  b <- sandboxed_session()
  z <- zygote_of(a)
  targets <- setdiff(tree_pids(z$pid), tree_pids(a$pid()))
  b_tree <- process_tree(b$pid())
  # The zygote's own processes: from A's parent up to the zygote (other
  # sessions and spares in its tree come and go with other tests).
  z_chain <- list()
  h <- ps::ps_parent(ps::ps_handle(as.integer(a$pid())))
  repeat {
    z_chain <- c(z_chain, list(h))
    if (ps::ps_pid(h) == z$pid) break
    h <- ps::ps_parent(h)
  }
  expect_gte(length(b_tree), 2L)
  expect_true(all(tree_pids(b$pid()) %in% targets))
  # B's and the zygote's host pids mean nothing in A's pid namespace.
  sent <- run_in(a, bquote(tools::pskill(.(targets), tools::SIGKILL)))
  expect_false(any(sent))
  status <- run_in(a, bquote(suppressWarnings(
    system(.(paste("kill -9", paste(targets, collapse = " "), "2>/dev/null")))
  )))
  expect_false(identical(status, 0L))
  # Small pids in A's namespace are A's own processes (its init is 1, its R
  # is 2), never B's.
  run_in(a, quote(tools::pskill(setdiff(1:5, Sys.getpid()), tools::SIGTERM)))
  expect_true(all(vapply(b_tree, handle_running, logical(1))))
  expect_true(all(vapply(z_chain, handle_running, logical(1))))
  expect_identical(run_in(b, quote(1 + 1)), 2)
  expect_identical(run_in(a, quote(1 + 1)), 2)
  # The zygote still forks sessions.
  c <- sandboxed_session()
  expect_identical(zygote_of(c)$pid, z$pid)
  expect_identical(run_in(c, quote("forked")), "forked")
})

test_that("a forked session cannot ptrace or read the memory of a sibling", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  b <- sandboxed_session()
  b_pids <- tree_pids(b$pid())
  # A reads its own environ through /proc, but nothing of B.
  own <- run_in(a, quote(suppressWarnings(system("tr '\\0' '\\n' < /proc/2/environ", intern = TRUE))))
  expect_true(any(grepl("^R_HOME=", own)))
  others <- run_in(a, bquote(vapply(
    sprintf("/proc/%d/mem", .(b_pids)),
    function(p) tryCatch({
      con <- file(p, "rb")
      on.exit(close(con))
      "READ"
    }, error = function(e) "ERROR", warning = function(w) "ERROR"),
    character(1)
  )))
  expect_true(all(others == "ERROR"))
  expect_identical(
    run_in(a, quote(sub("^TracerPid:\\s*", "", grep("^TracerPid", readLines("/proc/self/status"), value = TRUE)))),
    "0"
  )
  skip_if_not(run_in(a, quote(file.exists("/usr/bin/python3"))), "no python3 in the sandbox")
  # PTRACE_ATTACH (16) on B's host pids fails, as on A's own child.
  script <- paste(
    "import ctypes, subprocess, sys",
    "libc = ctypes.CDLL(None, use_errno=True)",
    "p = subprocess.Popen(['sleep', '5'])",
    "for pid in [p.pid] + [int(x) for x in sys.argv[1:]]:",
    "    print(libc.ptrace(16, pid, 0, 0), ctypes.get_errno())",
    "p.kill()",
    sep = "\n"
  )
  out <- run_in(a, bquote({
    writeLines(.(script), "/tmp/attach.py")
    suppressWarnings(system2("python3", c("/tmp/attach.py", .(b_pids)), stdout = TRUE, stderr = TRUE))
  }))
  expect_length(out, length(b_pids) + 1L)
  expect_true(all(startsWith(out, "-1 ")))
  expect_identical(run_in(b, quote(1 + 1)), 2)
})

test_that("every forked session starts with an empty global environment", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  a$execute("x <- 1; f <- function() 2; .hidden <- 3; library(tools)")
  expect_true(a$execute("exists('x') && 'package:tools' %in% search()"))
  b <- sandboxed_session()
  expect_identical(b$execute("ls(globalenv(), all.names = TRUE)"), character())
  expect_false(b$execute("'package:tools' %in% search()"))
})

test_that("the zygote's heap stays near its live size; its trigger stays its own", {
  skip_if_no_zygote()
  # A session copies every page of the zygote's heap at its first full
  # collection, and R's heap keeps the pages of its highest point. The
  # zygote collects as it compiles the runtime and starts with a low
  # collection trigger (R_NSIZE, which the code does not see). Control:
  # without them the high point is R's default trigger, ~660k cells
  # against ~354k live (a ratio of 1.87; with them 1.61).
  for (sandbox in list(TRUE, FALSE)) {
    s <- sandboxed_session(sandbox = sandbox)
    got <- run_in(s, quote(list(env = Sys.getenv("R_NSIZE", NA), cells = gc()[1L, c(1L, 5L)])))
    expect_identical(got$env, NA_character_)
    expect_lt(got$cells[[2]] / got$cells[[1]], 1.75)
  }
})

test_that("what the zygote's namespaces hold keeps its pages shared; values behave as before", {
  skip_if_no_zygote()
  # A session bumping the reference counts of symbols, strings and code it
  # shares with the zygote would copy their pages: the zygote marks them
  # as never modified in place, so their counts are at R's maximum (65535)
  # and never written. Control: a cold session, where nothing is marked.
  # A symbol, a string (the CHARSXP under a character vector) and code.
  probe <- quote(vapply(
    list(quote(vapply), "value", body(sys.function)),
    function(x) {
      lines <- utils::capture.output(.Internal(inspect(x)))
      line <- if (is.character(x)) grep("CHARSXP", lines, value = TRUE)[[1L]] else lines[[1L]]
      sub(".*REF\\(([0-9]+)\\).*", "\\1", line)
    },
    ""
  ))
  copies <- quote({
    m <- .Machine
    m$integer.max <- 0L
    l <- letters
    l[1L] <- "z"
    f <- base::vapply
    body(f) <- quote(1)
    x <- c(1, 2)
    x[2L] <- 3
    list(.Machine$integer.max, letters[1L], deparse(body(base::vapply)), f(), x)
  })
  for (sandbox in list(TRUE, FALSE)) {
    warm <- sandboxed_session(sandbox = sandbox)
    cold <- sandboxed_session(sandbox = sandbox, zygote = FALSE)
    expect_true(under_a_zygote(warm))
    expect_false(under_a_zygote(cold))
    expect_identical(run_in(warm, probe), rep("65535", 3L))
    expect_true(all(as.integer(run_in(cold, probe)) < 65535L))
    want <- list(.Machine$integer.max, "a", deparse(body(base::vapply)), 1, c(1, 3))
    expect_identical(run_in(warm, copies), want)
    expect_identical(run_in(cold, copies), want)
  }
})

test_that("a forked session allocates from fresh pages, not from the zygote's free chunks", {
  skip_if_no_zygote()
  # The zygote takes up the free chunks of its malloc heap before it
  # forks: what a session allocates then comes from the top of the heap
  # (pages of its own) instead of from chunks spread over the ~40 MiB it
  # shares with the zygote, each of which it would copy. Measured inside
  # the session: how far below the heap's end ten fresh vectors (large
  # enough for R to malloc them) lie, as a fraction of the heap. Control:
  # without it, 2-4 of the ten lie in the top quarter.
  probe <- quote(local({
    m <- readLines("/proc/self/maps")
    range <- strsplit(sub(" .*", "", m[grepl("[heap]", m, fixed = TRUE)][[1L]]), "-")[[1L]]
    start <- as.numeric(paste0("0x", range[[1L]]))
    end <- as.numeric(paste0("0x", range[[2L]]))
    xs <- lapply(c(20, 33, 47, 61, 90, 130, 170, 250, 380, 600), numeric)
    addr <- vapply(xs, function(x) {
      line <- utils::capture.output(.Internal(inspect(x)))[[1L]]
      as.numeric(paste0("0x", sub("^@([0-9a-f]+) .*", "\\1", line)))
    }, 0)
    (end - addr) / (end - start)
  }))
  for (sandbox in list(TRUE, FALSE)) {
    s <- sandboxed_session(sandbox = sandbox)
    below <- run_in(s, probe)
    expect_length(below, 10L)
    expect_gte(sum(below < 0.25), 8L)
  }
})

test_that("a spare warmed before its claim starts as a cold session does", {
  skip_if_no_zygote()
  # The first execution of a session: what it printed, its transcript and
  # what the runtime could have left behind.
  probe <- paste(
    'cat("hi\\n"); list(ls(globalenv(), all.names = TRUE), search(), sink.number(),',
    'is.function(getOption("device")), grDevices::dev.list(),',
    'exists(".Random.seed", globalenv()), length(warnings()), 1 + 1)'
  )
  first <- function(s) {
    v <- s$execute(probe)
    list(value = strip_output(v), output = attr(v, "output"), console = s$last_console())
  }
  for (sandbox in list(TRUE, FALSE)) {
    # A session forked on demand; the zygote then makes and warms the
    # spare that the next session claims.
    a <- sandboxed_session(sandbox = sandbox)
    b <- sandboxed_session(sandbox = sandbox)
    key <- names(securer:::zygote_list())[vapply(securer:::zygote_list(), function(z) {
      b$pid() %in% tree_pids(z$pid)
    }, logical(1))]
    expect_length(key, 1L)
    cold <- sandboxed_session(sandbox = sandbox, zygote = FALSE)
    expect_false(any(vapply(securer:::zygote_list(), function(z) {
      cold$pid() %in% tree_pids(z$pid)
    }, logical(1))))
    got <- first(b)
    expect_identical(got, first(cold))
    expect_identical(got$output, "hi")
    expect_identical(got$value[[1]], character())
  }
})

test_that("forked sessions draw different random numbers", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  b <- sandboxed_session()
  expect_false(identical(run_in(a, quote(runif(3))), run_in(b, quote(runif(3)))))
})

test_that("sessions forked from one zygote keep their own limits", {
  skip_if_no_zygote()
  a <- sandboxed_session(limits = list(cpu = 5, nofile = 200))
  b <- sandboxed_session(limits = list(cpu = 7))
  expect_identical(zygote_of(a), zygote_of(b))
  expect_identical(run_in(a, quote(system("ulimit -t", intern = TRUE))), "5")
  expect_identical(run_in(b, quote(system("ulimit -t", intern = TRUE))), "7")
  expect_identical(run_in(a, quote(system("ulimit -n", intern = TRUE))), "200")
  expect_identical(run_in(b, quote(system("ulimit -n", intern = TRUE))), "256")
})

test_that("a forked session hitting its CPU limit fails alone", {
  skip_if_no_zygote()
  a <- sandboxed_session(limits = list(cpu = 1))
  b <- sandboxed_session()
  b$execute("x <- 'still here'")
  b_pid <- b$pid()
  err <- expect_error(a$execute("repeat {}", timeout = 15), class = "securer_limit_error")
  expect_identical(err$limit, "cpu")
  expect_identical(b$execute("x"), "still here")
  expect_identical(b$pid(), b_pid)
  expect_identical(a$execute("'replaced'"), "replaced")
})

test_that("sandbox_info() of a forked session shows every layer and the zygote", {
  skip_if_no_zygote()
  info <- sandboxed_session()$sandbox_info()
  expect_setequal(
    info$layer,
    c("namespaces", "root", "capabilities", "landlock", "seccomp", "limits", "environment")
  )
  expect_true(all(info$active))
  expect_match(info$detail[info$layer == "namespaces"], "zygote")
  expect_match(info$detail[info$layer == "namespaces"], "own pid, mount, ipc and network")
  expect_match(info$detail[info$layer == "root"], "private /tmp")
  expect_match(info$detail[info$layer == "root"], "own /proc")
})

test_that("a granted folder and a library under /tmp work in a forked session", {
  skip_if_no_zygote()
  dir <- normalizePath(withr::local_tempdir(tmpdir = "/tmp"))
  writeLines("data", file.path(dir, "data.txt"))
  lib <- normalizePath(withr::local_tempdir(tmpdir = "/tmp"))
  withr::local_libpaths(lib, action = "prefix")
  cfg <- build_sandbox_config(read_only = dir)
  expect_true(securer:::zygote_wanted(list(sandbox = cfg)))
  local_zygote_cleanup(zygote_key_for(cfg))
  s <- sandboxed_session(sandbox = cfg)
  expect_true(forked(s))
  expect_identical(read_in(s, file.path(dir, "data.txt")), "data")
  expect_true(lib %in% run_in(s, quote(.libPaths())))
  # Still read-only there, and the session's /tmp is still its own.
  expect_false(run_in(s, bquote(file.create(file.path(.(dir), "new.txt")))))
  marker <- withr::local_tempfile(tmpdir = "/tmp")
  writeLines("host", marker)
  expect_false(run_in(s, bquote(file.exists(.(marker)))))
  info <- s$sandbox_info()
  expect_match(info$detail[info$layer == "root"], "granted paths under /tmp", fixed = TRUE)
})

test_that("without the zygote a sandboxed session starts cold", {
  skip_if_no_zygote()
  withr::local_options(securer.zygote = FALSE)
  zygotes <- names(securer:::zygote_list())
  s <- SecureSession$new(sandbox = TRUE, sandbox_strict = TRUE)
  withr::defer(s$close())
  expect_false(forked(s))
  expect_true(all(s$sandbox_info()$active))
  expect_identical(s$execute("1 + 1"), 2)
  expect_identical(names(securer:::zygote_list()), zygotes)
  for (key in zygotes) {
    expect_false(s$pid() %in% tree_pids(zygote_by_key(key)$pid))
  }
})

# Timeouts, interrupts, clean-up ---------------------------------------------------

test_that("a timeout kills and replaces a forked session; the zygote lives on", {
  skip_if_no_zygote()
  s <- sandboxed_session()
  z <- zygote_of(s)
  old <- process_tree(s$pid())
  expect_length(old, 2L)
  expect_error(s$execute("Sys.sleep(30)", timeout = 0.5), class = "securer_timeout")
  expect_true(wait_handles_gone(old))
  expect_identical(zygote_of(s), z)
  expect_true(pid_running(z$pid))
  expect_identical(s$execute("'after'"), "after")
  expect_true(forked(s))
  expect_true(s$pid() %in% tree_pids(z$pid))
})

test_that("Ctrl-C interrupts a forked session and leaves it usable", {
  skip_if_no_zygote()
  skip_if_not_installed("callr")
  proc <- r_bg_lines(function() {
    library(securer)
    session <- SecureSession$new(sandbox = TRUE, sandbox_strict = TRUE)
    cat("FORKED", any(grepl("zygote", session$sandbox_info()$detail)), "\n")
    cat("SUPERVISOR", session$pid(), "\n")
    res <- tryCatch(
      session$execute(
        "x <- 'kept'; cat('STARTED\\n'); Sys.sleep(30); 'not interrupted'",
        output_handler = function(line) {
          cat(line, "\n", sep = "")
          flush(stdout())
        }
      ),
      securer_interrupt = function(e) "CAUGHT securer_interrupt",
      interrupt = function(e) "CAUGHT plain interrupt"
    )
    cat(res, "\n", sep = "")
    cat("SAME", session$pid(), "\n")
    cat("NEXT", session$execute("x"), "\n")
    session$close()
    flush(stdout())
  })
  withr::defer(proc$kill())
  out <- read_until(proc, "^STARTED")
  expect_true("STARTED" %in% out, label = paste(out, collapse = "\n"))
  proc$interrupt()
  proc$wait(15000)
  # It ended, before the 30 s sleep could (the result says so too).
  expect_false(proc$is_alive())
  out <- trimws(c(out, proc$read_all_output_lines()))
  expect_true("FORKED TRUE" %in% out, label = paste(out, collapse = "\n"))
  expect_true("CAUGHT securer_interrupt" %in% out, label = paste(out, collapse = "\n"))
  expect_false("not interrupted" %in% out)
  # The interrupt reached R in the session, which went on with its state.
  supervisor <- sub("SUPERVISOR ", "", grep("^SUPERVISOR", out, value = TRUE))
  expect_true(paste("SAME", supervisor) %in% out, label = paste(out, collapse = "\n"))
  expect_true("NEXT kept" %in% out, label = paste(out, collapse = "\n"))
})

test_that("close() ends a forked session's supervisor and session processes", {
  skip_if_no_zygote()
  s <- sandboxed_session()
  z <- zygote_of(s)
  tree <- process_tree(s$pid())
  expect_length(tree, 2L)
  expect_true(all(vapply(tree, handle_running, logical(1))))
  s$close()
  expect_true(wait_handles_gone(tree))
  expect_false(s$is_alive())
  expect_true(pid_running(z$pid))
})

# What a fork would share ------------------------------------------------------

test_that("forked sessions never share tempfile() names or temporary folders", {
  skip_if_no_zygote()
  a <- sandboxed_session()
  b <- sandboxed_session()
  expect_true(forked(a) && forked(b))
  names_in <- function(s) run_in(s, quote(basename(c(tempdir(), replicate(5, tempfile())))))
  na <- names_in(a)
  nb <- names_in(b)
  # Both R processes are pid 2 of their namespaces: C's rand() alone tells
  # the names apart, and it is reseeded in each session.
  expect_length(intersect(na, nb), 0L)
  expect_true(run_in(a, quote(dir.exists(tempdir()))))
})

test_that("without a sandbox, sessions are forked too, each in its own group and folder", {
  skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the zygote is Linux only")
  withr::local_options(securer.zygote = TRUE)
  a <- new_session()
  b <- new_session()
  key <- securer:::zygote_key(list(sandbox = NULL, max_frame = securer:::max_frame_option()))
  z <- securer:::zygote_list()[[key]]
  expect_false(is.null(z))
  # The supervisors (sessions' pids) are under the zygote; R under them.
  expect_true(all(c(a$pid(), b$pid()) %in% tree_pids(z$pid)))
  info <- function(s) {
    run_in(s, quote(list(
      home = Sys.getenv("HOME"), tmp = tempdir(), wd = getwd(),
      pgid = as.integer(scan("/proc/self/stat", what = "", quiet = TRUE)[[5L]]),
      names = basename(replicate(5, tempfile())),
      key = Sys.getenv("SECURER_TOKEN", "none")
    )))
  }
  ia <- info(a)
  ib <- info(b)
  expect_false(identical(ia$home, ib$home))
  expect_true(startsWith(ia$tmp, ia$home))
  expect_identical(normalizePath(ia$wd), normalizePath(ia$home))
  # Each session leads a process group of its own (its supervisor's).
  expect_identical(ia$pgid, as.integer(a$pid()))
  expect_false(identical(ia$pgid, ib$pgid))
  expect_length(intersect(ia$names, ib$names), 0L)
  expect_identical(ia$key, "none")
})

test_that("without a sandbox, a forked session keeps its own limits and its group dies with it", {
  skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the zygote is Linux only")
  withr::local_options(securer.zygote = TRUE)
  a <- new_session(limits = list(cpu = 5, nofile = 200))
  b <- new_session(limits = list(cpu = 7))
  expect_identical(run_in(a, quote(system("ulimit -t", intern = TRUE))), "5")
  expect_identical(run_in(b, quote(system("ulimit -t", intern = TRUE))), "7")
  expect_identical(run_in(a, quote(system("ulimit -n", intern = TRUE))), "200")
  # A process the session leaves running in its group ends with it.
  bg <- run_in(a, quote(as.integer(system("sleep 300 > /dev/null 2>&1 & echo $!", intern = TRUE))))
  expect_true(pid_running(bg))
  a$close()
  expect_true(wait_pid_gone(bg))
  expect_identical(run_in(b, quote(1 + 1)), 2)
})

test_that("a timeout in a forked session without a sandbox replaces it at once", {
  skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the zygote is Linux only")
  withr::local_options(securer.zygote = TRUE)
  s <- new_session()
  s$execute("x <- 1")
  pid <- s$pid()
  expect_error(s$execute("Sys.sleep(30)", timeout = 0.5), class = "securer_timeout")
  expect_true(wait_pid_gone(pid))
  expect_false(s$execute("exists('x')"))
  expect_false(identical(s$pid(), pid))
})
