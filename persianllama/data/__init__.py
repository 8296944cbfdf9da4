"""Pre-tokenized, packed training data shared by the pretraining (Zero) and LoRA tracks.

    from persianllama.data import pack

    data = pack("runs/corpus", "runs/tokenizer", block_size=2048)   # built once, then from cache
    data.n_blocks, data.block(0), data.val_texts(64)
    ds = data.torch_dataset()                                       # {"input_ids", "labels"} blocks

`pack` reads corpus directories (Parquet shards), .parquet and .txt files; `PackedData` opens a
finished cache folder; `BlockOrder` is the resumable, rank-count-independent sample order.
"""

from persianllama.data.packed import BlockOrder, PackedData
from persianllama.data.packing import cache_path, doc_hash, load_tokenizer, pack
from persianllama.data.sources import find_corpus_files

__all__ = ["BlockOrder", "PackedData", "cache_path", "doc_hash", "find_corpus_files", "load_tokenizer", "pack"]
