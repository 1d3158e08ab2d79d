// Warren's dashboard script. The pages are complete without it; it only
// - keeps the parts of a page marked `data-live` current: it follows the account's events
//   (`/live`, Server-Sent Events) and, when one concerns a part, fetches that part again from
//   the server (`data-fragment`) and puts it in place;
// - ticks the relative times (`<time data-ago>`, `<time data-left>`) every second, with the
//   same words as the server (src/http/dashboard/format.rs);
// - copies a new token to the clipboard.
(function () {
  "use strict";

  function span(secs) {
    if (secs < 60) return secs + " s";
    if (secs < 3600) return Math.floor(secs / 60) + " min";
    if (secs < 48 * 3600) return Math.floor(secs / 3600) + " h";
    return Math.floor(secs / 86400) + " d";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = span(Math.max(0, Math.floor((now - t) / 1000))) + " ago";
    });
    document.querySelectorAll("time[data-left]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      var secs = Math.floor((t - now) / 1000);
      el.textContent = secs > 0 ? span(secs) + " left" : "expired";
    });
  }

  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var target = document.getElementById(button.dataset.copy);
      if (!target) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var done = function () { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(target.textContent).then(done, function () { select(target); });
        } else {
          select(target);
        }
      });
    });
  }

  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  var indicator = document.getElementById("live-state");
  function show(text, state) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.textContent = text;
    indicator.dataset.state = state;
  }

  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live][data-fragment]"));
  var source = null;
  var pending = [];
  var timer = null;

  function concerns(region, message) {
    var prefixes = region.dataset.live.split(",");
    var type = message.type || "";
    if (!prefixes.some(function (p) { return type === p || (p.slice(-1) === "." && type.indexOf(p) === 0); })) {
      return false;
    }
    var subject = region.dataset.subject;
    return !subject || type === "reset" || message.subject === subject;
  }

  function refresh(region) {
    return fetch(region.dataset.fragment, {
      headers: { "X-Warren-Dashboard": "1" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (response.status === 401) {
        show("Signed out: reload to sign in", "off");
        if (source) source.close();
        return;
      }
      if (!response.ok) return;
      return response.text().then(function (html) {
        // Keep what the user had open or focused inside the part being replaced.
        var open = Array.prototype.map.call(region.querySelectorAll("details[open][id]"), function (d) { return d.id; });
        var focused = region.contains(document.activeElement) ? document.activeElement.id : "";
        region.innerHTML = html; // rendered and escaped by the server
        open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        if (focused) { var f = document.getElementById(focused); if (f) f.focus(); }
        tick();
      });
    }).catch(function () {});
  }

  function flush() {
    timer = null;
    var due = pending;
    pending = [];
    due.forEach(refresh);
  }

  function schedule(region) {
    if (pending.indexOf(region) < 0) pending.push(region);
    if (!timer) timer = setTimeout(flush, 100);
  }

  function follow() {
    if (!regions.length || !window.EventSource) return;
    show("Connecting…", "connecting");
    source = new EventSource("/live");
    source.onopen = function () { show("Live", "live"); };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        show("Not live: reload the page", "off");
      } else {
        show("Reconnecting…", "connecting");
      }
    };
    source.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      regions.forEach(function (region) { if (concerns(region, message)) schedule(region); });
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    copyButtons();
    follow();
  });
})();
