# Installs securer's R dependencies (Imports and Suggests) that are missing.
repos <- getOption("repos")
if (is.null(repos) || identical(unname(repos["CRAN"]), "@CRAN@")) {
  repos <- c(CRAN = "https://cloud.r-project.org")
}
desc <- read.dcf("DESCRIPTION", fields = c("Imports", "Suggests"))
pkgs <- unlist(strsplit(paste(desc[!is.na(desc)], collapse = ","), ","))
pkgs <- trimws(sub("\\(.*", "", pkgs))
pkgs <- setdiff(pkgs[nzchar(pkgs)], c("R", rownames(installed.packages())))
pkgs <- union(pkgs, setdiff("roxygen2", rownames(installed.packages())))
if (length(pkgs)) {
  message("Installing R packages: ", paste(pkgs, collapse = ", "))
  install.packages(pkgs, repos = repos, Ncpus = 2L, quiet = TRUE)
  still <- setdiff(pkgs, rownames(installed.packages()))
  if (length(still)) stop("Could not install: ", paste(still, collapse = ", "))
}
