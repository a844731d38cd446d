// "Who's watching?": the account's profiles (AccountService.ListProfiles); choosing one issues profile-bound
// tokens (SelectProfile), which every profile-scoped call needs.

import { accounts, describeError } from "../api";
import { currentAccount, selectProfile } from "../auth";
import { h, replace } from "../dom";
import { hueOf } from "../format";
import type { Profile } from "../gen/marquee/v1/accounts_pb";
import { navigate, type View } from "../router";

export const profilesView: View = (main, _params, query) => {
  const list = h("ul", { class: "profiles", "data-testid": "profile-list", "aria-busy": "true" });
  const error = h("p", { class: "error", role: "alert" });
  main.append(
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "profiles-heading" },
      h("h1", { id: "profiles-heading" }, "Who's watching?"),
      list,
      error,
    ),
  );
  const account = currentAccount();
  if (!account) return;
  let cancelled = false;

  async function choose(profile: Profile, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      await selectProfile(profile);
      const next = query.get("next");
      navigate(next && next.startsWith("/") ? next : "/");
    } catch (err) {
      error.textContent = describeError(err);
      button.disabled = false;
    }
  }

  (async () => {
    try {
      const reply = await accounts.listProfiles({ parent: account.name, pageSize: 20 });
      if (cancelled) return;
      list.setAttribute("aria-busy", "false");
      replace(
        list,
        reply.profiles.map((profile) => {
          const button = h(
            "button",
            { type: "button", class: "profile", "data-testid": "profile-button", "data-profile": profile.name },
            h(
              "span",
              { class: "avatar", "aria-hidden": "true", style: `--hue: ${hueOf(profile.displayName)}` },
              profile.displayName.slice(0, 1).toUpperCase(),
            ),
            h("span", { class: "profile-name" }, profile.displayName),
            profile.kids ? h("span", { class: "badge" }, "Kids") : null,
          );
          button.addEventListener("click", () => void choose(profile, button));
          return h("li", {}, button);
        }),
      );
      list.querySelector("button")?.focus();
    } catch (err) {
      if (!cancelled) error.textContent = describeError(err);
    }
  })();
  return () => {
    cancelled = true;
  };
};
