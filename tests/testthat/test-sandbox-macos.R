# macOS: the configuration and its Seatbelt profile (R/sandbox-macos.R;
# rendered by the Rust core, whose unit tests check it against the policy),
# tested on the generated text. test-sandbox-portable.R runs sessions
# through the launcher's macOS path.

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
      '  (subpath "/Users/ana/out")',
      '  (subpath "/private/tmp/securer"))'
    )
  )
  lines <- strsplit(profile, "\n", fixed = TRUE)[[1]]
  writes <- grep("file-write", lines, value = TRUE)
  expect_setequal(writes, c("(allow file-write*", "(allow file-write-data"))
  devices <- paste0("/dev/", c("null", "zero", "full", "random", "urandom"))
  expect_identical(
    sbpl_block(profile, "allow file-write-data"),
    paste0('  (literal "', devices, '")', c(rep("", 4), ")"))
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

test_that("the profile runs and maps as code only what lies under read-only paths", {
  ro <- c(
    '  (subpath "/Library/Frameworks/R.framework")',
    '  (subpath "/usr/lib"))'
  )
  expect_identical(sbpl_block(seatbelt(), "allow process-exec"), ro)
  expect_identical(sbpl_block(seatbelt(), "allow file-map-executable"), ro)
})

test_that("the profile is the one the launcher renders from the session policy", {
  policy <- list(
    read_only = I(c("/Library/Frameworks/R.framework", "/usr/lib")),
    writable = I("/Users/ana/out"),
    tmp_size = 0,
    no_namespaces = TRUE,
    fallback_tmp = "/private/tmp/securer"
  )
  expect_identical(rs_seatbelt_profile(to_json(policy)), seatbelt())
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

test_that("a path cannot end its string and add rules of its own", {
  tricky <- c('/Users/ana/x")(allow default)(literal "', "/Users/ana/x\\\")(allow network*)")
  profile <- generate_seatbelt_profile(read_only = tricky, tmp_dir = "/private/tmp/securer")
  lines <- strsplit(profile, "\n", fixed = TRUE)[[1]]
  plain <- strsplit(
    generate_seatbelt_profile(read_only = c("/a", "/b"), tmp_dir = "/private/tmp/securer"),
    "\n",
    fixed = TRUE
  )[[1]]
  # The same rules as for plain paths: the paths stay inside their strings.
  expect_identical(lines[!startsWith(lines, "  ")], plain[!startsWith(plain, "  ")])
  expect_true('  (subpath "/Users/ana/x\\")(allow default)(literal \\"")' %in% sbpl_block(profile, "allow process-exec"))
  expect_input_error(
    generate_seatbelt_profile(read_only = "/a\r(allow default)"),
    "control characters"
  )
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
