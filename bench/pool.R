# Throughput, concurrency and memory, with the issue's targets beside
# them, and mirai daemons.
#   Rscript bench/pool.R [n]
# `n` short executions per throughput figure (default 20000).
# Figures on a 2-core machine vary 2-3x between machines of one kind and
# with load: compare within one run. Run it quiet and with a core busy
# (`yes > /dev/null &`).
library(securer)

args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args)) as.integer(args[[1]]) else 20000L
sandbox <- tryCatch(
  {
    SecureSession$new(sandbox = TRUE, sandbox_strict = TRUE)$close()
    TRUE
  },
  error = function(e) FALSE
)

secs_since <- function(t0) as.numeric(Sys.time()) - t0
timed <- function(expr) {
  t0 <- as.numeric(Sys.time())
  force(expr)
  secs_since(t0)
}

# Short executions through a 2-session pool, per second.
throughput <- function(sandbox) {
  pool <- SecureSessionPool$new(size = 2, sandbox = sandbox)
  on.exit(pool$close())
  invisible(pool$execute_many(rep("1 + 1", 200)))
  n / timed(pool$execute_many(rep("1 + 1", n)))
}

# A pool of 100, all started at once: seconds until every session is ready.
hundred <- function(sandbox) {
  SecureSessionPool$new(size = 2, sandbox = sandbox)$close()
  vapply(1:3, function(i) {
    t <- NULL
    secs <- timed(t <- SecureSessionPool$new(size = 100, sandbox = sandbox))
    t$close()
    Sys.sleep(0.5)
    secs
  }, numeric(1))
}

# Proportional set size (shared pages split among the processes sharing
# them), summed over a session's processes (its supervisor and its R).
session_procs <- function(pid) {
  kids <- sprintf("/proc/%d/task/%d/children", pid, pid)
  c(pid, if (file.exists(kids)) scan(kids, quiet = TRUE))
}
pss_mib <- function(pid) {
  l <- readLines(sprintf("/proc/%d/smaps_rollup", pid))
  sum(as.numeric(sub("^\\S+\\s+(\\d+) kB$", "\\1", grep("^Pss:", l, value = TRUE)))) / 1024
}
# Every process under this one (zygotes, spares, sessions).
descendants <- function() {
  pids <- integer()
  todo <- Sys.getpid()
  while (length(todo)) {
    p <- todo[[1L]]
    todo <- todo[-1L]
    f <- sprintf("/proc/%d/task/%d/children", p, p)
    kids <- if (file.exists(f)) scan(f, quiet = TRUE) else integer()
    pids <- c(pids, kids)
    todo <- c(todo, kids)
  }
  pids
}
# Idle sessions' PSS with 4 more alive (5 in all): the median per session
# (its supervisor and R; shared pages split among all the zygote's
# processes), and the marginal cost of a session: the growth of the PSS
# of every process under this one (zygote and spare included) from 1
# session alive to 5, per session added.
memory <- function(sandbox) {
  measure <- function(k) {
    ss <- lapply(seq_len(k), function(i) SecureSession$new(sandbox = sandbox))
    on.exit(lapply(ss, function(s) s$close()))
    for (s in ss) s$execute("1 + 1")
    Sys.sleep(0.5)
    per <- vapply(ss, function(s) sum(vapply(session_procs(s$pid()), pss_mib, 0)), 0)
    all <- sum(vapply(descendants(), function(p) tryCatch(pss_mib(p), error = function(e) 0), 0))
    c(all = all, median = stats::median(per))
  }
  one <- measure(1L)
  five <- measure(5L)
  c(per_session = five[["median"]], marginal = (five[["all"]] - one[["all"]]) / 4)
}

# A session's own memory (its processes' private pages) after its first
# full collection, which writes to every page of the heap it was forked
# with: what a session costs once it has worked a while, where the idle
# figures are what a waiting one costs.
private_mib <- function(pid) {
  l <- readLines(sprintf("/proc/%d/smaps_rollup", pid))
  kb <- grep("^Private_(Clean|Dirty):", l, value = TRUE)
  sum(as.numeric(sub("^\\S+\\s+(\\d+) kB$", "\\1", kb))) / 1024
}
after_gc <- function(sandbox) {
  s <- SecureSession$new(sandbox = sandbox)
  on.exit(s$close())
  s$execute("invisible(gc())")
  sum(vapply(session_procs(s$pid()), private_mib, 0))
}

# 8 jobs of 0.25 s of CPU: one session vs a 2-session pool.
speedup <- function(sandbox) {
  job <- "x <- 0; t0 <- proc.time()[[1]]; while (proc.time()[[1]] - t0 < 0.25) x <- x + 1; x > 0"
  s <- SecureSession$new(sandbox = sandbox)
  serial <- timed(for (i in 1:8) s$execute(job))
  s$close()
  pool <- SecureSessionPool$new(size = 2, sandbox = sandbox)
  parallel <- timed(pool$execute_many(rep(job, 8)))
  pool$close()
  serial / parallel
}

# Short executions through execute_distributed() on local mirai daemons,
# per second (2 sessions per daemon).
mirai_throughput <- function(daemons, sandbox) {
  if (!requireNamespace("mirai", quietly = TRUE)) {
    return(NA_real_)
  }
  mirai::daemons(daemons)
  on.exit(mirai::daemons(0))
  while (mirai::status()$connections < daemons) Sys.sleep(0.05)
  codes <- rep("1 + 1", n)
  invisible(execute_distributed(codes[1:200], sandbox = sandbox, progress = FALSE))
  n / timed(execute_distributed(codes, sandbox = sandbox, progress = FALSE))
}

modes <- if (sandbox) c(sandboxed = TRUE, "sandbox = FALSE" = FALSE) else c("sandbox = FALSE" = FALSE)
fmt <- function(x, d = 1) ifelse(is.na(x), "-", formatC(x, format = "f", digits = d, big.mark = ","))
rows <- NULL
for (m in names(modes)) {
  sb <- modes[[m]]
  mem <- memory(sb)
  rows <- rbind(
    rows,
    c(sprintf("short executions, 2-session pool, per s (%s)", m), fmt(throughput(sb), 0), ">= 10,000"),
    c(sprintf("100 sessions at once, all ready, s (%s)", m), fmt(stats::median(hundred(sb)), 3), "<= 0.5"),
    c(sprintf("idle session PSS, 4 more alive, MiB (%s)", m), fmt(mem[["per_session"]], 2), ""),
    c(sprintf("idle session marginal PSS (4 more alive), MiB (%s)", m), fmt(mem[["marginal"]], 2), "<= 2"),
    c(sprintf("a session's own memory after a full collection, MiB (%s)", m), fmt(after_gc(sb), 1), ""),
    c(sprintf("8 x 0.25 s CPU jobs, 2-session pool speed-up (%s)", m), fmt(speedup(sb), 2), ">= 1.8"),
    c(sprintf("execute_distributed(), 1 local daemon, per s (%s)", m), fmt(mirai_throughput(1L, sb), 0), ""),
    c(sprintf("execute_distributed(), 2 local daemons, per s (%s)", m), fmt(mirai_throughput(2L, sb), 0), "")
  )
}
colnames(rows) <- c("measure", "securer", "target")
cat(sprintf(
  "securer throughput and memory (n = %d), %d cores, load %s\n\n",
  n, parallel::detectCores(),
  paste(utils::head(scan("/proc/loadavg", what = "", quiet = TRUE), 3), collapse = " ")
))
old <- options(width = 200)
print(noquote(rows), right = FALSE)
options(old)
