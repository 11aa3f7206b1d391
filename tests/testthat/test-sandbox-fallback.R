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
