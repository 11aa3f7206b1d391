#' Plots drawn in the sandbox
#'
#' @description
#' Code that draws (base graphics, grid and lattice, a printed ggplot2
#' object) draws inside the sandbox on a device that needs no display. At
#' the end of each execution every page it drew is rendered to a PNG image
#' in the child (R's `png(type = "cairo")` device) and sent to the host,
#' which checks each image in Rust before it uses it (signature, chunk
#' structure and CRCs, dimensions within the caps, the compressed image
#' data; anything but the chunks needed to show the image is dropped).
#' `$execute()` returns them as the `"plots"` attribute of the value (when
#' it can carry one) and `$last_plots()` returns them in any case: a list of
#' `securer_plot` objects.
#'
#' `plot_options()` sets the size, resolution and caps of these images.
#' Pass it to `$execute(plots = )` or set it for every execution with
#' `options(securer.plots = plot_options(...))`; `plots = FALSE` turns
#' images off.
#'
#' As at the console, the graphics device stays open between executions:
#' `plot(x)` in one execution and `abline(h = 0)` in the next gives an
#' image of the plot with its line after the second. A page that did not
#' change during an execution is not sent again.
#'
#' @param width,height Size of each image in pixels (16 to 4096).
#' @param res Resolution in pixels per inch (36 to 600): at a given size,
#'   a higher resolution draws text and symbols larger.
#' @param max_plots Most images per execution (0 to 100); pages beyond it
#'   are counted but not rendered.
#' @param max_bytes Largest PNG file accepted, in bytes (at most the
#'   message cap, `options(securer.max_message_size)`); a larger image is
#'   left out and counted.
#' @return A `securer_plot_options` object.
#' @seealso [save_plot()] to write an image to a file,
#'   [format_tool_content()] for images sent to a language model.
#' @examplesIf .Platform$OS.type == "unix"
#' plot_options()
#' plot_options(width = 1200, height = 900, res = 144, max_plots = 3)
#'
#' session <- SecureSession$new(sandbox = FALSE)
#' session$execute("hist(rnorm(100)); 42", plots = plot_options(width = 400, height = 300))
#' session$last_plots()
#' session$close()
#' @export
plot_options <- function(width = 800, height = 600, res = 96, max_plots = 10,
                         max_bytes = 2 * 1024^2) {
  check_range <- function(x, arg, lo, hi) {
    if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < lo || x > hi || x != round(x)) {
      securer_abort(
        "{.arg {arg}} must be a whole number from {lo} to {hi}.",
        class = "securer_input_error"
      )
    }
    as.integer(x)
  }
  structure(
    list(
      width = check_range(width, "width", 16, 4096),
      height = check_range(height, "height", 16, 4096),
      res = check_range(res, "res", 36, 600),
      max_plots = check_range(max_plots, "max_plots", 0, 100),
      max_bytes = as.numeric(check_range(max_bytes, "max_bytes", 1024, 2^31 - 1))
    ),
    class = "securer_plot_options"
  )
}

#' @export
format.securer_plot_options <- function(x, ...) {
  sprintf(
    "<securer_plot_options> %d x %d px at %d ppi; at most %d image%s of %s each",
    x$width, x$height, x$res, x$max_plots, if (x$max_plots == 1L) "" else "s",
    format_bytes(x$max_bytes)
  )
}

#' @export
print.securer_plot_options <- function(x, ...) {
  cat(format(x), "\n", sep = "")
  invisible(x)
}

# `plots` of an execution -> the options, or NULL when images are off.
# NULL means options(securer.plots), itself defaulting to plot_options().
resolve_plots <- function(plots) {
  if (is.null(plots)) plots <- getOption("securer.plots", TRUE)
  if (isTRUE(plots)) {
    # Built once: this runs for every execution.
    the$default_plots <- the$default_plots %||% plot_options()
    return(the$default_plots)
  }
  if (isFALSE(plots)) {
    return(NULL)
  }
  if (!inherits(plots, "securer_plot_options")) {
    securer_abort(
      c(
        "{.arg plots} must be {.code TRUE}, {.code FALSE} or {.fn plot_options}, not {.obj_type_friendly {plots}}.",
        i = "The default comes from {.code options(securer.plots)}."
      ),
      class = "securer_input_error"
    )
  }
  plots
}

# What the child is told: the options, each image at most one message.
plots_request <- function(plots, max_frame) {
  if (is.null(plots) || plots$max_plots == 0L) {
    return(NULL)
  }
  req <- unclass(plots)
  req$max_bytes <- min(req$max_bytes, max_frame)
  req
}

# A PNG image from the child, as the pump delivered it: checked in Rust
# against the execution's options before anything else reads it. Adds the
# plot to `run$plots`, or notes why it was refused.
receive_plot <- function(run, payload) {
  cfg <- run$plots_cfg
  if (is.null(cfg) || length(run$plots) >= cfg$max_plots) {
    # Not asked for, or one too many: dropped unread.
    run$plots_dropped <- run$plots_dropped + 1L
    return(invisible())
  }
  checked <- rs_png_check(payload, cfg$width, cfg$height, cfg$max_bytes)
  if (inherits(checked, "securer_rs_error")) {
    run$plots_dropped <- run$plots_dropped + 1L
    run$plot_errors <- c(run$plot_errors, checked$message)
    return(invisible())
  }
  run$plots[[length(run$plots) + 1L]] <- new_securer_plot(
    checked$png, checked$width, checked$height
  )
  invisible()
}

# Warns once per execution about images that failed the check.
warn_refused_plots <- function(run) {
  errors <- run$plot_errors
  if (length(errors) == 0L) {
    return(invisible())
  }
  n <- length(errors)
  first <- errors[[1L]]
  cli::cli_warn(
    c(
      "{n} image{?s} from the sandbox {?was/were} refused: not a valid PNG within the caps.",
      x = "{first}"
    ),
    class = c("securer_plot_warning", "securer_warning")
  )
}

new_securer_plot <- function(png, width, height) {
  structure(
    list(png = png, width = as.integer(width), height = as.integer(height)),
    class = "securer_plot"
  )
}

#' Show or save a plot drawn in the sandbox
#'
#' A `securer_plot` holds one PNG image drawn by sandboxed code (see
#' [plot_options()]): `$png` (the bytes, checked on arrival), `$width` and
#' `$height` (pixels). `print()` and `plot()` draw it on the current
#' graphics device, like printing a ggplot; drawing needs the png package,
#' which reads the image (without it `print()` describes the image and
#' `plot()` fails). `save_plot()` writes it to a PNG file, replacing the
#' file whole (it is written beside the target and renamed over it).
#'
#' @param x,plot A `securer_plot`.
#' @param path File to write.
#' @param overwrite Replace an existing file.
#' @param ... Unused.
#' @return `print()` and `plot()` return `x` invisibly; `save_plot()` returns
#'   `path` invisibly.
#' @examplesIf .Platform$OS.type == "unix"
#' session <- SecureSession$new(sandbox = FALSE)
#' session$execute("plot(cars)")
#' p <- session$last_plots()[[1]]
#' p
#' file <- tempfile(fileext = ".png")
#' save_plot(p, file)
#' file.size(file)
#' session$close()
#' @name securer_plot
NULL

#' @rdname securer_plot
#' @export
format.securer_plot <- function(x, ...) {
  sprintf(
    "<securer_plot> %d x %d px PNG, %s",
    x$width, x$height, format_bytes(length(x$png))
  )
}

#' @rdname securer_plot
#' @export
print.securer_plot <- function(x, ...) {
  if (!requireNamespace("png", quietly = TRUE)) {
    cat(format(x), "\n", sep = "")
    return(invisible(x))
  }
  plot(x, ...)
}

#' @rdname securer_plot
#' @export
plot.securer_plot <- function(x, ...) {
  if (!requireNamespace("png", quietly = TRUE)) {
    securer_abort(
      c(
        "The {.pkg png} package is needed to show plots from the sandbox.",
        i = "Install it with {.code install.packages(\"png\")}, or write the image to a file with {.fn save_plot}.",
        i = "{format(x)}"
      ),
      class = "securer_input_error"
    )
  }
  img <- png::readPNG(x$png, native = TRUE)
  grid::grid.newpage()
  grid::grid.raster(img)
  invisible(x)
}

#' @rdname securer_plot
#' @export
save_plot <- function(plot, path, overwrite = TRUE) {
  if (!inherits(plot, "securer_plot")) {
    securer_abort(
      "{.arg plot} must be a {.cls securer_plot}, not {.obj_type_friendly {plot}}.",
      class = "securer_input_error"
    )
  }
  check_string(path)
  check_flag(overwrite)
  write_host_file(plot$png, path.expand(path), overwrite)
  invisible(path)
}
