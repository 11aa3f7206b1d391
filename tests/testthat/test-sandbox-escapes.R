# Escape attempts against real sandboxed sessions of the native Linux
# sandbox, forked from the warm zygote and started cold (see
# R/sandbox-linux.R and src/rust/core/src/sandbox/). The fallback tier has
# its own in test-sandbox-fallback.R; attacks on kernel objects the host
# shares run against every tier in test-sandbox-kernel.R.
#
# Every test starts real sessions (`sandbox = TRUE, sandbox_strict = TRUE`)
# and tries to get out. Sessions are shared where a test leaves no state
# that matters, as each sandboxed start costs about 0.3 s. Each escape test
# has a control on the host (or in an unsandboxed session) showing the
# attempt works there, so a sandbox that stopped holding would fail the
# test.

box <- lazy_session()
cold_box <- lazy_session(zygote = FALSE)
plain <- lazy_session(function(.env) new_session(.env = .env))

# The shared session of a kind, and a new one (closed at the end of the
# calling test).
sbox <- function(kind) if (kind == "warm") box() else cold_box()
kind_session <- function(kind, ..., .env = parent.frame()) {
  sandboxed_session(..., zygote = kind == "warm", .env = .env)
}

# The escape tests run against both kinds of sandboxed session: forked
# from the warm zygote (the default) and started cold through the
# launcher (used where no zygote can run).
for (kind in c("warm", "cold")) {
  # Escapes: the host's files ---------------------------------------------

  test_that(paste0("the sandbox cannot read a file in the host's home folder (", kind, " session)"), {
    skip_if_no_sandbox()
    f <- local_secret_file(path.expand("~"))
    expect_identical(read_in(plain(), f$path), f$secret)
    got <- read_in(sbox(kind), f$path)
    expect_match(got[[1]], "^ERROR:")
    expect_false(any(grepl(f$secret, got, fixed = TRUE)))
    expect_false(run_in(sbox(kind), bquote(file.exists(.(f$path)))))
  })

  test_that(paste0("the sandbox cannot read a file in the host's working directory (", kind, " session)"), {
    skip_if_no_sandbox()
    f <- local_secret_file(getwd())
    expect_identical(read_in(plain(), f$path), f$secret)
    got <- read_in(sbox(kind), f$path)
    expect_match(got[[1]], "^ERROR:")
    expect_false(any(grepl(f$secret, got, fixed = TRUE)))
    expect_false(run_in(sbox(kind), bquote(file.exists(.(getwd())))))
  })

  test_that(paste0("the sandbox cannot read /etc/shadow or /etc/passwd (", kind, " session)"), {
    skip_if_no_sandbox()
    for (path in c("/etc/shadow", "/etc/passwd")) {
      got <- read_in(sbox(kind), path)
      expect_match(got[[1]], "^ERROR:", info = path)
    }
    expect_false(any(run_in(sbox(kind), quote(file.exists(c("/etc/shadow", "/etc/passwd"))))))
    # Nor through a shell.
    out <- run_in(sbox(kind), quote(suppressWarnings(
      system("cat /etc/passwd /etc/shadow 2>&1", intern = TRUE)
    )))
    expect_false(any(grepl("^root:", out)))
  })

  test_that(paste0("the sandbox's root holds only the listed system folders (", kind, " session)"), {
    skip_if_no_sandbox()
    top <- run_in(sbox(kind), quote(list.files("/")))
    # The policy's read-only paths are mounted where they are; their top
    # folders may show (say /var when a library lives in /var/tmp), nothing
    # else.
    listed <- securer:::as_sandbox_config(TRUE)$read_only
    lib_tops <- vapply(strsplit(listed, "/"), `[`, "", 2L)
    allowed <- c("bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr")
    expect_true(all(top %in% c(allowed, lib_tops)))
    expect_false(any(setdiff(c("home", "root", "var", "run", "work", "sys", "mnt"), lib_tops) %in% top))
    expect_setequal(
      run_in(sbox(kind), quote(list.files("/dev"))),
      c("fd", "full", "null", "random", "stderr", "stdin", "stdout", "urandom", "zero")
    )
  })

  test_that(paste0("the sandbox cannot reach host files through /proc or links (", kind, " session)"), {
    skip_if_no_sandbox()
    f <- local_secret_file(path.expand("~"))
    got <- run_in(sbox(kind), bquote({
      file.symlink("/proc/1/root", file.path(tempdir(), "host-root"))
      file.symlink(.(f$path), file.path(tempdir(), "secret-link"))
      paths <- c(
        file.path("/proc/1/root", .(f$path)),
        file.path("/proc/self/root", .(f$path)),
        file.path(tempdir(), "host-root", .(f$path)),
        file.path(tempdir(), "secret-link")
      )
      vapply(paths, function(p) {
        tryCatch(paste(readLines(p, warn = FALSE), collapse = ""),
          error = function(e) "ERROR", warning = function(w) "ERROR"
        )
      }, character(1))
    }))
    expect_true(all(got == "ERROR"))
  })

  # Escapes: environment and processes ---------------------------------------

  test_that(paste0("the sandbox does not see the host's environment variables (", kind, " session)"), {
    skip_if_no_sandbox()
    secret <- random_token("sk-test-secret-")
    withr::local_envvar(OPENAI_API_KEY = secret)
    s <- kind_session(kind)
    expect_identical(run_in(s, quote(Sys.getenv("OPENAI_API_KEY"))), "")
    seen <- run_in(s, bquote({
      own <- c(paste(names(Sys.getenv()), Sys.getenv()), readLines("/proc/self/environ", warn = FALSE))
      procs <- list.files("/proc", pattern = "^[0-9]+$", full.names = TRUE)
      others <- unlist(lapply(file.path(procs, "environ"), function(p) {
        tryCatch(readLines(p, warn = FALSE), error = function(e) character(), warning = function(w) character())
      }))
      shell <- suppressWarnings(system(
        "for p in /proc/[0-9]*; do cat $p/environ 2>/dev/null; echo; done",
        intern = TRUE
      ))
      c(
        own = any(grepl(.(secret), own, fixed = TRUE)),
        other = any(grepl(.(secret), others, fixed = TRUE)),
        shell = any(grepl(.(secret), shell, fixed = TRUE)),
        environ_read = length(others) > 0
      )
    }))
    expect_false(seen[["own"]])
    expect_false(seen[["other"]])
    expect_false(seen[["shell"]])
    # The loop did read something (its own environ), so it was not vacuous.
    expect_true(seen[["environ_read"]])
  })

  test_that(paste0("the sandbox gets only the allowlisted environment (", kind, " session)"), {
    skip_if_no_sandbox()
    env <- run_in(sbox(kind), quote(Sys.getenv()))
    expect_identical(env[["HOME"]], "/tmp")
    expect_false(any(grepl("KEY|TOKEN|SECRET|PASSWORD", names(env))))
    expect_false(any(c("SECURER_TOKEN", "SECURER_DLL", "USER", "LOGNAME", "SSH_AUTH_SOCK") %in% names(env)))
  })

  test_that(paste0("the sandbox cannot see the host's processes in /proc (", kind, " session)"), {
    skip_if_no_sandbox()
    host <- Sys.getpid()
    expect_true(file.exists(sprintf("/proc/%d/status", host)))
    expect_false(run_in(sbox(kind), bquote(file.exists(sprintf("/proc/%d/status", .(host))))))
    pids <- run_in(sbox(kind), quote(list.files("/proc", pattern = "^[0-9]+$")))
    expect_lte(length(pids), 3L)
    expect_true(as.character(run_in(sbox(kind), quote(Sys.getpid()))) %in% pids)
  })

  test_that(paste0("the sandbox cannot signal the host R process (", kind, " session)"), {
    skip_if_no_sandbox()
    host <- Sys.getpid()
    expect_false(run_in(sbox(kind), bquote(tools::pskill(.(host), 0L))))
    status <- run_in(sbox(kind), bquote(suppressWarnings(system(.(paste("kill -0", host, "2>/dev/null"))))))
    expect_false(identical(status, 0L))
    expect_true(pid_running(host))
  })

  test_that(paste0("the sandbox cannot kill its launcher, init or zygote on the host (", kind, " session)"), {
    skip_if_no_sandbox()
    s <- kind_session(kind)
    procs <- c(process_tree(s$pid()), host_ancestors(s$pid()))
    pids <- vapply(procs, ps::ps_pid, integer(1))
    expect_gte(length(pids), 2L)
    sent <- run_in(s, bquote(tools::pskill(.(pids), tools::SIGKILL)))
    expect_false(any(sent))
    expect_true(all(vapply(procs, handle_running, logical(1))))
    expect_identical(run_in(s, quote(1 + 1)), 2)
  })

  test_that(paste0("one session cannot signal another session's processes (", kind, " session)"), {
    skip_if_no_sandbox()
    a <- sbox(kind)
    b <- kind_session(kind)
    tree <- process_tree(b$pid())
    pids <- vapply(tree, ps::ps_pid, integer(1))
    expect_gte(length(pids), 2L)
    expect_false(any(run_in(a, bquote(tools::pskill(.(pids), tools::SIGKILL)))))
    status <- run_in(a, bquote(suppressWarnings(
      system(.(paste("kill -9", paste(pids, collapse = " "), "2>/dev/null")))
    )))
    expect_false(identical(status, 0L))
    expect_true(all(vapply(tree, handle_running, logical(1))))
    expect_identical(run_in(b, quote(1 + 1)), 2)
  })

  test_that(paste0("one session cannot see files another session left in its /tmp (", kind, " session)"), {
    skip_if_no_sandbox()
    a <- sbox(kind)
    b <- kind_session(kind)
    marker <- random_token()
    expect_true(run_in(a, bquote({
      writeLines(.(marker), "/tmp/marker")
      file.exists("/tmp/marker")
    })))
    expect_false(run_in(b, quote(file.exists("/tmp/marker"))))
    expect_false(any(grepl(marker, run_in(b, quote(list.files("/tmp", recursive = TRUE))))))
  })

  test_that(paste0("sessions cannot share SysV shared memory or message queues (", kind, " session)"), {
    skip_if_no_sandbox()
    a <- sbox(kind)
    b <- kind_session(kind)
    skip_if_not(run_in(a, quote(file.exists("/usr/bin/perl"))), "no perl in the sandbox")
    key <- sample(0x10000:0x7fffffff, 1)
    data <- random_token("shm-")
    put <- script_in(a, "/usr/bin/perl", sprintf(paste(
      "use IPC::SysV qw(IPC_CREAT);",
      "my $id = shmget(%d, 64, IPC_CREAT | 0666); defined $id or die \"shmget: $!\\n\";",
      "shmwrite($id, \"%s\", 0, %d) or die \"shmwrite: $!\\n\";",
      "my $q = msgget(%d, IPC_CREAT | 0666); defined $q or die \"msgget: $!\\n\";",
      "msgsnd($q, pack(\"l! a*\", 1, \"%s\"), 0) or die \"msgsnd: $!\\n\";",
      "print \"stored\\n\";"
    ), key, data, nchar(data), key, data))
    # The writer's own segment and queue work: the channel exists in one session.
    expect_identical(put$output, "stored")
    get <- script_in(b, "/usr/bin/perl", sprintf(paste(
      "my $id = shmget(%d, 64, 0); my $got = '';",
      "if (defined $id) { shmread($id, $got, 0, %d) }",
      "my $q = msgget(%d, 0); my $m = '';",
      "if (defined $q) { msgrcv($q, $m, 64, 0, 04000) }",
      "print \"shm=$got msg=$m\\n\";"
    ), key, nchar(data), key))
    expect_length(get$output, 1L)
    expect_false(grepl(data, get$output, fixed = TRUE))
  })

  test_that(paste0("sessions cannot reach each other's abstract UNIX sockets (", kind, " session)"), {
    skip_if_no_sandbox()
    a <- sbox(kind)
    b <- kind_session(kind)
    skip_if_not(run_in(a, quote(file.exists("/usr/bin/python3"))), "no python3 in the sandbox")
    name <- random_token()
    server <- paste(
      "import socket",
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
      sprintf("s.bind('\\0%s')", name),
      "s.listen(5)",
      "s.settimeout(20)",
      "while True:",
      "    c, _ = s.accept()",
      "    c.sendall(b'HELLO')",
      "    c.close()",
      sep = "\n"
    )
    run_in(b, bquote({
      f <- file.path(tempdir(), "server.py")
      writeLines(.(server), f)
      system2("/usr/bin/python3", f, wait = FALSE, stdout = FALSE, stderr = FALSE)
      Sys.sleep(0.5)
    }))
    # B's own client reaches B's server: the listener is up.
    expect_identical(script_in(b, "/usr/bin/python3", abstract_client_python(name))$output, "HELLO")
    res <- script_in(a, "/usr/bin/python3", abstract_client_python(name))
    expect_false(identical(res$status, 0L))
    expect_false(any(grepl("HELLO", res$output)))
  })

  test_that(paste0("the sandbox cannot ptrace: strace and gdb fail to attach (", kind, " session)"), {
    skip_if_no_sandbox()
    s <- sbox(kind)
    expect_identical(
      run_in(s, quote(sub("^TracerPid:\\s*", "", grep("^TracerPid", readLines("/proc/self/status"), value = TRUE)))),
      "0"
    )
    tools <- programs_in(s, c("/usr/bin/strace", "/usr/bin/gdb"))
    skip_if(length(tools) == 0L, "neither strace nor gdb exists in the sandbox")
    if ("/usr/bin/strace" %in% tools) {
      out <- run_in(s, quote(suppressWarnings(system("strace -f true 2>&1", intern = TRUE))))
      expect_false(is.null(attr(out, "status")))
      expect_true(any(grepl("Operation not permitted", out)))
    }
    if ("/usr/bin/gdb" %in% tools) {
      out <- run_in(s, quote(suppressWarnings(system(
        paste("gdb -batch -p", Sys.getpid(), "2>&1"),
        intern = TRUE
      ))))
      expect_true(any(grepl("ptrace: Operation not permitted", out, fixed = TRUE)))
    }
  })

  test_that(paste0("the sandbox cannot create new namespaces (unshare) (", kind, " session)"), {
    skip_if_no_sandbox()
    s <- sbox(kind)
    skip_if_not(run_in(s, quote(file.exists("/usr/bin/unshare"))), "no unshare in the sandbox")
    for (flags in c("--user", "--user --map-root-user", "--mount", "--net", "--pid --fork")) {
      out <- run_in(s, bquote(suppressWarnings(
        system(.(paste("unshare", flags, "true 2>&1")), intern = TRUE)
      )))
      expect_false(is.null(attr(out, "status")), info = flags)
    }
  })

  test_that(paste0("the sandbox holds no capabilities and has no_new_privs set (", kind, " session)"), {
    skip_if_no_sandbox()
    status <- run_in(sbox(kind), quote(readLines("/proc/self/status")))
    field <- function(name) sub("^[^:]+:\\s*", "", grep(paste0("^", name, ":"), status, value = TRUE))
    for (cap in c("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")) {
      expect_identical(field(cap), "0000000000000000", info = cap)
    }
    expect_identical(field("NoNewPrivs"), "1")
    expect_identical(field("Seccomp"), "2")
  })

  # Escapes: the network ------------------------------------------------------

  test_that(paste0("the sandbox cannot open a TCP connection to a host listener (", kind, " session)"), {
    skip_if_no_sandbox()
    port <- local_tcp_listener()
    expect_true(host_can_connect(port))
    got <- run_in(sbox(kind), bquote(tryCatch(
      {
        con <- socketConnection("127.0.0.1", .(port), timeout = 2)
        close(con)
        "CONNECTED"
      },
      error = function(e) paste("ERROR:", conditionMessage(e)),
      warning = function(w) paste("ERROR:", conditionMessage(w))
    )))
    expect_match(got, "^ERROR:")
  })

  test_that(paste0("the sandbox cannot send UDP packets (", kind, " session)"), {
    skip_if_no_sandbox()
    s <- sbox(kind)
    skip_if_not(run_in(s, quote(file.exists("/bin/bash"))), "no bash in the sandbox")
    port <- sample(20000:60000, 1)
    script <- sprintf("echo hi > /dev/udp/127.0.0.1/%d", port)
    # On the host, bash sends the datagram (nobody needs to listen).
    skip_if_not(file.exists("/bin/bash"))
    expect_identical(script_on_host("/bin/bash", script)$status, 0L)
    res <- script_in(s, "/bin/bash", script)
    expect_false(identical(res$status, 0L))
    expect_true(any(grepl("not supported|not permitted", res$output)))
  })

  test_that(paste0("the sandbox cannot reach a host abstract UNIX socket (", kind, " session)"), {
    skip_if_no_sandbox()
    s <- sbox(kind)
    name <- local_abstract_listener()
    host <- script_on_host(Sys.which("python3"), abstract_client_python(name))
    expect_identical(host$output, "HELLO")
    clients <- programs_in(s, c("/usr/bin/python3", "/usr/bin/perl"))
    skip_if(length(clients) == 0L, "neither python3 nor perl exists in the sandbox")
    for (client in clients) {
      script <- if (endsWith(client, "perl")) abstract_client_perl(name) else abstract_client_python(name)
      res <- script_in(s, client, script)
      expect_false(identical(res$status, 0L), info = client)
      expect_false(any(grepl("HELLO", res$output)), info = client)
    }
  })

  test_that(paste0("the sandbox has no network interface but loopback (", kind, " session)"), {
    skip_if_no_sandbox()
    # Opening any non-UNIX socket fails, so even listing interfaces does.
    got <- run_in(sbox(kind), quote(tryCatch(
      {
        srv <- serverSocket(23456L)
        close(srv)
        "LISTENING"
      },
      error = function(e) paste("ERROR:", conditionMessage(e)),
      warning = function(w) paste("ERROR:", conditionMessage(w))
    )))
    expect_match(got, "^ERROR:")
  })

  # Escapes: writing ----------------------------------------------------------

  test_that(paste0("the sandbox cannot write outside its /tmp (", kind, " session)"), {
    skip_if_no_sandbox()
    targets <- unique(c(path.expand("~"), getwd(), .libPaths(), R.home(), R.home("library")))
    name <- random_token("securer-write-")
    paths <- file.path(targets, name)
    withr::defer(unlink(paths))
    made <- run_in(sbox(kind), bquote(vapply(.(paths), function(p) {
      isTRUE(suppressWarnings(tryCatch(file.create(p), error = function(e) FALSE)))
    }, logical(1))))
    expect_false(any(made))
    expect_false(any(file.exists(paths)))
  })

  test_that(paste0("the sandbox cannot write to R's libraries or R home via a shell (", kind, " session)"), {
    skip_if_no_sandbox()
    name <- random_token("securer-write-")
    paths <- file.path(unique(c(.libPaths(), R.home())), name)
    withr::defer(unlink(paths))
    status <- run_in(sbox(kind), bquote(suppressWarnings(system(
      .(paste(paste("touch", shQuote(paths), "2>/dev/null"), collapse = " && "))
    ))))
    expect_false(identical(status, 0L))
    expect_false(any(file.exists(paths)))
  })
}
