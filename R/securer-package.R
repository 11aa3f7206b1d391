#' @keywords internal
#' @useDynLib securer, .registration = TRUE
#' @rawNamespace if (getRversion() < "4.3.0") importFrom("S7", "@")
#' @importFrom R6 R6Class
"_PACKAGE"

# S7 properties read with `@` (R < 4.3 parses them as variables).
utils::globalVariables(c(
  "name", "description", "fn", "args",
  # ellmer's tools, types and content (ellmer.R, ellmer-tools.R, mcp.R)
  "additional_properties", "annotations", "arguments", "data", "error",
  "items", "json", "properties", "required", "type", "value", "values"
))

# Package state: warnings already given, warm zygotes.
the <- new.env(parent = emptyenv())
the$warned <- character()

.onLoad <- function(libname, pkgname) {
  S7::methods_register()
  # The header R writes in this session (its version and native encoding),
  # for values written and read in Rust (rs_send_plain(), rs_next_answer(),
  # rs_batch_run()).
  the$null_bytes <- serialize(NULL, NULL, xdr = FALSE)
}

.onUnload <- function(libpath) {
  zygote_stop_all()
}
