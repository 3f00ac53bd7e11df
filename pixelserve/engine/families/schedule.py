"""A1111's prompt editing and alternation (``GenerationRequest.prompt_schedule``): the positive text
embedding changes at given steps. Each scheduled text is encoded like the request's own prompt
(weighting, chunks, clip skip, LoRAs, textual inversions), padded to one length with empty-prompt
chunks, and the step callback hands the pipeline the next one through ``prompt_embeds``
(diffusers reads it back from ``callback_on_step_end``). SD pipelines only (engine/checks.py).
"""

from __future__ import annotations

import bisect
from dataclasses import replace
from typing import Any, Callable

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.base import PromptLists

#: The tensors the switch reads and writes in the pipeline's callback.
TENSOR_INPUTS = ["latents", "prompt_embeds"]


class PromptSwitch:
    def __init__(self, request: GenerationRequest, texts: PromptLists, encode: Callable[[PromptLists], dict],
                 first: dict[str, Any]):
        import torch

        n = len(texts.prompt)
        outs = [first] + [encode(replace(texts, prompt=[t] * n)) for _, t in request.prompt_schedule[1:]]
        longest = max(max(o["prompt_embeds"].shape[1], o["negative_prompt_embeds"].shape[1]) for o in outs)
        empty = None
        if any(o["prompt_embeds"].shape[1] != longest or o["negative_prompt_embeds"].shape[1] != longest
               for o in outs):
            empty = encode(replace(texts, prompt=[""] * n, negative=[""] * n))["prompt_embeds"]

        def pad(e: Any) -> Any:
            if e.shape[1] == longest:
                return e
            return torch.cat([e] + [empty[:, :77]] * ((longest - e.shape[1]) // 77), dim=1)

        self.positives = [pad(o["prompt_embeds"]) for o in outs]
        self.negative = pad(first["negative_prompt_embeds"])
        self.ends = [end for end, _ in request.prompt_schedule]
        self.first = {**first, "prompt_embeds": self.positives[0], "negative_prompt_embeds": self.negative}

    def embeds_for(self, step: int) -> Any:
        """The positive embeddings of 1-based ``step``."""
        return self.positives[min(bisect.bisect_left(self.ends, step), len(self.ends) - 1)]

    def wrap(self, callback: Callable) -> Callable:
        import torch

        def switched(pipe, step, timestep, callback_kwargs):
            callback_kwargs = callback(pipe, step, timestep, callback_kwargs)
            positive = self.embeds_for(step + 2)  # the step after the one that just ended (0-based ``step``)
            callback_kwargs["prompt_embeds"] = (torch.cat([self.negative, positive])
                                                if pipe.do_classifier_free_guidance else positive)
            return callback_kwargs

        return switched
