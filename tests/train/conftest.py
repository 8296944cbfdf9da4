"""Fixtures for the Zero-track tests: the data tests' Persian assets, a tiny recipe, an in-process world.

The in-process tests call ``scripts/pretrain.py``'s ``main`` directly in one rank: the process group
is created once per session (a gloo world of one), so each run skips the launcher's start-up and
DeepSpeed's init, and only the real-launcher test pays for them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The same assets as tests/data (one definition of the test corpus and tokenizer).
assets = _load("persianllama_test_assets", REPO / "tests" / "data" / "conftest.py")


@pytest.fixture(scope="session")
def persian_docs() -> list[str]:
    return assets.make_documents()


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory, persian_docs) -> Path:
    return assets.train_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer", persian_docs)


@pytest.fixture(scope="session")
def parquet_corpus(tmp_path_factory, persian_docs) -> Path:
    return assets.write_parquet_shards(tmp_path_factory.mktemp("corpus") / "corpus", persian_docs)


@pytest.fixture(scope="session")
def pack_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("packed")


@pytest.fixture(scope="session")
def pretrain():
    """scripts/pretrain.py as a module (its `main(argv, on_step=...)`)."""
    return _load("pretrain_script", REPO / "scripts" / "pretrain.py")


def tiny_args(tokenizer: Path, corpus: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    """A tiny fp32 run: hidden 64, 2 layers, blocks of 64 tokens, 4 sequences per rank per step."""
    return [
        "--config", str(REPO / "configs" / "tiny.yaml"),
        f"tokenizer={tokenizer}", f"data.corpus={corpus}", f"data.cache_dir={cache}", f"out_dir={out}",
        "train.seq_len=64", "train.micro_batch_size=4", "train.grad_accum_steps=1", "train.precision=fp32",
        "train.warmup_steps=3", "train.lr=3e-3", "data.val_fraction=0.05", "data.workers=1",
        "log.log_interval=5", "log.eval_docs=8", "log.tensorboard=false", *extra,
    ]


@pytest.fixture(scope="session")
def one_rank_world():
    """A gloo process group of one rank for the whole session (created once, like a launcher would)."""
    saved = {k: os.environ.get(k) for k in (*DIST_VARS, "DS_ACCELERATOR")}
    from persianllama.run.dist import free_port

    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(free_port()), DS_ACCELERATOR="cpu")
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")
    for k, v in saved.items():  # the group exists now; do not leak launcher variables into other tests
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    yield
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture
def clean_env():
    """Undo what a run in this process writes to os.environ (it fills in RANK etc. when unlaunched)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def launcher_env() -> dict[str, str]:
    """The environment for a subprocess run: no launcher variables of ours, one thread per rank."""
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update(OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONUNBUFFERED="1")
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="session")
def run_args(tiny_tokenizer, parquet_corpus, pack_cache):
    """``run_args(out_dir, *overrides)``: the argv of a tiny run on the session's corpus and tokenizer."""
    return lambda out, *extra: tiny_args(tiny_tokenizer, parquet_corpus, pack_cache, out, *extra)

