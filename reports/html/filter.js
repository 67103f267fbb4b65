(function () {
  "use strict";
  // The report's one script (report.html.j2 explains the page): the target filter, and
  // on a large report each target's section made into elements when it is opened.
  // It reads data-* attributes, compares strings, toggles `hidden` and classes and
  // sets textContent. The only markup it parses is the text of the page's own
  // <noscript> sections, escaped when the page was written and parsed here exactly as
  // the browser parses it with JavaScript off; no data is ever made into markup.
  var matrix = document.querySelector("table.matrix");
  var list = document.getElementById("targets");
  if (!matrix || !list) { return; }
  var slots = list.children; // one per target, in the matrix's order: a <section>, or a <noscript> holding one
  var bodies = Array.prototype.slice.call(matrix.tBodies); // of rows: each laid out only near the viewport
  var rows = null; // the matrix's rows, one per target
  var bodyOf = null; // each row's body, by position

  function allRows() {
    if (!rows) {
      rows = [];
      bodyOf = [];
      bodies.forEach(function (body, b) {
        for (var r = 0; r < body.rows.length; r += 1) {
          rows.push(body.rows[r]);
          bodyOf.push(b);
        }
      });
    }
    return rows;
  }

  // -- details on demand ---------------------------------------------------------

  function targetIndex(id) {
    var match = /^target-([0-9]+)(?:-|$)/.exec(id || "");
    var index = match ? Number(match[1]) - 1 : -1;
    return index >= 0 && index < slots.length ? index : -1;
  }

  function section(index) {
    var slot = slots[index];
    if (slot.tagName !== "NOSCRIPT") { return slot; }
    var parsed = new DOMParser().parseFromString(slot.textContent, "text/html");
    var found = parsed.querySelector("section.target");
    if (!found) { return null; }
    found = document.adoptNode(found);
    list.replaceChild(found, slot);
    return found;
  }

  // The element with this id, once the section holding it is on the page.
  function reveal(id) {
    var index = targetIndex(id);
    if (index === -1) { return null; }
    var opened = section(index);
    if (opened) { opened.hidden = false; }
    return document.getElementById(id);
  }

  function fragment(url) {
    var at = String(url || "").indexOf("#");
    if (at === -1) { return ""; }
    try {
      return decodeURIComponent(String(url).slice(at + 1));
    } catch (e) {
      return "";
    }
  }

  function show(id) {
    var element = reveal(id);
    if (element) { element.scrollIntoView(); }
  }

  var picked = null;
  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || !event.target.closest) { return; }
    var link = event.target.closest("a[href^='#']");
    if (link) {
      var row = link.classList.contains("top") ? rowOf(link.closest("section.target")) : null;
      if (row && !row.hidden) {
        // "back to the matrix" goes back to this target's row
        event.preventDefault();
        row.scrollIntoView({ block: "center" });
        row.cells[1].querySelector("a").focus({ preventScroll: true });
        return;
      }
      reveal(link.getAttribute("href").slice(1)); // the browser then goes to it, as to any anchor
      return;
    }
    var cell = event.target.closest("td.cell");
    if (!cell || cell.classList.contains("none") || !matrix.contains(cell)) { return; }
    var heading = matrix.tHead.rows[0].cells[cell.cellIndex];
    var name = cell.parentElement.cells[1].querySelector("a");
    if (!heading || !name) { return; }
    var finding = reveal(name.getAttribute("href").slice(1) + "-" + heading.dataset.slug);
    if (finding) {
      if (picked) { picked.classList.remove("picked"); }
      picked = finding;
      finding.classList.add("picked");
      finding.scrollIntoView({ block: "start" });
    }
  });
  window.addEventListener("hashchange", function (event) { show(fragment(event.newURL)); });
  matrix.classList.add("live");
  if (fragment(document.URL)) { show(fragment(document.URL)); }

  function rowOf(element) {
    var index = element ? Array.prototype.indexOf.call(slots, element) : -1;
    return index === -1 ? null : allRows()[index] || null;
  }

  // -- the filter ----------------------------------------------------------------

  var bar = document.getElementById("filters");
  if (!bar) { return; }
  var text = document.getElementById("f-text");
  var tag = document.getElementById("f-tag");
  var status = document.getElementById("f-status");
  var reset = document.getElementById("f-reset");
  var count = document.getElementById("f-count");
  var none = document.getElementById("f-none");
  var index = null; // what the filter compares, per row; read from the rows on first use

  function tagsOf(el) {
    try {
      var parsed = JSON.parse(el.dataset.tags || "[]");
      return Array.isArray(parsed) ? parsed.map(String) : [];
    } catch (e) {
      return [];
    }
  }
  function build() {
    index = allRows().map(function (row, i) {
      var tags = tagsOf(row);
      return {
        body: bodyOf[i],
        // a query cannot hold a newline, so it cannot match across two fields
        words: [row.dataset.name || "", row.dataset.address || ""].concat(tags).join("\n").toLowerCase(),
        tags: tags,
        status: row.dataset.status || "",
        flags: " " + (row.dataset.flags || "") + " "
      };
    });
  }
  function say(shown, total) {
    count.textContent = shown === total ? "showing all " + total + " targets" : "showing " + shown + " of " + total + " targets";
    none.hidden = shown !== 0;
  }
  function apply() {
    if (!index) { build(); }
    var query = text.value.trim().toLowerCase();
    var wantTag = tag.value;
    var wantStatus = status.value;
    var shown = 0;
    var inBody = bodies.map(function () { return 0; });
    for (var i = 0; i < index.length; i += 1) {
      var entry = index[i];
      var ok = (!query || entry.words.indexOf(query) !== -1) &&
        (!wantTag || entry.tags.indexOf(wantTag) !== -1) &&
        (!wantStatus || entry.status === wantStatus || entry.flags.indexOf(" " + wantStatus + " ") !== -1);
      if (ok) { shown += 1; inBody[entry.body] += 1; }
      if (rows[i].hidden === ok) { // only what changes is touched
        rows[i].hidden = !ok;
        if (slots[i].tagName !== "NOSCRIPT") { slots[i].hidden = !ok; }
      }
    }
    bodies.forEach(function (body, b) {
      if (body.hidden !== (inBody[b] === 0)) { body.hidden = inBody[b] === 0; } // an empty body would hold its place
    });
    say(shown, index.length);
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
  if (text.value || tag.value || status.value) {
    apply(); // a browser that restored the controls' values
  } else {
    var total = matrix.rows.length - matrix.tHead.rows.length;
    say(total, total);
  }
})();
