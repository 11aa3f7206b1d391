# The child-process layer (R/child.R and the Rust host under it): what the
# child prints reaches the host bounded and clean, every reply is tied to
# its request, and a failure on the host never leaves a session one reply
# behind. Attacks run in every tier: forked from the warm zygote (the
# default sandboxed session), native cold start, the fallback tier, and no
# sandbox.

tiers <- c("zygote", "cold", "fallback", "none")

# A SecureSession of `tier`, closed when `.env` ends.
tier_session <- function(tier, ..., .env = parent.frame()) {
  if (tier %in% c("zygote", "cold", "fallback")) {
    skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the Linux sandbox tiers need Linux")
  }
  switch(tier,
    zygote = {
      skip_if_no_sandbox()
      s <- sandboxed_session(..., .env = .env)
      require_or_skip(zygote_session(s), "the session was not forked from a warm zygote")
      s
    },
    cold = {
      skip_if_no_sandbox()
      s <- sandboxed_session(..., zygote = FALSE, .env = .env)
      require_or_skip(!zygote_session(s), "the session did not start cold")
      s
    },
    fallback = fallback_session(..., .env = .env),
    none = new_session(..., .env = .env)
  )
}

# A child of `tier` started through the child layer itself, for the tests
# that speak the protocol directly; stopped when `.env` ends.
tier_child <- function(tier, tools = list(), .env = parent.frame()) {
  if (tier %in% c("zygote", "cold")) skip_if_no_sandbox()
  if (tier == "fallback") {
    skip_if_not(identical(Sys.info()[["sysname"]], "Linux"), "the fallback tier needs Linux")
  }
  sandbox <- switch(tier,
    zygote = ,
    cold = TRUE,
    fallback = build_sandbox_fallback(),
    none = FALSE
  )
  opts <- list(
    tools = securer:::validate_tools(tools),
    sandbox = securer:::as_sandbox_config(sandbox),
    limits = securer:::resolve_limits(NULL),
    strict = tier != "fallback",
    max_frame = securer:::rs_frame_limit(NULL),
    start_timeout = 60
  )
  child <- withr::with_options(
    list(securer.zygote = tier == "zygote"),
    securer:::child_setup(securer:::child_spawn(opts), opts)
  )
  withr::defer(securer:::child_stop(child), envir = .env)
  forked <- any(grepl("zygote", child$layers$detail, fixed = TRUE))
  require_or_skip(forked == (tier == "zygote"), paste("the child did not start as tier", tier))
  child
}

# Sends `code` to a child-layer child as an exec request.
child_exec <- function(child, code) {
  # As child_send() does: the request serialized (here the bare code).
  err <- securer:::rs_send(child$handle, "exec", serialize(code, NULL, xdr = FALSE), 10000)
  expect_null(err)
}

# Events of `child` up to the first of `types`: list(event, output). Fails
# on any other event; the deadline only keeps a broken child from hanging
# the suite.
child_wait <- function(child, types = c("result", "error"), deadline = 60) {
  stop_at <- Sys.time() + deadline
  output <- character()
  while (Sys.time() < stop_at) {
    ev <- securer:::rs_next_event(child$handle, 100)
    if (is.null(ev)) next
    if (identical(ev$type, "output")) {
      output <- c(output, ev$lines)
      next
    }
    if (ev$type %in% types) {
      return(list(event = ev, output = output))
    }
    fail(paste("unexpected event:", ev$type, ev$message))
    return(NULL)
  }
  fail(paste("no", paste(types, collapse = "/"), "event arrived"))
}

# The value of a result event.
result_value <- function(ev) {
  expect_identical(ev$type, "result")
  unserialize(ev$payload)$value
}

# Code that writes `bytes` to the child's fd `fd` without R in between
# (R strings cannot hold a NUL; `cat` writes whatever it is given).
write_raw_code <- function(bytes, fd = 1L) {
  bquote({
    con <- pipe(.(paste0("cat >&", fd)), "wb")
    writeBin(.(bytes), con)
    close(con)
  })
}

deparsed <- function(expr) paste(deparse(expr, width.cutoff = 500L), collapse = "\n")

# Does the session have `cat` and a shell (to write raw bytes)?
has_cat <- function(session) {
  isTRUE(run_in(session, quote(nzchar(Sys.which("cat")) && file.exists("/bin/sh"))))
}

control_chars <- "[\001-\010\013-\037\177]"

for (tier in tiers) {
  test_that(paste0("NUL bytes in stdout and stderr arrive as clean lines (", tier, ")"), {
    s <- tier_session(tier)
    require_or_skip(has_cat(s), "the session has no cat or shell to write raw bytes")
    bytes <- as.raw(c(0x41, 0x00, 0x42, 0x0a))
    # Control: these bytes cannot become an R string as they are.
    expect_error(rawToChar(bytes), "nul")
    code <- deparsed(bquote({
      .(write_raw_code(bytes, 1L))
      .(write_raw_code(bytes, 2L))
      "done"
    }))
    value <- s$execute(code)
    expect_identical(strip_output(value), "done")
    expect_identical(s$last_output(), c("AB", "AB"))
    # The session is still in step.
    expect_identical(strip_output(s$execute("6 * 7")), 42)
  })

  test_that(paste0("control sequences in output never reach the host (", tier, ")"), {
    s <- tier_session(tier)
    code <- paste(
      'osc52 <- "\\033]52;c;c2VjcmV0\\a"',
      'title <- "\\033]0;pwned\\033\\\\"',
      'csi <- "\\033[2J\\033[31m"',
      'c1 <- "\\u009b31m"',
      'cat(osc52, title, csi, "red", c1, "\\033[0m\\n", sep = "")',
      'message("\\033]0;from stderr\\a", "warning text")',
      'cat("tab\\there\\r\\b\\001\\n")',
      # Control: the child really sent the escapes.
      'grepl("\\033", c(osc52, title, csi))',
      sep = "\n"
    )
    value <- s$execute(code)
    expect_identical(strip_output(value), c(TRUE, TRUE, TRUE))
    out <- s$last_output()
    expect_true(all(c("red", "warning text", "tab\there") %in% out))
    expect_false(any(grepl(control_chars, out)))
    expect_false(any(grepl("[\u0080-\u009f]", out)))
  })

  test_that(paste0("a long line is split at 64 KiB and nothing is lost (", tier, ")"), {
    s <- tier_session(tier)
    s$execute('cat(strrep("x", 100 * 1024), "\\nshort\\n", sep = "")')
    out <- s$last_output()
    max_line <- securer:::rs_protocol()$max_line_bytes
    expect_true(all(nchar(out, "bytes") <= max_line))
    expect_identical(out[[length(out)]], "short")
    expect_identical(sum(nchar(out[-length(out)])), 100L * 1024L)
  })

  test_that(paste0("an output flood is stored up to the limit, then one marker (", tier, ")"), {
    s <- tier_session(tier)
    default <- securer:::rs_protocol()$max_output_bytes
    # Three times the default budget, in 10 kB lines.
    value <- s$execute(sprintf(
      'for (i in seq_len(%d)) cat(strrep("y", 10000), "\\n", sep = ""); "flooded"',
      ceiling(3 * default / 10001)
    ))
    expect_identical(strip_output(value), "flooded")
    out <- s$last_output()
    marker <- out[[length(out)]]
    expect_match(marker, paste0("output truncated after ", format(default, scientific = FALSE), " bytes"), fixed = TRUE)
    expect_match(marker, "securer.max_output_bytes", fixed = TRUE)
    expect_lte(sum(nchar(out[-length(out)], "bytes")), default)
    expect_length(grep("output truncated", out, fixed = TRUE), 1L)
    # The limit is an option, per execution.
    withr::local_options(securer.max_output_bytes = 25000)
    s$execute('for (i in 1:100) cat(strrep("z", 999), "\\n", sep = "")')
    out <- s$last_output()
    expect_length(out, 26L)
    expect_match(out[[26]], "output truncated after 25000 bytes", fixed = TRUE)
    withr::local_options(securer.max_output_bytes = Inf)
    s$execute('for (i in 1:100) cat(strrep("z", 999), "\\n", sep = "")')
    expect_length(s$last_output(), 100L)
  })

  test_that(paste0("output before and after a tool call keeps its order (", tier, ")"), {
    seen <- character()
    note <- securer_tool("note", "Note a step", function(x) {
      seen <<- c(seen, paste("tool:", x))
      invisible(NULL)
    }, args = list(x = "character"))
    s <- tier_session(tier, tools = list(note))
    s$execute(
      'cat("before 1\\nbefore 2\\n"); cat("partial"); x <- note("a"); cat("after\\n"); x <- note("b"); cat("end\\n")',
      output_handler = function(line) seen <<- c(seen, line)
    )
    expect_identical(
      seen,
      c("before 1", "before 2", "partial", "tool: a", "after", "tool: b", "end")
    )
  })

  test_that(paste0("a forged extra result never answers the next execution (", tier, ")"), {
    s <- tier_session(tier)
    require_or_skip(has_cat(s), "the session has no cat or shell to write raw frames")
    kinds <- securer:::rs_protocol()$kinds
    # Three ways for the sandboxed code to write results of its own: the
    # runtime's own send() (found through the call stack), the glue's
    # send function, and raw frames written to the socket (fd 3) by a
    # child process, with every small id as the request they answer.
    forge <- bquote({
      .(str2lang(find_runtime))
      rt$send("result", list(value = "forged by send()", visible = TRUE))
      .Call("wrap__rs_child_send", "result",
        serialize(list(value = "forged by .Call", visible = TRUE), NULL, xdr = FALSE),
        PACKAGE = "securer"
      )
      u32 <- function(n) writeBin(as.integer(n), raw(), size = 4L, endian = "little")
      u64 <- function(n) c(u32(n), as.raw(c(0, 0, 0, 0)))
      frame <- function(re) {
        payload <- c(u64(0), u64(re), serialize(list(value = "forged raw", visible = TRUE), NULL, xdr = FALSE))
        c(u32(length(payload)), as.raw(.(kinds[["result"]])), payload)
      }
      .(write_raw_code(quote(do.call(c, lapply(0:50, frame))), 3L))
      "real"
    })
    first <- strip_output(s$execute(deparsed(forge)))
    # The code may answer its own execution as it likes ...
    expect_true(first %in% c("forged by send()", "real"))
    # ... but nothing it sent answers the next ones.
    for (i in 1:3) {
      expect_identical(strip_output(s$execute(sprintf("%d * 10", i))), i * 10)
    }
  })

  test_that(paste0("the host discards forged replies and counts them (", tier, ")"), {
    child <- tier_child(tier)
    h <- child$handle
    expect_identical(securer:::rs_state(h), "idle")
    child_exec(child, paste(
      find_runtime,
      'rt$send("result", list(value = "forged", visible = TRUE))',
      'rt$send("result", list(value = "forged again", visible = TRUE))',
      '"real"',
      sep = "\n"
    ))
    expect_identical(result_value(child_wait(child)$event), "forged")
    child_exec(child, "2 + 2")
    expect_identical(result_value(child_wait(child)$event), 4)
    # Control: the extra replies did reach the host, and were dropped.
    expect_identical(securer:::rs_discarded(h), 2)
    expect_identical(securer:::rs_state(h), "idle")
  })

  test_that(paste0("a request out of turn is refused with a state error (", tier, ")"), {
    child <- tier_child(tier)
    h <- child$handle
    err <- securer:::rs_send(h, "tool_result", serialize(1, NULL), 1000)
    expect_s3_class(err, "securer_rs_error")
    expect_identical(err$kind, "state")
    child_exec(child, "Sys.sleep(0.2); 1")
    err <- securer:::rs_send(h, "exec", serialize("2", NULL), 1000)
    expect_identical(err$kind, "state")
    expect_identical(err$pid, as.integer(child$pid))
    expect_true(is.list(err) && is.character(err$message))
    expect_identical(result_value(child_wait(child)$event), 1)
  })

  test_that(paste0("SIGINT stops a child that waits for a tool reply (", tier, ")"), {
    slow <- securer_tool("slow", "Never answered in time", function() NULL)
    child <- tier_child(tier, tools = list(slow))
    h <- child$handle
    child_exec(child, 'tryCatch(slow(), interrupt = function(e) "interrupted while waiting")')
    child_wait(child, "tool_call")
    expect_identical(securer:::rs_state(h), "tool_call")
    # No reply: the child is blocked waiting for one.
    expect_true(securer:::rs_signal(h, 2L))
    expect_identical(result_value(child_wait(child)$event), "interrupted while waiting")
    expect_identical(securer:::rs_state(h), "idle")
    # The late reply has nobody to go to.
    err <- securer:::rs_send(h, "tool_result", serialize(NULL, NULL), 1000)
    expect_identical(err$kind, "state")
    child_exec(child, "1 + 1")
    expect_identical(result_value(child_wait(child)$event), 2)
  })

  test_that(paste0("SIGINT to an idle child is dropped, and it answers the next request (", tier, ")"), {
    child <- tier_child(tier)
    h <- child$handle
    child_exec(child, "x <- 1; x")
    expect_identical(result_value(child_wait(child)$event), 1)
    # Between requests an interrupt has no evaluation to stop: the child
    # drops it, whether it takes it while waiting or with the next request.
    for (i in 1:3) expect_true(securer:::rs_signal(h, 2L))
    child_exec(child, "x + 1")
    expect_identical(result_value(child_wait(child)$event), 2)
    expect_identical(securer:::rs_state(h), "idle")
    expect_true(securer:::rs_alive(h))
  })

  test_that(paste0("the runtime's per-message calls refuse wrong arguments and the child goes on (", tier, ")"), {
    s <- tier_session(tier)
    # The code can reach the runtime's environment through the call stack,
    # and with it the calls that work on R objects directly: wrong types
    # get an error object, never a crash. Control: the same calls with
    # the right types work (the runtime's own use of them).
    s$execute(paste(
      "rt <- NULL; for (i in seq_len(sys.nframe())) { e <- environment(sys.function(i));",
      "if (is.environment(e) && exists('send_sym', envir = e, inherits = FALSE)) { rt <- e; break } }"
    ))
    expect_true(s$execute("is.environment(rt)"))
    got <- s$execute(paste(
      "list(.Call(rt$send_sym, 1, 2)$kind, .Call(rt$send_sym, c('result', 'error'), raw(1))$kind,",
      ".Call(rt$check_result_sym, 'x', 1, 2)$kind, .Call(rt$type_ok_sym, quote(x), NA),",
      ".Call(rt$type_ok_sym, 1:3, c('integer', NA)), .Call(rt$type_ok_sym, 1:3, 'integer'),",
      "is.null(.Call(rt$check_result_sym, serialize(1, NULL, xdr = FALSE), 1e6, character())))"
    ))
    expect_identical(got, list("input", "input", "input", FALSE, FALSE, TRUE, TRUE))
    expect_identical(s$execute("1 + 1"), 2)
  })

  test_that(paste0("an idle child gives back the stack its deepest evaluation used (", tier, ")"), {
    s <- tier_session(tier)
    # The resident size of the child's stack in KiB, as the child sees it.
    stack_kb <- paste(
      'local({ l <- readLines("/proc/self/smaps"); i <- grep("[stack]", l, fixed = TRUE);',
      'j <- grep("^Rss:", l); as.numeric(gsub("[^0-9]", "", l[j[j > i][1]])) })'
    )
    # An R call takes ~10 KiB of C stack: this goes ~4 MiB deep.
    deep <- s$execute(paste('f <- function(n) if (n > 0) f(n - 1) else 0; f(300);', stack_kb))
    expect_gt(deep, 2048)
    # Waiting for its next request, the child gives those pages back after
    # a while: asked again until it has (a busy machine may delay it).
    # Control: without it, the stack stays as deep as it went.
    for (i in 1:100) {
      Sys.sleep(0.2)
      idle <- s$execute(stack_kb)
      if (idle < 1024) break
    }
    expect_lt(idle, 1024)
    expect_identical(s$execute("f(300)"), 0)
  })

  test_that(paste0("a tool reply that crosses an interrupt is dropped by the child (", tier, ")"), {
    slow <- securer_tool("slow", "Answered too late", function() NULL)
    child <- tier_child(tier, tools = list(slow))
    h <- child$handle
    child_exec(child, paste(
      'r <- tryCatch(slow(), interrupt = function(e) "interrupted")',
      'if (identical(r, "interrupted")) r else "the reply won"',
      sep = "\n"
    ))
    child_wait(child, "tool_call")
    securer:::rs_signal(h, 2L)
    # The reply races the interrupt: either may win, and the host takes
    # the answer either way.
    expect_null(securer:::rs_send(h, "tool_result", serialize("late", NULL, xdr = FALSE), 1000))
    ev <- child_wait(child)$event
    if (ev$type == "result") {
      expect_true(result_value(ev) %in% c("interrupted", "the reply won"))
    } else {
      expect_identical(unserialize(ev$payload)$message, "interrupted")
    }
    child_exec(child, '"in step"')
    expect_identical(result_value(child_wait(child)$event), "in step")
  })

  test_that(paste0("an output handler that fails leaves the session in step (", tier, ")"), {
    s <- tier_session(tier)
    expect_error(
      s$execute(
        'done <- TRUE; cat("x\\n"); "previous"',
        output_handler = function(line) stop("the handler failed")
      ),
      "the handler failed"
    )
    expect_identical(strip_output(s$execute('"next"')), "next")
    # Brought back in step, not replaced: its global environment is kept.
    expect_true(strip_output(s$execute('exists("done")')))
  })

  test_that(paste0("a tool that signals an interrupt on the host leaves the session in step (", tier, ")"), {
    skip_if_not_installed("rlang")
    stop_here <- securer_tool("stop_here", "Interrupts the host", function() rlang::interrupt())
    s <- tier_session(tier, tools = list(stop_here))
    expect_error(s$execute('stop_here(); "previous"'), class = "securer_interrupt")
    expect_identical(strip_output(s$execute('"next"')), "next")
  })

  test_that(paste0("a host error while a tool call is served leaves the session in step (", tier, ")"), {
    log <- withr::local_tempfile(fileext = ".jsonl")
    # The tool makes the audit log unwritable (a folder in its place), so
    # the host fails while it records the tool's result.
    breaker <- securer_tool("breaker", "Breaks the audit log", function() {
      unlink(log)
      dir.create(log)
      "tool value"
    })
    s <- tier_session(tier, tools = list(breaker), audit_log = log)
    # (The end of the failed execution cannot be logged either: a warning.)
    expect_warning(
      expect_error(s$execute('breaker(); "previous"'), class = "securer_audit_error"),
      class = "securer_audit_warning"
    )
    unlink(log, recursive = TRUE)
    expect_identical(strip_output(s$execute('"next"')), "next")
  })

  test_that(paste0("a NUL inside a tool argument never leads to a wrong answer (", tier, ")"), {
    echo <- echo_tool()
    s <- tier_session(tier, tools = list(echo))
    # A tool call whose argument string holds a NUL: R cannot build one,
    # so the bytes are edited after serialize().
    code <- paste(
      'b <- serialize(list(id = 1L, name = "echo", args = list(x = "AXB")), NULL, xdr = FALSE)',
      'b[which(b == charToRaw("X"))] <- as.raw(0)',
      '.Call("wrap__rs_child_send", "tool_call", b, PACKAGE = "securer")',
      'Sys.sleep(0.5)',
      '"previous"',
      sep = "\n"
    )
    first <- tryCatch(strip_output(s$execute(code)), error = conditionMessage)
    # Refused (by the value checker, or when the host unserializes it), or
    # the code's own answer: never another call's.
    expect_true(identical(first, "previous") || grepl("nul", first), info = first)
    expect_identical(strip_output(s$execute('"next"')), "next")
  })
}

for (tier in tiers) {
  test_that(paste0("a child that calls its error a syntax error is not believed (", tier, ")"), {
    s <- tier_session(tier)
    # The code parses; the child's reply marks its error as the parse's,
    # which the host checks with its own parse before it believes it.
    code <- paste0(
      find_runtime, "\n",
      "op <- rt$send_plain; rt$send_plain <- function(kind, value) { rt$send_plain <- op; FALSE }\n",
      "orig <- rt$send_bytes\n",
      "rt$send_bytes <- function(kind, b) { rt$send_bytes <- orig; v <- unserialize(b); ",
      "v$syntax <- TRUE; orig(kind, serialize(v, NULL, xdr = FALSE)) }\n",
      "stop('boom')"
    )
    err <- expect_error(s$execute(code), class = "securer_child_error")
    expect_false(inherits(err, "securer_syntax_error"))
    expect_identical(err$child_message, "boom")
    expect_identical(strip_output(s$execute("1 + 1")), 2)
  })
}

test_that("the runtime's shortcuts for tryCatch() and print.default() behave as base's", {
  s <- new_session()
  res <- s$execute(paste0(find_runtime, "\n", deparsed(quote({
    catch <- rt$catch_error_interrupt
    on_error <- function(e) list(class = class(e), message = conditionMessage(e), call = deparse(conditionCall(e)))
    boom <- structure(class = c("boom", "error", "condition"), list(message = "custom", call = NULL))
    f <- function() stop("plain")
    values <- list(
      1:3, c(a = 1.5, b = NA), "q\"uote", NULL, list(1, "a", NULL), matrix(1:6, 2),
      seq(0, 1, length.out = 30), c(TRUE, NA), as.raw(0:3), 1i, character()
    )
    list(
      fast = !identical(rt$print_plain, print.default) &&
        any(grepl(".addCondHands", deparse(rt$catch_error_interrupt), fixed = TRUE)),
      value = catch(41 + 1, on_error, identity),
      error = catch(f(), on_error, identity),
      custom = catch(stop(boom), on_error, identity),
      base_error = tryCatch(f(), error = on_error),
      base_custom = tryCatch(stop(boom), error = on_error),
      # A warning or a message is not caught.
      warning = withCallingHandlers(
        catch({
          warning("w")
          "after"
        }, on_error, identity),
        warning = function(w) invokeRestart("muffleWarning")
      ),
      message = suppressMessages(catch({
        message("m")
        "after"
      }, on_error, identity)),
      printed = lapply(values, function(v) utils::capture.output(rt$print_plain(v))),
      base_printed = lapply(values, function(v) utils::capture.output(print.default(v)))
    )
  }))))
  expect_true(res$fast)
  expect_identical(res$value, 42)
  expect_identical(res$error, res$base_error)
  expect_identical(res$error$message, "plain")
  expect_identical(res$custom, res$base_custom)
  expect_identical(res$custom$class, c("boom", "error", "condition"))
  expect_identical(res$warning, "after")
  expect_identical(res$message, "after")
  expect_identical(res$printed, res$base_printed)
})

test_that("the runtime writes plain messages as serialize() does", {
  plain <- securer:::rs_serialize_plain
  null <- serialize(NULL, NULL, xdr = FALSE)
  latin1 <- iconv("caf\u00e9", "UTF-8", "latin1")
  bytes <- "x\xff"
  Encoding(bytes) <- "bytes"
  values <- list(
    list(
      value = 2, visible = TRUE, console = "[1] 2\n", plots_omitted = 0L,
      refused = NULL, value_class = NULL
    ),
    list(message = "boom", call = NA_character_, class = c("simpleError", "error", "condition")),
    list(id = 1L, name = "f", args = list(x = c(1.5, NA, -Inf, NaN, -0), y = list())),
    list(a = c("a", NA, "\u00e9t\u00e9", latin1, bytes, ""), b = c(TRUE, NA), c = c(1L, NA)),
    list(raw = as.raw(c(0, 255)), cplx = c(1i, NA, complex(real = NA, imaginary = 1))),
    list(list(), list(NULL, list(x = character())), logical(), double()),
    stats::setNames(list(1), "\u00e9"),
    list(), 1, "a", NULL
  )
  for (v in values) {
    expect_identical(plain(v, null), serialize(v, NULL, xdr = FALSE))
  }
  # Anything else is left to R's serialize(): other attributes, objects,
  # ALTREP vectors, language, functions, environments, deep nesting.
  deep <- list(1)
  for (i in 1:10) deep <- list(deep)
  others <- list(
    list(a = 1:3), list(f = factor("a")), data.frame(a = 1), list(quote(x)),
    list(function() 1), list(globalenv()), structure(list(1), class = "x"),
    list(structure(1, foo = 2)), list(c(a = 1)), structure(list(1), dim = 1L), deep
  )
  for (v in others) expect_null(plain(v, null))
  # And so is a header that is not R's NULL.
  expect_null(plain(list(1), serialize(1, NULL, xdr = FALSE)))
})

test_that("the host reads a plain result in Rust as quick_result() reads it", {
  null <- serialize(NULL, NULL, xdr = FALSE)
  read <- function(reply, cap = 65536) {
    bytes <- serialize(reply, NULL, xdr = FALSE)
    list(rust = securer:::rs_read_answer(bytes, cap, null), r = securer:::quick_result(bytes, cap))
  }
  reply <- function(value, visible = TRUE, console = "[1] x\n", ...) {
    list(
      value = value, visible = visible, console = console, plots_omitted = 0L,
      refused = NULL, value_class = NULL, ...
    )
  }
  latin1 <- iconv("caf\u00e9", "UTF-8", "latin1")
  values <- list(
    2, NULL, c(TRUE, NA), c(1L, NA), c(1.5, NaN, -Inf), c(1i, NA), as.raw(0:255),
    c("a", NA, "\u00e9t\u00e9", latin1, ""), character(), double()
  )
  for (v in values) {
    got <- read(reply(v))
    expect_false(is.null(got$rust))
    expect_identical(got$rust$value, got$r$value)
    expect_identical(got$rust$visible, got$r$visible)
    expect_identical(got$rust$console, got$r$console)
  }
  # Visibility: only FALSE itself hides the value.
  expect_false(read(reply(1, visible = FALSE))$rust$visible)
  expect_true(read(reply(1, visible = NA))$rust$visible)
  # The transcript is cleaned and cut as on the host's other paths.
  for (console in list("\033]52;c;aGk=\a\033[31mred\033[0m", strrep("x", 500), NA_character_, NULL, c("a", "b"))) {
    for (cap in c(0, 10, 65536)) {
      got <- read(reply(1, console = console), cap)
      expect_identical(got$rust$console, got$r$console)
    }
  }
  # What R reads instead: a value with attributes or a list, a refusal,
  # images left out.
  expect_null(read(reply(c(a = 1)))$rust)
  expect_null(read(reply(list(1)))$rust)
  expect_null(read(reply(1, refused = "why")[-5])$rust)
  expect_null(read(utils::modifyList(reply(1), list(plots_omitted = 1L)))$rust)
})

test_that("a session's replies are written by send_plain()", {
  s <- new_session()
  s$execute(paste0(find_runtime, "\n", deparsed(quote({
    rt$.plain_sent <- 0
    sent_plain <- rt$send_plain
    rt$send_plain <- function(kind, value) {
      sent <- sent_plain(kind, value)
      rt$.plain_sent <- rt$.plain_sent + sent
      sent
    }
    NULL
  }))))
  expect_identical(s$execute("1 + 1"), 2)
  expect_error(s$execute("stop('boom')"), "boom")
  # The reply that installed the counter, a result and an error.
  expect_identical(s$execute(paste0(find_runtime, "\n", "rt$.plain_sent")), 3)
})

test_that("the protocol's constants come from Rust", {
  p <- securer:::rs_protocol()
  expect_identical(p$version, 3L)
  expect_identical(p$kinds[c("exec", "result", "error", "tool_call")], c(exec = 2L, result = 3L, error = 4L, tool_call = 5L))
  expect_identical(p$header_bytes, 5L)
  expect_identical(p$ids_bytes, 16L)
  expect_identical(p$max_frame$default, 8 * 1024^2)
  expect_identical(securer:::rs_frame_limit(NULL), p$max_frame$default)
  expect_identical(securer:::rs_frame_limit(NA), p$max_frame$default)
  expect_identical(securer:::rs_frame_limit(10), p$max_frame$min)
  expect_identical(securer:::rs_frame_limit(1e6 + 0.5), 1e6)
  expect_identical(securer:::rs_frame_limit(Inf), p$max_frame$max)
})

test_that("errors from Rust have one shape", {
  err <- securer:::rs_check_value(as.raw(1:10), 1e6, NULL)
  expect_s3_class(err, "securer_rs_error")
  expect_named(err, c("kind", "layer", "message", "errno", "pid"))
  expect_identical(err$kind, "value")
  expect_identical(err$layer, NA_character_)
  expect_identical(err$errno, NA_integer_)
  expect_true(is.list(err))
  expect_type(err$message, "character")
  err <- securer:::rs_send(NULL, "exec", raw(), 10)
  expect_identical(err$kind, "not_running")
  err <- securer:::rs_audit_append(file.path(withr::local_tempdir(), "no", "such", "dir.jsonl"), "{}")
  expect_identical(err$kind, "audit")
  expect_identical(securer:::rs_child_recv(0)$kind, "not_running")
})

test_that("rs_clean_text() strips control sequences and bounds strings", {
  clean <- securer:::rs_clean_text
  x <- c(
    "\033]0;title\aok", "\033[1;31mred\033[0m", NA, "tab\tand\nnewline",
    "nul-free\001\177", "c1\u009b31m", "caf\u00e9"
  )
  expect_identical(
    clean(x, Inf),
    c("ok", "red", NA, "tab\tand\nnewline", "nul-free", "c1", "caf\u00e9")
  )
  latin1 <- iconv("caf\u00e9", "UTF-8", "latin1")
  expect_identical(Encoding(latin1), "latin1")
  expect_identical(clean(latin1, Inf), "caf\u00e9")
  long <- strrep("\u00e9", 50)
  expect_identical(clean(long, 10), paste0(strrep("\u00e9", 10), "[... truncated: 40 more characters]"))
  expect_identical(clean(character(), 10), character())
  expect_s3_class(clean(1, 10), "securer_rs_error")
  # Linear: a long hostile message is no problem.
  big <- strrep("\033]0;x\a{y} ", 1e5)
  expect_identical(nchar(clean(big, 20)), 20L + nchar("[... truncated: 399980 more characters]"))
})

test_that("tool types and their check are Rust's, with R's semantics", {
  expect_identical(
    securer:::rs_tool_types(),
    c("numeric", "integer", "character", "logical", "list", "data.frame", "matrix", "complex", "raw", "any")
  )
  # R's own predicates: what the check must agree with.
  reference <- function(value, type) {
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
  values <- list(
    1, 1L, 1.5, c(1, NA), c(1.5, NA), NaN, Inf, -Inf, NA, NA_integer_, NA_real_,
    numeric(), integer(), "a", NA_character_, TRUE, NULL, 1i, as.raw(1),
    factor("a"), factor(c(1, 2)), Sys.Date(), as.Date("2020-01-01") + 0:1,
    Sys.time(), as.POSIXlt(Sys.time()), as.difftime(1, units = "secs"),
    structure(1L, class = "Date"), matrix(1:4, 2), matrix(c(1.5, 2), 1),
    matrix(list(1, "a"), 1), array(1:8, c(2, 2, 2)), data.frame(a = 1),
    list(1), pairlist(a = 1), table(c(1, 1, 2)), structure(1:2, class = "foo"),
    1e300, 2^53 + 2, structure(3, dim = 1L), expression(1)
  )
  types <- c(securer:::rs_tool_types(), "function", "NA")
  for (v in values) {
    for (type in types) {
      expect_identical(
        securer:::rs_tool_type_ok(v, type), reference(v, type),
        info = paste(type, paste(deparse(v), collapse = ""))
      )
    }
  }
  expect_false(securer:::rs_tool_type_ok(1, NA_character_))
  expect_false(securer:::rs_tool_type_ok(1, c("numeric", "integer")))
})
