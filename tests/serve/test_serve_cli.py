"""`persianllama serve`: bad input is one line and exit 2 before anything listens (rows run by the bad-input
table's runner), and the pieces the server is made of (safe paths, cards, run kinds, model names)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.bad_input.runner import Case, assert_case, run_case

_held: list[socket.socket] = []


def _busy_port(tmp: Path) -> dict:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    _held.append(s)
    return {"port": s.getsockname()[1]}


def _model_dir(tmp: Path) -> dict:
    (tmp / "m").mkdir()
    (tmp / "m" / "config.json").write_text("{}", encoding="utf-8")
    return {"m": tmp / "m"}


CASES = [
    Case("serve-nothing-to-serve", ["serve"], words=["nothing to serve", "--runs"]),
    Case("serve-runs-missing", ["serve", "--runs", "{tmp}/nope"], words=["--runs", "nope", "no such folder"]),
    Case("serve-runs-is-a-file", ["serve", "--runs", "{repo}/setup.cfg"], words=["--runs", "not a folder"]),
    Case("serve-model-without-name", ["serve", "--model", "{tmp}"], words=["--model", "NAME=DIR"]),
    Case("serve-model-bad-name", ["serve", "--model", "a b={tmp}"], words=["--model", "name"]),
    Case("serve-model-missing-dir", ["serve", "--model", "x={tmp}/nope"], words=["--model x", "nope"]),
    Case("serve-model-no-weights", ["serve", "--model", "x={m}"], words=["--model x", "weights"], setup=_model_dir),
    Case("serve-model-twice", ["serve", "--model", "x={tmp}", "--model", "x={tmp}"], words=["x", "twice"]),
    Case("serve-port-out-of-range", ["serve", "--runs", "{tmp}", "--port", "70000"], words=["port", "65535"]),
    Case("serve-port-not-a-number", ["serve", "--runs", "{tmp}", "--port", "web"], words=["--port", "integer"]),
    Case("serve-port-in-use", ["serve", "--runs", "{tmp}", "--port", "{port}"], words=["--port", "in use"],
         setup=_busy_port),
    Case("serve-host-unknown", ["serve", "--runs", "{tmp}", "--host", "no-such-host.invalid"], words=["--host"]),
    Case("serve-queue-negative", ["serve", "--runs", "{tmp}", "queue_size=-1"], words=["queue_size", "range"]),
    Case("serve-dtype-unknown", ["serve", "--runs", "{tmp}", "dtype=fp64"], words=["dtype"]),
    Case("serve-unknown-setting", ["serve", "--runs", "{tmp}", "max_tokens=5"], words=["max_tokens"]),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input(case, tmp_path, capsys, monkeypatch):
    try:
        assert_case(case, run_case(case, tmp_path, capsys, monkeypatch), tmp_path)
    finally:
        while _held:
            _held.pop().close()


def test_help_lists_every_setting(capsys):
    from persianllama.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for key in ("--runs", "--model", "--host", "--port", "max_new_tokens", "queue_size", "max_streams",
                "max_loaded", "max_seconds"):
        assert key in out, key


# --- pieces --------------------------------------------------------------------------------------------------


def test_safe_file(tmp_path):
    from persianllama.serve.runs import Refused, safe_file

    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "sub" / "a.txt").write_text("a", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("s", encoding="utf-8")
    (run / "out.txt").symlink_to(tmp_path / "secret.txt")
    (run / "outdir").symlink_to(tmp_path)
    (run / "in.txt").symlink_to(run / "sub" / "a.txt")
    assert safe_file(run, "sub/a.txt") == (run / "sub" / "a.txt").resolve()
    assert safe_file(run, "in.txt").read_text(encoding="utf-8") == "a"  # a link that stays inside is fine
    for bad, status in [("../secret.txt", 403), ("sub/../../secret.txt", 403), ("/etc/passwd", 403),
                        ("out.txt", 403), ("outdir/secret.txt", 403), ("sub//a.txt", 403), ("./sub/a.txt", 403),
                        ("sub\\a.txt", 403), ("a\x00.txt", 403), ("C:/x", 403), ("", 403), ("sub", 404),
                        ("nope.txt", 404)]:
        with pytest.raises(Refused) as e:
            safe_file(run, bad)
        assert e.value.status == status, bad


def test_media_types_never_html():
    from persianllama.serve.runs import media_type

    assert media_type(Path("a.png")) == "image/png"
    for name in ("a.html", "a.svg", "a.js", "a.md", "a.json"):
        assert media_type(Path(name)).startswith("text/plain")


def test_card_markdown_is_escaped_and_relinked():
    from persianllama.serve.runs import render_markdown

    html = render_markdown(
        "---\ntags: [x]\n---\n# عنوان\n\n<img src=x onerror=alert(1)>\n\n![chart](chart.png) ![web](https://e.com/a.png)"
        " ![up](../../etc/x.png)\n\n[data](data/a.txt) [site](https://example.com) [bad](javascript:alert(1))\n\n"
        "| a | b |\n|---|---:|\n| 1 | 2 |\n", "root:run", "hf")
    assert "tags:" not in html and "<h1>عنوان</h1>" in html
    assert "<img src=x" not in html and "&lt;img" in html
    assert 'src="/api/runs/root:run/files/hf/chart.png"' in html
    assert "e.com/a.png" not in html and "etc/x.png" not in html  # offline: no outside images; nothing above the run
    assert 'href="/api/runs/root:run/files/hf/data/a.txt"' in html
    assert 'href="https://example.com" target="_blank" rel="noopener noreferrer"' in html
    assert 'href="javascript' not in html
    assert 'class="al-right"' in html and "style=" not in html


def test_model_names_from_runs(tmp_path):
    from persianllama.serve.models import specs_from_runs
    from persianllama.serve.runs import scan

    def model(p: Path):
        p.mkdir(parents=True)
        (p / "config.json").write_text("{}", encoding="utf-8")
        (p / "model.safetensors").write_bytes(b"")

    root = tmp_path / "qs"
    model(root / "zero" / "hf")
    model(root / "lora_base")
    model(root / "a" / "x" / "hf")
    model(root / "b" / "x" / "hf")
    (root / "lora" / "adapter").mkdir(parents=True)
    (root / "lora" / "adapter" / "adapter_config.json").write_text(
        '{"base_model_name_or_path": "/moved/elsewhere/lora_base"}', encoding="utf-8")
    model(root / "zero" / "checkpoints" / "step_10")  # checkpoints are not models to chat with
    specs = {s.name: s for s in specs_from_runs(scan([root]))}
    assert set(specs) == {"zero", "lora_base", "lora", "a/x", "b/x"}
    # A copied run folder: the adapter's recorded base is gone, the model of that name beside it is used.
    assert specs["lora"].model == str((root / "lora_base").resolve())
    assert specs["lora"].adapter == str((root / "lora" / "adapter").resolve())


def test_parse_spec():
    from persianllama.errors import UserError
    from persianllama.serve.models import parse_spec

    s = parse_spec("lora=runs/q/lora_base:runs/q/lora/adapter")
    assert (s.name, s.model, s.adapter) == ("lora", "runs/q/lora_base", "runs/q/lora/adapter")
    assert parse_spec("z=runs/q/zero/hf").adapter is None
    for bad in ("runs/q", "=x", "a b=x", "z=", "z=:adapter"):
        with pytest.raises(UserError):
            parse_spec(bad)


def test_static_assets_load_nothing_from_elsewhere():
    """The page works offline: no URL to another host in the HTML, JS or CSS, and the font files ship."""
    import re

    static = Path(__file__).resolve().parents[2] / "persianllama" / "serve" / "static"
    for name in ("index.html", "app.js", "app.css"):
        text = (static / name).read_text(encoding="utf-8")
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", text)
        assert urls == [] or all(u == "http://www.w3.org" for u in urls), (name, urls)
    assert (static / "fonts" / "vazirmatn-arabic-wght-normal.woff2").stat().st_size > 10_000
    assert "Open Font License" in (static / "fonts" / "OFL.txt").read_text(encoding="utf-8")
