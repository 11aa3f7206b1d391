# Regenerates R/extendr-wrappers.R from the installed package's Rust module
# metadata, the way rextendr::document() does. Run after installing:
#   Rscript tools/gen-wrappers.R
dll <- getLoadedDLLs()
ns <- loadNamespace("securer")
wrappers <- .Call(
  getNativeSymbolInfo("wrap__make_securer_wrappers", "securer"),
  use_symbols = TRUE, package_name = "securer"
)
writeLines(wrappers, "R/extendr-wrappers.R")
