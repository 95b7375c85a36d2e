/* Call detail page: playback controls, waveform progress and seeking, a transcript that follows playback, and a
   polite self-refresh while a recording or transcript is being produced. Plain script, no dependencies; the
   page works without it (native audio controls, a static waveform, a <noscript> refresh). */
(function () {
  "use strict";

  var root = document.getElementById("call-detail");
  if (!root) {
    return;
  }

  var SKIP_SECONDS = 5;
  var PAGE_SECONDS = 30;
  var USER_SCROLL_QUIET_MS = 4000;

  var audio = document.getElementById("player");
  var formsDirty = false;

  function clock(seconds) {
    if (!isFinite(seconds) || seconds < 0) {
      seconds = 0;
    }
    var total = Math.floor(seconds);
    var h = Math.floor(total / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    var ss = (s < 10 ? "0" : "") + s;
    if (h) {
      return h + ":" + (m < 10 ? "0" : "") + m + ":" + ss;
    }
    return m + ":" + ss;
  }

  // --- Forms: remember unsaved text, so a refresh never throws it away; focus the first field in error. ---

  Array.prototype.forEach.call(root.querySelectorAll("form textarea, form input"), function (field) {
    field.addEventListener("input", function () {
      formsDirty = true;
    });
  });
  Array.prototype.forEach.call(root.querySelectorAll("form"), function (form) {
    form.addEventListener("submit", function () {
      formsDirty = false;
    });
  });
  var invalid = root.querySelector("[aria-invalid='true']");
  if (invalid) {
    invalid.focus();
  }

  // --- Self-refresh while something is being produced. ---

  var progressUrl = root.getAttribute("data-progress-url");
  if (progressUrl) {
    var token = root.getAttribute("data-progress-token");
    var delay = (parseInt(root.getAttribute("data-poll-seconds"), 10) || 10) * 1000;
    var notice = document.getElementById("refresh-notice");
    var reloadButton = document.getElementById("refresh-now");
    var startedAt = Date.now();

    if (reloadButton) {
      reloadButton.addEventListener("click", function () {
        window.location.reload();
      });
    }

    var busy = function () {
      var active = document.activeElement;
      var typing = active && (active.tagName === "TEXTAREA" || active.tagName === "INPUT" || active.tagName === "SELECT");
      var playing = audio && !audio.paused;
      return formsDirty || typing || playing;
    };

    var poll = function () {
      var request = new XMLHttpRequest();
      request.open("GET", progressUrl, true);
      request.setRequestHeader("Accept", "application/json");
      request.onload = function () {
        var next = null;
        if (request.status === 200) {
          try {
            next = JSON.parse(request.responseText).token;
          } catch (err) {
            next = null;
          }
        }
        if (next && next !== token) {
          if (busy()) {
            if (notice) {
              notice.hidden = false;
            }
          } else {
            window.location.reload();
          }
          return;
        }
        schedule();
      };
      request.onerror = schedule;
      request.send();
    };

    var schedule = function () {
      // Every few seconds at first, then less often: a stuck ingest should not be polled forever at full speed.
      var wait = Date.now() - startedAt > 5 * 60 * 1000 ? delay * 3 : delay;
      window.setTimeout(poll, wait);
    };
    schedule();
  }

  if (!audio) {
    return;
  }

  // --- Player controls. ---

  var controls = document.getElementById("player-controls");
  var toggle = document.getElementById("player-toggle");
  var back = document.getElementById("player-back");
  var forward = document.getElementById("player-forward");
  var speed = document.getElementById("player-speed");
  var current = document.getElementById("player-current");
  var durationLabel = document.getElementById("player-duration");
  var errorBox = document.getElementById("player-error");
  var knownDurationMs = parseInt(audio.getAttribute("data-duration-ms"), 10);

  if (controls) {
    controls.hidden = false;
  }

  function duration() {
    if (isFinite(audio.duration) && audio.duration > 0) {
      return audio.duration;
    }
    return knownDurationMs > 0 ? knownDurationMs / 1000 : 0;
  }

  function play() {
    var started = audio.play();
    if (started && typeof started.catch === "function") {
      started.catch(function () {
        /* Refused (autoplay policy, no source): the controls stay as they are. */
      });
    }
  }

  function seek(seconds) {
    var end = duration();
    var target = Math.max(0, end ? Math.min(seconds, end) : seconds);
    if (audio.readyState === 0) {
      // Metadata not loaded yet: seek as soon as it is.
      audio.addEventListener(
        "loadedmetadata",
        function () {
          audio.currentTime = target;
        },
        { once: true }
      );
      audio.load();
    } else {
      audio.currentTime = target;
    }
    render(target);
  }

  if (toggle) {
    toggle.addEventListener("click", function () {
      if (audio.paused) {
        play();
      } else {
        audio.pause();
      }
    });
  }
  if (back) {
    back.addEventListener("click", function () {
      seek(audio.currentTime - SKIP_SECONDS);
    });
  }
  if (forward) {
    forward.addEventListener("click", function () {
      seek(audio.currentTime + SKIP_SECONDS);
    });
  }
  if (speed) {
    speed.addEventListener("change", function () {
      var rate = parseFloat(speed.value);
      if (rate > 0) {
        audio.playbackRate = rate;
      }
    });
  }

  function syncToggle() {
    if (!toggle) {
      return;
    }
    var playing = !audio.paused && !audio.ended;
    // The label says what pressing it does (no aria-pressed as well: that would read "Pause, pressed").
    toggle.textContent = playing ? "Pause" : "Play";
  }

  audio.addEventListener("error", function () {
    if (errorBox) {
      errorBox.hidden = false;
    }
  });

  // --- Waveform: progress overlay, click and keyboard seeking. ---

  var waveform = document.getElementById("waveform");
  var progress = document.getElementById("waveform-progress");
  var playhead = document.getElementById("waveform-playhead");
  var svgWidth = 0;
  if (waveform) {
    var svg = waveform.querySelector("svg");
    if (svg && svg.viewBox && svg.viewBox.baseVal) {
      svgWidth = svg.viewBox.baseVal.width;
    }
    waveform.setAttribute("role", "slider");
    waveform.setAttribute("tabindex", "0");
    waveform.setAttribute("aria-label", "Position in the recording");
    waveform.setAttribute("aria-valuemin", "0");
    Array.prototype.forEach.call(waveform.querySelectorAll(".js-only"), function (el) {
      el.hidden = false;
    });

    waveform.addEventListener("click", function (event) {
      var box = waveform.querySelector("svg").getBoundingClientRect();
      if (!box.width) {
        return;
      }
      var fraction = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
      seek(fraction * duration());
    });

    waveform.addEventListener("keydown", function (event) {
      var handled = true;
      switch (event.key) {
        case "ArrowLeft":
        case "ArrowDown":
          seek(audio.currentTime - SKIP_SECONDS);
          break;
        case "ArrowRight":
        case "ArrowUp":
          seek(audio.currentTime + SKIP_SECONDS);
          break;
        case "PageDown":
          seek(audio.currentTime - PAGE_SECONDS);
          break;
        case "PageUp":
          seek(audio.currentTime + PAGE_SECONDS);
          break;
        case "Home":
          seek(0);
          break;
        case "End":
          seek(duration());
          break;
        case " ":
        case "Enter":
          if (audio.paused) {
            play();
          } else {
            audio.pause();
          }
          break;
        default:
          handled = false;
      }
      if (handled) {
        event.preventDefault();
      }
    });
  }

  // --- Transcript: follow playback, seek on click. ---

  var list = document.getElementById("transcript-list");
  var segments = list ? Array.prototype.slice.call(list.querySelectorAll("button.transcript-segment[data-start-ms]")) : [];
  var starts = segments.map(function (el) {
    return parseInt(el.getAttribute("data-start-ms"), 10) / 1000;
  });
  var ends = segments.map(function (el, i) {
    var end = el.getAttribute("data-end-ms");
    if (end !== null && end !== "") {
      return parseInt(end, 10) / 1000;
    }
    return i + 1 < starts.length ? starts[i + 1] : Infinity;
  });
  var currentSegment = null;
  var lastUserScroll = 0;

  if (list) {
    ["wheel", "touchmove", "keydown"].forEach(function (type) {
      list.addEventListener(
        type,
        function () {
          lastUserScroll = Date.now();
        },
        { passive: true }
      );
    });
  }

  function segmentAt(seconds) {
    // The last segment that starts at or before `seconds` and has not ended yet (segments are in time order).
    var lo = 0;
    var hi = starts.length - 1;
    var found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (starts[mid] <= seconds) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found >= 0 && seconds < ends[found]) {
      return segments[found];
    }
    return null;
  }

  function reveal(el) {
    // Scroll the transcript box (never the page) so the line is visible, unless the user is reading elsewhere.
    if (!list || Date.now() - lastUserScroll < USER_SCROLL_QUIET_MS) {
      return;
    }
    if (list.scrollHeight <= list.clientHeight) {
      return;
    }
    var item = el.parentNode;
    var top = item.offsetTop - list.offsetTop;
    var bottom = top + item.offsetHeight;
    if (top < list.scrollTop || bottom > list.scrollTop + list.clientHeight) {
      var target = Math.max(0, top - list.clientHeight / 3);
      var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      if (typeof list.scrollTo === "function") {
        list.scrollTo({ top: target, behavior: reduced ? "auto" : "smooth" });
      } else {
        list.scrollTop = target;
      }
    }
  }

  function highlight(seconds) {
    var next = segments.length ? segmentAt(seconds) : null;
    if (next === currentSegment) {
      return;
    }
    if (currentSegment) {
      currentSegment.classList.remove("is-current");
      currentSegment.removeAttribute("aria-current");
    }
    currentSegment = next;
    if (next) {
      next.classList.add("is-current");
      next.setAttribute("aria-current", "true");
      if (!audio.paused) {
        reveal(next);
      }
    }
  }

  segments.forEach(function (el, index) {
    el.addEventListener("click", function () {
      seek(starts[index]);
      highlight(starts[index]);
      play();
    });
  });

  if (list) {
    // Arrow keys move between lines; Tab still leaves the list.
    list.addEventListener("keydown", function (event) {
      var index = segments.indexOf(document.activeElement);
      if (index < 0) {
        return;
      }
      var target = null;
      if (event.key === "ArrowDown") {
        target = segments[Math.min(index + 1, segments.length - 1)];
      } else if (event.key === "ArrowUp") {
        target = segments[Math.max(index - 1, 0)];
      } else if (event.key === "Home") {
        target = segments[0];
      } else if (event.key === "End") {
        target = segments[segments.length - 1];
      }
      if (target) {
        event.preventDefault();
        target.focus();
      }
    });
  }

  // --- Keeping it all in step with the audio. ---

  function render(seconds) {
    var end = duration();
    if (current) {
      current.textContent = clock(seconds);
    }
    if (durationLabel && end) {
      durationLabel.textContent = clock(end);
    }
    if (waveform) {
      var fraction = end ? Math.min(Math.max(seconds / end, 0), 1) : 0;
      if (progress && svgWidth) {
        progress.setAttribute("width", String(fraction * svgWidth));
      }
      if (playhead && svgWidth) {
        playhead.setAttribute("x1", String(fraction * svgWidth));
        playhead.setAttribute("x2", String(fraction * svgWidth));
      }
      waveform.setAttribute("aria-valuemax", String(Math.round(end)));
      waveform.setAttribute("aria-valuenow", String(Math.round(seconds)));
      waveform.setAttribute("aria-valuetext", clock(seconds) + " of " + clock(end));
    }
    highlight(seconds);
  }

  var frame = null;
  function tick() {
    render(audio.currentTime);
    frame = audio.paused ? null : window.requestAnimationFrame(tick);
  }

  audio.addEventListener("play", function () {
    syncToggle();
    if (currentSegment) {
      reveal(currentSegment);
    }
    if (frame === null) {
      frame = window.requestAnimationFrame(tick);
    }
  });
  audio.addEventListener("pause", syncToggle);
  audio.addEventListener("ended", syncToggle);
  ["timeupdate", "seeked", "loadedmetadata", "durationchange"].forEach(function (type) {
    audio.addEventListener(type, function () {
      if (frame === null) {
        render(audio.currentTime);
      }
    });
  });
  audio.addEventListener("ratechange", function () {
    if (speed && parseFloat(speed.value) !== audio.playbackRate) {
      speed.value = String(audio.playbackRate);
    }
  });

  syncToggle();
  render(audio.currentTime || 0);
})();
