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
  rt$type_ok_sym <- sym("wrap__rs_tool_type_ok")
  rt$max_frame <- as.numeric(env[["SECURER_MAX_FRAME"]])
  hex <- env[["SECURER_TOKEN"]]
  token <- as.raw(strtoi(substring(hex, seq(1, nchar(hex), 2), seq(2, nchar(hex), 2)), 16L))

  # Messages go by kind name ("result", "tool_call", ...); the Rust side
  # frames them and stamps the ids that tie each reply to its request.
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

    # Interrupts (SIGINT from the host, which stops an evaluation) are
    # suspended in the runtime's own code and taken only here and while
    # the user's code runs, so none can strike between two steps of the
    # runtime and end the process.
    take_interrupt <- function() allowInterrupts(Sys.sleep(0))

    # The next message for the runtime: list(kind, payload). Rust waits at
    # most `wait_ms` at a time (-1: until something arrives or a signal
    # does); between waits a pending interrupt is taken, so it stops an
    # evaluation even while that waits for a tool.
    recv <- function(wait_ms = -1) {
      repeat {
        msg <- .Call(recv_sym, wait_ms)
        if (is.null(msg)) {
          take_interrupt()
          next
        }
        if (inherits(msg, "securer_rs_error")) {
          # The host is gone: nothing left to do.
          quit(save = "no", status = if (identical(msg$kind, "closed")) 0L else 70L)
        }
        return(msg)
      }
    }

    tool_calls <- 0L
    classes <- character()

    type_ok <- function(value, type) .Call(type_ok_sym, value, type)

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
      # What was printed before the call reaches the host before the call
      # (stderr is unbuffered).
      flush(stdout())
      send("tool_call", list(id = tool_calls, name = name, args = args))
      # Only the reply to this call (or a shutdown) comes back.
      msg <- recv(100)
      switch(msg$kind,
        tool_result = unserialize(msg$payload),
        tool_error = stop(tool_error(unserialize(msg$payload), call)),
        quit(save = "no", status = 0L)
      )
    }

    make_tool <- function(name, types) {
      # A tool without arguments has types = list(), whose names are NULL.
      arg_names <- as.character(names(types))
      fn <- function() NULL
      formals(fn) <- stats::setNames(
        rep(list(quote(expr = )), length(arg_names)), arg_names
      )
      # The supplied arguments, by name: c(list(), if (!missing(a))
      # list(a = a), ...), a tenth of the cost of finding them at run time.
      supplied <- as.call(c(as.name("c"), list(quote(list())), lapply(arg_names, function(a) {
        value <- stats::setNames(list(as.name(a)), a)
        call("if", call("!", call("missing", as.name(a))), as.call(c(as.name("list"), value)))
      })))
      body(fn) <- bquote(
        .securer_call_tool(.(name), .(supplied), .(as.list(types)), sys.call())
      )
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
    parse_call <- quote(str2expression(code))
    user_call <- function(call) {
      if (is.null(call) || identical(call, runtime_call) || identical(call, parse_call)) NULL else call
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
      # (stderr is unbuffered.)
      flush(stdout())
      tryCatch(send(kind, value), error = function(e) {
        send("error", condition_data(e))
      })
    }

    run <- function(code) {
      tool_calls <<- 0L
      result <- tryCatch(
        allowInterrupts(withCallingHandlers(
          {
            exprs <- str2expression(code)
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
          },
          warning = warn
        )),
        error = function(e) list(ok = FALSE, value = condition_data(e)),
        interrupt = function(e) {
          list(ok = FALSE, value = list(
            message = "interrupted", call = NA_character_,
            class = c("interrupt", "condition")
          ))
        }
      )
      finish(if (result$ok) "result" else "error", result$value)
    }

    # An interrupt taken outside an evaluation was meant for one that is
    # over (the host interrupts only while it waits for a reply): dropped.
    drop_interrupt <- function(e) NULL

    main <- function() {
      suspendInterrupts(repeat {
        msg <- tryCatch(recv(), interrupt = drop_interrupt)
        if (is.null(msg)) next
        switch(msg$kind,
          # The code comes as UTF-8 bytes; a stale interrupt was dropped
          # on receipt (rs_child_recv).
          exec = {
            code <- rawToChar(msg$payload)
            Encoding(code) <- "UTF-8"
            run(code)
          },
          setup = setup(unserialize(msg$payload)),
          shutdown = quit(save = "no", status = 0L)
        )
      })
    }
  })

  err <- .Call(sym("wrap__rs_child_connect"), 3L, token, rt$max_frame)
  if (!is.null(err)) quit(save = "no", status = 70L)
  if (identical(Sys.getenv("SECURER_ZYGOTE"), "1")) {
    # A warm zygote: everything above is loaded once; each request forks a
    # confined session that returns here with its own socket as fd 3.
    Sys.unsetenv("SECURER_ZYGOTE")
    # Compiled here once, not by the JIT in every session (its first
    # execution would take tens of milliseconds); then a full collection,
    # so that sessions start far from their first one (which writes to,
    # and so copies, every page of the heap it marks).
    for (nm in ls(rt)) {
      if (is.function(rt[[nm]])) rt[[nm]] <- compiler::cmpfun(rt[[nm]])
    }
    invisible(gc(full = TRUE))
    start <- .Call(sym("wrap__rs_zygote_serve"), rt$max_frame)
    if (inherits(start, "securer_rs_error")) quit(save = "no", status = 0L)
    # Rust reseeded C's rand() (tempfile() names) and made a new
    # tempdir(); R's generator seeds itself on first use (from the clock
    # and pid) unless a state was inherited.
    if (exists(".Random.seed", envir = globalenv(), inherits = FALSE)) {
      rm(".Random.seed", envir = globalenv())
    }
    hex <- start$token
    token <- as.raw(strtoi(substring(hex, seq(1, nchar(hex), 2), seq(2, nchar(hex), 2)), 16L))
    err <- .Call(sym("wrap__rs_child_connect"), 3L, token, rt$max_frame)
    if (!is.null(err)) quit(save = "no", status = 70L)
    rm(start)
  }
  rm(token, hex, env, dll, sym, err)
  rt$main()
})
