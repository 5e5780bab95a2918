"""ONNX export and the ONNX Runtime path: the same embeddings as PyTorch, on real images.

The oracle is the PyTorch model itself: images from ``tiny_folder``, prepared exactly as an
index prepares queries (``query_batch``), embedded by both; ONNX Runtime must agree within
1e-5 at every batch size, and so must what an index built or served with it returns.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from lookalike.export import (
    ONNX_FILE,
    ExportError,
    OnnxRuntime,
    TorchRuntime,
    choose_runtime,
    export_onnx,
    onnx_bytes,
)
from lookalike.export.runtime import ChosenRuntime, Timing
from lookalike.models import load_checkpoint
from lookalike.search import Index
from lookalike.search.queries import query_batch
from lookalike.search.vectors import stored_vectors
from lookalike.service import ServiceSettings, create_app
from lookalike.service.server import open_for_serving

from .conftest import fails, images_of

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'lookalike[onnx]'")
pytest.importorskip("onnxscript", reason="the onnx extra: pip install 'lookalike[onnx]'")

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def exported(checkpoint: Path) -> bytes:
    """The tiny checkpoint's ONNX model (exported once: an export takes seconds)."""
    model, _ = load_checkpoint(checkpoint)
    return onnx_bytes(model, str(checkpoint))


@pytest.fixture(scope="module")
def prepared(checkpoint: Path, tiny_folder: Path) -> torch.Tensor:
    """Every tiny_folder image, (48, 3, 28, 28), prepared as an index prepares queries."""
    model, _ = load_checkpoint(checkpoint)
    return query_batch(images_of(tiny_folder), model.config.input_size,
                       model.config.in_channels)


@pytest.mark.parametrize("batch", [1, 7, 48])
def test_onnx_runtime_embeds_real_images_as_pytorch_does(checkpoint: Path, exported: bytes,
                                                         prepared: torch.Tensor,
                                                         batch: int) -> None:
    model, _ = load_checkpoint(checkpoint)
    images = prepared[:batch]
    expected = TorchRuntime(model)(images)
    got = OnnxRuntime(exported)(images)
    assert got.shape == expected.shape == (batch, model.config.embedding_dim)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


class TinyBackbone(torch.nn.Module):
    """A user backbone taking ``channels`` channels: conv, pool (the backbone contract)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_channels = channels
        self.feature_dim = 6
        self.conv = torch.nn.Conv2d(channels, 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


@pytest.mark.parametrize(("data", "backbone"), [(1, 3), (3, 1)])
def test_preprocessing_is_inside_the_export(data: int, backbone: int, tiny_folder: Path) -> None:
    """Channel conversion (gray -> RGB by repeating, RGB -> gray by luma) and per-channel
    mean/std run inside the exported graph: raw [0, 1] pixels in, the model's embedding out."""
    from lookalike.models import EmbedderConfig, build_embedder

    stats = (0.2, 0.4, 0.6)[:backbone], (0.5, 0.6, 0.7)[:backbone]
    config = EmbedderConfig(backbone="tiny", embedding_dim=4, input_size=20, in_channels=data,
                            mean=stats[0], std=stats[1])
    model = build_embedder(config, backbone=TinyBackbone(backbone), pretrained=False).eval()
    images = query_batch(images_of(tiny_folder)[:5], config.input_size, data)
    assert images.shape == (5, data, 20, 20)
    got = OnnxRuntime(onnx_bytes(model))(images)
    np.testing.assert_allclose(got, TorchRuntime(model)(images), atol=TOLERANCE, rtol=0)


def test_mirror_averaging_is_inside_the_export(tiny_folder: Path) -> None:
    """A --mirror-average model exports with its mirrored pass: ONNX Runtime gives its
    embeddings, which a mirror image shares."""
    from lookalike.models import EmbedderConfig, build_embedder

    config = EmbedderConfig(backbone="vgg-fc", embedding_dim=8, in_channels=3,
                            mirror_average=True)
    model = build_embedder(config, pretrained=False).eval()
    images = query_batch(images_of(tiny_folder)[:5], config.input_size, 3)
    runtime = OnnxRuntime(onnx_bytes(model))
    got = runtime(images)
    np.testing.assert_allclose(got, TorchRuntime(model)(images), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(runtime(images.flip(-1)), got, atol=TOLERANCE, rtol=0)


def test_export_cli_writes_a_checked_file(checkpoint: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          prepared: torch.Tensor) -> None:
    from lookalike.cli import main

    out = tmp_path / "out" / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model, _ = load_checkpoint(checkpoint)
    np.testing.assert_allclose(OnnxRuntime(out)(prepared), TorchRuntime(model)(prepared),
                               atol=TOLERANCE, rtol=0)
    assert not list(out.parent.glob(".*.tmp"))  # written atomically


@pytest.fixture(scope="module")
def torch_index(checkpoint: Path, tiny_folder: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    index = Index.build(checkpoint, tiny_folder, tmp_path_factory.mktemp("torch") / "index",
                        progress=False, log=lambda _: None)
    yield index
    index.close()


@pytest.fixture(scope="module")
def onnx_index(checkpoint: Path, tiny_folder: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """Built with ``runtime="onnx"``: embedded by ONNX Runtime, its export kept."""
    index = Index.build(checkpoint, tiny_folder, tmp_path_factory.mktemp("onnx") / "index",
                        runtime="onnx", progress=False, log=lambda _: None)
    yield index
    index.close()


def test_an_index_built_with_onnx_runtime_holds_pytorchs_vectors(torch_index: Index,
                                                                 onnx_index: Index) -> None:
    assert onnx_index.onnx_path == onnx_index.path / "model" / ONNX_FILE
    assert onnx_index.onnx_path.is_file()
    assert not torch_index.onnx_path.exists()
    np.testing.assert_allclose(stored_vectors(onnx_index.vectors),
                               stored_vectors(torch_index.vectors), atol=TOLERANCE, rtol=0)


def test_the_export_cli_writes_an_indexs_model_next_to_it(
        torch_index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lookalike.cli import main

    folder = tmp_path / "copy"
    shutil.copytree(torch_index.path, folder)
    assert main(["export", "--index", str(folder)]) == 0
    assert (folder / "model" / ONNX_FILE).is_file()
    assert "ONNX Runtime matches PyTorch" in capsys.readouterr().out


@pytest.mark.parametrize("runtime", ["onnx", "auto"])
def test_the_server_answers_alike_with_either_runtime(onnx_index: Index, torch_index: Index,
                                                      tiny_folder: Path, runtime: str) -> None:
    settings = ServiceSettings(max_batch=8)
    lines: list[str] = []
    served = open_for_serving(onnx_index.path, settings=settings, runtime=runtime,
                              log=lines.append)
    assert not any("export" in line for line in lines)  # the folder's model.onnx was used
    query = Path(images_of(tiny_folder)[5]).read_bytes()
    try:
        with TestClient(create_app(served, settings)) as onnx_client, \
                TestClient(create_app(torch_index, settings)) as torch_client:
            health = onnx_client.get("/api/health").json()
            if runtime == "onnx":
                assert health["runtime"] == {"runtime": "onnx"}
            else:
                assert set(health["runtime"]["by_batch"]) == {"1", "8"}
                assert set(health["runtime"]["ms"]["8"]) == {"torch", "onnx"}
            found = [client.post("/api/search", files={"image": ("q.png", query)},
                                 data={"k": "6"}).json()
                     for client in (onnx_client, torch_client)]
    finally:
        served.close()
    onnx_answer, torch_answer = found
    assert [r["id"] for r in onnx_answer["results"]] == [r["id"] for r in
                                                        torch_answer["results"]]
    np.testing.assert_allclose([r["distance"] for r in onnx_answer["results"]],
                               [r["distance"] for r in torch_answer["results"]], atol=TOLERANCE)
    assert onnx_answer["timing"]["runtime"] in ("onnx", "torch")


def test_a_stale_onnx_file_is_replaced_in_memory(torch_index: Index, other_checkpoint: Path,
                                                 tmp_path: Path) -> None:
    """An index's model.onnx of another model (a folder put together by hand) is not used:
    the server exports the right one in memory and says so; the folder is not written."""
    folder = tmp_path / "stale"
    shutil.copytree(torch_index.path, folder)
    other, _ = load_checkpoint(other_checkpoint)
    export_onnx(other, folder / "model" / ONNX_FILE)
    before = (folder / "model" / ONNX_FILE).read_bytes()
    lines: list[str] = []
    served = open_for_serving(folder, settings=ServiceSettings(), runtime="onnx",
                              log=lines.append)
    try:
        assert any("does not match its model" in line for line in lines)
        assert any("exported the model to ONNX in memory" in line for line in lines)
        images = torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(1))
        np.testing.assert_allclose(served.embedder(images), TorchRuntime(served.model)(images),
                                   atol=TOLERANCE, rtol=0)
    finally:
        served.close()
    assert (folder / "model" / ONNX_FILE).read_bytes() == before


def test_auto_chooses_per_batch_size(checkpoint: Path, exported: bytes) -> None:
    model, _ = load_checkpoint(checkpoint)
    choice = choose_runtime(model, "auto", onnx=exported, batches=(1, 4), log=print)
    assert choice.exported is None  # the given export was checked and used
    assert isinstance(choice.runtime, ChosenRuntime)
    info = choice.runtime.describe()
    assert set(info["by_batch"]) == {"1", "4"}
    assert all(set(ms) == {"torch", "onnx"} and min(ms.values()) > 0
               for ms in info["ms"].values())
    assert choose_runtime(model, "torch").runtime.name == "torch"
    assert choose_runtime(model, "onnx", onnx=exported).runtime.name == "onnx"


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return np.full((len(images), 1), len(self.name), dtype=np.float32)

    def describe(self) -> dict[str, str]:
        return {"runtime": self.name}


def test_chosen_runtime_routes_each_batch_to_the_winner_of_its_size() -> None:
    """Hand-made timings: onnx wins small batches, torch from 9 on."""
    timings = [Timing(1, {"torch": 2.0, "onnx": 1.0}), Timing(8, {"torch": 3.0, "onnx": 2.0}),
               Timing(32, {"torch": 4.0, "onnx": 9.0})]
    routed = ChosenRuntime({"torch": Named("torch"), "onnx": Named("onnx")}, timings)
    expected = {1: "onnx", 2: "onnx", 8: "onnx", 9: "torch", 32: "torch", 500: "torch"}
    assert {batch: routed.runtime_for(batch).name for batch in expected} == expected
    assert routed.name == "onnx+torch"
    assert routed.describe()["by_batch"] == {"1": "onnx", "8": "onnx", "32": "torch"}


def test_a_model_that_cannot_export_falls_back_to_pytorch_under_auto(
        checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lookalike.export.runtime as runtime_module

    def broken(*_: object, **__: object) -> bytes:
        raise ExportError("the model: ONNX export failed (no such operator)")

    monkeypatch.setattr(runtime_module, "onnx_bytes", broken)
    model, _ = load_checkpoint(checkpoint)
    lines: list[str] = []
    assert choose_runtime(model, "auto", log=lines.append).runtime.name == "torch"
    assert lines == ["using PyTorch: the model: ONNX export failed (no such operator)"]
    with pytest.raises(ExportError, match="no such operator"):
        choose_runtime(model, "onnx")


@pytest.mark.parametrize(("argv", "message"), [
    (["export"], "give --checkpoint CKPT --onnx FILE, or --index INDEX"),
    (["export", "--checkpoint", "C", "--index", "I"], "give --checkpoint CKPT --onnx FILE"),
    (["export", "--checkpoint", "CKPT"], "--checkpoint needs --onnx FILE"),
    (["export", "--checkpoint", "{missing}", "--onnx", "m.onnx"], "checkpoint not found"),
    (["export", "--index", "{missing}"], "no such index folder"),
    (["export", "--checkpoint", "{checkpoint}", "--onnx", "{file}/inside.onnx"],
     "not a file path"),
])
def test_export_errors_are_one_line(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                    tmp_path: Path, argv: list[str], message: str) -> None:
    (tmp_path / "a-file").write_text("x")
    values = {"missing": str(tmp_path / "missing"), "checkpoint": str(checkpoint),
              "file": str(tmp_path / "a-file")}
    line = fails(capsys, [arg.format(**values) for arg in argv])
    assert message in line


def test_index_build_auto_weighs_the_export_against_the_collection(
        checkpoint: Path, tiny_folder: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Below AUTO_ONNX_ITEMS items auto keeps to PyTorch (no export); from there on it
    times both, and keeps the export it made for the server."""
    import lookalike.search.index as index_module

    lines: list[str] = []
    with Index.build(checkpoint, tiny_folder, tmp_path / "small", runtime="auto",
                     progress=False, log=lines.append) as small:
        assert not small.onnx_path.exists()
    assert not any("embedding with" in line for line in lines)
    monkeypatch.setattr(index_module, "AUTO_ONNX_ITEMS", 10)
    with Index.build(checkpoint, tiny_folder, tmp_path / "large", runtime="auto",
                     progress=False, log=lines.append) as large:
        assert large.onnx_path.is_file()
        np.testing.assert_allclose(stored_vectors(large.vectors),
                                   stored_vectors(small.vectors), atol=TOLERANCE, rtol=0)
    assert any(line.startswith("embedding with ") for line in lines)
