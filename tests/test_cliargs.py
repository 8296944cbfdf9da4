"""persianllama.cliargs: argparse number types with the settings' message shape, output folders checked
before work, and a full disk as one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from persianllama import cliargs
from persianllama.errors import UserError


def _parse(flag_type, value: str, capsys) -> str:
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--n", type=flag_type)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--n", value])
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("flag_type, value, message", [
    (cliargs.count, "0", "argument --n: 0 is out of range: it must be >= 1"),
    (cliargs.count, "-3", "argument --n: -3 is out of range: it must be >= 1"),
    (cliargs.count, "2.5", "argument --n: '2.5' is not an integer"),
    (cliargs.non_negative_int, "-1", "argument --n: -1 is out of range: it must be >= 0"),
    (cliargs.fraction, "1.5", "argument --n: 1.5 is out of range: it must be in [0, 1]"),
    (cliargs.fraction, "nan", "argument --n: 'nan' is not a finite number"),
    (cliargs.positive, "0", "argument --n: 0.0 is out of range: it must be > 0"),
    (cliargs.non_negative, "inf", "argument --n: 'inf' is not a finite number"),
    (cliargs.positive, "lots", "argument --n: 'lots' is not a number"),
])
def test_number_types_name_the_flag_value_and_range(flag_type, value, message, capsys):
    line = _parse(flag_type, value, capsys)
    assert line == f"tool: error: {message}"


def test_number_types_accept_what_is_in_range():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=cliargs.count)
    parser.add_argument("--f", type=cliargs.fraction)
    args = parser.parse_args(["--n", "7", "--f", "0.25"])
    assert (args.n, args.f) == (7, 0.25)


def test_ruled_takes_any_range():
    from typing import Annotated

    from persianllama.config import Range

    heads = cliargs.ruled(Annotated[int, Range(2, 64)], "heads")
    assert heads("8") == 8
    with pytest.raises(argparse.ArgumentTypeError, match=r"^65 is out of range: it must be in \[2, 64\]$"):
        heads("65")
    with pytest.raises(TypeError):
        cliargs.ruled(str)


def test_integer_for_dataclass_flags():
    assert cliargs.integer("12", "--limit") == 12 and cliargs.integer(None, "--limit") is None
    with pytest.raises(UserError, match=r"^--limit='1.5' is not an integer$"):
        cliargs.integer("1.5", "--limit")


def test_output_dir_refuses_a_file_and_a_path_under_a_file(tmp_path):
    file = tmp_path / "results.json"
    file.write_text("{}")
    with pytest.raises(UserError, match=r"^--output .*results.json is a file, not a folder"):
        cliargs.output_dir(file)
    with pytest.raises(UserError, match=r"results.json is a file, so no folder can be made under it$"):
        cliargs.output_dir(file / "sub" / "dir", "--output")
    with pytest.raises(UserError, match=r"^--output is required$"):
        cliargs.output_dir("")


def test_output_dir_leaves_nothing_behind_unless_asked(tmp_path):
    out = tmp_path / "a" / "b"
    assert cliargs.output_dir(out) == out
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []
    cliargs.output_dir(out, create=True)
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_writing_turns_a_full_disk_into_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").symlink_to("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
    with pytest.raises(UserError, match=r"^--output .*out: no space left on the device while writing the report"):
        with cliargs.writing(out, "the report"):
            (out / "report.md").write_text("x" * 100_000, encoding="utf-8")
    with pytest.raises(FileNotFoundError):  # other errors are not disk errors: they pass through
        with cliargs.writing(out):
            (tmp_path / "missing" / "x").write_text("x")
