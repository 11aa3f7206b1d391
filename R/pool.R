#' A pool of sandboxed sessions that run code concurrently
#'
#' @description
#' `SecureSessionPool` keeps `size` [SecureSession]s ready. One host R
#' process drives them all: `$execute_many()` runs a batch across the
#' sessions at once, and `$execute_async()` returns a promise (resolved
#' through the later event loop) so a Shiny `ExtendedTask` or a Plumber
#' endpoint stays responsive. Tool calls from concurrent sessions are served
#' on the host thread as they arrive. Dead or timed-out sessions are replaced
#' without the caller noticing.
#'
#' @examples
#' pool <- SecureSessionPool$new(size = 2, sandbox = FALSE)
#' pool$execute("1 + 1")
#' pool$execute_many(c("Sys.getpid()", "sqrt(16)", "stop('no')"))
#' pool$status()
#' pool$close()
#' @export
SecureSessionPool <- R6::R6Class(
  "SecureSessionPool",
  cloneable = FALSE,
  public = list(
    #' @description Start the pool's sessions.
    #' @param size Number of sessions.
    #' @param tools,sandbox,limits,verbose,sandbox_strict,audit_log Passed to
    #'   each [SecureSession].
    #' @param reset_between_uses Give every execution a fresh child, so that
    #'   no state leaks from one use to the next.
    initialize = function(size = 4, tools = list(), sandbox = TRUE,
                          limits = NULL, verbose = FALSE,
                          reset_between_uses = FALSE, sandbox_strict = FALSE,
                          audit_log = NULL) {
      check_number(size)
      check_flag(reset_between_uses)
      if (size != round(size)) {
        securer_abort("{.arg size} must be a whole number.", class = "securer_input_error")
      }
      private$reset <- reset_between_uses
      private$queue <- list()
      sessions <- vector("list", size)
      on.exit(if (is.null(private$sessions)) lapply(sessions, function(s) if (!is.null(s)) s$close()))
      for (i in seq_len(size)) {
        sessions[[i]] <- SecureSession$new(
          tools = tools, sandbox = sandbox, limits = limits,
          sandbox_strict = sandbox_strict, verbose = verbose,
          audit_log = audit_log
        )
      }
      private$sessions <- sessions
      invisible(self)
    },

    #' @description Run code on an idle session and return its value
    #'   (blocking).
    #' @param code A single string of R code.
    #' @param timeout Seconds before the execution is stopped.
    #' @param acquire_timeout Seconds to wait for an idle session while
    #'   asynchronous executions occupy them all.
    execute = function(code, timeout = 30, acquire_timeout = 30) {
      i <- pool_acquire(private, acquire_timeout)
      on.exit(pool_after_use(private, i), add = TRUE)
      private$sessions[[i]]$execute(code, timeout = timeout)
    },

    #' @description Run several pieces of code at once across the sessions.
    #' @param codes A character vector of code.
    #' @param timeout Seconds allowed for each piece.
    #' @return A list in the order of `codes`: each element the value, or
    #'   the condition object (a `securer_error`) of a failed piece.
    execute_many = function(codes, timeout = 30) {
      pool_execute_many(private, codes, timeout)
    },

    #' @description Run code without blocking: returns a promise (package
    #'   promises) of the value, resolved through the later event loop.
    #' @param code A single string of R code.
    #' @param timeout Seconds before the execution is stopped.
    execute_async = function(code, timeout = 30) {
      pool_execute_async(private, code, timeout)
    },

    #' @description Number of sessions.
    size = function() length(private$sessions),

    #' @description Number of idle sessions.
    available = function() sum(!pool_busy(private)),

    #' @description Counts of sessions: `total`, `busy`, `idle`, `dead`.
    status = function() {
      busy <- pool_busy(private)
      alive <- vapply(private$sessions, function(s) s$is_alive(), logical(1))
      c(
        total = length(busy), busy = sum(busy),
        idle = sum(!busy & alive), dead = sum(!busy & !alive)
      )
    },

    #' @description Close every session. Pending asynchronous executions
    #'   are rejected.
    close = function() {
      for (job in private$queue) {
        job$reject(securer_condition("The pool was closed.", "securer_session_error"))
      }
      private$queue <- list()
      for (s in private$sessions) s$close()
      private$closed <- TRUE
      invisible(self)
    },

    #' @description One-line description.
    #' @param ... Ignored.
    format = function(...) {
      st <- self$status()
      sprintf(
        "<SecureSessionPool> %d sessions: %d busy, %d idle, %d dead%s",
        st[["total"]], st[["busy"]], st[["idle"]], st[["dead"]],
        if (private$closed) " (closed)" else ""
      )
    },

    #' @description Print the pool.
    #' @param ... Ignored.
    print = function(...) {
      cat(self$format(), "\n", sep = "")
      invisible(self)
    }
  ),
  private = list(
    sessions = NULL,
    reset = FALSE,
    queue = NULL,
    closed = FALSE,
    finalize = function() {
      for (s in private$sessions) s$close()
    }
  )
)

# A classed condition object, for promise rejections and batch results.
securer_condition <- function(message, class) {
  tryCatch(securer_abort(message, class = class), error = identity)
}

session_private <- function(session) session$.__enclos_env__$private

pool_busy <- function(private) {
  vapply(private$sessions, function(s) session_private(s)$busy, logical(1))
}

pool_check_open <- function(private) {
  if (private$closed) {
    securer_abort("This pool is closed.", class = "securer_session_error")
  }
}

# An idle session's index; while asynchronous executions hold every
# session, runs the later event loop until one is released.
pool_acquire <- function(private, acquire_timeout) {
  pool_check_open(private)
  deadline <- now() + acquire_timeout
  repeat {
    idle <- which(!pool_busy(private))
    if (length(idle)) {
      return(idle[[1L]])
    }
    if (now() >= deadline) {
      securer_abort(
        c(
          "No session became available within {acquire_timeout} seconds.",
          i = "Use a larger pool or a longer {.arg acquire_timeout}."
        ),
        class = c("securer_pool_timeout", "securer_timeout")
      )
    }
    later::run_now(min(0.1, max(0, deadline - now())))
  }
}

pool_after_use <- function(private, i) {
  if (private$reset && !private$closed) {
    session_private(private$sessions[[i]])$replace_child("reset between uses")
  }
}

pool_execute_many <- function(private, codes, timeout) {
  pool_check_open(private)
  if (!is.character(codes) || anyNA(codes)) {
    securer_abort("{.arg codes} must be a character vector without NA.",
      class = "securer_input_error"
    )
  }
  check_number(timeout, allow_inf = TRUE)
  n <- length(codes)
  results <- vector("list", n)
  nxt <- 1L
  active <- list()
  finish <- function(i, ev) {
    a <- active[[as.character(i)]]
    sp <- session_private(private$sessions[[i]])
    results[a$k] <<- list(if (inherits(ev, "error")) {
      # The run itself failed (say, the child died while a tool call was
      # answered): only this element fails.
      sp$busy <- FALSE
      ev
    } else {
      tryCatch(execution_end(sp, a$run, ev), error = identity)
    })
    active[[as.character(i)]] <<- NULL
    pool_after_use(private, i)
  }
  interrupted <- tryCatch(
    {
      repeat {
        for (i in which(!pool_busy(private))) {
          if (nxt > n) break
          k <- nxt
          nxt <- nxt + 1L
          sp <- session_private(private$sessions[[i]])
          run <- tryCatch(
            execution_begin(sp, codes[[k]], timeout, TRUE, NULL, NULL, 100000, NULL),
            error = identity
          )
          if (inherits(run, "error")) {
            results[k] <- list(run)
          } else {
            active[[as.character(i)]] <- list(k = k, run = run)
          }
        }
        if (!length(active)) {
          if (nxt > n) break
          # Asynchronous executions hold every session: run the event loop
          # that finishes them.
          later::run_now(0.1)
          next
        }
        ids <- as.integer(names(active))
        handles <- lapply(ids, function(i) session_private(private$sessions[[i]])$child$handle)
        # A pending Ctrl-C is noticed here (see pump_execution()).
        Sys.sleep(0)
        rs_wait_any(handles, 100)
        for (i in ids) {
          sp <- session_private(private$sessions[[i]])
          run <- active[[as.character(i)]]$run
          ev <- tryCatch(
            {
              repeat {
                ev <- execution_step(sp, run, 0)
                if (!isTRUE(ev)) break
              }
              ev
            },
            error = identity
          )
          if (is.list(ev)) finish(i, ev)
        }
      }
      FALSE
    },
    interrupt = function(e) TRUE
  )
  if (interrupted) {
    for (id in names(active)) {
      i <- as.integer(id)
      sp <- session_private(private$sessions[[i]])
      interrupt_execution(sp, active[[id]]$run)
      sp$busy <- FALSE
    }
    securer_abort(
      c("Batch interrupted.", i = "The pool's sessions are still usable."),
      class = "securer_interrupt"
    )
  }
  results
}

pool_execute_async <- function(private, code, timeout) {
  pool_check_open(private)
  check_string(code)
  check_number(timeout, allow_inf = TRUE)
  promises::promise(function(resolve, reject) {
    private$queue <- c(private$queue, list(list(
      code = code, timeout = timeout, resolve = resolve, reject = reject
    )))
    pool_dispatch(private)
  })
}

# Starts queued asynchronous executions on idle sessions.
pool_dispatch <- function(private) {
  while (length(private$queue) && !private$closed) {
    idle <- which(!pool_busy(private))
    if (!length(idle)) {
      return(invisible())
    }
    i <- idle[[1L]]
    job <- private$queue[[1L]]
    private$queue <- private$queue[-1L]
    sp <- session_private(private$sessions[[i]])
    run <- tryCatch(
      execution_begin(sp, job$code, job$timeout, TRUE, NULL, NULL, 100000, NULL),
      error = identity
    )
    if (inherits(run, "error")) {
      job$reject(run)
    } else {
      pool_watch(private, i, run, job)
    }
  }
  invisible()
}

# Advances one asynchronous run whenever its child has something to say:
# later_fd() waits on the child's fds off the main thread and calls back on
# it, so the host R thread is free in between.
pool_watch <- function(private, i, run, job) {
  sp <- session_private(private$sessions[[i]])
  poll <- function(...) {
    # Closing the pool closed this run's child; its next step must not
    # start a new one.
    if (private$closed) {
      return(job$reject(securer_condition("The pool was closed.", "securer_session_error")))
    }
    ev <- tryCatch(
      {
        repeat {
          ev <- execution_step(sp, run, 0)
          if (!isTRUE(ev)) break
        }
        ev
      },
      error = identity
    )
    if (is.null(ev)) {
      return(schedule())
    }
    value <- if (inherits(ev, "error")) {
      sp$busy <- FALSE
      ev
    } else {
      tryCatch(execution_end(sp, run, ev), error = identity)
    }
    if (!private$closed) pool_after_use(private, i)
    if (inherits(value, "error")) job$reject(value) else job$resolve(value)
    pool_dispatch(private)
  }
  schedule <- function() {
    if (private$closed || is.null(sp$child)) {
      return(job$reject(securer_condition("The pool was closed.", "securer_session_error")))
    }
    fds <- rs_poll_fds(sp$child$handle)
    wait <- max(0, min(1, run$deadline - now()))
    if (length(fds)) {
      later::later_fd(poll, readfds = fds, timeout = wait)
    } else {
      later::later(poll, 0)
    }
  }
  schedule()
}
