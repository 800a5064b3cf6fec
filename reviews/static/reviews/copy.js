// Every identifier on the auditor's pages (<code class="copy" data-copy="...">) gets a button
// that copies it whole, so that ids, hashes and digests are never retyped.
(function () {
  "use strict";

  function copied(button) {
    button.textContent = "copied";
    button.classList.add("done");
    window.setTimeout(function () {
      button.textContent = "copy";
      button.classList.remove("done");
    }, 1500);
  }

  function fallback(text, button) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
      copied(button);
    } finally {
      document.body.removeChild(area);
    }
  }

  function attach(root) {
    root.querySelectorAll("code.copy[data-copy]").forEach(function (code) {
      if (code.dataset.copyReady) {
        return;
      }
      code.dataset.copyReady = "1";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button";
      button.textContent = "copy";
      button.setAttribute("aria-label", "Copy " + code.dataset.copy);
      button.addEventListener("click", function () {
        var text = code.dataset.copy;
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(
            function () { copied(button); },
            function () { fallback(text, button); }
          );
        } else {
          fallback(text, button);
        }
      });
      code.insertAdjacentElement("afterend", button);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { attach(document); });
  document.addEventListener("htmx:afterSwap", function (event) { attach(event.target); });
})();
