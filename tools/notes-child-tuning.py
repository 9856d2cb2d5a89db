"""Markdown tables of a Child-Tuning study for NOTES.md, computed from the store (never typed by hand): the selection
(every candidate's held-out score, the chosen lr and p per arm and task), the seeds at the chosen values with the
paired differences against vanilla, and the domain transfer. Works on an unfinished study (what it has so far).

    PRUNESCOPE_STORE=runs .venv/bin/python tools/notes-child-tuning.py STUDY_ID
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from analysis.figures.child_tuning import method_label, selection_table, transfer_table
from analysis.reports.tables import lr_label
from analysis.service.studies import selection_inputs, study_inputs
from analysis.store.index import RunStore


def selection_markdown(store: RunStore, study: str) -> str:
    selection = selection_inputs(store, study)
    if selection is None:
        return "(no selection: one fixed lr)"
    table = selection_table(selection)
    lrs = sorted(set(table["lr"]))
    head = "| task | arm | p | " + " | ".join(f"lr {lr_label(lr)}" for lr in lrs) + " | chosen |"
    lines = [head, "|" + "---|" * (4 + len(lrs))]
    for (task, method, p), arm in table.groupby(["task", "method", "p"], dropna=False, sort=False):
        cells = []
        for lr in lrs:
            row = arm[arm["lr"] == lr]
            held = row["held_out"].iloc[0] if len(row) else None
            cells.append("" if held is None or pd.isna(held) else
                         f"{'**' if row['chosen'].iloc[0] else ''}{held:.3f}{'**' if row['chosen'].iloc[0] else ''}"
                         f" ({row['dev'].iloc[0]:.3f})")
        picked = arm[arm["chosen"]]
        chosen = f"lr {lr_label(picked['lr'].iloc[0])}" if len(picked) else ""
        shown_p = "" if pd.isna(p) else f"{p:g}"
        lines.append(f"| {task} | {method} | {shown_p} | " + " | ".join(cells) + f" | {chosen} |")
    state = "complete" if selection["complete"] else f"unfinished: {len(table)} candidates so far"
    return (f"Selection ({state}; held-out score on {100 * selection['holdout']:g}% of the training set, seed "
            f"{selection['seed']}; dev in brackets, for reference only; the chosen candidate in bold):\n\n"
            + "\n".join(lines))


def seeds_markdown(store: RunStore, study: str) -> str:
    rows, summary, complete = study_inputs["child-tuning"](store, study)
    if not rows:
        return "(no seed run finished yet)"
    lines = ["| task | arm | lr | seeds | mean ± sd | minus vanilla, paired: mean [95% CI] | p |",
             "|---|---|---|---|---|---|---|"]
    lrs = {(r["task"], r["method"], r["p"]): r.get("lr") for r in rows}
    for c in summary.get("cells", []):
        lr = lrs.get((c["task"], c["method"], c["p"]))
        diff = (f"{c['diff_mean']:+.3f} [{c['diff_ci_low']:+.3f}, {c['diff_ci_high']:+.3f}]"
                if c.get("diff_mean") is not None else "")
        pval = f"{c['diff_p_value']:.3f}" if c.get("diff_p_value") is not None else ""
        lines.append(f"| {c['task']} | {method_label(c)} | {'' if lr is None else lr_label(lr)} | {c['n']} | "
                     f"{c['mean']:.3f} ± {c['std']:.3f} | {diff} | {pval} |")
    out = ("Seeds at the chosen values" + ("" if complete else f" (unfinished: {len(rows)} runs so far)") + ":\n\n"
           + "\n".join(lines))
    transfer = summary.get("transfer") or []
    if transfer:
        t = transfer_table(transfer)
        source = store.require(study).config.get("transfer_from")
        out += (f"\n\nDomain transfer (the {source} runs on other sentiment sets, accuracy):\n\n"
                "| arm | target | seeds | mean ± sd |\n|---|---|---|---|\n")
        out += "\n".join(f"| {r.method} | {r.target} | {r.seeds} | {r.mean:.3f} ± {r.std:.3f} |"
                          for r in t.itertuples())
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    store = RunStore()
    print(selection_markdown(store, sys.argv[1]) + "\n\n" + seeds_markdown(store, sys.argv[1]))
