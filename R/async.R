# Executions that do not block: a promise settled from the later event
# loop, which wakes when one of the child's fds has something (later_fd()
# waits on them off the main thread), so the host R thread is free in
# between. The pool runs its asynchronous work through these too.

session_execute_async <- function(private, code, timeout, validate,
                                  output_handler, max_tool_calls,
                                  max_code_length, max_output_lines, plots) {
  promises::promise(function(resolve, reject) {
    execution_begin(
      private, code, timeout, validate, output_handler, max_tool_calls,
      max_code_length, max_output_lines, plots
    )
    execution_watch(private, function(res) {
      if (is.null(res$error)) resolve(res$value) else reject(res$error)
    }, reject)
  })
}

# A promise of `$read()`'s answer for the execution started by `$call()`:
# it resolves with list(value, visible, output, error) even when the code
# failed (as `$read()` returns), and rejects only when there is no answer
# to give.
session_read_async <- function(private) {
  promises::promise(function(resolve, reject) {
    if (is.null(private$run)) {
      securer_abort(
        c(
          "No execution is running in this session.",
          i = "Start one with {.code $call()}, then call {.code $read_async()}."
        ),
        class = "securer_session_error"
      )
    }
    execution_watch(private, resolve, reject)
  })
}

# Serves the running execution from the event loop; `done` gets
# execution_read()'s answer once it is there.
execution_watch <- function(private, done, reject) {
  run <- private$run
  poll <- function(...) {
    # Closing the session (or another reader) ended this run; nothing is
    # started again.
    if (!identical(private$run, run)) {
      msg <- if (private$state == "closed") {
        "The session was closed before the execution finished."
      } else {
        "The answer of this execution was read elsewhere."
      }
      return(reject(securer_error_cnd(msg, "securer_session_error")))
    }
    if (execution_poll(private, 0) != "ready") {
      return(schedule())
    }
    done(execution_read(private))
  }
  schedule <- function() {
    fds <- session_poll_fds(private)
    # Wake up by the deadline at the latest, to time the run out.
    wait <- max(0, min(1, run$deadline - now()))
    if (length(fds)) {
      later::later_fd(poll, readfds = fds, timeout = wait)
    } else {
      later::later(poll, 0)
    }
  }
  schedule()
}
