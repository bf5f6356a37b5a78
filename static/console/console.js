// The console's few behaviours that need a script: copy buttons, relative times kept fresh,
// and the search form following the sort/page size of the results htmx swapped in.
(function () {
  "use strict";

  // <button data-copy-target="#id">: copies the text content of #id.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy-target"));
    if (!source || !navigator.clipboard) return;
    var label = button.textContent;
    navigator.clipboard.writeText(source.textContent).then(
      function () { button.textContent = "Copied"; },
      function () { button.textContent = "Copy failed"; }
    );
    setTimeout(function () { button.textContent = label; }, 1500);
  });

  // <time datetime=... data-relative>: the same words as console/views/timefmt.py.
  var UNITS = [[86400 * 365, "year"], [86400 * 30, "month"], [86400, "day"], [3600, "hour"], [60, "minute"]];

  function relative(moment, now) {
    var seconds = Math.trunc((now - moment) / 1000);
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 10) return future ? "in a few seconds" : "just now";
    var amount = seconds, unit = "second";
    for (var i = 0; i < UNITS.length; i++) {
      if (seconds >= UNITS[i][0]) { amount = Math.floor(seconds / UNITS[i][0]); unit = UNITS[i][1]; break; }
    }
    var words = amount + " " + unit + (amount === 1 ? "" : "s");
    return future ? "in " + words : words + " ago";
  }

  function refreshTimes() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      var moment = Date.parse(element.getAttribute("datetime"));
      if (!isNaN(moment)) element.textContent = relative(moment, now);
    });
  }
  setInterval(refreshTimes, 20000);

  // The search form sends sort and size along; keep them what the shown results use.
  document.addEventListener("htmx:afterSwap", function () {
    var results = document.getElementById("results");
    if (!results) return;
    var sort = document.getElementById("search-sort");
    var size = document.getElementById("search-size");
    if (sort && results.dataset.sort) sort.value = results.dataset.sort;
    if (size && results.dataset.size) size.value = results.dataset.size;
  });
})();
