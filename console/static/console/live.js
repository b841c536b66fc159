/* Live refresh for the sprites changelist: every few seconds, fetch the visible rows' cells and
   the summary band from the staff-only JSON endpoint and swap them in place. Pauses while any
   row is selected (so an action is never aimed at a moving list) and while the tab is hidden. */
(function () {
  "use strict";

  function start() {
    var root = document.getElementById("sprite-console");
    if (!root || !window.fetch) return;
    var url = root.dataset.liveUrl;
    var interval = parseInt(root.dataset.liveInterval, 10) || 5000;
    var status = document.getElementById("sprite-live-status");
    var inFlight = false;

    function setStatus(text, state) {
      if (!status) return;
      status.textContent = text;
      status.dataset.state = state;
    }

    function rowsSelected() {
      return document.querySelector("#result_list input.action-select:checked") !== null;
    }

    function visibleIds() {
      var seen = {};
      document.querySelectorAll("[data-live-id]").forEach(function (el) {
        seen[el.dataset.liveId] = true;
      });
      return Object.keys(seen);
    }

    function swap(el, html, flash) {
      // Compare with what we last wrote, not el.innerHTML (the browser re-serialises it).
      if (el.liveHtml === html) return;
      var changed = el.liveHtml !== undefined;
      el.innerHTML = html;
      el.liveHtml = html;
      if (changed && flash) {
        el.classList.remove("sprite-flash");
        void el.offsetWidth; // restart the animation
        el.classList.add("sprite-flash");
      }
    }

    function apply(data) {
      Object.keys(data.rows || {}).forEach(function (id) {
        var cells = data.rows[id];
        Object.keys(cells).forEach(function (field) {
          var selector = '[data-live-id="' + id + '"][data-live-field="' + field + '"]';
          document.querySelectorAll(selector).forEach(function (el) { swap(el, cells[field], true); });
        });
      });
      var summary = document.getElementById("sprite-summary");
      if (summary && data.summary_html) swap(summary, data.summary_html, false);
    }

    function tick() {
      if (inFlight || document.hidden) return;
      if (rowsSelected()) {
        setStatus("Paused while rows are selected", "paused");
        return;
      }
      inFlight = true;
      fetch(url + "?ids=" + visibleIds().join(","), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          apply(data);
          setStatus("Live: updated " + new Date().toLocaleTimeString(), "live");
        })
        .catch(function () {
          setStatus("Live refresh failed; retrying", "error");
        })
        .then(function () { inFlight = false; });
    }

    setInterval(tick, interval);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
