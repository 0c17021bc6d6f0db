"""Passkeys as a second factor: added on the security page, used at the second step, removed, reset; every
answer is a real one (a software authenticator) checked by py_webauthn."""

import html
import json
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from environments.models import AuditEvent
from environments.tests.factories import PASSWORD, make_user
from people.factors import reset_factors
from people.models import Passkey, RecoveryCode
from people.passkeys import relying_party
from portal.actor import SYSTEM_ACTOR

from .factories import SoftwarePasskey

pytestmark = pytest.mark.django_db

PORTAL = "https://portal.example.org"


@pytest.fixture(autouse=True)
def portal_address(settings):
    settings.PORTAL_URL = PORTAL  # the relying party: ID portal.example.org, origin https://portal.example.org


def shown(response) -> str:
    """The page as a person reads it (entities unescaped)."""
    return html.unescape(response.content.decode())


def sign_in(client, username: str = "ana") -> None:
    client.post(reverse("login"), {"username": username, "password": PASSWORD})


def add_passkey(client, authenticator: SoftwarePasskey, name: str = "Work laptop"):
    options = client.post(reverse("passkey_registration_options"), {"name": name})
    assert options.status_code == 200, options.content
    answer = authenticator.create(options.content.decode())
    return client.post(reverse("add_passkey"), {"name": name, "credential": answer})


def sign_in_options(client) -> str:
    options = client.post(reverse("passkey_sign_in_options"))
    assert options.status_code == 200, options.content
    return options.content.decode()


def answer_second_step(client, answer: str):
    return client.post(reverse("verify_second_factor"), {"action": "passkey", "credential": answer}, follow=True)


def test_a_passkey_added_on_the_security_page_signs_in_as_the_second_factor(client_class):
    make_user("ana")
    laptop = SoftwarePasskey()
    first = client_class()
    sign_in(first)
    added = add_passkey(first, laptop)
    page = shown(added)
    assert 'Passkey "Work laptop" added' in page and "Save these recovery codes now" in page
    assert RecoveryCode.objects.count() == 10, "a first factor comes with recovery codes"
    passkey = Passkey.objects.get()
    assert (passkey.name, passkey.sign_count, passkey.last_used_at) == ("Work laptop", 0, None)
    listed = shown(first.get(reverse("security")))
    assert "<td>Work laptop</td>" in listed and "<td>never</td>" in listed

    second = client_class()
    sign_in(second)
    assert second.get(reverse("home")).url.startswith(reverse("verify_second_factor"))
    assert "Use a passkey" in shown(second.get(reverse("verify_second_factor")))
    answer_second_step(second, laptop.get(sign_in_options(second)))
    assert second.get(reverse("home")).status_code == 200
    passkey.refresh_from_db()
    assert passkey.sign_count == 1 and passkey.last_used_at is not None
    trail = {(e.action, json.dumps(e.details, sort_keys=True)) for e in AuditEvent.objects.filter(actor_label="ana")}
    assert ("user.mfa_enrolled", '{"factor": "passkey", "passkey": "Work laptop"}') in trail
    assert ("sign_in.second_factor", '{"factor": "passkey", "passkey": "Work laptop"}') in trail


def test_a_challenge_answers_one_attempt_and_expires(client_class):
    make_user("ana")
    laptop = SoftwarePasskey()
    owner = client_class()
    sign_in(owner)
    add_passkey(owner, laptop)
    first, second = client_class(), client_class()
    sign_in(first)
    sign_in(second)
    first_answer = laptop.get(sign_in_options(first))
    second_answer = laptop.get(sign_in_options(second))

    # An answer to another session's challenge is refused, and that refusal used up this session's challenge.
    refused = shown(answer_second_step(second, first_answer))
    assert "It answers another request than this page's" in refused
    assert "each is used once" in shown(answer_second_step(second, second_answer))

    session = first.session
    session["passkey_authentication"]["expires"] = time.time() - 1
    session.save()
    expired = shown(answer_second_step(first, first_answer))
    assert "The passkey request expired (it lasts 5 minutes)" in expired
    assert first.get(reverse("home")).status_code == 302 and second.get(reverse("home")).status_code == 302
    assert AuditEvent.objects.get(action="sign_in.passkey_failed").details["in_window_so_far"] == 1


def test_a_copied_passkey_whose_counter_goes_back_is_refused(client_class):
    make_user("ana")
    laptop = SoftwarePasskey()
    owner = client_class()
    sign_in(owner)
    add_passkey(owner, laptop)
    original = client_class()
    sign_in(original)
    answer_second_step(original, laptop.get(sign_in_options(original)))
    assert original.get(reverse("home")).status_code == 200
    laptop.sign_count = 0  # a copy made before that use: its counter starts where the original's was
    copy = client_class()
    sign_in(copy)
    page = shown(answer_second_step(copy, laptop.get(sign_in_options(copy))))
    assert "Its use counter went backwards, as a copied passkey's would." in page
    assert copy.get(reverse("home")).status_code == 302
    assert Passkey.objects.get().sign_count == 1


def test_a_malformed_or_foreign_answer_is_refused_with_the_reason_and_nothing_typed_is_lost(client, client_class):
    make_user("ana")
    sign_in(client)
    client.post(reverse("passkey_registration_options"), {"name": "Work laptop"})
    garbled = client.post(reverse("add_passkey"), {"name": "Work laptop", "credential": "{not json"})
    page = shown(garbled)
    assert garbled.status_code == 400
    assert "Nothing was added: The browser's passkey answer could not be read (Unable to decode" in page
    assert 'value="Work laptop"' in page
    lookalike = SoftwarePasskey(origin="https://portal.example.org.evil.test")
    page = shown(add_passkey(client, lookalike))
    assert f"It was made on another address than {PORTAL}: open the portal there" in page
    client.post(reverse("passkey_registration_options"), {"name": "Work laptop"})
    assert "No passkey answer arrived" in shown(client.post(reverse("add_passkey"), {"name": "x"}))
    assert not Passkey.objects.exists()
    assert AuditEvent.objects.filter(action="user.passkey_registration_failed").count() == 1, "summarised"

    add_passkey(client, SoftwarePasskey())
    stranger = SoftwarePasskey()  # a passkey never added here answers the second step
    other = client_class()
    sign_in(other)
    page = shown(answer_second_step(other, stranger.get(sign_in_options(other))))
    assert "That passkey is not one of yours here" in page


def test_the_options_addresses_answer_json_errors(client):
    make_user("ana")
    assert client.post(reverse("passkey_registration_options"), {"name": "x"}).json() == {
        "error": {"code": "not_signed_in", "message": "Your session ended: sign in again.", "details": None}
    }
    sign_in(client)
    assert client.get(reverse("passkey_sign_in_options")).status_code == 405
    unnamed = client.post(reverse("passkey_registration_options"), {"name": "  "})
    assert unnamed.status_code == 400 and unnamed.json()["error"]["message"].startswith("Name the passkey")
    none_yet = client.post(reverse("passkey_sign_in_options"))
    assert none_yet.status_code == 400
    assert none_yet.json()["error"]["message"].startswith("You have no passkey here")


def test_registration_excludes_passkeys_added_and_refuses_one_added_twice(client):
    make_user("ana")
    laptop = SoftwarePasskey()
    sign_in(client)
    add_passkey(client, laptop)
    taken = client.post(reverse("passkey_registration_options"), {"name": "work LAPTOP"})
    assert taken.json()["error"]["message"] == 'You have a passkey called "work LAPTOP" already: choose another name.'
    options = client.post(reverse("passkey_registration_options"), {"name": "Key"}).json()
    assert [c["id"] for c in options["excludeCredentials"]] == [Passkey.objects.get().credential_id]
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    again = add_passkey(client, laptop, name="Key")
    assert "That passkey is registered here already" in shown(again)
    assert Passkey.objects.count() == 1


def test_removing_passkeys_and_the_last_takes_the_recovery_codes_with_it(client):
    make_user("ana")
    sign_in(client)
    add_passkey(client, SoftwarePasskey(), "Laptop")  # this session is verified by the laptop's passkey
    add_passkey(client, SoftwarePasskey(), "Key")
    laptop, key = Passkey.objects.order_by("pk")
    carls = Passkey.objects.create(user=make_user("carl"), name="Carl's", credential_id="x", public_key=b"")
    assert "not among yours" in shown(client.post(reverse("remove_passkey", args=[carls.pk]), follow=True))
    page = shown(client.post(reverse("remove_passkey", args=[key.pk]), follow=True))
    assert 'Passkey "Key" removed.' in page and "last second factor" not in page
    page = shown(client.post(reverse("remove_passkey", args=[laptop.pk]), follow=True))
    assert "It was your last second factor: your recovery codes no longer work either." in page
    assert not Passkey.objects.filter(user__username="ana").exists() and not RecoveryCode.objects.exists()
    removed = AuditEvent.objects.filter(action="user.mfa_removed").order_by("pk")
    assert [e.details["last_factor"] for e in removed] == [False, True]


def test_mfa_required_takes_a_passkey_as_the_enrolled_factor(client, settings):
    settings.MFA_REQUIRED = "admins"
    make_user("root", admin=True)
    sign_in(client, "root")
    assert client.get(reverse("home")).url == reverse("security")
    add_passkey(client, SoftwarePasskey())
    assert client.get(reverse("home")).status_code == 200, "the passkey proved itself: no second step now"


def test_an_admin_reset_removes_passkeys_too(client):
    ana = make_user("ana")
    sign_in(client)
    add_passkey(client, SoftwarePasskey())
    reset_factors(SYSTEM_ACTOR, ana)
    assert not Passkey.objects.exists()
    assert AuditEvent.objects.get(action="user.mfa_reset").target_label == "ana"


def test_the_relying_party_follows_the_portal_address_and_says_what_is_wrong(settings, capsys):
    settings.PORTAL_URL = "http://127.0.0.1:8000"
    assert (relying_party().id, relying_party().origin, relying_party().problem) == (
        "localhost",
        "http://localhost:8000",
        "",
    )
    settings.WEBAUTHN_RP_ID, settings.WEBAUTHN_ORIGIN = "example.org", "https://portal.example.org"
    assert (relying_party().id, relying_party().problem) == ("example.org", "")
    settings.WEBAUTHN_ORIGIN = "https://example.org.evil.test"
    assert "is not on WEBAUTHN_RP_ID (example.org)" in relying_party().problem
    settings.WEBAUTHN_RP_ID, settings.WEBAUTHN_ORIGIN = "", ""
    settings.PORTAL_URL = "https://10.0.0.5"
    assert relying_party().problem.startswith("Passkeys need the portal at a domain name, not the address 10.0.0.5")
    call_command("check", "--tag", "security")
    assert "integration_tools.W102" in capsys.readouterr().err


def test_a_wrong_code_from_someone_with_only_a_passkey_points_at_what_they_have(client_class):
    make_user("ana")
    first = client_class()
    sign_in(first)
    add_passkey(first, SoftwarePasskey())
    second = client_class()
    sign_in(second)
    answer = second.post(reverse("verify_second_factor"), {"code": "000000"})
    page = shown(second.get(answer["Location"]))
    assert "That code did not work." in page and "enter one of your recovery codes, or use a passkey." in page
    assert "your app" not in page
