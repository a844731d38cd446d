// "Who's watching?": the account's profiles (AccountService.ListProfiles); choosing one issues profile-bound
// tokens (SelectProfile), which every profile-scoped call needs. Leaving a kids profile asks for the account's
// password first (the server refuses the switch without it).

import { accounts, describeError } from "../api";
import { currentAccount, needsPassword, selectProfile } from "../auth";
import { h, replace } from "../dom";
import { hueOf } from "../format";
import type { Profile } from "../gen/marquee/v1/accounts_pb";
import { navigate, type View } from "../router";

export const profilesView: View = (main, _params, query) => {
  const list = h("ul", { class: "profiles", "data-testid": "profile-list", "aria-busy": "true" });
  const error = h("p", { class: "error", role: "alert", "data-testid": "profiles-error" });
  const gate = h("div", { class: "password-gate" });
  main.append(
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "profiles-heading" },
      h("h1", { id: "profiles-heading" }, "Who's watching?"),
      list,
      gate,
      error,
    ),
  );
  const account = currentAccount();
  if (!account) return;
  let cancelled = false;

  async function choose(profile: Profile, button: HTMLButtonElement, password = ""): Promise<boolean> {
    button.disabled = true;
    error.textContent = "";
    try {
      await selectProfile(profile, password);
      const next = query.get("next");
      navigate(next && next.startsWith("/") ? next : "/");
      return true;
    } catch (err) {
      error.textContent = describeError(err);
      button.disabled = false;
      return false;
    }
  }

  /** Leaving a kids profile: the account's password, then the switch. */
  function askPassword(profile: Profile, button: HTMLButtonElement): void {
    const password = h("input", {
      id: "profile-password",
      type: "password",
      autocomplete: "current-password",
      required: true,
      "data-testid": "profile-password",
    });
    const form = h(
      "form",
      {
        class: "profile-password",
        "aria-labelledby": "profile-password-heading",
        "data-testid": "profile-password-form",
      },
      h("h2", { id: "profile-password-heading" }, `Switch to ${profile.displayName}`),
      h("label", { for: "profile-password" }, "Account password (needed to leave a kids profile)"),
      password,
      h("button", { type: "submit", class: "primary", "data-testid": "profile-password-submit" }, "Switch"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!(await choose(profile, button, password.value))) {
        password.select();
        password.focus();
      }
    });
    replace(gate, form);
    password.focus();
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
          button.addEventListener("click", () =>
            needsPassword(profile) ? askPassword(profile, button) : void choose(profile, button),
          );
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
