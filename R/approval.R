# Approval of tool calls from the sandbox: each tool's function asks the
# user's hook first, and a refusal becomes the tool's error, which the
# child raises as a catchable R error (the tool itself never runs).

approve_tools <- function(tools, approve) {
  if (is.null(approve)) {
    return(tools)
  }
  if (!is.function(approve)) {
    securer_abort(
      c(
        "{.arg approve} must be a function or {.code NULL}, not {.obj_type_friendly {approve}}.",
        i = "Give {.code function(tool, args)} returning {.code TRUE} to allow a call."
      ),
      class = "securer_input_error"
    )
  }
  lapply(tools, approve_tool, approve = approve)
}

approve_tool <- function(tool, approve) {
  name <- tool@name
  fn <- tool@fn
  guarded <- function(...) {
    refusal <- approval_refusal(approve, name, list(...))
    if (!is.null(refusal)) stop(refusal, call. = FALSE)
    fn(...)
  }
  attr(guarded, "ellmer_annotations") <- attr(fn, "ellmer_annotations", exact = TRUE)
  tool@fn <- guarded
  tool
}

# NULL when `approve` lets the call run, else the message the sandboxed
# code gets. Anything but TRUE refuses (fail closed); the hook's own error
# is for the host developer, so the child gets no detail of it.
approval_refusal <- function(approve, name, args) {
  verdict <- tryCatch(
    approve(name, args),
    ellmer_tool_reject = function(e) conditionMessage(e),
    error = function(e) {
      cli::cli_warn(
        c(
          "The approval hook failed; the call of tool {.val {name}} was refused.",
          x = "{conditionMessage(e)}"
        ),
        class = c("securer_approval_warning", "securer_warning")
      )
      NA
    }
  )
  if (isTRUE(verdict)) {
    return(NULL)
  }
  reason <- if (is.character(verdict) && length(verdict) == 1L && !is.na(verdict)) {
    verdict
  } else if (isFALSE(verdict)) {
    NULL
  } else {
    "the approval check did not allow it"
  }
  paste(c("the host refused this call", reason), collapse = ": ")
}
