"""Encrypted-at-rest text field for gateway tokens (Fernet, from `cryptography`).

The key comes from GATEWAY_TOKEN_ENCRYPTION_KEY when set (a urlsafe base64 Fernet key), or is
derived from SECRET_KEY otherwise, so a first run needs nothing. Rotating SECRET_KEY without
setting GATEWAY_TOKEN_ENCRYPTION_KEY makes stored tokens unreadable: rotate gateway tokens too.
"""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models


@lru_cache(maxsize=4)
def _fernet(key: str, secret_key: str) -> Fernet:
    if key:
        return Fernet(key.encode())
    digest = hashlib.sha256(b"clawdirector-gateway-token:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def fernet() -> Fernet:
    return _fernet(settings.GATEWAY_TOKEN_ENCRYPTION_KEY, settings.SECRET_KEY)


class EncryptedTextField(models.TextField):
    """Stores Fernet ciphertext; Python code only ever sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return fernet().decrypt(value.encode()).decode()
        except InvalidToken:
            # Wrong key: never crash a page over it; the token must be rotated.
            return ""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return fernet().encrypt(value.encode()).decode()
