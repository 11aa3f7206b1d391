library(testthat)
library(securer)

# Fails a test file that leaves a process, an fd, a connection or a
# temporary file behind.
source("testthat/leak-reporter.R")
test_check("securer", reporter = LeakReporter(ProgressReporter)$new(show_praise = FALSE))
