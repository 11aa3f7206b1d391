# The R test suite against the installed package, ending with one line of
# totals; exits non-zero on any failure. A test file that leaves a process,
# an fd, a connection or a temporary file behind fails
# (tests/testthat/leak-reporter.R).
library(testthat)
# Every failure is reported, not only the first ten.
set_max_fails(Inf)
source("tests/testthat/leak-reporter.R")
reporter <- LeakReporter(ProgressReporter)$new(show_praise = FALSE)
res <- test_dir(
  "tests/testthat",
  package = "securer",
  load_package = "installed",
  reporter = reporter,
  stop_on_failure = FALSE
)
df <- as.data.frame(res)
passed <- sum(df$passed)
# A leak is reported outside any test: count each leaking file once.
failed <- sum(df$failed) + sum(df$error) + length(reporter$found)
skipped <- sum(df$skipped)
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n", passed, failed, skipped))
quit(save = "no", status = if (failed > 0) 1L else 0L)
