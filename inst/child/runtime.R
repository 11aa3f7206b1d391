# securer child runtime. Run by the sandboxed R process with --file; loads
# only securer's shared library (no other package), connects to the host
# over the inherited socket (fd 3), then evaluates what the host sends.
# Everything lives in one environment kept off the search path's globalenv.

local({
  rt <- new.env(parent = baseenv())
  env <- Sys.getenv(c("SECURER_DLL", "SECURER_TOKEN", "SECURER_MAX_FRAME"))
  Sys.unsetenv(c("SECURER_DLL", "SECURER_TOKEN", "SECURER_MAX_FRAME"))
  dll <- dyn.load(env[["SECURER_DLL"]])
  sym <- function(name) getNativeSymbolInfo(name, dll)
  rt$send_sym <- sym("wrap__rs_child_send")
  rt$recv_sym <- sym("wrap__rs_child_recv")
  rt$check_sym <- sym("wrap__rs_check_value")
  rt$max_frame <- as.numeric(env[["SECURER_MAX_FRAME"]])
  hex <- env[["SECURER_TOKEN"]]
  token <- as.raw(strtoi(substring(hex, seq(1, nchar(hex), 2), seq(2, nchar(hex), 2)), 16L))

  # Frame kinds: keep in sync with src/rust/core/src/frame.rs.
  rt$K <- c(
    exec = 2L, result = 3L, error = 4L, tool_call = 5L, tool_result = 6L,
    tool_error = 7L, setup = 10L, shutdown = 11L
  )

  evalq(envir = rt, {
    send <- function(kind, value) {
      bytes <- serialize(value, NULL, xdr = FALSE)
      if (length(bytes) > max_frame) {
        stop(sprintf(
          "value of %.1f MiB is larger than the %.1f MiB message limit",
          length(bytes) / 2^20, max_frame / 2^20
        ), call. = FALSE)
      }
      err <- .Call(send_sym, kind, bytes)
      if (!is.null(err)) quit(save = "no", status = 70L)
    }

    recv <- function() {
      msg <- .Call(recv_sym)
      # The host is gone: nothing left to do.
      if (is.character(msg)) quit(save = "no", status = 0L)
      msg
    }

    tool_calls <- 0L
    classes <- character()

    type_ok <- function(value, type) {
      switch(type,
        numeric = is.numeric(value),
        integer = is.integer(value) || (is.numeric(value) && all(is.na(value) | value == round(value))),
        character = is.character(value),
        logical = is.logical(value),
        list = is.list(value),
        data.frame = is.data.frame(value),
        matrix = is.matrix(value),
        complex = is.complex(value),
        raw = is.raw(value),
        any = TRUE,
        FALSE
      )
    }

    tool_error <- function(message, call = NULL) {
      structure(
        class = c("securer_tool_error", "error", "condition"),
        list(message = message, call = call)
      )
    }

    call_tool <- function(name, args, types, call) {
      for (arg in names(args)) {
        if (!type_ok(args[[arg]], types[[arg]])) {
          stop(tool_error(sprintf(
            "Tool '%s': argument '%s' must be %s, not %s.",
            name, arg, types[[arg]], class(args[[arg]])[[1L]]
          ), call))
        }
      }
      tool_calls <<- tool_calls + 1L
      send(K[["tool_call"]], list(id = tool_calls, name = name, args = args))
      repeat {
        msg <- recv()
        if (msg$kind == K[["tool_result"]]) {
          return(unserialize(msg$payload))
        }
        if (msg$kind == K[["tool_error"]]) {
          stop(tool_error(unserialize(msg$payload), call))
        }
      }
    }

    make_tool <- function(name, types) {
      # A tool without arguments has types = list(), whose names are NULL.
      arg_names <- as.character(names(types))
      fn <- function() NULL
      formals(fn) <- stats::setNames(
        rep(list(quote(expr = )), length(arg_names)), arg_names
      )
      body(fn) <- bquote({
        .env <- environment()
        .supplied <- Filter(
          function(a) !eval(call("missing", as.name(a)), .env),
          .(arg_names)
        )
        .securer_call_tool(
          .(name), mget(.supplied, envir = .env), .(as.list(types)), sys.call()
        )
      })
      environment(fn) <- list2env(
        list(.securer_call_tool = call_tool),
        parent = baseenv()
      )
      fn
    }

    setup <- function(cfg) {
      tools_env <- new.env(parent = emptyenv())
      for (t in cfg$tools) {
        assign(t$name, make_tool(t$name, t$args), envir = tools_env)
      }
      if ("securer:tools" %in% search()) detach("securer:tools")
      attach(tools_env, name = "securer:tools", warn.conflicts = FALSE)
      max_frame <<- cfg$max_frame
      classes <<- cfg$classes
    }

    warn <- function(w) {
      call <- user_call(conditionCall(w))
      cat(
        if (is.null(call)) "Warning message:\n" else
          paste0("Warning message in ", deparse(call, nlines = 1L)[[1L]], ":\n"),
        conditionMessage(w), "\n",
        sep = "", file = stderr()
      )
      invokeRestart("muffleWarning")
    }

    # The runtime's own frame is not the user's: a top-level stop() reports
    # no call, as at the console.
    runtime_call <- quote(eval(exprs[[i]], globalenv()))
    user_call <- function(call) {
      if (is.null(call) || identical(call, runtime_call)) NULL else call
    }

    condition_data <- function(e) {
      call <- user_call(conditionCall(e))
      list(
        message = conditionMessage(e),
        call = if (is.null(call)) NA_character_ else
          paste(deparse(call, nlines = 3L), collapse = "\n"),
        class = class(e)
      )
    }

    finish <- function(kind, value) {
      flush(stdout())
      flush(stderr())
      tryCatch(send(kind, value), error = function(e) {
        send(K[["error"]], condition_data(e))
      })
    }

    run <- function(code) {
      tool_calls <<- 0L
      drop_interrupt()
      result <- tryCatch(
        withCallingHandlers(
          allowInterrupts({
            exprs <- parse(text = code, keep.source = FALSE)
            value <- NULL
            n <- length(exprs)
            for (i in seq_len(n)) {
              res <- withVisible(eval(exprs[[i]], globalenv()))
              value <- res$value
              # Console-like: visible values of earlier expressions print.
              if (i < n && res$visible) print(value)
            }
            visible <- n == 0L || res$visible
            # An invisible value the host would refuse (a final
            # `f <- function...` or `fit <- lm(...)`) is not worth an
            # error: nobody asked to see it, so send NULL instead.
            if (!visible && !is.null(value) &&
              !is.null(.Call(check_sym, serialize(value, NULL, xdr = FALSE), max_frame, classes))) {
              value <- NULL
            }
            list(ok = TRUE, value = list(value = value, visible = visible))
          }),
          warning = warn
        ),
        error = function(e) list(ok = FALSE, value = condition_data(e)),
        interrupt = function(e) {
          list(ok = FALSE, value = list(
            message = "interrupted", call = NA_character_,
            class = c("interrupt", "condition")
          ))
        }
      )
      if (result$ok) {
        finish(K[["result"]], result$value)
      } else {
        finish(K[["error"]], result$value)
      }
    }

    # The host interrupts an execution with SIGINT, possibly just after it
    # answered: such a late interrupt reaches an idle runtime. Interrupts
    # are therefore suspended except while the user's code runs, and one
    # left pending from before is taken (Sys.sleep() checks for it) and
    # dropped just before new code runs.
    drop_interrupt <- function() {
      allowInterrupts(tryCatch(Sys.sleep(0), interrupt = function(e) NULL))
    }

    main <- function() {
      suspendInterrupts(repeat {
        msg <- recv()
        kind <- msg$kind
        if (kind == K[["exec"]]) {
          run(unserialize(msg$payload))
        } else if (kind == K[["setup"]]) {
          setup(unserialize(msg$payload))
        } else if (kind == K[["shutdown"]]) {
          quit(save = "no", status = 0L)
        }
      })
    }
  })

  err <- .Call(sym("wrap__rs_child_connect"), 3L, token, rt$max_frame)
  if (!is.null(err)) quit(save = "no", status = 70L)
  if (identical(Sys.getenv("SECURER_ZYGOTE"), "1")) {
    # A warm zygote: everything above is loaded once; each request forks a
    # confined session that returns here with its own socket as fd 3.
    Sys.unsetenv("SECURER_ZYGOTE")
    start <- .Call(sym("wrap__rs_zygote_serve"), rt$max_frame)
    if (is.character(start)) quit(save = "no", status = 0L)
    tempdir(check = TRUE)
    hex <- start$token
    token <- as.raw(strtoi(substring(hex, seq(1, nchar(hex), 2), seq(2, nchar(hex), 2)), 16L))
    err <- .Call(sym("wrap__rs_child_connect"), 3L, token, rt$max_frame)
    if (!is.null(err)) quit(save = "no", status = 70L)
    rm(start)
  }
  rm(token, hex, env, dll, sym, err)
  rt$main()
})
