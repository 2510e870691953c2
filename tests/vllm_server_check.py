"""Run in a subprocess by ``test_vllm_server.py``: generation through TRL's own client.

``python tests/vllm_server_check.py PORT OUT_JSON`` talks to the vLLM server the test started
on 127.0.0.1:PORT through ``trl.generation.vllm_client.VLLMClient`` (the class TRL's server
mode uses), asks for greedy completions of three tiny-model prompts and for sampled ones,
computes HF ``generate``'s greedy completions of the same prompts, tries the weight-sync
handshake on a CPU device, and writes what it saw to OUT_JSON. A subprocess because the
client imports vLLM, which the test process leaves alone (as the other vLLM tests do).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

GREEDY_TOKENS = 256  # a 3-person trace and answer: median 215 tokens
SAMPLED_TOKENS = 48
SAMPLED_N = 4


def main(port: int, out_path: str) -> None:
    from tiny_trainer import tiny_dataset
    from trl.generation.vllm_client import VLLMClient
    from vllm_colocate_check import hf_greedy

    from kk_puzzles import generate
    from stages.model_io import load_model_and_tokenizer
    from stages.tiny.base import ASSET_DIR

    _, tok = load_model_and_tokenizer(ASSET_DIR)
    dataset = tiny_dataset(tok, generate(3, 3, seed=0))
    prompts = [tok(row["prompt"])["input_ids"] for row in dataset]
    eos = int(tok.eos_token_id)

    client = VLLMClient(host="127.0.0.1", server_port=port)
    result: dict[str, Any] = {"model": client.model, "prompts": prompts}
    greedy = client.generate(prompts, n=1, temperature=0.0, max_tokens=GREEDY_TOKENS)
    result["server_prompt_ids"] = greedy["prompt_ids"]
    result["server_greedy"] = greedy["completion_ids"]
    result["server_greedy_logprobs"] = greedy["logprobs"]
    result["hf_greedy"] = hf_greedy(prompts, eos, max_tokens=GREEDY_TOKENS)
    sampled = client.generate(
        prompts, n=SAMPLED_N, temperature=1.2, top_k=0, max_tokens=SAMPLED_TOKENS
    )
    result["sampled"] = sampled["completion_ids"]
    result["sampled_logprobs"] = sampled["logprobs"]
    result["vocab_size"] = len(tok)
    result["eos"] = eos
    try:  # TRL's server-mode trainer calls this with its device before the first step
        client.init_communicator(device="cpu")
        result["weight_sync_on_cpu"] = "no error"
    except NotImplementedError as err:
        result["weight_sync_on_cpu"] = str(err)
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(int(sys.argv[1]), sys.argv[2])
