#' Run a batch of code across mirai daemons
#'
#' When a batch outgrows one machine (evaluating thousands of model-written
#' solutions, a benchmark run), `execute_distributed()` spreads it over the
#' daemons of the [mirai](https://mirai.r-lib.org) package: local
#' processes, other machines over SSH, or jobs of a cluster's scheduler
#' (Slurm, SGE, PBS, LSF), all set up with [mirai::daemons()]. Each daemon
#' keeps a pool of sandboxed sessions ([SecureSessionPool], forked from the
#' daemon's own warm zygote) from one batch to the next, and runs its share
#' of the code there; tools run in the daemon's R process, outside the
#' sandbox, with that machine's data and credentials.
#'
#' The code is sent in chunks of `chunk_size` pieces, each run through the
#' daemon's pool with `$execute_many()`. securer must be installed on
#' every machine that runs a daemon.
#'
#' @param codes A character vector of R code.
#' @param tools A list of [securer_tool()] objects; they are sent to the
#'   daemons with their functions' environments.
#' @param timeout Seconds allowed for each piece of code.
#' @param sandbox,limits As for [SecureSession]; `TRUE` means each
#'   daemon's default sandbox (its own R library paths).
#' @param pool_size Sessions per daemon.
#' @param chunk_size Pieces of code per task sent to a daemon; `NULL`
#'   chooses about four tasks per daemon (at most 100 pieces each).
#' @param progress Show a cli progress bar of the chunks done.
#' @param .compute The mirai compute profile (see [mirai::daemons()]).
#' @return A list in the order of `codes`: each element the value of that
#'   piece, or the condition object (a `securer_error`) of a piece that
#'   failed. Pieces of a chunk whose daemon failed (securer missing there,
#'   the daemon died) get a `securer_daemon_error` each.
#' @seealso The "Many machines" section of `vignette("deployment")`.
#' @examplesIf requireNamespace("mirai", quietly = TRUE) && .Platform$OS.type == "unix"
#' mirai::daemons(2)
#' execute_distributed(c("1 + 1", "sqrt(16)", "stop('no')"), sandbox = FALSE)
#' mirai::daemons(0)
#' @export
execute_distributed <- function(codes, tools = list(), timeout = 30,
                                sandbox = TRUE, limits = NULL, pool_size = 2,
                                chunk_size = NULL, progress = interactive(),
                                .compute = NULL) {
  if (!is.character(codes) || anyNA(codes)) {
    securer_abort("{.arg codes} must be a character vector without NA.",
      class = "securer_input_error"
    )
  }
  check_count(pool_size, min = 1)
  check_count(chunk_size, allow_null = TRUE, min = 1)
  check_flag(progress)
  timeout <- check_timeout(timeout)
  tools <- validate_tools(tools)
  if (!requireNamespace("mirai", quietly = TRUE)) {
    securer_abort(
      c(
        "{.fn execute_distributed} needs the {.pkg mirai} package.",
        i = "Install it with {.code install.packages(\"mirai\")}."
      ),
      class = "securer_input_error"
    )
  }
  if (!isTRUE(mirai::daemons_set(.compute = .compute))) {
    securer_abort(
      c(
        "No mirai daemons are set up.",
        i = "Start some first, e.g. {.code mirai::daemons(4)} (see {.fn mirai::daemons})."
      ),
      class = "securer_input_error"
    )
  }
  n <- length(codes)
  if (n == 0L) {
    return(list())
  }
  chunks <- split(seq_len(n), distributed_chunk_of(n, chunk_size, .compute))
  m <- mirai::mirai_map(
    lapply(chunks, function(k) codes[k]),
    daemon_execute,
    .args = list(
      tools = tools, timeout = timeout, sandbox = sandbox, limits = limits,
      pool_size = pool_size
    ),
    .compute = .compute
  )
  done <- mirai::collect_mirai(m, if (progress) ".progress")
  results <- vector("list", n)
  for (j in seq_along(chunks)) {
    k <- chunks[[j]]
    res <- done[[j]]
    if (mirai::is_error_value(res) || !is.list(res) || length(res) != length(k)) {
      res <- rep(list(daemon_error_cnd(res)), length(k))
    }
    results[k] <- res
  }
  results
}

# For each piece of code, the chunk it goes in: about four chunks per
# daemon (so a slow chunk does not hold back the end of the batch), at
# most 100 pieces each.
distributed_chunk_of <- function(n, chunk_size, .compute) {
  if (is.null(chunk_size)) {
    daemons <- tryCatch(mirai::status(.compute)$connections, error = function(e) 1L)
    daemons <- max(1L, as.integer(daemons[1L]), na.rm = TRUE)
    chunk_size <- min(100L, max(1L, ceiling(n / (4L * daemons))))
  }
  (seq_len(n) - 1L) %/% chunk_size
}

# In a daemon: runs one chunk through the daemon's pool for these
# settings, which stays for later chunks and batches.
daemon_execute <- function(codes, tools, timeout, sandbox, limits, pool_size) {
  pool <- daemon_pool(tools, sandbox, limits, pool_size)
  pool$execute_many(codes, timeout = timeout, progress = FALSE)
}

daemon_pool <- function(tools, sandbox, limits, pool_size) {
  # Tools arrive as fresh copies with each task: equal settings hash alike.
  key <- rlang::hash(list(tools, sandbox, limits, pool_size))
  pool <- the$daemon_pools[[key]]
  if (!is.null(pool) && pool$size() > 0L) {
    return(pool)
  }
  # A few kinds of pool are kept; the oldest goes first.
  keep <- utils::tail(names(the$daemon_pools), 3L)
  for (old in setdiff(names(the$daemon_pools), keep)) the$daemon_pools[[old]]$close()
  the$daemon_pools <- the$daemon_pools[keep]
  pool <- SecureSessionPool$new(
    size = pool_size, tools = tools, sandbox = sandbox, limits = limits
  )
  the$daemon_pools[[key]] <- pool
  pool
}

# The condition for each piece of a chunk whose daemon failed. Its message
# comes from a daemon, never from the sandbox; still not a cli template.
daemon_error_cnd <- function(res) {
  msg <- if (mirai::is_error_value(res)) {
    attr(res, "message", exact = TRUE) %||% paste(as.character(res), collapse = " ")
  } else {
    "the daemon returned something other than the chunk's results"
  }
  msg <- rs_clean_text(as.character(msg)[1L], 2000)
  securer_error_cnd(
    c(
      "A mirai daemon could not run this piece of code.",
      x = "{msg}",
      i = "Check that securer is installed where the daemons run."
    ),
    "securer_daemon_error"
  )
}
