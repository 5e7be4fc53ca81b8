"""guardrails.answer: restoring pseudonyms in answers (JSON-escaped inside tool-call arguments)."""

from __future__ import annotations

import json

from guardrails.answer import Restore
from guardrails.types import CallContext
from guardrails.vault import Vault

ARGS = ("choices", ("#", 0), "message", "tool_calls", 0, "function", "arguments")


class PersonOnly:
    @staticmethod
    def restore_allowed(ctx):  # noqa: ANN001, ANN205
        return lambda cat: cat == "PERSON"


def test_restore_json_escapes_arguments_and_holds_split_placeholders() -> None:
    ctx = CallContext(vault=Vault())
    ph = ctx.vault.pseudonym("PERSON", 'Bob "B" Jones\\')
    mail = ctx.vault.pseudonym("EMAIL_ADDRESS", "b@x.io")
    r = Restore(PersonOnly(), ctx)
    assert json.loads(r.text(json.dumps({"to": ph, "mail": mail}), ARGS)) == {"to": 'Bob "B" Jones\\', "mail": mail}
    parts = [r.feed((0, ARGS), f, ARGS) for f in ('{"to": "<PE', "RSON", '_1>"}')] + [r.flush((0, ARGS), ARGS)]
    assert parts[:2] == ['{"to": "', ""] and json.loads("".join(parts)) == {"to": 'Bob "B" Jones\\'}


def test_restore_leaves_placeholders_the_vault_does_not_hold() -> None:
    ctx = CallContext(vault=Vault())
    ph = ctx.vault.pseudonym("PERSON", "Ann")
    r = Restore(PersonOnly(), ctx)
    assert r.text(json.dumps({"a": ph, "b": "<PERSON_7>"}), ARGS) == json.dumps({"a": "Ann", "b": "<PERSON_7>"})


def test_restore_disabled_keeps_placeholders() -> None:
    ctx = CallContext(vault=Vault())
    ph = ctx.vault.pseudonym("PERSON", "Ann")
    assert Restore(PersonOnly(), ctx, enabled=False).text(ph, ARGS) == ph
