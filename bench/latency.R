# Latency of securer's core operations, printed side by side.
#   Rscript bench/latency.R [n]
# Medians over n repetitions (default 200; session start over n / 10).
library(securer)

args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args)) as.integer(args[[1]]) else 200L

time_ms <- function(expr, times) {
  e <- substitute(expr)
  pf <- parent.frame()
  vapply(seq_len(times), function(i) {
    t0 <- as.numeric(Sys.time())
    eval(e, pf)
    (as.numeric(Sys.time()) - t0) * 1000
  }, numeric(1))
}

tools <- list(securer_tool("echo", "Return its argument",
  fn = function(x) x, args = list(x = "numeric")
))

measure <- function(sandbox) {
  start <- time_ms({
    s <- SecureSession$new(sandbox = sandbox)
    s$close()
  }, max(5L, n %/% 10L))
  s <- SecureSession$new(tools = tools, sandbox = sandbox)
  on.exit(s$close())
  invisible(time_ms(s$execute("1 + 1"), 20L))
  exec <- time_ms(s$execute("1 + 1"), n)
  # Tool calls: time a batch inside one execution, per call.
  s$execute("bench_tool <- function(k) for (i in seq_len(k)) echo(1)")
  k <- 1000L
  tool <- time_ms(s$execute(sprintf("bench_tool(%d)", k)), 10L) / k
  base <- time_ms(s$execute(sprintf("for (i in seq_len(%d)) identity(1)", k)), 10L) / k
  one_shot <- time_ms(execute_r("1 + 1", sandbox = sandbox), max(5L, n %/% 10L))
  c(
    "session start (ms)" = stats::median(start),
    "execute('1 + 1') round trip (ms)" = stats::median(exec),
    "tool call round trip (ms)" = stats::median(tool - base),
    "execute_r('1 + 1') one-shot (ms)" = stats::median(one_shot)
  )
}

rows <- list("sandbox = FALSE" = measure(FALSE))
sandbox_ok <- tryCatch(
  {
    s <- suppressWarnings(SecureSession$new(sandbox = TRUE))
    s$close()
    TRUE
  },
  error = function(e) {
    message("sandbox = TRUE unavailable here: ", conditionMessage(e))
    FALSE
  }
)
if (sandbox_ok) rows[["sandbox = TRUE"]] <- suppressWarnings(measure(TRUE))

tab <- do.call(cbind, rows)
cat(sprintf("securer latency, medians (n = %d), R %s, %s\n\n", n, getRversion(), Sys.info()[["sysname"]]))
print(round(tab, 3))
cat("\nTargets: execute round trip < 1 ms; tool call round trip < 0.2 ms.\n")
