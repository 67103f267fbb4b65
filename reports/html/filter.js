
(function () {
  "use strict";
  var bar = document.getElementById("filters");
  if (!bar) { return; }
  var text = document.getElementById("f-text");
  var tag = document.getElementById("f-tag");
  var status = document.getElementById("f-status");
  var reset = document.getElementById("f-reset");
  var count = document.getElementById("f-count");
  var none = document.getElementById("f-none");
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-filter-item]"));
  function tagsOf(el) {
    try {
      var parsed = JSON.parse(el.dataset.tags || "[]");
      return Array.isArray(parsed) ? parsed.map(String) : [];
    } catch (e) {
      return [];
    }
  }
  function contains(haystack, needle) {
    return String(haystack || "").toLowerCase().indexOf(needle) !== -1;
  }
  function matches(el, query, wantTag, wantStatus) {
    var tags = tagsOf(el);
    if (query && !contains(el.dataset.name, query) && !contains(el.dataset.address, query) &&
        !tags.some(function (t) { return contains(t, query); })) {
      return false;
    }
    if (wantTag && tags.indexOf(wantTag) === -1) { return false; }
    if (wantStatus && el.dataset.status !== wantStatus &&
        String(el.dataset.flags || "").split(" ").indexOf(wantStatus) === -1) {
      return false;
    }
    return true;
  }
  function apply() {
    var query = text.value.trim().toLowerCase();
    var shown = 0;
    var total = 0;
    items.forEach(function (el) {
      var ok = matches(el, query, tag.value, status.value);
      el.hidden = !ok;
      if (el.tagName === "TR") {
        total += 1;
        if (ok) { shown += 1; }
      }
    });
    count.textContent = shown === total ? "showing all " + total + " targets" : "showing " + shown + " of " + total + " targets";
    none.hidden = shown !== 0;
  }
  text.addEventListener("input", apply);
  text.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { text.value = ""; apply(); }
  });
  tag.addEventListener("change", apply);
  status.addEventListener("change", apply);
  reset.addEventListener("click", function () {
    text.value = "";
    tag.value = "";
    status.value = "";
    apply();
    text.focus();
  });
  bar.hidden = false;
  apply();
})();
