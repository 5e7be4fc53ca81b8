// trustwall dashboard: click a table header to sort by that column (no data leaves the page).
(function () {
  "use strict";
  function cellValue(row, i) {
    var t = row.cells[i] ? row.cells[i].textContent.trim() : "";
    var n = parseFloat(t.replace(/[%,]/g, ""));
    return isNaN(n) ? t.toLowerCase() : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, i) {
      th.title = "sort";
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var desc = th.getAttribute("data-sort") !== "desc";
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          if (x === y) return 0;
          return (x < y ? -1 : 1) * (desc ? -1 : 1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-sort"); });
        th.setAttribute("data-sort", desc ? "desc" : "asc");
      });
    });
  });
  document.body.setAttribute("data-ready", "1");
})();
