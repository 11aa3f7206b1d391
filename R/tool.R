# Argument types a tool may declare, and their check: defined once in Rust
# (securer_core::tool_types), which the child runtime calls too.
tool_types <- function() rs_tool_types()

tool_type_ok <- function(value, type) rs_tool_type_ok(value, type)

#' @rdname securer_tool
#' @export
securer_tool_class <- S7::new_class(
  "securer_tool",
  package = "securer",
  properties = list(
    name = S7::class_character,
    description = S7::class_character,
    fn = S7::class_function,
    args = S7::class_list
  ),
  # Built directly or by securer_tool(), a tool is checked the same way.
  constructor = function(name = character(), description = character(),
                         fn = function() NULL, args = list()) {
    if (missing(name) && missing(description)) {
      # The prototype S7 asks for (no arguments): not a usable tool.
      return(S7::new_object(S7::S7_object(),
        name = name, description = description, fn = fn, args = args
      ))
    }
    args <- check_tool(name, description, fn, args)
    S7::new_object(S7::S7_object(),
      name = name, description = description, fn = fn, args = args
    )
  },
  validator = function(self) {
    if (length(self@name) == 0L && length(self@description) == 0L) {
      return(NULL)
    }
    tryCatch(
      {
        check_tool(self@name, self@description, self@fn, self@args)
        NULL
      },
      securer_tool_error = function(e) plain_message(e),
      securer_input_error = function(e) plain_message(e)
    )
  }
)

#' Define a tool that sandboxed code can call
#'
#' A tool is an R function that runs on the host, outside the sandbox, with
#' the host's data and credentials. Inside the sandbox it appears as an
#' ordinary function of the same name; calling it sends the arguments to the
#' host, runs `fn` there and returns its value. Arguments are type-checked
#' before the call leaves the sandbox and again on the host. An error in
#' `fn` becomes an R error inside the sandbox (catchable with `tryCatch()`).
#'
#' `securer_tool_class()` makes the same object from the same arguments,
#' with the same checks. A tool's fields can be read with `@` or `$`
#' (`tool$name`, `tool$args`), so the list that `SecureSession$tools()`
#' returns works as `tools$add$args`.
#'
#' @param name Name of the function inside the sandbox: a syntactic R name.
#' @param description What the tool does (shown to language models).
#' @param fn The R function to run on the host.
#' @param args Named list mapping each argument name to its type, one of
#'   `"numeric"`, `"integer"`, `"character"`, `"logical"`, `"list"`,
#'   `"data.frame"`, `"matrix"`, `"complex"`, `"raw"` or `"any"` (no
#'   check). `NULL` as a type means `"any"`. Functions cannot cross the
#'   sandbox boundary, so `"function"` is refused.
#' @return A `securer_tool` S7 object.
#' @examples
#' add <- securer_tool(
#'   "add", "Add two numbers",
#'   fn = function(x, y) x + y,
#'   args = list(x = "numeric", y = "numeric")
#' )
#' add@name
#' add$args
#'
#' # A NULL type is not checked
#' securer_tool("show", "Print anything", fn = function(x) print(x), args = list(x = NULL))$args
#' @export
securer_tool <- function(name, description, fn, args = list()) {
  securer_tool_class(name = name, description = description, fn = fn, args = args)
}

# Checks the parts of a tool; returns `args` as a named list of types.
check_tool <- function(name, description, fn, args) {
  check_string(name)
  if (!grepl("^[A-Za-z.][A-Za-z0-9._]*$", name) || make.names(name) != name ||
    grepl("^\\.[0-9]", name)) {
    securer_abort(
      c(
        "Tool name {.val {name}} is not a syntactic R name.",
        i = "Use letters, digits, {.code .} and {.code _}, starting with a letter."
      ),
      class = "securer_tool_error"
    )
  }
  check_string(description)
  if (!is.function(fn)) {
    securer_abort(
      "{.arg fn} of tool {.val {name}} must be a function, not {.obj_type_friendly {fn}}.",
      class = "securer_tool_error"
    )
  }
  if (!is.null(args) && !is.list(args) && !is.character(args)) {
    securer_abort(
      "{.arg args} of tool {.val {name}} must be a named list of type names.",
      class = "securer_tool_error"
    )
  }
  args <- as.list(args)
  arg_names <- names(args)
  if (length(args) > 0L && (is.null(arg_names) || any(!nzchar(arg_names)) ||
    anyDuplicated(arg_names))) {
    securer_abort(
      "Every argument of tool {.val {name}} needs a unique name.",
      class = "securer_tool_error"
    )
  }
  for (a in arg_names) {
    type <- args[[a]]
    # NULL: not checked, as in the original API.
    if (is.null(type)) {
      args[a] <- list("any")
      next
    }
    if (!is.character(type) || length(type) != 1L || is.na(type)) {
      securer_abort(
        c(
          "Type of argument {.arg {a}} of tool {.val {name}} must be a single string.",
          i = "Use {.val any} (or {.code NULL}) for an argument that is not checked."
        ),
        class = "securer_tool_error"
      )
    }
    if (identical(type, "function")) {
      securer_abort(
        c(
          "Argument {.arg {a}} of tool {.val {name}} cannot be of type {.val function}.",
          i = "Functions cannot cross the sandbox boundary; pass data instead."
        ),
        class = "securer_tool_error"
      )
    }
    if (!type %in% tool_types()) {
      securer_abort(
        c(
          "Unknown type {.val {type}} for argument {.arg {a}} of tool {.val {name}}.",
          i = "Valid types: {.val {tool_types()}} ({.val any} or {.code NULL}: not checked)."
        ),
        class = "securer_tool_error"
      )
    }
  }
  fmls <- names(formals(fn))
  if (!"..." %in% fmls) {
    extra <- setdiff(arg_names, fmls)
    if (length(extra) > 0L) {
      securer_abort(
        "Tool {.val {name}} declares {.arg {extra}}, which {.arg fn} does not take.",
        class = "securer_tool_error"
      )
    }
  }
  lapply(args, as.character)
}

# Fields read with `$` as with `@` (the original API's tools were lists).
#' @export
`$.securer::securer_tool` <- function(x, name) {
  if (!name %in% c("name", "description", "fn", "args")) {
    return(NULL)
  }
  S7::prop(x, name)
}

# In local(): the replacement call assigns `print` where it runs, and a
# copy of print() in the namespace would hide S3 methods such as
# print.securer_sandbox_config.
local({
  S7::method(print, securer_tool_class) <- function(x, ...) {
    args <- x@args
    sig <- if (length(args)) {
      paste0(names(args), ": ", unlist(args), collapse = ", ")
    } else {
      ""
    }
    cat("<securer_tool> ", x@name, "(", sig, ")\n  ", x@description, "\n", sep = "")
    invisible(x)
  }
})

# Checks a list of tools and returns it named by tool name.
validate_tools <- function(tools) {
  if (is.null(tools)) {
    return(list())
  }
  # No tools, the common case: without S7_inherits(), a tenth of the
  # host's work to start a session.
  if (identical(tools, list())) {
    return(stats::setNames(list(), character()))
  }
  if (S7::S7_inherits(tools, securer_tool_class)) tools <- list(tools)
  if (!is.list(tools)) {
    securer_abort(
      "{.arg tools} must be a list of {.fn securer_tool} objects.",
      class = "securer_tool_error"
    )
  }
  for (i in seq_along(tools)) {
    if (!S7::S7_inherits(tools[[i]], securer_tool_class)) {
      securer_abort(
        c(
          "Element {i} of {.arg tools} is not a {.fn securer_tool}.",
          i = "Create tools with {.code securer_tool(name, description, fn, args)}."
        ),
        class = "securer_tool_error"
      )
    }
  }
  nms <- vapply(tools, function(t) t@name, character(1))
  dup <- unique(nms[duplicated(nms)])
  if (length(dup) > 0L) {
    securer_abort(
      "Tool names must be unique; duplicated: {.val {dup}}.",
      class = "securer_tool_error"
    )
  }
  stats::setNames(tools, nms)
}

# What the child needs to build its stubs: names and argument types only.
tool_specs <- function(tools) {
  unname(lapply(tools, function(t) list(name = t@name, args = t@args)))
}
