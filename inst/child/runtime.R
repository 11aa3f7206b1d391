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
  # The calls made for each message, which keep clear of extendr's table
  # of objects (a session would copy it from the zygote page by page).
  calls <- .Call(sym("wrap__rs_child_calls"))
  rt$send_sym <- calls$send
  rt$send_plain_sym <- calls$send_plain
  rt$null_bytes <- serialize(NULL, NULL, xdr = FALSE)
  rt$recv_sym <- calls$recv
  rt$requests_soon_sym <- calls$requests_soon
  rt$check_result_sym <- calls$check_result
  rt$type_ok_sym <- calls$type_ok
  rt$fs <- lapply(
    c(
      target = "rs_fs_target", open_read = "rs_fs_open_read", read = "rs_fs_read",
      list = "rs_fs_list", sink_open = "rs_file_sink_open",
      sink_write = "rs_file_sink_write", sink_commit = "rs_file_sink_commit",
      sink_close = "rs_file_sink_close"
    ),
    function(name) sym(paste0("wrap__", name))
  )
  rt$max_frame <- as.numeric(env[["SECURER_MAX_FRAME"]])
  hex <- env[["SECURER_TOKEN"]]
  token <- as.raw(strtoi(substring(hex, seq(1, nchar(hex), 2), seq(2, nchar(hex), 2)), 16L))

  # Messages go by kind name ("result", "tool_call", ...); the Rust side
  # frames them and stamps the ids that tie each reply to its request.
  evalq(envir = rt, {
    send <- function(kind, value) {
      if (send_plain(kind, value)) return(invisible())
      bytes <- serialize(value, NULL, xdr = FALSE)
      if (length(bytes) > max_frame) {
        stop(sprintf(
          "value of %.1f MiB is larger than the %.1f MiB message limit",
          length(bytes) / 2^20, max_frame / 2^20
        ), call. = FALSE)
      }
      send_bytes(kind, bytes)
    }

    # Every message leaves through here or send_plain() (warm_up()
    # replaces both).
    send_bytes <- function(kind, bytes) {
      err <- .Call(send_sym, kind, bytes)
      if (!is.null(err)) quit(save = "no", status = 70L)
    }

    # Most messages are lists of plain vectors (no attributes but names):
    # Rust writes their bytes as serialize() would and sends them, without
    # the table of references serialize() allocates on every call. FALSE
    # when `value` is anything else, or larger than a message: nothing was
    # sent.
    send_plain <- function(kind, value) {
      sent <- .Call(send_plain_sym, kind, value, null_bytes, max_frame)
      if (is.null(sent)) return(TRUE)
      if (!isFALSE(sent)) quit(save = "no", status = 70L)
      FALSE
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
    recv <- function(wait_ms = -1, on_interrupt = take_interrupt) {
      repeat {
        msg <- .Call(recv_sym, wait_ms)
        if (is.null(msg)) {
          on_interrupt()
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
      console_trim()
      # What was printed before the call reaches the host before the call.
      flush_stdout()
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

    # The runtime's own frame is not the user's: a top-level stop() reports
    # no call, as at the console.
    runtime_call <- quote(eval(exprs[[i]], globalenv()))
    parse_call <- quote(str2expression(req$code))
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

    `%||%` <- function(x, y) if (is.null(x)) y else x

    # --- The console transcript ---------------------------------------
    # What R's console would show for the execution, in order: printed
    # output (a sink that also lets it through to stdout, so the host's
    # "output" lines stream as before), messages, warnings as the console
    # formats them after each top-level expression, the printed value of
    # the last one, and an error. Kept in a raw connection; past `max`
    # bytes only its first and last halves are kept (checked after each
    # expression, message, warning and tool call).

    console <- NULL
    # The raw connection, kept open from one execution to the next.
    console_con <- NULL

    # base's sink(), sink.number() and seek() run match.arg() or pmatch()
    # on every call: with them the transcript cost a third of a short
    # execution. These call the same internals with the arguments those
    # functions would pass (R's `sink()`, `sink.number()`,
    # `seek.connection()`, `truncate.connection()`; unchanged since R 3.x).
    sink_depth <- function() .Internal(sink.number(TRUE))
    sink_push <- function(con, split) .Internal(sink(con, FALSE, FALSE, split))
    sink_pop <- function() .Internal(sink(-1L, FALSE, FALSE, FALSE))
    sink_unwind <- function(depth) {
      while (sink_depth() > depth) sink_pop()
    }
    con_size <- function(con) .Internal(seek(con, NA_real_, 1L, 2L))
    # flush(stdout()) without the S3 dispatch (stderr is unbuffered).
    flush_stdout <- function() .Internal(flush(stdout()))
    con_clear <- function(con) {
      .Internal(seek(con, 0, 1L, 2L))
      .Internal(truncate(con))
    }

    # Is the transcript's connection still the one we opened? The code may
    # have closed it (closeAllConnections()), and its number may belong to
    # a new one by then: the id says. (Without a tryCatch(): this runs
    # several times per execution.)
    console_num <- 0L
    console_id <- NULL
    ours <- function() {
      if (is.null(console_con) || !any(.Internal(getAllConnections()) == console_num)) return(FALSE)
      cur <- .Internal(getConnection(console_num))
      identical(attr(cur, "conn_id"), console_id) && .Internal(isOpen(cur, 0L))
    }

    console_open <- function(max) {
      if (!is.numeric(max) || length(max) != 1L || is.na(max) || max <= 0) {
        console <<- NULL
        return(invisible())
      }
      if (ours()) {
        con_clear(console_con)
      } else {
        console_con <<- rawConnection(raw(0), "w")
        console_num <<- as.integer(console_con)
        console_id <<- attr(console_con, "conn_id")
      }
      console <<- list(con = console_con, sinks = sink_depth(), max = max, head = raw(0), omitted = 0)
      sink_push(console_con, TRUE)
      invisible()
    }

    # A connection the code closed ends the transcript; the execution goes
    # on.
    console_live <- function() {
      if (is.null(console)) return(FALSE)
      ok <- ours()
      if (!ok) console <<- NULL
      ok
    }

    console_write <- function(text) {
      if (!console_live()) return(invisible())
      writeBin(charToRaw(enc2native(paste(text, collapse = ""))), console$con)
      console_trim()
    }

    console_trim <- function() {
      if (!console_live() || con_size(console$con) <= console$max) return(invisible())
      cs <- console
      bytes <- rawConnectionValue(cs$con)
      half <- cs$max %/% 2
      if (length(cs$head) < half) {
        take <- min(half - length(cs$head), length(bytes))
        cs$head <- c(cs$head, bytes[seq_len(take)])
        bytes <- bytes[-seq_len(take)]
      }
      keep <- min(length(bytes), cs$max - half)
      cs$omitted <- cs$omitted + length(bytes) - keep
      con_clear(cs$con)
      writeBin(bytes[length(bytes) - keep + seq_len(keep)], cs$con)
      console <<- cs
      invisible()
    }

    # The value of the last expression, printed into the transcript only
    # (the "output" lines hold what the code printed, not its value). A
    # print method that fails is reported there, as at the console.
    console_print <- function(value) {
      if (!console_live()) return(invisible())
      sink_unwind(console$sinks)
      sink_push(console$con, FALSE)
      # The transcript keeps `max` bytes at most: printing far more of a
      # long vector or data frame only costs time.
      limit <- max(100, console$max %/% 64)
      # A short vector without attributes runs no method and prints within
      # max.print: print.default() then fails only as everything would (out
      # of memory, an interrupt), or when warnings are errors and an option
      # it reads is invalid. Otherwise it needs no guard.
      if (is.atomic(value) && is.null(attributes(value)) && length(value) <= limit &&
        !isTRUE(.Internal(getOption("warn")) >= 2)) {
        print_plain(value)
        sink_pop()
        return(invisible())
      }
      on.exit(sink_pop(), add = TRUE)
      if (!is.atomic(value) || length(value) > limit) {
        old <- options(max.print = min(getOption("max.print", 99999L), limit))
        on.exit(options(old), add = TRUE)
      }
      tryCatch(print_value(value), error = function(e) console_write(error_text(e)))
      invisible()
    }

    # The transcript as one string; ends the sink.
    console_close <- function() {
      if (!console_live()) return(NULL)
      cs <- console
      console <<- NULL
      sink_unwind(cs$sinks)
      tail <- rawConnectionValue(cs$con)
      bytes <- if (cs$omitted > 0) {
        c(
          cs$head,
          charToRaw(sprintf("\n[... %.0f bytes of output omitted ...]\n", cs$omitted)),
          tail
        )
      } else {
        c(cs$head, tail)
      }
      bytes[bytes == as.raw(0L)] <- as.raw(0x3fL)
      text <- rawToChar(bytes)
      if (any(bytes >= as.raw(0x80L))) {
        # Valid UTF-8, as the host requires of every string (output may
        # hold any bytes, and the halves may cut a character).
        text <- iconv(text, from = "", to = "UTF-8", sub = "\ufffd")
        if (is.na(text)) text <- ""
      }
      text
    }

    # As R's console prints a value: show() for S4 objects, print() for
    # other objects and functions, and the rest without dispatch.
    print_value <- function(value) {
      if (isS4(value)) {
        methods::show(value)
      } else if (is.object(value) || is.function(value)) {
        print(value)
      } else {
        print_plain(value)
      }
    }

    # print.default(x) without its closure, which builds the same two
    # arguments on every call (checked when the runtime loads, as
    # catch_error_interrupt()).
    print_args <- pairlist(
      digits = NULL, quote = TRUE, na.print = NULL, print.gap = NULL,
      right = FALSE, max = NULL, width = NULL, useSource = TRUE
    )
    print_missing <- rep(TRUE, 8L)
    print_plain <- function(x) .Internal(print.default(x, print_args, print_missing))
    if (!any(grepl(
      ".Internal(print.default(x, args, missings))",
      deparse(print.default, width.cutoff = 500L), fixed = TRUE
    ))) {
      print_plain <- print.default
    }

    # --- Conditions, as the console shows them --------------------------

    # R's width for a message on the same line as its call.
    long_line <- 75L

    first_line <- function(msg) nchar(sub("\n.*", "", msg), type = "width")

    call_text <- function(call) deparse(call, nlines = 1L, width.cutoff = 500L)[[1L]]

    error_text <- function(e) {
      msg <- conditionMessage(e)
      call <- user_call(conditionCall(e))
      if (is.null(call)) {
        return(paste0("Error: ", msg, "\n"))
      }
      dcall <- call_text(call)
      sep <- if (nchar(dcall, type = "width") + first_line(msg) + 12L > long_line) " : \n  " else " : "
      paste0("Error in ", dcall, sep, msg, "\n")
    }

    warnings_text <- function(ws) {
      n <- length(ws)
      if (n > 10L) {
        return(if (n >= 50L) {
          "There were 50 or more warnings (use warnings() to see the first 50)\n"
        } else {
          sprintf("There were %d warnings (use warnings() to see them)\n", n)
        })
      }
      one <- function(w, prefix) {
        msg <- conditionMessage(w)
        call <- user_call(conditionCall(w))
        if (is.null(call)) {
          return(paste0(prefix, msg, if (n == 1L) " ", "\n"))
        }
        dcall <- call_text(call)
        sep <- if (nchar(prefix) + nchar(dcall, type = "width") + first_line(msg) + 6L > long_line) " :\n  " else " : "
        paste0(prefix, "In ", dcall, sep, msg, "\n")
      }
      if (n == 1L) {
        return(paste0("Warning message:\n", one(ws[[1L]], "")))
      }
      paste0(
        "Warning messages:\n",
        paste(vapply(seq_len(n), function(i) one(ws[[i]], paste0(i, ": ")), ""), collapse = "")
      )
    }

    # Warnings wait for the end of their top-level expression, as at the
    # console; options(warn) is honoured (negative: ignored, 1: at once,
    # 2 or more: an error).
    pending <- list()

    on_warning <- function(w) {
      level <- getOption("warn", 0)
      if (level >= 2) return()
      if (level == 1) {
        call <- user_call(conditionCall(w))
        text <- if (is.null(call)) paste0("Warning: ", conditionMessage(w), "\n") else
          paste0("Warning in ", call_text(call), " : ", conditionMessage(w), "\n")
        cat(text, file = stderr())
        console_write(text)
      } else if (level >= 0) {
        pending[[length(pending) + 1L]] <<- w
      }
      invokeRestart("muffleWarning")
    }

    emit_warnings <- function(prefix = "") {
      if (length(pending) == 0L) return(invisible())
      ws <- pending
      pending <<- list()
      text <- paste0(prefix, warnings_text(ws))
      cat(text, file = stderr())
      console_write(text)
      invisible()
    }

    on_message <- function(m) {
      console_write(conditionMessage(m))
    }

    # --- Plots -----------------------------------------------------------
    # Code draws on a display-list device of the requested size (pdf(NULL):
    # no file, no display) that stays open between executions, as a
    # console's graphics window does. Each page is recorded when a new one
    # starts and at the end of the execution if drawing changed it, then
    # replayed into a PNG file (png(type = "cairo"): no X server needed)
    # and sent to the host before the result.

    plot_cfg <- NULL
    live_dev <- 0L
    # Pages started on any device (a printed ggplot or lattice object draws).
    pages_started <- 0L
    last_plot <- NULL
    snaps <- list()
    plots_omitted <- 0L

    open_device <- function(...) {
      cfg <- plot_cfg %||% list(width = 800, height = 600, res = 96)
      grDevices::pdf(NULL, width = cfg$width / cfg$res, height = cfg$height / cfg$res)
      grDevices::dev.control("enable")
      live_dev <<- grDevices::dev.cur()[[1L]]
      invisible()
    }

    # Calls that leave a page empty (evaluate's list).
    empty_calls <- c(
      "palette", "palette2", "C_layout", "C_par", "C_clip", "C_strWidth",
      "C_strHeight", "C_plot_window"
    )

    # The native routine of each display list entry, as evaluate names it.
    plot_calls <- function(p) {
      tryCatch(
        unlist(lapply(p[[1]], function(x) {
          f <- x[[2]][[1]]
          if (is.list(f) && !is.null(f[["name"]])) f[["name"]] else "other"
        })),
        error = function(e) "other"
      )
    }

    plot_empty <- function(p) all(plot_calls(p) %in% empty_calls)

    # Did `p` only add calls that draw nothing (par(), layout()) to `last`?
    # Then the page looks the same and is not sent again.
    par_change <- function(last, p) {
      if (is.null(last)) return(FALSE)
      n <- length(last[[1]])
      calls <- plot_calls(p)
      length(p[[1]]) > n && identical(last[[1]][seq_len(n)], p[[1]][seq_len(n)]) &&
        all(calls[-seq_len(n)] %in% empty_calls)
    }

    new_page <- function(...) {
      pages_started <<- pages_started + 1L
      snapshot()
    }

    snapshot <- function(incomplete = FALSE) {
      if (is.null(plot_cfg) || live_dev == 0L ||
        !identical(grDevices::dev.cur()[[1L]], live_dev)) {
        return(invisible())
      }
      if (!incomplete && !isTRUE(graphics::par("page"))) return(invisible())
      p <- grDevices::recordPlot()
      # The display lists only: the rest of a recording changes when, for
      # example, grid is loaded.
      if (identical(p[[1]], last_plot[[1]]) || plot_empty(p) || par_change(last_plot, p)) {
        return(invisible())
      }
      last_plot <<- p
      if (length(snaps) < plot_cfg$max_plots) {
        snaps[[length(snaps) + 1L]] <<- p
      } else {
        plots_omitted <<- plots_omitted + 1L
      }
      invisible()
    }

    plots_open <- function(cfg) {
      # What was drawn while images were off is not sent later.
      if (!is.null(cfg) && is.null(plot_cfg) && live_dev != 0L &&
        identical(grDevices::dev.cur()[[1L]], live_dev)) {
        last_plot <<- grDevices::recordPlot()
      }
      plot_cfg <<- cfg
      snaps <<- list()
      plots_omitted <<- 0L
      if (live_dev != 0L && !live_dev %in% grDevices::dev.list()) live_dev <<- 0L
      # (options() is a closure that builds a list: not called when the
      # option is still ours.)
      if (!identical(.Internal(getOption("device")), open_device)) options(device = open_device)
      invisible()
    }

    # Renders and sends the recorded pages: returns how many were left out
    # (beyond the maximum, or larger than the byte cap).
    plots_send <- function() {
      cfg <- plot_cfg
      if (is.null(cfg)) return(0L)
      snapshot(incomplete = TRUE)
      pages <- snaps
      snaps <<- list()
      omitted <- plots_omitted
      if (length(pages) == 0L) return(omitted)
      file <- tempfile("securer-plot-", fileext = ".png")
      for (p in pages) {
        drawn <- tryCatch(
          {
            grDevices::png(file, width = cfg$width, height = cfg$height, res = cfg$res, type = "cairo")
            dev <- grDevices::dev.cur()
            tryCatch(grDevices::replayPlot(p), finally = grDevices::dev.off(dev))
            TRUE
          },
          error = function(e) FALSE
        )
        size <- file.size(file)
        if (drawn && !is.na(size) && size <= cfg$max_bytes) {
          # PNG bytes, not an R value: the host checks them as an image.
          send_bytes("plot", readBin(file, "raw", size))
        } else {
          omitted <- omitted + 1L
        }
        unlink(file)
      }
      if (live_dev %in% grDevices::dev.list()) grDevices::dev.set(live_dev)
      omitted
    }

    setHook("before.plot.new", new_page)
    setHook("before.grid.newpage", new_page)
    setHook("persp", function(...) snapshot())

    # --- Executions ------------------------------------------------------

    finish <- function(kind, value) {
      flush_stdout()
      if (send_plain(kind, value)) return(invisible())
      # Most other replies fit in one message: sent at once, without a
      # guard (serialize() fails only for want of memory, as would the
      # rest).
      bytes <- serialize(value, NULL, xdr = FALSE)
      if (length(bytes) <= max_frame) {
        send_bytes(kind, bytes)
        return(invisible())
      }
      rm(bytes)
      try_send <- function(value) {
        tryCatch(
          {
            send(kind, value)
            TRUE
          },
          error = function(e) FALSE
        )
      }
      # Too large for one message. A value too large on its own is refused
      # (the transcript still shows it); otherwise the transcript gives way,
      # cut to the room the value leaves.
      size <- length(serialize(value$value, NULL, xdr = FALSE))
      rest <- value
      rest["value"] <- list(NULL)
      rest["console"] <- list(NULL)
      size <- size + length(serialize(rest, NULL, xdr = FALSE))
      if (kind == "result" && size > max_frame) {
        value$refused <- sprintf("value of %.0f bytes exceeds limit of %.0f bytes", size, max_frame)
        value["value"] <- list(NULL)
        if (try_send(value)) return(invisible())
      }
      if (is.character(value$console)) {
        room <- max_frame - size - 128
        bytes <- charToRaw(value$console)
        value$console <- if (room > 64) {
          paste0(
            rawToChar(bytes[seq_len(min(room - 64, length(bytes)))]),
            "\n[... output cut to fit the message limit ...]"
          )
        }
        if (try_send(value)) return(invisible())
      }
      tryCatch(send(kind, value), error = function(e) {
        send("error", list(
          message = paste("the result could not be sent:", conditionMessage(e)),
          call = NA_character_, class = c("simpleError", "error", "condition")
        ))
      })
    }

    # The value to send: the value itself when it can cross to the host,
    # else NULL and why not, and whether R can print it safely (see
    # securer_core's ValueError::printable). An invisible value nobody
    # asked to see, such as a final `fit <- lm(...)`, is simply NULL.
    checked_value <- function(value, visible) {
      # A vector without attributes is safe to print whatever the checker
      # says of it (and the host checks it anyway): not serialized twice.
      if (is.null(value) || (is.atomic(value) && is.null(attributes(value)))) {
        return(list(value = value))
      }
      err <- tryCatch(
        .Call(check_result_sym, serialize(value, NULL, xdr = FALSE), max_frame, classes),
        error = function(e) list(message = conditionMessage(e), printable = TRUE)
      )
      if (is.null(err)) return(list(value = value))
      if (!visible) return(list(value = NULL))
      list(
        value = NULL, refused = err$message, printable = isTRUE(err$printable),
        value_class = utils::head(class(value), 5L)
      )
    }

    on_run_error <- function(e) list(ok = FALSE, value = condition_data(e), cond = e)
    on_run_interrupt <- function(e) {
      list(ok = FALSE, interrupted = TRUE, value = list(
        message = "interrupted", call = NA_character_,
        class = c("interrupt", "condition")
      ))
    }

    # tryCatch(expr, error = on_error, interrupt = on_interrupt) in one
    # frame instead of four: base's tryCatch() nests a frame per handler
    # (a tenth of a short execution's time in the child). The same
    # internals, in the way base's tryCatchOne() calls them (unchanged
    # since R 3.x; checked when the runtime loads, else tryCatch() is
    # used).
    catch_error_interrupt <- function(expr, on_error, on_interrupt) {
      catch <- function(expr) {
        .Internal(.addCondHands(
          c("error", "interrupt"), list(on_error, on_interrupt),
          parent.frame(), environment(), FALSE
        ))
        expr
      }
      value <- catch(return(expr))
      cond <- value[[1L]]
      if (is.null(cond)) {
        cond <- simpleError(.Internal(geterrmessage()), value[[2L]])
      } else if (is.character(cond)) {
        cond <- simpleError(cond, value[[2L]])
      }
      value[[3L]](cond)
    }
    if (!any(grepl(
      ".Internal(.addCondHands(name, list(handler), parentenv, environment(), FALSE))",
      deparse(tryCatch, width.cutoff = 500L), fixed = TRUE
    ))) {
      catch_error_interrupt <- function(expr, on_error, on_interrupt) {
        tryCatch(expr, error = on_error, interrupt = on_interrupt)
      }
    }

    # Whether the host said it sends its next request as soon as it has
    # this one's reply (a loop of $execute(), not a pool): then the next
    # request is awaited by polling for a moment.
    requests_soon <- FALSE

    # A request: list(code, plots, console, soon); a bare string is code
    # with neither plots nor a transcript.
    run <- function(req) {
      if (is.character(req)) req <- list(code = req)
      soon <- isTRUE(req$soon)
      if (soon != requests_soon) {
        .Call(requests_soon_sym, soon)
        requests_soon <<- soon
      }
      tool_calls <<- 0L
      pending <<- list()
      console_open(req$console)
      plots_open(req$plots)
      # Whether the code parsed: a syntax error is marked as one in the
      # reply, which lets the host leave its own check to this parse.
      parsed <- FALSE
      result <- catch_error_interrupt(
        allowInterrupts(withCallingHandlers(
          {
            exprs <- str2expression(req$code)
            parsed <- TRUE
            checked <- list(value = NULL)
            visible <- TRUE
            n <- length(exprs)
            for (i in seq_len(n)) {
              res <- withVisible(eval(exprs[[i]], globalenv()))
              visible <- res$visible
              # Console-like: visible values print; the last one into the
              # transcript only, unless R cannot print it safely.
              if (i < n) {
                if (visible) print_value(res$value)
              } else {
                checked <- checked_value(res$value, visible)
                if (visible && (is.null(checked$refused) || checked$printable)) {
                  drawn <- pages_started
                  console_print(res$value)
                  # A graphics object (ggplot, lattice) is shown by drawing
                  # it: once drawn, like an invisible value, it is not worth
                  # an error that it cannot come back.
                  if (!is.null(checked$refused) && pages_started > drawn) {
                    checked <- list(value = NULL)
                    visible <- FALSE
                  }
                } else if (visible) {
                  console_write(paste0("[securer: the value is not printed: ", checked$refused, "]\n"))
                }
              }
              emit_warnings()
              console_trim()
            }
            c(list(ok = TRUE, visible = visible), checked)
          },
          warning = on_warning,
          message = on_message
        )),
        on_run_error,
        on_run_interrupt
      )
      if (!result$ok && is.null(result$interrupted)) {
        console_write(error_text(result$cond))
        emit_warnings("In addition: ")
      }
      omitted <- if (live_dev == 0L && !length(snaps)) {
        # No device was open (none drew, no page was left out): nothing
        # to render, and no guard needed.
        0L
      } else if (is.null(result$interrupted)) {
        tryCatch(allowInterrupts(plots_send()), interrupt = function(e) {
          result <<- list(ok = FALSE, interrupted = TRUE, value = list(
            message = "interrupted", call = NA_character_,
            class = c("interrupt", "condition")
          ))
          0L
        })
      } else {
        0L
      }
      text <- console_close()
      if (result$ok) {
        out <- list(
          value = result$value, visible = result$visible, console = text,
          plots_omitted = omitted, refused = result$refused,
          value_class = result$value_class
        )
        finish("result", out)
      } else {
        finish("error", c(result$value, list(console = text, plots_omitted = omitted, syntax = !parsed)))
      }
    }

    # One execution of plain code, its reply thrown away: run in the zygote
    # (what R sets up on first use, such as the transcript's connection and
    # print's dispatch, is set up once) and in each spare session before it
    # is claimed (rs_zygote_serve), so that the pages R writes in an
    # execution are copied from the zygote's then, not in the session's
    # first execution. It writes nothing to stdout or stderr (a spare's fds
    # 0-2 are closed: the value is printed into the transcript only) and
    # leaves nothing behind: the code assigns and draws nothing, and run()
    # resets what it keeps at the next execution.
    warm_up <- function() {
      real_send <- send_bytes
      real_plain <- send_plain
      send_bytes <<- function(kind, bytes) invisible()
      send_plain <<- function(kind, value) TRUE
      on.exit({
        send_bytes <<- real_send
        send_plain <<- real_plain
      })
      cfg <- list(width = 800, height = 600, res = 96, max_plots = 1L, max_bytes = 1e6)
      tryCatch(run(list(code = "1 + 1", plots = cfg, console = 65536)), error = function(e) NULL)
      invisible()
    }

    # --- Files -------------------------------------------------------------
    # Requests from the host to move files in and out of the session's
    # writable space (`roots`, given with each request: the session root
    # first). The file work is Rust's (securer_core::files): paths are
    # resolved inside the space, uploads are written beside their target
    # and renamed over it when complete.

    upload <- NULL
    download <- NULL

    fs_call <- function(name, ...) .Call(fs[[name]], ...)

    # NULL, or the reply for an error object from Rust.
    fs_failed <- function(x) {
      if (!inherits(x, "securer_rs_error")) return(NULL)
      list(ok = FALSE, problem = x$kind, message = x$message)
    }

    files_reset <- function() {
      if (!is.null(upload)) fs_call("sink_close", upload)
      upload <<- NULL
      download <<- NULL
    }

    file_op <- function(req) {
      op <- req$op
      if (!op %in% c("chunk", "put_end", "get_chunk")) files_reset()
      switch(op,
        put = {
          # Into a folder: under the file's own name.
          path <- if (dir.exists(req$path)) file.path(req$path, req$name) else req$path
          target <- fs_call("target", req$roots, path)
          if (!is.null(bad <- fs_failed(target))) return(bad)
          sink <- fs_call("sink_open", target, req$size)
          if (!is.null(bad <- fs_failed(sink))) return(bad)
          upload <<- sink
          list(ok = TRUE, path = path)
        },
        chunk = {
          if (is.null(upload)) return(list(ok = FALSE, problem = "file_io", message = "no upload in progress"))
          bad <- fs_failed(fs_call("sink_write", upload, req$data))
          if (!is.null(bad)) files_reset()
          bad %||% list(ok = TRUE)
        },
        put_end = {
          if (is.null(upload)) return(list(ok = FALSE, problem = "file_io", message = "no upload in progress"))
          done <- fs_call("sink_commit", upload)
          upload <<- NULL
          fs_failed(done) %||% list(ok = TRUE)
        },
        abort = list(ok = TRUE),
        get = {
          opened <- fs_call("open_read", req$roots, req$path, req$max)
          if (!is.null(bad <- fs_failed(opened))) return(bad)
          download <<- opened$handle
          list(ok = TRUE, size = opened$size)
        },
        get_chunk = {
          if (is.null(download)) return(list(ok = FALSE, problem = "file_io", message = "no download in progress"))
          data <- fs_call("read", download, req$n)
          if (!is.null(bad <- fs_failed(data))) return(bad)
          if (length(data) == 0L) download <<- NULL
          list(ok = TRUE, data = data)
        },
        list = {
          got <- fs_call("list", req$roots, req$path, isTRUE(req$recursive), req$max)
          if (!is.null(bad <- fs_failed(got))) return(bad)
          entries <- data.frame(
            path = got$path, type = got$kind, size = got$size,
            modified = .POSIXct(got$modified), stringsAsFactors = FALSE
          )
          list(ok = TRUE, entries = entries, truncated = got$truncated)
        },
        list(ok = FALSE, problem = "file_io", message = "unknown file operation")
      )
    }

    serve_file <- function(req) {
      reply <- tryCatch(file_op(req), error = function(e) {
        files_reset()
        list(ok = FALSE, problem = "file_io", message = conditionMessage(e))
      })
      send("file_reply", reply)
    }

    # An interrupt taken outside an evaluation was meant for one that is
    # over (the host interrupts only while it waits for a reply): dropped.
    drop_interrupt <- function(e) NULL
    take_stale_interrupt <- function() tryCatch(take_interrupt(), interrupt = drop_interrupt)

    main <- function() {
      suspendInterrupts(repeat {
        # Between requests an interrupt is stale: dropped where it is
        # taken, so that a message needs no guard (a tryCatch() is ~4 us,
        # of ~110 us of the child's CPU in a short execution).
        msg <- recv(on_interrupt = take_stale_interrupt)
        switch(msg$kind,
          exec = {
            files_reset()
            # (A stale interrupt was dropped on receipt: rs_child_recv.)
            run(unserialize(msg$payload))
          },
          file = serve_file(unserialize(msg$payload)),
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
    Sys.unsetenv(c("SECURER_ZYGOTE", "R_NSIZE"))
    # Compiled here once, not by the JIT in every session (its first
    # execution would take tens of milliseconds). A session's first full
    # collection writes to, and so copies, every page of the heap, and the
    # heap keeps the pages of its highest point: compiling leaves ~1000
    # cells of garbage per name in a function, so it is collected as it
    # goes, keeping that point near the largest function's own (a session
    # then owns 33 MiB after its first full collection instead of 45). A
    # full collection at the end, so that sessions start far from their
    # next one.
    garbage <- 0
    for (nm in ls(rt)) {
      f <- rt[[nm]]
      if (!is.function(f)) next
      size <- length(all.names(body(f)))
      if (garbage + size > 100) {
        invisible(gc(full = FALSE))
        garbage <- 0
      }
      rt[[nm]] <- compiler::cmpfun(f)
      garbage <- garbage + size
    }
    rm(f, nm, size, garbage)
    rt$warm_up()
    # R counts references in each object's header: a session that calls a
    # function or builds a string bumps the counts of the symbols, strings
    # and code it shares with the zygote, which copies their pages (most of
    # an idle session's own heap). What the namespaces and the runtime hold
    # is marked as never modified in place (R then copies it before any
    # change, as it does for a value bound to two names): a count at its
    # maximum is not written again.
    .Call(sym("wrap__rs_zygote_freeze"), c(list(baseenv(), rt), lapply(loadedNamespaces(), asNamespace)))
    invisible(gc(full = TRUE))
    # The zygote needs no temporary folder; without it, each session's
    # tempdir(check = TRUE) makes one of its own under its TMPDIR (R's
    # API for a new one).
    unlink(tempdir(), recursive = TRUE)
    start <- .Call(sym("wrap__rs_zygote_serve"), rt$max_frame, rt$warm_up)
    if (inherits(start, "securer_rs_error")) quit(save = "no", status = 0L)
    if (!dir.exists(tempdir(check = TRUE))) quit(save = "no", status = 70L)
    # Rust reseeded C's rand() (tempfile() names); R's generator seeds
    # itself on first use (from the clock and pid) unless a state was
    # inherited.
    if (exists(".Random.seed", envir = globalenv(), inherits = FALSE)) {
      rm(".Random.seed", envir = globalenv())
    }
    hex <- start$token
    token <- as.raw(strtoi(substring(hex, seq(1, nchar(hex), 2), seq(2, nchar(hex), 2)), 16L))
    err <- .Call(sym("wrap__rs_child_connect"), 3L, token, rt$max_frame)
    if (!is.null(err)) quit(save = "no", status = 70L)
    rm(start)
  }
  rm(token, hex, env, dll, sym, err, calls)
  rt$main()
})
