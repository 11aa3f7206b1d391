# The native Linux sandbox (R/sandbox-linux.R): its configuration and
# launcher policy, and real sessions working inside it and reporting their
# layers. Escape attempts are in test-sandbox-escapes.R.

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

# ===========================================================================
# Real sandboxed sessions: the code works inside, the layers are reported.
# ===========================================================================

box <- lazy_session()
plain <- lazy_session(function(.env) new_session(.env = .env))

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
