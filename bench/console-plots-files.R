# What the console transcript, plots and file transfers cost, per tier.
#   Rscript bench/console-plots-files.R [n]
# Medians over n repetitions (default 30), in milliseconds:
# - "1 + 1": an execution that prints its value, with the transcript (the
#   default) and without (options(securer.max_console_bytes = 0));
# - "summary(lm)": a value that cannot cross, shown in the transcript;
# - "plot": one base-graphics page rendered, checked and returned
#   (800 x 600 PNG), and the first plot of a fresh session;
# - upload and download of a 10 MB file, and the rate that makes.
library(securer)

args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args)) as.integer(args[[1]]) else 30L

time_ms <- function(expr, times = n) {
  e <- substitute(expr)
  pf <- parent.frame()
  median(vapply(seq_len(times), function(i) {
    t0 <- proc.time()[[3]]
    eval(e, pf)
    (proc.time()[[3]] - t0) * 1000
  }, numeric(1)))
}

big <- tempfile(fileext = ".bin")
writeBin(as.raw(sample(0:255, 10e6, replace = TRUE)), big)
back <- tempfile(fileext = ".bin")

measure <- function(tier) {
  sandbox <- switch(tier, warm = , cold = TRUE, fallback = build_sandbox_fallback(), none = FALSE)
  old <- options(securer.zygote = tier != "cold")
  on.exit(options(old))
  first <- time_ms(
    {
      s0 <- suppressWarnings(SecureSession$new(sandbox = sandbox))
      s0$execute("plot(1:10)")
      s0$close()
    },
    max(3L, n %/% 10L)
  )
  s <- suppressWarnings(SecureSession$new(sandbox = sandbox))
  on.exit(s$close(), add = TRUE)
  s$execute("1")
  with_console <- time_ms(s$execute("1 + 1"))
  options(securer.max_console_bytes = 0)
  without <- time_ms(s$execute("1 + 1"))
  options(securer.max_console_bytes = NULL)
  fit <- time_ms(try(s$execute("summary(lm(mpg ~ wt, mtcars))"), silent = TRUE))
  plot <- time_ms(s$execute("plot(rnorm(100))"))
  up <- time_ms(s$upload(big, "big.bin"), max(3L, n %/% 5L))
  down <- time_ms(s$download("big.bin", back), max(3L, n %/% 5L))
  stopifnot(identical(tools::md5sum(big)[[1]], tools::md5sum(back)[[1]]))
  c(
    `1 + 1` = with_console, `1 + 1, no transcript` = without,
    `summary(lm)` = fit, plot = plot, `session + first plot` = first,
    `upload 10 MB` = up, `download 10 MB` = down,
    `upload MB/s` = 10e3 / up, `download MB/s` = 10e3 / down
  )
}

tiers <- c("warm", "cold", "fallback", "none")
res <- sapply(tiers, function(t) tryCatch(measure(t), error = function(e) {
  message(t, ": ", conditionMessage(e))
  rep(NA_real_, 9)
}))
print(round(res, 1))
unlink(c(big, back))
