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

# build_sandbox_linux() --------------------------------------------------

test_that("a Linux configuration has the documented fields", {
  cfg <- build_sandbox_linux()
  expect_s3_class(cfg, "securer_sandbox_config")
  expect_identical(cfg$platform, "linux")
  expect_identical(cfg$backend, "linux-native")
  expect_false(cfg$network)
  expect_identical(cfg$tmp_size, 256 * 1024^2)
  expect_type(cfg$read_only, "character")
  expect_identical(cfg$writable, character())
  expect_identical(
    cfg$enforced,
    c(filesystem = TRUE, network = TRUE, environment = TRUE, limits = TRUE)
  )
})

test_that("a Linux configuration exposes R's home and library paths", {
  cfg <- build_sandbox_linux()
  for (path in c(R.home(), .libPaths())) {
    expect_true(exposes(cfg$read_only, path), label = path)
  }
})

test_that("a Linux configuration hides home, working directory and secrets", {
  skip_on_os("windows")
  cfg <- build_sandbox_linux()
  visible <- c(cfg$read_only, cfg$writable)
  hidden <- c(
    path.expand("~"), "/etc/passwd", "/etc/shadow", "/root", "/home",
    "/tmp", tempdir()
  )
  for (path in hidden) {
    expect_false(exposes(visible, path), label = path)
  }
  skip_if(exposes(c("/usr", R.home(), .libPaths()), getwd()))
  expect_false(exposes(visible, getwd()))
})

test_that("a Linux configuration lists only existing, non-nested paths", {
  skip_on_os(c("windows", "mac"))
  cfg <- build_sandbox_linux()
  expect_true(all(file.exists(cfg$read_only)))
  expect_false(anyDuplicated(cfg$read_only) > 0L)
  real <- cfg$read_only[!is_symlink(cfg$read_only)]
  for (path in cfg$read_only) {
    expect_false(any(real != path & path_is_within(path, real)), label = path)
  }
})

test_that("a Linux configuration keeps symbolic links such as /bin", {
  skip_on_os(c("windows", "mac"))
  skip_if_not(is_symlink("/bin"), "/bin is not a symbolic link here")
  cfg <- build_sandbox_linux()
  expect_true("/bin" %in% cfg$read_only)
  expect_true(exposes(cfg$read_only, normalizePath("/bin")))
})

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

# macOS ------------------------------------------------------------------

test_that("a macOS configuration carries a Seatbelt profile", {
  cfg <- build_sandbox_macos()
  expect_identical(cfg$platform, "macos")
  expect_identical(cfg$backend, "seatbelt")
  expect_identical(cfg$command, "/usr/bin/sandbox-exec")
  expect_identical(cfg$tmp_dir, "/private/tmp/securer")
  expect_type(cfg$profile, "character")
  expect_length(cfg$profile, 1L)
  expect_true(exposes(cfg$read_only, "/System/Library"))
  expect_true(exposes(cfg$read_only, .libPaths()[[1]]))
  expect_false(exposes(cfg$read_only, path.expand("~")))
})

test_that("a macOS configuration generated elsewhere accepts absent paths", {
  skip_on_os("mac")
  cfg <- build_sandbox_macos(
    read_only = "/Users/ana/data",
    writable = "/Users/ana/out//"
  )
  expect_true("/Users/ana/data" %in% cfg$read_only)
  expect_identical(cfg$writable, "/Users/ana/out")
  expect_match(cfg$profile, '(subpath "/Users/ana/data")', fixed = TRUE)
})

test_that("a macOS configuration generated elsewhere needs absolute paths", {
  skip_on_os("mac")
  expect_input_error(build_sandbox_macos(read_only = "data"), "absolute")
})

# generate_seatbelt_profile() --------------------------------------------

seatbelt <- function(...) {
  generate_seatbelt_profile(
    read_only = c("/Library/Frameworks/R.framework", "/usr/lib"),
    writable = "/Users/ana/out",
    tmp_dir = "/private/tmp/securer",
    ...
  )
}

test_that("the profile starts with (version 1) and denies by default", {
  profile <- seatbelt()
  expect_true(startsWith(profile, "(version 1)\n"))
  expect_match(profile, "\n(deny default)\n", fixed = TRUE)
})

test_that("the profile denies all network access", {
  profile <- seatbelt()
  expect_match(profile, "(deny network*)", fixed = TRUE)
  expect_no_match(profile, "(allow network", fixed = TRUE)
  expect_no_match(profile, "system-socket", fixed = TRUE)
})

test_that("the profile lets R signal only itself", {
  profile <- seatbelt()
  expect_match(profile, "(allow signal (target self))", fixed = TRUE)
  expect_no_match(profile, "same-sandbox", fixed = TRUE)
})

test_that("the profile allows writes only to tmp_dir and writable paths", {
  profile <- seatbelt()
  expect_identical(
    sbpl_block(profile, "allow file-write*"),
    c(
      '  (subpath "/private/tmp/securer")',
      '  (subpath "/Users/ana/out"))'
    )
  )
  lines <- strsplit(profile, "\n", fixed = TRUE)[[1]]
  writes <- grep("file-write", lines, value = TRUE)
  expect_setequal(
    writes,
    c("(allow file-write*", '(allow file-write-data (literal "/dev/null"))')
  )
})

test_that("the profile allows reads of read-only, writable and tmp paths", {
  reads <- sbpl_block(seatbelt(), "allow file-read*")
  expect_true(all(c(
    '  (subpath "/Library/Frameworks/R.framework")',
    '  (subpath "/usr/lib")',
    '  (subpath "/Users/ana/out")',
    '  (subpath "/private/tmp/securer")'
  ) %in% reads))
})

test_that("the profile runs programs from read-only paths only", {
  expect_identical(
    sbpl_block(seatbelt(), "allow process-exec"),
    c(
      '  (subpath "/Library/Frameworks/R.framework")',
      '  (subpath "/usr/lib"))'
    )
  )
})

test_that("the profile escapes double quotes and backslashes in paths", {
  profile <- generate_seatbelt_profile(
    read_only = c('/Users/ana/my "data"', "/Users/ana/back\\slash"),
    tmp_dir = "/private/tmp/securer"
  )
  expect_match(profile, '(subpath "/Users/ana/my \\"data\\"")', fixed = TRUE)
  expect_match(profile, '(subpath "/Users/ana/back\\\\slash")', fixed = TRUE)
  expect_no_match(profile, '"data""', fixed = TRUE)
})

test_that("the profile lets R stat only the folders leading to allowed paths", {
  meta <- sbpl_block(seatbelt(), "allow file-read-metadata")
  expect_true('  (literal "/Users/ana")' %in% meta)
  expect_true('  (literal "/")' %in% meta)
  expect_false(any(grepl("subpath", meta, fixed = TRUE)))
})

test_that("the profile never has a rule without filters", {
  profile <- generate_seatbelt_profile(tmp_dir = "/private/tmp/securer")
  lines <- strsplit(profile, "\n", fixed = TRUE)[[1]]
  expect_false(any(c("(allow file-read*)", "(allow process-exec)") %in% lines))
  expect_false("(allow process-exec" %in% lines)
  expect_no_match(profile, '""', fixed = TRUE)
})

test_that("the profile is deterministic", {
  expect_identical(seatbelt(), seatbelt())
})

test_that("the profile refuses relative paths, the root and control characters", {
  expect_input_error(generate_seatbelt_profile(read_only = "data"), "absolute")
  expect_input_error(generate_seatbelt_profile(writable = "/"), "/")
  expect_input_error(
    generate_seatbelt_profile(read_only = "/a\n(allow default)"),
    "control characters"
  )
  expect_input_error(generate_seatbelt_profile(tmp_dir = "tmp"), "absolute")
})

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

# sandbox_policy_spec() --------------------------------------------------

test_that("the policy spec uses the Rust field names exactly", {
  spec <- sandbox_policy_spec(build_sandbox_linux())
  expect_named(
    spec,
    c("strict", "read_only", "writable", "tmp_size", "no_namespaces", "fallback_tmp")
  )
})

test_that("the policy spec JSON keeps one-element path lists as arrays", {
  cfg <- build_sandbox_linux()
  cfg$read_only <- "/usr"
  cfg$writable <- "/data/out"
  expect_identical(
    to_json(sandbox_policy_spec(cfg, strict = TRUE)),
    paste0(
      '{"strict":true,"read_only":["/usr"],"writable":["/data/out"],',
      '"tmp_size":268435456,"no_namespaces":false,"fallback_tmp":null}'
    )
  )
})

test_that("the policy spec JSON writes empty path lists as []", {
  cfg <- build_sandbox_linux()
  cfg$read_only <- character()
  json <- to_json(sandbox_policy_spec(cfg))
  expect_match(json, '"read_only":[]', fixed = TRUE)
  expect_match(json, '"writable":[]', fixed = TRUE)
})

test_that("the policy spec of the fallback skips namespaces and names its /tmp", {
  cfg <- build_sandbox_fallback(platform = "linux")
  spec <- sandbox_policy_spec(cfg, fallback_tmp = "/tmp/securer-123")
  expect_true(spec$no_namespaces)
  expect_identical(spec$fallback_tmp, "/tmp/securer-123")
  expect_match(
    to_json(spec),
    '"no_namespaces":true,"fallback_tmp":"/tmp/securer-123"}',
    fixed = TRUE
  )
})

test_that("the policy spec refuses configurations for other platforms", {
  expect_error(
    sandbox_policy_spec(build_sandbox_macos()),
    "cannot be applied on this platform",
    class = "securer_sandbox_error"
  )
  expect_error(
    sandbox_policy_spec(build_sandbox_fallback(platform = "windows")),
    class = "securer_sandbox_error"
  )
})

test_that("the policy spec checks its arguments", {
  cfg <- build_sandbox_linux()
  expect_input_error(sandbox_policy_spec(list()), "config")
  expect_input_error(sandbox_policy_spec(cfg, strict = NA), "strict")
  expect_input_error(sandbox_policy_spec(cfg, fallback_tmp = "tmp"), "absolute")
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
  expect_invisible(withr::with_output_sink(tempfile(), print(cfg)))
  expect_identical(withr::with_output_sink(tempfile(), print(cfg)), cfg)
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
