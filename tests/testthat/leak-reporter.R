# A testthat reporter that fails a test file which leaves something behind:
# a child process (a session's launcher, R, a forked session), an open file
# descriptor, an R connection or a file in tempdir(). In the spirit of
# ps::CleanupReporter, which cannot see securer's children: they start
# with a clean environment, so ps's environment marker never reaches them.
#
# The unit is the test file: files share a session between their tests
# (closed when the file ends). Garbage is collected first: an object
# nothing refers to is closed by its finalizer, which is not a leak. Warm
# zygotes outlive sessions on purpose;
# they are stopped at the end of each file, before the check, so that
# their forked sessions count as leaks when they are not closed.
#
# Not a test file itself (testthat runs test-*.R only). Used by
# tools/run-tests.R and tests/testthat.R; tested by
# tests/testthat/test-leak-reporter.R.

leak_snapshot <- function() {
  files <- list.files(tempdir(), all.files = TRUE, no.. = TRUE)
  list(
    pids = leak_descendants(),
    fds = leak_fds(),
    conns = rownames(showConnections()),
    # callr and webfakes keep caches of their own there, on purpose.
    files = files[!grepl("^callr-|^webfakes$", files)]
  )
}

# Processes descending from this one, by pid, with their command lines.
leak_descendants <- function() {
  kids <- tryCatch(ps::ps_children(ps::ps_handle(), recursive = TRUE),
    error = function(e) list()
  )
  info <- vapply(kids, function(p) {
    tryCatch(
      if (ps::ps_status(p) == "zombie") NA_character_ else paste(ps::ps_name(p), ps::ps_pid(p)),
      error = function(e) NA_character_
    )
  }, character(1))
  info[!is.na(info)]
}

# Open fds of this process: "fd -> target".
leak_fds <- function() {
  dir <- "/proc/self/fd"
  if (!dir.exists(dir)) {
    return(character())
  }
  fds <- list.files(dir)
  targets <- Sys.readlink(file.path(dir, fds))
  # list.files() itself holds one fd open on the folder while listing.
  keep <- !is.na(targets) & nzchar(targets) & !startsWith(targets, "/proc/")
  paste(fds[keep], "->", targets[keep])
}

# What is in `now` but not in `before`, by kind; processes get `settle`
# seconds to finish exiting (a killed child is gone a moment later).
leak_diff <- function(before, settle = 5) {
  deadline <- Sys.time() + settle
  repeat {
    now <- leak_snapshot()
    pids <- setdiff(now$pids, before$pids)
    if (length(pids) == 0L || Sys.time() > deadline) break
    Sys.sleep(0.05)
  }
  leaks <- list(
    processes = pids,
    fds = setdiff(now$fds, before$fds),
    connections = setdiff(now$conns, before$conns),
    files = setdiff(now$files, before$files)
  )
  leaks[lengths(leaks) > 0L]
}

leak_message <- function(leaks) {
  paste0(
    "left behind: ",
    paste(names(leaks), vapply(leaks, paste, character(1), collapse = ", "), sep = ": ", collapse = "; ")
  )
}

LeakReporter <- function(reporter = testthat::ProgressReporter) {
  R6::R6Class("LeakReporter",
    inherit = reporter,
    public = list(
      # Files whose leaks were found, with what they left (for tests).
      found = list(),
      start_reporter = function(...) {
        super$start_reporter(...)
        # later keeps two pipes for its fd watcher from its first use on:
        # open them now, so they are not taken for a file's leak.
        if (requireNamespace("later", quietly = TRUE)) {
          later::later_fd(function(...) NULL, timeout = 0)
          later::run_now(0.1)
        }
        # So does nanonext (mirai's messaging) keep an epoll and an eventfd
        # from its first socket on.
        if (requireNamespace("nanonext", quietly = TRUE)) {
          close(nanonext::socket("req"))
        }
        # So does curl (the HTTP client of ellmer's tests) keep a socket
        # pair from its first transfer: one to a closed local port.
        # And its default multi handle (asynchronous requests: ellmer's
        # async chats) another pair, from its first use on.
        if (requireNamespace("curl", quietly = TRUE)) {
          try(curl::curl_fetch_memory("http://127.0.0.1:1/"), silent = TRUE)
          curl::curl_fetch_multi("http://127.0.0.1:1/", done = function(...) NULL, fail = function(...) NULL)
          try(curl::multi_run(timeout = 5), silent = TRUE)
        }
      },
      start_file = function(filename) {
        super$start_file(filename)
        private$current <- basename(filename)
        private$before <- leak_snapshot()
      },
      # The check runs when the file's context ends (after the file's own
      # clean-up), so that the reporter shows it with the file's results.
      end_context = function(context) {
        if (!is.null(private$before)) private$check()
        super$end_context(context)
      },
      end_file = function() {
        # A file without tests has no context to end.
        if (!is.null(private$before)) private$check()
        super$end_file()
      }
    ),
    private = list(
      before = NULL,
      current = NULL,
      check = function() {
        on.exit(private$before <- NULL)
        # What nothing refers to any more is not a leak: finalizers close
        # unreferenced sessions (and HTTP handles) when collected.
        gc()
        if (isNamespaceLoaded("securer")) securer:::zygote_stop_all()
        leaks <- leak_diff(private$before)
        if (length(leaks)) {
          self$found[[private$current]] <- leaks
          # Reported to this reporter only: a leak belongs to no test.
          self$add_result(
            context = private$current, test = "leaves nothing behind",
            result = testthat::expectation("failure", paste(private$current, leak_message(leaks)))
          )
        }
      }
    )
  )
}

