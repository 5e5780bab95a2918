"""The ``index`` and ``search`` commands: parse options, call ``lookalike.search``, print."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lookalike.cli_types import integer, number
from lookalike.errors import ConfigError

EXAMPLES = {
    "index": """examples:
  lookalike index build --checkpoint runs/demo/train/best --data fashion-mnist --split test \\
      --out indexes/fm-test
  lookalike index build --checkpoint runs/photos/best --images photos/ --out indexes/photos
  lookalike index build --checkpoint runs/photos/best --images big/ --kind hnsw --out idx
  lookalike index add --index indexes/photos --images new-photos/
  lookalike index remove --index indexes/photos 12 13 14
  lookalike index info --index indexes/photos
  lookalike index build --checkpoint runs/photos/best --images photos/ --out indexes/photos \
      --backend qdrant --qdrant http://localhost:6333 --collection photos
  lookalike index export --index indexes/fm-test --to qdrant qdrant-data/ --out indexes/fm-q""",
    "search": """examples:
  lookalike search --index indexes/photos shoe.png bag.jpg -k 5
  lookalike search --index indexes/fm-test --id 0 --id 17 --grid results.png
  lookalike search --index indexes/fm-test --random 6 -k 8 --grid results.png
  lookalike search --index indexes/photos shoe.png --json
  lookalike search --index indexes/photos --duplicates --threshold 0.05""",
    "serve": """examples:
  lookalike serve --index indexes/fm-test              # then open http://127.0.0.1:8000/
  lookalike serve --index indexes/photos --port 9000 --max-upload-mb 20
  lookalike serve --index indexes/photos --host 0.0.0.0  # opt-in: other machines can reach it
  lookalike serve --index indexes/fm-test --workers 2 --max-batch 64 --batch-wait-ms 5
  lookalike serve --index indexes/fm-test --no-batching --runtime torch  # one at a time

API: POST /api/search (multipart image, k), GET /api/items?random=N, GET /api/items/{id},
GET /api/items/{id}/image, GET /api/items/{id}/similar?k=, GET /api/health (queue, batch
sizes, latency percentiles), GET /metrics (Prometheus); docs at /docs.
The server follows its index: `lookalike index add` / `remove` run meanwhile show in its
next answer.""",
    "export": """examples:
  lookalike export --checkpoint runs/demo/train/best --onnx model.onnx
  lookalike export --index indexes/fm-test     # writes indexes/fm-test/model/model.onnx

The ONNX model takes (B, C, S, S) images in [0, 1] at the model's input size (the batch
axis is dynamic) and includes the model's own preprocessing (channel conversion and
normalisation); it is checked against PyTorch (embeddings within 1e-5) before it is
written. `lookalike serve` uses an index's model.onnx when ONNX Runtime is faster.""",
}
RUNTIME_HELP = ("what embeds: auto (default: ONNX Runtime where it is installed and faster, "
                "timed per batch size at start-up), torch or onnx")

THRESHOLD_HELP = ("with --duplicates: the largest distance between duplicates, a finite "
                  "number >= 0 in the index's distance (the model's; `lookalike index info` "
                  "names it): e.g. 0.05 euclidean, which on unit vectors is 0.0025 "
                  "squared_euclidean or 0.00125 cosine")
MAX_UPLOAD_MB = 1024 * 1024
"""--max-upload-mb at most 1 TiB: any real limit is far below it."""


def add_index_spec_options(parser: argparse.ArgumentParser) -> None:
    """``--kind`` and every registered kind's options (``--hnsw-m``, ``--nlist``...)."""
    from lookalike.search.kinds import INDEX_KINDS
    from lookalike.search.spec import AUTO, AUTO_APPROXIMATE_ABOVE, OPTION_MAX, kind_choices

    kinds = ", ".join(f"{name} ({INDEX_KINDS.get(name).summary})" for name in INDEX_KINDS)
    group = parser.add_argument_group("vector index")
    group.add_argument("--kind", choices=kind_choices(), default=AUTO,
                       help=f"vector index: {kinds}, or auto (default: flat up to "
                       f"{AUTO_APPROXIMATE_ABOVE:,} items, hnsw above)")
    for name in INDEX_KINDS:
        for option in INDEX_KINDS.get(name).options:
            group.add_argument(option.flag, type=integer(option.minimum, OPTION_MAX),
                               default=option.default, dest=option.name,
                               help=f"{option.help} (default {option.default})")


def add_search_time_options(parser: argparse.ArgumentParser) -> None:
    """The kinds' search-time knobs (``--ef-search``, ``--nprobe``...) for one session."""
    from lookalike.search.kinds import INDEX_KINDS
    from lookalike.search.spec import OPTION_MAX

    for name in INDEX_KINDS:
        for option in INDEX_KINDS.get(name).options:
            if option.at_search:
                parser.add_argument(option.flag, type=integer(option.minimum, OPTION_MAX),
                                    dest=option.name, help=f"{option.help}, for this search")


def _option_values(args: argparse.Namespace, search_time: bool = False) -> dict[str, Any]:
    """The kinds' option values that ``args`` holds (only search-time ones if asked)."""
    from lookalike.search.kinds import kind_options

    return {name: getattr(args, name) for name, option in kind_options().items()
            if hasattr(args, name) and (option.at_search or not search_time)}


def _data_source(args: argparse.Namespace) -> Any:
    """--images DIR / FILE... or --data SPEC: what to index."""
    if args.images and args.data:
        raise ConfigError("give --images or --data, not both")
    if args.images:
        return args.images[0] if len(args.images) == 1 and Path(args.images[0]).is_dir() \
            else args.images
    if args.data:
        return args.data
    raise ConfigError("say what to index: --images FOLDER (or image files) or --data SPEC")


def cmd_index_build(args: argparse.Namespace) -> int:
    """Build an index; under torchrun every process embeds its share and the main one writes
    the folder (lookalike/search/build.py)."""
    import torch

    from lookalike.distributed import barrier, join_from_env
    from lookalike.search import Index, IndexSpec

    qdrant = _qdrant_target(args)  # before joining: a bad option costs no process group
    group = join_from_env(torch.device(args.device))  # alone, or one rank of torchrun's
    spec = IndexSpec(args.kind, **_option_values(args))
    Index.write(args.checkpoint, _data_source(args), args.out, split=args.split, spec=spec,
                skip_bad=args.skip_bad, batch_size=args.batch_size, device=args.device,
                overwrite=args.overwrite, runtime=args.runtime, progress=not args.quiet,
                qdrant=qdrant, collection=args.collection)
    barrier()
    if not group.is_main:
        return 0
    with Index.open(args.out) as index:
        processes = f" by {group.world_size} processes" if group.distributed else ""
        where = (f", Qdrant collection {args.collection or Path(args.out).name!r} at "
                 f"{qdrant}" if qdrant is not None else "")
        print(f"indexed {len(index)} items ({index.kind}, {index.distance} distance, model "
              f"{index.fingerprint}){processes} in {args.out}{where}")
    return 0


def _qdrant_target(args: argparse.Namespace) -> str | None:
    """--backend / --qdrant / --collection, checked together: where the vectors go."""
    if args.backend == "faiss":
        for flag, value in (("--qdrant", args.qdrant), ("--collection", args.collection)):
            if value is not None:
                raise ConfigError(f"{flag} is for --backend qdrant (the FAISS backend keeps "
                                  "its vectors in the index folder)")
        return None
    if args.qdrant is None:
        raise ConfigError("--backend qdrant needs --qdrant URL_OR_PATH (a server such as "
                          "http://localhost:6333, or a folder for the local mode)")
    if args.kind != "auto":
        raise ConfigError(f"--kind {args.kind} is a FAISS index kind; Qdrant indexes the "
                          "collection itself (HNSW on a server, exact in the local mode)")
    return str(args.qdrant)


def cmd_index_export(args: argparse.Namespace) -> int:
    from lookalike.search.qdrant.build import export_to_qdrant

    backend, location = args.to
    if backend != "qdrant":
        raise ConfigError(f"--to {backend}: the backend to export to must be qdrant")
    target = export_to_qdrant(args.index, location, args.out, name=args.collection,
                              overwrite=args.overwrite, progress=not args.quiet)
    from lookalike.search.qdrant.index import QdrantIndex

    with QdrantIndex.open(target) as index:
        print(f"exported {len(index)} items to Qdrant collection {index.collection!r} at "
              f"{index.location}; the index folder is {target} (the source {args.index} is "
              "unchanged)")
    return 0


def cmd_index_add(args: argparse.Namespace) -> int:
    from lookalike.search import Index

    with Index.open(args.index, device=args.device) as index:
        ids = index.add(_data_source(args), split=args.split, checkpoint=args.checkpoint,
                        skip_bad=args.skip_bad, batch_size=args.batch_size,
                        progress=not args.quiet)
        print(f"added {len(ids)} items (ids {ids[0]}..{ids[-1]}); the index now holds "
              f"{len(index)}")
    return 0


def cmd_index_remove(args: argparse.Namespace) -> int:
    from lookalike.search import Index

    with Index.open(args.index) as index:
        removed = index.remove(args.ids)
        print(f"removed {removed} items; the index now holds {len(index)}")
    return 0


def cmd_index_info(args: argparse.Namespace) -> int:
    from lookalike.search import Index

    with Index.open(args.index) as index:
        info = index.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    labels = info.pop("labels")
    for key, value in info.items():
        print(f"{key:>18}: {value}")
    named = {k: v for k, v in labels.items() if k is not None}
    shown = ", ".join(f"{k} {v}" for k, v in sorted(named.items())[:20])
    more = f", ... ({len(named)} labels)" if len(named) > 20 else ""
    unlabelled = f"; {labels[None]} unlabelled" if None in labels else ""
    print(f"{'labels':>18}: {shown or '-'}{more}{unlabelled}")
    return 0


def _run_queries(args: argparse.Namespace,
                 index: Any) -> tuple[list[str], list[Any], list[Any], list[str | None]]:
    """Search every query: (names, results, images for --grid, labels where known)."""
    from lookalike.data import decode_image

    k = args.k
    names: list[str] = []
    results: list[Any] = []
    images: list[Any] = []
    labels: list[str | None] = []
    ids = list(args.id or [])
    if args.random:
        ids += [int(i) for i in index.sample_ids(args.random, seed=args.seed)]
    if ids:
        records = index.records(ids)
        results += index.more_like(ids, k)
        for item_id in ids:
            names.append(f"item {item_id} ({records[item_id].source})")
            labels.append(records[item_id].label)
            if args.grid:
                images.append(index.image(item_id))
    if args.queries:
        decoded = [decode_image(query) for query in args.queries]  # once, for search and grid
        results += index.search(decoded, k)
        known = set(index.labels())
        for query in args.queries:
            names.append(query)
            parent = Path(query).resolve().parent.name  # a query from a class folder
            labels.append(parent if parent in known else None)
        if args.grid:
            images += decoded
    return names, results, images, labels


def cmd_search(args: argparse.Namespace) -> int:
    from lookalike.search import Index
    from lookalike.search.display import groups_table, hits_table, results_json

    with Index.open(args.index, device=args.device,
                    search_options=_option_values(args, search_time=True)) as index:
        if args.duplicates:
            if args.threshold is None:
                raise ConfigError(f"--duplicates needs --threshold T (a {index.distance} "
                                  "distance, e.g. 0.05)")
            groups = index.duplicates(args.threshold, neighbors=args.k)
            sources = {i: r.source for i, r in
                       index.records([i for g in groups for i in g]).items()}
            if args.json:
                print(json.dumps([{"ids": g, "sources": [sources[i] for i in g]}
                                  for g in groups], indent=2))
            else:
                print(groups_table(groups, sources) if groups else "no duplicates found")
                print(f"{len(groups)} groups, {sum(map(len, groups))} items within "
                      f"{index.distance} distance {args.threshold}")
            return 0
        if not (args.queries or args.id or args.random):
            raise ConfigError("give query images, --id ITEM, --random N or --duplicates")
        names, results, images, labels = _run_queries(args, index)
        if args.json:
            print(json.dumps(results_json(names, results, index.distance), indent=2))
        else:
            print("\n\n".join(hits_table(n, hits) for n, hits in zip(names, results,
                                                                     strict=True)))
            print(f"\ndistances: {index.distance}")
        if args.grid:
            from lookalike.viz import save_figure
            from lookalike.viz.search import plot_search_grid

            save_figure(plot_search_grid(index, images, results, labels), args.grid)
            if not args.json:
                print(f"grid written to {args.grid}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from lookalike.service.server import serve
    from lookalike.service.settings import MB, ServiceSettings

    settings = ServiceSettings(max_upload_bytes=math.ceil(args.max_upload_mb * MB),
                               max_pixels=args.max_pixels, batching=not args.no_batching,
                               max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                               max_queue=args.max_queue)
    serve(args.index, host=args.host, port=args.port, settings=settings, device=args.device,
          runtime=args.runtime, workers=args.workers)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lookalike.export import export_onnx
    from lookalike.models import load_checkpoint

    if (args.checkpoint is None) == (args.index is None):
        raise ConfigError("give --checkpoint CKPT --onnx FILE, or --index INDEX (its own "
                          "model, written into INDEX/model/)")
    if args.checkpoint is not None:
        if args.onnx is None:
            raise ConfigError("--checkpoint needs --onnx FILE: where to write the ONNX model")
        model, _ = load_checkpoint(args.checkpoint)
        source, out = str(args.checkpoint), Path(args.onnx)
    else:
        from lookalike.search import Index

        with Index.open(args.index) as index:
            model = index.model
            out = Path(args.onnx) if args.onnx is not None else index.onnx_path
        source = f"the model of {args.index}"
    if out.is_dir() or (out.parent.exists() and not out.parent.is_dir()):
        raise ConfigError(f"{out}: not a file path (is it a folder, or inside a file?)")
    difference = export_onnx(model, out, name=source)
    checked = ("unchecked: onnxruntime is not installed" if difference is None else
               f"ONNX Runtime matches PyTorch, largest difference {difference:.1g}")
    size = out.stat().st_size
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
    print(f"wrote {out} ({shown}; {checked})")
    return 0


def register(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``index build|add|remove|info``, ``search``, ``serve`` and ``export`` to the
    top-level parser."""
    from lookalike.export.runtime import RUNTIMES
    from lookalike.search.index import AUTO_ONNX_ITEMS

    index = command("index", "Build, grow, shrink or describe a search index.",
                    epilog=EXAMPLES["index"])
    actions = index.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text,
                                 epilog=EXAMPLES["index"],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                         help="no progress bars")
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks on errors")
        return sub

    def add_sources(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--images", nargs="+", metavar="PATH",
                         help="a folder (class sub-folders give labels; plain images are "
                         "unlabelled) or image files")
        sub.add_argument("--data", help="a --data spec as in train: fashion-mnist, an IDX "
                         "folder, an image folder or a CSV manifest")
        sub.add_argument("--split", help="the split of --data to index (e.g. test)")
        sub.add_argument("--skip-bad", action="store_true",
                         help="skip (and count) unreadable images instead of stopping")
        sub.add_argument("--batch-size", type=integer(1), default=256,
                         help="images per forward pass (default 256)")
        sub.add_argument("--device", default="cpu", help="cpu (default) or cuda")

    build = action("build", "Embed a collection with a checkpoint and write an index folder.")
    build.add_argument("--checkpoint", required=True, help="a checkpoint (e.g. runs/x/best)")
    build.add_argument("--out", required=True, help="index folder to create")
    build.add_argument("--overwrite", action="store_true",
                       help="replace an existing index folder (only once the new one is whole)")
    build.add_argument("--runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP +
                       f"; auto keeps to torch below {AUTO_ONNX_ITEMS:,} items; an ONNX "
                       "export made for the build is kept in the folder for the server")
    add_sources(build)
    add_index_spec_options(build)
    backend = build.add_argument_group("where the vectors live")
    backend.add_argument("--backend", choices=("faiss", "qdrant"), default="faiss",
                         help="faiss (default): a FAISS index inside the folder; qdrant: a "
                         "Qdrant collection (--qdrant), the folder keeps the model and a "
                         "manifest")
    backend.add_argument("--qdrant", metavar="URL_OR_PATH",
                         help="with --backend qdrant: a server or cluster URL "
                         "(http://host:6333; API key from $QDRANT_API_KEY) or a folder for "
                         "Qdrant's local mode (one process at a time, for tests and small "
                         "collections)")
    backend.add_argument("--collection", metavar="NAME",
                         help="with --backend qdrant: the collection's name (an alias, "
                         "switched only when the new collection is whole; default: the "
                         "--out folder's name)")
    build.set_defaults(func=cmd_index_build)

    export = action("export", "Copy a FAISS index folder into a Qdrant collection.")
    export.add_argument("--index", required=True, help="the FAISS index folder to copy "
                        "(only read)")
    export.add_argument("--to", nargs=2, required=True, metavar=("BACKEND", "URL_OR_PATH"),
                        help="qdrant and a server URL (http://host:6333) or a local-mode "
                        "folder")
    export.add_argument("--collection", metavar="NAME",
                        help="the collection's name (default: the new folder's name)")
    export.add_argument("--out", help="the Qdrant index folder to write (default: "
                        "INDEX-qdrant next to INDEX)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing folder or collection of that name")
    export.set_defaults(func=cmd_index_export)

    add = action("add", "Embed more images with the index's own model and add them.")
    add.add_argument("--index", required=True, help="the index folder")
    add.add_argument("--checkpoint", help="refuse to add unless this is the index's model")
    add_sources(add)
    add.set_defaults(func=cmd_index_add)

    remove = action("remove", "Remove items by id.")
    remove.add_argument("--index", required=True, help="the index folder")
    remove.add_argument("ids", nargs="+", type=int, metavar="ID",
                        help="item ids to remove (an id no item has removes nothing)")
    remove.set_defaults(func=cmd_index_remove)

    info = action("info", "Describe an index: size, kind, distance, model, labels.")
    info.add_argument("--index", required=True, help="the index folder")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_index_info)

    search = command("search", "Find the items that look most like query images.",
                     epilog=EXAMPLES["search"])
    search.add_argument("--index", required=True, help="the index folder")
    search.add_argument("queries", nargs="*", metavar="QUERY", help="query image files")
    search.add_argument("--id", type=int, action="append", metavar="ITEM",
                        help="search from an item already in the index (repeatable); "
                        "the item itself is left out of its results")
    search.add_argument("--random", type=integer(1), metavar="N",
                        help="search from N (>= 1) random items of the index")
    search.add_argument("--seed", type=integer(0), help="seed for --random (>= 0)")
    search.add_argument("-k", type=integer(1), default=10,
                        help="results per query (default 10)")
    search.add_argument("--json", action="store_true", help="print JSON instead of tables")
    search.add_argument("--grid", metavar="PNG", help="also draw queries and results here")
    search.add_argument("--duplicates", action="store_true",
                        help="list groups of near-identical items instead of searching")
    search.add_argument("--threshold", type=number(0), help=THRESHOLD_HELP)
    add_search_time_options(search)
    search.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    search.set_defaults(func=cmd_search)

    from lookalike.service.settings import (
        DEFAULT_HOST,
        DEFAULT_PORT,
        MAX_BATCH_WAIT_MS,
        MB,
        ServiceSettings,
    )

    defaults = ServiceSettings()
    serve = command("serve", "Serve a search page and JSON API over an index.",
                    epilog=EXAMPLES["serve"])
    serve.add_argument("--index", required=True, help="the index folder")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    serve.add_argument("--port", type=integer(1, 65535), default=DEFAULT_PORT,
                       help=f"port, 1..65535 (default {DEFAULT_PORT})")
    serve.add_argument("--max-upload-mb", type=number(0, MAX_UPLOAD_MB, low_open=True),
                       default=defaults.max_upload_bytes / MB,
                       help=f"largest accepted upload in MB (default "
                       f"{defaults.max_upload_bytes / MB:g})")
    serve.add_argument("--max-pixels", type=integer(1), default=defaults.max_pixels,
                       help=f"largest accepted image in pixels (default {defaults.max_pixels:,})")
    serve.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    serve.add_argument("--runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP)
    serve.add_argument("--workers", type=integer(1, 64), default=1,
                       help="worker processes, each with its own model, all reading the one "
                       "index folder (default 1)")
    load = serve.add_argument_group("under load")
    load.add_argument("--max-batch", type=integer(1, 4096), default=defaults.max_batch,
                      help=f"most queries embedded in one forward pass (default "
                      f"{defaults.max_batch})")
    load.add_argument("--batch-wait-ms", type=number(0, MAX_BATCH_WAIT_MS),
                      default=defaults.batch_wait_ms,
                      help=f"longest a query waits for others to join its batch, 0 to "
                      f"{MAX_BATCH_WAIT_MS:g} (default {defaults.batch_wait_ms:g}; 0 batches "
                      "only queries already waiting)")
    load.add_argument("--no-batching", action="store_true",
                      help="embed queries one at a time, each alone under the model's lock")
    load.add_argument("--max-queue", type=integer(1), default=defaults.max_queue,
                      help=f"most searches waiting for the model; more are answered 503 with "
                      f"Retry-After (default {defaults.max_queue})")
    serve.set_defaults(func=cmd_serve)

    export = command("export", "Export a checkpoint's or an index's model to ONNX.",
                     epilog=EXAMPLES["export"])
    export.add_argument("--checkpoint", help="a checkpoint (e.g. runs/x/best)")
    export.add_argument("--index", help="an index folder: export its own model")
    export.add_argument("--onnx", metavar="FILE", help="the ONNX file to write (with --index, "
                        "default INDEX/model/model.onnx)")
    export.set_defaults(func=cmd_export)
