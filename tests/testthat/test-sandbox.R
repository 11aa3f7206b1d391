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

# ===========================================================================
# Real sandboxed sessions: escape attempts, limits and positive checks.
#
# Everything above tests configuration objects. Everything below starts
# real sessions (`sandbox = TRUE, sandbox_strict = TRUE`) and tries to get
# out. Sessions are shared where a test leaves no state that matters, as
# each sandboxed start costs about 0.3 s. Each escape test has a control on
# the host (or in an unsandboxed session) showing the attempt works there,
# so a sandbox that stopped holding would fail the test.
# ===========================================================================

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

# Limits inside the sandbox -------------------------------------------------

test_that("allocating 8 GB is a memory limit error and the session goes on", {
  skip_if_no_sandbox()
  s <- box()
  err <- expect_error(s$execute("x <- numeric(1e9)"), class = "securer_limit_error")
  expect_identical(err$limit, "memory")
  expect_match(conditionMessage(err), "memory", fixed = TRUE)
  expect_identical(run_in(s, quote(1 + 1)), 2)
})

test_that("a fork bomb is contained by nproc and leaves no process behind", {
  skip_if_no_sandbox()
  s <- sandboxed_session(limits = list(nproc = 32))
  start_fork_bomb(s, 32)
  Sys.sleep(1.5)
  n <- run_in(s, quote(length(list.files("/proc", pattern = "^[0-9]+$"))), timeout = 10)
  # The bomb ran (it wants thousands) and stopped at the limit.
  expect_gte(n, 16L)
  expect_lte(n, 32L)
  tree <- process_tree(s$pid())
  expect_lte(length(tree), 32L + 2L)
  # The host still forks.
  expect_identical(system("true"), 0L)
  # The session still answers (its R process needs no fork for this).
  expect_identical(run_in(s, quote(1 + 1), timeout = 10), 2)
  s$close()
  expect_true(wait_handles_gone(tree, timeout = 10))
})

test_that("a fork bomb within its nproc limit does not starve another session", {
  skip_if_no_sandbox()
  a <- sandboxed_session(limits = list(nproc = 32))
  b <- box()
  start_fork_bomb(a, 32)
  Sys.sleep(1.5)
  expect_identical(run_in(b, quote(system("echo hi", intern = TRUE))), "hi")
  expect_identical(
    run_in(b, quote(parallel::mccollect(parallel::mcparallel(6 * 7))[[1]])),
    42
  )
})

test_that("a fork bomb at the default nproc does not starve another session", {
  skip_if_no_sandbox()
  a <- sandboxed_session()
  b <- box()
  start_fork_bomb(a, 256)
  Sys.sleep(2)
  got <- tryCatch(
    run_in(b, quote(parallel::mccollect(parallel::mcparallel(6 * 7))[[1]])),
    securer_limit_error = function(e) e
  )
  expect_identical(got, 42)
})

test_that("filling /tmp stops at its cap and the session goes on", {
  skip_if_no_sandbox()
  s <- sandboxed_session(sandbox = build_sandbox_config(tmp_size = 16 * 1024^2))
  res <- s$execute("
    f <- file.path(tempdir(), 'big')
    writeBin(raw(32 * 1024^2), f)
    file.size(f)
  ")
  expect_lte(strip_output(res), 16 * 1024^2)
  expect_true(any(grepl("problem writing", attr(res, "output"))))
  out <- run_in(s, quote(suppressWarnings(
    system("head -c 33554432 /dev/zero 2>&1 >/tmp/more", intern = TRUE)
  )))
  expect_false(is.null(attr(out, "status")))
  expect_true(any(grepl("No space left on device", out)))
  expect_identical(run_in(s, quote(1 + 1)), 2)
})

# Working inside the sandbox ------------------------------------------------

test_that("statistics work inside the sandbox", {
  skip_if_no_sandbox()
  expect_equal(
    run_in(box(), quote(coef(lm(mpg ~ wt + hp, data = mtcars)))),
    coef(lm(mpg ~ wt + hp, data = mtcars))
  )
})

test_that("data frames come back from the sandbox intact", {
  skip_if_no_sandbox()
  df <- data.frame(
    x = c(1.5, NA, 3),
    f = factor(c("a", "b", "a")),
    d = as.Date("2024-01-01") + 0:2,
    s = c("u", NA, "w"),
    row.names = c("r1", "r2", "r3")
  )
  expect_identical(run_in(box(), bquote(.(df))), df)
  expect_identical(run_in(box(), quote(iris)), iris)
})

test_that("the sandbox can write and read files in tempdir()", {
  skip_if_no_sandbox()
  got <- run_in(box(), quote({
    f <- tempfile(fileext = ".rds")
    saveRDS(mtcars, f)
    csv <- tempfile(fileext = ".csv")
    write.csv(iris, csv, row.names = FALSE)
    list(rds = readRDS(f), rows = nrow(read.csv(csv)), dir = tempdir())
  }))
  expect_identical(got$rds, mtcars)
  expect_identical(got$rows, 150L)
  expect_match(got$dir, "^/tmp/")
})

test_that("installed packages from the host's library paths load", {
  skip_if_no_sandbox()
  skip_if_not_installed("jsonlite")
  got <- run_in(box(), quote({
    library(jsonlite)
    list(json = as.character(toJSON(list(a = 1:3))), path = find.package("jsonlite"))
  }))
  expect_identical(got$json, '{"a":[1,2,3]}')
  expect_identical(got$path, find.package("jsonlite"))
  expect_identical(run_in(box(), quote(tools::file_ext("a.csv"))), "csv")
})

test_that("system() works inside the sandbox", {
  skip_if_no_sandbox()
  expect_identical(run_in(box(), quote(system("echo hi", intern = TRUE))), "hi")
})

test_that("the README example works sandboxed", {
  skip_if_no_sandbox()
  res <- execute_r(
    'data <- query_db("mtcars", 5); mean(data$mpg)',
    tools = list(query_db_tool()), sandbox = TRUE, sandbox_strict = TRUE
  )
  expect_equal(strip_output(res), 20.98)
})

# sandbox_info() and the fallback tier --------------------------------------

test_that("sandbox_info() lists every layer, all active here", {
  skip_if_no_sandbox()
  info <- box()$sandbox_info()
  expect_s3_class(info, "data.frame")
  expect_named(info, c("layer", "active", "detail"))
  layers <- c("namespaces", "root", "capabilities", "landlock", "seccomp", "limits", "environment")
  expect_setequal(info$layer, layers)
  expect_true(all(info$active))
  expect_true(all(nzchar(info$detail)))
  expect_match(info$detail[info$layer == "landlock"], "TCP bind/connect denied", fixed = TRUE)
  expect_match(info$detail[info$layer == "landlock"], "signals scoped", fixed = TRUE)
})

test_that("sandbox = FALSE has no sandbox layer active", {
  skip_if_no_sandbox()
  info <- plain()$sandbox_info()
  sandbox_layers <- c("namespaces", "root", "capabilities", "landlock", "seccomp")
  expect_false(any(info$active[info$layer %in% sandbox_layers]))
  # The session itself still runs with the limits and a clean environment.
  expect_true(all(c("limits", "environment") %in% info$layer))
})

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
