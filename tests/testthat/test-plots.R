# Plots (R/plots.R, drawn by inst/child/runtime.R, checked by
# src/rust/core/src/png.rs): what sandboxed code draws comes back as PNG
# images of the requested size, checked before the host uses them. The
# behaviour runs without a sandbox (fast); the drawing and the attacks run
# in every tier.

shared <- lazy_session(function(..., .env) new_session(.env = .env))

small <- plot_options(width = 400, height = 300)

plots_of <- function(session, code, plots = small) {
  tryCatch(session$execute(code, plots = plots), error = function(e) NULL)
  session$last_plots()
}

# The width and height an IHDR chunk states.
png_dims <- function(bytes) {
  c(
    readBin(bytes[17:20], "integer", size = 4L, endian = "big"),
    readBin(bytes[21:24], "integer", size = 4L, endian = "big")
  )
}

png_signature <- as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a))

test_that("plot_options() checks its arguments and describes itself", {
  expect_s3_class(plot_options(), "securer_plot_options")
  expect_identical(plot_options()$width, 800L)
  expect_input_error(plot_options(width = 0), "width")
  expect_input_error(plot_options(height = 5000), "height")
  expect_input_error(plot_options(res = 1.5), "res")
  expect_input_error(plot_options(max_plots = -1), "max_plots")
  expect_input_error(plot_options(max_bytes = NA), "max_bytes")
  expect_match(format(small), "400 x 300 px at 96 ppi; at most 10 images of 2 MiB each", fixed = TRUE)
  expect_output(print(small), "securer_plot_options")
  expect_input_error(shared()$execute("1", plots = "yes"), "plots")
})

test_that("base graphics come back as PNG images of the requested size", {
  s <- shared()
  v <- s$execute("plot(1:10); 42", plots = small)
  expect_identical(strip_output(structure(v, plots = NULL)), 42)
  plots <- attr(v, "plots")
  expect_length(plots, 1L)
  expect_s3_class(plots[[1]], "securer_plot")
  expect_identical(plots[[1]]$png[1:8], png_signature)
  expect_identical(png_dims(plots[[1]]$png), c(400L, 300L))
  expect_identical(c(plots[[1]]$width, plots[[1]]$height), c(400L, 300L))
  expect_identical(s$last_plots(), plots)
  expect_match(format(plots[[1]]), "^<securer_plot> 400 x 300 px PNG, [0-9.]+ KiB$")
})

test_that("each page is one image, and the device stays open between executions", {
  s <- shared()
  expect_length(plots_of(s, "plot(1:3); plot(4:6)"), 2L)
  first <- plots_of(s, "plot(1:10)")
  expect_length(first, 1L)
  # Drawing on the same page later sends the page again, changed.
  line <- plots_of(s, "abline(h = 5, col = 'red')")
  expect_length(line, 1L)
  expect_false(identical(line[[1]]$png, first[[1]]$png))
  # A page nobody drew on is not sent again.
  expect_length(plots_of(s, "1 + 1"), 0L)
  # Panels of one page are one image.
  expect_length(plots_of(s, "par(mfrow = c(1, 2)); plot(1); plot(2)"), 1L)
  s$execute("par(mfrow = c(1, 1))")
})

test_that("grid and lattice drawings come back; a printed lattice object is drawn, not refused", {
  s <- shared()
  expect_length(plots_of(s, "grid::grid.newpage(); grid::grid.rect(gp = grid::gpar(fill = 'blue'))"), 1L)
  v <- withVisible(s$execute("lattice::xyplot(mpg ~ wt, mtcars)", plots = small))
  expect_null(v$value)
  expect_false(v$visible)
  expect_length(s$last_plots(), 1L)
  expect_match(s$last_console(), "^$")
})

test_that("a printed ggplot2 object comes back as an image", {
  skip_if_not_installed("ggplot2")
  s <- shared()
  p <- plots_of(s, "library(ggplot2); ggplot(mtcars, aes(wt, mpg)) + geom_point()")
  expect_length(p, 1L)
  expect_identical(png_dims(p[[1]]$png), c(400L, 300L))
})

test_that("images can be turned off, per execution or by option", {
  s <- shared()
  expect_length(plots_of(s, "plot(1)", plots = FALSE), 0L)
  withr::local_options(securer.plots = FALSE)
  expect_length(plots_of(s, "plot(2)", plots = NULL), 0L)
  withr::local_options(securer.plots = plot_options(width = 320, height = 240))
  # (What was drawn while images were off does not come later.)
  p <- plots_of(s, "plot(3)", plots = NULL)
  expect_length(p, 1L)
  expect_identical(png_dims(p[[1]]$png), c(320L, 240L))
})

test_that("the number and the size of images are capped, and what was left out is counted", {
  s <- shared()
  p <- plots_of(s, "for (i in 1:5) plot(i)", plot_options(width = 200, height = 200, max_plots = 2))
  expect_length(p, 2L)
  expect_identical(attr(p, "omitted"), 3L)
  p <- plots_of(s, "image(matrix(runif(1e4), 100))", plot_options(max_bytes = 1024))
  expect_length(p, 0L)
  expect_identical(attr(p, "omitted"), 1L)
})

test_that("plots drawn before an error come with the error", {
  s <- shared()
  err <- expect_error(s$execute("plot(1); stop('after the plot')", plots = small), class = "securer_child_error")
  expect_length(err$plots, 1L)
  expect_length(s$last_plots(), 1L)
})

test_that("print(), plot() and save_plot() show and write an image on the host", {
  skip_if_not_installed("png")
  s <- shared()
  p <- plots_of(s, "plot(cars)")[[1]]
  out <- withr::local_tempfile(fileext = ".png")
  grDevices::png(out, width = 200, height = 150)
  expect_identical(print(p), p)
  expect_invisible(plot(p))
  grDevices::dev.off()
  expect_gt(file.size(out), 0)
  file <- withr::local_tempfile(fileext = ".png")
  expect_identical(save_plot(p, file), file)
  expect_identical(readBin(file, "raw", file.size(file)), p$png)
  expect_identical(dim(png::readPNG(file))[1:2], c(300L, 400L))
  expect_error(save_plot(p, file, overwrite = FALSE), class = "securer_file_exists_error")
  expect_input_error(save_plot("not a plot", file), "plot")
})

test_that("format_tool_result() keeps its text when the value carries plots", {
  s <- shared()
  v <- s$execute("plot(1); print('drawn'); 7", plots = small)
  expect_length(attr(v, "plots"), 1L)
  expect_identical(
    format_tool_result(v),
    format_tool_result(structure(7, output = "[1] \"drawn\""))
  )
})

# Attacks: PNG bytes from the child ------------------------------------------

# Building PNG files on the host (base R has no CRC-32).
crc_table <- vapply(0:255, function(n) {
  c <- n
  for (k in 1:8) {
    c <- if (bitwAnd(c, 1L)) bitwXor(bitwShiftR(c, 1L), -306674912L) else bitwShiftR(c, 1L)
  }
  c
}, integer(1))

crc32 <- function(bytes) {
  c <- -1L
  for (b in as.integer(bytes)) {
    c <- bitwXor(crc_table[bitwAnd(bitwXor(c, b), 255L) + 1L], bitwShiftR(c, 8L))
  }
  bitwXor(c, -1L)
}

be32 <- function(x) writeBin(as.integer(x), raw(), size = 4L, endian = "big")

png_chunk <- function(type, data = raw()) {
  type <- charToRaw(type)
  c(be32(length(data)), type, data, be32(crc32(c(type, data))))
}

# An RGB 8-bit image of `width` x `height` grey pixels whose IDAT holds
# `data` (by default the right amount of filtered rows, zlib-compressed).
forged_png <- function(width, height, data = NULL, extra = list()) {
  if (is.null(data)) {
    rows <- rep(c(as.raw(0), rep(as.raw(128), 3 * width)), height)
    data <- memCompress(rows, "gzip")
  }
  c(
    png_signature,
    png_chunk("IHDR", c(be32(width), be32(height), as.raw(c(8, 2, 0, 0, 0)))),
    unlist(extra),
    png_chunk("IDAT", data),
    png_chunk("IEND")
  )
}

# Sandboxed code that sends each raw vector of `images` as a plot, then
# returns "sent". (Run it with a large `max_code_length`: the bytes are
# spelled out.)
send_plots_code <- function(images) {
  sends <- vapply(images, function(b) {
    sprintf(
      '.Call("wrap__rs_child_send", "plot", %s, PACKAGE = "securer")',
      paste(deparse(b, width.cutoff = 500L), collapse = "")
    )
  }, character(1))
  paste(c(sends, '"sent"'), collapse = "\n")
}

good <- forged_png(4, 3)
bad_crc <- good
bad_crc[length(good) - 12 - 4 - 1] <- xor(bad_crc[length(good) - 12 - 4 - 1], as.raw(1))
attacks <- list(
  list(what = "not a PNG at all", bytes = c(charToRaw("GIF89a"), as.raw(c(1, 0, 1, 0)), charToRaw("<script>")), pattern = "signature"),
  list(what = "a PNG with a bad CRC", bytes = bad_crc, pattern = "fails its CRC check"),
  list(what = "a PNG larger than the requested size", bytes = forged_png(2000, 2000), pattern = "exceeds the limit of 400 x 300"),
  list(
    what = "a decompression bomb",
    bytes = forged_png(400, 300, memCompress(raw(5e7), "gzip")),
    pattern = "more image data than the header announces"
  ),
  list(what = "a PNG with data cut short", bytes = forged_png(40, 30, memCompress(raw(100), "gzip")), pattern = "less image data"),
  list(what = "a PNG with data after IEND", bytes = c(good, charToRaw("trailing")), pattern = "data after the IEND chunk"),
  list(
    what = "a PNG with an unknown critical chunk",
    bytes = forged_png(4, 3, extra = list(png_chunk("EVIL", charToRaw("x")))),
    pattern = "unknown critical PNG chunk 'EVIL'"
  )
)

plot_tiers <- c("warm", "cold", "fallback", "none")
tier_sessions <- list(
  warm = lazy_session(tier_session, "warm"),
  cold = lazy_session(tier_session, "cold"),
  fallback = lazy_session(tier_session, "fallback"),
  none = shared
)
plot_session <- function(tier) {
  if (tier != "none") skip_if_no_sandbox()
  s <- tier_sessions[[tier]]()
  if (tier == "warm") require_or_skip(zygote_session(s), "the session was not forked from the zygote")
  s
}

for (tier in plot_tiers) {
  test_that(paste0("base, grid and lattice plots come back checked (", tier, ")"), {
    s <- plot_session(tier)
    p <- plots_of(s, "plot(1:10, main = 'text'); grid::grid.newpage(); grid::grid.circle(); print(lattice::xyplot(1:3 ~ 1:3))")
    expect_length(p, 3L)
    for (x in p) expect_identical(png_dims(x$png), c(400L, 300L))
  })

  test_that(paste0("a valid forged image is accepted, the control for the attacks (", tier, ")"), {
    s <- plot_session(tier)
    text <- png_chunk("tEXt", c(charToRaw("Comment"), as.raw(0), charToRaw("\033]52;c;ZXZpbA==\a")))
    forged <- forged_png(4, 3, extra = list(text))
    v <- s$execute(send_plots_code(list(forged)), plots = small, max_code_length = Inf)
    expect_identical(strip_output(structure(v, plots = NULL)), "sent")
    p <- s$last_plots()
    expect_length(p, 1L)
    # The text chunk (with its escape sequence) is dropped; the rest is as sent.
    expect_identical(p[[1]]$png, forged_png(4, 3))
    expect_identical(png_dims(p[[1]]$png), c(4L, 3L))
  })

  for (attack in attacks) {
    test_that(sprintf("%s from the child is refused (%s)", attack$what, tier), {
      s <- plot_session(tier)
      expect_warning(
        v <- s$execute(send_plots_code(list(attack$bytes, good)), plots = small, max_code_length = Inf),
        attack$pattern,
        class = "securer_plot_warning"
      )
      expect_identical(strip_output(structure(v, plots = NULL)), "sent")
      p <- s$last_plots()
      expect_length(p, 1L)
      expect_identical(p[[1]]$png, good)
      expect_identical(attr(p, "omitted"), 1L)
      expect_identical(strip_output(s$execute("1 + 1")), 2)
    })
  }

  test_that(paste0("more images than asked for are dropped unread (", tier, ")"), {
    s <- plot_session(tier)
    s$execute(send_plots_code(rep(list(good), 20)), plots = plot_options(width = 400, height = 300, max_plots = 3))
    expect_length(s$last_plots(), 3L)
    expect_identical(attr(s$last_plots(), "omitted"), 17L)
    # Images off: none is read at all.
    s$execute(send_plots_code(list(good)), plots = FALSE)
    expect_length(s$last_plots(), 0L)
  })

  test_that(paste0("an image larger than a message breaks the protocol and the session recovers (", tier, ")"), {
    s <- plot_session(tier)
    # 9 MiB, more than the 8 MiB message cap: refused from the frame's header.
    err <- expect_error(
      s$execute('.Call("wrap__rs_child_send", "plot", raw(9 * 1024^2), PACKAGE = "securer")'),
      class = "securer_ipc_error"
    )
    expect_match(conditionMessage(err), "exceeds the limit", fixed = TRUE)
    expect_identical(strip_output(s$execute("1 + 1")), 2)
  })
}
