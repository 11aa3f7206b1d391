#' Call ellmer tools from sandboxed code ("code mode")
#'
#' Turns [ellmer](https://ellmer.tidyverse.org/) tools (`ToolDef`s made by
#' [ellmer::tool()], btw's tools, the tools that `mcptools::mcp_tools()`
#' brings from other MCP servers) into [securer_tool()]s, so that R code in
#' the sandbox calls each of them as an ordinary function. A model can then
#' write one piece of code that calls several tools and works with their
#' results in R, instead of one round trip through the model per call.
#'
#' @details
#' **Names.** A tool keeps its name, with `-` replaced by `_` (and a prefix
#' where the name would not be a syntactic R name).
#'
#' **Arguments** are checked on both sides of the sandbox. Each ellmer type
#' maps to the closest securer type, checked in the sandbox before the call
#' leaves it: `type_string()` and `type_enum()` to `"character"`,
#' `type_number()` to `"numeric"`, `type_integer()` to `"integer"`,
#' `type_boolean()` to `"logical"`, arrays of those to vectors of the same
#' type, `type_object()` and arrays of arrays to `"list"`, arrays of objects
#' or of enums and `type_from_schema()` to `"any"`. On the host each
#' argument is then checked against the ellmer type itself, before the tool
#' runs: scalars have length one (and are not `NA`), enum values are among
#' the allowed ones, integers are whole numbers, objects are named lists
#' with their required elements and no unknown ones (recursively), arrays
#' of objects are data frames or lists of such objects. A missing required
#' argument (one that the ellmer type requires and the tool's function has
#' no default for) or a value that does not fit is refused with an error
#' in the sandbox naming the argument and what it must be. Values reach the tool
#' as ellmer would give them from a model's JSON: integers as integers,
#' arrays of enum values as factors, arrays of objects as data frames (and
#' as plain JSON-like lists for tools made with `convert = FALSE`).
#' `type_from_schema()` arguments are passed unchecked.
#'
#' **Results.** What the tool returns is made into plain R data for the
#' sandbox: a `ContentToolResult` gives its value (its error becomes an
#' error in the sandbox), JSON text (class `json`) is parsed with
#' [jsonlite::fromJSON()], text content becomes a string, an image a list
#' (`type`, `mime_type`, `data` in base64, or `url`). Tools that return a
#' promise cannot be called from the sandbox.
#'
#' **Annotations** of the ellmer tools (see [ellmer::tool_annotations()])
#' are kept: [securer_as_ellmer_tool()] marks its execute tool as
#' non-destructive and closed-world only when every tool says so.
#'
#' @param tools An ellmer tool or a list of them (a list may also hold
#'   [securer_tool()]s, which are kept as they are).
#' @param approve `NULL`, or a function `function(tool, args)` asked before
#'   each call from the sandbox; see [securer_as_ellmer_tool()].
#' @return A list of [securer_tool()] objects, named by tool name.
#' @seealso [securer_as_ellmer_tool()], which converts ellmer tools given in
#'   its `tools` with this function.
#' @examplesIf .Platform$OS.type == "unix"
#' if (requireNamespace("ellmer", quietly = TRUE)) {
#'   weather <- ellmer::tool(
#'     function(city, unit = "celsius") {
#'       paste("22 degrees", unit, "in", city)
#'     },
#'     name = "get_weather",
#'     description = "Get the current weather in a city.",
#'     arguments = list(
#'       city = ellmer::type_string("City name"),
#'       unit = ellmer::type_enum(c("celsius", "fahrenheit"), required = FALSE)
#'     )
#'   )
#'   tools <- securer_tools_from_ellmer(list(weather))
#'   tools$get_weather
#'
#'   session <- SecureSession$new(tools = tools, sandbox = FALSE)
#'   session$execute("get_weather('Paris', unit = 'fahrenheit')")
#'   # Checked against the ellmer type before the tool runs
#'   try(session$execute("get_weather('Paris', unit = 'kelvin')"))
#'   session$close()
#' }
#'
#' if (FALSE) {
#'   # btw's tools and the tools of other MCP servers, inside the sandbox
#'   tools <- securer_tools_from_ellmer(c(btw::btw_tools("docs"), mcptools::mcp_tools()))
#'   chat <- ellmer::chat_openai()
#'   chat$register_tool(securer_as_ellmer_tool(tools = tools))
#' }
#' @export
securer_tools_from_ellmer <- function(tools, approve = NULL) {
  require_ellmer("convert ellmer tools")
  if (is_tool_def(tools)) tools <- list(tools)
  if (!is.list(tools)) {
    securer_abort(
      "{.arg tools} must be an ellmer tool or a list of them, not {.obj_type_friendly {tools}}.",
      class = "securer_tool_error"
    )
  }
  tools <- validate_tools(as_securer_tools(tools))
  approve_tools(tools, approve)
}

# Converts the ellmer tools of a list of tools (securer tools stay as
# they are).
as_securer_tools <- function(tools) {
  if (is.null(tools) || S7::S7_inherits(tools, securer_tool_class)) {
    return(tools)
  }
  if (is_tool_def(tools)) {
    return(list(tool_from_ellmer(tools)))
  }
  if (!is.list(tools)) {
    return(tools)
  }
  lapply(tools, function(t) if (is_tool_def(t)) tool_from_ellmer(t) else t)
}

is_tool_def <- function(x) {
  requireNamespace("ellmer", quietly = TRUE) && S7::S7_inherits(x, ellmer::ToolDef)
}

tool_from_ellmer <- function(tool) {
  name <- r_tool_name(tool@name)
  props <- tool@arguments@properties
  convert <- isTRUE(tool@convert)
  # Called from R, an argument with a default in the tool's function may
  # be left out even when the model must give it (btw's `_intent`).
  defaults <- formals(tool)
  needed <- vapply(names(props), function(nm) {
    isTRUE(props[[nm]]@required) &&
      !(nm %in% names(defaults) && !identical(defaults[[nm]], quote(expr = )))
  }, logical(1))
  fn <- function(...) {
    args <- ellmer_args_checked(list(...), props, needed, convert)
    sandbox_value(do.call(tool, args))
  }
  attr(fn, "ellmer_annotations") <- tool@annotations
  securer_tool(
    name,
    description = ellmer_tool_doc(tool@description, props, needed),
    fn = fn,
    args = lapply(props, securer_arg_type)
  )
}

# ellmer allows names that R does not: "get-weather", "2fa".
r_tool_name <- function(name) {
  name <- gsub("-", "_", name, fixed = TRUE)
  if (!grepl("^[A-Za-z]", name)) name <- paste0("tool_", name)
  if (make.names(name) != name) name <- paste0(name, "_tool")
  name
}

# The securer type checked in the sandbox for an ellmer type: the closest
# one that accepts every value the ellmer type does.
securer_arg_type <- function(type) {
  basic <- c(string = "character", number = "numeric", integer = "integer", boolean = "logical")
  if (S7::S7_inherits(type, ellmer::TypeBasic)) {
    return(basic[[type@type]])
  }
  if (S7::S7_inherits(type, ellmer::TypeEnum)) {
    return("character")
  }
  if (S7::S7_inherits(type, ellmer::TypeArray)) {
    items <- type@items
    if (S7::S7_inherits(items, ellmer::TypeBasic)) {
      return(basic[[items@type]])
    }
    if (S7::S7_inherits(items, ellmer::TypeArray)) {
      return("list")
    }
    return("any")
  }
  if (S7::S7_inherits(type, ellmer::TypeObject)) {
    return("list")
  }
  "any"
}

# The tool's description followed by what each argument must be, for the
# model writing the code.
ellmer_tool_doc <- function(description, props, needed) {
  if (length(props) == 0L) {
    return(description)
  }
  lines <- vapply(names(props), function(nm) {
    type <- props[[nm]]
    opt <- if (needed[[nm]]) "" else " (optional)"
    desc <- type@description
    desc <- if (is.character(desc) && length(desc) == 1L && nzchar(desc)) paste0(". ", desc) else ""
    paste0("  ", nm, opt, ": ", describe_ellmer_type(type), desc)
  }, character(1))
  paste(c(description, "Arguments:", lines), collapse = "\n")
}

describe_ellmer_type <- function(type) {
  basic <- c(
    string = "a string", number = "a number", integer = "a whole number",
    boolean = "TRUE or FALSE"
  )
  vectors <- c(
    string = "a character vector", number = "a numeric vector",
    integer = "an integer vector", boolean = "a logical vector"
  )
  if (S7::S7_inherits(type, ellmer::TypeBasic)) {
    return(basic[[type@type]])
  }
  if (S7::S7_inherits(type, ellmer::TypeEnum)) {
    return(paste("one of", quote_values(type@values)))
  }
  if (S7::S7_inherits(type, ellmer::TypeArray)) {
    items <- type@items
    if (S7::S7_inherits(items, ellmer::TypeBasic)) {
      return(vectors[[items@type]])
    }
    if (S7::S7_inherits(items, ellmer::TypeEnum)) {
      return(paste("a character vector of", quote_values(items@values)))
    }
    if (S7::S7_inherits(items, ellmer::TypeObject)) {
      return(paste0("a data frame with columns ", describe_props(items@properties)))
    }
    return(paste0("a list, each element ", describe_ellmer_type(items)))
  }
  if (S7::S7_inherits(type, ellmer::TypeObject)) {
    if (length(type@properties) == 0L) {
      return("a named list")
    }
    return(paste0("a named list with elements ", describe_props(type@properties)))
  }
  if (S7::S7_inherits(type, ellmer::TypeJsonSchema)) {
    schema <- jsonlite::toJSON(type@json, auto_unbox = TRUE)
    return(paste("a value matching the JSON schema", truncate_chars(schema, 300)))
  }
  "any value"
}

describe_props <- function(props) {
  parts <- vapply(names(props), function(nm) {
    opt <- if (isTRUE(props[[nm]]@required)) "" else ", optional"
    paste0(nm, " (", describe_ellmer_type(props[[nm]]), opt, ")")
  }, character(1))
  paste(parts, collapse = ", ")
}

quote_values <- function(values) {
  paste(encodeString(values, quote = "\""), collapse = ", ")
}

# The arguments of a call from the sandbox, checked against the ellmer
# tool's argument types and converted as ellmer converts a model's JSON;
# an error names what does not fit.
ellmer_args_checked <- function(args, props, needed, convert) {
  unknown <- setdiff(names(args), names(props))
  if (length(unknown)) {
    stop(sprintf("unknown argument %s.", paste0("'", unknown, "'", collapse = ", ")), call. = FALSE)
  }
  for (nm in names(props)) {
    what <- sprintf("argument '%s'", nm)
    if (is.null(args[[nm]])) {
      if (needed[[nm]]) stop(what, " is required.", call. = FALSE)
      next
    }
    args[[nm]] <- ellmer_arg(args[[nm]], props[[nm]], what)
    if (!convert) args[[nm]] <- json_shape(args[[nm]])
  }
  args
}

arg_fail <- function(what, must, value) {
  stop(sprintf("%s must be %s, not %s.", what, must, describe_arg(value)), call. = FALSE)
}

# One value checked against one ellmer type (recursively); returns it in
# the form ellmer gives the tool.
ellmer_arg <- function(value, type, what) {
  if (S7::S7_inherits(type, ellmer::TypeBasic)) {
    return(basic_arg(value, type@type, what))
  }
  if (S7::S7_inherits(type, ellmer::TypeEnum)) {
    if (is.factor(value)) value <- as.character(value)
    if (!is.character(value) || length(value) != 1L || is.na(value) ||
      !value %in% type@values) {
      arg_fail(what, paste("one of", quote_values(type@values)), value)
    }
    return(value)
  }
  if (S7::S7_inherits(type, ellmer::TypeArray)) {
    return(array_arg(value, type@items, what))
  }
  if (S7::S7_inherits(type, ellmer::TypeObject)) {
    return(object_arg(value, type, what))
  }
  value
}

basic_arg <- function(value, type, what, scalar = TRUE) {
  ok <- switch(type,
    string = is.character(value),
    number = is.numeric(value),
    integer = is.numeric(value) && all(is.na(value) | value == round(value)),
    boolean = is.logical(value),
    FALSE
  )
  if (scalar) ok <- ok && length(value) == 1L && !is.na(value)
  if (!ok) {
    must <- if (scalar) describe_ellmer_type(ellmer::TypeBasic(type = type)) else {
      describe_ellmer_type(ellmer::type_array(ellmer::TypeBasic(type = type)))
    }
    arg_fail(what, must, value)
  }
  if (type == "integer") value <- as.integer(value)
  if (!is.null(attributes(value))) attributes(value) <- NULL
  value
}

array_arg <- function(value, items, what) {
  if (S7::S7_inherits(items, ellmer::TypeBasic)) {
    if (!is.atomic(value)) arg_fail(what, describe_ellmer_type(ellmer::type_array(items)), value)
    return(basic_arg(value, items@type, what, scalar = FALSE))
  }
  if (S7::S7_inherits(items, ellmer::TypeEnum)) {
    if (is.factor(value)) value <- as.character(value)
    if (!is.character(value) || anyNA(value) || !all(value %in% items@values)) {
      arg_fail(what, describe_ellmer_type(ellmer::type_array(items)), value)
    }
    return(factor(value, levels = items@values))
  }
  if (S7::S7_inherits(items, ellmer::TypeObject) && is.data.frame(value)) {
    return(data_frame_arg(value, items, what))
  }
  if (!is.list(value) || is.data.frame(value)) {
    arg_fail(what, describe_ellmer_type(ellmer::type_array(items)), value)
  }
  out <- lapply(seq_along(value), function(i) {
    ellmer_arg(value[[i]], items, sprintf("element %d of %s", i, what))
  })
  if (S7::S7_inherits(items, ellmer::TypeObject)) {
    return(rows_as_data_frame(out, items))
  }
  out
}

object_arg <- function(value, type, what) {
  props <- type@properties
  if (!is.list(value) || is.data.frame(value) ||
    (length(value) > 0L && (is.null(names(value)) || any(!nzchar(names(value)))))) {
    arg_fail(what, describe_ellmer_type(type), value)
  }
  unknown <- setdiff(names(value), names(props))
  if (length(unknown) && !isTRUE(type@additional_properties)) {
    stop(sprintf(
      "%s has unknown element%s %s.", what, if (length(unknown) == 1L) "" else "s",
      paste0("'", unknown, "'", collapse = ", ")
    ), call. = FALSE)
  }
  for (nm in names(props)) {
    el <- sprintf("element '%s' of %s", nm, what)
    if (is.null(value[[nm]])) {
      if (isTRUE(props[[nm]]@required)) stop(el, " is required.", call. = FALSE)
      next
    }
    value[[nm]] <- ellmer_arg(value[[nm]], props[[nm]], el)
  }
  value
}

data_frame_arg <- function(value, items, what) {
  props <- items@properties
  unknown <- setdiff(names(value), names(props))
  if (length(unknown) && !isTRUE(items@additional_properties)) {
    stop(sprintf(
      "%s has unknown column%s %s.", what, if (length(unknown) == 1L) "" else "s",
      paste0("'", unknown, "'", collapse = ", ")
    ), call. = FALSE)
  }
  for (nm in names(props)) {
    col <- sprintf("column '%s' of %s", nm, what)
    if (is.null(value[[nm]])) {
      if (isTRUE(props[[nm]]@required)) stop(col, " is required.", call. = FALSE)
      next
    }
    prop <- props[[nm]]
    if (S7::S7_inherits(prop, ellmer::TypeBasic) || S7::S7_inherits(prop, ellmer::TypeEnum)) {
      value[[nm]] <- array_arg(value[[nm]], prop, col)
    } else {
      value[[nm]] <- I(array_arg(as.list(value[[nm]]), prop, col))
    }
  }
  value
}

# Rows (checked named lists) as the data frame ellmer makes of an array of
# objects: a column per property, NA where a row leaves one out.
rows_as_data_frame <- function(rows, items) {
  cols <- lapply(names(items@properties), function(nm) {
    prop <- items@properties[[nm]]
    vals <- lapply(rows, function(r) r[[nm]])
    scalar <- S7::S7_inherits(prop, ellmer::TypeBasic) || S7::S7_inherits(prop, ellmer::TypeEnum)
    if (scalar) {
      vals[vapply(vals, is.null, logical(1))] <- list(NA)
      unlist(vals, use.names = FALSE)
    } else {
      I(vals)
    }
  })
  names(cols) <- names(items@properties)
  df <- as.data.frame(cols, stringsAsFactors = FALSE, optional = TRUE)
  if (length(cols) == 0L) df <- data.frame(row.names = seq_along(rows))
  df
}

# A checked value as jsonlite::parse_json() gives it (for tools made with
# `convert = FALSE`): arrays as unnamed lists, objects as named lists.
json_shape <- function(value) {
  if (is.data.frame(value)) {
    return(lapply(seq_len(nrow(value)), function(i) {
      lapply(as.list(value[i, , drop = FALSE]), function(col) json_shape(col[[1L]]))
    }))
  }
  if (is.list(value)) {
    return(lapply(value, json_shape))
  }
  if (is.factor(value)) value <- as.character(value)
  if (length(value) == 1L) {
    return(value)
  }
  as.list(value)
}

# What an ellmer tool returned, as plain R data for the sandbox.
sandbox_value <- function(x) {
  if (promises::is.promise(x)) {
    stop(
      "the tool returned a promise; asynchronous tools cannot be called from sandboxed code.",
      call. = FALSE
    )
  }
  if (S7::S7_inherits(x, ellmer::ContentToolResult)) {
    err <- x@error
    if (!is.null(err)) {
      stop(if (inherits(err, "condition")) conditionMessage(err) else paste(err, collapse = "\n"),
        call. = FALSE
      )
    }
    return(sandbox_value(x@value))
  }
  if (inherits(x, "json")) {
    return(jsonlite::fromJSON(x))
  }
  if (S7::S7_inherits(x, ellmer::ContentImageInline)) {
    return(list(type = "image", mime_type = x@type, data = x@data))
  }
  if (S7::S7_inherits(x, ellmer::ContentImageRemote)) {
    return(list(type = "image", url = x@url))
  }
  if (S7::S7_inherits(x, ellmer::Content)) {
    return(ellmer::contents_text(x))
  }
  if (is.list(x) && !is.object(x)) {
    x[] <- lapply(x, sandbox_value)
  }
  x
}
