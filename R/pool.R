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
#' @examplesIf .Platform$OS.type == "unix"
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
      pool_init(
        self, private, size, tools, sandbox, limits, verbose,
        reset_between_uses, sandbox_strict, audit_log
      )
    },

    #' @description Run code on an idle session and return its value
    #'   (blocking).
    #' @param code A single string of R code.
    #' @param timeout Seconds before the execution is stopped (`NULL` or
    #'   `Inf`: none).
    #' @param acquire_timeout Seconds to wait for an idle session while
    #'   asynchronous executions occupy them all.
    execute = function(code, timeout = 30, acquire_timeout = 30) {
      pool_execute(private, code, timeout, acquire_timeout)
    },

    #' @description Run `fn(session)` on a free session and return its
    #'   value (blocking). The session is the caller's alone meanwhile; it
    #'   goes back to the pool when `fn` returns or fails.
    #' @param fn A function of one session.
    #' @param acquire_timeout As for `$execute()`.
    with_session = function(fn, acquire_timeout = 30) {
      pool_with_session(private, fn, acquire_timeout)
    },

    #' @description Run several pieces of code at once across the sessions.
    #' @param codes A character vector of code.
    #' @param timeout Seconds allowed for each piece.
    #' @param progress Show a cli progress bar (it appears once the batch
    #'   has run for a couple of seconds).
    #' @return A list in the order of `codes`: each element the value, or
    #'   the condition object (a `securer_error`) of a failed piece.
    execute_many = function(codes, timeout = 30, progress = interactive()) {
      pool_execute_many(private, codes, timeout, progress)
    },

    #' @description Run code without blocking: returns a promise (package
    #'   promises) of the value, resolved through the later event loop.
    #' @param code A single string of R code.
    #' @param timeout Seconds before the execution is stopped.
    execute_async = function(code, timeout = 30) {
      pool_execute_async(private, code, timeout)
    },

    #' @description Run `fn(session)` on a free session without blocking:
    #'   returns a promise of `fn`'s value. `fn` gets a [SecureSession] that
    #'   is the caller's alone until the promise `fn` returns (or its
    #'   value) settles; then the session goes back to the pool. Queued like
    #'   `$execute_async()` while every session is busy. For asynchronous
    #'   work that needs more than the value, such as
    #'   `function(s) { s$call(code); s$read_async() }`.
    #' @param fn A function of one session, returning a promise or a value.
    with_session_async = function(fn) pool_with_session_async(private, fn),

    #' @description Number of sessions (0 once the pool is closed).
    size = function() if (private$closed) 0L else length(private$members),

    #' @description Number of sessions ready for work (0 once closed).
    available = function() sum(pool_free(private)),

    #' @description Counts of sessions: a list with `total`, `busy`,
    #'   `idle` and `dead`.
    status = function() pool_status(private),

    #' @description The pool's sessions (a list of [SecureSession]s), for
    #'   inspection: `$sandbox_info()`, `$pid()`, ...
    sessions = function() private$members,

    #' @description Close every session. Pending asynchronous executions
    #'   are rejected.
    close = function() pool_close(private),

    #' @description One-line description.
    #' @param ... Ignored.
    format = function(...) pool_format(self, private),

    #' @description Print the pool.
    #' @param ... Ignored.
    print = function(...) {
      cat(self$format(), "\n", sep = "")
      invisible(self)
    }
  ),
  private = list(
    # The SecureSession objects.
    members = NULL,
    # Give each use a fresh child (reset_between_uses).
    reset = FALSE,
    # Asynchronous jobs waiting for a free session.
    queue = NULL,
    # Which sessions an asynchronous job holds (see pool_run_job()).
    held = NULL,
    closed = FALSE,
    finalize = function() {
      for (s in private$members) s$close()
    }
  )
)

pool_init <- function(self, private, size, tools, sandbox, limits, verbose,
                      reset_between_uses, sandbox_strict, audit_log) {
  check_count(size, min = 1)
  check_flag(reset_between_uses)
  private$reset <- reset_between_uses
  private$queue <- list()
  sessions <- vector("list", size)
  on.exit(if (is.null(private$members)) {
    for (s in sessions) if (!is.null(s)) s$close()
  })
  # All children start at once, then each is waited for: the pool is ready
  # in about the time of its slowest start, not the sum of them all.
  for (i in seq_len(size)) {
    sessions[[i]] <- SecureSession$new(
      tools = tools, sandbox = sandbox, limits = limits,
      sandbox_strict = sandbox_strict, verbose = verbose,
      audit_log = audit_log, wait = FALSE
    )
  }
  for (s in sessions) s$await_ready()
  private$members <- sessions
  private$held <- logical(size)
  invisible(self)
}

# Sessions that can take work now: not busy, not closed.
pool_free <- function(private) {
  if (private$closed) {
    return(logical())
  }
  vapply(seq_along(private$members), pool_is_free, logical(1), private = private)
}

pool_is_free <- function(i, private) {
  if (private$held[[i]]) {
    return(FALSE)
  }
  state <- private$members[[i]]$get_state()
  state == "idle" || state == "starting"
}

pool_status <- function(private) {
  states <- vapply(private$members, function(s) s$get_state(), character(1))
  alive <- vapply(private$members, function(s) s$is_alive(), logical(1))
  busy <- states == "busy" | private$held
  list(
    total = length(states), busy = sum(busy),
    idle = sum(!busy & alive), dead = sum(!busy & !alive)
  )
}

pool_format <- function(self, private) {
  st <- pool_status(private)
  sprintf(
    "<SecureSessionPool> %d sessions: %d busy, %d idle, %d dead%s",
    st[["total"]], st[["busy"]], st[["idle"]], st[["dead"]],
    if (private$closed) " (closed)" else ""
  )
}

pool_close <- function(private) {
  private$closed <- TRUE
  queue <- private$queue
  private$queue <- list()
  for (job in queue) {
    job$reject(securer_error_cnd("The pool was closed.", "securer_session_error"))
  }
  for (s in private$members) s$close()
  invisible()
}

pool_check_open <- function(private) {
  if (private$closed) {
    securer_abort("This pool is closed.", class = "securer_session_error")
  }
}

# A free session's index; while asynchronous executions hold every
# session, runs the later event loop until one is released.
pool_acquire <- function(private, acquire_timeout) {
  pool_check_open(private)
  check_number(acquire_timeout, allow_inf = TRUE)
  deadline <- now() + acquire_timeout
  repeat {
    free <- which(pool_free(private))
    if (length(free)) {
      return(free[[1L]])
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

# After a use: a fresh child when the pool resets between uses.
pool_after_use <- function(private, i) {
  if (private$reset && !private$closed) {
    private$members[[i]]$restart()
  }
}

pool_execute <- function(private, code, timeout, acquire_timeout) {
  pool_with_session(private, function(session) {
    session$execute(code, timeout = timeout)
  }, acquire_timeout)
}

pool_with_session <- function(private, fn, acquire_timeout) {
  check_session_fn(fn)
  i <- pool_acquire(private, acquire_timeout)
  private$held[[i]] <- TRUE
  on.exit(pool_release(private, i), add = TRUE)
  fn(private$members[[i]])
}

check_session_fn <- function(fn) {
  if (!is.function(fn)) {
    securer_abort("{.arg fn} must be a function of one session.",
      class = "securer_input_error"
    )
  }
}

pool_execute_many <- function(private, codes, timeout, progress = FALSE) {
  pool_check_open(private)
  if (!is.character(codes) || anyNA(codes)) {
    securer_abort("{.arg codes} must be a character vector without NA.",
      class = "securer_input_error"
    )
  }
  timeout <- check_timeout(timeout)
  check_flag(progress)
  codes <- enc2utf8(codes)
  sessions <- private$members
  m <- length(sessions)
  n <- length(codes)
  results <- vector("list", n)
  nxt <- 1L
  # For each session, the index of the code it runs (0: none), and when
  # that started.
  running <- integer(m)
  started <- numeric(m)
  deadline <- numeric(m)
  # Sessions lent to the batch ($lend()), which rs_batch_run() drives
  # without their R steps; the others take each piece through $call().
  # A lent session is given back when a piece needs more than a plain
  # result (output, a tool call, an error, a timeout), and when the batch
  # ends.
  leases <- vector("list", m)
  handles <- vector("list", m)
  templates <- vector("list", m)
  caps <- numeric(m)
  lent <- logical(m)
  answered <- integer(m)
  last_console <- vector("list", m)
  bar <- if (progress && n > 0L) {
    cli::cli_progress_bar("Running code", total = n, .envir = environment())
  }
  store <- function(k, res) {
    results[k] <<- list(if (is.null(res$error)) res$value else res$error)
    if (!is.null(bar)) cli::cli_progress_update(id = bar)
  }
  finish <- function(i, res) {
    store(running[[i]], res)
    running[[i]] <<- 0L
    pool_after_use(private, i)
  }
  give_back <- function(i, in_flight = NULL) {
    lease <- leases[[i]]
    leases[i] <<- list(NULL)
    lent[[i]] <<- FALSE
    lease$give_back(answered[[i]], last_console[[i]], in_flight)
    answered[[i]] <<- 0L
  }
  # Piece k through $call(); a piece that cannot start (its code does not
  # parse, is too long) is answered with the error at once.
  call_piece <- function(i, k) {
    err <- tryCatch(
      {
        sessions[[i]]$call(codes[[k]], timeout = timeout)
        NULL
      },
      securer_error = identity
    )
    if (is.null(err)) {
      running[[i]] <<- k
      deadline[[i]] <<- now() + timeout
    } else {
      store(k, list(error = err))
    }
  }
  # However the batch ends (Ctrl-C, an error on the host), every session is
  # given back, and none is left running a piece whose answer nobody will
  # read.
  on.exit(
    {
      for (i in which(lent)) {
        give_back(i, if (running[[i]] > 0L) list(code = codes[[running[[i]]]], started = started[[i]]))
      }
      for (i in which(running > 0L)) {
        sessions[[i]]$interrupt()
        sessions[[i]]$read()
      }
    },
    add = TRUE
  )
  lendable <- !private$reset
  interrupted <- tryCatch(
    {
      repeat {
        if (nxt <= n) {
          for (i in which(running == 0L & !lent)) {
            if (nxt > n) break
            if (private$closed || !pool_is_free(i, private)) next
            lease <- if (lendable) sessions[[i]]$lend(timeout)
            if (is.null(lease)) {
              k <- nxt
              nxt <- nxt + 1L
              call_piece(i, k)
            } else {
              leases[[i]] <- lease
              handles[i] <- list(lease$handle)
              templates[i] <- list(lease$template)
              caps[[i]] <- lease$console_cap
              lent[[i]] <- TRUE
            }
          }
        }
        general <- which(running > 0L & !lent)
        if (any(lent)) {
          on_loan <- which(lent)
          # The other sessions' fds: one without any has an event queued.
          fds <- lapply(sessions[general], function(s) s$poll_fds())
          queued <- general[lengths(fds) == 0L]
          # Runs until a lent session needs R or the pool's other sessions
          # have something to say, for 100 ms at most. (100000: $call()'s
          # max_code_length.)
          step <- rs_batch_run(
            handles[on_loan], templates[on_loan], codes, nxt, running[on_loan],
            started[on_loan], timeout,
            c(100000, min(timeout, 30) * 1000, if (length(queued)) 0 else 100),
            as.integer(unlist(fds)), caps[on_loan], the$null_bytes
          )
          nxt <- step$cursor
          running[on_loan] <- step$running
          started[on_loan] <- step$started
          for (d in seq_along(step$done)) {
            i <- on_loan[[step$by[[d]]]]
            # Read in Rust (list(value, visible, console)) when its value
            # is a vector, else unserialized.
            res <- step$payloads[[d]]
            if (is.raw(res)) res <- quick_result(res, caps[[i]])
            if (is.null(res)) {
              # Rust's check found a plain result, which R's agrees with
              # unless one of the two is wrong: the piece failed.
              res <- failed(securer_error_cnd(
                "The child R process sent a malformed result.", "securer_ipc_error"
              ))
            } else {
              last_console[i] <- list(res$console)
            }
            answered[[i]] <- answered[[i]] + 1L
            store(step$done[[d]], res)
          }
          for (j in which(step$stopped)) {
            i <- on_loan[[j]]
            k <- step$unsent[[j]]
            if (k > 0L) {
              # Not sent (the code is not UTF-8 text, too long, or the child
              # is not idle): the general path says why.
              give_back(i)
              call_piece(i, k)
            } else {
              # Anything but a plain result, an error object from Rust, or a
              # timeout: the session's own to finish.
              ev <- step$events[[j]]
              if (inherits(ev, "securer_rs_error")) ev <- NULL
              k <- running[[i]]
              deadline[[i]] <- started[[i]] + timeout
              give_back(i, list(code = codes[[k]], started = started[[i]], event = ev))
            }
          }
          # The other sessions: those that have something to say, and those
          # past their deadline.
          serve <- if (step$extra) general else union(queued, general[deadline[general] <= now()])
          for (i in serve) {
            if (sessions[[i]]$poll_process(0) == "ready") finish(i, sessions[[i]]$read())
          }
          # Lent sessions with nothing left to run go back.
          if (nxt > n) for (i in which(lent & running == 0L)) give_back(i)
          # A pending Ctrl-C (which ended the loop) is taken here, as after
          # a quiet wait (see below).
          if (step$interrupt || (!length(step$done) && !any(step$stopped) && !step$extra)) {
            Sys.sleep(0)
          }
          next
        }
        if (!length(general)) {
          if (nxt > n) break
          # Asynchronous executions hold every session: run the event loop
          # that finishes them.
          later::run_now(0.1)
          next
        }
        hit <- rs_wait_sessions(lapply(sessions[general], function(s) s$poll_fds()), 100)
        if (length(hit)) {
          # Served: the sessions that have something to say, and those
          # past their deadline (which time out only when polled).
          serve <- general[seq_along(general) %in% hit | deadline[general] <= now()]
        } else {
          # A quiet wait: a pending Ctrl-C is noticed here (see
          # execution_wait(); a busy batch evaluates enough R for R to).
          Sys.sleep(0)
          serve <- general
        }
        for (i in serve) {
          if (sessions[[i]]$poll_process(0) == "ready") finish(i, sessions[[i]]$read())
        }
      }
      FALSE
    },
    interrupt = function(e) TRUE
  )
  if (!is.null(bar)) cli::cli_progress_done(id = bar)
  if (interrupted) {
    securer_abort(
      c("Batch interrupted.", i = "The pool's sessions are still usable."),
      class = "securer_interrupt"
    )
  }
  results
}

pool_execute_async <- function(private, code, timeout) {
  check_string(code)
  timeout <- check_timeout(timeout)
  pool_with_session_async(private, function(session) {
    session$execute_async(code, timeout = timeout)
  })
}

pool_with_session_async <- function(private, fn) {
  pool_check_open(private)
  check_session_fn(fn)
  promises::promise(function(resolve, reject) {
    private$queue <- c(private$queue, list(list(
      fn = fn, resolve = resolve, reject = reject
    )))
    pool_dispatch(private)
  })
}

# Starts queued asynchronous executions on free sessions.
pool_dispatch <- function(private) {
  while (length(private$queue) && !private$closed) {
    free <- which(pool_free(private))
    if (!length(free)) {
      return(invisible())
    }
    i <- free[[1L]]
    job <- private$queue[[1L]]
    private$queue <- private$queue[-1L]
    pool_run_job(private, i, job)
  }
  invisible()
}

# (A function of its own: each job's callbacks keep their own `i` and `job`.)
pool_run_job <- function(private, i, job) {
  # The session is the job's until it settles, even while `fn` has not
  # made it busy yet.
  private$held[[i]] <- TRUE
  p <- tryCatch(
    promises::promise_resolve(job$fn(private$members[[i]])),
    error = function(e) promises::promise_reject(e)
  )
  promises::then(p,
    onFulfilled = function(value) {
      pool_release(private, i)
      job$resolve(value)
    },
    onRejected = function(err) {
      pool_release(private, i)
      job$reject(err)
    }
  )
}

pool_release <- function(private, i) {
  private$held[[i]] <- FALSE
  if (!private$closed) pool_after_use(private, i)
  pool_dispatch(private)
}
