// The run page, live: polls the run's progress JSON every few seconds and updates the progress bar, the counters
// and the scheduler log in place; when the run places calls or changes state it re-reads the page and swaps in
// its calls, buttons and report. No reload, no inline script, nothing from other origins. Without this file the
// page is still complete; it is just a snapshot.
// Also: the cancel button asks first (without script, the server asks on a page of its own).
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (!question) return;
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (!form.querySelector("input[name=confirm]")) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "confirm";
      input.value = "yes";
      form.appendChild(input);
    }
  });

  var root = document.getElementById("run-page");
  if (!root || !window.fetch || !window.DOMParser) return;

  var progressUrl = root.getAttribute("data-progress-url");
  var lastLogId = parseInt(root.getAttribute("data-last-log-id"), 10) || 0;
  var pollMs = parseInt(root.getAttribute("data-poll-ms"), 10) || 2000;
  var state = root.getAttribute("data-state");
  var active = root.getAttribute("data-active") === "true";
  var signature = root.getAttribute("data-signature");
  var lastSwap = 0;
  var swapping = false;
  var swapPending = false;
  var failures = 0;
  var afterEndChecks = 0;
  var MAX_LOG_LINES = 300;
  var SWAP_EVERY_MS = 3000;
  // The sections re-read from the server: (id, how to tell the fresh copy differs).
  var SECTIONS = ["run-status", "run-finished", "run-controls", "run-report", "run-calls"];

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    var el = byId(id);
    if (el && el.textContent !== String(text)) el.textContent = String(text);
  }

  function formatPercent(value) {
    return String(Math.round(value * 10) / 10);
  }

  function showProblem(text) {
    var box = byId("poll-problem");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  function applyProgress(p, etaTime) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-counter]"), function (el) {
      var name = el.getAttribute("data-counter");
      if (Object.prototype.hasOwnProperty.call(p, name) && el.textContent !== String(p[name])) {
        el.textContent = String(p[name]);
      }
    });
    var bar = byId("progress-bar");
    if (bar) {
      bar.value = p.percent;
      bar.setAttribute("aria-valuetext", formatPercent(p.percent) + " %");
      bar.textContent = formatPercent(p.percent) + " %";
    }
    setText("progress-percent", formatPercent(p.percent));
    setText("progress-done", p.finished + p.skipped_canceled);
    setText("progress-total", p.total);
    setText("run-reason", p.state_reason || "");
    var eta = byId("progress-eta");
    if (eta) {
      eta.hidden = !p.eta;
      var etaEl = byId("progress-eta-time");
      if (p.eta && etaEl) {
        etaEl.setAttribute("datetime", p.eta);
        etaEl.textContent = etaTime || "";
      }
    }
    var note = byId("live-note");
    if (note) note.hidden = !p.active;
  }

  function applyLog(entries) {
    var list = byId("run-log");
    if (!list || !entries.length) return;
    var empty = list.querySelector(".log-empty");
    if (empty) empty.remove();
    entries.forEach(function (entry) {
      if (list.querySelector("[data-log-id='" + entry.id + "']")) return;
      var item = document.createElement("li");
      item.className = "log-entry log-" + entry.level + " is-new";
      item.setAttribute("data-log-id", entry.id);
      var time = document.createElement("time");
      time.setAttribute("datetime", entry.at);
      time.textContent = entry.time;
      var kind = document.createElement("span");
      kind.className = "log-kind";
      kind.textContent = entry.kind;
      var message = document.createElement("span");
      message.className = "log-message";
      message.textContent = entry.message;
      item.appendChild(time);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(kind);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(message);
      list.insertBefore(item, list.firstChild);
    });
    while (list.children.length > MAX_LOG_LINES) list.removeChild(list.lastChild);
  }

  // Re-read the page and swap in the sections that changed (the calls, the buttons, the report).
  function swapSections() {
    if (swapping) {
      swapPending = true;
      return Promise.resolve();
    }
    swapping = true;
    lastSwap = Date.now();
    return fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        SECTIONS.forEach(function (id) {
          var now = byId(id);
          var next = fresh.getElementById(id);
          if (!now || !next) return;
          // Forms carry a fresh CSRF token on every render: compare what a person sees, not the markup.
          var same =
            now.textContent === next.textContent &&
            now.hidden === next.hidden &&
            now.getAttribute("data-state") === next.getAttribute("data-state");
          if (!same) now.replaceWith(document.importNode(next, true));
        });
      })
      .catch(function () {
        /* The next change tries again. */
      })
      .then(function () {
        swapping = false;
        if (swapPending) {
          swapPending = false;
          return swapSections();
        }
        return undefined;
      });
  }

  function recordingsPending() {
    var waiting = "#run-calls tr[data-recording='pending'], #run-calls tr[data-outcome='completed'][data-recording='none']";
    return document.querySelector(waiting) !== null;
  }

  function schedule() {
    if (!active) {
      // The run has ended, but the last calls' recordings arrive a little later: look again for a while.
      if (recordingsPending() && afterEndChecks < 24) {
        afterEndChecks += 1;
        window.setTimeout(function () {
          swapSections().then(schedule);
        }, 5000);
      }
      return;
    }
    var wait = document.hidden ? Math.max(pollMs, 10000) : pollMs;
    if (failures) wait = Math.min(pollMs * Math.pow(2, failures), 60000);
    window.setTimeout(poll, wait);
  }

  function poll() {
    fetch(progressUrl + "?after=" + encodeURIComponent(lastLogId), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (response.status === 401 || response.status === 404) {
          active = false;
          showProblem(
            response.status === 401
              ? "Live updates stopped: your session has ended. Sign in again to follow the run."
              : "Live updates stopped: this run is no longer visible to you."
          );
          return null;
        }
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (!data) return;
        failures = 0;
        showProblem("");
        var p = data.progress;
        applyProgress(p, data.eta_time);
        applyLog(data.log || []);
        lastLogId = data.last_log_id || lastLogId;
        var next = [p.state, p.dials, p.dialing, p.finished, p.connected].join("|");
        var changedState = p.state !== state;
        state = p.state;
        root.setAttribute("data-state", state);
        if (!p.active) {
          active = false;
          root.setAttribute("data-active", "false");
        }
        if (next !== signature) {
          if (changedState || !active || Date.now() - lastSwap >= SWAP_EVERY_MS) {
            swapSections();
          } else {
            swapPending = true;
          }
        } else if (swapPending && Date.now() - lastSwap >= SWAP_EVERY_MS) {
          swapPending = false;
          swapSections();
        }
        signature = next;
      })
      .catch(function () {
        failures += 1;
        if (failures >= 2) showProblem("Live updates are interrupted; retrying…");
      })
      .then(schedule);
  }

  // The page may have been rendered a moment before the run changed: catch up at once, then keep polling.
  poll();
})();
