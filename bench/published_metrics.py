"""A checkpoint's test metrics under the definitions papers publish, next to lookalike's own.

The Fashion-MNIST numbers the demo was measured against (cdluminate/robrank,
``doc/dmltab-fashion.txt``: 2-conv 2-FC network, semi-hard triplet ``pmtripletN`` R@1 0.904,
"mAP@R" 0.877, mAP 0.886) use robrank's own functions (``robrank/utils.py``):

- ``r@1``: the nearest other test item has the query's label: lookalike's P@1;
- ``mAP@R``: ``metric_get_ap_r(..., rs=[10])``, the precision at every hit among the first
  **10** neighbours, summed and divided by 10: lookalike's MAP@10, *not* MAP@R (Musgrave et
  al. 2020), whose cut-off is R, the number of other items of the query's class (999 on the
  test set);
- ``mAP``: ``metric_get_ap``: average precision over the whole ranking, every one of the R
  relevant items counted: lookalike's MAP@k at k = N - 1.

This script evaluates CHECKPOINTS on the test set (leave-one-out, the distance each was
trained with) with lookalike's metrics (MAP@R, MAP@10, P@1, ...) and adds the full-ranking
mAP (MAP@k over all 9,999 others), so that one table compares like with like. It writes
bench/results/published-metrics.json.

    python bench/published_metrics.py runs/demo/train/best
    python bench/published_metrics.py runs/a/best runs/b/best --out /tmp/m.json
"""

from __future__ import annotations

import argparse

import numpy as np
from machine import RunInfo, git_commit, machine, versions  # bench/machine.py: on sys.path

from lookalike.evaluation import evaluate_embeddings
from lookalike.evaluation.model_eval import evaluate_checkpoint
from lookalike.files import write_json

# robrank's published Fashion-MNIST rows (doc/dmltab-fashion.txt), for the table
PUBLISHED = {
    "robrank rc2f2 pmtripletN (semi-hard triplet)": {"p1": 0.904, "map10": 0.877,
                                                     "map_full": 0.886},
    "robrank rc2f2 pdquadN (its best row)": {"p1": 0.907, "map10": 0.882, "map_full": 0.889},
}


def full_ranking_map(embeddings: np.ndarray, labels: np.ndarray, distance: str) -> float:
    """Mean average precision over each query's whole leave-one-out ranking (robrank's mAP).

    AP = (1/R) sum over the R relevant items of the precision at their rank: MAP@k with k
    the whole gallery (N - 1), where min(k, R) = R, ranked exactly by evaluate_embeddings.
    """
    whole = len(labels) - 1
    metrics = evaluate_embeddings(embeddings, labels, ks=(whole,), distance=distance)
    return metrics.map_at_k[whole]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default="bench/results/published-metrics.json")
    args = parser.parse_args()
    info = RunInfo()
    rows = []
    for checkpoint in args.checkpoints:
        evaluation = evaluate_checkpoint(checkpoint, args.data, "test", show_progress=False)
        metrics = evaluation.metrics.to_dict()
        labels = np.asarray(evaluation.dataset.collection.labels)
        metrics["map_full_ranking"] = full_ranking_map(evaluation.embeddings, labels,
                                                       evaluation.distance)
        rows.append({"checkpoint": checkpoint, "metrics": metrics})
        print(f"{checkpoint}: P@1 {metrics['precision_at_1']:.4f}  MAP@10 "
              f"{metrics['map_at_10']:.4f}  mAP {metrics['map_full_ranking']:.4f}  MAP@R "
              f"{metrics['map_at_r']:.4f}")
    table = ["| model | P@1 (robrank r@1) | MAP@10 (robrank \"mAP@R\") | full mAP (robrank "
             "mAP) | MAP@R (R = class size - 1) |", "|---|---|---|---|---|"]
    for name, p in PUBLISHED.items():
        table.append(f"| {name}, published | {p['p1']:.3f} | {p['map10']:.3f} | "
                     f"{p['map_full']:.3f} | not published |")
    for row in rows:
        m = row["metrics"]
        table.append(f"| {row['checkpoint']} | {m['precision_at_1']:.4f} | "
                     f"{m['map_at_10']:.4f} | {m['map_full_ranking']:.4f} | "
                     f"{m['map_at_r']:.4f} |")
    print("\n".join(table))
    write_json(args.out, {"git_commit": git_commit(), "machine": machine(versions(["torch"])),
                          "run": info.info(info.seconds()), "data": args.data,
                          "published": PUBLISHED, "rows": rows, "table": table})
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
