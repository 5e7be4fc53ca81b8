"""Address and place recognisers (detectors/pii/address.py) and span fixes (detectors/pii/spans.py):
realistic formats, and near misses that must not match. Pure functions, no model."""

from __future__ import annotations

import pytest

from detectors.pii.address import find_addresses, find_places
from detectors.pii.spans import join_date_times, tidy_persons
from guardrails.types import Finding


def _addresses(text: str) -> list[str]:
    return [text[s:e] for s, e, _ in find_addresses(text)]


def _places(text: str) -> list[str]:
    return [text[s:e] for s, e, _ in find_places(text)]


@pytest.mark.parametrize(("text", "address"), [
    ("Ship it to 1668 Glyn St, Suite 12 please.", "1668 Glyn St, Suite 12"),
    ("Our office: 350 Fifth Avenue, New York, NY 10118-0110.", "350 Fifth Avenue, New York, NY 10118-0110"),
    ("We moved to 221B Baker Street, London NW1 6XE last year.", "221B Baker Street, London NW1 6XE"),
    ("Mail: 24 Sussex Drive\nOttawa, ON K1M 1M4\nCanada", "24 Sussex Drive\nOttawa, ON K1M 1M4\nCanada"),
    ("Adresse: 12 Rue de Rivoli, Paris", "12 Rue de Rivoli, Paris"),
    ("Send the parcel to Puruntie 82 Apt. 595\nLAPPEENRANTA\n53650", "Puruntie 82 Apt. 595\nLAPPEENRANTA\n53650"),
    ("Er wohnt in der Brucker Bundesstrasse 31, Wien.", "Brucker Bundesstrasse 31, Wien"),
    ("Office: Erzsébet tér 19.\nBudapest\nHungary 1051", "Erzsébet tér 19.\nBudapest\nHungary 1051"),
    ("The bus station is on Villacher Strasse 89", "Villacher Strasse 89"),
    ("Billing: Rua do Arenque 1634, Goiânia", "Rua do Arenque 1634, Goiânia"),
    ("Please use ul. Słowicza 10 Apt. 360\nWrocław\n53-320", "ul. Słowicza 10 Apt. 360\nWrocław\n53-320"),
    ("Tosh lives at 172 Maneeži 75, Saareküla", "172 Maneeži 75, Saareküla"),
    ("> 69 Gordon Terrace\n> Suite 828\n> BASHALL TOWN\n> United Kingdom",
     "69 Gordon Terrace\n> Suite 828\n> BASHALL TOWN\n> United Kingdom"),
    ("Write to P.O. Box 242, Nuuk", "P.O. Box 242, Nuuk"),
    ("Ask the driver to stop at the corner of 11 Botley Road and Herceg Gateway.",
     "the corner of 11 Botley Road and Herceg Gateway"),
    ("It is at 17 Kesk 53, Suite 343, Pärnu, Estonia.", "17 Kesk 53, Suite 343, Pärnu, Estonia"),
])
def test_address_blocks(text, address):
    assert _addresses(text) == [address]


@pytest.mark.parametrize("text", [
    "The meeting is on March 3, 2024.",
    "See chapter 12 of the manual, Section 4.",
    "He scored 3 goals in 12 minutes.",
    "Version 2 Street Fighter was released in 1991.",  # no house number before the street name
    "We need 250 units by Friday.",
    "Call me at 555 0134 tomorrow.",
    "The address is in the email.",
    "Our team has 12 members and 3 managers.",
])
def test_no_address_in_near_misses(text):
    assert _addresses(text) == []


def test_address_stops_at_the_sentence():
    text = "I live at 14 Crown Street, Springfield and work in town."
    assert _addresses(text) == ["14 Crown Street, Springfield"]
    text = "Deliver to 9 Elm Road. Thanks, Ana"
    assert _addresses(text) == ["9 Elm Road"]


@pytest.mark.parametrize(("text", "place"), [
    ("Mr. Leiva flew to LEPPEN on Tuesday morning.", "LEPPEN"),
    ("We moved here from Tjæreborg", "Tjæreborg"),
    ("She grew up in Chiclana de la Frontera.", "Chiclana de la Frontera"),
    ("The company is based in NAANTALI.", "NAANTALI"),
    ("They returned to Feliciano by helicopter.", "Feliciano"),
])
def test_places_after_residence_or_travel_verbs(text, place):
    assert _places(text) == [place]


@pytest.mark.parametrize("text", [
    "He moved to the left.",
    "She lives in fear of spiders.",
    "They returned to Monday's plan.",  # a weekday is not a place
    "I flew in yesterday.",
])
def test_no_place_without_a_capitalised_name(text):
    assert _places(text) == []


def _f(cat: str, s: int, e: int) -> Finding:
    return Finding("pii", cat, 0.85, (s, e), {"recognizer": "SpacyRecognizer"})


def _spans(text: str, found: list[Finding]) -> list[tuple[str, str]]:
    return [(f.category, text[f.span[0]:f.span[1]]) for f in found]


@pytest.mark.parametrize(("text", "ner", "name"), [
    ("Have you heard Bryan Maclean's songs?", "Bryan Maclean's", "Bryan Maclean"),
    ("Producer Liviana Palerma said no.", "Producer Liviana Palerma", "Liviana Palerma"),
    ("This song by ex-Zombie Kastner is great.", "ex-Zombie Kastner", "Kastner"),
    ("Zizi Kónya\nEnigmaio Ltd", "Zizi Kónya\nEnigmaio", "Zizi Kónya"),
    ("Mrs. Jennifer Alcaraz Suite 541", "Jennifer Alcaraz Suite", "Jennifer Alcaraz"),
    ("Victoria Bruun\nPhone: 555", "Victoria Bruun\nPhone", "Victoria Bruun"),
    ("Dr. Ana M. Dias", "Dr. Ana M.", "Ana M."),
    ("tracy:\"i'm late\"", "tracy:\"i'm", "tracy"),
    ("Ask Anna Berg today.", "Anna Berg", "Anna Berg"),
])
def test_person_boundaries(text, ner, name):
    s = text.index(ner)
    out = tidy_persons(text, [_f("PERSON", s, s + len(ner))])
    assert _spans(text, out) == [("PERSON", name)]


def test_person_left_with_nothing_goes_and_others_stay():
    text = "\nAddress: 1 Main St"
    out = tidy_persons(text, [_f("PERSON", 0, 8), _f("LOCATION", 10, 19)])
    assert _spans(text, out) == [("LOCATION", "1 Main St")]


@pytest.mark.parametrize(("text", "date", "joined"), [
    ("When: 2000-04-16 11:34:35 Where: club", "2000-04-16", "2000-04-16 11:34:35"),
    ("Due 12 May 2020 at 10:30 pm sharp", "12 May 2020", "12 May 2020 at 10:30 pm"),
    ("Logged 2021-01-02T08:15:00Z here", "2021-01-02", "2021-01-02T08:15:00Z"),
])
def test_date_joins_following_time(text, date, joined):
    s = text.index(date)
    t = text.index(joined) + len(date)
    found = [_f("DATE_TIME", s, s + len(date))]
    rest = text[t:].lstrip(" ,atT")
    if rest[:1].isdigit():  # the time found on its own too: it is absorbed
        ts = text.index(rest[:5], t)
        found.append(_f("DATE_TIME", ts, ts + 5))
    assert _spans(text, join_date_times(text, found)) == [("DATE_TIME", joined)]


def test_date_without_time_unchanged():
    text = "Born 2000-04-16, score 11:3"
    out = join_date_times(text, [_f("DATE_TIME", 5, 15)])
    assert _spans(text, out) == [("DATE_TIME", "2000-04-16")]
