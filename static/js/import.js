// A contact import's page while it runs: polls the import's progress JSON and moves the progress bar and the
// counters in place; once the import has finished it reloads the page, which then shows the report. No inline
// script, nothing from other origins. Without this file the page is still complete, just a snapshot.
(function () {
  "use strict";

  var root = document.getElementById("import-progress");
  if (!root || !window.fetch) return;
  Array.prototype.forEach.call(document.querySelectorAll(".no-script-only"), function (el) {
    el.hidden = true;
  });

  var url = root.getAttribute("data-progress-url");
  var delay = (parseInt(root.getAttribute("data-poll-seconds"), 10) || 2) * 1000;
  var startedAt = Date.now();
  var failures = 0;
  var bar = document.getElementById("import-bar");
  var status = document.getElementById("import-status");

  function setText(id, value) {
    var el = document.getElementById(id);
    var text = String(value);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function number(value) {
    return typeof value === "number" && value.toLocaleString ? value.toLocaleString() : String(value);
  }

  function show(data) {
    if (bar) {
      bar.value = data.percent;
      bar.textContent = data.percent + " %";
    }
    setText("import-processed", number(data.processed_rows));
    setText("import-percent", data.percent);
    setText("import-imported", number(data.imported));
    setText("import-updated", number(data.updated));
    setText("import-skipped", number(data.skipped));
    if (status && data.status === "running") {
      setText("import-status", "Importing: " + number(data.processed_rows) + " of " + number(data.total_rows) + " rows.");
    }
  }

  function schedule() {
    // Every couple of seconds while it runs; less often after five minutes (a big file, or a stalled worker), and
    // backing off while the server does not answer.
    var wait = Date.now() - startedAt > 5 * 60 * 1000 ? delay * 5 : delay;
    window.setTimeout(poll, wait * Math.min(1 + failures, 10));
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        show(data);
        if (data.finished) {
          setText("import-status", "Finished: loading the report…");
          window.location.reload();
          return;
        }
        schedule();
      })
      .catch(function () {
        failures += 1;
        if (status && failures === 3) {
          setText("import-status", "Progress could not be read just now; still trying. The import itself goes on.");
        }
        schedule();
      });
  }

  schedule();
})();
