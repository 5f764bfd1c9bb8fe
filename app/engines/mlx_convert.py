"""MLX model folders: check one before loading, or build one from a llama-architecture GGUF.

MLX reads GGUF tensors itself (Q4_0, Q4_1 and Q8_0 stay quantized, as MLX's affine 4/8-bit with
groups of 32), so a GGUF becomes the folder mlx-lm loads: weights under Hugging Face's names, with
the Q and K rows put back in Hugging Face's order (llama.cpp's converter permutes them for its
RoPE), a config.json, and a byte-level BPE tokenizer.json from the GGUF's vocabulary and merges.
This is how the tests get a real MLX model from the bundled SmolLM2, with no hub.
"""

from __future__ import annotations

import json
from pathlib import Path

from app.engines.types import EngineError

_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
CONTROL_TOKEN = 3  # GGUF token type of special tokens (<|im_start|>…)


def check_mlx_folder(path: str | Path) -> dict:
    """The folder's config.json, once it is clear the folder holds an MLX model; else a clear error."""
    folder = Path(path)
    if not folder.is_dir():
        raise EngineError(f"{folder} is not a folder: an MLX model is a folder with config.json, "
                          "*.safetensors and a tokenizer", kind="missing_model_file")
    missing = [what for what, present in (
        ("config.json", (folder / "config.json").is_file()),
        ("weights (*.safetensors)", any(folder.glob("*.safetensors"))),
        ("a tokenizer (tokenizer.json)", (folder / "tokenizer.json").is_file()),
    ) if not present]
    if missing:
        ggufs = sorted(p.name for p in folder.glob("*.gguf"))
        hint = f"; for a GGUF model give the file itself, e.g. {folder / ggufs[0]}" if ggufs else ""
        raise EngineError(f"{folder} is not a complete MLX model: it lacks {', '.join(missing)}{hint}",
                          kind="bad_model_file")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineError(f"{folder / 'config.json'} cannot be read: {exc}", kind="bad_model_file") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise EngineError(f"{folder / 'config.json'} names no model_type", kind="bad_model_file")
    _check_shards(folder)
    return config


def _check_shards(folder: Path) -> None:
    """Every shard a model.safetensors.index.json names is there: a download stopped between shards
    has config, tokenizer and some weights, and is still not a model."""
    index = folder / "model.safetensors.index.json"
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EngineError(f"{index} cannot be read: {exc}", kind="bad_model_file") from None
    missing = sorted(s for s in shards if not (folder / s).is_file())
    if missing:
        raise EngineError(f"{folder} is not a complete MLX model: it lacks the weight shards "
                          f"{', '.join(missing)}", kind="bad_model_file")


def mlx_chat_template(folder: str | Path) -> str | None:
    """The chat template an MLX folder's tokenizer carries, if any (to detect the thinking style)."""
    try:
        config = json.loads((Path(folder) / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("chat_template") if isinstance(config, dict) else None


def convert_gguf(gguf: str | Path, out: str | Path) -> Path:
    """Write an MLX model folder for a llama-architecture GGUF (SmolLM2, Llama…); returns the folder."""
    import mlx.core as mx
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    weights, meta = mx.load(str(gguf), return_metadata=True)
    value = lambda key: meta[key].item() if hasattr(meta[key], "item") else meta[key]  # noqa: E731
    if value("general.architecture") != "llama":
        raise EngineError(f"{gguf}: only llama-architecture GGUFs convert to MLX here, not "
                          f"{value('general.architecture')}", kind="bad_model_file")
    n_head, n_kv = int(value("llama.attention.head_count")), int(value("llama.attention.head_count_kv"))
    renamed = {}
    for key, array in weights.items():
        parts = key.split(".")
        if parts[0] == "blk":
            layer, name, kind = parts[1], parts[2], parts[3]
            if name == "attn_q":
                array = _unpermute(array, n_head)
            elif name == "attn_k":
                array = _unpermute(array, n_kv)
            renamed[f"model.layers.{layer}.{_LAYER_NAMES[name]}.{kind}"] = array
        else:
            renamed[f"{_TOP_NAMES[parts[0]]}.{parts[1]}"] = array
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(folder / "model.safetensors"), renamed)
    config = {
        "model_type": "llama",
        "hidden_size": int(value("llama.embedding_length")),
        "num_hidden_layers": int(value("llama.block_count")),
        "intermediate_size": int(value("llama.feed_forward_length")),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "rms_norm_eps": float(value("llama.attention.layer_norm_rms_epsilon")),
        "vocab_size": int(value("llama.vocab_size")),
        "rope_theta": float(value("llama.rope.freq_base")),
        "max_position_embeddings": int(value("llama.context_length")),
        "tie_word_embeddings": "output.weight" not in weights,
        # Per-layer bits (Q8_0 embeddings, Q4_1 elsewhere) are read from the shapes by mlx-lm.
        "quantization": {"group_size": 32, "bits": 4},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")

    tokens = list(meta["tokenizer.ggml.tokens"])
    types = [int(t) for t in (meta["tokenizer.ggml.token_type"].tolist()
                              if hasattr(meta["tokenizer.ggml.token_type"], "tolist") else meta["tokenizer.ggml.token_type"])]
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    # GPT-2 style byte-level BPE with digits split one by one: llama.cpp's "smollm" pre-tokenizer.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == CONTROL_TOKEN])
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokens[int(value("tokenizer.ggml.bos_token_id"))],
        "eos_token": tokens[int(value("tokenizer.ggml.eos_token_id"))],
        "chat_template": value("tokenizer.chat_template"),
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
    }), encoding="utf-8")
    return folder


def _unpermute(array, heads: int):
    """Undo llama.cpp's reshape(heads, 2, rows/heads/2).swapaxes(1, 2) of the Q and K rows."""
    rows = array.shape[0]
    return array.reshape(heads, rows // heads // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)
