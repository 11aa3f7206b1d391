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
    execution_watch(private, resolve, reject)
  })
}

execution_watch <- function(private, resolve, reject) {
  run <- private$run
  poll <- function(...) {
    # Closing the session ended this run; nothing is started again.
    if (!identical(private$run, run)) {
      return(reject(securer_error_cnd(
        "The session was closed before the execution finished.",
        "securer_session_error"
      )))
    }
    if (execution_poll(private, 0) != "ready") {
      return(schedule())
    }
    res <- execution_read(private)
    if (is.null(res$error)) resolve(res$value) else reject(res$error)
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
