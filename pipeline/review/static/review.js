// Keyboard of the imri review app. Every action is an ordinary link, form or button, so the pages also
// work with the mouse, and the decisions without JavaScript (plain form posts).
(function () {
  "use strict";

  const ACTIONS = { a: "accept", r: "reject", c: "change", s: "skip" };
  const VIEWS = { q: "view-queue", v: "view-browse", g: "view-agreement", h: "view-history" };

  function form() {
    return document.getElementById("decision");
  }

  // htmx wires up a swapped-in segment only once it has settled: an action key pressed in that moment
  // (the next segment is already on screen) waits for it instead of being lost
  let settling = false;
  let queued = null;

  function press(action) {
    if (settling) {
      queued = action;
      return;
    }
    const f = form();
    const button = f && f.querySelector('button[name="action"][value="' + action + '"]');
    if (button && !f.classList.contains("htmx-request")) {
      button.click();
    }
  }

  document.addEventListener("htmx:beforeSwap", (event) => {
    settling = Boolean(event.detail && event.detail.shouldSwap);
  });
  document.addEventListener("htmx:afterSettle", () => {
    settling = false;
    const action = queued;
    queued = null;
    if (action) press(action);
  });

  function go(id) {
    const target = document.getElementById(id);
    if (target && target.href) window.location.assign(target.href);
  }

  function switchLanguage() {
    const link = document.getElementById("lang-switch");
    if (!link) return;
    const target = link.getAttribute("hreflang");
    const url = new URL(window.location.href);
    url.searchParams.set("lang", target);
    window.location.assign(url.toString());
  }

  function toggleDefinitions() {
    const all = Array.from(document.querySelectorAll("#panel details.definition"));
    const open = !all.some((d) => d.open);
    all.forEach((d) => { d.open = open; });
  }

  function toggleHelp() {
    const help = document.getElementById("help");
    if (help) help.hidden = !help.hidden;
  }

  function undo() {
    const button = document.getElementById("undo-button");
    if (button && !button.disabled) button.click();
  }

  // --- type-ahead search over the impacts (names in English and French, accents ignored) -------------

  function fold(text) {
    return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function codeRows() {
    return Array.from(document.querySelectorAll("#code-list li.code"));
  }

  function activeRow() {
    return document.querySelector("#code-list li.code.active");
  }

  function setActive(row) {
    codeRows().forEach((r) => r.classList.toggle("active", r === row));
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  function filterCodes(query) {
    const words = fold(query).split(/\s+/).filter(Boolean);
    let first = null;
    codeRows().forEach((row) => {
      const hay = row.getAttribute("data-search") || "";
      const hit = words.every((w) => hay.includes(w));
      row.hidden = !hit;
      if (hit && !first) first = row;
    });
    const none = document.getElementById("no-match");
    if (none) none.hidden = !(words.length && !first);
    setActive(words.length ? first : null);
    keepSearchInView();
  }

  // the box and the matches under it stay on screen: the box goes to the top of the window
  function keepSearchInView() {
    const box = document.querySelector("#decision .search");
    if (box && box.getBoundingClientRect().top < 0 || (box && box.getBoundingClientRect().bottom > window.innerHeight / 2)) {
      box.scrollIntoView({ block: "start" });
    }
  }

  function moveActive(step) {
    const rows = codeRows().filter((r) => !r.hidden);
    if (!rows.length) return;
    const index = rows.indexOf(activeRow());
    setActive(rows[Math.max(0, Math.min(rows.length - 1, index + step))] || rows[0]);
  }

  function leaveSearch(search) {
    search.value = "";
    filterCodes("");
    search.blur();
  }

  document.addEventListener("input", (event) => {
    if (event.target && event.target.id === "code-search") filterCodes(event.target.value);
  });
  document.addEventListener("focusin", (event) => {
    if (event.target && event.target.id === "code-search") keepSearchInView();
  });

  // --- lists: browse rows and transcript segments ---------------------------------------------------

  function cursorItems() {
    return Array.from(
      document.querySelectorAll("[data-cursor-list] .seg-row:not(.dim) a.seg, [data-cursor-list] tr.row a.open")
    );
  }

  function moveCursor(step) {
    const items = cursorItems();
    if (!items.length) return false;
    const index = items.indexOf(document.activeElement);
    const next = index < 0 ? (step > 0 ? items[0] : items[items.length - 1])
      : items[Math.max(0, Math.min(items.length - 1, index + step))];
    items.forEach((item) => item.classList.toggle("cursor", item === next));
    next.focus();
    next.scrollIntoView({ block: "center" });
    return true;
  }

  function transcriptView() {
    const panel = document.getElementById("panel");
    const url = panel && panel.getAttribute("data-transcript-url");
    if (url) window.location.assign(url);
    else go("view-transcript");
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest && event.target.closest("#lang-switch, #help-toggle");
    if (!target) return;
    event.preventDefault();
    if (target.id === "lang-switch") switchLanguage();
    else toggleHelp();
  });

  document.addEventListener("change", (event) => {
    if (event.target && event.target.id === "transcript-select") event.target.form.submit();
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const tag = target && target.tagName;
    if (target && target.id === "code-search") {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        moveActive(event.key === "ArrowDown" ? 1 : -1);
      } else if (event.key === "Enter") {
        event.preventDefault();
        const row = activeRow();
        const box = row && row.querySelector("input[type=checkbox]");
        if (box) box.checked = !box.checked;
      } else if (event.key === "Escape") {
        event.preventDefault();
        leaveSearch(target);
      }
      return;
    }
    const typing = tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type !== "checkbox");
    if (typing) {
      if (event.key === "Escape") {
        target.blur();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.id === "memo") {
        event.preventDefault();
        press("memo");
      }
      return;
    }
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const onSegment = Boolean(form());
    if (onSegment && ACTIONS[key]) {
      event.preventDefault();
      press(ACTIONS[key]);
    } else if (onSegment && /^[1-9]$/.test(key)) {
      const box = document.querySelector('#decision input[data-shortcut="' + key + '"]');
      if (box) {
        event.preventDefault();
        box.checked = !box.checked;
      }
    } else if (onSegment && key === "/") {
      const search = document.getElementById("code-search");
      if (search) {
        event.preventDefault();
        search.focus();
        keepSearchInView();
      }
    } else if (onSegment && key === "m") {
      const memo = document.getElementById("memo");
      if (memo) {
        event.preventDefault();
        memo.focus();
      }
    } else if (key === "j" || key === "k" || key === "ArrowDown" || key === "ArrowUp") {
      const step = key === "j" || key === "ArrowDown" ? 1 : -1;
      if (onSegment) {
        if (key === "j" || key === "k") go(step > 0 ? "next-link" : "previous-link");
      } else if (moveCursor(step)) {
        event.preventDefault();
      }
    } else if (key === "d") {
      toggleDefinitions();
    } else if (key === "l") {
      switchLanguage();
    } else if (key === "u") {
      undo();
    } else if (key === "t") {
      transcriptView();
    } else if (VIEWS[key]) {
      go(VIEWS[key]);
    } else if (key === "f") {
      const first = document.querySelector("#filters select");
      if (first) {
        event.preventDefault();
        first.focus();
      }
    } else if (key === "b") {
      go("back-link");
    } else if (key === "?") {
      toggleHelp();
    }
  });

  // the transcript opens at the segment it was asked for
  document.addEventListener("DOMContentLoaded", () => {
    const list = document.querySelector("[data-focus]");
    const row = list && document.getElementById(list.getAttribute("data-focus"));
    const link = row && row.querySelector("a.seg");
    if (link) {
      link.classList.add("cursor");
      link.focus();
      link.scrollIntoView({ block: "center" });
    }
  });

  // htmx swaps in the next segment after each decision: start reading it from the top
  document.addEventListener("htmx:afterSwap", () => {
    window.scrollTo({ top: 0 });
  });
})();
