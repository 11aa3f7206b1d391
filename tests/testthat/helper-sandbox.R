# Shared helpers of the sandbox tests: configuration checks (the
# test-sandbox*.R files) and real sandboxed sessions (escape attempts in
# test-sandbox-escapes.R, test-sandbox-fallback.R, test-sandbox-kernel.R;
# resource limits in test-limits.R).

# An input error (securer_input_error, a securer_error) whose message holds
# each of `pattern`.
expect_input_error <- function(expr, pattern = character()) {
  err <- expect_error(expr, class = "securer_input_error")
  expect_s3_class(err, "securer_error")
  for (p in pattern) {
    expect_match(conditionMessage(err), p, fixed = TRUE)
  }
  invisible(err)
}

to_json <- function(x) {
  as.character(jsonlite::toJSON(x, auto_unbox = TRUE, null = "null", digits = NA))
}

# Is `path` visible through one of `paths` (equal to or inside one)?
exposes <- function(paths, path) {
  any(path_is_within(path, paths))
}

# The lines of one multi-line SBPL rule, from "(head" to its closing ")".
sbpl_block <- function(profile, head) {
  lines <- strsplit(profile, "\n", fixed = TRUE)[[1]]
  start <- which(lines == paste0("(", head))
  if (length(start) != 1L) {
    return(character())
  }
  end <- start + which(endsWith(lines[-seq_len(start)], "))"))[[1]]
  lines[(start + 1L):end]
}

local_dir <- function(name = "dir", env = parent.frame()) {
  dir <- withr::local_tempdir(pattern = name, .local_envir = env)
  normalizePath(dir, winslash = "/")
}

# Can this machine run the full native sandbox? Probed once per test run by
# starting (and closing) one strict session.
sandbox_probe <- new.env(parent = emptyenv())

full_sandbox_available <- function() {
  if (is.null(sandbox_probe$full)) {
    sandbox_probe$full <- FALSE
    if (identical(Sys.info()[["sysname"]], "Linux")) {
      sandbox_probe$full <- tryCatch(
        {
          s <- SecureSession$new(sandbox = TRUE, sandbox_strict = TRUE, limits = list())
          s$close()
          TRUE
        },
        error = function(e) {
          sandbox_probe$why <- conditionMessage(e)
          FALSE
        }
      )
    }
  }
  sandbox_probe$full
}

# A precondition of an escape test. In CI (SECURER_REQUIRE_SANDBOX=true) a
# missing one fails: a skipped escape test proves nothing.
require_or_skip <- function(ok, why) {
  if (!isTRUE(ok) && identical(Sys.getenv("SECURER_REQUIRE_SANDBOX"), "true")) {
    fail(why)
  }
  skip_if_not(isTRUE(ok), why)
}

skip_if_no_sandbox <- function() {
  skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the native sandbox is Linux only")
  if (!full_sandbox_available() && identical(Sys.getenv("SECURER_REQUIRE_SANDBOX"), "true")) {
    # CI sets this: there, a sandbox that cannot start is a failure, not a
    # reason to skip every escape test.
    fail(paste("the full sandbox cannot start:", sandbox_probe$why))
  }
  skip_if_not(
    full_sandbox_available(),
    paste("the full sandbox cannot start here:", sandbox_probe$why)
  )
}

# The fallback tier needs Landlock (its filesystem and network layer).
skip_if_no_landlock <- function(session) {
  info <- session$sandbox_info()
  skip_if_not(
    isTRUE(info$active[info$layer == "landlock"]),
    "Landlock is not available: the fallback tier cannot restrict files here"
  )
}

# A strict sandboxed session, closed when `.env` ends (a test, or the file
# when called at the top level of a test file). `zygote = FALSE` starts it
# cold through the launcher instead of forking it from the warm zygote.
sandboxed_session <- function(..., sandbox = TRUE, zygote = TRUE, .env = parent.frame()) {
  withr::local_options(securer.zygote = zygote)
  session <- SecureSession$new(sandbox = sandbox, sandbox_strict = TRUE, ...)
  withr::defer(session$close(), envir = .env)
  session
}

# A session made on first use and reused (the caller's environment, usually
# the test file, closes it). `make` is called with `.env`.
lazy_session <- function(make = sandboxed_session, ..., .env = parent.frame()) {
  force(.env)
  session <- NULL
  args <- list(...)
  function() {
    if (is.null(session)) {
      session <<- do.call(make, c(args, list(.env = .env)))
    }
    session
  }
}

# Forgets which missing-layer warnings were shown, until `.env` ends, so the
# "warns once" behaviour does not depend on the order of the tests.
local_fresh_warnings <- function(.env = parent.frame()) {
  old <- securer:::shown_layer_warnings(character())
  withr::defer(securer:::shown_layer_warnings(old), envir = .env)
  invisible()
}

# A session of the fallback tier (no namespaces): Landlock, seccomp,
# limits and a clean environment. Its one-time warning is expected.
fallback_session <- function(..., sandbox = build_sandbox_fallback(), .env = parent.frame()) {
  # Until `.env` ends, as the session's replacements warn too.
  local_fresh_warnings(.env = .env)
  session <- suppressWarnings(
    SecureSession$new(sandbox = sandbox, ...),
    classes = "securer_sandbox_warning"
  )
  withr::defer(session$close(), envir = .env)
  session
}

# Runs a quoted expression (build it with bquote() to splice in host
# values) in the session and returns its value without the output attribute.
run_in <- function(session, expr, timeout = 20) {
  code <- paste(deparse(expr, width.cutoff = 500L), collapse = "\n")
  strip_output(session$execute(code, timeout = timeout))
}

# Reads `path` in the session: its lines, or "ERROR: <why>".
read_in <- function(session, path) {
  run_in(session, bquote(
    tryCatch(readLines(.(path), warn = FALSE),
      error = function(e) paste("ERROR:", conditionMessage(e)),
      warning = function(w) paste("ERROR:", conditionMessage(w))
    )
  ))
}

# Runs `script` with `interpreter` inside the session (the script goes
# through a file, so no shell quoting is involved): list(status, output).
script_in <- function(session, interpreter, script, timeout = 20) {
  run_in(session, bquote({
    f <- tempfile(fileext = ".script")
    writeLines(.(script), f)
    out <- suppressWarnings(system2(.(interpreter), f, stdout = TRUE, stderr = TRUE))
    status <- attr(out, "status")
    unlink(f)
    list(status = if (is.null(status)) 0L else as.integer(status), output = as.character(out))
  }), timeout = timeout)
}

# The same, on the host: the control that shows the attempt can succeed.
script_on_host <- function(interpreter, script) {
  f <- withr::local_tempfile(fileext = ".script")
  writeLines(script, f)
  out <- suppressWarnings(system2(interpreter, f, stdout = TRUE, stderr = TRUE))
  status <- attr(out, "status")
  list(status = if (is.null(status)) 0L else as.integer(status), output = as.character(out))
}

# Which of these programs exist inside the session?
programs_in <- function(session, paths) {
  paths[run_in(session, bquote(file.exists(.(paths))))]
}

random_token <- function(prefix = "securer-test-") {
  paste0(prefix, paste(sample(c(letters, 0:9), 16, replace = TRUE), collapse = ""))
}

# A file holding a random secret in `dir`, deleted when `.env` ends.
# Under R CMD check on CRAN (no NOT_CRAN), tests may not write to the home
# folder: those skip.
local_secret_file <- function(dir, .env = parent.frame()) {
  if (identical(normalizePath(dir), normalizePath(path.expand("~")))) {
    skip_if(
      nzchar(Sys.getenv("_R_CHECK_PACKAGE_NAME_")) && !isTRUE(as.logical(Sys.getenv("NOT_CRAN"))),
      "R CMD check on CRAN: no files in the home folder"
    )
  }
  path <- withr::local_tempfile(tmpdir = dir, pattern = "securer-secret-", .local_envir = .env)
  secret <- random_token("secret-")
  writeLines(secret, path)
  list(path = normalizePath(path), secret = secret)
}

# A TCP listener on the host (all interfaces, so 127.0.0.1 too), on a free
# port, closed when `.env` ends. Returns the port.
local_tcp_listener <- function(.env = parent.frame()) {
  for (i in 1:50) {
    port <- sample(20000:60000, 1)
    srv <- tryCatch(suppressWarnings(serverSocket(port)), error = function(e) NULL)
    if (!is.null(srv)) {
      withr::defer(close(srv), envir = .env)
      return(port)
    }
  }
  require_or_skip(FALSE, "no free TCP port for a listener")
}

# Can the host itself connect to 127.0.0.1:port?
host_can_connect <- function(port) {
  con <- tryCatch(
    suppressWarnings(socketConnection("127.0.0.1", port, timeout = 2)),
    error = function(e) NULL
  )
  if (is.null(con)) {
    return(FALSE)
  }
  close(con)
  TRUE
}

# A python3 process on the host listening on the abstract UNIX socket
# "\0<name>" and greeting each client with "HELLO"; killed when `.env` ends.
local_abstract_listener <- function(.env = parent.frame()) {
  skip_if_not_installed("processx")
  python <- Sys.which("python3")
  require_or_skip(nzchar(python), "python3 is needed on the host for an abstract socket listener")
  name <- random_token()
  script <- paste(
    "import socket",
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
    sprintf("s.bind('\\0%s')", name),
    "s.listen(5)",
    "print('ready', flush=True)",
    "while True:",
    "    c, _ = s.accept()",
    "    c.sendall(b'HELLO')",
    "    c.close()",
    sep = "\n"
  )
  proc <- processx::process$new(python, c("-c", script), stdout = "|", stderr = "2>&1")
  withr::defer(proc$kill(), envir = .env)
  ready <- character()
  deadline <- Sys.time() + 10
  while (!"ready" %in% ready && proc$is_alive() && Sys.time() < deadline) {
    proc$poll_io(200)
    ready <- c(ready, proc$read_output_lines())
  }
  require_or_skip(
    "ready" %in% ready,
    paste("the abstract socket listener did not start:", paste(ready, collapse = " "))
  )
  name
}

# Python and Perl clients for the abstract socket: print what the server
# sent, or fail.
abstract_client_python <- function(name) {
  paste(
    "import socket",
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
    sprintf("s.connect('\\0%s')", name),
    "print(s.recv(5).decode())",
    sep = "\n"
  )
}

abstract_client_perl <- function(name) {
  paste(
    "use IO::Socket::UNIX;",
    sprintf("my $s = IO::Socket::UNIX->new(Peer => \"\\0%s\") or die \"cannot connect: $!\\n\";", name),
    "my $got; $s->recv($got, 5); print \"$got\\n\";",
    sep = "\n"
  )
}

# ps handles of every process under host pid `pid` (itself included).
process_tree <- function(pid) {
  h <- tryCatch(ps::ps_handle(as.integer(pid)), error = function(e) NULL)
  if (is.null(h)) {
    return(list())
  }
  kids <- tryCatch(ps::ps_children(h, recursive = TRUE), error = function(e) list())
  c(list(h), kids)
}

# ps handles of the host processes between this R process and host pid
# `pid` (launcher, namespace init, zygote, ...), `pid` excluded.
host_ancestors <- function(pid) {
  out <- list()
  h <- tryCatch(ps::ps_parent(ps::ps_handle(as.integer(pid))), error = function(e) NULL)
  while (!is.null(h) && !ps::ps_pid(h) %in% c(0L, 1L, Sys.getpid())) {
    out <- c(out, list(h))
    h <- tryCatch(ps::ps_parent(h), error = function(e) NULL)
  }
  out
}

# Is the process behind handle `h` still running (not a zombie, and the
# same process: ps checks the start time)?
handle_running <- function(h) {
  isTRUE(tryCatch(
    ps::ps_is_running(h) && !ps::ps_status(h) %in% c("zombie", "dead"),
    error = function(e) FALSE
  ))
}

# Waits up to `timeout` seconds for every process in `handles` to end.
wait_handles_gone <- function(handles, timeout = 10) {
  deadline <- Sys.time() + timeout
  repeat {
    alive <- Filter(handle_running, handles)
    if (length(alive) == 0L || Sys.time() > deadline) {
      return(length(alive) == 0L)
    }
    Sys.sleep(0.1)
  }
}

# A fork bomb that ends by itself even if nothing contained it: at most
# 2^13 processes, each gone a few seconds later. It runs in the background
# (the code returns at once).
fork_bomb <- quote(system(
  "bash -c 'b() { if [ $1 -lt 12 ]; then b $(($1 + 1)) & b $(($1 + 1)) & fi; sleep 3; }; b 0' >/dev/null 2>&1",
  wait = FALSE
))

# Runs the bomb only in a session whose namespaces are active and whose
# process limit is `nproc` (never on the host, never as host root).
start_fork_bomb <- function(session, nproc) {
  info <- session$sandbox_info()
  skip_if_not(isTRUE(info$active[info$layer == "namespaces"]), "no namespaces: no fork bomb")
  skip_if_not(run_in(session, quote(file.exists("/bin/bash"))), "no bash in the sandbox")
  limit <- run_in(session, quote(grep("^Max processes", readLines("/proc/self/limits"), value = TRUE)))
  fields <- strsplit(limit, "[[:space:]]{2,}")[[1]]
  skip_if_not(identical(fields[[2]], as.character(nproc)), "the process limit is not in place")
  run_in(session, fork_bomb)
  invisible()
}

# The soft limits of the session's R process, from /proc/self/limits, by
# their /proc names ("Max cpu time", "Max open files", ...).
limits_in <- function(session) {
  lines <- run_in(session, quote(readLines("/proc/self/limits")))[-1]
  fields <- strsplit(lines, "[[:space:]]{2,}")
  stats::setNames(
    vapply(fields, function(f) f[[2]], character(1)),
    vapply(fields, function(f) f[[1]], character(1))
  )
}

# Was the session forked from a warm zygote (rather than started cold)?
zygote_session <- function(session) {
  info <- session$sandbox_info()
  isTRUE(grepl("zygote", info$detail[info$layer == "namespaces"], fixed = TRUE))
}

# The three tiers a sandboxed session can run in: forked from the warm
# zygote (the default), the native sandbox started cold, and the fallback
# tier without namespaces.
sandbox_tiers <- c("warm", "cold", "fallback")

# A session of `tier`, closed when `.env` ends. Native tiers are strict;
# the fallback tier must have Landlock and seccomp, which it stands on.
tier_session <- function(tier, ..., .env = parent.frame()) {
  if (tier == "fallback") {
    s <- fallback_session(..., .env = .env)
    info <- s$sandbox_info()
    require_or_skip(
      all(info$active[info$layer %in% c("landlock", "seccomp")]),
      "the fallback tier needs Landlock and seccomp here"
    )
    return(s)
  }
  sandboxed_session(..., zygote = tier == "warm", .env = .env)
}

# A sacrificial process on the host (`sleep`), killed when `.env` ends: the
# target of attacks on other processes, never the test process itself.
local_victim <- function(.env = parent.frame()) {
  skip_if_not_installed("processx")
  p <- processx::process$new("sleep", "600")
  withr::defer(p$kill(), envir = .env)
  p
}

# Python code that runs one attack and prints "OK", or "ERR <errno>".
# `attack` is the body of a function of no argument; `pid` is its target.
py_attack <- function(attack, pid = 0L) {
  paste(
    "import ctypes, fcntl, os, platform, resource, signal, termios",
    "libc = ctypes.CDLL(None, use_errno=True)",
    "libc.syscall.restype = ctypes.c_long",
    "NR = {",
    "  'x86_64': dict(kcmp=312, pidfd_getfd=438, process_madvise=440, migrate_pages=256,",
    "                 move_pages=279, ioprio_set=251, ioprio_get=252, tgkill=234, rt_sigqueueinfo=129),",
    "  'aarch64': dict(kcmp=272, pidfd_getfd=438, process_madvise=440, migrate_pages=238,",
    "                  move_pages=239, ioprio_set=30, ioprio_get=31, tgkill=131, rt_sigqueueinfo=138),",
    "}[platform.machine()]",
    "def sc(name, *args):",
    "    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])",
    "    if r < 0: raise OSError(ctypes.get_errno(), name)",
    "    return r",
    "def lib(fn, *args):",
    "    r = fn(*args)",
    "    if r == -1: raise OSError(ctypes.get_errno(), 'libc')",
    "    return r",
    sprintf("P = %d", as.integer(pid)),
    "def attack():",
    paste0("    ", strsplit(attack, "\n", fixed = TRUE)[[1]], collapse = "\n"),
    "try:",
    "    attack()",
    "    print('OK')",
    "except OSError as e:",
    "    print('ERR', e.errno)",
    sep = "\n"
  )
}

# Runs an attack in a session with python3: "OK" or "ERR <errno>".
attack_in <- function(session, attack, pid = 0L) {
  res <- script_in(session, "/usr/bin/python3", py_attack(attack, pid))
  paste(res$output, collapse = " ")
}

# The same on the host.
attack_on_host <- function(attack, pid = 0L) {
  paste(script_on_host("/usr/bin/python3", py_attack(attack, pid))$output, collapse = " ")
}

# A field of /proc/<pid>/status or /proc/<pid>/limits of a host process.
proc_field <- function(pid, file, field) {
  lines <- readLines(sprintf("/proc/%d/%s", as.integer(pid), file))
  line <- grep(paste0("^", field), lines, value = TRUE)
  trimws(sub(paste0("^", field, ":?"), "", line))
}
