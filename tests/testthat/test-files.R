# Files in and out of a session (R/files.R, the runtime's file requests and
# src/rust/core/src/files.rs): uploads, downloads and listings of the
# session's writable space, in every tier (forked from the warm zygote,
# native cold start, fallback tier, no sandbox) and in pool sessions; with
# the attacks: paths out of the space, links that leave it, oversize files,
# a file swapped for a link, and a child that lies in its answers.

file_tiers <- c("warm", "cold", "fallback", "none")
tier_sessions <- list(
  warm = lazy_session(function(..., .env) {
    s <- tier_session("warm", .env = .env)
    require_or_skip(zygote_session(s), "the session was not forked from the zygote")
    s
  }),
  cold = lazy_session(tier_session, "cold"),
  fallback = lazy_session(tier_session, "fallback"),
  none = lazy_session(function(..., .env) new_session(.env = .env))
)
file_session <- function(tier) {
  if (tier != "none") skip_if_no_sandbox()
  tier_sessions[[tier]]()
}

# The session's root as its code sees it (its working directory).
root_of <- function(s) run_in(s, quote(getwd()))

# A file on the host holding `lines`, removed when the test ends.
host_file <- function(lines = c("a,b", "1,2", "3,4"), .env = parent.frame()) {
  f <- withr::local_tempfile(fileext = ".csv", .local_envir = .env)
  writeLines(lines, f)
  f
}

# Leftovers of interrupted writes in `dir`.
partial_files <- function(dir) list.files(dir, pattern = "^\\.securer-.*\\.part$", all.files = TRUE)

# A file outside every writable space that sandboxed code can read: R's
# own Renviron.
readable_outside <- file.path(R.home("etc"), "Renviron")

# Sandboxed code that makes the runtime answer file requests with
# `fn(req)` (it can fall back on `rt$real_file_op(req)`), and the code that
# undoes it.
tamper_code <- function(fn) {
  paste(
    find_runtime,
    "if (is.null(rt$real_file_op)) rt$real_file_op <- rt$file_op",
    paste0("rt$file_op <- ", fn),
    "'tampered'",
    sep = "\n"
  )
}
untamper_code <- paste(find_runtime, "if (!is.null(rt$real_file_op)) rt$file_op <- rt$real_file_op", "'restored'", sep = "\n")

# A session whose runtime answers with `fn` during `code`, restored after.
with_tampered <- function(s, fn, code) {
  s$execute(tamper_code(fn))
  on.exit(s$execute(untamper_code))
  code
}

for (tier in file_tiers) {
  test_that(paste0("a CSV uploaded by the host is read by the code, and its output downloads (", tier, ")"), {
    s <- file_session(tier)
    csv <- host_file()
    root <- root_of(s)
    expect_identical(s$upload(csv, "data.csv"), file.path(root, "data.csv"))
    expect_identical(run_in(s, quote(nrow(read.csv("data.csv")))), 2L)
    s$execute("d <- read.csv('data.csv'); d$c <- d$a + d$b; write.csv(d, 'out.csv', row.names = FALSE)")
    out <- withr::local_tempfile(fileext = ".csv")
    expect_identical(s$download("out.csv", out), out)
    expect_identical(read.csv(out), data.frame(a = c(1L, 3L), b = c(2L, 4L), c = c(3L, 7L)))
    # The same through absolute paths in the session, and by file name.
    s$upload(csv, file.path(root, "again.csv"))
    expect_identical(run_in(s, quote(readLines("again.csv"))), readLines(csv))
    dir <- withr::local_tempdir()
    expect_identical(s$download(file.path(root, "out.csv"), dir), file.path(dir, "out.csv"))
    expect_identical(partial_files(dir), character())
    listed <- s$files()
    expect_named(listed, c("path", "type", "size", "modified"))
    row <- listed[listed$path == file.path(root, "data.csv"), ]
    expect_identical(row$type, "file")
    expect_identical(row$size, file.size(csv))
    expect_s3_class(listed$modified, "POSIXct")
  })

  test_that(paste0("uploads go into subfolders, replace files, and listings recurse without following links (", tier, ")"), {
    s <- file_session(tier)
    s$execute("dir.create('sub', showWarnings = FALSE); file.symlink('/', 'sub/up')")
    s$upload(host_file("one"), "sub/x.txt")
    s$upload(host_file("two"), "sub/x.txt")
    expect_identical(run_in(s, quote(readLines("sub/x.txt"))), "two")
    root <- root_of(s)
    # Into a folder, under the file's own name.
    f <- host_file("three")
    expect_identical(s$upload(f, "sub"), file.path(root, "sub", basename(f)))
    expect_identical(run_in(s, bquote(readLines(file.path("sub", .(basename(f)))))), "three")
    s$execute(sprintf("unlink(file.path('sub', %s))", deparse(basename(f))))
    flat <- s$files("sub")
    expect_identical(flat$path, file.path(root, "sub", c("up", "x.txt")))
    expect_identical(flat$type, c("symlink", "file"))
    deep <- s$files(recursive = TRUE)
    expect_true(file.path(root, "sub", "x.txt") %in% deep$path)
    expect_false(any(startsWith(deep$path, file.path(root, "sub", "up", ""))))
    expect_warning(few <- s$files(recursive = TRUE, max_entries = 1), class = "securer_file_warning")
    expect_identical(nrow(few), 1L)
  })

  test_that(paste0("paths outside the writable space are refused (", tier, ")"), {
    s <- file_session(tier)
    csv <- host_file()
    for (to in c("../x.csv", "sub/../../x.csv", "/etc/x.csv")) {
      expect_error(s$upload(csv, to), class = "securer_file_path_error")
    }
    out <- withr::local_tempfile()
    for (from in c("../../etc/passwd", readable_outside, "/proc/self/environ")) {
      expect_error(s$download(from, out), class = "securer_file_path_error")
    }
    expect_error(s$files("/"), class = "securer_file_path_error")
    expect_false(file.exists(out))
    # Control: the sandboxed code itself can read that file.
    expect_true(run_in(s, bquote(length(readLines(.(readable_outside))) > 0)))
  })

  test_that(paste0("links that leave the writable space are refused; links inside it work (", tier, ")"), {
    s <- file_session(tier)
    s$upload(host_file(), "data.csv")
    s$execute(sprintf(
      "unlink(c('out.txt', 'in.csv', 'rhome')); file.symlink(%s, 'out.txt'); file.symlink('data.csv', 'in.csv'); file.symlink(R.home(), 'rhome')",
      deparse(readable_outside)
    ))
    out <- withr::local_tempfile()
    err <- expect_error(s$download("out.txt", out), class = "securer_file_symlink_error")
    expect_s3_class(err, "securer_file_error")
    expect_match(conditionMessage(err), "symbolic link", fixed = TRUE)
    expect_error(s$download("rhome/etc/Renviron", out), class = "securer_file_symlink_error")
    expect_error(s$upload(host_file(), "rhome/x.csv"), class = "securer_file_symlink_error")
    expect_false(file.exists(out))
    s$download("in.csv", out)
    expect_identical(readLines(out), c("a,b", "1,2", "3,4"))
    # Control: through the link the code reads the file outside.
    expect_true(run_in(s, quote(length(readLines("out.txt")) > 0)))
  })

  test_that(paste0("a file swapped for a link between listing and download is refused (", tier, ")"), {
    s <- file_session(tier)
    s$execute("unlink('a.csv'); writeLines('x', 'a.csv')")
    root <- root_of(s)
    listed <- s$files()
    expect_identical(listed$type[listed$path == file.path(root, "a.csv")], "file")
    s$execute(sprintf("unlink('a.csv'); file.symlink(%s, 'a.csv')", deparse(readable_outside)))
    out <- withr::local_tempfile()
    expect_error(s$download("a.csv", out), class = "securer_file_symlink_error")
    expect_false(file.exists(out))
  })

  test_that(paste0("missing files and folders have classed errors (", tier, ")"), {
    s <- file_session(tier)
    out <- withr::local_tempfile()
    expect_error(s$upload(file.path(tempdir(), "no-such-file.csv")), class = "securer_file_not_found_error")
    expect_error(s$upload(tempdir()), class = "securer_file_error")
    expect_error(s$download("no-such-file.csv", out), class = "securer_file_not_found_error")
    expect_error(s$upload(host_file(), "no-such-folder/x.csv"), class = "securer_file_not_found_error")
    expect_error(s$files("no-such-folder"), class = "securer_file_not_found_error")
    s$execute("dir.create('adir', showWarnings = FALSE)")
    expect_error(s$download("adir", out), class = "securer_file_error")
    expect_error(s$download("x", file.path(tempdir(), "no-such-folder", "x")), class = "securer_file_not_found_error")
    expect_identical(strip_output(s$execute("1 + 1")), 2)
  })

  test_that(paste0("files larger than the caps are refused and leave nothing behind (", tier, ")"), {
    s <- file_session(tier)
    csv <- host_file(strrep("x", 5000))
    err <- expect_error(s$upload(csv, "big.csv", max_size = 1000), class = "securer_file_size_error")
    expect_s3_class(err, "securer_limit_error")
    expect_match(conditionMessage(err), "max_size", fixed = TRUE)
    expect_false(run_in(s, quote(file.exists("big.csv"))))
    # A huge (sparse) file in the session: 90 MB.
    s$execute("con <- file('huge.bin', 'wb'); seek(con, 9e7); writeBin(as.raw(1), con); close(con)")
    dir <- withr::local_tempdir()
    err <- expect_error(s$download("huge.bin", dir, max_size = 5e7), class = "securer_file_size_error")
    expect_match(conditionMessage(err), "more than the limit", fixed = TRUE)
    expect_identical(list.files(dir, all.files = TRUE, no.. = TRUE), character())
    withr::local_options(securer.max_file_size = 5)
    expect_error(s$download("data.csv", dir), class = "securer_file_size_error")
    s$execute("unlink('huge.bin')")
    # Control: within the caps both go through.
    withr::local_options(securer.max_file_size = NULL)
    s$upload(csv, "big.csv")
    s$download("big.csv", dir)
    expect_identical(readLines(file.path(dir, "big.csv")), strrep("x", 5000))
  })

  test_that(paste0("a child that lies about a download cannot make the host write elsewhere (", tier, ")"), {
    s <- file_session(tier)
    dir <- withr::local_tempdir()
    target <- file.path(dir, "target.bin")
    elsewhere <- file.path(dir, "elsewhere")
    # More bytes than it announced.
    with_tampered(s, "function(req) switch(req$op, get = list(ok = TRUE, size = 10, path = '/tmp/x'), get_chunk = list(ok = TRUE, data = as.raw(1:20)), rt$real_file_op(req))", {
      expect_error(s$download("anything", target), class = "securer_file_size_error")
    })
    # A size beyond the cap, a chunk that is not bytes, fewer bytes than announced.
    with_tampered(s, "function(req) switch(req$op, get = list(ok = TRUE, size = 1e12), rt$real_file_op(req))", {
      expect_error(s$download("anything", target), class = "securer_ipc_error")
    })
    with_tampered(s, "function(req) switch(req$op, get = list(ok = TRUE, size = 3), get_chunk = list(ok = TRUE, data = 'abc'), rt$real_file_op(req))", {
      expect_error(s$download("anything", target), class = "securer_ipc_error")
    })
    with_tampered(s, "function(req) switch(req$op, get = list(ok = TRUE, size = 3), get_chunk = list(ok = TRUE, data = raw()), rt$real_file_op(req))", {
      expect_error(s$download("anything", target), class = "securer_file_error")
    })
    # A reply naming another path, and an error reply with an unknown
    # problem and escapes in its message.
    with_tampered(s, sprintf("function(req) switch(req$op, get = list(ok = TRUE, size = 2, path = %s), get_chunk = list(ok = TRUE, data = as.raw(c(104, 105)), path = %s), rt$real_file_op(req))", deparse(elsewhere), deparse(elsewhere)), {
      s$download("anything", target)
    })
    expect_identical(readBin(target, "raw", 10), charToRaw("hi"))
    with_tampered(s, "function(req) list(ok = FALSE, problem = 'evil', message = '\\033]52;c;ZXZpbA==\\a {Sys.getpid()}')", {
      err <- expect_error(s$download("anything", target), class = "securer_file_error")
      expect_false(grepl("\033", conditionMessage(err), fixed = TRUE))
      expect_match(conditionMessage(err), "{Sys.getpid()}", fixed = TRUE)
    })
    expect_identical(sort(list.files(dir, all.files = TRUE, no.. = TRUE)), "target.bin")
    expect_identical(strip_output(s$execute("1 + 1")), 2)
  })

  test_that(paste0("a child that names another place for an upload is not believed (", tier, ")"), {
    s <- file_session(tier)
    with_tampered(s, "function(req) switch(req$op, put = list(ok = TRUE, path = '/home'), list(ok = TRUE))", {
      expect_error(s$upload(host_file(), "x.csv"), class = "securer_ipc_error")
    })
    expect_identical(strip_output(s$execute("1 + 1")), 2)
  })

  test_that(paste0("a forged listing is refused or cleaned (", tier, ")"), {
    s <- file_session(tier)
    with_tampered(s, "function(req) list(ok = TRUE, entries = data.frame(path = rep('x', 20), type = 'file', size = 1, modified = Sys.time()))", {
      expect_error(s$files(max_entries = 10), class = "securer_ipc_error")
    })
    with_tampered(s, "function(req) list(ok = TRUE, entries = list(1, 2))", {
      expect_error(s$files(), class = "securer_ipc_error")
    })
    with_tampered(s, "function(req) list(ok = TRUE, entries = data.frame(path = '/tmp/\\033[2Jx', type = 'weird', size = 1, modified = Sys.time()))", {
      got <- s$files()
    })
    expect_identical(got$path, "/tmp/x")
    expect_identical(got$type, "other")
  })

  test_that(paste0("a reply of the wrong kind is never taken for a file reply (", tier, ")"), {
    s <- file_session(tier)
    # The runtime answers a file request with a result: the host drops it,
    # waits, and replaces the child when the time is up.
    with_tampered(s, "function(req) { .Call('wrap__rs_child_send', 'result', serialize(list(value = 1, visible = TRUE), NULL, xdr = FALSE), PACKAGE = 'securer'); Sys.sleep(30) }", {
      expect_error(s$files(timeout = 2), class = "securer_timeout")
    })
    expect_identical(strip_output(s$execute("1 + 1")), 2)
  })
}

test_that("the host writes a download through a new file and never follows a link at the target", {
  s <- new_session()
  root <- root_of(s)
  canary <- withr::local_tempfile()
  writeLines("precious", canary)
  # The session plants a link in its own folder (a host folder here) where
  # the host will write.
  s$execute(sprintf("writeLines('payload', 'p.txt'); file.symlink(%s, 'trap.txt')", deparse(canary)))
  # Control: writing through the link would change the canary.
  expect_true(file.exists(file.path(root, "trap.txt")))
  expect_identical(Sys.readlink(file.path(root, "trap.txt")), canary)
  s$download("p.txt", file.path(root, "trap.txt"))
  expect_identical(readLines(canary), "precious")
  expect_identical(Sys.readlink(file.path(root, "trap.txt")), "")
  expect_identical(readLines(file.path(root, "trap.txt")), "payload")
})

test_that("downloads respect overwrite, and a folder target takes the file's name", {
  s <- new_session()
  s$execute("writeLines('new', 'f.txt')")
  dir <- withr::local_tempdir()
  writeLines("old", file.path(dir, "f.txt"))
  expect_error(s$download("f.txt", file.path(dir, "f.txt"), overwrite = FALSE), class = "securer_file_exists_error")
  expect_identical(readLines(file.path(dir, "f.txt")), "old")
  s$download("f.txt", dir)
  expect_identical(readLines(file.path(dir, "f.txt")), "new")
})

test_that("files cannot move while the session executes code, and a closed session says so", {
  s <- new_session()
  s$call("Sys.sleep(0.5); 1")
  expect_error(s$files(), class = "securer_session_error")
  while (s$poll_process(100) != "ready") NULL
  expect_identical(s$read()$value, 1)
  expect_s3_class(s$files(), "data.frame")
  s$close()
  expect_error(s$upload(host_file()), class = "securer_session_error")
})

test_that("an upload larger than the session's /tmp is refused before it is sent", {
  skip_if_no_sandbox()
  s <- sandboxed_session(sandbox = build_sandbox_config(tmp_size = 64 * 1024))
  big <- withr::local_tempfile()
  writeBin(as.raw(rep(1, 100 * 1024)), big)
  err <- expect_error(s$upload(big), class = "securer_file_size_error")
  expect_match(conditionMessage(err), "tmp_size", fixed = TRUE)
})

test_that("files move in and out of pool sessions", {
  for (sandbox in c(FALSE, TRUE)) {
    if (sandbox) skip_if_no_sandbox()
    pool <- SecureSessionPool$new(size = 2, sandbox = sandbox)
    withr::defer(pool$close())
    s <- pool$sessions()[[2]]
    s$upload(host_file(), "pooled.csv")
    expect_identical(s$execute("nrow(read.csv('pooled.csv'))"), 2L)
    out <- withr::local_tempfile()
    s$download("pooled.csv", out)
    expect_identical(readLines(out), c("a,b", "1,2", "3,4"))
    expect_identical(pool$execute("1 + 1"), 2)
  }
})

test_that("a writable folder granted to the sandbox is part of the writable space", {
  skip_if_no_sandbox()
  grant <- local_dir("grant")
  # Sandboxed R runs as another user when the host is root.
  Sys.chmod(grant, "0777", use_umask = FALSE)
  s <- sandboxed_session(sandbox = build_sandbox_config(writable = grant), zygote = FALSE)
  s$upload(host_file(), file.path(grant, "in.csv"))
  expect_true(file.exists(file.path(grant, "in.csv")))
  expect_true(file.path(grant, "in.csv") %in% s$files(grant)$path)
  out <- withr::local_tempfile()
  s$download(file.path(grant, "in.csv"), out)
  expect_identical(readLines(out), c("a,b", "1,2", "3,4"))
})
