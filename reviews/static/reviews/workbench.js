// The workbench's keyboard, timers and diff. No inline script anywhere (strict CSP):
// the page's markup carries everything this script needs in ids and data attributes.
(function () {
  "use strict";
  const form = document.getElementById("review-form");
  if (!form) return;

  // Active time: a second counts only while the page is visible and the reviewer did
  // something in the last minute; an idle or hidden tab does not count.
  const IDLE_AFTER_MS = 60000;
  let lastInput = Date.now();
  let activeSeconds = 0;
  const timeField = document.getElementById("time-spent");
  ["keydown", "mousedown", "mousemove", "wheel", "touchstart", "input", "scroll"].forEach(function (name) {
    window.addEventListener(name, function () { lastInput = Date.now(); }, { passive: true, capture: true });
  });
  setInterval(function () {
    if (document.visibilityState === "visible" && Date.now() - lastInput < IDLE_AFTER_MS) {
      activeSeconds += 1;
      timeField.value = String(activeSeconds);
    }
    tickCountdowns();
  }, 1000);

  function tickCountdowns() {
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (element) {
      const left = Math.round((Date.parse(element.dataset.deadline) - Date.now()) / 1000);
      const label = element.dataset.label;
      if (left <= 0) {
        element.textContent = label + " passed " + format(-left) + " ago";
        element.classList.add("error");
      } else {
        element.textContent = format(left) + " left (" + label + ")";
      }
    });
  }
  function format(seconds) {
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + (h ? "" : s + " s");
  }
  tickCountdowns();

  // Decision: the correction editor and its diff appear for "correct"; escalation needs a comment.
  const correction = document.getElementById("correction");
  const editor = document.getElementById("corrected-output");
  const original = document.getElementById("original-output").textContent;
  const comment = document.getElementById("comment");
  function decisionChanged() {
    const picked = form.querySelector('input[name="decision"]:checked');
    const value = picked ? picked.value : "";
    correction.hidden = value !== "correct";
    comment.required = value === "escalate";
    if (value === "correct") { renderDiff(); }
  }
  form.querySelectorAll('input[name="decision"]').forEach(function (radio) {
    radio.addEventListener("change", decisionChanged);
  });
  editor.addEventListener("input", renderDiff);
  decisionChanged();

  // A word-level diff (longest common subsequence), enough for a reviewer's edit.
  function tokens(text) { return text.match(/\s+|[^\s]+/g) || []; }
  function renderDiff() {
    const a = tokens(original), b = tokens(editor.value);
    const target = document.getElementById("diff");
    target.textContent = "";
    if (a.length * b.length > 4000000) { target.textContent = "(too long to compare word by word)"; return; }
    const rows = a.length + 1, cols = b.length + 1;
    const table = new Uint32Array(rows * cols);
    for (let i = a.length - 1; i >= 0; i--) {
      for (let j = b.length - 1; j >= 0; j--) {
        table[i * cols + j] = a[i] === b[j] ? table[(i + 1) * cols + j + 1] + 1
          : Math.max(table[(i + 1) * cols + j], table[i * cols + j + 1]);
      }
    }
    let i = 0, j = 0, changed = false;
    function put(tag, text) {
      const node = tag ? document.createElement(tag) : document.createTextNode(text);
      if (tag) { node.textContent = text; changed = true; }
      target.appendChild(node);
    }
    while (i < a.length && j < b.length) {
      if (a[i] === b[j]) { put(null, a[i]); i++; j++; }
      else if (table[(i + 1) * cols + j] >= table[i * cols + j + 1]) { put("del", a[i]); i++; }
      else { put("ins", b[j]); j++; }
    }
    while (i < a.length) { put("del", a[i++]); }
    while (j < b.length) { put("ins", b[j++]); }
    if (!changed) { target.textContent = "(no change yet: edit the output above)"; }
  }

  // Keyboard: digits score the current criterion, arrows move between criteria,
  // a / r / c / e pick the decision, Ctrl+Enter submits, ? shows the shortcuts.
  const criteria = Array.from(form.querySelectorAll("fieldset.criterion"));
  let current = 0;
  function focusCriterion(index) {
    if (!criteria.length) return;
    current = Math.max(0, Math.min(criteria.length - 1, index));
    criteria.forEach(function (fieldset, position) { fieldset.classList.toggle("current", position === current); });
    const target = criteria[current].querySelector("input:checked") || criteria[current].querySelector("input, textarea");
    if (target) target.focus({ preventScroll: false });
  }
  criteria.forEach(function (fieldset, index) {
    fieldset.addEventListener("focusin", function () {
      current = index;
      criteria.forEach(function (other, position) { other.classList.toggle("current", position === index); });
    });
  });
  const overlay = document.getElementById("shortcuts");
  function toggleShortcuts(show) {
    overlay.hidden = !show;
    if (show) document.getElementById("shortcuts-close").focus();
  }
  document.getElementById("shortcuts-close").addEventListener("click", function () { toggleShortcuts(false); });

  function typing(target) {
    return target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(target.type));
  }
  function pickDecision(value) {
    const radio = form.querySelector('input[name="decision"][value="' + value + '"]');
    if (!radio) return false;
    radio.checked = true;
    decisionChanged();
    if (value === "correct") { editor.focus(); }
    else if (value === "escalate") { comment.focus(); }
    else { radio.focus(); }
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    if (event.key === "Escape" && !overlay.hidden) { toggleShortcuts(false); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "?") { event.preventDefault(); toggleShortcuts(overlay.hidden); return; }
    if (!overlay.hidden) return;
    const decisions = { a: "approve", r: "reject", c: "correct", e: "escalate" };
    if (decisions[event.key]) {
      if (pickDecision(decisions[event.key])) event.preventDefault();
      return;
    }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!criteria.length) return;
      event.preventDefault();
      focusCriterion(current + (event.key === "ArrowDown" ? 1 : -1));
      return;
    }
    if (/^[0-9]$/.test(event.key) && criteria.length) {
      const choices = criteria[current].querySelectorAll('input[type="radio"]');
      const index = Number(event.key) - 1;
      if (index >= 0 && index < choices.length) {
        event.preventDefault();
        choices[index].checked = true;
        choices[index].focus();
        // Move on to the next criterion to score, but never into a text box: a letter
        // typed next is meant as a shortcut (a, r, c, e), not as a note.
        const next = criteria[current + 1];
        if (next && next.dataset.kind !== "text") { focusCriterion(current + 1); }
      }
    }
  });

  form.addEventListener("submit", function () {
    timeField.value = String(activeSeconds);
  });
  if (criteria.length) { focusCriterion(0); }
  if (window.htmx) {
    document.body.addEventListener("htmx:afterSwap", tickCountdowns);
  }
})();
