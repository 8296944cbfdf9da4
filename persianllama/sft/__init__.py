"""Post-training: instruction tuning (`persianllama sft`) on chat data, built on the LoRA track's adapter loop
and the run core. Data formats (`data`), the chat template (`template`), packing without cross-talk
(`packing`), the run (`train`)."""
