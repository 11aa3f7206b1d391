# The console transcript of an execution: what R's console would have
# shown for the code (printed output and messages, warnings as the console
# formats them, the printed value of the last expression, an error),
# rendered inside the child (inst/child/runtime.R), so that values that
# cannot cross the boundary (a model summary, a formula, an S4 object) can
# still be seen. `$last_console()` and `$read()$console` return it;
# format_tool_content() gives it to a language model.

# Bytes of transcript the child keeps for one execution (the first and last
# halves past that, with a marker between them): options(securer.
# max_console_bytes), 64 KiB unless set; 0 turns the transcript off. At
# most a quarter of the message cap, so the value always fits beside it.
console_cap <- function(max_frame) {
  cap <- getOption("securer.max_console_bytes", 64 * 1024)
  check_number(cap, arg = "options(securer.max_console_bytes)", min = -1, allow_inf = TRUE)
  floor(min(cap, max_frame %/% 4))
}

# A transcript from the child, as the host keeps it: one string, cleaned
# (no control sequences, valid UTF-8) and bounded; NULL when there is none.
console_text <- function(x, cap) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || cap <= 0) {
    return(NULL)
  }
  rs_clean_text(x, cap + 200)
}
