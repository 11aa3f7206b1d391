# The R test suite against the installed package, ending with one line of
# totals; exits non-zero on any failure.
library(testthat)
res <- test_dir(
  "tests/testthat",
  package = "securer",
  load_package = "installed",
  reporter = ProgressReporter$new(show_praise = FALSE),
  stop_on_failure = FALSE
)
df <- as.data.frame(res)
passed <- sum(df$passed)
failed <- sum(df$failed) + sum(df$error)
skipped <- sum(df$skipped)
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n", passed, failed, skipped))
quit(save = "no", status = if (failed > 0) 1L else 0L)
