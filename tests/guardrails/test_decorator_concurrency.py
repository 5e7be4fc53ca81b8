"""Thread-safety and isolation: one Guard, 50 threads and 200 asyncio tasks in flight at once, each with
its own personal data. Every vault numbers from 1 (each caller's name is <PERSON_1>), so any mix-up
between calls would hand a caller someone else's values. Every caller must get exactly its own back."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest

from guardrails.inprocess import trustwall_principal

from support import decorator_kit as kit

N_THREADS = 50
N_TASKS = 200
TOTAL = N_THREADS + N_TASKS


class Gate:
    """Holds every model call until all TOTAL calls are inside a model at the same time (so their
    vaults and streams coexist), with a generous fallback so a failure cannot hang the suite."""

    def __init__(self, total: int):
        self.total = total
        self.lock = threading.Lock()
        self.arrived = 0
        self.all_in = threading.Event()

    def arrive(self) -> None:
        with self.lock:
            self.arrived += 1
            if self.arrived == self.total:
                self.all_in.set()

    def wait_sync(self) -> None:
        self.arrive()
        self.all_in.wait(60)

    async def wait_async(self) -> None:
        self.arrive()
        deadline = time.monotonic() + 60
        while not self.all_in.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)


def identity(i: int) -> tuple[str, str, str]:
    surname = "".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)).capitalize()
    return f"Person {surname}-{i}", f"caller{i}.{surname.lower()}@example.com", f"+44 {i % 1000:03d} 555 {i:04d}"


def prompt_for(i: int) -> str:
    name, email, phone = identity(i)
    return f"I am {name}; write to {email} or call {phone}. Thanks!"


def expected_for(i: int) -> str:
    return "Reply to: " + prompt_for(i) + " Regards."


async def test_fifty_threads_and_two_hundred_tasks_each_get_their_own_values(tmp_path: Path) -> None:
    g, rec = kit.make_guard(tmp_path)
    gate = Gate(TOTAL)
    model_saw: list[str] = []
    saw_lock = threading.Lock()

    def seen(prompt: str) -> None:
        with saw_lock:
            model_saw.append(prompt)

    @g.guard
    def ask_sync(prompt: str) -> str:
        seen(prompt)
        gate.wait_sync()
        return f"Reply to: {prompt} Regards."

    @g.guard
    def stream_sync(prompt: str):
        seen(prompt)
        gate.wait_sync()
        reply = f"Reply to: {prompt} Regards."
        step = 1 + len(prompt) % 5  # placeholders split at different places
        for k in range(0, len(reply), step):
            yield reply[k:k + step]

    @g.guard
    async def ask_async(messages: list[dict[str, str]]) -> str:
        prompt = messages[-1]["content"]
        seen(prompt)
        await gate.wait_async()
        await asyncio.sleep(random.random() / 200)
        return f"Reply to: {prompt} Regards."

    @g.guard
    async def stream_async(prompt: str):
        seen(prompt)
        await gate.wait_async()
        reply = f"Reply to: {prompt} Regards."
        step = 2 + len(prompt) % 7
        for k in range(0, len(reply), step):
            await asyncio.sleep(0)
            yield reply[k:k + step]

    results: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(N_THREADS + 1)

    def thread_main(i: int) -> None:
        try:
            start.wait()
            with trustwall_principal(f"caller-{i}", role="user"):
                if i % 2:
                    out = ask_sync(prompt_for(i))
                else:
                    out = "".join(stream_sync(prompt_for(i)))
            results[i] = out
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    async def task_main(i: int) -> None:
        with trustwall_principal(f"caller-{i}", role="user"):
            if i % 2:
                results[i] = await ask_async([{"role": "user", "content": prompt_for(i)}])
            else:
                results[i] = "".join([c async for c in stream_async(prompt_for(i))])

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    start.wait()
    await asyncio.gather(*(task_main(i) for i in range(N_THREADS, TOTAL)))
    await asyncio.to_thread(lambda: [t.join(120) for t in threads])
    g.close()

    assert not errors, errors[:3]
    assert gate.all_in.is_set(), "the calls were never all in flight together"
    assert sorted(results) == list(range(TOTAL))
    wrong = {i: out for i, out in results.items() if out != expected_for(i)}
    assert not wrong, list(wrong.items())[:3]

    # The model saw pseudonyms only, never anyone's data.
    assert len(model_saw) == TOTAL
    for prompt in model_saw:
        assert prompt == "I am <PERSON_1>; write to <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1>. Thanks!"

    # One audit record per call, each with its own request id and principal, no raw values.
    assert len(rec.records) == TOTAL
    assert len({r.request_id for r in rec.records}) == TOTAL
    assert sorted(r.principal.id for r in rec.records) == sorted(f"caller-{i}" for i in range(TOTAL))
    for r in rec.records:
        assert r.status == 200 and r.input is not None and "@example.com" not in r.input.text
    assert sum(r.streamed for r in rec.records) == TOTAL // 2


NAMES = ["Maria Garcia", "James Smith", "Wei Zhang", "Olivia Brown", "Ahmed Khan", "Sophie Martin",
         "Lucas Silva", "Emma Wilson", "Hiro Tanaka", "Priya Patel"]


@pytest.mark.slow
async def test_isolation_with_the_real_pii_detector(tmp_path: Path) -> None:
    """The same guarantee with the embedded default policy's real detectors (Presidio + spaCy)."""
    from guardrails import Guard
    from guardrails.settings import Settings

    g = Guard.from_settings(Settings(data_dir=tmp_path / "data"), audit=False)
    seen: list[str] = []

    def prompt(i: int) -> str:
        return f"Please email {NAMES[i % len(NAMES)]} at contact{i}@example.com about order {i}."

    @g.guard
    def ask_sync(prompt: str) -> str:
        seen.append(prompt)
        time.sleep(random.random() / 100)
        return f"Sure. {prompt}"

    @g.guard
    async def ask_async(prompt: str) -> str:
        seen.append(prompt)
        await asyncio.sleep(random.random() / 100)
        return f"Sure. {prompt}"

    results: dict[int, str] = {}
    n_threads, n_tasks = 10, 30

    def thread_main(i: int) -> None:
        results[i] = ask_sync(prompt(i))

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    outs = await asyncio.gather(*(ask_async(prompt(i)) for i in range(n_threads, n_threads + n_tasks)))
    results.update(zip(range(n_threads, n_threads + n_tasks), outs))
    await asyncio.to_thread(lambda: [t.join(120) for t in threads])
    g.close()
    assert results == {i: f"Sure. {prompt(i)}" for i in range(n_threads + n_tasks)}
    assert len(seen) == n_threads + n_tasks
    assert not any("@example.com" in s for s in seen)
    assert all("<EMAIL_ADDRESS_1>" in s for s in seen)
