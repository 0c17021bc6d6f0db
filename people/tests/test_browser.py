"""People and sign-in in a real headless Chromium: an Admin's browser at 1440 px, the invited person's at 390 px."""

import re

import pytest
import requests

from environments.models import AuditEvent, Grant
from environments.tests.factories import PASSWORD, grant, make_environment, make_user
from webhooks.tests.factories import make_delivery, make_webhook

from .factories import authenticator, code_at_step, enrol

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "lantern-orbit-velvet-93"


@pytest.fixture
def browser_page(chromium, live_server):
    """Opens a page of its own browser context (one person's browser) at a width; all closed at teardown."""
    contexts = []

    def open_page(width: int, **context_options):
        viewport = {"width": width, "height": 900}
        context = chromium.new_context(base_url=live_server.url, viewport=viewport, **context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def second_step(page, code: str) -> None:
    page.wait_for_url("**/login/verify/**")
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continue").click()


def found(pattern: str, text: str, group: int = 0) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern} not in {text[:500]}"
    return match.group(group)


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_invite_accept_enrol_sign_in_with_each_factor_and_an_admin_resets_them(
    browser_page, live_server, settings, mailoutbox
):
    settings.MFA_REQUIRED = "everyone"
    make_environment("clinic")
    admin_phone, _ = enrol(make_user("root", admin=True))
    admin = browser_page(1440)
    sign_in(admin, "root")
    second_step(admin, code_at_step(admin_phone, 0))

    link = _the_admin_invites_dana_as_a_viewer(admin, mailoutbox)
    dana = browser_page(390)
    _dana_chooses_a_password_through_the_link(dana, link)
    phone, codes = _her_first_sign_in_leads_to_enrolment(dana)
    _she_signs_in_with_the_app_then_with_a_recovery_code_once(dana, live_server, phone, codes)
    _the_admin_resets_her_factors_and_she_must_enrol_again(admin, dana)

    trail = set(AuditEvent.objects.values_list("action", "actor_label"))
    assert {
        ("user.invited", "root"),
        ("user.created", "dana"),
        ("user.role_granted", "root"),
        ("user.invitation_accepted", "dana"),
        ("user.mfa_enrolled", "dana"),
        ("sign_in.succeeded", "dana"),
        ("sign_in.second_factor", "dana"),
        ("user.mfa_reset", "root"),
    } <= trail


def _the_admin_invites_dana_as_a_viewer(admin, mailoutbox) -> str:
    """The Admin invites Dana as a Viewer of Clinic; the e-mail's one-time link."""
    admin.get_by_role("link", name="People").click()
    invite = admin.get_by_role("region", name="Invite someone")
    invite.get_by_label("E-mail").fill("dana@example.org")
    invite.get_by_label("Username").fill("dana")
    invite.get_by_label("Role").select_option(label="Viewer")
    invite.get_by_label("Environment").select_option(label="Clinic")
    invite.get_by_role("button", name="Send invitation").click()
    admin.get_by_text("Invitation sent to dana@example.org").wait_for()
    return found(r"http://\S+/invitations/\S+/", mailoutbox[-1].body)


def _dana_chooses_a_password_through_the_link(dana, link: str) -> None:
    # On a phone-sized screen; Django's validators speak first.
    dana.goto(link)
    dana.get_by_label("Password", exact=True).fill("12345678")
    dana.get_by_label("The same password again").fill("12345678")
    dana.get_by_role("button", name="Set password").click()
    dana.get_by_text("This password is too common.").wait_for()
    dana.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    dana.get_by_label("The same password again").fill(NEW_PASSWORD)
    dana.get_by_role("button", name="Set password").click()
    dana.get_by_text("Welcome, dana").wait_for()


def _her_first_sign_in_leads_to_enrolment(dana):
    """MFA_REQUIRED=everyone: enrolment before anything else. Her authenticator app and recovery codes."""
    sign_in(dana, "dana", NEW_PASSWORD)
    dana.wait_for_url("**/account/security/")
    dana.get_by_text("Set up an authenticator app to go on").wait_for()
    assert dana.locator(".qr svg").count() == 1 and fits(dana, 390)
    phone = authenticator(dana.locator("#setup-key").inner_text())
    dana.get_by_label("The 6-digit code the app shows").fill(code_at_step(phone, -1))
    dana.get_by_role("button", name="Turn on").click()
    codes = dana.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and fits(dana, 390)
    dana.goto("/account/security/")
    assert dana.locator("#recovery-codes").count() == 0, "recovery codes are shown once"
    dana.get_by_role("button", name="Log out").click()
    return phone, codes


def _she_signs_in_with_the_app_then_with_a_recovery_code_once(dana, live_server, phone, codes) -> None:
    sign_in(dana, "dana", NEW_PASSWORD)
    second_step(dana, code_at_step(phone, 0))
    dana.wait_for_url(f"{live_server.url}/**")
    assert "/login/" not in dana.url
    dana.get_by_role("button", name="Log out").click()
    sign_in(dana, "dana", NEW_PASSWORD)
    second_step(dana, codes[0])
    dana.get_by_text("You signed in with a recovery code; 9 left.").wait_for()


def _the_admin_resets_her_factors_and_she_must_enrol_again(admin, dana) -> None:
    # Dana lost her phone: the reset also signs her out.
    admin.goto("/people/")
    row = admin.get_by_role("row").filter(has_text="dana")
    assert "Viewer in Clinic" in row.inner_text() and "On" in row.inner_text()
    row.get_by_role("link", name="dana").click()
    admin.get_by_role("button", name="Reset second factor").click()
    admin.get_by_text("dana's second factor is reset").wait_for()
    admin.set_viewport_size({"width": 390, "height": 900})
    assert fits(admin, 390), "the person page at 390 px"
    admin.goto("/people/")
    assert fits(admin, 390), "the People page at 390 px"
    dana.goto("/account/")
    dana.wait_for_url("**/login/**")
    sign_in(dana, "dana", NEW_PASSWORD)
    dana.wait_for_url("**/account/security/")
    dana.get_by_text("Set up an authenticator app to go on").wait_for()


def test_password_reset_by_email_and_a_deactivated_persons_session_refused(browser_page, mailoutbox):
    make_user("root", admin=True)
    make_user("eve")
    eve = browser_page(390)
    eve.goto("/login/")
    eve.get_by_role("link", name="Forgot your password?").click()
    eve.get_by_label("Email").fill("eve@example.org")
    eve.get_by_role("button", name="Send the link").click()
    eve.get_by_text("Check your e-mail").wait_for()
    link = found(r"http://\S+/password-reset/\S+/", mailoutbox[-1].body)
    eve.goto(link)
    eve.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    eve.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    eve.get_by_role("button", name="Set password").click()
    eve.get_by_text("Your password is changed. Sign in with it.").wait_for()
    assert fits(eve, 390)
    sign_in(eve, "eve", NEW_PASSWORD)
    eve.get_by_role("link", name="eve").wait_for()

    admin = browser_page(1440)
    sign_in(admin, "root")
    admin.goto("/people/")
    admin.get_by_role("link", name="eve").click()
    admin.get_by_role("button", name="Deactivate").click()
    admin.get_by_text("eve is deactivated and signed out everywhere.").wait_for()
    eve.goto("/account/security/")
    eve.wait_for_url("**/login/**")
    assert AuditEvent.objects.filter(action="user.password_reset", actor_label="eve").exists()
    assert AuditEvent.objects.get(action="user.deactivated").target_label == "eve"


def test_fifty_wrong_passwords_from_one_address_do_not_stop_the_real_person_from_another(
    browser_page, live_server, settings
):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]  # the test plays the reverse proxy: it names each client's address
    make_user("ana")
    attacker = requests.Session()
    statuses = []
    for _ in range(50):
        form = attacker.get(f"{live_server.url}/login/", headers={"X-Forwarded-For": "203.0.113.9"}).text
        token = found(r'name="csrfmiddlewaretoken" value="([^"]+)"', form, group=1)
        answer = attacker.post(
            f"{live_server.url}/login/",
            data={"csrfmiddlewaretoken": token, "username": "ana", "password": "guess"},
            headers={"X-Forwarded-For": "203.0.113.9", "Referer": f"{live_server.url}/login/"},
        )
        statuses.append(answer.status_code)
    assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}

    ana = browser_page(1440, extra_http_headers={"X-Forwarded-For": "198.51.100.7"})
    sign_in(ana, "ana")
    ana.get_by_role("link", name="ana").click()
    ana.get_by_role("link", name="Your security: password, second factor, sessions and sign-ins").click()
    rows = ana.get_by_role("table").last.inner_text()
    assert "198.51.100.7" in rows and "203.0.113.9" in rows and "Wrong password" in rows
    assert AuditEvent.objects.filter(ip="203.0.113.9").count() <= 3


def virtual_authenticator(page):
    """Chromium's virtual authenticator on this page (DevTools' WebAuthn domain): a platform passkey that
    verifies its user, as a phone's screen lock would. Returns the DevTools session and its id."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
    }
    added = devtools.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    return devtools, added["authenticatorId"]


def add_passkey_by_keyboard(page, name: str) -> None:
    page.goto("/account/security/")
    passkeys = page.get_by_role("region", name="Passkeys")
    passkeys.get_by_label("Name for a new passkey").fill(name)
    passkeys.get_by_label("Name for a new passkey").press("Enter")
    page.get_by_text(f'Passkey "{name}" added').wait_for()


def use_passkey_by_keyboard(page) -> None:
    page.wait_for_url("**/login/verify/**")
    page.get_by_role("button", name="Use a passkey").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login/" not in url)


def test_a_passkey_added_in_chromium_signs_in_as_the_second_factor(browser_page, live_server, settings):
    settings.PORTAL_URL = live_server.url  # http://localhost:<port>: the relying party ID is "localhost"
    make_user("ana")
    ana = browser_page(390)
    devtools, authenticator = virtual_authenticator(ana)
    sign_in(ana, "ana")
    add_passkey_by_keyboard(ana, "Phone")
    assert ana.locator("#recovery-codes code").count() == 10 and fits(ana, 390)
    held = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert [c["rpId"] for c in held] == ["localhost"]

    ana.get_by_role("button", name="Log out").click()
    ana.set_viewport_size({"width": 1440, "height": 900})
    sign_in(ana, "ana")
    use_passkey_by_keyboard(ana)
    ana.goto("/account/security/")
    row = ana.get_by_role("region", name="Passkeys").get_by_role("row").filter(has_text="Phone")
    assert "never" not in row.inner_text() and fits(ana, 1440)
    ana.set_viewport_size({"width": 390, "height": 900})
    assert fits(ana, 390), "the passkeys table at 390 px"

    trail = {(e.action, e.details.get("factor")) for e in AuditEvent.objects.filter(actor_label="ana")}
    assert {("user.mfa_enrolled", "passkey"), ("sign_in.second_factor", "passkey")} <= trail


def test_a_viewers_look_at_a_payload_is_in_the_admins_audit_log(browser_page, settings):
    settings.WEBHOOK_ALLOW_HTTP, settings.WEBHOOK_ALLOWED_NETWORKS = True, ["127.0.0.1/32"]
    environment = make_environment("clinic")
    webhook = make_webhook(environment, "http://127.0.0.1:9100/hook")
    delivery = make_delivery(webhook, body='{"type": "patients.created", "data": {"name": "Jo Bloggs"}}')
    grant(make_user("val"), environment, Grant.Role.VIEWER)
    make_user("root", admin=True)

    val = browser_page(390)
    sign_in(val, "val")
    val.goto(f"/e/clinic/deliveries/{delivery.pk}/")
    val.get_by_text("Jo Bloggs").first.wait_for()
    assert fits(val, 390)

    root = browser_page(1440)
    sign_in(root, "root")
    root.goto("/audit/")
    root.get_by_label("Action").fill("patient_data")
    root.get_by_label("Action").press("Enter")
    root.wait_for_url("**/audit/?*action=patient_data*")
    row = root.get_by_role("row").filter(has_text="patient_data.viewed")
    assert row.count() == 1 and "val" in row.inner_text() and delivery.message_id in row.inner_text()
    root.set_viewport_size({"width": 390, "height": 900})
    assert fits(root, 390), "the audit log at 390 px"


def test_where_passkeys_cannot_work_the_page_says_why_and_offers_no_button(browser_page, settings):
    make_user("ana")
    settings.PORTAL_URL = "https://portal.example.org"  # not where this browser opened the portal
    elsewhere = browser_page(390)
    sign_in(elsewhere, "ana")
    elsewhere.goto("/account/security/")
    elsewhere.get_by_text("Passkeys work at the portal's own address, https://portal.example.org").wait_for()
    assert_present_but_hidden(elsewhere.locator("button", has_text="Add a passkey"))

    without_webauthn = browser_page(1440)
    without_webauthn.add_init_script("delete window.PublicKeyCredential")
    sign_in(without_webauthn, "ana")
    without_webauthn.goto("/account/security/")
    without_webauthn.get_by_text("Adding a passkey needs a browser that supports passkeys (WebAuthn)").wait_for()
    assert_present_but_hidden(without_webauthn.locator("button", has_text="Add a passkey"))


def assert_present_but_hidden(locator) -> None:
    # A role query skips hidden elements, so it could not tell a hidden button from a missing one.
    assert locator.count() == 1 and locator.is_hidden()
