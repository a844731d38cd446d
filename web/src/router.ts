// A history-API router: the gateway answers every app path with index.html, so URLs such as /title/{id} can be
// bookmarked and reloaded. Routes render into the main element and may return a cleanup for when they are left.

export type Cleanup = () => void;
export type View = (main: HTMLElement, params: Record<string, string>, query: URLSearchParams) => Cleanup | void;

interface Route {
  pattern: RegExp;
  keys: string[];
  view: View;
  title: string;
}

const routes: Route[] = [];
let cleanup: Cleanup | void;
let guard: (path: string) => string | null = () => null;
let main: HTMLElement;

/** Registers a route: `path` like "/title/:id". */
export function route(path: string, title: string, view: View): void {
  const keys: string[] = [];
  const pattern = new RegExp(
    "^" +
      path.replace(/:([a-z]+)/g, (_, key: string) => {
        keys.push(key);
        return "([^/]+)";
      }) +
      "/?$",
  );
  routes.push({ pattern, keys, view, title });
}

/** Installs a guard: given the path, it returns where to go instead (sign in first), or null. */
export function setGuard(fn: (path: string) => string | null): void {
  guard = fn;
}

export function navigate(to: string, { replace = false } = {}): void {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  render();
}

/** Re-renders the current route (after signing in or out). */
export function render(): void {
  const url = new URL(window.location.href);
  const redirect = guard(url.pathname);
  if (redirect && redirect !== url.pathname) {
    history.replaceState(null, "", redirect);
    return render();
  }
  cleanup?.();
  cleanup = undefined;
  const match = routes.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).find((x) => x.m !== null);
  main.replaceChildren();
  if (!match || !match.m) {
    document.title = "Not found · Marquee";
    main.append(Object.assign(document.createElement("h1"), { textContent: "Page not found" }));
    return;
  }
  const params: Record<string, string> = {};
  match.r.keys.forEach((key, i) => (params[key] = decodeURIComponent(match.m![i + 1])));
  document.title = `${match.r.title} · Marquee`;
  cleanup = match.r.view(main, params, url.searchParams);
  // Move focus to the new screen's heading for keyboard and screen reader users (unless the screen focused
  // something itself, such as the search box).
  const heading = main.querySelector<HTMLElement>("h1");
  if (heading && !main.contains(document.activeElement)) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

/** Starts routing: in-app links (<a href="/..."> without a target) navigate without reloading. */
export function startRouter(root: HTMLElement): void {
  main = root;
  document.addEventListener("click", (event) => {
    const link = (event.target as Element | null)?.closest("a");
    if (
      !link ||
      link.target ||
      link.origin !== window.location.origin ||
      event.defaultPrevented ||
      event.button !== 0 ||
      event.metaKey ||
      event.ctrlKey ||
      event.shiftKey ||
      event.altKey
    ) {
      return;
    }
    event.preventDefault();
    navigate(link.pathname + link.search);
  });
  window.addEventListener("popstate", render);
  render();
}
