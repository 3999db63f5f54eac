// The search box: suggestions as you type (/lookup/suggest), arrow keys, Enter, Escape.
import { el, fill, t, getJSON, debounce } from "./dom.js";

export function initSearch(onPick) {
  const input = document.getElementById("search-input");
  const list = document.getElementById("search-list");
  let items = [];
  let active = -1;
  let seq = 0;

  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  };

  const setActive = (i) => {
    active = i;
    [...list.children].forEach((li, j) => li.setAttribute("aria-selected", j === i ? "true" : "false"));
    if (i >= 0 && list.children[i]) {
      input.setAttribute("aria-activedescendant", list.children[i].id);
      list.children[i].scrollIntoView({ block: "nearest" });
    } else input.removeAttribute("aria-activedescendant");
  };

  const pick = (i) => {
    const s = items[i];
    if (!s) return;
    input.value = s.name;
    close();
    onPick(s);
  };

  const render = (q) => {
    if (!items.length) {
      fill(list, el("li", { class: "none", role: "option", "aria-disabled": "true", id: "search-none" }, t("search.none", { q })));
    } else {
      fill(list, items.map((s, i) => el("li", {
        id: `search-opt-${i}`, role: "option", "aria-selected": "false",
        dataset: { kind: s.kind, id: s.id },
        onmousedown: (e) => { e.preventDefault(); pick(i); },
      }, el("span", { class: "name" }, s.name), " ",
      el("span", { class: "kind" }, s.kind === "comune" ? `${t("search.kind.comune")} · ${s.id}` : t(`search.kind.${s.kind}`)))));
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    setActive(items.length ? 0 : -1);
  };

  const query = debounce(async () => {
    const q = input.value.trim();
    const mine = ++seq;
    if (!q) { items = []; close(); return; }
    try {
      const ans = await getJSON(`/lookup/suggest?q=${encodeURIComponent(q)}&limit=8`);
      if (mine !== seq) return; // a newer keystroke won
      items = ans.suggestions;
      render(q);
    } catch { close(); }
  }, 120);

  input.addEventListener("input", query);
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      if (list.hidden && items.length) render(input.value.trim());
      else if (items.length) setActive((active + 1) % items.length);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      if (items.length) setActive((active - 1 + items.length) % items.length);
    } else if (e.key === "Enter") {
      if (!list.hidden && active >= 0) { e.preventDefault(); pick(active); }
    } else if (e.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
}
