# The tier without namespaces (R/sandbox-fallback.R): its configuration,
# and real sessions of it that try to get out.

# build_sandbox_fallback() -----------------------------------------------

test_that("the Linux fallback keeps the paths and skips namespaces", {
  cfg <- build_sandbox_fallback(platform = "linux")
  expect_identical(cfg$backend, "linux-fallback")
  expect_identical(cfg$read_only, build_sandbox_linux()$read_only)
  expect_true(cfg$enforced[["filesystem"]])
  expect_match(cfg$note, "No namespaces", fixed = TRUE)
})

test_that("the fallback elsewhere is backend 'none' with a note", {
  for (platform in c("macos", "windows")) {
    cfg <- build_sandbox_fallback(platform = platform)
    expect_identical(cfg$backend, "none")
    expect_identical(cfg$platform, platform)
    expect_false(cfg$enforced[["filesystem"]])
    expect_false(cfg$enforced[["network"]])
    expect_match(cfg$note, "No OS sandbox", fixed = TRUE)
  }
})

# ===========================================================================
# Real sessions of the fallback tier (Landlock, seccomp, limits, a clean
# environment, the supervisor). Each escape test has a control showing the
# attempt works on the host or in an unsandboxed session.
# ===========================================================================

fallback <- lazy_session(fallback_session)

test_that("the fallback tier reports namespaces and root inactive, with a reason", {
  skip_if_no_sandbox()
  info <- fallback()$sandbox_info()
  expect_named(info, c("layer", "active", "detail"))
  off <- info[info$layer %in% c("namespaces", "root"), ]
  expect_identical(nrow(off), 2L)
  expect_false(any(off$active))
  expect_true(all(grepl("no_namespaces", off$detail, fixed = TRUE)))
  expect_true(all(info$active[info$layer %in% c("landlock", "seccomp", "capabilities", "environment")]))
})

test_that("the fallback tier cannot read a file in the host's home folder", {
  skip_if_no_sandbox()
  s <- fallback()
  skip_if_no_landlock(s)
  f <- local_secret_file(path.expand("~"))
  got <- read_in(s, f$path)
  expect_match(got[[1]], "^ERROR:")
  expect_false(any(grepl(f$secret, got, fixed = TRUE)))
})

test_that("the fallback tier cannot read a file in the host's working directory", {
  skip_if_no_sandbox()
  s <- fallback()
  skip_if_no_landlock(s)
  f <- local_secret_file(getwd())
  got <- read_in(s, f$path)
  expect_match(got[[1]], "^ERROR:")
  expect_false(any(grepl(f$secret, got, fixed = TRUE)))
})

test_that("the fallback tier cannot read /etc/shadow, /etc/passwd or the host's /proc", {
  skip_if_no_sandbox()
  s <- fallback()
  skip_if_no_landlock(s)
  for (path in c(
    "/etc/shadow", "/etc/passwd", sprintf("/proc/%d/environ", Sys.getpid()),
    sprintf("/proc/%d/status", Sys.getpid()), "/proc/self/root/etc/passwd"
  )) {
    expect_match(read_in(s, path)[[1]], "^ERROR:", info = path)
  }
})

test_that("the fallback tier cannot reach host files through links or renames", {
  skip_if_no_sandbox()
  s <- fallback()
  skip_if_no_landlock(s)
  f <- local_secret_file(path.expand("~"))
  got <- run_in(s, bquote({
    hard <- file.path(tempdir(), "hard")
    soft <- file.path(tempdir(), "soft")
    moved <- file.path(tempdir(), "moved")
    suppressWarnings({
      file.link(.(f$path), hard)
      file.symlink(.(f$path), soft)
      file.rename(.(f$path), moved)
    })
    vapply(c(hard, soft, moved), function(p) {
      tryCatch(paste(readLines(p, warn = FALSE), collapse = ""),
        error = function(e) "ERROR", warning = function(w) "ERROR"
      )
    }, character(1))
  }))
  expect_true(all(got == "ERROR"))
  expect_identical(readLines(f$path), f$secret)
})

test_that("the fallback tier cannot write outside its own folder", {
  skip_if_no_sandbox()
  s <- fallback()
  skip_if_no_landlock(s)
  targets <- unique(c(path.expand("~"), getwd(), .libPaths(), R.home(), tempdir(), "/tmp"))
  name <- random_token("securer-write-")
  paths <- file.path(targets, name)
  withr::defer(unlink(paths))
  made <- run_in(s, bquote(vapply(.(paths), function(p) {
    isTRUE(suppressWarnings(tryCatch(file.create(p), error = function(e) FALSE)))
  }, logical(1))))
  expect_false(any(made))
  expect_false(any(file.exists(paths)))
  # Its own temporary folder works.
  expect_identical(run_in(s, quote({
    f <- tempfile()
    writeLines("ok", f)
    readLines(f)
  })), "ok")
})

test_that("the fallback tier cannot open a TCP connection to a host listener", {
  skip_if_no_sandbox()
  s <- fallback()
  skip_if_no_landlock(s)
  port <- local_tcp_listener()
  expect_true(host_can_connect(port))
  got <- run_in(s, bquote(tryCatch(
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

test_that("the fallback tier cannot reach a host abstract UNIX socket", {
  skip_if_no_sandbox()
  s <- fallback()
  skip_if_no_landlock(s)
  name <- local_abstract_listener()
  expect_identical(script_on_host(Sys.which("python3"), abstract_client_python(name))$output, "HELLO")
  skip_if_not(file.exists("/usr/bin/python3"), "no python3 for the client")
  res <- script_in(s, "/usr/bin/python3", abstract_client_python(name))
  expect_false(identical(res$status, 0L))
  expect_false(any(grepl("HELLO", res$output)))
})

test_that("the fallback tier cannot signal the host or see its environment", {
  skip_if_no_sandbox()
  secret <- random_token("sk-test-secret-")
  withr::local_envvar(OPENAI_API_KEY = secret)
  s <- fallback_session()
  skip_if_no_landlock(s)
  expect_false(run_in(s, bquote(tools::pskill(.(Sys.getpid()), 0L))))
  expect_identical(run_in(s, quote(Sys.getenv("OPENAI_API_KEY"))), "")
  expect_false(run_in(s, bquote(
    any(grepl(.(secret), readLines("/proc/self/environ", warn = FALSE), fixed = TRUE))
  )))
})

test_that("sandbox_strict = TRUE fails closed on the fallback tier, naming the layer", {
  skip_if_no_sandbox()
  err <- expect_error(
    SecureSession$new(sandbox = build_sandbox_fallback(), sandbox_strict = TRUE),
    class = "securer_sandbox_error"
  )
  expect_s3_class(err, "securer_error")
  expect_identical(err$layer, "namespaces")
  expect_match(conditionMessage(err), "namespaces", fixed = TRUE)
})

test_that("the fallback tier warns once per R session and set of missing layers", {
  skip_if_no_sandbox()
  local_fresh_warnings()
  cfg <- build_sandbox_fallback()
  expect_warning(
    s1 <- SecureSession$new(sandbox = cfg),
    class = "securer_sandbox_warning"
  )
  withr::defer(s1$close())
  expect_no_warning(s2 <- SecureSession$new(sandbox = cfg))
  withr::defer(s2$close())
  expect_identical(run_in(s2, quote(1 + 1)), 2)
})

# The folder quota -----------------------------------------------------------

test_that("the fallback tier's folder is capped: many files, and files deleted while open", {
  skip_if_no_sandbox()
  many <- quote({
    for (i in 1:8) writeBin(raw(4 * 1024^2), file.path(tempdir(), paste0("f", i)))
    Sys.sleep(3)
    "kept"
  })
  hidden <- quote({
    cons <- lapply(1:6, function(i) {
      f <- file.path(tempdir(), paste0("h", i))
      con <- file(f, "wb")
      writeBin(raw(4 * 1024^2), con)
      flush(con)
      unlink(f)
      con
    })
    Sys.sleep(3)
    "kept"
  })
  limits <- list(fsize = 8 * 1024^2)
  s <- fallback_session(sandbox = build_sandbox_fallback(tmp_size = 16 * 1024^2), limits = limits)
  info <- s$sandbox_info()
  expect_match(info$detail[info$layer == "limits"], "temporary folder 16777216 bytes", fixed = TRUE)
  for (code in list(many, hidden)) {
    err <- expect_error(run_in(s, code), class = "securer_limit_error")
    expect_s3_class(err, "securer_child_error")
    expect_identical(err$limit, "tmp_size")
    expect_match(conditionMessage(err), "temporary folder (16 MiB)", fixed = TRUE)
    # The session answers again, with a new, empty folder.
    expect_identical(run_in(s, quote(list.files(tempdir()))), character())
  }
  # Control: with room for it, the same code runs through.
  roomy <- fallback_session(sandbox = build_sandbox_fallback(tmp_size = 64 * 1024^2), limits = limits)
  expect_identical(run_in(roomy, many), "kept")
  expect_identical(run_in(roomy, hidden), "kept")
})

# Clean-up of the host folder ----------------------------------------------

# Host files and folders a session's code may point links at: a file of
# mode 0600, a folder of mode 0700 holding a file, a folder of mode 0000.
local_link_targets <- function(.env = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = .env)
  t <- list(
    file = file.path(dir, "secret.txt"),
    dir = file.path(dir, "private"),
    locked = file.path(dir, "locked")
  )
  writeLines("keep me", t$file)
  Sys.chmod(t$file, "0600")
  dir.create(t$dir)
  writeLines("inside", file.path(t$dir, "inner.txt"))
  Sys.chmod(t$dir, "0700")
  dir.create(t$locked)
  Sys.chmod(t$locked, "0000")
  withr::defer(Sys.chmod(t$locked, "0700"), envir = .env)
  t
}

link_target_state <- function(t) {
  list(
    modes = format(file.mode(unlist(t))),
    content = readLines(t$file),
    inner = readLines(file.path(t$dir, "inner.txt"))
  )
}

# Code that plants links to `t` in the session's folder, links that loop,
# a folder of mode 0000 and (`deep`) a chain of folders deeper than a path
# can name.
plant_links <- function(t, deep = TRUE) {
  bquote({
    home <- Sys.getenv("HOME")
    file.symlink(.(t$file), file.path(home, "to-file"))
    file.symlink(.(t$dir), file.path(home, "to-dir"))
    file.symlink(.(t$locked), file.path(home, "to-locked"))
    file.symlink("loop", file.path(home, "loop"))
    dir.create(file.path(home, "sub"))
    file.symlink(.(t$file), file.path(home, "sub", "again"))
    dir.create(file.path(home, "closed"), mode = "0000")
    if (.(deep)) {
      # A shell's cd keeps going where a path could not (PATH_MAX).
      system(paste(
        "cd", shQuote(home), "&& for i in $(seq 2500); do mkdir d && cd d || exit 1; done",
        "&& echo deep > bottom"
      ))
    }
    home
  })
}

test_that("closing a session never follows the links its code planted in its folder", {
  skip_if_no_sandbox()
  t <- local_link_targets()
  before <- link_target_state(t)
  for (tier in c("fallback", "plain")) {
    s <- if (tier == "fallback") fallback_session() else new_session()
    folder <- run_in(s, plant_links(t), timeout = 60)
    expect_true(file.exists(file.path(folder, "to-file")), info = tier)
    s$close()
    expect_false(basename(folder) %in% list.files(dirname(folder), all.files = TRUE), info = tier)
    expect_identical(link_target_state(t), before, info = tier)
  }
  # Control: base R's forced unlink() of the same tree follows the links
  # and opens the targets up (mode 0777).
  victims <- local_link_targets()
  scratch <- withr::local_tempdir()
  withr::with_envvar(c(HOME = scratch), eval(plant_links(victims, deep = FALSE)))
  unlink(scratch, recursive = TRUE, force = TRUE)
  expect_false(identical(link_target_state(victims)$modes, before$modes))
})
