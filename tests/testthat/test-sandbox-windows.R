# Windows: environment isolation and job-object limits
# (R/sandbox-windows.R), tested as data.

# Windows ----------------------------------------------------------------

test_that("a Windows configuration isolates the environment", {
  cfg <- build_sandbox_windows(tmp_dir = "C:/Temp/securer")
  expect_identical(cfg$platform, "windows")
  expect_identical(cfg$backend, "windows-job")
  expect_identical(cfg$tmp_dir, "C:/Temp/securer")
  for (var in c("HOME", "USERPROFILE", "TMPDIR", "TEMP", "TMP")) {
    expect_identical(cfg$env[[var]], "C:/Temp/securer", label = var)
  }
  expect_identical(cfg$env[["R_LIBS_USER"]], "NULL")
  expect_identical(cfg$env[["R_ENVIRON_USER"]], "NUL")
  expect_identical(cfg$env[["R_PROFILE_USER"]], "NUL")
  expect_type(cfg$env, "character")
})

test_that("a Windows configuration says what it cannot enforce", {
  cfg <- build_sandbox_windows(tmp_dir = "C:/Temp/securer")
  expect_identical(
    cfg$enforced,
    c(filesystem = FALSE, network = FALSE, environment = TRUE, limits = TRUE)
  )
  expect_false(cfg$network)
  expect_match(cfg$note, "not restricted", fixed = TRUE)
})

test_that("Windows job limits come from the resolved limits", {
  cfg <- build_sandbox_windows(tmp_dir = "C:/Temp/securer")
  expect_identical(
    cfg$job_limits,
    list(
      process_memory = 2 * 1024^3,
      active_processes = 256,
      per_process_user_time = 60,
      kill_on_job_close = TRUE
    )
  )
  custom <- build_sandbox_windows(
    tmp_dir = "C:/Temp/securer",
    limits = list(memory = 1024^3, nproc = 10.5, cpu = Inf)
  )$job_limits
  expect_identical(custom$process_memory, 1024^3)
  expect_identical(custom$active_processes, 11)
  expect_null(custom$per_process_user_time)
  expect_input_error(build_sandbox_windows(limits = list(cpu = -1)), "cpu")
})

test_that("a Windows tmp_dir must be a non-empty string", {
  expect_input_error(build_sandbox_windows(tmp_dir = ""), "tmp_dir")
  expect_input_error(build_sandbox_windows(tmp_dir = 1), "tmp_dir")
})
