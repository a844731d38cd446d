"""Leaving the kids profile in the web player takes the account's password (issue 15, finding 5): the profile
picker asks for it, a wrong one keeps the kids profile, the right one switches; going back to the kids profile
needs nothing."""

from __future__ import annotations

from tests.e2e.browser import Browser
from tests.e2e.harness import Platform
from tests.e2e.viewer import sign_in


def test_switching_away_from_the_kids_profile_asks_for_the_password(page: Browser, platform: Platform) -> None:
    sign_in(page, platform, "Kids")
    assert page.text("[data-testid=nav-profile]") == "Kids"
    page.click("[data-testid=nav-profile]")
    page.click("[data-testid=profile-button]:has-text('Alex')")
    page.wait_for("[data-testid=profile-password]")
    # a wrong password: refused, still the kids profile
    page.fill("[data-testid=profile-password]", "not the password")
    page.click("[data-testid=profile-password-submit]")
    page.wait_for("[data-testid=profiles-error]:has-text('password is incorrect')")
    assert page.text("[data-testid=nav-profile]") == "Kids"
    # the account's password: switched
    _, password = platform.demo_sign_in()
    page.fill("[data-testid=profile-password]", password)
    page.click("[data-testid=profile-password-submit]")
    page.wait_for("[data-testid=home]")
    assert page.text("[data-testid=nav-profile]") == "Alex"
    # an adult profile goes to the kids profile without a password
    page.click("[data-testid=nav-profile]")
    page.click("[data-testid=profile-button]:has-text('Kids')")
    page.wait_for("[data-testid=home]")
    assert page.text("[data-testid=nav-profile]") == "Kids"
    assert page.count("[data-testid=profile-password]") == 0
    errors = [line for line in page.console() if line.startswith(("error", "pageerror"))]
    assert not errors, errors
