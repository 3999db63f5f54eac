// Who is signed in (/app/session, by the accounts pages): "Accedi" or the name + "Esci".
import { el, fill, t } from "./dom.js";

export async function initSession() {
  const box = document.getElementById("session");
  let data = null;
  try {
    const r = await fetch("/app/session", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (r.ok) data = await r.json(); // 404: the accounts pages are not installed → not signed in
  } catch { data = null; }
  const next = location.pathname + location.search;
  if (!data || !data.user) {
    fill(box, el("a", { id: "login-link", href: `/app/login?next=${encodeURIComponent(next)}` }, t("session.login")));
    return null;
  }
  const u = data.user;
  fill(box,
    el("span", { class: "user", id: "session-user" }, t("session.signed_in", { name: u.display_name || u.username })),
    el("a", { href: "/app/layers/new" }, t("nav.upload")),
    el("a", { href: "/app/interventions/new" }, t("nav.new_intervention")),
    el("form", { method: "post", action: "/app/logout", class: "inline" },
      el("input", { type: "hidden", name: "csrf_token", value: data.csrf_token || "" }),
      el("button", { type: "submit" }, t("session.logout"))));
  return data;
}
