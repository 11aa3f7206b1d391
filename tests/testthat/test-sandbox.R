# The configuration object, the platform dispatcher and the glue to
# sessions (R/sandbox.R). Each backend and the path checks have test files
# of their own: test-sandbox-linux.R, -fallback.R, -macos.R, -windows.R,
# -paths.R; escape attempts against real sessions are in
# test-sandbox-escapes.R.

test_that("tmp_size must be a positive number and is kept whole", {
  expect_input_error(build_sandbox_config(tmp_size = 0), "tmp_size")
  expect_input_error(build_sandbox_config(tmp_size = "1G"), "tmp_size")
  expect_input_error(build_sandbox_config(tmp_size = Inf), "tmp_size")
  expect_identical(build_sandbox_linux(tmp_size = 1000.2)$tmp_size, 1001)
})

test_that("an unknown platform is an input error", {
  expect_input_error(build_sandbox_config(platform = "beos"), "platform")
  expect_input_error(build_sandbox_fallback(platform = 1), "platform")
})

test_that("build_sandbox_config() dispatches on the platform", {
  expect_identical(build_sandbox_config(platform = "linux")$backend, "linux-native")
  expect_identical(build_sandbox_config(platform = "macos")$backend, "seatbelt")
  expect_identical(
    build_sandbox_config(platform = "windows")$backend,
    "windows-job"
  )
})

# as_sandbox_config() ----------------------------------------------------

test_that("as_sandbox_config() turns TRUE into the platform's configuration", {
  cfg <- as_sandbox_config(TRUE)
  expect_s3_class(cfg, "securer_sandbox_config")
  expect_identical(cfg$platform, detect_platform())
})

test_that("as_sandbox_config() turns FALSE into NULL", {
  expect_null(as_sandbox_config(FALSE))
})

test_that("as_sandbox_config() returns a configuration as is", {
  cfg <- build_sandbox_fallback(platform = "linux")
  expect_identical(as_sandbox_config(cfg), cfg)
})

test_that("as_sandbox_config() refuses anything else", {
  expect_input_error(as_sandbox_config("yes"), c("TRUE", "FALSE"))
  expect_input_error(as_sandbox_config(NA), "sandbox")
  expect_input_error(as_sandbox_config(NULL), "sandbox")
  expect_input_error(as_sandbox_config(list(backend = "none")), "sandbox")
})

# format() and print() ---------------------------------------------------

test_that("print() shows a Linux configuration compactly and returns it", {
  cfg <- build_sandbox_linux()
  expect_output(print(cfg), "<securer_sandbox_config>", fixed = TRUE)
  expect_output(print(cfg), "backend:   linux-native", fixed = TRUE)
  expect_output(print(cfg), "network:   denied", fixed = TRUE)
  expect_output(print(cfg), "capped at 256 MiB", fixed = TRUE)
  expect_invisible(withr::with_output_sink(withr::local_tempfile(), print(cfg)))
  expect_identical(withr::with_output_sink(withr::local_tempfile(), print(cfg)), cfg)
})

test_that("format() shortens long path lists", {
  cfg <- build_sandbox_linux()
  cfg$read_only <- sprintf("/p%02d", 1:12)
  lines <- format(cfg)
  expect_type(lines, "character")
  expect_true("  ... and 7 more" %in% lines)
  expect_true("  ... and 2 more" %in% format(cfg, max_paths = 10))
})

test_that("print() shows what Windows leaves unrestricted", {
  cfg <- build_sandbox_windows(tmp_dir = "C:/Temp/securer")
  expect_output(print(cfg), "network:   not restricted", fixed = TRUE)
  expect_output(print(cfg), "not:       filesystem, network", fixed = TRUE)
  expect_output(print(cfg), "memory 2 GiB, processes 256, CPU 60 s", fixed = TRUE)
})

test_that("print() shows the Seatbelt profile size and command", {
  expect_output(
    print(build_sandbox_macos()),
    "lines, run with /usr/bin/sandbox-exec",
    fixed = TRUE
  )
})
