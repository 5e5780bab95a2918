"""evaluate, mine and analyze refuse nonsense: numeric options where they are parsed (exit 2),
splits the data does not have (exit 1, naming the splits it has); warnings are one line."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pytest

from lookalike.cli import build_parser, main, show_warning
from lookalike.errors import ConfigError
from lookalike.evaluation.model_eval import evaluate_checkpoint

from .benchmark_layouts import write_cub
from .conftest import fails, write_class_folder

UNSPLIT = "all (also called train and test: it has no splits of its own), seen, unseen"


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run a command line that argparse must refuse: exit 2, one line on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: "), lines
    return lines[0]


EVALUATE = ["evaluate", "--checkpoint", "ckpt"]
MINE = ["mine", "--out", "pools.npz"]
ANALYZE = ["analyze"]


@pytest.mark.parametrize(("command", "option", "value", "shown", "accepted"), [
    (EVALUATE, "--limit", "0", "--limit", "an integer in [1, inf), got 0"),
    (EVALUATE, "--limit", "-3", "--limit", "an integer in [1, inf), got -3"),
    (EVALUATE, "--limit", "nan", "--limit", "an integer in [1, inf), got 'nan'"),
    (MINE, "--limit", "0", "--limit", "an integer in [1, inf), got 0"),
    (MINE, "--input-size", "0", "--input-size", "an integer in [1, inf), got 0"),
    (MINE, "--hard-positives", "0", "--hard-positives/--k-pos", "an integer in [1, inf), got 0"),
    (MINE, "--k-pos", "1.5", "--hard-positives/--k-pos", "an integer in [1, inf), got '1.5'"),
    (MINE, "--hard-negatives", "-1", "--hard-negatives/--k-neg",
     "an integer in [1, inf), got -1"),
    (MINE, "--k-neg", "0", "--hard-negatives/--k-neg", "an integer in [1, inf), got 0"),
    (MINE, "--positive-band", "1", "--positive-band", "a number in [0, 1), got 1"),
    (MINE, "--positive-band", "nan", "--positive-band", "a number in [0, 1), got nan"),
    (MINE, "--negative-band", "-0.1", "--negative-band", "a number in [0, 1), got -0.1"),
    (MINE, "--negative-band", "inf", "--negative-band", "a number in [0, 1), got inf"),
    (MINE, "--skip-hardest", "-1", "--skip-hardest", "an integer in [0, inf), got -1"),
    (ANALYZE, "--limit", "0", "--limit", "an integer in [1, inf), got 0"),
    (ANALYZE, "--input-size", "-64", "--input-size", "an integer in [1, inf), got -64"),
])
def test_numeric_options_are_checked_where_parsed(capsys: pytest.CaptureFixture[str],
                                                  command: list[str], option: str, value: str,
                                                  shown: str, accepted: str) -> None:
    line = usage_error(capsys, [*command, option, value])
    assert line.startswith(f"lookalike: error: argument {shown}: must be {accepted}"), line


def test_the_edges_of_each_range_are_accepted() -> None:
    args = build_parser().parse_args([*MINE, "--limit", "1", "--input-size", "1", "--k-pos",
                                      "1", "--k-neg", "1", "--positive-band", "0",
                                      "--negative-band", "0.999", "--skip-hardest", "0"])
    assert (args.limit, args.input_size, args.hard_positives, args.hard_negatives) == (1, 1, 1, 1)
    assert (args.positive_band, args.negative_band, args.skip_hardest) == (0.0, 0.999, 0)
    assert build_parser().parse_args([*EVALUATE, "--limit", "1"]).limit == 1


def test_evaluate_limit_zero_is_refused_by_the_library_too(checkpoint: Path,
                                                           tiny_folder: Path) -> None:
    with pytest.raises(ConfigError, match="limit must be an integer >= 1"):
        evaluate_checkpoint(checkpoint, str(tiny_folder), "all", limit=0, show_progress=False)


def write_idx_folder(folder: Path) -> Path:
    """The four Fashion-MNIST-named IDX files (4 train, 2 test items of 8x8 pixels)."""
    folder.mkdir(parents=True)
    for prefix, count in (("train", 4), ("t10k", 2)):
        images = struct.pack(">4B3I", 0, 0, 0x08, 3, count, 8, 8) + bytes(count * 64)
        labels = struct.pack(">4BI", 0, 0, 0x08, 1, count) + bytes(range(count))
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    return folder


def write_split_tree(root: Path) -> Path:
    write_class_folder(root / "train", classes=2, per_class=2)
    write_class_folder(root / "val", classes=2, per_class=2)
    return root


def write_manifest(root: Path, split_column: bool) -> Path:
    images = write_class_folder(root / "images", classes=2, per_class=2)
    rows = [f"{p.relative_to(root)},{p.parent.name}" + (f",{part}" if split_column else "")
            for p, part in zip(sorted(images.rglob("*.png")), ["train", "gallery"] * 2,
                               strict=True)]
    header = "path,label,split" if split_column else "path,label"
    (root / "list.csv").write_text("\n".join([header, *rows]) + "\n")
    return root / "list.csv"


# --data layout -> (how to write it under tmp_path, the splits the error must list)
LAYOUTS = {
    "plain folder": (lambda tmp: write_class_folder(tmp / "photos", 2, 2), UNSPLIT),
    "train/ val/ tree": (lambda tmp: write_split_tree(tmp / "tree"),
                         "train, val, all, seen, unseen"),
    "manifest with a split column": (lambda tmp: write_manifest(tmp, split_column=True),
                                     "gallery, train, all, seen, unseen"),
    "manifest without one": (lambda tmp: write_manifest(tmp, split_column=False), UNSPLIT),
    "IDX folder": (lambda tmp: write_idx_folder(tmp / "idx"), "train, test, all, seen, unseen"),
    "CUB-200-2011": (lambda tmp: write_cub(tmp), "train, test, all, seen, unseen"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_evaluate_refuses_a_split_the_data_lacks(layout: str, checkpoint: Path,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write, splits = LAYOUTS[layout]
    data = write(tmp_path)
    line = fails(capsys, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data),
                          "--split", "bogus", "--quiet"])
    assert line.endswith(f" has no split 'bogus'; its splits are: {splits}"), line
    assert str(data) in line


def test_fashion_mnist_by_name_lists_its_splits(checkpoint: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(capsys, ["evaluate", "--checkpoint", str(checkpoint), "--split", "val"])
    assert line == ("lookalike: error: fashion-mnist has no split 'val'; its splits are: "
                    "train, test, all, seen, unseen")


@pytest.mark.parametrize("command", [
    ["mine", "--out", "never.npz"],
    ["analyze", "--out", "never"],
])
def test_mine_and_analyze_refuse_a_split_the_data_lacks(command: list[str], checkpoint: Path,
                                                        tiny_folder: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    line = fails(capsys, [*command, "--data", str(tiny_folder), "--split", "test-set",
                          "--mining-model", str(checkpoint), "--quiet"])
    assert line == (f"lookalike: error: {tiny_folder} has no split 'test-set'; its splits "
                    f"are: {UNSPLIT}")
    assert not (tmp_path / "never.npz").exists()


@pytest.mark.parametrize("split", ["test", "train", "all", "unseen"])
def test_a_plain_folder_keeps_its_documented_split_names(split: str, checkpoint: Path,
                                                         tiny_folder: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(tiny_folder),
                 "--split", split, "--limit", "12", "--quiet"]) == 0
    assert "MAP@R" in capsys.readouterr().out


def test_a_split_tree_evaluates_the_split_asked_for(checkpoint: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tree = write_split_tree(tmp_path / "tree")
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(tree),
                 "--split", "val", "--quiet"]) == 0
    line = fails(capsys, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(tree),
                          "--quiet"])  # the default split, test, is not one of its folders
    assert line.endswith("has no split 'test'; its splits are: train, val, all, seen, unseen")


def test_a_warning_is_one_plain_line(checkpoint: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    photos = write_class_folder(tmp_path / "photos", classes=2, per_class=2)
    (photos / "notes.txt").write_text("not an image")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(photos),
                 "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lookalike: warning: {photos}: ignored 1 files that are not images or lie "
                   "outside the class folders"]


def test_skip_bad_summary_is_one_plain_line(checkpoint: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    photos = write_class_folder(tmp_path / "photos", classes=2, per_class=3)
    (photos / "class_1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    capsys.readouterr()
    assert main(["index", "build", "--checkpoint", str(checkpoint), "--data", str(photos),
                 "--skip-bad", "--out", str(tmp_path / "index"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "UserWarning" not in err and ".py:" not in err
    warned = [line for line in err.splitlines() if "skipped" in line]
    assert len(warned) == 1, err
    assert warned[0].startswith(f"lookalike: warning: {photos}: skipped 1 bad images of 7 (first: ")


def test_verbose_keeps_pythons_warning_with_its_source(checkpoint: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    photos = write_class_folder(tmp_path / "photos", classes=2, per_class=2)
    (photos / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="ignored 1 files") as caught:
        assert main(["--verbose", "evaluate", "--checkpoint", str(checkpoint), "--data",
                     str(photos), "--quiet"]) == 0
    assert caught[0].filename.endswith(".py")
    assert "lookalike: warning:" not in capsys.readouterr().err


def test_show_warning_folds_a_long_message_onto_one_line(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    show_warning(UserWarning("first part\n  second part"), UserWarning, "/x/y.py", 3)
    assert capsys.readouterr().err == "lookalike: warning: first part second part\n"


def test_the_warning_display_lasts_for_the_command_only(tiny_folder: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    before = warnings.showwarning
    fails(capsys, ["evaluate", "--checkpoint", str(tiny_folder / "none"), "--quiet"])
    assert warnings.showwarning is before
