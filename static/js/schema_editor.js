// The schema editor: a textarea with a line-number gutter, problem lines marked, and links that jump to a line.
// Kept a plain textarea (no editor library) so typing, the keyboard, screen readers and form posts work as
// they do everywhere; this only adds what a plain one lacks.
(function () {
  "use strict";

  function lineStart(text, line) {
    var at = 0;
    for (var n = 1; n < line; n++) {
      var next = text.indexOf("\n", at);
      if (next === -1) return at;
      at = next + 1;
    }
    return at;
  }

  function enhance(area) {
    var holder = area.closest("[data-problem-lines]");
    var marked = (holder ? holder.getAttribute("data-problem-lines") : "").split(",").filter(Boolean).map(Number);
    var box = document.createElement("div");
    box.className = "editor";
    var gutter = document.createElement("pre");
    gutter.className = "gutter";
    gutter.setAttribute("aria-hidden", "true");  // the problem list says the same in words
    area.parentNode.insertBefore(box, area);
    box.appendChild(gutter);
    box.appendChild(area);

    function draw() {
      var count = area.value.split("\n").length;
      var rows = [];
      for (var n = 1; n <= count; n++) rows.push(marked.indexOf(n) !== -1 ? "! " + n : String(n));
      gutter.textContent = rows.join("\n");
      gutter.scrollTop = area.scrollTop;
    }
    area.addEventListener("input", draw);
    area.addEventListener("scroll", function () { gutter.scrollTop = area.scrollTop; });
    draw();

    document.querySelectorAll("[data-goto-line]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var line = Number(link.getAttribute("data-goto-line"));
        var start = lineStart(area.value, line);
        var end = area.value.indexOf("\n", start);
        area.focus();
        area.setSelectionRange(start, end === -1 ? area.value.length : end);
        var height = parseFloat(getComputedStyle(area).lineHeight) || 18;
        area.scrollTop = Math.max(0, (line - 3) * height);
      });
    });
  }

  document.querySelectorAll("textarea[data-line-numbers]").forEach(enhance);
})();
