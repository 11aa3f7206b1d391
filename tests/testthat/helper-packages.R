# skip_if_not_installed() loads the package's namespace. Some packages
# open file descriptors for good when they load (nanonext's event loop,
# btw's), which the leak-checking reporter rightly counts against the test
# file: tests that use them in a subprocess only check that they exist.
skip_if_not_present <- function(pkg) {
  skip_if(!nzchar(system.file(package = pkg)), paste(pkg, "is not installed"))
}
