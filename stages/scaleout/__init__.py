"""Scaling a run out: multi-process launches and vLLM rollouts.

``launch``: this process's rank and world size from the launcher's environment, the
main-process check, barriers, the GPU count, the LoRA (peft) config and the commands of vLLM
server mode (``python -m stages.scaleout.launch``). ``vllm_support``: the one guarded vLLM
import and the coherence checks of the vLLM settings. Nothing here imports torch, peft or
vllm at module level.
"""
