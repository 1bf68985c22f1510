// Keyboard shortcuts of the imri review page. Every action is an ordinary form button, so the page also
// works with the mouse, and without JavaScript (plain form posts).
(function () {
  "use strict";

  const ACTIONS = { a: "accept", r: "reject", c: "change", s: "skip" };

  function form() {
    return document.getElementById("decision");
  }

  function press(action) {
    const f = form();
    const button = f && f.querySelector('button[name="action"][value="' + action + '"]');
    if (button && !f.classList.contains("htmx-request")) {
      button.click();
    }
  }

  function switchLanguage() {
    const link = document.getElementById("lang-switch");
    if (!link) return;
    const target = new URL(link.href, window.location.href).searchParams.get("lang");
    const url = new URL(window.location.href);
    url.searchParams.set("lang", target);
    window.location.assign(url.toString());
  }

  function toggleDefinitions() {
    const all = Array.from(document.querySelectorAll("#panel details.definition"));
    const open = !all.some((d) => d.open);
    all.forEach((d) => { d.open = open; });
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest && event.target.closest("#lang-switch, #help-toggle");
    if (!target) return;
    event.preventDefault();
    if (target.id === "lang-switch") switchLanguage();
    else document.getElementById("help").hidden = !document.getElementById("help").hidden;
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
    if (typing) {
      if (event.key === "Escape") {
        target.blur();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.id === "memo") {
        event.preventDefault();
        press("memo");
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const key = event.key.toLowerCase();
    if (ACTIONS[key]) {
      event.preventDefault();
      press(ACTIONS[key]);
    } else if (/^[1-9]$/.test(key)) {
      const box = document.querySelector('#decision input[data-shortcut="' + key + '"]');
      if (box) {
        event.preventDefault();
        box.checked = !box.checked;
      }
    } else if (key === "m") {
      const memo = document.getElementById("memo");
      if (memo) {
        event.preventDefault();
        memo.focus();
      }
    } else if (key === "d") {
      toggleDefinitions();
    } else if (key === "l") {
      switchLanguage();
    } else if (key === "b") {
      const back = document.getElementById("back-link");
      if (back) window.location.assign(back.href);
    } else if (key === "?") {
      const help = document.getElementById("help");
      help.hidden = !help.hidden;
    }
  });

  // htmx swaps in the next segment after each decision: start reading it from the top
  document.addEventListener("htmx:afterSwap", () => {
    window.scrollTo({ top: 0 });
  });
})();
