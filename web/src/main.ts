// The app shell: header navigation, routes, and the sign-in / profile guard.

import "./styles.css";
import { currentProfile, initAuth, onSessionChange, signOut, signedIn } from "./auth";
import { h, replace } from "./dom";
import { navigate, render, route, setGuard, startRouter } from "./router";
import { downloadsView } from "./views/downloads";
import { homeView } from "./views/home";
import { profilesView } from "./views/profiles";
import { searchView } from "./views/search";
import { signInView } from "./views/signin";
import { titleView } from "./views/title";
import { watchView } from "./views/watch";

route("/", "Home", homeView);
route("/signin", "Sign in", signInView);
route("/profiles", "Profiles", profilesView);
route("/search", "Search", searchView);
route("/title/:id", "Title", titleView);
route("/watch/:id", "Watch", watchView);
route("/downloads", "Downloads", downloadsView);

setGuard((path) => {
  const next = encodeURIComponent(path + window.location.search);
  if (path === "/signin") return signedIn() ? "/profiles" : null;
  if (!signedIn()) return path === "/" ? "/signin" : `/signin?next=${next}`;
  if (path !== "/profiles" && !currentProfile()) return `/profiles?next=${next}`;
  return null;
});

const nav = document.getElementById("nav")!;

function renderNav(): void {
  const profile = currentProfile();
  if (!signedIn()) {
    nav.replaceChildren();
    return;
  }
  const out = h("button", { type: "button", class: "link", "data-testid": "sign-out" }, "Sign out");
  out.addEventListener("click", async () => {
    await signOut();
    navigate("/signin");
  });
  replace(
    nav,
    h(
      "ul",
      {},
      profile ? h("li", {}, h("a", { href: "/" }, "Home")) : null,
      profile ? h("li", {}, h("a", { href: "/search", "data-testid": "nav-search" }, "Search")) : null,
      profile ? h("li", {}, h("a", { href: "/downloads", "data-testid": "nav-downloads" }, "Downloads")) : null,
      profile
        ? h(
            "li",
            {},
            h("a", { href: "/profiles", "data-testid": "nav-profile", title: "Switch profile" }, profile.displayName),
          )
        : null,
      h("li", {}, out),
    ),
  );
}

initAuth(() => navigate("/signin"));
onSessionChange(() => {
  renderNav();
  if (!signedIn() && window.location.pathname !== "/signin") render();
});
renderNav();
startRouter(document.getElementById("main")!);

// "/" anywhere outside a text field jumps to search.
document.addEventListener("keydown", (event) => {
  const target = event.target as HTMLElement;
  if (event.key !== "/" || target.closest("input, textarea, select, [contenteditable]")) return;
  if (!currentProfile() || document.body.classList.contains("watching")) return;
  event.preventDefault();
  if (window.location.pathname === "/search") document.getElementById("search-input")?.focus();
  else navigate("/search");
});
