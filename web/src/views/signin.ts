// Sign in with email and password (AccountService.SignIn), then on to the profile picker.

import { describeError } from "../api";
import { signIn } from "../auth";
import { h } from "../dom";
import { navigate, type View } from "../router";

export const signInView: View = (main, _params, query) => {
  const email = h("input", {
    id: "email",
    type: "email",
    name: "email",
    autocomplete: "username",
    required: true,
    "data-testid": "signin-email",
  });
  const password = h("input", {
    id: "password",
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    minlength: 8,
    "data-testid": "signin-password",
  });
  const error = h("p", { class: "error", role: "alert", "data-testid": "signin-error" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "signin-submit" }, "Sign in");
  const form = h(
    "form",
    { class: "panel signin", "aria-labelledby": "signin-heading", novalidate: true },
    h("h1", { id: "signin-heading" }, "Sign in"),
    h("label", { for: "email" }, "Email"),
    email,
    h("label", { for: "password" }, "Password"),
    password,
    error,
    submit,
    h("p", { class: "hint" }, "The all-in-one platform (marquee up) prints a demo account when it starts."),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!email.value || !password.value) {
      error.textContent = "Enter your email and password.";
      (email.value ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await signIn(email.value, password.value);
      const next = query.get("next");
      navigate(next && next.startsWith("/") ? `/profiles?next=${encodeURIComponent(next)}` : "/profiles");
    } catch (err) {
      error.textContent = describeError(err);
      password.select();
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
  main.append(form);
  email.focus();
};
