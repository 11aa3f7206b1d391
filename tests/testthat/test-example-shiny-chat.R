# The Shiny example (inst/examples/shiny-chat) in a real headless browser:
# a user types a question, the fake model (helper-fake-openai.R) asks for
# execute_r_code, the code runs in the app's sandboxed session, and the
# page shows the code, its output, its plot and the model's answer. Every wait is for
# a condition on the page (the deadlines only bound a failure).

# Debian's Chromium, or the browser CHROMOTE_CHROME names.
find_chromium <- function() {
  candidates <- c(
    Sys.getenv("CHROMOTE_CHROME"),
    Sys.which(c("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))
  )
  candidates <- candidates[nzchar(candidates) & file.exists(candidates)]
  if (length(candidates)) candidates[[1]] else ""
}

# Starts the example app in a background R process talking to the fake
# model at `base_url`; returns its URL (the process is stopped when `.env`
# ends, after the browser has left: the app's sessions close then).
local_example_app <- function(base_url, .env = parent.frame()) {
  app_dir <- system.file("examples", "shiny-chat", package = "securer")
  proc <- callr::r_bg(
    function(app_dir) shiny::runApp(app_dir, port = NULL, launch.browser = FALSE),
    args = list(app_dir = app_dir),
    env = c(callr::rcmd_safe_env(), OPENAI_BASE_URL = base_url, OPENAI_API_KEY = "test-key"),
    stdout = "|", stderr = "2>&1", libpath = .libPaths()
  )
  withr::defer(
    {
      proc$interrupt()
      proc$wait(30000)
      if (proc$is_alive()) proc$kill_tree()
    },
    envir = .env
  )
  lines <- read_until(proc, "Listening on http://", timeout = 120)
  url <- regmatches(lines, regexpr("http://[0-9.]+:[0-9]+", lines))
  if (length(url) == 0L) {
    fail(paste(c("the example app did not start:", lines), collapse = "\n"))
  }
  url[[1]]
}

# Drives a headless Chromium at `url` as a user would: waits for the chat,
# types `question`, sends it, and waits until the page shows the answer
# and a finished code run. Returns what the page shows then. It runs in a
# process of its own (chromote's websocket client and processx's
# supervisor stay for the life of the process that starts them), with a
# browser as the machine allows: root needs --no-sandbox, and there is no
# network to reach.
drive_browser <- function(chromium, url, question) {
  callr::r(function(chromium, url, question) {
    options(chromote.timeout = 120)
    profile <- tempfile("chromium-profile-")
    dir.create(profile)
    chrome <- chromote::Chrome$new(path = chromium, args = c(
      "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-extensions", "--mute-audio",
      paste0("--user-data-dir=", profile)
    ))
    browser <- chromote::Chromote$new(browser = chrome)
    on.exit(browser$close(), add = TRUE)
    page <- browser$new_session(width = 1200, height = 800)
    js <- function(code) page$Runtime$evaluate(code, returnByValue = TRUE)$result$value
    # Every wait is for a condition on the page; the deadline only bounds
    # a failure, which says what the page showed.
    wait_for <- function(code, timeout = 120) {
      deadline <- Sys.time() + timeout
      while (!isTRUE(js(code))) {
        if (Sys.time() > deadline) {
          stop("the page never met `", code, "`; it shows:\n", js("document.body.innerText"))
        }
        later::run_now(0.2)
      }
    }
    page$Page$navigate(url)
    wait_for("document.getElementById('runs') !== null && document.getElementById('runs').innerText.length > 0")
    initial <- js("document.getElementById('runs').innerText")
    input <- "document.querySelector('#chat [role=textbox]')"
    send <- "document.querySelector('#chat .shiny-chat-btn-send')"
    wait_for(sprintf("%s !== null", input))
    js(sprintf("%s.focus()", input))
    page$Input$insertText(text = question)
    wait_for(sprintf("!%s.disabled", send))
    js(sprintf("%s.click()", send))
    # The model's answer streams into the chat, and the side panel shows
    # the finished run.
    wait_for("document.getElementById('chat').innerText.includes('The answer is 42')")
    wait_for("document.querySelector('#runs .securer-run[data-status=done]') !== null")
    # The plot the code drew, once the browser has decoded it.
    loaded <- "Array.from(document.querySelectorAll('#runs .securer-plots img')).filter(i => i.complete && i.naturalWidth > 0).length"
    wait_for(paste(loaded, "> 0"))
    list(
      images = js(loaded),
      initial = initial,
      chat = js("document.getElementById('chat').innerText"),
      run = js("document.querySelector('#runs .securer-run').innerText"),
      code = js("document.querySelector('#runs .securer-code').innerText"),
      output = js("document.querySelector('#runs .securer-output').innerText")
    )
  }, args = list(chromium = chromium, url = url, question = question), libpath = .libPaths())
}

test_that("the Shiny example streams the chat and shows the code the model ran and its output", {
  # (Checked without loading them: they run in other processes.)
  for (pkg in c("shiny", "shinychat", "bslib", "chromote", "ellmer", "webfakes", "callr")) {
    require_or_skip(nzchar(system.file(package = pkg)), paste(pkg, "is not installed"))
  }
  chromium <- find_chromium()
  require_or_skip(
    nzchar(chromium),
    "no headless browser: install Debian's chromium (tools/install.sh does) or set CHROMOTE_CHROME"
  )

  code <- "d <- query_db('mtcars', 7); plot(d$wt, d$mpg); nrow(d) * 6"
  server <- local_fake_openai(code)
  url <- local_example_app(server$base_url)
  question <- "How many rows does the query give, times 6?"
  shown <- drive_browser(chromium, url, question)

  expect_identical(shown$initial, "The code the model runs appears here.")
  # The chat holds the question and the streamed answer; the side panel
  # the code that ran in the sandbox, and what it printed.
  expect_match(shown$chat, question, fixed = TRUE)
  expect_match(shown$chat, "The answer is 42", fixed = TRUE)
  expect_match(shown$run, "Run 1", fixed = TRUE)
  expect_identical(shown$code, code)
  expect_identical(shown$output, "[1] 42")
  # The plot drawn in the sandbox is on the page, and went to the model.
  expect_identical(shown$images, 1L)

  reqs <- fake_requests(server)
  expect_true(isTRUE(reqs[[1]]$stream))
  sent <- as.character(jsonlite::toJSON(reqs[[2]], auto_unbox = TRUE))
  expect_match(sent, "[1] 42", fixed = TRUE)
  expect_match(sent, "data:image/png;base64,", fixed = TRUE)
})
