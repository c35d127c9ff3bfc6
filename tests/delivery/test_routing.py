"""Recipient routing: local users, aliases, catch-alls, subaddressing, loops, relay forms (SMTP-16)."""

from __future__ import annotations

import asyncio

import pytest

from merpati.delivery import results
from merpati.delivery.routing import Router
from merpati.storage.api import TemporaryStoreError
from merpati.storage.models import Account, Alias


class FakeDirectory:
    """Just the lookups routing needs."""

    def __init__(self, *, domains, accounts, aliases, broken: bool = False) -> None:
        self.domains = set(domains)
        self.accounts = {a.lower(): Account(i + 1, a, "") for i, a in enumerate(accounts)}
        self.aliases = {k.lower(): Alias(k, tuple(v)) for k, v in aliases.items()}
        self.broken = broken

    async def has_domain(self, name: str) -> bool:
        if self.broken:
            raise TemporaryStoreError("db down")
        return name.lower() in self.domains

    async def get_account(self, address: str):
        return self.accounts.get(address.lower())

    async def get_alias(self, source: str):
        return self.aliases.get(source.lower())


def route(directory: FakeDirectory, address: str, delimiter: str = "+"):
    return asyncio.run(Router(directory, delimiter=delimiter).route(address))  # type: ignore[arg-type]


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory(
        domains={"ours.test", "catch.test"},
        accounts=["alice@ours.test", "Bob@ours.test", "carol@catch.test"],
        aliases={
            "team@ours.test": ["alice@ours.test", "bob@ours.test", "alice@ours.test"],
            "@catch.test": ["carol@catch.test"],
            "loop1@ours.test": ["loop2@ours.test"],
            "loop2@ours.test": ["loop1@ours.test"],
            "fwd@ours.test": ["someone@remote.test"],
        },
    )


def names(r) -> list[str]:
    return [x.mailbox_address for x in r.recipients]


def test_user_is_found_case_insensitively(directory):
    assert names(route(directory, "ALICE@Ours.Test")) == ["alice@ours.test"]
    assert names(route(directory, "bob@ours.test")) == ["Bob@ours.test"]


def test_unknown_local_user_is_550_511(directory):
    r = route(directory, "nobody@ours.test")
    assert (r.verdict.code, r.verdict.enhanced) == (550, "5.1.1")


def test_alias_fans_out_once_per_mailbox(directory):
    assert names(route(directory, "team@ours.test")) == ["alice@ours.test", "Bob@ours.test"]


def test_catch_all(directory):
    assert names(route(directory, "anything@catch.test")) == ["carol@catch.test"]


def test_subaddress_delivers_to_base_user(directory):
    r = route(directory, "alice+lists@ours.test")
    assert names(r) == ["alice@ours.test"]
    assert r.recipients[0].rcpt == "alice+lists@ours.test"


def test_subaddressing_can_be_disabled(directory):
    assert route(directory, "alice+lists@ours.test", delimiter="").verdict.code == 550


def test_alias_loop_is_554_546(directory):
    r = route(directory, "loop1@ours.test")
    assert (r.verdict.code, r.verdict.enhanced) == (554, "5.4.6")


def test_remote_alias_target_is_a_temporary_failure_until_the_queue_exists(directory):
    assert route(directory, "fwd@ours.test").verdict.code == 451


@pytest.mark.parametrize(
    "address",
    [
        "nobody@third-party.test",
        "nobody%third-party.test@ours.test",
        '"nobody@third-party.test"@ours.test',
        '"nobody%third-party.test"@ours.test',
        "third-party.test!nobody@ours.test",
        "nobody@third-party.test@ours.test",
    ],
)
def test_open_relay_forms_are_denied(directory, address):
    r = route(directory, address)
    assert (r.verdict.code, r.verdict.enhanced) == (554, "5.7.1")
    assert not r.recipients


def test_lookup_failure_is_temporary_never_user_unknown():
    broken = FakeDirectory(domains=set(), accounts=[], aliases={}, broken=True)
    r = route(broken, "alice@ours.test")
    assert r.verdict == results.LOOKUP_FAILED
