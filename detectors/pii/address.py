"""Postal addresses and place mentions for the PII detector (reported as LOCATION).

* ``find_addresses``: a street line (number + name + street type, continental "Name-suffix 12",
  "Rua/Via/ul. Name 12", Hungarian "Name u. 12.", a name + number followed by a unit, a PO box, or a
  name + number right after an address cue such as "lives at"), then the rest of the address block: an
  optional house or building number before the street, units (Apt/Suite/Unit/Flat/#), and the following
  parts separated by commas, line breaks or e-mail quote marks: locality, region code, postcode (numeric,
  UK, Canadian, Dutch, Polish/Portuguese), country. One span per address, so one placeholder stands for
  the whole address.
* ``find_places``: a capitalised or upper-case place name after a verb of residence or travel ("lives
  in", "moved here from", "flew to", "based in", "grew up in"), which the small NER model often misses
  for foreign or upper-case names.

Pure functions over the text (compiled patterns are module constants, never mutated).
"""

from __future__ import annotations

import re

STREET_WORDS = (r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq|"
                r"Squares|Terrace|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Crescent|Close|Gardens|Hill|Row|Walk|Alley|"
                r"Mews|Parade|Trail|Plaza|Streets|Roads|Lanes|Courts|Park|Ridge|Green|Loop|Turnpike|Pike|Route|"
                r"Rte|Expressway|Freeway|Causeway|Grove|View|Heights|Point|Crossing|Crossroad|Union|Pass|Rapids|"
                r"Gateway|Junction|Landing|Meadows?|Motorway|Esplanade|Embankment|Quay|Wharf|Str")
# Attached street-type endings (Scandinavian, German, Dutch, Finnish, Baltic, Slavic, Icelandic).
STREET_ENDINGS = (r"katu|kuja|tie|polku|gade|gyde|vej|vænget|straße|strasse|str\.|weg|gasse|platz|allee|laan|"
                  r"straat|gracht|gatan|vägen|gränd|veien|vegen|gata|gate|utca|ulica|aleja|ulice|náměstí|stræti|"
                  r"straeti|braut|stígur|vegur|tröð|bakki|iela|prospekt|plein|kade|dreef|singel|steeg")
# Separate street-type words that follow the name (Hungarian, Norwegian, Danish, German).
STREET_AFTER = r"u\.|utca|út|útja|tér|krt\.|körút|rkp\.|köz|sor|fasor|gate|gata|vei|veien|terrasse|vej|gade|Strasse|Straße|Weg|Allee|Platz|kapu"
STREET_BEFORE = (r"Rua|Via|Viale|Vicolo|Calle|Avenida|Avda\.|Avenue|Rue|Piazza|Plaza|Carrer|Av\.|Largo|Travessa|Paseo|"
                 r"Corso|Chemin|Boulevard|Bd\.|Allée|Impasse|Place|Quai|ul\.|Ul\.|al\.|Al\.|Λ\.|Λεωφόρος|Οδός|Strada|"
                 r"Str\.|Rambla|Camino|Praça|Estrada")
UNIT = r"(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Room|Rm\.?|Floor|Fl\.?|Bldg\.?|Building)[ \t]*#?[ \t]*\d{1,5}[A-Za-z]?|#[ \t]?\d{1,5}[A-Za-z]?"
PO_BOX = r"(?:P\.?[ \t]?O\.?[ \t]?Box|Post(?:al)?[ \t]Office[ \t]Box|Postbox|PO[ \t]Box)[ \t]+\d{1,6}"
_W = r"[^\W\d_][\w'’.-]*"  # a word starting with a letter (any script)
_CAPW = r"(?:[A-ZÀ-ÞĀ-ŽΑ-ΩА-Я][\w'’-]*\.?)"  # a capitalised word
_PLACE_JOIN = r"(?:de|del|della|da|do|dos|das|di|du|des|la|le|les|el|nad|pod|am|der|den|von|van|upon|sur)"
STREET_LINES = (
    # 1668 Glyn St / 14 Crown Street Kishiev Squares / 159 Eleftheriou Venizelou str
    rf"\d{{1,5}}[A-Za-z]?(?:[ \t]+{_CAPW}){{1,4}}[ \t]+(?:{STREET_WORDS})\b\.?",
    # Puruntie 82 / Præstevænget 15 / Brucker Bundesstrasse 31 / Hafnarstraeti 5
    rf"(?:{_CAPW}[ \t]+)?[A-ZÀ-ÞĀ-Ž][\w'’-]*(?:{STREET_ENDINGS})[ \t]+\d{{1,5}}[A-Za-z]?\b\.?",
    # Erzsébet tér 19. / Trenerys gate 232 / Villacher Strasse 89
    rf"{_CAPW}(?:[ \t]+{_CAPW}){{0,2}}[ \t]+(?:{STREET_AFTER})[ \t]+\d{{1,5}}[A-Za-z]?\b\.?",
    # Rua do Arenque 1634 / Via Franscini 71 / ul. Słowicza 10 / 31 Rue Al Imam Al Bakri
    rf"(?:\d{{1,5}}[ \t]+)?(?:{STREET_BEFORE})[ \t]+(?:[\w'’.-]+[ \t]+){{0,4}}?\d{{1,5}}[A-Za-z]?\b",
    rf"\d{{1,5}}[ \t]+(?:{STREET_BEFORE})(?:[ \t]+(?:{_PLACE_JOIN}[ \t]+){{0,2}}{_CAPW}){{1,5}}",
    # Allika 46 + unit on the same or the next line
    rf"{_CAPW}(?:[ \t]+{_CAPW}){{0,2}}[ \t]+\d{{1,5}}[A-Za-z]?(?=[ \t,]*\n?[ \t>]*(?:{UNIT})\b)",
    PO_BOX,
    r"(?:PSC|Unit|USNS|USS|USNV|USCGC)[ \t]+[\w ]{1,20}?,?[ \t]*Box[ \t]+\d{1,5}(?:\s*(?:APO|FPO|DPO)[ \t]+A[AEP][ \t]+\d{5})?",
)
# "lives at 172 Maneeži 75": a name + number right after an address cue.
ADDRESS_CUE = (r"(?i:\b(?:lives?|living|lived|resides?|located|situated|based|offices? (?:is|are)(?: located)?)[ \t]+"
               r"(?:at|on)|\baddress(?:[ \t]+(?:is|to))?:?|\b(?:is|are)[ \t]+on|\b(?:ship|send|deliver|mail|post)(?:ped|ed)?"
               r"(?:[ \t]+(?:it|this|them|the \w+))?[ \t]+to|\bstop[ \t]+at|\boff[ \t]+at)[ \t]+")
CUED_STREET = rf"(?:\d{{1,6}}[ \t]+)?{_CAPW}(?:[ \t]+[\w'’-]+){{0,3}}?[ \t]+\d{{1,5}}[A-Za-z]?\b\.?"
POSTCODE = (r"(?:[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}"  # UK
            r"|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d"  # Canada
            r"|\d{4}[ \t]?[A-Z]{2}(?![\w])"  # Netherlands
            r"|\d{2,4}-\d{3}"  # Poland, Portugal
            r"|(?:[A-Z]{1,2}-)?\d{3}[ \t]?\d{2}(?!\d)"  # SE/CZ/GR "123 45"
            r"|\d{4,6}(?:-\d{4})?)(?![\w])")  # numeric, US ZIP+4
REGION = r"[A-Z]{2,3}(?![\w])"
PLACE = rf"{_CAPW}(?:[ \t]+(?:{_PLACE_JOIN}[ \t]+){{0,2}}{_CAPW}){{0,3}}(?:[ \t]*\([^\W\d_][^()\n]{{0,30}}\))?"
# What may follow an address part: a separator, the end, or sentence punctuation.
_END = (r"(?=[ \t]*(?:[,;\n>?!)]|\.(?:\s|$)|$)|[ \t]+(?:and|or|but|in|on|for|with|last|next|this|before|after|by|"
        r"to|from|is|was|since|until)\b)")
_GAP = re.compile(r"[ \t]*(?:[,;>]|\n)?(?:[ \t]*(?:\n|>|,))*[ \t]*")
_SAME_LINE_GAP = re.compile(r"[ \t]+")
_PART = re.compile(rf"(?P<unit>{UNIT}|{PO_BOX})\b|(?:(?P<place>{PLACE})(?:[ \t]*,?[ \t]*(?P<region>{REGION}))?"
                   rf"(?:[ \t]*,?[ \t]*(?P<post>{POSTCODE}))?|(?P<post2>{POSTCODE})){_END}")
_AFTER_COMMA = re.compile(rf"(?:(?P<region>{REGION})(?:[ \t]+(?P<post>{POSTCODE}))?|(?P<post2>{POSTCODE})){_END}")
_LEAD_NUMBER = re.compile(r"(?<![\w.,-])\d{1,6}[ \t]+$")
_STREET_RX = re.compile(r"(?<![\w-])(?:" + "|".join(STREET_LINES) + r")")
_CUED_RX = re.compile(ADDRESS_CUE + r"(" + CUED_STREET + r")")
# "the corner of 11 Botley Road and Herceg Gateway": an intersection, from "the corner of" to the second name.
_CORNER_RX = re.compile(rf"\b[Tt]he[ \t]+corner[ \t]+of[ \t]+(?:[\w'’.-]+[ \t]+){{1,6}}?(?:and|&)[ \t]+"
                        rf"{_CAPW}(?:[ \t]+{_CAPW}){{0,3}}")
_ABBREV = frozenset({"st", "rd", "ave", "blvd", "ln", "dr", "ct", "pl", "sq", "pkwy", "cir", "hwy", "rte", "str", "u",
                     "krt", "rkp", "apt", "ste", "av", "avda", "bd"})
# Words that start a sentence or a field, never a place.
NOT_PLACES = frozenset({
    "The", "A", "An", "I", "We", "You", "He", "She", "They", "It", "This", "That", "These", "Please", "Thanks",
    "Thank", "Call", "Phone", "Tel", "Telephone", "Mobile", "Cell", "Fax", "Email", "E-mail", "Mail", "Web",
    "Website", "Office", "Home", "Work", "Contact", "Address", "Name", "Date", "Time", "When", "Where", "Dear",
    "Hi", "Hello", "Regards", "Best", "Sincerely", "Cheers", "Yours", "And", "Or", "But", "If", "So", "Then",
    "Also", "See", "Note", "Re", "Subject", "From", "To", "Cc", "Sent", "Ask", "Tell", "What", "Why", "How",
    "Who", "Is", "Are", "Was", "Can", "Could", "Would", "Should", "Will", "My", "Our", "Your", "His", "Her",
    "Their", "Mr", "Mrs", "Ms", "Dr", "Attn", "Attention", "Billing", "Shipping", "Delivery", "Invoice",
    "Order", "Account", "Ref", "Reference", "Yes", "No", "Ok", "Okay", "In", "On", "At", "For", "With",
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "Monday",
    "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Page", "Chapter", "Section", "Version",
    "Level", "Step", "Day", "Week", "Year", "Room", "Gate", "Platform", "Table", "Figure", "Item", "Line", "Row",
})


def _place_ok(value: str) -> bool:
    first = value.split()[0].rstrip(".,") if value.split() else ""
    return first not in NOT_PLACES and not first.isdigit() or bool(re.fullmatch(POSTCODE, value.strip()))


def _extend(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The parts of the address block a street line starts: a leading building number, the street line,
    then unit, locality, region, postcode and country, part by part while each part looks like one."""
    parts = [(start, end)]
    lead = _LEAD_NUMBER.search(text, max(0, start - 8), start)
    if lead and "\n" not in text[lead.start():start]:
        parts.insert(0, (lead.start(), lead.start() + len(lead.group(0).rstrip())))
    lines = 0
    for _ in range(8):
        gap = _GAP.match(text, end)
        g_end = gap.end() if gap else end
        sep = text[end:g_end]
        if sep.count("\n") > 2 or lines + sep.count("\n") > 5:
            break
        m = _PART.match(text, g_end)
        if not (m and sep and (m.group("unit") or _place_ok(m.group(0)))):
            m = _AFTER_COMMA.match(text, g_end) if "," in sep else None
        if not m:
            break
        lines += sep.count("\n")
        groups = [k for k in ("unit", "place", "region", "post", "post2") if m.groupdict().get(k)]
        parts.extend(m.span(k) for k in groups)
        end = m.end()
    return parts


def _trim_end(text: str, start: int, end: int) -> int:
    """Drop separators and a sentence full stop after the last word (keep it after abbreviations and the
    Hungarian "u. 15." house number)."""
    value = text[start:end].rstrip(" \t\n,;>")
    last = value.split()[-1] if value.split() else ""
    if last.endswith(".") and last[:-1].isalpha() and len(last) > 4 and last[:-1].lower() not in _ABBREV:
        value = value[:-1]
    return start + len(value)


def find_addresses(text: str) -> list[tuple[int, int, float]]:
    """(start, end, score) of postal addresses, one span per address block; non-overlapping, sorted."""
    cands: list[tuple[int, int, float]] = []
    for m in _STREET_RX.finditer(text):
        cands.append((m.start(), m.end(), 0.7))
    for m in _CORNER_RX.finditer(text):
        cands.append((m.start(), m.end(), 0.65))
    for m in _CUED_RX.finditer(text):
        value = m.group(1)
        if value.split()[0].rstrip(".,") in NOT_PLACES or not re.search(r"[^\W\d_]", value):
            continue
        cands.append((m.start(1), m.end(1), 0.65))
    if not cands:
        return []
    out: list[tuple[int, int, float]] = []
    for s, e, sc in sorted(cands, key=lambda c: (c[0], -c[1])):
        parts = _extend(text, s, e)
        s, e = parts[0][0], max(p[1] for p in parts)
        e = _trim_end(text, s, e)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e), max(out[-1][2], sc))
        else:
            out.append((s, e, sc))
    return out


PLACE_CUE = re.compile(
    r"\b(?:lives?|lived|living|resides?|resided|based|located|born|raised|grew[ \t]+up|moved(?:[ \t]+here)?|"
    r"relocated|flew|flown|flying|travel(?:l)?ed|travel(?:l)?ing|returned|originally|stationed|arrived|"
    r"emigrated|immigrated|headquartered|settled|visiting|visited)[ \t]+(?:back[ \t]+)?(?:in|to|from|at|near)"
    r"[ \t]+(" + PLACE + r")")


def find_places(text: str) -> list[tuple[int, int, float]]:
    """Place names after a verb of residence or travel; an upper-case or capitalised name of 1-4 words."""
    out = []
    for m in PLACE_CUE.finditer(text):
        words = list(re.finditer(r"\S+", m.group(1)))
        while words and words[-1].group(0).rstrip(".") in NOT_PLACES:
            words.pop()
        if not words or re.sub(r"['’]s$", "", words[0].group(0).rstrip(".,")) in NOT_PLACES:
            continue
        value = m.group(1)[:words[-1].end()].rstrip(".")
        out.append((m.start(1), m.start(1) + len(value), 0.65))
    return out
