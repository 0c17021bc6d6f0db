import pytest
from django.test import Client


@pytest.fixture
def client_class():
    """A fresh browser per call (Django's test client), for tests about one person's several sessions."""
    return Client


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    """Django's fast test hasher: these tests are about what happens around a password check, and each
    sign-in would otherwise spend a second of the CI budget in PBKDF2."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
