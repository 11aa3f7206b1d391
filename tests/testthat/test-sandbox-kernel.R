# Attacks on what the kernel shares between the sandbox and the host: other
# processes, file metadata, SysV and POSIX IPC, inotify, terminals, sockets
# in the network namespace, /etc/R. Each runs in every tier (forked from the
# zygote, native started cold, the fallback tier without namespaces) and
# must fail there, against a sacrificial target the test creates (a `sleep`
# process, a file outside every grant, a SysV segment, a message queue);
# each has a control showing the same attack works in a session without
# the sandbox. The namespaces stop most of them in the native tiers; the
# fallback tier relies on its seccomp filter and Landlock.

tier_box <- list(
  warm = lazy_session(tier_session, "warm"),
  cold = lazy_session(tier_session, "cold"),
  fallback = lazy_session(tier_session, "fallback")
)
tbox <- function(tier) tier_box[[tier]]()
plain <- lazy_session(function(.env) new_session(.env = .env))

skip_without_python <- function() {
  skip_if_no_sandbox()
  require_or_skip(file.exists("/usr/bin/python3"), "python3 runs the attacks")
  skip_if_not_installed("ps")
}

# Other processes ----------------------------------------------------------

test_that("no tier can change another process's resource limits (prlimit)", {
  skip_without_python()
  v <- local_victim()
  attack <- "resource.prlimit(P, resource.RLIMIT_CPU, (1, 1))"
  for (tier in sandbox_tiers) {
    expect_match(attack_in(tbox(tier), attack, v$get_pid()), "^ERR", info = tier)
  }
  expect_match(proc_field(v$get_pid(), "limits", "Max cpu time"), "^unlimited +unlimited")
  # Control: without the sandbox the call goes through.
  expect_identical(attack_in(plain(), attack, v$get_pid()), "OK")
  expect_match(proc_field(v$get_pid(), "limits", "Max cpu time"), "^1 +1 +seconds")
})

test_that("no tier can signal a process outside its session, by any call", {
  skip_without_python()
  attacks <- c(
    kill = "os.kill(P, signal.SIGKILL)",
    tgkill = "sc('tgkill', P, P, signal.SIGKILL)",
    sigqueue = paste(
      "info = (ctypes.c_int * 32)()",
      "info[0] = signal.SIGKILL",
      "info[2] = -1",
      "sc('rt_sigqueueinfo', P, signal.SIGKILL, ctypes.addressof(info))",
      sep = "\n"
    ),
    pidfd = "signal.pidfd_send_signal(os.pidfd_open(P), signal.SIGKILL)"
  )
  for (how in names(attacks)) {
    v <- local_victim()
    for (tier in sandbox_tiers) {
      expect_match(attack_in(tbox(tier), attacks[[how]], v$get_pid()), "^ERR", info = paste(how, tier))
    }
    expect_true(v$is_alive(), label = how)
    # Control: the same call kills it without the sandbox.
    expect_identical(attack_in(plain(), attacks[[how]], v$get_pid()), "OK", label = how)
    v$wait(10000)
    expect_false(v$is_alive(), label = how)
  }
})

test_that("no tier can trace, inspect or steal from another process", {
  skip_without_python()
  v <- local_victim()
  attacks <- c(
    ptrace = "lib(libc.ptrace, 0x4206, P, 0, 0)\nlibc.ptrace(17, P, 0, 0)",
    kcmp = "sc('kcmp', os.getpid(), P, 0, 0, 0)",
    pidfd_getfd = "sc('pidfd_getfd', os.pidfd_open(P), 0, 0)",
    process_madvise = "sc('process_madvise', os.pidfd_open(P), 0, 0, 20, 0)"
  )
  for (how in names(attacks)) {
    for (tier in sandbox_tiers) {
      expect_match(attack_in(tbox(tier), attacks[[how]], v$get_pid()), "^ERR", info = paste(how, tier))
    }
    expect_identical(attack_in(plain(), attacks[[how]], v$get_pid()), "OK", label = how)
  }
  expect_true(v$is_alive())
})

test_that("no tier can change another process's scheduling, memory placement or I/O priority", {
  skip_without_python()
  v <- local_victim()
  pid <- v$get_pid()
  nice <- function() strsplit(readLines(sprintf("/proc/%d/stat", pid)), " ")[[1]][[19]]
  ioprio <- function() attack_on_host("print(sc('ioprio_get', 1, P), end=' ')", pid)
  before <- list(nice = nice(), cpus = proc_field(pid, "status", "Cpus_allowed_list"), io = ioprio())
  attacks <- c(
    setpriority = "os.setpriority(os.PRIO_PROCESS, P, 10)",
    affinity = "os.sched_setaffinity(P, {0})",
    ioprio = "sc('ioprio_set', 1, P, 3 << 13)",
    migrate_pages = paste(
      "m = ctypes.c_ulong(1)",
      "sc('migrate_pages', P, 64, ctypes.addressof(m), ctypes.addressof(m))",
      sep = "\n"
    ),
    move_pages = "sc('move_pages', P, 0, 0, 0, 0, 0)"
  )
  for (how in names(attacks)) {
    for (tier in sandbox_tiers) {
      expect_match(attack_in(tbox(tier), attacks[[how]], pid), "^ERR", info = paste(how, tier))
    }
  }
  expect_identical(list(nice = nice(), cpus = proc_field(pid, "status", "Cpus_allowed_list"), io = ioprio()), before)
  # Control: each goes through without the sandbox.
  for (how in names(attacks)) {
    expect_identical(attack_in(plain(), attacks[[how]], pid), "OK", label = how)
  }
  expect_identical(nice(), "10")
})

test_that("no tier can read or write a host process's /proc files", {
  skip_without_python()
  v <- local_victim()
  adj <- sprintf("/proc/%d/oom_score_adj", v$get_pid())
  attacks <- c(
    read = sprintf("open('/proc/%d/environ', 'rb').read()", v$get_pid()),
    write = sprintf("open('%s', 'w').write('500')", adj)
  )
  for (tier in sandbox_tiers) {
    for (how in names(attacks)) {
      expect_match(attack_in(tbox(tier), attacks[[how]]), "^ERR", info = paste(how, tier))
    }
  }
  expect_identical(readLines(adj), "0")
  expect_identical(attack_in(plain(), attacks[["write"]]), "OK")
  expect_identical(readLines(adj), "500")
})

test_that("no process of a session outlives its close, even in a new session", {
  skip_without_python()
  daemon <- paste(
    "import os, time",
    "if os.fork() == 0:",
    "    try: os.setsid()",
    "    except OSError: pass",
    "    open(os.path.join(os.environ['HOME'], 'daemon.pid'), 'w').write(str(os.getpid()))",
    "    time.sleep(300)",
    sep = "\n"
  )
  start <- bquote({
    f <- tempfile(fileext = ".py")
    writeLines(.(daemon), f)
    system2("/usr/bin/python3", f, wait = FALSE, stdout = FALSE, stderr = FALSE)
    Sys.sleep(1)
  })
  for (tier in sandbox_tiers) {
    s <- tier_session(tier)
    run_in(s, start)
    # The daemon was taken in by the session's init or supervisor.
    tree <- process_tree(s$pid())
    expect_gte(length(tree), 3L)
    s$close()
    expect_true(wait_handles_gone(tree), info = tier)
  }
  # Control: without the sandbox the daemon outlives the session.
  s <- new_session()
  run_in(s, start)
  pid <- as.integer(readLines(file.path(run_in(s, quote(Sys.getenv("HOME"))), "daemon.pid"), warn = FALSE))
  withr::defer(tools::pskill(pid, tools::SIGKILL))
  s$close()
  expect_true(pid_running(pid))
})

# File metadata ------------------------------------------------------------

test_that("no tier can chmod, chown or touch a host file outside its grants", {
  skip_without_python()
  f <- withr::local_tempfile()
  writeLines("victim", f)
  Sys.chmod(f, "0600")
  Sys.setFileTime(f, as.POSIXct("2020-01-01", tz = "UTC"))
  state <- function() list(mode = format(file.mode(f)), mtime = file.mtime(f))
  before <- state()
  attacks <- c(
    chmod = sprintf("os.chmod('%s', 0o4777)", f),
    chmod_nofollow = sprintf("os.chmod('%s', 0o666, follow_symlinks=False)", f),
    chown = sprintf("os.chown('%s', -1, -1)", f),
    utime = sprintf("os.utime('%s', (0, 0))", f),
    utime_now = sprintf("os.utime('%s')", f)
  )
  for (tier in sandbox_tiers) {
    for (how in names(attacks)) {
      expect_match(attack_in(tbox(tier), attacks[[how]]), "^ERR", info = paste(how, tier))
    }
  }
  expect_identical(state(), before)
  # Control: without the sandbox the file changes.
  expect_identical(attack_in(plain(), attacks[["chmod"]]), "OK")
  expect_identical(attack_in(plain(), attacks[["utime"]]), "OK")
  expect_false(identical(state(), before))
})

test_that("no tier can change the mode of a file it may only read, through an fd", {
  skip_without_python()
  dir <- withr::local_tempdir()
  f <- file.path(normalizePath(dir), "data.csv")
  writeLines("a,b", f)
  Sys.chmod(f, "0644")
  attack <- sprintf(paste(
    "fd = os.open('%s', os.O_RDONLY)",
    "os.fchmod(fd, 0o4777)",
    sep = "\n"
  ), f)
  for (tier in sandbox_tiers) {
    cfg <- if (tier == "fallback") build_sandbox_fallback(read_only = dir) else build_sandbox_config(read_only = dir)
    s <- tier_session(tier, sandbox = cfg)
    # The file is readable there: the grant works.
    expect_identical(read_in(s, f), "a,b", info = tier)
    expect_match(attack_in(s, attack), "^ERR", info = tier)
  }
  expect_identical(format(file.mode(f)), "644")
  expect_identical(attack_in(plain(), attack), "OK")
  expect_identical(format(file.mode(f)), "4777")
})

# IPC objects --------------------------------------------------------------

test_that("no tier can read or overwrite the host's SysV shared memory", {
  skip_without_python()
  make <- paste(
    "libc.shmat.restype = ctypes.c_void_p",
    "i = lib(libc.shmget, 0, 4096, 0o1000 | 0o600)",
    "a = libc.shmat(i, None, 0)",
    "ctypes.memmove(a, b'HOST-SECRET', 11)",
    "libc.shmdt(ctypes.c_void_p(a))",
    "print(i, end=' ')",
    sep = "\n"
  )
  id <- as.integer(strsplit(attack_on_host(make), " ")[[1]][[1]])
  withr::defer(attack_on_host("libc.shmctl(P, 0, None)", id))
  touch <- paste(
    "libc.shmat.restype = ctypes.c_void_p",
    "a = libc.shmat(P, None, 0)",
    "if a in (None, 2**64 - 1): raise OSError(ctypes.get_errno(), 'shmat')",
    "print(ctypes.string_at(a, 11).decode(), end=' ')",
    "ctypes.memmove(a, b'OVERWRITTEN', 11)",
    sep = "\n"
  )
  for (tier in sandbox_tiers) {
    got <- attack_in(tbox(tier), touch, id)
    expect_match(got, "^ERR", info = tier)
    expect_no_match(got, "HOST-SECRET", info = tier)
  }
  read <- "libc.shmat.restype = ctypes.c_void_p\nprint(ctypes.string_at(libc.shmat(P, None, 0), 11).decode(), end=' ')"
  expect_identical(attack_on_host(read, id), "HOST-SECRET OK")
  # Control: without the sandbox the segment is read and overwritten.
  expect_identical(attack_in(plain(), touch, id), "HOST-SECRET OK")
  expect_identical(attack_on_host(read, id), "OVERWRITTEN OK")
})

test_that("no tier can open the host's POSIX message queues", {
  skip_without_python()
  name <- paste0("/", random_token())
  rt <- paste(
    "try: rt = ctypes.CDLL('librt.so.1', use_errno=True)",
    "except OSError: rt = libc",
    sep = "\n"
  )
  make <- paste(rt, sprintf(paste(
    "q = lib(rt.mq_open, b'%s', 0o102, 0o600, None)",
    "lib(rt.mq_send, q, b'HOST-SECRET', 11, 0)",
    sep = "\n"
  ), name), sep = "\n")
  expect_identical(attack_on_host(make), "OK")
  withr::defer(attack_on_host(paste(rt, sprintf("rt.mq_unlink(b'%s')", name), sep = "\n")))
  receive <- paste(rt, sprintf(paste(
    "q = lib(rt.mq_open, b'%s', 0)",
    "buf = ctypes.create_string_buffer(8192)",
    "n = lib(rt.mq_receive, q, buf, 8192, None)",
    "print(buf.raw[:n].decode(), end=' ')",
    sep = "\n"
  ), name), sep = "\n")
  for (tier in sandbox_tiers) {
    got <- attack_in(tbox(tier), receive)
    expect_match(got, "^ERR", info = tier)
    expect_no_match(got, "HOST-SECRET", info = tier)
  }
  expect_identical(attack_in(plain(), receive), "HOST-SECRET OK")
})

# Watching files, terminals, personality, memory no process maps ------------

test_that("inotify, fanotify and memfd_create are unavailable in every tier", {
  skip_without_python()
  attacks <- c(
    inotify = "lib(libc.inotify_init1, 0)",
    fanotify = "lib(libc.fanotify_init, 0, 0)",
    memfd = "os.memfd_create('hidden')"
  )
  for (tier in sandbox_tiers) {
    for (how in names(attacks)) {
      expect_match(attack_in(tbox(tier), attacks[[how]]), "^ERR", info = paste(how, tier))
    }
  }
  expect_identical(attack_in(plain(), attacks[["inotify"]]), "OK")
  expect_identical(attack_in(plain(), attacks[["memfd"]]), "OK")
  # fanotify needs CAP_SYS_ADMIN on the host.
  if (identical(ps::ps_uids()[["effective"]], 0L)) {
    expect_identical(attack_in(plain(), attacks[["fanotify"]]), "OK")
  }
})

test_that("no tier can push input into a terminal (TIOCSTI) or change its personality", {
  skip_without_python()
  sti <- "fcntl.ioctl(0, termios.TIOCSTI, b'x')"
  persona <- "lib(libc.personality, 0x0040000)"
  for (tier in sandbox_tiers) {
    # EPERM from the filter, before the driver says stdin is no terminal.
    expect_identical(attack_in(tbox(tier), sti), "ERR 1", info = tier)
    expect_identical(attack_in(tbox(tier), persona), "ERR 1", info = tier)
  }
  expect_identical(attack_in(plain(), sti), "ERR 25")
  expect_identical(attack_in(plain(), persona), "OK")
})

# Sockets ------------------------------------------------------------------

# A python3 listener on the abstract socket "\0<name>" in `session`, in the
# background, greeting each client with "HELLO" (for about 30 s).
listen_in <- function(session, name) {
  server <- paste(
    "import socket",
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
    sprintf("s.bind('\\0%s')", name),
    "s.listen(5)",
    "s.settimeout(30)",
    "while True:",
    "    c, _ = s.accept()",
    "    c.sendall(b'HELLO')",
    "    c.close()",
    sep = "\n"
  )
  run_in(session, bquote({
    f <- tempfile(fileext = ".py")
    writeLines(.(server), f)
    system2("/usr/bin/python3", f, wait = FALSE, stdout = FALSE, stderr = FALSE)
    # The listener is up once /proc/net/unix shows it, or after 5 s.
    for (i in 1:50) {
      up <- tryCatch(any(grepl(.(name), readLines("/proc/net/unix"), fixed = TRUE)), error = function(e) FALSE)
      if (up) break
      Sys.sleep(0.1)
    }
  }))
}

test_that("one session cannot list another session's sockets in /proc/net/unix", {
  skip_without_python()
  sees <- function(session, name) {
    run_in(session, bquote(tryCatch(
      any(grepl(.(name), readLines("/proc/net/unix"), fixed = TRUE)),
      error = function(e) NA
    )))
  }
  for (tier in sandbox_tiers) {
    name <- random_token()
    a <- tier_session(tier)
    b <- tier_session(tier)
    listen_in(a, name)
    if (tier != "fallback") {
      # A lists its own socket: the listener is up.
      expect_true(sees(a, name), info = tier)
    }
    expect_false(isTRUE(sees(b, name)), info = tier)
  }
  # Control: two sessions without the sandbox share the host's list.
  name <- random_token()
  a <- new_session()
  listen_in(a, name)
  expect_true(sees(new_session(), name))
})

test_that("no tier can take over an abstract socket name that host programs use", {
  skip_without_python()
  for (tier in sandbox_tiers) {
    name <- random_token()
    listen_in(tbox(tier), name)
    host <- script_on_host("/usr/bin/python3", abstract_client_python(name))
    expect_false(identical(host$output, "HELLO"), info = tier)
  }
  name <- random_token()
  listen_in(plain(), name)
  expect_identical(script_on_host("/usr/bin/python3", abstract_client_python(name))$output, "HELLO")
})

# /etc/R -------------------------------------------------------------------

test_that("no tier can read the site files of /etc/R, only what R needs", {
  skip_if_no_sandbox()
  site <- c("/etc/R/Renviron.site", "/etc/R/Rprofile.site")
  site <- site[file.exists(site)]
  require_or_skip(length(site) > 0L, "this R has no site files in /etc/R")
  for (tier in sandbox_tiers) {
    for (path in site) {
      expect_match(read_in(tbox(tier), path)[[1]], "^ERROR:", info = paste(path, tier))
    }
    if (file.exists("/etc/R/Renviron")) {
      expect_identical(read_in(tbox(tier), "/etc/R/Renviron"), readLines("/etc/R/Renviron"), info = tier)
    }
  }
  for (path in site) {
    expect_identical(read_in(plain(), path), readLines(path), info = path)
  }
})
