// Search as you type: CatalogService.SearchTitles after a short pause in typing; a newer query cancels the call
// in flight, and the query stays in the URL (/search?q=...) so results survive a reload and the back button.

import { Code, ConnectError, catalog, describeError } from "../api";
import { debounce, h, replace, announce } from "../dom";
import { viewerRegion } from "../format";
import type { View } from "../router";
import { titleCard } from "./cards";

const DEBOUNCE_MS = 150;

export const searchView: View = (main, _params, query) => {
  const input = h("input", {
    id: "search-input",
    type: "search",
    placeholder: "Titles, people, genres, years",
    autocomplete: "off",
    spellcheck: false,
    maxlength: 200,
    "aria-controls": "search-results",
    "data-testid": "search-input",
  });
  const status = h("p", { class: "search-status", role: "status", "data-testid": "search-status" });
  const results = h("ul", { id: "search-results", class: "grid", "data-testid": "search-results" });
  main.append(
    h(
      "section",
      { class: "search", "aria-labelledby": "search-heading" },
      h("h1", { id: "search-heading" }, "Search"),
      h("label", { for: "search-input", class: "visually-hidden" }, "Search the catalog"),
      input,
      status,
      results,
    ),
  );

  let inFlight: AbortController | null = null;
  const region = viewerRegion();

  async function run(text: string): Promise<void> {
    inFlight?.abort();
    const trimmed = text.trim();
    history.replaceState(null, "", trimmed ? `/search?q=${encodeURIComponent(trimmed)}` : "/search");
    if (!trimmed || !/\p{L}|\p{N}/u.test(trimmed)) {
      results.replaceChildren();
      status.textContent = "";
      return;
    }
    const controller = new AbortController();
    inFlight = controller;
    results.setAttribute("aria-busy", "true");
    try {
      const reply = await catalog.searchTitles(
        { query: trimmed, filter: { region }, pageSize: 30 },
        { signal: controller.signal },
      );
      if (controller.signal.aborted) return;
      replace(
        results,
        reply.results.map((r) => (r.title ? titleCard(r.title) : null)),
      );
      if (reply.results.length) {
        status.textContent = `${reply.results.length} result${reply.results.length === 1 ? "" : "s"} for “${trimmed}”`;
      } else if (reply.suggestions.length) {
        replace(
          status,
          `No results for “${trimmed}”. Did you mean `,
          reply.suggestions
            .slice(0, 3)
            .flatMap((s, i) => [
              i ? ", " : "",
              h("a", { href: `/search?q=${encodeURIComponent(s)}`, "data-testid": "search-suggestion" }, s),
            ]),
          "?",
        );
      } else {
        status.textContent = `No results for “${trimmed}”.`;
      }
      announce(status.textContent ?? "");
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.Canceled) return;
      if (controller.signal.aborted) return;
      results.replaceChildren();
      status.textContent = describeError(err);
    } finally {
      if (inFlight === controller) {
        inFlight = null;
        results.setAttribute("aria-busy", "false");
      }
    }
  }

  const onInput = debounce((text: string) => void run(text), DEBOUNCE_MS);
  input.addEventListener("input", () => onInput(input.value));
  // Enter searches at once; Down moves into the results.
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") void run(input.value);
    if (event.key === "ArrowDown") {
      const first = results.querySelector<HTMLAnchorElement>("a");
      if (first) {
        event.preventDefault();
        first.focus();
      }
    }
  });
  const initial = query.get("q") ?? "";
  input.value = initial;
  if (initial) void run(initial);
  input.focus();
  return () => inFlight?.abort();
};
