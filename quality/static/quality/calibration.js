// Calibration scoring, keyboard first: a/r/c pick the decision, [ and ] move between items,
// Ctrl+Enter (or Cmd+Enter) saves and opens the next item. Letters do nothing while typing.
(function () {
  "use strict";
  var form = document.getElementById("calibration-form");
  if (!form) { return; }
  var decisions = { a: "approve", r: "reject", c: "correct" };
  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
  }
  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var decision = decisions[event.key];
    if (decision) {
      var input = form.querySelector('input[name="decision"][value="' + decision + '"]');
      if (input) { input.checked = true; input.focus(); event.preventDefault(); }
      return;
    }
    var link = event.key === "[" ? document.getElementById("previous-item") : event.key === "]" ? document.getElementById("next-item") : null;
    if (link) { window.location.assign(link.href); }
  });
})();
