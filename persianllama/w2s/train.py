"""A weak-to-strong experiment, top to bottom (Burns et al. 2023, on a Persian classification task).

For each run k (seed = train.seed + k):

1. split the task's training rows in two halves, A and B, with the run's seed;
2. **weak**: train the weak model (a LoRA adapter) on half A with the ground truth; label half B with it (class
   probabilities: soft labels) and score the test split;
3. **strong_ceiling**: train the strong model on half B with the ground truth (what it could do with good labels);
4. **w2s_ce**: train the strong model on half B with the weak soft labels and plain cross-entropy;
5. **w2s_aux**: the same with the auxiliary confidence loss (`persianllama.w2s.loss.confidence_loss`);

then the report (`persianllama.w2s.report`): test accuracy of each, mean and spread over the runs, and the
performance gap recovered PGR = (w2s - weak) / (strong_ceiling - weak).

Every model trains through the shared adapter loop (`persianllama.lora.train.prepare_run` / `train_adapter`,
with a `loss_fn` on class scores; see `persianllama.w2s.score` for why label words and not a new head), so each
run folder ``run<k>/<model>/`` is an ordinary LoRA run: adapter/, checkpoints/, metrics.jsonl, loss_curve.png.
A finished model writes ``result.json`` (its accuracies; the weak model's also holds its soft labels for half B) and is skipped
when the experiment is run again; an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from persianllama.atomic import write_json
from persianllama.config import from_dict, to_dict
from persianllama.errors import UserError
from persianllama.run.lock import RunLock
from persianllama.w2s.config import W2sConfig, W2sModelConfig
from persianllama.w2s.data import Row, TaskData, collate, encode, load_task, pad_id, split_halves

log = logging.getLogger("persianllama.w2s")

SETTINGS = "w2s_config.json"
# Settings a continued experiment may change: they do not change what any finished model learned.
CHANGEABLE = ("out_dir", "runs", "min_gap", "eval_batch_size", "log", "checkpoint")


class Stopped(Exception):
    """A model's run was stopped by a signal (its checkpoint is saved); the experiment resumes from it."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# --- the models -------------------------------------------------------------------------------------------


@dataclass
class Model:
    """A resolved --weak/--strong: the base to load, an adapter to continue, its tokenizer."""

    base: str
    adapter: str | None = None
    tokenizer: str | None = None
    adapter_settings: dict | None = None


def resolve_model(m: W2sModelConfig, flag: str) -> Model:
    """Check `m.base` before any work: a model folder or hub id, or a PEFT adapter folder (then its base)."""
    from persianllama import hub
    from persianllama.lora import adapter as adapters

    if not m.base:
        raise UserError(f"{flag} is required: an HF model folder, a hub id or a PEFT adapter folder")
    path = Path(m.base).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file():
        ac = adapters.read_config(path)
        record = path / adapters.BASE_RECORD
        base = None
        if record.is_file():
            try:
                base = json.loads(record.read_text(encoding="utf-8")).get("base")
            except ValueError:
                base = None
        base = base or ac.get("base_model_name_or_path")
        if not base:
            raise UserError(f"{flag} {m.base}: the adapter names no base model (no {adapters.BASE_RECORD} and no "
                            "base_model_name_or_path); pass the base model instead")
        try:
            hub.check(str(base), "model")
        except UserError as e:
            raise UserError(f"{flag} {m.base}: its base model: {e}") from None
        settings = {k: ac[k2] for k, k2 in (("r", "r"), ("alpha", "lora_alpha")) if isinstance(ac.get(k2), int)}
        if isinstance(ac.get("target_modules"), list):
            settings["target_modules"] = sorted(ac["target_modules"])
        return Model(str(base), str(path), str(path) if adapters.has_tokenizer(path) else None, settings)
    try:
        hub.check(m.base, "model")
    except UserError as e:
        raise UserError(f"{flag}: {e}") from None
    return Model(m.base)


def model_config(cfg: W2sConfig, role: W2sModelConfig, model: Model, out_dir: Path, seed: int):
    """The LoRA run settings of one model of one run."""
    from persianllama.lora.config import LoraConfig

    m = to_dict(role)
    steps, lr = m.pop("max_steps"), m.pop("lr")
    m["base"] = model.base
    if model.tokenizer and not m.get("tokenizer"):
        m["tokenizer"] = model.tokenizer
    train = to_dict(cfg.train)
    train.update(max_steps=steps or cfg.train.max_steps, seed=seed)
    if lr is not None:
        train.update(lr=lr, min_lr=cfg.train.min_lr * lr / cfg.train.lr)
    lora = to_dict(cfg.lora)
    if model.adapter:
        lora.update(init_adapter=model.adapter, **(model.adapter_settings or {}))
    return from_dict(LoraConfig, {"out_dir": str(out_dir), "model": m, "lora": lora, "train": train,
                                  "checkpoint": to_dict(cfg.checkpoint), "log": to_dict(cfg.log),
                                  "plan": to_dict(cfg.plan)})


# --- one model --------------------------------------------------------------------------------------------


def predict(net, setup, tok, rows: list[Row], task: TaskData, mode: str, batch_size: int):
    """Class probabilities ``[rows, classes]`` (CPU, fp32) of `rows` under the model as it is now."""
    import torch

    from persianllama.lora.train import autocast
    from persianllama.w2s.score import class_logits

    enc = encode(tok, rows, task.choices, task.delimiter, setup.cfg.train.seq_len)
    pad = pad_id(tok)
    out = []
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), autocast(setup):
            for start in range(0, len(rows), batch_size):
                batch, _ = collate(enc, range(start, min(start + batch_size, len(rows))), pad, mode)
                batch = {k: v.to(setup.device) for k, v in batch.items()}
                out.append(torch.softmax(class_logits(net, batch, mode, len(task.choices)), dim=-1).cpu())
    finally:
        net.train(was_training)
    return torch.cat(out)


def accuracy(probs, rows: list[Row]) -> float:
    return sum(int(p) == r.label for p, r in zip(probs.argmax(dim=1).tolist(), rows)) / max(len(rows), 1)


def card(setup, summary: dict, *, name: str, task: str, loss: str) -> str:
    cfg = setup.cfg
    return "\n".join([
        "---", "library_name: peft", f"base_model: {cfg.model.base}", "language: [fa]",
        "tags: [lora, persian, persianllama, weak-to-strong]", "---", "",
        f"# Weak-to-strong experiment: {name} ({task})", "",
        f"A LoRA adapter trained by `persianllama w2s` with {loss}; classes are scored with the model's own output "
        "layer on the task's label words (no extra head).", "",
        f"- base: `{cfg.model.base}`; LoRA r={cfg.lora.r}, alpha={cfg.lora.alpha}",
        f"- {summary.get('step', 0)} steps, lr {cfg.train.lr}, {setup.batch.global_batch} examples per step, "
        f"seed {cfg.train.seed}", ""])


def train_model(cfg: W2sConfig, sub, task: TaskData, name: str, rows: list[Row], targets, *, kind: str,
                predict_sets: dict[str, list[Row]]) -> dict:
    """Train one model (`kind`: ce = cross-entropy on `targets`, aux = the confidence loss) and return its
    result (class probabilities of `predict_sets` included); a finished model's saved result is returned as is."""
    import torch

    from persianllama.data.packed import BlockOrder
    from persianllama.lora.export import export
    from persianllama.lora.train import prepare_run, train_adapter
    from persianllama.w2s.loss import aux_coefficient, confidence_loss, soft_cross_entropy
    from persianllama.w2s.score import class_logits, resolve_mode

    out = Path(sub.out_dir)
    done = out / "result.json"
    if done.is_file():
        log.info("%s: finished earlier (%s)", name, done)
        return json.loads(done.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    setup, plan = prepare_run(sub, require_corpus=False, show_plan=False)  # 4 models x runs: in memory_plan.json
    tok = setup.tok
    enc = encode(tok, rows, task.choices, task.delimiter, sub.train.seq_len)
    mode = resolve_mode(cfg.scoring, enc.choices)
    n_classes = len(task.choices)
    pad = pad_id(tok)
    b = setup.batch
    order = BlockOrder(len(rows), sub.train.seed)
    total = sub.train.max_steps
    targets = torch.as_tensor(targets, dtype=torch.float32)
    log.info("%s: %d rows, %d steps of %d, scoring %s%s", name, len(rows), total, b.global_batch, mode,
             f" ({enc.truncated} prompts cut to train.seq_len)" if enc.truncated else "")

    now = {"step": 0}  # optimizer steps done before this micro-batch's (the loop asks for its batch, then its loss)

    def micro_batches(samples: int, micro: int):
        index = order.micro_batch(samples, micro, 0, b.micro, 1)
        batch, n_tokens = collate(enc, index, pad, mode)
        batch["targets"] = targets[torch.as_tensor(index, dtype=torch.long)]
        now["step"] = samples // b.global_batch
        return batch, n_tokens

    def loss_fn(net, inputs):
        goal = inputs.pop("targets")
        step = now["step"]
        z = class_logits(net, inputs, mode, n_classes)
        extras = {"agree_target": float((z.argmax(1) == goal.argmax(1)).float().mean())}
        if kind == "aux":
            coef = aux_coefficient(step / total, cfg.aux.alpha, cfg.aux.warmup_frac, cfg.aux.ramp)
            losses, hard = confidence_loss(z, goal, coef)
            extras.update(aux_coef=coef, hardened_agree_target=float((hard.argmax(1) == goal.argmax(1)).float().mean()))
        else:
            losses = soft_cross_entropy(z, goal)
        return losses.mean(), extras

    probs: dict = {}

    def export_fn(setup, net, path, summary, *, save_embedding_layers):
        info = export(setup, net, path, summary, save_embedding_layers=save_embedding_layers,
                      card_fn=functools.partial(card, name=name, task=task.task, loss=LOSS_NAMES[kind]))
        for key, part in predict_sets.items():
            probs[key] = predict(net, setup, tok, part, task, mode, cfg.eval_batch_size)
        return info

    summary = train_adapter(setup, plan, micro_batches, lambda net, step: None, export_fn=export_fn, loss_fn=loss_fn)
    if not summary.get("finished"):
        raise Stopped(int(summary.get("exit_code") or 1))
    result = {"model": name, "base": sub.model.base, "scoring": mode, "steps": summary["step"],
              "seed": sub.train.seed, "train_rows": len(rows), "last_loss": summary.get("last_loss"),
              "seconds": round(time.perf_counter() - t0, 2)}
    for key, part in predict_sets.items():
        result[f"{key}_accuracy"] = accuracy(probs[key], part)
        result[f"{key}_rows"] = len(part)
    if "half_b" in probs:
        result["soft_labels"] = probs["half_b"].tolist()
    write_json(done, result)
    log.info("%s: test accuracy %.4f (%d rows) in %.1fs", name, result["test_accuracy"], result["test_rows"],
             result["seconds"])
    return result


LOSS_NAMES = {"ce": "cross-entropy on its targets", "aux": "the auxiliary confidence loss on weak labels"}


# --- the experiment ---------------------------------------------------------------------------------------


def one_hot(rows: list[Row], n_classes: int) -> list[list[float]]:
    return [[1.0 if c == r.label else 0.0 for c in range(n_classes)] for r in rows]


def check_settings(cfg: W2sConfig, out: Path) -> None:
    """A continued experiment must be the same experiment (same task, models, halves and losses)."""
    path = out / SETTINGS
    now = {k: v for k, v in to_dict(cfg).items() if k not in CHANGEABLE}
    if path.is_file():
        before = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k not in CHANGEABLE}
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if changed:
            raise UserError(f"{out} holds a weak-to-strong experiment with other settings ({', '.join(changed)}); "
                            "use another --output, or the same settings to continue it")
    write_json(path, to_dict(cfg))


def run(cfg: W2sConfig) -> dict:
    """Run (or continue) the experiment; returns the report (or {"exit_code": N} when stopped by a signal)."""
    from persianllama.cliargs import output_dir

    if not cfg.out_dir:
        raise UserError("--output is required: the experiment folder")
    if not cfg.data_dir:
        raise UserError("--data-dir is required: the data root (../shared/data or corpora/sample/tasks)")
    models = {"weak": resolve_model(cfg.weak, "--weak"), "strong": resolve_model(cfg.strong, "--strong")}
    task = load_task(cfg.task, cfg.data_dir)
    split_halves(task.train, cfg.train.seed, min_rows=cfg.min_half_rows)  # refuse too few rows before any work
    out = output_dir(cfg.out_dir, create=True)
    with RunLock(out):
        check_settings(cfg, out)
        try:
            return _run(cfg, task, models, out)
        except Stopped as e:
            return {"exit_code": e.code}


def _run(cfg: W2sConfig, task: TaskData, models: dict[str, Model], out: Path) -> dict:
    from persianllama.w2s.report import write_report

    t0 = time.perf_counter()
    test = task.test[: cfg.max_test_rows] if cfg.max_test_rows else task.test
    n_classes = len(task.choices)
    log.info("%s: %d training rows, %d test rows (%s); %d run(s)", task.task, len(task.train), len(test),
             task.sources.get("test", ""), cfg.runs)
    results: list[dict[str, dict]] = []
    for k in range(cfg.runs):
        seed = cfg.train.seed + k
        half_a, half_b = split_halves(task.train, seed, cap=cfg.max_train_rows, min_rows=cfg.min_half_rows)
        folder = out / f"run{k}"

        def sub(role: str, name: str, seed=seed, folder=folder):
            return model_config(cfg, getattr(cfg, role), models[role], folder / name, seed)

        res: dict[str, dict] = {}
        res["weak"] = train_model(cfg, sub("weak", "weak"), task, "weak", half_a, one_hot(half_a, n_classes),
                                  kind="ce", predict_sets={"test": test, "half_b": half_b})
        weak_labels = res["weak"]["soft_labels"]
        res["strong_ceiling"] = train_model(cfg, sub("strong", "strong_ceiling"), task, "strong_ceiling", half_b,
                                            one_hot(half_b, n_classes), kind="ce", predict_sets={"test": test})
        res["w2s_ce"] = train_model(cfg, sub("strong", "w2s_ce"), task, "w2s_ce", half_b, weak_labels, kind="ce",
                                    predict_sets={"test": test})
        res["w2s_aux"] = train_model(cfg, sub("strong", "w2s_aux"), task, "w2s_aux", half_b, weak_labels, kind="aux",
                                     predict_sets={"test": test})
        res["halves"] = {"a": len(half_a), "b": len(half_b), "seed": seed}
        results.append(res)
    return write_report(cfg, task, test, results, out, seconds=time.perf_counter() - t0)
