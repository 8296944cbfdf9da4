"""CI runs the Colab notebook on CPU at a smoke size: this is also the quickstart's end-to-end run
(every step through the real commands, the real `deepspeed` launcher with 2 processes)."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert ["parameters"] in tags


def test_readme_has_open_in_colab_badge():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "colab.research.google.com" in readme and "notebooks/quickstart.ipynb" in readme


def test_notebook_runs_end_to_end_at_smoke_size(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    smoke = nbformat.v4.new_code_cell(
        f'OUTPUT = {str(tmp_path / "colab")!r}\nZERO_STEPS = 20\nLORA_STEPS = 4\nSFT_STEPS = 6\nSFT_LORA_STEPS = 5\nEVAL_LIMIT = 4\nDISTILL_STEPS = 6\n'
        "USE_HUB_WIKIPEDIA = False"
    )
    smoke.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, smoke)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    out = tmp_path / "colab"
    report = (out / "report.md").read_text(encoding="utf-8")
    for section in ("## 1. Corpus", "## 2. Tokenizers", "## 3. Zero track", "## 4. LoRA track", "## 5. Instruction tuning",
                    "## 6. Evaluation", "## 7. Distillation"):
        assert section in report
    assert (out / "zero" / "hf" / "model.safetensors").exists()
    # The numbers come from the runs' own metrics, through the shared writer's schema.
    from persianllama.run.metrics import read_metrics

    for track, steps in (("zero", 20), ("lora", 4), ("sft", 6), ("sft_lora", 5)):
        train, evals = read_metrics(out / track / "metrics.jsonl")
        assert sorted(train) == list(range(1, steps + 1)) and evals, track
        first, last, val = train[1], train[steps], evals[max(evals)]
        assert (f"Training loss {first['loss']:.3f} at step 1 -> {last['loss']:.3f} at step {steps}"
                in report), track
        assert f"bits/byte {val['bits_per_byte']:.4f}" in report, track
        assert (out / track / "loss_curve.png").stat().st_size > 1000, track
        assert f"]({track}/loss_curve.png)" in report, track
    for track in ("sft", "sft_lora"):
        answers = json.loads((out / track / "chat_answers.json").read_text(encoding="utf-8"))
        assert len(answers) == 3 and all(a["prompt"] in report for a in answers), track
        assert (out / track / "adapter" / "chat_template.jinja").is_file(), track
    # The LoRA model's SFT continued the LoRA track's adapter (its rank and embeddings) and has its own subsection.
    sft_lora = json.loads((out / "sft_lora" / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert sft_lora["r"] == json.loads((out / "lora" / "adapter" / "adapter_config.json").read_text("utf-8"))["r"]
    assert report.index("## 5. Instruction tuning") < report.index("### Instruction tuning of the LoRA model") \
        < report.index("## 6. Evaluation")
    # The instruction-tuned Zero model is a chat model: the generation prompts went through its chat template.
    chat_rows = [json.loads(x) for x in (out / "eval" / "sft" / "samples" / "persian_generation.jsonl")
                 .read_text("utf-8").splitlines()]
    assert all("### کاربر:" in r["arguments"][0][0] and r["arguments"][0][0].rstrip().endswith("### دستیار:")
               for r in chat_rows)
    assert json.loads((out / "eval" / "sft" / "results.json").read_text("utf-8"))["persianllama"][
        "generation_chat_template"] is True
    assert "Prompt format: **chat template**" in (out / "eval" / "sft" / "report.md").read_text("utf-8")
    assert "(a chat model: each prompt given as a user message through its chat template)" in report
    base_rows = (out / "eval" / "zero" / "samples" / "persian_generation.jsonl").read_text("utf-8").splitlines()
    assert all("### کاربر:" not in json.loads(x)["arguments"][0][0] for x in base_rows)
    results = json.loads((out / "eval" / "zero" / "results.json").read_text(encoding="utf-8"))
    assert "persian_bpb" in results["results"]

    # Distillation: both students' numbers in the report are their own summaries' (held-out bpb, KL to the teacher).
    for name in ("kd", "ce"):
        summary = json.loads((out / "distill" / name / "distill_summary.json").read_text("utf-8"))
        assert summary["step"] == 6 and summary["kl_to_teacher"] > 0, name
        assert f"| {summary['val']['bits_per_byte']:.4f} | {summary['kl_to_teacher']:.4f} | 6 |" in report, name
    kd_train, _ = read_metrics(out / "distill" / "kd" / "metrics.jsonl")
    assert all("loss_ce" in r and "loss_kd" in r for r in kd_train.values())
