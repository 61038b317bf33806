"""distributed.setup picks the device a process trains on."""

from __future__ import annotations

import pytest
import torch

from minternet import distributed


@pytest.mark.parametrize(("local_rank", "asked", "expected"),
                         [("0", "cuda", "cuda:0"), ("1", "cuda", "cuda:1"),
                          ("1", "cuda:0", "cuda:0"), ("0", "cpu", "cpu")])
def test_cuda_without_an_index_is_this_process_gpu(
    monkeypatch: pytest.MonkeyPatch, local_rank: str, asked: str, expected: str
) -> None:
    chosen: list[torch.device] = []
    # No GPU here: record what would be selected instead of selecting it.
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.setup(asked)
    assert ctx.device == torch.device(expected)
    assert chosen == ([torch.device(expected)] if expected != "cpu" else [])
