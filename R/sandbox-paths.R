# The paths a sandbox grants: base paths tidied (links and their targets,
# nothing nested twice) and the user's extra grants checked (never the
# root, the home folder, whole system folders, or a writable path over R).

# Folders that must never be granted whole: they hold other users' data,
# system secrets or the host's processes and devices.
broad_system_dirs <- c(
  "/etc", "/home", "/Users", "/root", "/var", "/run",
  "/private", "/private/etc", "/private/var"
)
pseudo_fs_dirs <- c("/proc", "/sys", "/dev")

# On the host: keep existing paths, add resolved forms (symbolic link
# targets), then drop paths nested in another listed real folder. Off the
# host (generating another platform's configuration): lexical only.
tidy_paths <- function(paths, on_host) {
  paths <- unique(paths[!is.na(paths) & nzchar(paths)])
  if (on_host) {
    paths <- paths[file.exists(paths)]
    resolved <- normalizePath(paths, winslash = "/", mustWork = FALSE)
    paths <- unique(c(paths, resolved))
    links <- is_symlink(paths)
  } else {
    paths <- unique(clean_path(paths))
    links <- rep(FALSE, length(paths))
  }
  drop_nested(paths, links)
}

# Drop each path that lies inside another listed path that is a real
# folder (not a symbolic link): that folder already makes it visible.
drop_nested <- function(paths, links = rep(FALSE, length(paths))) {
  parents <- paths[!links]
  keep <- vapply(
    paths,
    function(p) !any(parents != p & path_is_within(p, parents)),
    logical(1),
    USE.NAMES = FALSE
  )
  paths[keep]
}

is_symlink <- function(paths) {
  if (length(paths) == 0L) {
    return(logical())
  }
  links <- Sys.readlink(paths)
  !is.na(links) & nzchar(links)
}

# Is `child` equal to `parent` or inside it? (Lexical, vectorised.)
path_is_within <- function(child, parent) {
  parent <- sub("/+$", "", parent)
  child == parent | startsWith(child, paste0(parent, "/"))
}

# Lexical clean-up of absolute paths: no "//", "." or "..", no trailing "/".
clean_path <- function(paths) {
  vapply(paths, function(p) {
    parts <- strsplit(p, "/", fixed = TRUE)[[1]]
    out <- character()
    for (part in parts) {
      if (part == "" || part == ".") {
        next
      }
      if (part == "..") {
        out <- out[-length(out)]
        next
      }
      out <- c(out, part)
    }
    paste0(if (startsWith(p, "/")) "/" else "", paste(out, collapse = "/"))
  }, character(1), USE.NAMES = FALSE)
}

# ---------------------------------------------------------------------------
# Extra paths granted by the user

# Base paths plus the user's grants -> list(read_only, writable).
sandbox_paths <- function(platform, base, read_only, writable) {
  protected <- protected_paths(base)
  read_only <- check_extra_paths(read_only, "read_only", platform, protected)
  writable <- check_extra_paths(
    writable, "writable", platform, protected,
    writable = TRUE
  )
  on_host <- identical(platform, detect_platform())
  ro <- if (platform == "windows") {
    unique(c(base, read_only))
  } else {
    tidy_paths(c(base, read_only), on_host = on_host)
  }
  list(read_only = setdiff(ro, writable), writable = writable)
}

protected_paths <- function(base) {
  paths <- unique(c(r_paths(), base))
  paths <- paths[nzchar(paths)]
  unique(c(paths, normalizePath(paths, winslash = "/", mustWork = FALSE)))
}

home_paths <- function() {
  home <- c(path.expand("~"), Sys.getenv("HOME"), Sys.getenv("USERPROFILE"))
  home <- home[nzchar(home) & home != "~"]
  home <- c(home, normalizePath(home, winslash = "/", mustWork = FALSE))
  home <- unique(sub("(.)/+$", "\\1", home))
  home[home != "/"]
}

is_absolute_path <- function(path, platform) {
  if (platform == "windows") {
    grepl("^([A-Za-z]:)?[/\\\\]", path)
  } else {
    startsWith(path, "/")
  }
}

check_extra_paths <- function(paths, arg, platform, protected,
                              writable = FALSE) {
  if (is.null(paths) || length(paths) == 0L) {
    return(character())
  }
  if (!is.character(paths) || anyNA(paths) || !all(nzchar(paths))) {
    securer_abort(
      "{.arg {arg}} must be a character vector of paths, not {.obj_type_friendly {paths}}.",
      class = "securer_input_error"
    )
  }
  on_host <- identical(platform, detect_platform())
  out <- character()
  for (path in paths) {
    expanded <- path.expand(path)
    if (on_host) {
      if (!file.exists(expanded)) {
        securer_abort(
          c(
            "The {.arg {arg}} path {.path {path}} does not exist.",
            i = "Create it first, or check the spelling."
          ),
          class = "securer_input_error"
        )
      }
      norm <- normalizePath(expanded, winslash = "/", mustWork = TRUE)
    } else {
      if (!is_absolute_path(expanded, platform)) {
        securer_abort(
          "The {.arg {arg}} path {.path {path}} must be absolute to build a {platform} configuration here.",
          class = "securer_input_error"
        )
      }
      norm <- if (platform == "windows") expanded else clean_path(expanded)
    }
    check_grant(unique(c(expanded, norm)), path, arg, protected, writable)
    out <- c(out, norm)
  }
  unique(out)
}

check_grant <- function(forms, path, arg, protected, writable) {
  forms <- unique(sub("(.)[/\\\\]+$", "\\1", forms))
  if (any(forms == "/" | grepl("^[A-Za-z]:[/\\\\]?$", forms))) {
    securer_abort(
      c(
        "Refusing to grant {.path {path}} ({.arg {arg}}): it is the root of the filesystem and would expose everything.",
        i = "Grant one specific folder instead, such as a data or output folder."
      ),
      class = "securer_input_error"
    )
  }
  home <- home_paths()
  for (h in home) {
    if (any(path_is_within(h, forms))) {
      securer_abort(
        c(
          "Refusing to grant {.path {path}} ({.arg {arg}}): it is or contains your home folder {.path {h}}, with its credentials and keys.",
          i = "Grant one specific folder inside it instead."
        ),
        class = "securer_input_error"
      )
    }
  }
  if (any(forms %in% broad_system_dirs) ||
    any(vapply(pseudo_fs_dirs, function(d) any(path_is_within(forms, d)), logical(1)))) {
    securer_abort(
      c(
        "Refusing to grant {.path {path}} ({.arg {arg}}): it is a system folder that would expose other users' data, secrets or the host's processes.",
        i = "Grant one specific folder with only the files the code needs."
      ),
      class = "securer_input_error"
    )
  }
  if (writable) {
    for (p in protected) {
      if (any(path_is_within(forms, p) | path_is_within(p, forms))) {
        securer_abort(
          c(
            "Refusing to make {.path {path}} writable: it is, contains or lies inside {.path {p}}, which the sandbox keeps read-only (R, its library paths or system files).",
            i = "Choose an output folder outside R's installation, its libraries and the system folders."
          ),
          class = "securer_input_error"
        )
      }
    }
  }
  invisible(forms)
}
