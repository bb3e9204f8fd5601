"""One exit-code table for both sides (servebench_engine.errors.EXIT_CODES): each code one
meaning, each side's enum made of its rows."""

from __future__ import annotations

import servebench.command as command
import servebench.errors as control
from servebench_engine import errors as engine


def test_each_code_and_each_name_stands_once():
    codes = [code for code, _, _ in engine.EXIT_CODES]
    names = [name for _, name, _ in engine.EXIT_CODES]
    assert len(set(codes)) == len(codes) and len(set(names)) == len(names)


def test_both_enums_are_rows_of_the_table():
    table = {name: code for code, name, _ in engine.EXIT_CODES}
    for enum in (engine.ExitCode, control.ExitCode):
        assert {m.name: int(m) for m in enum} == {m.name: table[m.name] for m in enum}


def test_a_file_error_of_bench_run_is_not_the_state_file_code():
    assert control.ExitCode.STATE == 3 and "FILE" not in control.ExitCode.__members__
    assert engine.ExitCode.FILE == 7 and 3 not in {int(c) for c in engine.ExitCode}
    assert engine.OutputError.exit_code == 7


def test_one_handler_and_one_sigterm_guard():
    assert command.sigterm_raises is engine.sigterm_raises
    assert control.Terminated is engine.Terminated
    said = []
    assert command.exit_status(lambda: (_ for _ in ()).throw(control.StateError("gone")),
                               said.append) == 3
    assert command.exit_status(lambda: (_ for _ in ()).throw(engine.Terminated()),
                               said.append) == 143
    assert said == ["gone", "terminated"]
