"""Password hashing: argon2id, the length rules, and rehash detection."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from reactor_jobs.auth.errors import InvalidAuthField
from reactor_jobs.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    verify_dummy,
    verify_password,
)


def test_hash_then_verify() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "correct horsE")
    assert not needs_rehash(hashed)


def test_same_password_hashes_differently() -> None:
    assert hash_password("correct horse") != hash_password("correct horse")


@pytest.mark.parametrize("password", ["", "short", "7chars!", "x" * (MAX_PASSWORD_LENGTH + 1)])
def test_rules_name_the_password_field(password: str) -> None:
    with pytest.raises(InvalidAuthField) as caught:
        hash_password(password)
    assert caught.value.field == "password"
    assert caught.value.code == "invalid_field"
    assert caught.value.message.startswith("password: must be")


def test_eight_characters_is_enough() -> None:
    assert verify_password(hash_password("8 chars!"), "8 chars!")


def test_a_garbage_hash_verifies_nothing() -> None:
    assert not verify_password("not-a-hash", "whatever1")
    verify_dummy("whatever1")  # never raises, whatever the input


def test_weaker_parameters_need_a_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse")
    assert verify_password(weak, "correct horse")
    assert needs_rehash(weak)
