# Warm zygotes: an R process started once (inside the sandbox, or without
# one for `sandbox = FALSE`), with the default packages and the child
# runtime loaded, that forks new sessions on request and keeps one forked
# ahead (see src/rust/core/src/zygote.rs). One per sandbox policy, started
# on first use and replaced if it dies. Linux only (the fallback tier and
# macOS start cold: there a zygote's forks would share one Seatbelt profile,
# so one temporary folder, instead of each having its own).

the$zygotes <- new.env(parent = emptyenv())
the$no_zygote <- character()

# Granted folders and library paths under /tmp work too: a forked session
# takes them along into its own /tmp.
zygote_wanted <- function(opts) {
  isTRUE(getOption("securer.zygote", TRUE)) && (
    if (is.null(opts$sandbox)) {
      identical(session_platform(), "linux")
    } else {
      identical(opts$sandbox$backend, "linux-native")
    })
}

zygote_json <- function(x) jsonlite::toJSON(x, auto_unbox = TRUE, null = "null", digits = NA)

zygote_policy_json <- function(opts) {
  if (is.null(opts$sandbox)) {
    return("null")
  }
  zygote_json(sandbox_policy_spec(opts$sandbox, strict = opts$strict))
}

# The JSON of a session's fork request, less its folder and token; it also
# keys the zygote (one per policy and message size).
zygote_request_json <- function(opts) {
  paste0(
    '{"policy":', zygote_policy_json(opts),
    ',"limits":', zygote_json(limits_spec(opts$limits))
  )
}

zygote_key <- function(opts) paste(zygote_policy_json(opts), opts$max_frame)

# list(key, request) for these options, remembered for the last few kinds
# of session: encoding them (jsonlite) costs more than the rest of a warm
# start on the host. identical() on the same objects returns at once.
zygote_json_of <- function(opts) {
  what <- opts[c("sandbox", "strict", "limits", "max_frame")]
  for (hit in the$zygote_json) {
    if (identical(hit$what, what)) {
      return(hit$json)
    }
  }
  json <- list(zygote_key(opts), zygote_request_json(opts))
  the$zygote_json <- c(list(list(what = what, json = json)), utils::head(the$zygote_json, 7L))
  json
}

# The running zygote for these options, started if needed; NULL when this
# machine cannot run one (the cold path then applies, with its own checks
# and warnings).
zygote_get <- function(opts) {
  key <- opts$zygote_key %||% zygote_key(opts)
  if (key %in% the$no_zygote) {
    return(NULL)
  }
  z <- the$zygotes[[key]]
  if (!is.null(z) && child_alive(z)) {
    return(z)
  }
  if (!is.null(z)) child_release(z)
  z <- tryCatch(
    {
      z <- child_launch(opts, zygote = TRUE)
      child_wait_ready(z, opts$start_timeout, opts$strict)
      z
    },
    securer_error = function(e) {
      the$no_zygote <- c(the$no_zygote, key)
      NULL
    }
  )
  the$zygotes[[key]] <- z
  z
}

# Whether a session with these options would be forked from a zygote
# that is running already (so that starting one is cheap).
zygote_ready <- function(opts) {
  if (!zygote_wanted(opts)) {
    return(FALSE)
  }
  z <- the$zygotes[[opts$zygote_key %||% zygote_key(opts)]]
  !is.null(z) && child_alive(z)
}

# Forks a session from the zygote; NULL when no zygote can be had.
zygote_fork <- function(opts) {
  for (attempt in 1:2) {
    z <- zygote_get(opts)
    if (is.null(z)) {
      return(NULL)
    }
    token <- rs_check(rs_random_token(), "Cannot make a session token.")
    # Without a sandbox a session has a folder of its own, as a cold one.
    dir <- if (is.null(opts$sandbox)) session_dir() else character()
    json <- paste0(
      opts$zygote_request %||% zygote_request_json(opts),
      if (length(dir)) paste0(',"dir":', zygote_json(dir)),
      ',"token":"', paste(as.character(token), collapse = ""), '"}'
    )
    handle <- rs_zygote_fork(z$handle, json, token, opts$max_frame, opts$start_timeout * 1000)
    if (!inherits(handle, "securer_rs_error")) {
      return(new_child(handle, dir))
    }
    if (length(dir)) unlink(dir, recursive = TRUE)
    # A dead zygote is replaced once; anything else falls back to a cold
    # start, which reports its own errors.
    if (child_alive(z)) {
      return(NULL)
    }
  }
  NULL
}

# The running zygotes, by key: list(key, pid) each. Internal, for tests
# and diagnostics.
zygote_list <- function() {
  keys <- sort(ls(the$zygotes))
  out <- lapply(keys, function(k) {
    z <- the$zygotes[[k]]
    if (!is.null(z)) list(key = k, pid = z$pid)
  })
  names(out) <- keys
  Filter(Negate(is.null), out)
}

# Stops the zygote of `key` (the next session of that policy starts a new
# one).
zygote_stop <- function(key) {
  child_release(the$zygotes[[key]])
  if (exists(key, envir = the$zygotes, inherits = FALSE)) {
    rm(list = key, envir = the$zygotes)
  }
  invisible()
}

zygote_stop_all <- function() {
  reap_abandoned()
  for (key in ls(the$zygotes)) zygote_stop(key)
  invisible()
}
