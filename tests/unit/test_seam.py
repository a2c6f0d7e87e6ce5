"""The Python↔Lua seam: every script reads its KEYS and ARGV by the names, in the order, its
Python declaration sends them; a drift on either side is refused when the script loads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from workers.state import scripts
from workers.state.redis_client import script_source
from workers.state.scripts import LuaScript
from workers.state.seam import SeamMismatch, check_header, flatten, header

ALL = scripts.ALL


@pytest.mark.parametrize("script", ALL, ids=lambda s: s.files[-1])
def test_every_script_reads_its_declared_slots_by_name(script: LuaScript) -> None:
    main = script_source(script.files[-1])
    for declaration, table in ((script.keys, "KEYS"), (script.args, "ARGV")):
        names = [f.name for f in dataclasses.fields(declaration)]
        for line, name in zip(header(declaration, table), names, strict=True):
            assert line in main, f"{script.files[-1]} does not read {name} as declared"


@pytest.mark.parametrize("script", ALL, ids=lambda s: s.files[-1])
def test_no_script_reads_a_numbered_slot_outside_its_header(script: LuaScript) -> None:
    main = script_source(script.files[-1])
    body = [line for line in main.splitlines() if not line.startswith("local ")]
    assert not [line for line in body if "KEYS[" in line or "ARGV[" in line]


@dataclass(frozen=True)
class _Keys:
    user: str
    track: str
    days: tuple[str, ...] = ()


def test_a_header_that_drifted_is_refused() -> None:
    good = "local user = KEYS[1]\nlocal track = KEYS[2]\nlocal days = {unpack(KEYS, 3)}\n"
    check_header(good, _Keys, "KEYS")
    swapped = good.replace("user = KEYS[1]", "track = KEYS[1]").replace(
        "track = KEYS[2]", "user = KEYS[2]"
    )
    with pytest.raises(SeamMismatch):
        check_header(swapped, _Keys, "KEYS")
    with pytest.raises(SeamMismatch):  # a field the script does not read
        check_header("local user = KEYS[1]\n", _Keys, "KEYS")
    with pytest.raises(SeamMismatch):  # a slot read by number in the body
        check_header(good + "redis.call('GET', KEYS[4])\n", _Keys, "KEYS")


def test_the_declaration_lays_out_the_slots_in_field_order() -> None:
    assert flatten(_Keys("u", "t", ("d1", "d2"))) == ["u", "t", "d1", "d2"]
    command = scripts.NOTE.command(
        scripts.NoteKeys(subject="{a}:user:u"), scripts.NoteArgs(field="ap", marker="0.5|0|1")
    )
    assert command == ("EVALSHA", scripts.NOTE.sha, 1, "{a}:user:u", "ap", "0.5|0|1")
    with pytest.raises(TypeError):
        scripts.NOTE.command(scripts.NoteArgs(field="ap", marker="x"), None)
