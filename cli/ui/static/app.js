// wf ui: live updates without reloading. Each page's #live region names its
// fragment URL (data-live); every 2 s it is fetched with If-None-Match, and
// replaced only when the server says it changed (200, not 304); one marked
// data-soon (the list's counts, left out of its first view) is fetched at once. A region
// whose field has the focus is left alone until the focus moves on.
(function () {
  "use strict";
  var EVERY = 2000;
  function poll(el) {
    var etag = null;
    var dot = document.getElementById("live-dot");
    function tick() {
      var active = document.activeElement;
      if (active && el.contains(active) && /INPUT|SELECT|TEXTAREA/.test(active.tagName)) {
        return setTimeout(tick, EVERY);
      }
      var headers = etag ? { "If-None-Match": etag } : {};
      fetch(el.dataset.live, { headers: headers, credentials: "same-origin" })
        .then(function (r) {
          if (dot) dot.className = "live-dot ok";
          if (r.status === 200) {
            etag = r.headers.get("ETag");
            return r.text().then(function (html) { el.innerHTML = html; });
          }
        })
        .catch(function () { if (dot) dot.className = "live-dot down"; })
        .then(function () { setTimeout(tick, EVERY); });
    }
    setTimeout(tick, "soon" in el.dataset ? 0 : EVERY);  // data-soon: not drawn yet
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(poll);
  });
})();
