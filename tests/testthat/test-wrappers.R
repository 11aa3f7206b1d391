# Renderings of securer's limits and policy for other wrappers: ulimit
# commands, a limits-only wrapper script, bubblewrap arguments.

test_that("generate_ulimit_commands() renders the default limits in bash units", {
  expect_identical(
    generate_ulimit_commands(),
    c("ulimit -t 60", "ulimit -v 2097152", "ulimit -f 102400", "ulimit -u 256", "ulimit -n 256")
  )
})

test_that("generate_ulimit_commands() rounds and leaves out Inf", {
  cmds <- generate_ulimit_commands(list(cpu = 0.5, memory = 200 * 1024^2 + 100, stack = 1024^2, nproc = Inf))
  expect_true("ulimit -t 1" %in% cmds)
  expect_true("ulimit -v 204800" %in% cmds)
  expect_true("ulimit -s 1024" %in% cmds)
  expect_false(any(startsWith(cmds, "ulimit -u")))
  expect_identical(generate_ulimit_commands(list()), character())
})

test_that("generate_ulimit_commands() checks the limits like a session does", {
  expect_error(generate_ulimit_commands(list(ram = 1)), class = "securer_input_error")
  expect_error(generate_ulimit_commands(list(memory = 1)), class = "securer_limit_error")
})

test_that("the limits-only wrapper applies the limits and runs its command", {
  skip_if(!nzchar(Sys.which("bash")), "bash is needed to run the wrapper")
  path <- withr::local_tempfile(fileext = ".sh")
  expect_identical(build_limits_only_wrapper(list(cpu = 7, nofile = 300, memory = 1024^3), path), path)
  expect_identical(as.character(file.mode(path)), "700")
  lines <- readLines(path)
  expect_identical(lines[[1]], "#!/bin/bash")
  expect_identical(lines[[length(lines)]], 'exec "$@"')
  got <- system2(path, c("bash", "-c", shQuote("ulimit -t; ulimit -n; ulimit -v; echo $0")), stdout = TRUE)
  expect_identical(got, c("7", "300", "1048576", "bash"))
})

test_that("generate_bwrap_args() renders the policy: namespaces, binds, /tmp, clean environment", {
  cfg <- build_sandbox_linux()
  args <- generate_bwrap_args(cfg)
  for (flag in c("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent", "--new-session", "--clearenv")) {
    expect_true(flag %in% args, label = flag)
  }
  expect_identical(args[which(args == "--cap-drop") + 1L], "ALL")
  # Every read-only path is bound read-only or recreated as a link.
  ro <- args[which(args == "--ro-bind") + 2L]
  links <- args[which(args == "--symlink") + 2L]
  expect_setequal(c(ro, links), cfg$read_only)
  expect_false(any(args == "--bind"))
  # The private /tmp and its cap.
  i <- which(args == "--tmpfs")
  expect_identical(args[i + 1L], "/tmp")
  expect_identical(args[i - 2L], "--size")
  expect_identical(args[i - 1L], format(cfg$tmp_size, scientific = FALSE))
  expect_false("--size" %in% generate_bwrap_args(cfg, size_tmp = FALSE))
  # No home folder, no secrets.
  expect_false(any(args %in% c(path.expand("~"), "/home", "/root", "/etc/passwd")))
})

test_that("generate_bwrap_args() binds writable grants read-write", {
  out <- withr::local_tempdir(tmpdir = "/var/tmp")
  args <- generate_bwrap_args(build_sandbox_linux(writable = out))
  expect_identical(args[which(args == "--bind") + 1:2], rep(normalizePath(out), 2))
})

test_that("generate_bwrap_args() needs a Linux configuration", {
  expect_error(generate_bwrap_args(build_sandbox_config(platform = "macos")), class = "securer_input_error")
  expect_error(generate_bwrap_args("x"), class = "securer_input_error")
})

test_that("with bubblewrap installed, the arguments run R without the host's home", {
  skip_if(!nzchar(Sys.which("bwrap")), "bubblewrap is not installed")
  out <- suppressWarnings(system2("bwrap", c(
    generate_bwrap_args(size_tmp = FALSE),
    file.path(R.home("bin"), "Rscript"), "-e", shQuote("cat(file.exists(path.expand('~/.bashrc')), Sys.getenv('HOME'))")
  ), stdout = TRUE, stderr = TRUE))
  expect_identical(tail(out, 1), "FALSE /tmp")
})
