# Fast start and concurrency, printed side by side (sandbox = TRUE).
#   Rscript bench/pool.R [n]
library(securer)

args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args)) as.integer(args[[1]]) else 30L

ms_since <- function(t0) (as.numeric(Sys.time()) - t0) * 1000
time_ms <- function(expr, times) {
  e <- substitute(expr)
  pf <- parent.frame()
  vapply(seq_len(times), function(i) {
    t0 <- as.numeric(Sys.time())
    eval(e, pf)
    ms_since(t0)
  }, numeric(1))
}

# Cold: no zygote (what every start costs without one), and the very first
# start of an R session, which also starts the zygote.
cold <- local({
  old <- options(securer.zygote = FALSE)
  on.exit(options(old))
  time_ms(SecureSession$new()$close(), max(5L, n %/% 3L))
})
first <- time_ms(SecureSession$new()$close(), 1L)
warm <- time_ms(SecureSession$new()$close(), n)
one_shot <- time_ms(execute_r("1 + 1"), n)

# 8 jobs of 0.25 s CPU: one after another on one session vs a 2-session pool.
job <- "x <- 0; t0 <- proc.time()[[1]]; while (proc.time()[[1]] - t0 < 0.25) x <- x + 1; x > 0"
s <- SecureSession$new()
serial <- time_ms(for (i in 1:8) s$execute(job), 1L)
s$close()
pool <- SecureSessionPool$new(size = 2)
parallel <- time_ms(pool$execute_many(rep(job, 8)), 1L)
pool$close()

# Memory of idle warm sessions: proportional set size (PSS: shared pages
# split among the processes sharing them) and unique set size (USS: pages
# no other process has), per session, summed over each session's
# processes (its supervisor and its R), with `k` sessions alive.
session_procs <- function(s) {
  pid <- s$pid()
  kids <- sprintf("/proc/%d/task/%d/children", pid, pid)
  c(pid, if (file.exists(kids)) scan(kids, quiet = TRUE))
}
mem_kb <- function(pid, field) {
  l <- readLines(sprintf("/proc/%d/smaps_rollup", pid))
  sum(as.numeric(sub("^\\S+\\s+(\\d+) kB$", "\\1", grep(field, l, value = TRUE))))
}
memory <- function(k) {
  ss <- lapply(seq_len(k), function(i) SecureSession$new())
  on.exit(lapply(ss, function(s) s$close()))
  for (s in ss) s$execute("1 + 1")
  pss <- vapply(ss, function(s) sum(vapply(session_procs(s), mem_kb, 0, "^Pss:")), 0)
  uss <- vapply(ss, function(s) sum(vapply(session_procs(s), mem_kb, 0, "^Private_(Clean|Dirty):")), 0)
  c(pss = stats::median(pss) / 1024, uss = stats::median(uss) / 1024)
}
m1 <- memory(1L)
m4 <- memory(4L)
m8 <- memory(8L)

fmt <- function(x) formatC(x, format = "f", digits = 1)
rows <- rbind(
  c("session start, cold (no zygote), median ms", fmt(stats::median(cold)), ""),
  c("session start, first (starts the zygote), ms", fmt(first), ""),
  c("session start, warm (forked), median ms", fmt(stats::median(warm)), "< 10"),
  c("execute_r('1 + 1') one-shot, warm, median ms", fmt(stats::median(one_shot)), "< 25"),
  c("8 x 0.25 s CPU jobs, one session, s", fmt(serial / 1000), ""),
  c("8 x 0.25 s CPU jobs, 2-session pool, s", fmt(parallel / 1000), ""),
  c("  speed-up", fmt(serial / parallel), ">= 1.8"),
  c("idle warm session PSS, 1 alive, MiB", fmt(m1[["pss"]]), ""),
  c("idle warm session PSS, 4 alive, MiB", fmt(m4[["pss"]]), ""),
  c("idle warm session PSS, 8 alive, MiB", fmt(m8[["pss"]]), "< 10"),
  c("idle warm session USS (its own pages), MiB", fmt(m8[["uss"]]), "")
)
colnames(rows) <- c("measure (sandbox = TRUE)", "securer", "target")
cat(sprintf("securer start-up and concurrency (n = %d), %d cores\n\n", n, parallel::detectCores()))
print(noquote(rows), right = FALSE)
