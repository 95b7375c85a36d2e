// The calls list: small progressive enhancements. Everything works without this file.
// - a filter <select> applies itself when changed (checkboxes and dates wait for "Apply filters");
// - empty fields, and fields left at their default (data-default), are left out of the URL: links stay short;
// - a click anywhere on a row opens the call (the row's first cell holds the real, keyboard-usable link);
// - "/" moves the focus to the search box.
(function () {
  "use strict";

  var form = document.querySelector("form[data-filter-form]");
  if (form) {
    form.addEventListener("change", function (event) {
      if (event.target instanceof HTMLSelectElement) {
        form.requestSubmit ? form.requestSubmit() : form.submit();
      }
    });
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement) || !el.name) return;
        if (el.type === "checkbox") return;
        if (el.value === "" || el.value === el.getAttribute("data-default")) el.disabled = true;
      });
    });
    // Coming back with the Back button restores this page from the cache: give the fields back.
    window.addEventListener("pageshow", function () {
      Array.prototype.forEach.call(form.elements, function (el) { el.disabled = false; });
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element) || target.closest("a, button, input, select, label, summary")) return;
    var row = target.closest("tr[data-href]");
    if (!row || (window.getSelection && String(window.getSelection()).length > 0)) return;
    var href = row.getAttribute("data-href");
    if (!href) return;
    if (event.ctrlKey || event.metaKey || event.button === 1) {
      window.open(href, "_blank", "noopener");
    } else {
      window.location.assign(href);
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) return;
    var search = document.querySelector("form[data-filter-form] input[type=search]");
    if (search) {
      event.preventDefault();
      search.focus();
      search.select();
    }
  });
})();
