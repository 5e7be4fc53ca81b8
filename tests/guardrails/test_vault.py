"""Vault: reversible pseudonymisation for one conversation, incremental restoration for streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.vault import Vault


def _vault() -> Vault:
    v = Vault()
    assert v.pseudonym("PERSON", "Ada Lovelace") == "<PERSON_1>"
    assert v.pseudonym("EMAIL_ADDRESS", "ada@example.org") == "<EMAIL_ADDRESS_1>"
    assert v.pseudonym("PERSON", "Alan Turing") == "<PERSON_2>"
    return v


def test_same_value_same_placeholder_case_and_space_insensitive():
    v = _vault()
    assert v.pseudonym("PERSON", "ada  lovelace") == "<PERSON_1>"
    assert v.pseudonym("PERSON", " ADA LOVELACE ") == "<PERSON_1>"
    assert v.pseudonym("LOCATION", "Ada Lovelace") == "<LOCATION_1>"  # categories are separate
    assert len(v) == 4


def test_restore_exact_and_tolerant():
    v = _vault()
    assert v.restore("Hi <PERSON_1>, mail <EMAIL_ADDRESS_1>.") == "Hi Ada Lovelace, mail ada@example.org."
    assert v.restore("<person_1> and < PERSON_2 > and <Person _ 1>") == "Ada Lovelace and Alan Turing and Ada Lovelace"
    assert v.restore("<PERSON_9> stays, <NOPE_1> stays") == "<PERSON_9> stays, <NOPE_1> stays"


def test_restore_respects_allowed_categories():
    v = _vault()
    out = v.restore("<PERSON_1> <EMAIL_ADDRESS_1>", allowed=lambda cat: cat == "PERSON")
    assert out == "Ada Lovelace <EMAIL_ADDRESS_1>"


def test_repr_never_shows_values():
    v = _vault()
    assert "Ada" not in repr(v) and "ada@" not in repr(v)


TEXT = "Dear <PERSON_1>, <PERSON_2> wrote to <EMAIL_ADDRESS_1> about < person_1 >. 3 < 4 and x<y>z."
RESTORED = "Dear Ada Lovelace, Alan Turing wrote to ada@example.org about Ada Lovelace. 3 < 4 and x<y>z."


@pytest.mark.parametrize("split", range(len(TEXT) + 1))
def test_chunked_restoration_at_every_split_point(split):
    v = _vault()
    r = v.restorer()
    out = r.feed(TEXT[:split]) + r.feed(TEXT[split:]) + r.flush()
    assert out == RESTORED


def test_chunked_restoration_one_character_at_a_time():
    v = _vault()
    r = v.restorer()
    out = "".join(r.feed(ch) for ch in TEXT) + r.flush()
    assert out == RESTORED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=8))
def test_chunked_restoration_any_chunking(cuts):
    v = _vault()
    r = v.restorer()
    points = sorted(set(cuts))
    pieces = [TEXT[a:b] for a, b in zip([0, *points], [*points, len(TEXT)])]
    assert "".join(r.feed(p) for p in pieces) + r.flush() == RESTORED


def test_restorer_never_emits_half_a_placeholder():
    v = _vault()
    r = v.restorer()
    assert r.feed("Hello <PER") == "Hello "
    assert r.feed("SON_") == ""
    assert r.feed("1>!") == "Ada Lovelace!"


def test_restorer_with_denied_category_emits_placeholder():
    v = _vault()
    r = v.restorer(allowed=lambda cat: cat != "EMAIL_ADDRESS")
    out = r.feed("to <EMAIL_AD") + r.feed("DRESS_1> from <PERSON_1>") + r.flush()
    assert out == "to <EMAIL_ADDRESS_1> from Ada Lovelace"


def test_vaults_are_independent():
    a, b = Vault(), Vault()
    a.pseudonym("PERSON", "Ada")
    assert b.restore("<PERSON_1>") == "<PERSON_1>"
