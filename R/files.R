# Files in and out of a session: `$upload()`, `$download()` and `$files()`
# move files between the host and the session's writable space (its /tmp,
# or its folder without the native sandbox, and the writable folders the
# sandbox grants) over the IPC channel, in chunks, one request and one
# reply at a time.
#
# The child resolves paths inside that space (src/rust/core/src/files.rs,
# called by the runtime); the host checks them lexically first, so a path
# outside the space is refused without asking. Everything the child
# answers is untrusted: sizes are checked against what was announced and
# the caps, names are cleaned, and a download is written only where the
# host was told to write it, through a new file beside the target that is
# renamed over it when complete (no link is followed; a failed transfer
# leaves nothing).

# Bytes per chunk: well within one message.
file_chunk_bytes <- function(max_frame) min(1024^2, max_frame %/% 2)

# Largest file moved, in bytes: `max_size`, or options(securer.max_file_size)
# (100 MiB unless set).
file_size_cap <- function(max_size) {
  if (is.null(max_size)) {
    max_size <- getOption("securer.max_file_size", 100 * 1024^2)
    arg <- "options(securer.max_file_size)"
  } else {
    arg <- "max_size"
  }
  check_number(max_size, arg = arg, allow_inf = TRUE)
  min(max_size, 2^53)
}

# The writable space as the child sees it: the session's root (where
# relative paths start) first, then the granted writable folders.
session_roots <- function(private) {
  sandbox <- private$opts$sandbox
  native <- !is.null(sandbox) && identical(sandbox$backend, "linux-native")
  home <- if (native) "/tmp" else private$child$dir
  c(home, if (!is.null(sandbox)) sandbox$writable)
}

# `path` in the session's terms: absolute (relative paths start at the
# session's root) and lexically normal; outside the writable space it is
# refused here, before anything is sent.
session_path <- function(roots, path, arg) {
  check_string(path, arg = arg)
  if (!nzchar(path)) {
    securer_abort("{.arg {arg}} must be a non-empty path.", class = "securer_input_error")
  }
  full <- if (startsWith(path, "/")) path else file.path(roots[[1L]], path)
  full <- clean_path(full)
  if (!any(path_is_within(full, clean_path(roots)))) {
    securer_abort(
      c(
        "{.path {path}} is outside the session's writable space.",
        i = "Use a path inside {.or {.path {roots}}}; relative paths start at {.path {roots[[1L]]}}."
      ),
      class = c("securer_file_path_error", "securer_file_error"), path = path
    )
  }
  full
}

# The classes of a file error of kind `kind` ("file_not_found", ...: the
# Rust core's FileProblem, from either side).
file_error_class <- function(kind) {
  c(
    switch(kind,
      file_not_found = "securer_file_not_found_error",
      file_outside = "securer_file_path_error",
      file_symlink = c("securer_file_symlink_error", "securer_file_path_error"),
      file_too_large = c("securer_file_size_error", "securer_limit_error"),
      NULL
    ),
    "securer_file_error"
  )
}

# A file error: `header` is plain text (already formatted), `detail` the
# reason, perhaps from the child.
file_abort <- function(kind, header, detail, ...) {
  detail <- untrusted_text(detail, max_chars = 2000)
  securer_abort(
    c(cli_escape(header), x = "{detail}"),
    class = file_error_class(kind), ...
  )
}

# Makes sure the session can move files now: not closed, not executing
# code, its child ready (started if it had to be replaced).
file_session_ready <- function(private) {
  if (private$state == "busy") {
    securer_abort(
      c(
        "This session is executing code.",
        i = "Move files before or after an execution, not during one."
      ),
      class = "securer_session_error"
    )
  }
  if (private$state == "closed") {
    securer_abort(
      c("This session is closed.", i = "Create a new session, or call {.code $restart()}."),
      class = "securer_session_error"
    )
  }
  if (private$state == "starting" || !child_alive(private$child)) {
    session_await_child(private)
  }
  invisible()
}

# Runs `expr` (file requests) with the session marked busy; afterwards it is
# idle again, or starting when its child had to be replaced.
with_file_session <- function(private, expr) {
  session_set_state(private, "busy")
  on.exit(if (private$state == "busy") session_set_state(private, "idle"))
  expr
}

# One file request and its reply (a list with `ok`); a reply that is not
# `ok` becomes the classed error it names. Waits at most `timeout` seconds;
# a child that does not answer in time, dies or breaks the protocol is
# replaced. An interrupt or error on the host meanwhile leaves the child
# in step (it answers quickly: no user code runs) or replaced.
file_call <- function(private, req, timeout, what) {
  child <- private$child
  req$roots <- session_roots(private)
  child_send(child, "file", req, min(timeout, 30))
  settled <- FALSE
  on.exit(if (!settled) {
    if (!isTRUE(tryCatch(child_resync(child, "file request abandoned"), error = function(e) FALSE))) {
      session_replace_child(private, "file request abandoned")
    }
  })
  deadline <- now() + timeout
  repeat {
    left <- deadline - now()
    if (left <= 0) {
      settled <- TRUE
      session_replace_child(private, "file request timed out")
      securer_abort(
        c(
          "The session did not answer a file request within {timeout} seconds.",
          i = "It was replaced; its global environment and files are gone."
        ),
        class = "securer_timeout"
      )
    }
    ev <- rs_check(rs_next_event(child$handle, min(100, left * 1000)), "Lost the child R process.")
    if (is.null(ev)) {
      Sys.sleep(0)
      next
    }
    switch(ev$type,
      file_reply = {
        settled <- TRUE
        reply <- unserialize(ev$payload)
        return(file_reply_checked(reply, what))
      },
      refused = {
        settled <- TRUE
        msg <- untrusted_text(ev$message)
        securer_abort(
          c("The session's reply to a file request was refused.", x = "{msg}"),
          class = c("securer_value_error", "securer_ipc_error")
        )
      },
      exited = ,
      protocol_error = {
        settled <- TRUE
        session_replace_child(private, "child died during a file request")
        securer_abort(
          c(
            "The child R process stopped during a file request.",
            i = "It was replaced; its global environment and files are gone."
          ),
          class = "securer_child_error"
        )
      }
    )
    # Output of the session's own processes belongs to no execution.
  }
}

file_reply_checked <- function(reply, what) {
  if (!is.list(reply) || !is.logical(reply$ok) || length(reply$ok) != 1L || is.na(reply$ok)) {
    securer_abort("The session sent a malformed reply to a file request.", class = "securer_ipc_error")
  }
  if (reply$ok) {
    return(reply)
  }
  kind <- if (is.character(reply$problem) && length(reply$problem) == 1L) reply$problem else "file_io"
  file_abort(kind, what, reply$message)
}

# A size from the child: a single whole number from 0 to `max`.
checked_size <- function(x, max) {
  ok <- is.numeric(x) && length(x) == 1L && !is.na(x) && x >= 0 && x <= max && x == round(x)
  if (!ok) {
    securer_abort("The session announced an impossible file size.", class = "securer_ipc_error")
  }
  x
}

session_upload <- function(private, path, to, max_size, timeout) {
  check_string(path)
  timeout <- check_timeout(timeout)
  max_size <- file_size_cap(max_size)
  src <- path.expand(path)
  if (!file.exists(src)) {
    securer_abort(
      "Cannot upload {.path {path}}: it does not exist.",
      class = c("securer_file_not_found_error", "securer_file_error"), path = path
    )
  }
  if (!utils::file_test("-f", src)) {
    securer_abort(
      "Cannot upload {.path {path}}: it is not a regular file.",
      class = "securer_file_error", path = path
    )
  }
  size <- file.size(src)
  if (size > max_size) {
    securer_abort(
      c(
        "Cannot upload {.path {path}}: it holds {format_bytes(size)}, more than the limit of {format_bytes(max_size)}.",
        i = "Raise it with {.arg max_size} or {.code options(securer.max_file_size = )}."
      ),
      class = c("securer_file_size_error", "securer_limit_error", "securer_file_error"),
      path = path
    )
  }
  file_session_ready(private)
  roots <- session_roots(private)
  target <- session_path(roots, to %||% basename(src), "to")
  tmp_size <- private$opts$sandbox$tmp_size
  if (is.numeric(tmp_size) && !is.na(tmp_size) && size > tmp_size &&
    path_is_within(target, roots[[1L]])) {
    securer_abort(
      c(
        "Cannot upload {.path {path}}: it holds {format_bytes(size)}, more than the session's {.path {roots[[1L]]}} can hold ({format_bytes(tmp_size)}).",
        i = "Raise it with {.code build_sandbox_config(tmp_size = )}, or upload to a writable folder."
      ),
      class = c("securer_file_size_error", "securer_limit_error", "securer_file_error"),
      path = path
    )
  }
  what <- cli::format_inline("Cannot upload {.path {path}} to {.path {target}}.")
  chunk <- file_chunk_bytes(private$opts$max_frame)
  with_file_session(private, {
    reply <- file_call(private, list(op = "put", path = target, name = basename(src), size = size), timeout, what)
    # The child puts the file at `target`, or into it when it is a folder.
    placed <- c(target, file.path(target, basename(src)))
    if (!identical(reply$path, placed[[1L]]) && !identical(reply$path, placed[[2L]])) {
      securer_abort("The session sent a malformed reply to a file request.", class = "securer_ipc_error")
    }
    con <- file(src, "rb")
    on.exit(close(con), add = TRUE)
    sent <- 0
    repeat {
      data <- readBin(con, "raw", chunk)
      if (length(data) == 0L) break
      sent <- sent + length(data)
      if (sent > size) break
      file_call(private, list(op = "chunk", data = data), timeout, what)
    }
    if (sent != size) {
      file_call(private, list(op = "abort"), timeout, what)
      securer_abort(
        "Cannot upload {.path {path}}: it changed while it was uploaded.",
        class = "securer_file_error", path = path
      )
    }
    file_call(private, list(op = "put_end"), timeout, what)
  })
  log_event(private$logger, "file_upload",
    sprintf("Uploaded %s (%s) to %s", path, format_bytes(size), target),
    path = target, size = size
  )
  invisible(reply$path)
}

session_download <- function(private, from, path, overwrite, max_size, timeout) {
  check_string(path)
  check_flag(overwrite)
  timeout <- check_timeout(timeout)
  max_size <- file_size_cap(max_size)
  file_session_ready(private)
  roots <- session_roots(private)
  src <- session_path(roots, from, "from")
  dest <- path.expand(path)
  if (dir.exists(dest)) dest <- file.path(dest, basename(src))
  if (!overwrite && file.exists(dest)) {
    securer_abort(
      c("Cannot download to {.path {dest}}: it exists.", i = "Use {.code overwrite = TRUE} to replace it."),
      class = c("securer_file_exists_error", "securer_file_error"), path = dest
    )
  }
  what <- cli::format_inline("Cannot download {.path {src}}.")
  chunk <- file_chunk_bytes(private$opts$max_frame)
  with_file_session(private, {
    info <- file_call(private, list(op = "get", path = src, max = max_size), timeout, what)
    size <- checked_size(info$size, max_size)
    sink <- rs_file_sink_open(dest, size)
    if (inherits(sink, "securer_rs_error")) {
      file_abort(sink$kind, cli::format_inline("Cannot write {.path {dest}}."), sink$message)
    }
    on.exit(rs_file_sink_close(sink), add = TRUE)
    got <- 0
    while (got < size) {
      reply <- file_call(private, list(op = "get_chunk", n = min(chunk, size - got)), timeout, what)
      data <- reply$data
      if (!is.raw(data)) {
        securer_abort("The session sent a malformed file chunk.", class = "securer_ipc_error")
      }
      if (length(data) == 0L) break
      written <- rs_file_sink_write(sink, data)
      if (inherits(written, "securer_rs_error")) {
        file_abort(written$kind, cli::format_inline("Cannot write {.path {dest}}."), written$message)
      }
      got <- got + length(data)
    }
    if (got != size) {
      securer_abort(
        "Cannot download {.path {src}}: it changed while it was downloaded.",
        class = "securer_file_error", path = src
      )
    }
    done <- rs_file_sink_commit(sink)
    if (inherits(done, "securer_rs_error")) {
      file_abort(done$kind, cli::format_inline("Cannot write {.path {dest}}."), done$message)
    }
  })
  log_event(private$logger, "file_download",
    sprintf("Downloaded %s (%s) to %s", src, format_bytes(size), dest),
    path = src, size = size
  )
  invisible(dest)
}

session_files <- function(private, dir, recursive, max_entries, timeout) {
  check_flag(recursive)
  check_count(max_entries, min = 1)
  timeout <- check_timeout(timeout)
  file_session_ready(private)
  roots <- session_roots(private)
  src <- session_path(roots, dir %||% roots[[1L]], "dir")
  what <- cli::format_inline("Cannot list {.path {src}}.")
  reply <- with_file_session(
    private,
    file_call(private, list(op = "list", path = src, recursive = recursive, max = max_entries), timeout, what)
  )
  entries <- checked_listing(reply$entries, max_entries)
  if (isTRUE(reply$truncated)) {
    cli::cli_warn(
      c(
        "Only the first {max_entries} entries of {.path {src}} are listed.",
        i = "Raise {.arg max_entries} to see more."
      ),
      class = c("securer_file_warning", "securer_warning")
    )
  }
  entries
}

listing_types <- c("file", "directory", "symlink", "other")

# A listing from the child, rebuilt from checked columns.
checked_listing <- function(x, max_entries) {
  ok <- is.data.frame(x) && identical(names(x), c("path", "type", "size", "modified")) &&
    nrow(x) <= max_entries && is.character(x$path) && is.character(x$type) &&
    is.numeric(x$size) && is.double(unclass(x$modified))
  if (!ok) {
    securer_abort("The session sent a malformed file listing.", class = "securer_ipc_error")
  }
  type <- x$type
  type[!type %in% listing_types] <- "other"
  data.frame(
    path = rs_clean_text(x$path, 4096),
    type = type,
    size = as.numeric(x$size),
    modified = .POSIXct(as.double(unclass(x$modified))),
    stringsAsFactors = FALSE
  )
}

# Writes `bytes` to `path` on the host through a new file beside it,
# renamed over it when complete.
write_host_file <- function(bytes, path, overwrite) {
  if (!overwrite && file.exists(path)) {
    securer_abort(
      c("{.path {path}} exists.", i = "Use {.code overwrite = TRUE} to replace it."),
      class = c("securer_file_exists_error", "securer_file_error"), path = path
    )
  }
  fail <- function(err) {
    file_abort(err$kind, cli::format_inline("Cannot write {.path {path}}."), err$message)
  }
  sink <- rs_file_sink_open(path, length(bytes))
  if (inherits(sink, "securer_rs_error")) fail(sink)
  on.exit(rs_file_sink_close(sink))
  for (err in list(rs_file_sink_write(sink, bytes), rs_file_sink_commit(sink))) {
    if (inherits(err, "securer_rs_error")) fail(err)
  }
  invisible(path)
}
