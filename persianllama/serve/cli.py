"""`persianllama serve`: the playground, a local web page to chat with, compare and inspect what the toolkit built.

    persianllama serve --runs runs/quickstart
    persianllama serve --model zero=runs/quickstart/zero/hf --model lora=runs/quickstart/lora_base:runs/quickstart/lora/adapter
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from pathlib import Path

from persianllama.config import describe
from persianllama.errors import UserError

log = logging.getLogger("persianllama.serve")


def register(sub: argparse._SubParsersAction) -> None:
    from persianllama.serve.config import ServeConfig

    p = sub.add_parser(
        "serve", help="the playground: a local web page to chat with, compare and inspect models and runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a web page (and its JSON API) on this machine: chat with a model, send one prompt to "
        "2-4 models side by side, and inspect run folders (data cards, loss curves, eval tables, fertility, "
        "corpus rows). Everything it loads ships with the toolkit: it works offline.",
        epilog="examples:\n"
        "  persianllama serve --runs runs/quickstart\n"
        "  persianllama serve --model zero=runs/quickstart/zero/hf \\\n"
        "      --model lora=runs/quickstart/lora_base:runs/quickstart/lora/adapter --port 8000\n\n"
        "settings (key: type = default):\n" + describe(ServeConfig),
    )
    p.add_argument("--runs", action="append", default=[], metavar="DIR",
                   help="folder of run outputs to show, and whose models to serve (repeatable)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR[:ADAPTER]",
                   help="a model to serve: an HF model folder, optionally with a PEFT adapter (repeatable)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", metavar="N", help="port (default 7860; 0: any free port)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings (listed below)")
    p.set_defaults(func=_main)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one line saying why not (port taken, address not on this machine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"--port {port}: already in use on {host}; pass another --port (or 0 for any free one)") \
                from None
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def prepare(args: argparse.Namespace):
    """Settings, run roots and --model specs, all checked before anything starts."""
    from persianllama import cliargs
    from persianllama import config as cfglib
    from persianllama.serve.config import ServeConfig
    from persianllama.serve.models import check_spec, parse_spec

    cfg = cfglib.load(ServeConfig, None, args.overrides, host=args.host, device=args.device,
                      port=cliargs.integer(args.port, "--port"))
    roots = []
    for r in args.runs:
        path = Path(r)
        if not path.is_dir():
            raise UserError(f"--runs {r}: {'not a folder' if path.exists() else 'no such folder'}")
        roots.append(path.resolve())
    specs = [parse_spec(m) for m in args.model]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"--model: the name {dup[0]} is given twice; give each model its own name")
    for s in specs:
        check_spec(s)
    if not roots and not specs:
        raise UserError("nothing to serve: pass --runs DIR (e.g. runs/quickstart) and/or --model NAME=DIR")
    return cfg, roots, specs


def _main(args: argparse.Namespace) -> int:
    cfg, roots, specs = prepare(args)
    import uvicorn

    from persianllama.eval.loading import pick_device
    from persianllama.serve.app import LOOPBACK, create_app

    device = pick_device(cfg.device or None)
    sock = bind(cfg.host, cfg.port)
    port = sock.getsockname()[1]
    app = create_app(cfg, roots, specs, device)
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    if cfg.host not in LOOPBACK:
        log.warning("listening on %s: anyone who can reach this machine can use the models and read the runs", cfg.host)
    n_runs = len(app.app.state.library.runs())
    n_models = len(app.app.state.pool.specs())
    print(f"persianllama serve: http://{shown}:{port}/  ({n_models} model(s), {n_runs} run folder(s); "
          f"{device}; Ctrl-C to stop)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=5,
                                           h11_max_incomplete_event_size=64 * 1024, timeout_graceful_shutdown=3))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then re-raises the signal: stopping is the normal end
        pass
    print("persianllama serve: stopped", file=sys.stderr)
    return 0
