#!/usr/bin/env python
"""Pretrain a Persian LLaMA from scratch with DeepSpeed (the Zero track).

    deepspeed [--hostfile H] [--num_gpus N] scripts/pretrain.py --config configs/1b.yaml [key=value ...]
    python scripts/pretrain.py --config configs/tiny.yaml [key=value ...]    # one process, no launcher
    python scripts/pretrain.py --describe                                   # every setting, with help

The run itself, step by step, is `persianllama/train/pretrain.py`; this file is what the launcher starts.
Exit status: 0 done; 2 bad input (one line on stderr); 128+signal (143 SIGTERM, 130 SIGINT) when stopped by a
signal after saving a checkpoint: run the same command again to continue.
"""

from persianllama.train.pretrain import main, script_main

__all__ = ["main"]

if __name__ == "__main__":
    script_main()
