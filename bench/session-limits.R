# Whole-session limits with several processes per session, in every tier.
#   Rscript bench/session-limits.R [workers] [limit_mib] [worker_mb]
# Each session runs `workers` R processes (parallel::mclapply) that each
# allocate `worker_mb` MB (default 128) and hold it; a sampler outside the session adds up the
# proportional memory (PSS) of the session's processes every 20 ms. With
# a session memory limit the session must be stopped (securer_limit_error);
# without one it shows what the workers hold together. Prints, per tier:
# the outcome, the peak memory seen, and the time from the start of the
# execution to the session's end.
library(securer)

args <- commandArgs(trailingOnly = TRUE)
workers <- if (length(args) >= 1) as.integer(args[[1]]) else 8L
limit <- (if (length(args) >= 2) as.numeric(args[[2]]) else 512) * 1024^2
worker_mb <- if (length(args) >= 3) as.numeric(args[[3]]) else 128

code <- sprintf(
  "x <- parallel::mclapply(seq_len(%d), function(i) { v <- runif(%.0f); Sys.sleep(4); v[[1]] }, mc.cores = %d); length(x)",
  workers, worker_mb * 1e6 / 8, workers
)

# A background R process that samples the PSS of the process tree under
# host pid `root` until it ends (or `secs` pass): list(t, pss) per sample.
sampler <- function(root, secs = 30) {
  callr::r_bg(function(root, secs) {
    out <- list()
    t0 <- Sys.time()
    h <- ps::ps_handle(root)
    while (as.numeric(Sys.time() - t0, units = "secs") < secs) {
      procs <- tryCatch(c(list(h), ps::ps_children(h, recursive = TRUE)), error = function(e) NULL)
      if (is.null(procs)) break
      pss <- sum(vapply(procs, function(p) {
        tryCatch(ps::ps_memory_full_info(p)[["pss"]], error = function(e) 0)
      }, numeric(1)))
      out[[length(out) + 1L]] <- c(t = as.numeric(Sys.time() - t0, units = "secs"), pss = pss)
      if (!ps::ps_is_running(h)) break
      Sys.sleep(0.02)
    }
    do.call(rbind, out)
  }, args = list(root = root, secs = secs), libpath = .libPaths())
}

run <- function(tier, limits) {
  options(securer.zygote = tier == "forked")
  sandbox <- if (tier == "fallback") build_sandbox_fallback() else TRUE
  s <- suppressWarnings(SecureSession$new(sandbox = sandbox, limits = limits))
  on.exit(s$close())
  bg <- sampler(s$pid())
  t0 <- Sys.time()
  res <- tryCatch(s$execute(code, timeout = 60), error = function(e) e)
  secs <- as.numeric(Sys.time() - t0, units = "secs")
  bg$wait(30000)
  samples <- bg$get_result()
  data.frame(
    tier = tier,
    session_limit = if (is.null(limits$memory) || !is.finite(limits$memory)) "none" else paste(limits$memory / 1024^2, "MiB"),
    outcome = if (inherits(res, "securer_limit_error")) paste("stopped:", res$limit) else if (inherits(res, "error")) class(res)[[1]] else "completed",
    peak_pss_mib = round(max(samples[, "pss"]) / 1024^2),
    seconds = round(secs, 2)
  )
}

rows <- list()
for (tier in c("forked", "cold", "fallback")) {
  rows[[length(rows) + 1L]] <- run(tier, list(memory = limit))
  rows[[length(rows) + 1L]] <- run(tier, list(memory = Inf))
}
cat(sprintf(
  "Whole-session memory, %d workers x %.0f MB per session, R %s, %s\n\n",
  workers, worker_mb, getRversion(), Sys.info()[["sysname"]]
))
print(do.call(rbind, rows), row.names = FALSE)
