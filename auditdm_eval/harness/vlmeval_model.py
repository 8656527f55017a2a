"""Any ``model_adapters`` model as a VLMEvalKit model (``vlmeval.vlm.base.BaseModel``), batched.

VLMEvalKit's inference loop asks a local model for one item at a time. Before the loop it hands
the model the dataset's image writer (``set_dump_image``), so the model knows the dataset it
serves: when asked for an item it has no answer for yet, it builds the prompts of that item and
the next ones the loop will ask for (as VLMEvalKit builds them: the dataset's ``build_prompt``, or
the model's own where it has one), answers them in one batched adapter call, and serves the loop
from those answers. The texts are those the one-at-a-time path gives: each request carries its
own settings, and the adapter honours them per request.
"""

from __future__ import annotations

from collections import defaultdict, deque

from PIL import Image
from vlmeval.vlm.base import BaseModel

from model_adapters import GenerationSettings, load_model

from .prompting import harness_request
from .vlmeval_dataset import AuditDMDataset

Key = tuple[str, tuple[tuple[str, str], ...]]


def message_key(message: list[dict[str, str]], dataset: str | None) -> Key:
    return (dataset or "", tuple((str(item["type"]), str(item["value"])) for item in message))


class AuditDMVLM(BaseModel):
    INTERLEAVE = False
    allowed_types = ["text", "image"]

    def __init__(
        self,
        model: str,
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 32,
        prompt_mode: str = "auto",
        trust_remote_code: bool = False,
    ):
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.batch_size = int(batch_size)
        self.adapter = load_model(model, batch_size=self.batch_size, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        self.max_new_tokens = max_new_tokens
        self.prompt_mode = prompt_mode
        self._answers: dict[Key, deque[str]] = defaultdict(deque)
        self._cursor: dict[str, int] = {}  # dataset -> position of the next row the loop will ask for

    # -- one request ------------------------------------------------------------------------------
    def _request(self, message: list[dict[str, str]], dataset: str | None):
        images = [Image.open(item["value"]).convert("RGB") for item in message if item["type"] == "image"]
        text = "\n".join(item["value"] for item in message if item["type"] == "text")
        settings = GenerationSettings(max_new_tokens=AuditDMDataset.answer_length(dataset) or self.max_new_tokens)
        return harness_request(text, images, self.prompt_mode, settings)

    def generate_inner(self, message: list[dict[str, str]], dataset: str | None = None) -> str:
        key = message_key(message, dataset)
        if not self._answers.get(key):
            self._answer_ahead(message, dataset, key)
        answers = self._answers[key]
        text = answers.popleft()
        if not answers:
            del self._answers[key]
        return text

    def generate_batch(self, messages: list[list[dict[str, str]]], dataset: str | None = None) -> list[str]:
        """Answers to many messages in one batched adapter call."""
        return self.adapter.generate([self._request(message, dataset) for message in messages])

    # -- the rows the loop will ask for next --------------------------------------------------------
    def _dataset(self, name: str | None):
        dataset = getattr(self.dump_image_func, "__self__", None)
        if dataset is None or getattr(dataset, "dataset_name", None) != name or not hasattr(dataset, "data"):
            return None
        return dataset

    def _message_of(self, dataset, line) -> list[dict[str, str]] | None:
        """The message VLMEvalKit's loop builds for ``line`` (same precedence as ``infer_data``)."""
        name = dataset.dataset_name
        if getattr(dataset, "force_use_dataset_prompt", False):
            struct = dataset.build_prompt(line)
        elif self.use_custom_prompt(name):
            struct = self.build_prompt(line, dataset=name)
        else:
            struct = dataset.build_prompt(line)
        if self.check_content(struct) not in ("str", "dict", "liststr", "listdict"):
            return None
        message = self.preproc_content(struct)
        if message is None or any(item["type"] not in self.allowed_types for item in message):
            return None
        return message

    def _answer_ahead(self, message: list[dict[str, str]], dataset_name: str | None, key: Key) -> None:
        dataset = self._dataset(dataset_name)
        window: list[list[dict[str, str]]] = [message]
        if dataset is not None and self.batch_size > 1:
            window = self._window(dataset, key) or window
        try:
            texts = self.generate_batch(window, dataset_name)
        except Exception:
            if len(window) == 1:
                raise
            window, texts = [message], self.generate_batch([message], dataset_name)  # let the failing row fail alone
        for item, text in zip(window, texts):
            self._answers[message_key(item, dataset_name)].append(text)

    def _window(self, dataset, key: Key) -> list[list[dict[str, str]]] | None:
        """The message of ``key`` and those of the rows after it on this rank, ``batch_size`` in all."""
        from vlmeval.smp import get_rank_and_world_size

        rank, world_size = get_rank_and_world_size()
        rows = dataset.data.iloc[rank::world_size]
        name = dataset.dataset_name
        start = self._cursor.get(name, 0)
        order = list(range(start, len(rows))) + list(range(0, min(start, len(rows))))
        for position in order:  # the asked row is nearly always the one at the cursor
            message = self._message_of(dataset, rows.iloc[position])
            if message is None or message_key(message, name) != key:
                continue
            window = [message]
            for later in range(position + 1, min(position + self.batch_size, len(rows))):
                following = self._message_of(dataset, rows.iloc[later])
                if following is None:
                    break
                window.append(following)
            self._cursor[name] = position + len(window)
            return window
        return None
