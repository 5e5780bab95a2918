"""The ``lookalike`` command: parse arguments, call one library function per verb.

Nothing here computes anything: each sub-command maps its options onto a library call
(``train``, ``evaluate_checkpoint``, ``run_demo``), and ``main`` turns lookalike's errors
into one line on stderr and a non-zero exit status (``--verbose`` shows the traceback).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from lookalike import __version__, cli_search
from lookalike.allocator import tune_malloc
from lookalike.cli_types import OneLineParser, integer, number
from lookalike.denormals import flush_denormals
from lookalike.distances import DISTANCES
from lookalike.errors import LookalikeError, TrainingInterrupted
from lookalike.training.config import LR_SCHEDULES, OPTION_PART, SPLITS, TrainConfig

EXAMPLES = {
    "train": """examples:
  lookalike train --data fashion-mnist --mining batch-all --epochs 10 --out runs/ba
  lookalike train --data photos/ --mining semi-hard --embedding-dim 128 --out runs/photos
  lookalike train --data items.csv --classes-per-batch 16 --items-per-class 4 --out runs/csv
  lookalike train --resume runs/ba            # continue where it stopped (or Ctrl-C'ed)
  lookalike train --resume runs/ba --epochs 20  # extend a finished run""",
    "evaluate": """examples:
  lookalike evaluate --checkpoint runs/ba/best
  lookalike evaluate --checkpoint runs/ba/best --data photos.csv --split test --json m.json""",
    "mine": """examples:
  lookalike mine --data fashion-mnist --mining-model efficientnet-lite0 --out pools.npz
  lookalike mine --data photos/ --mining-model runs/ba/best --hard-positives 10 \\
      --negative-band 0.01 --out photos-pools.npz""",
    "analyze": """examples:
  lookalike analyze --pools pools.npz --out analysis/
  lookalike analyze --data fashion-mnist --mining-model runs/ba/best --limit 20000""",
    "demo": """examples:
  lookalike demo                 # about 10 minutes on 2 CPU cores; report in runs/demo/report
  lookalike demo --quick         # under a minute: a smoke test of the whole pipeline
  lookalike demo --out runs/my-demo --epochs 5""",
}


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``demo``, one argparse group per part of TrainConfig;
    defaults live in TrainConfig and choices in the registries, not here."""
    from lookalike.data.augment import AUGMENTATIONS
    from lookalike.losses.registry import LOSSES
    from lookalike.mining.online import online_selections
    from lookalike.models import list_backbones
    from lookalike.models.factory import pretrained_backbones
    from lookalike.models.gem import POOLINGS
    from lookalike.training.strategy import mining_choices

    defaults = TrainConfig()
    data, model, objective = defaults.data, defaults.model, defaults.objective
    pools, optim = defaults.pools, defaults.optim
    group = parser.add_argument_group("data")
    group.add_argument("--data", dest="source", metavar="DATA",
                       help="'fashion-mnist' (default), a folder of class sub-folders, "
                       "a folder with IDX files, or a CSV manifest (path,label[,split])")
    group.add_argument("--split", choices=SPLITS,
                       help="items (default): validate on held-out items of the same classes; "
                       "classes: train on half the classes and validate on the unseen other "
                       "half (the standard split for CUB-200-2011, Cars196, Stanford Online "
                       "Products)")
    group.add_argument("--val-fraction", type=float,
                       help=f"share of training items held out for validation "
                       f"(default {data.val_fraction})")
    group.add_argument("--val-split", help="validate on this split (e.g. test) instead of a "
                       "held-out share of the training items")
    group.add_argument("--train-limit", type=int, help="use at most this many training items")
    group.add_argument("--val-limit", type=int, help="validate on at most this many items")
    group.add_argument("--skip-bad", action="store_true", default=None,
                       help="skip (and count) unreadable images instead of stopping")
    group.add_argument("--workers", type=int,
                       help="processes decoding image files in the background (default 0)")
    group.add_argument("--cache-images", action="store_true", default=None,
                       help="decode and resize image files once into ~/.cache/lookalike (or "
                       "$LOOKALIKE_CACHE), reused by later runs, so epochs do not decode "
                       "full-size JPEGs again (on in the pretrained-backbone recipe)")
    group.add_argument("--augment", choices=("auto", *AUGMENTATIONS.names()),
                       help="training augmentation: digits = random shift by --crop-padding "
                       "pixels + flip (small centred images); photo = random resized crop "
                       "(--crop-scale) + colour jitter (--color-jitter) + flip; none; "
                       "auto = photo for pretrained backbones (efficientnet-lite*), digits "
                       f"otherwise (default {data.augment})")
    group.add_argument("--crop-padding", type=int,
                       help=f"--augment digits: random-crop padding in pixels, 0 = off "
                       f"(default {data.crop_padding})")
    group.add_argument("--crop-scale", type=float, metavar="MIN",
                       help="--augment photo: the random crop keeps between MIN and all of "
                       f"the image's area, 0 < MIN <= 1, 1 = no crop (default {data.crop_scale})")
    group.add_argument("--color-jitter", type=float, metavar="J",
                       help="--augment photo: brightness, contrast and saturation scaled by "
                       "random factors in [1-J, 1+J], 0 <= J < 1, 0 = off "
                       f"(default {data.color_jitter})")
    group.add_argument("--flip", dest="flip", action=argparse.BooleanOptionalAction,
                       default=None,
                       help="random horizontal flips, or none (--no-flip: for data where a "
                       "mirror image is another class: arrows, text); default on, off in the "
                       "pretrained-backbone recipe")
    group = parser.add_argument_group("model")
    group.add_argument("--backbone", choices=list_backbones(),
                       help=f"backbone (default {model.backbone}); a pretrained one "
                       f"({', '.join(pretrained_backbones())}) fills every option not given "
                       "from the measured recipe (input size, head, learning rates, "
                       "augmentation, epochs; the log line says what it picked); vgg-fc "
                       "and conv-fc, trained from scratch, keep where each part of a small "
                       "centred image is (the demo trains vgg-fc)")
    group.add_argument("--embedding-dim", type=int,
                       help=f"embedding size (default {model.embedding_dim}; 128 in the "
                       "pretrained-backbone recipe)")
    group.add_argument("--input-size", type=int,
                       help=f"image side in pixels (default {model.input_size}; 128 in the "
                       "pretrained-backbone recipe)")
    group.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                       default=None,
                       help="random initial weights even for backbones with ImageNet weights")
    group.add_argument("--freeze-backbone-epochs", type=int,
                       help="train only the embedding head for this many first epochs (0)")
    group.add_argument("--backbone-lr-scale", type=float,
                       help="backbone learning rate = --lr x this (default 1, also in the "
                       "pretrained-backbone recipe)")
    group.add_argument("--pooling", choices=POOLINGS,
                       help="pooling of the backbone's feature map: avg, gem "
                       "(generalised mean, Radenovic et al. 2018, with a learnable exponent p "
                       "from 3), or flatten (small CNN: the whole map, so where a part is "
                       f"stays known) (default {model.pooling})")
    group.add_argument("--train-blocks", type=integer(0), metavar="N",
                       help="train only the backbone's last N blocks (and what follows them) "
                       "and the head; the earlier blocks stay frozen, 0 = the whole backbone "
                       "(default: all of it trains)")
    group.add_argument("--feature-cache", action="store_true", default=None,
                       help="run the part of the backbone frozen for the whole run (by "
                       "--train-blocks, or --freeze-backbone-epochs >= --epochs) once per "
                       "cached view and train the rest on its outputs: head-only epochs take "
                       "seconds; kept under the image cache folder with --cache-images")
    group.add_argument("--cached-views", type=integer(1), metavar="V",
                       help="--feature-cache: augmented views per training image, the first "
                       f"one unaugmented; each step draws one (default {model.cached_views})")
    group.add_argument("--feature-cache-dtype", choices=("float16", "float32"),
                       help=f"--feature-cache: storage precision "
                       f"(default {model.feature_cache_dtype})")
    group.add_argument("--mirror-average", action="store_true", default=None,
                       help="embed every image and its mirror image and average the two, at "
                       "validation, indexing and search (training steps see one view): for "
                       "models trained with --flip, where it ranks better at twice the "
                       "embedding cost (test MAP@R +0.002 to +0.007 on nine vgg-fc demo "
                       "variants; on in the demo); refused when flips are off")
    group = parser.add_argument_group(
        "loss and mining", "--loss contrastive trains on pairs (siamese): positives pulled "
        "together, negatives pushed beyond --contrastive-margin, in --pair-ratio")
    group.add_argument("--loss", choices=LOSSES.names(), help=f"loss (default {objective.loss})")
    group.add_argument("--mining", choices=mining_choices(),
                       help=f"how triplets are chosen (default {objective.mining})")
    group.add_argument("--margin", type=float,
                       help=f"triplet margin (default {objective.margin})")
    group.add_argument("--soft-margin", action="store_true", default=None,
                       help="soft-plus log(1 + exp(d_ap - d_an)) instead of the hinge")
    group.add_argument("--distance", choices=DISTANCES.names(),
                       help=f"distance between embeddings, used by the loss, validation and "
                       f"the search index (default {objective.distance})")
    group.add_argument("--pair-ratio", help=f"positive:negative pairs per batch "
                       f"(default {objective.pair_ratio})")
    group.add_argument("--contrastive-margin", type=float,
                       help=f"distance beyond which negatives cost nothing "
                       f"(default {objective.contrastive_margin})")
    group.add_argument("--classes-per-batch", "-P", type=int,
                       help="P classes per batch (default: 128 // K, at most the number of "
                       "classes; 8 on Fashion-MNIST)")
    group.add_argument("--items-per-class", "-K", type=int,
                       help="K items per class (default: the median class size, clipped to "
                       "[2, 16]; 16 on Fashion-MNIST)")
    group = parser.add_argument_group(
        "hybrid / offline-hard mining",
        "offline pools of each anchor's hard positives and negatives, mined over the whole "
        "training set; hybrid injects them into every batch and refreshes them every R epochs")
    group.add_argument("--hybrid-selection", choices=online_selections(),
                       help=f"in-batch selection over injected batches "
                       f"(default {pools.hybrid_selection})")
    from lookalike.training.config import HYBRID_BATCHES

    group.add_argument("--hybrid-batches", choices=HYBRID_BATCHES,
                       help="hybrid batches: items (P x K anchors plus their injected pooled "
                       "positives and negatives) or classes (a seed class and its nearest "
                       "classes by the pooled negatives, K items each; for many classes) "
                       f"(default {pools.hybrid_batches})")
    group.add_argument("--hard-positives", type=int,
                       help=f"hard positives kept per anchor (default {pools.hard_positives})")
    group.add_argument("--hard-negatives", type=int,
                       help=f"hard negatives kept per anchor (default {pools.hard_negatives})")
    group.add_argument("--skip-hardest", type=int,
                       help="skip this many of the very hardest positives/negatives, often "
                       f"label noise (default {pools.skip_hardest})")
    group.add_argument("--positive-band", type=float,
                       help="skip this share of each anchor's farthest positives, e.g. 0.05 "
                       f"(default {pools.positive_band})")
    group.add_argument("--negative-band", type=float,
                       help="skip this share of each anchor's nearest negatives, e.g. 0.01 "
                       f"(default {pools.negative_band})")
    group.add_argument("--no-inject-negatives", dest="inject_negatives", action="store_false",
                       default=None, help="inject only hard positives, not hard negatives")
    group.add_argument("--refresh-every", type=int,
                       help=f"rebuild pools with the current model every R epochs, 0 = never "
                       f"(default {pools.refresh_every})")
    group.add_argument("--warmup-epochs", type=int,
                       help=f"epochs of plain online mining before the first pools "
                       f"(default {pools.warmup_epochs})")
    group.add_argument("--warmup-selection", choices=online_selections(),
                       help=f"online mining during warm-up (default {pools.warmup_selection})")
    group.add_argument("--mining-model",
                       help="model that embeds the training set for the first pools: 'self' "
                       "(the model in training, after warm-up), efficientnet-lite0 or a "
                       f"checkpoint folder (default {pools.mining_model})")
    group.add_argument("--mining-input-size", type=int,
                       help=f"image size for a pretrained mining model "
                       f"(default {pools.mining_input_size})")
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=int, help=f"epochs (default {optim.epochs}; the "
                       "pretrained-backbone recipe fits about ten CPU-minutes to the data); "
                       "with --resume, a larger number extends the run")
    group.add_argument("--batches-per-epoch", type=int, help="default: training items // (P*K)")
    group.add_argument("--lr", type=float, help=f"learning rate (default {optim.lr})")
    group.add_argument("--weight-decay", type=float,
                       help=f"AdamW weight decay (default {optim.weight_decay})")
    group.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                       help=f"learning-rate schedule (default {optim.lr_schedule})")
    group = parser.add_argument_group("machine")
    group.add_argument("--seed", type=int,
                       help=f"random seed (default {defaults.machine.seed})")
    group.add_argument("--threads", type=int,
                       help="CPU threads for torch (default: all cores)")
    group.add_argument("--device", help="auto (default), cpu or cuda")
    group.add_argument("--amp", action="store_true", default=None,
                       help="mixed precision: float16 on CUDA, bfloat16 on a CPU with AMX or "
                            "AVX-512 BF16 (about 1.7x faster demo training here); ignored, "
                            "with a log line, on other CPUs")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training options the user set on the command line (None means 'not given')."""
    return {k: v for k, v in vars(args).items() if k in OPTION_PART and v is not None}


def cmd_train(args: argparse.Namespace) -> int:
    from lookalike.training.recipe import with_recipe
    from lookalike.training.trainer import resume, train

    given = config_overrides(args)
    if args.resume:
        if args.out:
            raise LookalikeError("give either --out (a new run) or --resume RUN, not both")
        result = resume(args.resume, changes=given, show_progress=not args.quiet)
    else:
        if not args.out:
            raise LookalikeError("train needs --out RUN_FOLDER (or --resume RUN_FOLDER)")
        # a pretrained backbone and nothing else said: the measured recipe fills the rest
        config = TrainConfig.from_options(**with_recipe(given)).validate()
        result = train(config, args.out, show_progress=not args.quiet)
    best = (f"{result.best_map_at_r:.4f}" if result.best_map_at_r >= 0
            else "n/a (no validation class has two items)")
    print(f"best validation MAP@R {best}; checkpoints in {result.run.root}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lookalike.evaluation.model_eval import evaluate_checkpoint
    from lookalike.files import write_json

    evaluation = evaluate_checkpoint(args.checkpoint, args.data, args.split, limit=args.limit,
                                     device=args.device, show_progress=not args.quiet)
    print(evaluation.metrics.format())
    if args.json:
        write_json(args.json, evaluation.metrics.to_dict())
        print(f"metrics written to {args.json}")
    return 0


def cmd_mine(args: argparse.Namespace) -> int:
    from lookalike.mining.model import mine_collection
    from lookalike.mining.pools import PoolConfig

    config = PoolConfig(hard_positives=args.hard_positives, hard_negatives=args.hard_negatives,
                        positive_band=args.positive_band, negative_band=args.negative_band,
                        skip_hardest=args.skip_hardest, distance=args.distance)
    mined = mine_collection(args.data, args.mining_model, config, split=args.split,
                            limit=args.limit, input_size=args.input_size, device=args.device,
                            progress=not args.quiet)
    mined.pools.save(args.out)
    print(f"{len(mined.pools)} anchors x {config.hard_positives} hard positives + "
          f"{config.hard_negatives} hard negatives written to {args.out} (embedding "
          f"{mined.embed_seconds:.1f} s, mining {mined.mine_seconds:.1f} s)")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from lookalike.files import write_json
    from lookalike.mining.analysis import load_analysis
    from lookalike.mining.model import mine_collection
    from lookalike.mining.pools import PoolConfig, Pools
    from lookalike.viz import save_figure
    from lookalike.viz.distances import plot_distance_analysis

    if args.pools:
        analysis = load_analysis(Pools.load(args.pools), args.pools)
    elif args.mining_model:
        mined = mine_collection(args.data, args.mining_model, PoolConfig(), split=args.split,
                                limit=args.limit, input_size=args.input_size,
                                progress=not args.quiet)
        analysis = load_analysis(mined.pools, "(mined now)")
    else:
        raise LookalikeError("analyze needs --pools FILE, or --data and --mining-model")
    out = Path(args.out)
    save_figure(plot_distance_analysis(analysis), out / "distances.png")
    summary = analysis.headline()
    write_json(out / "summary.json", summary)
    for key, value in summary.items():
        print(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
    print(f"picture and summary written to {out}/distances.png and {out}/summary.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lookalike.demo import run_demo

    run_demo(args.out, quick=args.quick, resume=args.resume, overrides=config_overrides(args),
             show_progress=not args.quiet)
    return 0


SPLIT_HELP = ("'all' for everything; a folder or manifest without splits of its own is "
              "read whole for train and test too; 'seen' / 'unseen' for the unseen classes")


def share(text: str) -> float:
    """argparse type of a ``--*-band`` option: a share of candidates in [0, 1)."""
    try:
        value = number(0, 1)(text)
    except argparse.ArgumentTypeError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lookalike",
        description="Learn an image embedding with triplet loss and find the items that look "
        "alike.",
        epilog="run 'lookalike COMMAND --help' for the options and examples of each command",
    )
    parser.add_argument("--version", action="version", version=f"lookalike {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=epilog or EXAMPLES.get(name),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks on errors")
        return sub

    train = command("train", "Train an embedding model with triplet loss.")
    train.add_argument("--out", help="run folder for config.json, metrics.jsonl, best/, last/")
    train.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    add_train_options(train)
    train.set_defaults(func=cmd_train)

    evaluate = command("evaluate", "Retrieval metrics (P@1, MAP@R, ...) of a checkpoint.")
    evaluate.add_argument("--checkpoint", required=True,
                          help="a checkpoint folder (e.g. runs/x/best)")
    evaluate.add_argument("--data", default="fashion-mnist", help="dataset (default fashion-mnist)")
    evaluate.add_argument("--split", default="test", help=f"split to evaluate (default test; "
                          f"{SPLIT_HELP})")
    evaluate.add_argument("--limit", type=integer(1), metavar="N",
                          help="evaluate only the first N items")
    evaluate.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    evaluate.add_argument("--json", help="also write the metrics to this JSON file")
    evaluate.set_defaults(func=cmd_evaluate)

    mine = command("mine", "Mine every anchor's hard positives and negatives into a pools file.")
    mine.add_argument("--data", default="fashion-mnist", help="dataset (default fashion-mnist)")
    mine.add_argument("--split", default="train",
                      help=f"split to mine (default train; {SPLIT_HELP})")
    mine.add_argument("--limit", type=integer(1), metavar="N", help="mine only the first N items")
    mine.add_argument("--mining-model", default="efficientnet-lite0",
                      help="efficientnet-lite0 (ImageNet-pretrained, default) or a checkpoint")
    mine.add_argument("--input-size", type=integer(1), default=64, metavar="PIXELS",
                      help="image size for a pretrained mining model (default 64)")
    mine.add_argument("--hard-positives", "--k-pos", type=integer(1), default=5, metavar="K",
                      help="hard positives kept per anchor (5)")
    mine.add_argument("--hard-negatives", "--k-neg", type=integer(1), default=5, metavar="K",
                      help="hard negatives kept per anchor (5)")
    mine.add_argument("--positive-band", type=share, default=0.0, metavar="SHARE",
                      help="skip this share of each anchor's farthest positives, in [0, 1) (0)")
    mine.add_argument("--negative-band", type=share, default=0.0, metavar="SHARE",
                      help="skip this share of each anchor's nearest negatives, in [0, 1) (0)")
    mine.add_argument("--skip-hardest", type=integer(0), default=0, metavar="N",
                      help="skip at least this many of the hardest of each (0)")
    mine.add_argument("--distance", default="euclidean", choices=DISTANCES.names(),
                      help="distance the pools are ranked by (default euclidean)")
    mine.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    mine.add_argument("--out", required=True, help="pools file to write (.npz)")
    mine.set_defaults(func=cmd_mine)

    analyze = command("analyze", "Draw the positive/negative distance distribution and pools.")
    analyze.add_argument("--pools", help="a pools file written by 'lookalike mine'")
    analyze.add_argument("--data", default="fashion-mnist", help="dataset, without --pools")
    analyze.add_argument("--split", default="train",
                         help=f"split, without --pools (default train; {SPLIT_HELP})")
    analyze.add_argument("--limit", type=integer(1), metavar="N",
                         help="use only the first N items")
    analyze.add_argument("--mining-model", help="efficientnet-lite0 or a checkpoint folder")
    analyze.add_argument("--input-size", type=integer(1), default=64, metavar="PIXELS",
                         help="image size for a pretrained mining model (default 64)")
    analyze.add_argument("--out", default="analysis", help="output folder (default analysis)")
    analyze.set_defaults(func=cmd_analyze)

    demo = command("demo", "Train on Fashion-MNIST, evaluate on its test set, write a report.")
    demo.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    demo.add_argument("--quick", action="store_true", help="a tiny run (under a minute)")
    demo.add_argument("--resume", action="store_true", help="continue an interrupted demo")
    add_train_options(demo)
    demo.set_defaults(func=cmd_demo)

    cli_search.register(commands, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_malloc()  # reuse freed tensor memory (lookalike/allocator.py)
    flush_denormals()  # before torch starts its threads, which copy the mode (denormals.py)
    if "WORLD_SIZE" in os.environ:  # one of torchrun's processes
        from lookalike.distributed import stop_on_sigterm

        stop_on_sigterm()
    with warnings.catch_warnings():  # the showwarning below lasts for this command only
        if not args.verbose:
            warnings.showwarning = show_warning
        return run_command(args)


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command line: ``lookalike: warning: MESSAGE``, one
    line on stderr, without the source path and code line Python adds (``--verbose`` keeps
    them)."""
    text = " ".join(str(message).split())
    print(f"lookalike: warning: {text}", file=sys.stderr if file is None else file)


def _lost_peer(error: RuntimeError) -> str | None:
    """lookalike.distributed.lost_peer, without importing torch for other errors."""
    if "torch.distributed" not in sys.modules:
        return None
    from lookalike.distributed import lost_peer

    return lost_peer(error)


def run_command(args: argparse.Namespace) -> int:
    """Call the parsed command; lookalike's errors (and OSErrors) become one line on stderr."""
    try:
        return int(args.func(args))
    except LookalikeError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"lookalike: error: {exc}", file=sys.stderr)
        return 130 if isinstance(exc, TrainingInterrupted) else 1
    except KeyboardInterrupt:
        print("lookalike: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a torch.distributed collective whose peer stopped
        lost = _lost_peer(exc)
        if lost is None:
            raise
        if args.verbose:
            traceback.print_exc()
        run = getattr(args, "resume", None) or getattr(args, "out", None)
        resume = f"; resume from the last commit with: lookalike train --resume {run}" \
            if args.command == "train" and run else ""
        print(f"lookalike: error: {lost}{resume}", file=sys.stderr)
        return 1
    except OSError as exc:
        if args.verbose:
            traceback.print_exc()
        reason = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"lookalike: error: {where}{reason or exc}", file=sys.stderr)
        return 1
    finally:
        if "torch.distributed" in sys.modules:  # a command that may have joined torchrun's
            from lookalike.distributed import leave_group

            leave_group()


if __name__ == "__main__":
    sys.exit(main())
