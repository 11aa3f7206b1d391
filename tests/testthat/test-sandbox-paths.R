# Paths a sandbox grants (R/sandbox-paths.R): base paths tidied, extra
# grants checked.

test_that("tidy_paths() adds link targets and keeps the links", {
  skip_on_os("windows")
  dir <- local_dir()
  real <- file.path(dir, "real")
  link <- file.path(dir, "link")
  dir.create(real)
  skip_if_not(file.symlink(real, link), "cannot create symbolic links")
  out <- tidy_paths(c(link, file.path(dir, "missing")), on_host = TRUE)
  expect_setequal(out, c(link, real))
})

test_that("drop_nested() drops paths inside a real folder only", {
  expect_identical(
    drop_nested(c("/usr", "/usr/lib/R", "/usr2", "/etc/R")),
    c("/usr", "/usr2", "/etc/R")
  )
  expect_identical(
    drop_nested(c("/lib", "/lib/R"), links = c(TRUE, FALSE)),
    c("/lib", "/lib/R")
  )
})

# Extra paths ------------------------------------------------------------

test_that("extra read-only and writable paths appear in the configuration", {
  data <- local_dir("data")
  out <- local_dir("out")
  cfg <- build_sandbox_config(read_only = data, writable = out)
  expect_true(data %in% cfg$read_only)
  expect_identical(cfg$writable, out)
  expect_false(out %in% cfg$read_only)
})

test_that("extra paths are normalised", {
  data <- local_dir("data")
  messy <- file.path(data, ".", "sub", "..")
  dir.create(file.path(data, "sub"))
  cfg <- build_sandbox_config(read_only = messy)
  expect_true(data %in% cfg$read_only)
})

test_that("a path granted both ways is writable only", {
  dir <- local_dir()
  cfg <- build_sandbox_config(read_only = dir, writable = dir)
  expect_identical(cfg$writable, dir)
  expect_false(dir %in% cfg$read_only)
})

test_that("a nonexistent extra path is an input error", {
  missing <- file.path(tempdir(), "securer-no-such-folder")
  expect_input_error(
    build_sandbox_config(read_only = missing),
    c("securer-no-such-folder", "does not exist")
  )
  expect_input_error(build_sandbox_config(writable = missing), "does not exist")
})

test_that("extra paths must be a character vector", {
  expect_input_error(build_sandbox_config(read_only = 1), "read_only")
  expect_input_error(build_sandbox_config(writable = NA_character_), "writable")
  expect_input_error(build_sandbox_config(read_only = ""), "read_only")
})

test_that("the filesystem root is refused", {
  expect_input_error(build_sandbox_config(read_only = "/"), "root")
  expect_input_error(build_sandbox_config(writable = "/"), "root")
})

test_that("the home folder is refused", {
  skip_if_not(dir.exists(path.expand("~")))
  expect_input_error(build_sandbox_config(read_only = "~"))
  expect_input_error(build_sandbox_config(writable = "~"))
})

test_that("the home folder and the folders around it are refused", {
  parent <- local_dir("users")
  home <- file.path(parent, "ana")
  dir.create(file.path(home, "data"), recursive = TRUE)
  withr::local_envvar(HOME = home)
  expect_input_error(build_sandbox_config(read_only = home), "home")
  expect_input_error(build_sandbox_config(writable = parent), "home")
  cfg <- build_sandbox_config(read_only = file.path(home, "data"))
  expect_true(file.path(home, "data") %in% cfg$read_only)
})

test_that("whole system folders and /proc are refused", {
  skip_on_os(c("windows", "mac"))
  expect_input_error(build_sandbox_config(read_only = "/etc"), "system folder")
  expect_input_error(build_sandbox_config(read_only = "/proc/self"), "system folder")
})

test_that("a writable R library path is refused", {
  expect_input_error(
    build_sandbox_config(writable = .libPaths()[[1]]),
    c("writable", "read-only")
  )
})

test_that("a writable folder inside or around R is refused", {
  expect_input_error(build_sandbox_config(writable = R.home()), "writable")
  expect_input_error(
    build_sandbox_config(writable = system.file(package = "jsonlite")),
    "writable"
  )
  skip_on_os(c("windows", "mac"))
  expect_input_error(build_sandbox_config(writable = "/usr"), "writable")
})
