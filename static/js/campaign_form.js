// The campaign form: shows only the settings of the chosen dialer and the filter when one is wanted, and puts
// the focus on the first setting in error. Without this file every section is simply shown.
(function () {
  "use strict";

  var form = document.getElementById("campaign-form");
  if (!form) return;

  function checked(name) {
    var input = form.querySelector("input[name='" + name + "']:checked");
    return input ? input.value : "";
  }

  function sync() {
    var dialer = checked("dialer");
    Array.prototype.forEach.call(form.querySelectorAll("[data-dialer]"), function (section) {
      section.hidden = dialer !== "" && section.getAttribute("data-dialer") !== dialer;
    });
    var filter = document.getElementById("targeting-filter");
    if (filter) filter.hidden = checked("targeting") !== "filter";
  }

  form.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLInputElement && (target.name === "dialer" || target.name === "targeting")) sync();
  });
  sync();

  var invalid = form.querySelector("[aria-invalid='true']");
  if (invalid) invalid.focus();
})();
