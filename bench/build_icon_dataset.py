"""Build a many-class image collection from Debian icon themes (metric-learning benchmark).

Dataset
-------
* **class** = a freedesktop icon name (``document-open``, ``edit-copy``, ``folder``,
  ``firefox``, ``text-x-python`` ...);
* **item** = that icon as drawn by one Debian icon theme, so the items of a class share
  the meaning/shape but differ in drawing style (Tango, Oxygen, Papirus, Faenza ...).
  Exactly one item per (class, theme): never two sizes of the same theme.

Layout: ``OUT/<icon-name>/<theme>.png`` (RGB, ``--size`` square, RGBA composited over
white, aspect kept, centred) plus ``OUT/dataset.json`` (packages and versions, themes,
class/item counts, per-theme counts, skip counters, themes-per-class histogram, class list,
sha256 of the sorted file list and of the file contents). Intended use: split the classes
in two halves (train on one, evaluate retrieval on the other).

Selection rules (deterministic: sorted walks, fixed theme order):

1. Only directories listed in each theme's ``index.theme`` are used (freedesktop lookup);
   ``Animations`` contexts (frame strips) are skipped.
2. Symbolic icons (``*-symbolic*`` names, ``symbolic`` folders) are dropped: they are
   monochrome silhouettes drawn to the common Adwaita guideline, so the "styles" are
   near-identical, and they form parallel classes (``edit-copy`` vs ``edit-copy-symbolic``)
   that would leak between the train and test halves.
3. Per (theme, name) ONE file: a vector (SVG/SVGZ) if one exists at nominal size >=
   ``--min-size`` (or in a Scalable directory with MaxSize >= it), the largest nominal size
   first; else the largest PNG >= ``--min-size``. Small-size drawings (16-32 px, mostly
   simplified/monochrome) are never used.
4. Symlinks are resolved. A link leading outside its own theme folder (one theme borrowing
   another's file) is skipped. Inside a theme, aliases (several names -> one real file)
   keep the file only for the canonical name (the real file's own name, else the first
   sorted name), so no two classes share an item.
5. Byte-identical files (sha256) are used once over the whole collection (first theme in
   the fixed order wins); after rendering, pixel-identical images are also used once.
6. Near-duplicates inside a class (a derived theme re-exporting or recolouring its parent's
   drawing: elementary-xfce/elementary, mate/gnome, Obsidian/Faenza, Mint-Y/Moka ...) are
   dropped: ink distance (L1 of 32x32 ``255-RGB`` over total ink) < ``--near-dup`` (0.12,
   chosen by eye: below it pairs are the same drawing, above it mostly distinct styles).
7. Names matching ``--exclude`` are dropped (see ``DEFAULT_EXCLUDE``).
8. A class is kept when it still has items from >= ``--min-themes`` distinct themes.

Renderer: ``resvg-py==0.5.0`` (resvg, pure Rust, wheels on PyPI, no system library);
Pillow for PNGs and output. SVGs that fail to render (or render blank) are skipped and
counted. Install: ``.venv/bin/pip install -c constraints.txt resvg-py==0.5.0``.

Packages (Debian bookworm; installed with apt-get when run as root and missing, unless
``--no-install``): see ``THEMES`` below (26 packages, ~380 MB download, ~1.5 GB on disk).

Usage::

    .venv/bin/python bench/build_icon_dataset.py              # -> data/icons
    .venv/bin/python bench/build_icon_dataset.py --no-install --out /tmp/icons --size 96
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.files import write_text

ICON_ROOT = Path("/usr/share/icons")

# (theme folder under /usr/share/icons, Debian package). One main variant per package:
# colour/dark variants (Papirus-Dark, Mint-Y-Aqua, Yaru-blue, Faenza-Dark ...) are mostly
# recolours or links, so they are left out. Order = priority when identical files are found
# in several themes (older/original sets first, derivatives later).
THEMES: list[tuple[str, str]] = [
    ("Tango", "tango-icon-theme"),
    ("gnome", "gnome-icon-theme"),
    ("Adwaita", "adwaita-icon-theme"),
    ("oxygen", "oxygen-icon-theme"),
    ("breeze", "breeze-icon-theme"),
    ("elementary", "elementary-icon-theme"),
    ("Faenza", "faenza-icon-theme"),
    ("Papirus", "papirus-icon-theme"),
    ("Numix", "numix-icon-theme"),
    ("Numix-Circle", "numix-icon-theme-circle"),
    ("Faba", "faba-icon-theme"),
    ("Moka", "moka-icon-theme"),
    ("Paper", "paper-icon-theme"),
    ("gnome-colors-common", "gnome-colors-common"),
    ("nuoveXT2", "lxde-icon-theme"),
    ("gartoon", "gnome-icon-theme-gartoon"),
    ("Nuovo", "gnome-icon-theme-nuovo"),
    ("yasis", "gnome-icon-theme-yasis"),
    ("Suede", "gnome-icon-theme-suede"),
    ("mate", "mate-icon-theme"),
    ("elementary-xfce", "elementary-xfce-icon-theme"),
    ("Obsidian", "obsidian-icon-theme"),
    ("Mint-Y", "mint-y-icons"),
    ("Yaru", "yaru-theme-icon"),
    ("suru", "suru-icon-theme"),
    ("bloom", "deepin-icon-theme"),
]

# Names dropped by default: GNOME-2/GTK stock legacy aliases (gtk-*, gnome-fs-*, ...) that
# duplicate modern classes (gnome-fs-directory ~ folder), keyboard-layout text badges
# (indicator-keyboard-Ak ... 100 classes differing only in two letters) and numbered level
# series (battery-010 ... battery-100, nm-signal-25 ...), which are not different objects.
DEFAULT_EXCLUDE = r"^(gtk-|gnome-(dev|fs|mime|stock)-|indicator-keyboard-|battery-\d|nm-signal-\d)"

VECTOR_EXT = (".svg", ".svgz")
RASTER_EXT = (".png",)


@dataclass(frozen=True)
class Candidate:
    name: str
    path: Path  # path inside the theme (may be a symlink)
    real: Path  # resolved path
    vector: bool
    size: int  # nominal pixel size (Size * Scale)

    def rank(self) -> tuple:
        # higher is better; path as deterministic tie-break (smaller path wins)
        return (self.vector, self.size, tuple(-ord(c) for c in str(self.path)))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pkg_version(pkg: str) -> str | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}|${Version}", pkg],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except FileNotFoundError:
        return None
    if out.startswith("install ok installed|"):
        return out.split("|", 1)[1]
    return None


def ensure_packages(pkgs: list[str], install: bool) -> dict:
    missing = [p for p in pkgs if pkg_version(p) is None]
    info: dict = {"missing_before": missing, "apt_seconds": 0.0}
    if missing and install:
        if os.geteuid() != 0:
            log(f"not root: cannot install {missing}; continuing without them")
        else:
            log(f"apt-get install {' '.join(missing)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
            t0 = time.time()
            if subprocess.run(cmd, env=env, check=False).returncode != 0:
                subprocess.run(["apt-get", "update"], env=env, check=True)
                subprocess.run(cmd, env=env, check=True)
            info["apt_seconds"] = round(time.time() - t0, 1)
    return info


def read_index(theme_dir: Path) -> list[tuple[str, dict]]:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(theme_dir / "index.theme", encoding="utf-8")
    sec = cp["Icon Theme"]
    dirs = [d.strip() for d in sec.get("Directories", "").split(",") if d.strip()]
    dirs += [d.strip() for d in sec.get("ScaledDirectories", "").split(",") if d.strip()]
    seen: set[str] = set()
    out = []
    for d in dirs:
        if d in seen or d not in cp:
            continue
        seen.add(d)
        out.append((d, dict(cp[d])))
    return out


def is_symbolic(text: str) -> bool:
    return "symbolic" in text.lower()


def scan_theme(
    theme: str, min_size: int, skips: Counter, exclude: re.Pattern | None = None
) -> dict[str, Candidate]:
    """Best candidate per icon name for one theme."""
    root = ICON_ROOT / theme
    root_real = root.resolve()
    best: dict[str, Candidate] = {}
    for d, props in read_index(root):
        folder = root / d
        if not folder.is_dir():
            continue
        if props.get("Context", "").lower() == "animations" or is_symbolic(d):
            continue
        size = int(props.get("Size", "0")) * int(props.get("Scale", "1"))
        scalable = props.get("Type", "Threshold").lower() == "scalable"
        max_size = int(props.get("MaxSize", props.get("Size", "0")))
        for fname in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(fname)
            if ext == ".gz" and stem.endswith(".svg"):
                stem, ext = stem[:-4], ".svgz"
            ext = ext.lower()
            vector = ext in VECTOR_EXT
            if not vector and ext not in RASTER_EXT:
                continue
            if is_symbolic(stem):
                skips["symbolic"] += 1
                continue
            if exclude is not None and exclude.search(stem):
                skips["excluded_name"] += 1
                continue
            ok = size >= min_size or (vector and scalable and max_size >= min_size)
            if not ok:
                skips["too_small"] += 1
                continue
            path = folder / fname
            real = path.resolve()
            if not real.is_file():
                skips["broken_link"] += 1
                continue
            if root_real not in real.parents:
                skips["link_outside_theme"] += 1
                continue
            cand = Candidate(stem, path, real, vector, size)
            if stem not in best or cand.rank() > best[stem].rank():
                best[stem] = cand
    # aliases: several names resolving to the same real file -> keep the canonical one
    by_real: dict[Path, list[str]] = defaultdict(list)
    for name in sorted(best):
        by_real[best[name].real].append(name)
    for real, names in by_real.items():
        if len(names) < 2:
            continue
        real_stem = real.name.split(".")[0]
        keep = real_stem if real_stem in names else names[0]
        for n in names:
            if n != keep:
                del best[n]
                skips["alias"] += 1
    return best


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


UNIT_PX = {"px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}
ROOT_DIM = re.compile(r'(<svg\b[^>]*?\b(?:width|height)\s*=\s*")([0-9.]+)(pt|pc|mm|cm|in|px)(")')


def px_units(svg: str) -> str:
    """Rewrite the root width/height in absolute units to plain px (resvg-py 0.5.0 rejects
    e.g. width="72pt" without a viewBox as 'invalid size'; old Sodipodi icons use it)."""
    for _ in range(2):  # width and height
        svg = ROOT_DIM.sub(lambda m: f"{m[1]}{float(m[2]) * UNIT_PX[m[3]]:g}{m[4]}", svg, count=1)
    return svg


def svg_png(cand: Candidate, **fit: int) -> Image.Image:
    import resvg_py

    try:
        png = resvg_py.svg_to_bytes(svg_path=str(cand.real), **fit)
    except ValueError:
        if cand.real.suffix.lower() != ".svg":
            raise
        text = px_units(cand.real.read_text(encoding="utf-8", errors="replace"))
        png = resvg_py.svg_to_bytes(svg_string=text, **fit)
    img = Image.open(io.BytesIO(bytes(png)))
    img.load()
    return img


def load_rgba(cand: Candidate, size: int) -> Image.Image:
    if cand.vector:
        img = svg_png(cand, width=size)
        if img.height > size:  # taller than wide: fit the height instead
            img = svg_png(cand, height=size)
    else:
        img = Image.open(cand.real)
        img.load()
    return img.convert("RGBA")


def to_canvas(img: Image.Image, size: int) -> Image.Image:
    if img.size != (size, size):
        scale = size / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if new != img.size:
            img = img.resize(new, Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    canvas.alpha_composite(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas.convert("RGB")


def render(cand: Candidate, size: int) -> tuple[Image.Image | None, str]:
    try:
        img = load_rgba(cand, size)
    except Exception:  # any parser/renderer failure is just counted
        return None, "render_failed"
    if max(img.size) > 1.5 * min(img.size):
        return None, "not_square"
    alpha = img.getchannel("A")
    if alpha.getextrema()[1] == 0:
        return None, "blank"
    out = to_canvas(img, size)
    lo, hi = out.convert("L").getextrema()
    if hi - lo < 8:
        return None, "blank"
    return out, ""


def ink(img: Image.Image) -> np.ndarray:
    """32x32 'ink' map (255 - RGB) used for the near-duplicate test."""
    small = img.resize((32, 32), Image.Resampling.BOX)
    return 255.0 - np.asarray(small, dtype=np.float32)


def ink_dist(a: np.ndarray, b: np.ndarray) -> float:
    """L1 difference relative to the total ink: ~0 same drawing, ~0.5 typical other style."""
    return float(np.abs(a - b).sum() / (a.sum() + b.sum() + 1e-6))


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / "dataset.json").exists() and not force:
            sys.exit(f"{out} is not empty and has no dataset.json; use --force to overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/icons"))
    ap.add_argument("--size", type=int, default=128, help="output side in pixels")
    ap.add_argument("--min-size", type=int, default=48, help="smallest nominal icon size used")
    ap.add_argument("--min-themes", type=int, default=4, help="min distinct themes per class")
    ap.add_argument(
        "--near-dup",
        type=float,
        default=0.12,
        help="drop an item whose ink distance to an earlier theme's item of the same class "
        "is below this (same drawing re-exported/recoloured by a derived theme); 0 = off",
    )
    ap.add_argument(
        "--exclude", default=DEFAULT_EXCLUDE, help="regex of icon names to drop ('' = none)"
    )
    ap.add_argument("--themes", default="", help="comma list of theme folders (default: all)")
    ap.add_argument("--no-install", action="store_true", help="never call apt-get")
    ap.add_argument("--force", action="store_true", help="overwrite a non-dataset OUT folder")
    args = ap.parse_args()

    t_start = time.time()
    exclude = re.compile(args.exclude) if args.exclude else None
    themes = THEMES
    if args.themes:
        wanted = args.themes.split(",")
        themes = [t for t in THEMES if t[0] in wanted]
    pkgs = sorted({p for _, p in themes})
    apt_info = ensure_packages(pkgs, install=not args.no_install)
    versions = {p: pkg_version(p) for p in pkgs}
    themes = [(t, p) for t, p in themes if (ICON_ROOT / t / "index.theme").is_file()]
    theme_names = [t for t, _ in themes]
    log(f"themes present: {len(themes)}/{len(THEMES)}")

    skips: Counter = Counter()
    per_theme_raw: dict[str, int] = {}
    chosen: dict[str, dict[str, Candidate]] = defaultdict(dict)  # name -> theme -> cand
    seen_bytes: set[str] = set()
    for theme in theme_names:
        best = scan_theme(theme, args.min_size, skips, exclude)
        per_theme_raw[theme] = len(best)
        for name in sorted(best):
            digest = file_sha(best[name].real)
            if digest in seen_bytes:
                skips["duplicate_bytes"] += 1
                continue
            seen_bytes.add(digest)
            chosen[name][theme] = best[name]
        log(f"  {theme:22s} {len(best):6d} names")

    pre_hist = Counter(len(th) for th in chosen.values())
    pre_ge = {k: sum(c for t, c in pre_hist.items() if t >= k) for k in range(2, 9)}
    # render names that can still reach min(3, min_themes) themes (exact >=3 statistics)
    floor = min(3, args.min_themes)
    names = sorted(n for n, th in chosen.items() if len(th) >= floor)
    log(f"names with >= {floor} themes before rendering: {len(names)}")
    prepare_out(args.out, args.force)
    seen_pixels: set[str] = set()
    hist: Counter = Counter()
    classes: dict[str, list[str]] = {}
    files: list[str] = []
    per_theme: Counter = Counter()
    sources: Counter = Counter()
    for i, name in enumerate(names, 1):
        items: dict[str, Image.Image] = {}
        feats: list[np.ndarray] = []
        hashes: list[str] = []
        for theme in theme_names:
            cand = chosen[name].get(theme)
            if cand is None:
                continue
            img, why = render(cand, args.size)
            if img is None:
                skips[why] += 1
                continue
            ph = hashlib.sha256(img.tobytes()).hexdigest()
            if ph in seen_pixels or ph in hashes:
                skips["duplicate_pixels"] += 1
                continue
            f = ink(img)
            if args.near_dup > 0 and any(ink_dist(f, g) < args.near_dup for g in feats):
                skips["near_duplicate"] += 1
                continue
            items[theme], feats, hashes = img, [*feats, f], [*hashes, ph]
        hist[len(items)] += 1
        if len(items) >= args.min_themes:
            seen_pixels.update(hashes)
            classes[name] = list(items)
            (args.out / name).mkdir()
            for theme, img in items.items():
                rel = f"{name}/{theme}.png"
                img.save(args.out / rel, format="PNG")
                files.append(rel)
                per_theme[theme] += 1
                sources["svg" if chosen[name][theme].vector else "png"] += 1
        if i % 500 == 0:
            log(f"  rendered {i}/{len(names)} names, {len(classes)} classes kept")

    files.sort()
    content = hashlib.sha256()
    for rel in files:
        content.update(rel.encode() + b"\0" + (args.out / rel).read_bytes())
    n_ge = {k: sum(c for t, c in hist.items() if t >= k) for k in range(floor, 9)}
    meta = {
        "description": "freedesktop icon names (classes) drawn by Debian icon themes (items)",
        "layout": "<icon-name>/<theme>.png",
        "image_size": args.size,
        "min_size": args.min_size,
        "min_themes": args.min_themes,
        "near_dup": args.near_dup,
        "exclude": args.exclude,
        "renderer": {
            "resvg-py": metadata.version("resvg-py"),
            "Pillow": metadata.version("Pillow"),
        },
        "packages": versions,
        "apt": apt_info,
        "themes": [{"theme": t, "package": p} for t, p in themes],
        "num_classes": len(classes),
        "num_items": len(files),
        "items_source": dict(sources),
        "names_with_at_least_k_themes_before_render": pre_ge,
        "names_with_at_least_k_items_after_render": n_ge,
        "themes_per_class_histogram": {str(k): hist[k] for k in sorted(hist)},
        "per_theme_names_scanned": per_theme_raw,
        "per_theme_items": {t: per_theme[t] for t in theme_names},
        "skipped": dict(sorted(skips.items())),
        "file_list_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest(),
        "content_sha256": content.hexdigest(),
        "build_seconds": round(time.time() - t_start, 1),
        "classes": classes,
    }
    # atomic: a dataset.json is what tells a later run that the folder is whole
    write_text(args.out / "dataset.json", json.dumps(meta, indent=1) + "\n")
    log(
        f"classes={len(classes)} items={len(files)} >=3: {n_ge[3]} >=4: {n_ge[4]} "
        f"time={meta['build_seconds']}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
