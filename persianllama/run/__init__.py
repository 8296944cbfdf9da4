"""The run core: what every training track (Zero, LoRA, and the tracks built on them) stands on.

It depends on no track, and every track depends on it:

- `settings`: the settings sections the tracks share (training/batch/optimizer, checkpoints, logging);
- `device`: one rule for device and precision (bf16 on capability 8+, fp16 with loss scaling before, fp32 on CPU);
- `dist`: the process's place in a launched run; `batch`: batch arithmetic; `schedule`: warmup + cosine;
- `signals`: SIGTERM/SIGINT become "save after this step, then stop";
- `checkpoint`: checkpoint folders (naming, completeness marker, manifest of sizes and hashes, discovery with
  fallback past damage, prune, fsync), RNG state in safetensors, pickle-free loading;
- `resume`: what a resumed run must share with its checkpoint, and what may change;
- `metrics`: one record schema (`train` / `eval` / `event`) to metrics.jsonl, TensorBoard and loss_curve.png;
- `lock`: one process per run folder; `launcher`: ranks follow their launcher's death;
- `outputs`: where a command may write, and what it must never delete.
"""
