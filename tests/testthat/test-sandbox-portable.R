# The macOS code path, run here (issue 11): sessions made as on macOS (the
# platform is "macos" for them) start through a launcher built with the
# `portable` cargo feature (what macOS compiles: no namespaces, pidfds or
# zygote; on macOS, the installed one) and a stand-in sandbox-exec
# (fixtures/sandbox-exec-stand-in.sh) that checks and records the profile
# and arguments it is given, then runs R. Every step but macOS's kernel
# enforcing the profile runs; the stand-in enforces nothing, so these tests
# check what reaches it and what the launcher did before it, never that
# Seatbelt denies anything.

skip_on_os("windows")

# The portable launcher: macOS's own, or one built from the package's
# sources (the worktree, or R CMD check's copy of them) into the target
# directory tools/test.sh uses for the portable build.
portable_launcher <- function() {
  if (identical(Sys.info()[["sysname"]], "Darwin")) {
    return(securer:::launcher_path())
  }
  given <- Sys.getenv("SECURER_PORTABLE_LAUNCHER")
  if (nzchar(given)) {
    return(given)
  }
  roots <- c(test_path("..", "..", "src", "rust"), test_path("..", "..", "00_pkg_src", "securer", "src", "rust"))
  src <- Find(function(d) file.exists(file.path(d, "Cargo.toml")), roots)
  cargo <- Sys.which("cargo")
  if (!nzchar(cargo)) cargo <- file.path(Sys.getenv("HOME"), ".cargo", "bin", "cargo")
  require_or_skip(
    !is.null(src) && file.exists(cargo),
    "the portable launcher needs the package's Rust sources and cargo"
  )
  target <- file.path(normalizePath(src), "target", "portable")
  out <- suppressWarnings(system2(cargo, c(
    "build", "--quiet", "-j", "2", "-p", "securer-launcher", "--features", "portable",
    "--manifest-path", shQuote(file.path(src, "Cargo.toml")), "--target-dir", shQuote(target)
  ), stdout = TRUE, stderr = TRUE))
  exe <- file.path(target, "debug", "securer-launcher")
  require_or_skip(
    is.null(attr(out, "status")) && file.exists(exe),
    paste(c("cannot build the portable launcher:", utils::tail(out, 20)), collapse = "\n")
  )
  exe
}

launcher <- portable_launcher()

# The stand-in, writing its records to a folder of its own.
stand_in_dir <- withr::local_tempdir("sandbox-exec-")
stand_in <- file.path(stand_in_dir, "sandbox-exec")
writeLines(
  gsub("@LOG@", stand_in_dir, readLines(test_path("fixtures", "sandbox-exec-stand-in.sh")), fixed = TRUE),
  stand_in
)
Sys.chmod(stand_in, "0755")

# What the stand-in recorded for the process `pid` (R keeps the launcher's
# pid through both execs): the profile and the arguments after it.
recorded <- function(pid) {
  profile <- file.path(stand_in_dir, paste0(pid, ".profile"))
  args <- file.path(stand_in_dir, paste0(pid, ".args"))
  list(
    profile = if (file.exists(profile)) paste(readLines(profile, warn = FALSE), collapse = "\n"),
    args = if (file.exists(args)) readLines(args, warn = FALSE)
  )
}

# Until `.env` ends, securer takes this system for `platform`.
# (testthat's local_mocked_bindings() needs testthat 3.1.7.)
local_platform <- function(platform, .env = parent.frame()) {
  old <- securer:::detect_platform
  utils::assignInNamespace("detect_platform", function(sysname = NULL) platform, "securer")
  withr::defer(utils::assignInNamespace("detect_platform", old, "securer"), envir = .env)
}

# Until `.env` ends, sessions are made as on macOS, through the portable
# launcher and the stand-in.
local_macos <- function(.env = parent.frame()) {
  local_platform("macos", .env = .env)
  withr::local_options(securer.launcher = launcher, .local_envir = .env)
  withr::local_envvar(SECURER_SANDBOX_EXEC = stand_in, .local_envir = .env)
  # Each test sees the one-time warning about the stand-in afresh.
  local_fresh_warnings(.env = .env)
}

# A session as on macOS, closed when `.env` ends. The stand-in is not a
# sandbox, and the session says so once (see the test below).
macos_session <- function(..., .env = parent.frame()) {
  local_macos(.env = .env)
  s <- suppressWarnings(SecureSession$new(...), classes = "securer_sandbox_warning")
  withr::defer(s$close(), envir = .env)
  s
}

# The filters of a multi-line rule, without the rule's closing parenthesis.
rule_paths <- function(profile, head) {
  sub("\\)\\)$", ")", trimws(sbpl_block(profile, head)))
}

# Does one of `filters` grant `path` (a subpath of it or of a folder
# holding it)?
grants <- function(filters, path) {
  granted <- sub('^\\(subpath "(.*)"\\)$', "\\1", grep("^\\(subpath ", filters, value = TRUE))
  exposes(granted, path)
}

test_that("the stand-in refuses a malformed invocation and runs a proper one", {
  run <- function(...) {
    suppressWarnings(system2(stand_in, shQuote(c(...)), stdout = TRUE, stderr = TRUE))
  }
  good <- "(version 1)\n(deny default)\n(deny network*)\n"
  expect_identical(attr(run("-x", good, "/bin/echo", "hi"), "status"), 64L)
  expect_identical(attr(run("-p", good, "echo", "hi"), "status"), 64L)
  expect_identical(attr(run("-p", "(version 1)\n(allow default)", "/bin/echo", "hi"), "status"), 64L)
  expect_identical(attr(run("-p", "(version 1)\n(deny default)", "/bin/echo", "hi"), "status"), 64L)
  expect_identical(run("-p", good, "/bin/echo", "hi"), "hi")
})

test_that("a macOS session runs R through sandbox-exec under its policy's profile", {
  s <- macos_session()
  expect_identical(s$sandbox_info()$layer[[1]], "seatbelt")
  home <- run_in(s, quote(Sys.getenv("HOME")))
  expect_identical(run_in(s, quote(1 + 1)), 2)
  got <- recorded(s$pid())
  expect_false(is.null(got$profile))
  # The launcher ran R's binary with the session's arguments through it.
  expect_identical(got$args[[1]], securer:::r_binary())
  expect_true("--no-environ" %in% got$args)
  # Denied unless allowed, no network; writes to the session's own folder
  # only; R's home and library readable and runnable, never writable.
  profile <- got$profile
  expect_match(profile, "\n(deny default)\n", fixed = TRUE)
  expect_match(profile, "(deny network*)", fixed = TRUE)
  expect_no_match(profile, "(allow network", fixed = TRUE)
  writes <- rule_paths(profile, "allow file-write*")
  expect_true(sprintf('(subpath "%s")', home) %in% writes)
  reads <- rule_paths(profile, "allow file-read*")
  runs <- rule_paths(profile, "allow process-exec")
  for (p in c(R.home(), .libPaths())) {
    expect_true(grants(reads, p), label = p)
    expect_true(grants(runs, p), label = p)
    expect_false(grants(writes, p), label = p)
  }
  # Not the host's home, the working directory, or /Users and /home.
  for (p in c(path.expand("~"), getwd(), "/Users", "/home")) {
    expect_false(any(grepl(sprintf('"%s"', p), c(reads, writes), fixed = TRUE)), label = p)
  }
})

test_that("the profile applied is the one rendered from the session's policy", {
  s <- macos_session()
  home <- run_in(s, quote(Sys.getenv("HOME")))
  cfg <- securer:::as_sandbox_config(TRUE)
  local_macos()
  expect_identical(cfg$backend, "seatbelt")
  rendered <- generate_seatbelt_profile(cfg$read_only, cfg$writable, tmp_dir = home)
  applied <- strsplit(recorded(s$pid())$profile, "\n", fixed = TRUE)[[1]]
  # Every rule and path of the rendering is applied; the launcher adds only
  # the resolved forms of paths that pass through links.
  expect_true(all(strsplit(rendered, "\n", fixed = TRUE)[[1]] %in% c(applied, "")))
})

test_that("the stand-in is never counted as a sandbox: a warning, or a strict failure", {
  local_macos()
  expect_warning(
    s <- SecureSession$new(),
    "seatbelt",
    class = "securer_sandbox_warning"
  )
  on.exit(s$close(), add = TRUE)
  info <- s$sandbox_info()
  expect_false(info$active[info$layer == "seatbelt"])
  expect_match(info$detail[info$layer == "seatbelt"], "stand-in", fixed = TRUE)
  expect_match(info$detail[info$layer == "seatbelt"], "no warm zygote", fixed = TRUE)
  expect_true(all(info$active[info$layer %in% c("limits", "environment")]))
  expect_false(any(c("namespaces", "landlock", "seccomp") %in% info$layer))
  err <- expect_error(
    SecureSession$new(sandbox_strict = TRUE),
    class = "securer_sandbox_error"
  )
  expect_identical(err$layer, "seatbelt")
})

test_that("a tool call crosses from the macOS session to the host and back", {
  s <- macos_session(tools = list(echo_tool()))
  expect_identical(run_in(s, quote(echo(x = 41) + 1)), 42)
})

test_that("a timeout stops the macOS session and its replacement starts the same way", {
  s <- macos_session()
  first <- s$pid()
  expect_error(s$execute("Sys.sleep(30)", timeout = 1), class = "securer_timeout")
  expect_identical(run_in(s, quote(1 + 1)), 2)
  expect_false(identical(s$pid(), first))
  expect_false(is.null(recorded(s$pid())$profile))
})

test_that("the launcher applies the limits before sandbox-exec runs R", {
  s <- macos_session(limits = list(nofile = 300, cpu = 100))
  got <- run_in(s, quote(c(system("ulimit -n", intern = TRUE), system("ulimit -t", intern = TRUE))))
  expect_identical(got, c("300", "100"))
  # The control: the host's own limits are others.
  expect_false(identical(system("ulimit -n", intern = TRUE), "300"))
})

test_that("a secret in the host's environment does not reach the macOS session", {
  secret <- random_token("secret-")
  withr::local_envvar(SECURER_TEST_SECRET = secret)
  s <- macos_session()
  expect_identical(run_in(s, quote(Sys.getenv("SECURER_TEST_SECRET"))), "")
  # The control: a process the host starts itself inherits it.
  expect_identical(system("echo $SECURER_TEST_SECRET", intern = TRUE), secret)
})

test_that("files the host holds open are closed before R starts", {
  skip_if_not(dir.exists("/proc/self/fd"), "needs /proc to list open files")
  path <- withr::local_tempfile()
  con <- file(path, "w")
  on.exit(close(con), add = TRUE)
  target <- normalizePath(path)
  # The control: R's connection is inherited by what the host starts.
  host <- system("for f in /proc/$$/fd/*; do readlink $f; done; true", intern = TRUE)
  expect_true(target %in% host)
  s <- macos_session()
  inside <- run_in(s, quote(Sys.readlink(list.files("/proc/self/fd", full.names = TRUE))))
  expect_false(target %in% inside)
  fds <- as.integer(run_in(s, quote(list.files("/proc/self/fd"))))
  expect_true(all(c(0L, 1L, 2L, 3L) %in% fds))
})

test_that("without a sandbox a macOS session starts cold, with limits and a clean environment", {
  s <- macos_session(sandbox = FALSE)
  expect_identical(run_in(s, quote(1 + 1)), 2)
  # No zygote, no sandbox-exec: the launcher exec'd R itself.
  expect_null(recorded(s$pid())$profile)
  info <- s$sandbox_info()
  expect_setequal(info$layer, c("limits", "environment"))
})

test_that("on Windows sessions fail at once and point to WSL2", {
  local_platform("windows")
  for (sandbox in list(TRUE, FALSE)) {
    err <- expect_error(SecureSession$new(sandbox = sandbox), class = "securer_sandbox_error")
    expect_match(conditionMessage(err), "WSL2", fixed = TRUE)
  }
  expect_error(execute_r("1 + 1", sandbox = FALSE), class = "securer_sandbox_error")
})
