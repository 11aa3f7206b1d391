# execute_distributed(): a batch of code across local mirai daemons, each
# with its own warm pool; tools run in the daemon's R process.

local_daemons <- function(n = 2L, .env = parent.frame()) {
  skip_if_not_installed("mirai")
  mirai::daemons(n)
  withr::defer(mirai::daemons(0), envir = .env)
  # Every daemon connected before the batch, so that work can spread.
  deadline <- Sys.time() + 30
  while (mirai::status()$connections < n && Sys.time() < deadline) Sys.sleep(0.05)
  expect_identical(as.integer(mirai::status()$connections), as.integer(n))
}

test_that("without daemons the batch is refused with a classed error", {
  skip_if_not_installed("mirai")
  expect_error(execute_distributed("1 + 1", sandbox = FALSE), class = "securer_input_error")
})

test_that("results come back in input order, failures as classed conditions", {
  local_daemons(2L)
  codes <- c(sprintf("%d * 2", 1:40), "stop('nope')", "Sys.sleep(30)", "'last'")
  res <- execute_distributed(codes, sandbox = FALSE, timeout = 1, chunk_size = 5)
  expect_length(res, length(codes))
  expect_identical(vapply(res[1:40], strip_output, numeric(1)), (1:40) * 2)
  expect_s3_class(res[[41]], "securer_child_error")
  expect_match(conditionMessage(res[[41]]), "nope", fixed = TRUE)
  expect_s3_class(res[[42]], "securer_timeout")
  expect_identical(strip_output(res[[43]]), "last")
})

test_that("tools run in the daemons' R processes, outside the sandbox, on both daemons", {
  local_daemons(2L)
  host_only <- withr::local_tempfile(lines = "from the daemon's machine")
  tools <- list(
    securer_tool("where", "The R process running the tool",
      fn = function() Sys.getpid(), args = list()
    ),
    securer_tool("read_host", "Read a file only the host can see",
      fn = function() readLines(host_only), args = list()
    )
  )
  codes <- rep("c(pid = where(), child = Sys.getpid())", 12)
  res <- execute_distributed(codes, tools = tools, sandbox = FALSE, chunk_size = 1)
  pids <- vapply(res, function(r) as.numeric(strip_output(r)[["pid"]]), numeric(1))
  children <- vapply(res, function(r) as.numeric(strip_output(r)[["child"]]), numeric(1))
  expect_false(Sys.getpid() %in% pids)
  expect_length(intersect(pids, children), 0L)
  # The chunks spread over both daemons (each pid is a daemon's).
  daemon_pids <- unlist(mirai::collect_mirai(mirai::mirai_map(1:20, function(i) {
    Sys.sleep(0.05)
    Sys.getpid()
  })))
  expect_true(all(pids %in% daemon_pids))
  expect_length(unique(pids), 2L)
  expect_identical(
    strip_output(execute_distributed("read_host()", tools = tools, sandbox = FALSE)[[1]]),
    "from the daemon's machine"
  )
})

test_that("a daemon's pool stays warm between batches", {
  local_daemons(1L)
  first <- execute_distributed("Sys.getpid()", sandbox = FALSE)
  second <- execute_distributed("Sys.getpid()", sandbox = FALSE)
  expect_identical(strip_output(first[[1]]), strip_output(second[[1]]))
})

test_that("a chunk whose daemon cannot run securer fails as securer_daemon_error", {
  skip_if_not_installed("mirai")
  err <- securer:::daemon_error_cnd(structure("Error: no package called 'securer'",
    class = c("miraiError", "errorValue", "try-error"),
    message = "there is no package called \u2018securer\u2019 {boom}"
  ))
  expect_s3_class(err, "securer_daemon_error")
  expect_s3_class(err, "securer_error")
  # Daemon text is shown, never interpolated.
  expect_match(conditionMessage(err), "{boom}", fixed = TRUE)
})
