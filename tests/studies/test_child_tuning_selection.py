"""The Child-Tuning study with per-arm selection: every (lr, p) of each arm trained on the training set minus a
held-out share (seed 0), the best held-out score chooses, then the seeds run at the chosen values."""

import math

import pytest

from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError
from analysis.runs import experiment as jobs
from analysis.store.bundles import export_runs
from analysis.store.index import RunStore
from analysis.studies.child_tuning_study import ChildTuningStudyConfig, choose


def test_choose_takes_the_best_held_out_score_and_breaks_ties_toward_small_values():
    rows = [{"task": "t", "method": "child-f", "p": p, "lr": lr, "holdout": h}
            for p, lr, h in ((0.2, 1e-4, 0.7), (0.3, 1e-4, 0.8), (0.3, 1e-3, 0.8), (0.4, 1e-3, 0.6))]
    rows += [{"task": "t", "method": "vanilla", "p": None, "lr": lr, "holdout": h} for lr, h in ((1e-4, 0.5), (1e-3, 0.9))]
    assert choose(rows) == {("t", "child-f"): (1e-4, 0.3), ("t", "vanilla"): (1e-3, None)}


def test_a_study_selects_lr_and_p_per_arm_then_runs_its_seeds(tiny_models, sentiment_files):
    train, evaluation = sentiment_files
    base = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 1, "batch_size": 8})
    cfg = ChildTuningStudyConfig(finetune=base, tasks=(str(train),), seeds=(1, 2), p_f=(0.2, 0.4), p_d=(0.3,),
                                 transfer_from=None, select_lrs=(1e-4, 1e-3), select_holdout=0.25)
    study = jobs.execute("study-child-tuning", cfg).record
    assert study.status == "done", study.error
    store = RunStore()
    selection = store.load_artifact_json(study.run_id, "selection")
    assert len(selection["candidates"]) == 2 * (1 + 2 + 1)  # two lrs x (vanilla, F at two p, D at one p)
    assert all(c["holdout"] is not None for c in selection["candidates"])
    for cand in selection["candidates"]:
        assert store.require(cand["run_id"]).summary["holdout_examples"] == 12  # a quarter of the 48 rows
    chosen = {c["method"]: (c["lr"], c["p"]) for c in selection["chosen"]}
    assert set(chosen) == {"vanilla", "child-f", "child-d"} and chosen["child-d"][1] == 0.3
    table = store.load_artifact_json(study.run_id, "table")
    assert len(table) == 2 * 3 and {r["seed"] for r in table} == {1, 2}
    for row in table:
        assert (row["lr"], row["p"]) == chosen[row["method"]]
        assert store.require(row["run_id"]).summary["holdout_examples"] == 0  # the seeds train on everything
    exported = export_runs(store, [study.run_id], store.root.parent / "export")
    assert exported["runs"] == 1 + 8 + 6  # the study, its candidates (its choice can be checked), its seeds
    _the_selection_shows_in_the_figure_table_and_page(store, study.run_id, chosen)


def _the_selection_shows_in_the_figure_table_and_page(store, study_id, chosen):
    """The chosen (lr, p) per arm reach the selection table, the registered figure (with its table for papers) and
    the Child-Tuning page; before the selection artefact exists, the candidates logged so far show, none chosen."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from analysis.figures import registry
    from analysis.figures.child_tuning import selection_table
    from analysis.studies.child_tuning_study import selection_inputs

    selection = selection_inputs(store, study_id)
    assert selection["complete"] and selection["holdout"] == 0.25 and selection["seed"] == 0
    table = selection_table(selection)
    assert len(table) == 8 and list(table["method"].drop_duplicates()) == ["vanilla", "child-f", "child-d"]
    picked = table[table["chosen"]]
    assert {m: (lr, None if p != p else p) for m, lr, p in zip(picked["method"], picked["lr"], picked["p"])} == chosen
    built = registry.build_figure(store, "child-selection", [study_id])
    assert built.arguments["complete"] and len(built.table) == 8
    assert sum(t.name == "chosen" for t in built.figure.data) == 3  # one ring per arm
    from analysis.figures.style import to_greyscale

    grey = to_greyscale(built.figure)
    assert {t.marker.symbol for t in grey.data if t.name == "chosen"} == {"circle-open"}  # still rings in print
    assert [a.text for a in built.figure.layout.annotations][0].endswith("(accuracy)")  # the panel names its metric
    at = AppTest.from_file(str(Path(__file__).parents[2] / "dashboard" / "child_tuning.py"), default_timeout=60).run()
    assert not at.exception
    assert any("chosen on a held-out 25%" in h.value for h in at.subheader)
    shown = at.dataframe[0].value
    assert len(shown) == 3 and set(shown["method"]) == {"vanilla", "child-f", "child-d"}
    edged = store.load_artifact_json(study_id, "selection")
    edged["chosen"][0]["at_edge"] = "top"
    store.save_artifact_json(study_id, "selection", edged)
    at = AppTest.from_file(str(Path(__file__).parents[2] / "dashboard" / "child_tuning.py"), default_timeout=60).run()
    assert any("at the top lr" in w.value for w in at.warning)  # a choice at the grid's edge is said
    (store.run_dir(study_id) / "artefacts" / "selection.json").unlink()  # as while the selection still runs
    running = selection_inputs(store, study_id)
    assert not running["complete"] and running["chosen"] == [] and len(running["candidates"]) == 8
    assert not selection_table(running)["chosen"].any()
    store.save_artifact_json(study_id, "selection", {"candidates": "damaged", "chosen": []})
    at = AppTest.from_file(str(Path(__file__).parents[2] / "dashboard" / "child_tuning.py"), default_timeout=60).run()
    assert not at.exception and at.error  # said on the page, not a traceback
    assert "mean ± std" in at.dataframe[0].value.columns  # and the study's own table still shows


def test_a_diverged_candidate_sits_on_the_panels_lower_edge_labelled_not_flattening_the_rest():
    from analysis.figures.child_tuning import SELECTION_FOCUS, selection_lines

    scores = {("vanilla", None, 1e-4): 0.86, ("vanilla", None, 4e-4): 0.30, ("child-f", 0.2, 1e-4): 0.83,
              ("child-f", 0.2, 4e-4): 0.84}
    candidates = [{"task": "stsb", "method": m, "p": p, "lr": lr, "metric": "pearson", "holdout": h, "dev": h,
                   "run_id": f"{i:016x}"} for i, ((m, p, lr), h) in enumerate(scores.items())]
    fig = selection_lines({"candidates": candidates, "chosen": []})
    edge = 0.86 - SELECTION_FOCUS
    lo, hi = fig.layout.yaxis.range
    assert lo < edge < 0.83 and 0.86 < hi < 0.9  # the choice keeps the panel
    vanilla = next(t for t in fig.data if t.name == "vanilla")
    assert list(vanilla.y) == [0.86, edge] and list(vanilla.customdata) == [0.86, 0.30]  # hover tells the truth
    (marker,) = [t for t in fig.data if t.marker.symbol == "triangle-down"]
    assert list(marker.y) == [edge] and not marker.showlegend
    labels = [a for a in fig.layout.annotations if a.yref == "y"]
    assert [(a.text, a.x, a.y) for a in labels] == [("0.30", math.log10(4e-4), edge)]  # a log axis takes log10(x)
    calm = selection_lines({"candidates": candidates[:1] + candidates[2:], "chosen": []})
    assert calm.layout.yaxis.range is None and not [t for t in calm.data if t.marker.symbol == "triangle-down"]
    both = [{**c, "holdout": 0.5} if c["method"] == "child-f" and c["lr"] == 4e-4 else c for c in candidates]
    stacked = [a for a in selection_lines({"candidates": both, "chosen": []}).layout.annotations if a.yref == "y"]
    assert [(a.text, a.yshift) for a in stacked] == [("0.50", 14), ("0.30", 28)]  # two at one lr do not overlap


def test_a_series_best_at_the_grids_edge_gets_more_lrs_beyond_it_until_its_best_is_inside(monkeypatch):
    from analysis.studies.child_tuning_study import ChildTuningStudy

    peaks = {"vanilla": 1e-4, "child-f": 8e-4, "child-d": 2.5e-5}  # inside, two steps above, one step below
    cfg = ChildTuningStudyConfig(finetune=FinetuneConfig.from_flat({}, {}), tasks=("stsb",), p_f=(0.2,), p_d=(0.1,),
                                 transfer_from=None, select_lrs=(5e-5, 1e-4, 2e-4), select_extend=3)
    rounds = []

    def fake_candidates(grid, ctx):
        rounds.append(sorted((m, lr) for _, m, _, lr, _ in grid))
        return [{"task": t, "method": m, "p": p, "lr": lr, "holdout": -abs(math.log(lr / peaks[m])), "run_id": "x"}
                for t, m, p, lr, _ in grid]

    class Ctx:
        def save_json(self, name, obj):
            self.saved = obj

    monkeypatch.setattr(ChildTuningStudy, "candidates", staticmethod(fake_candidates))
    ctx = Ctx()
    chosen = ChildTuningStudy.select(cfg, ctx)
    assert len(rounds[0]) == 9
    assert rounds[1:] == [[("child-d", 2.5e-5), ("child-f", 4e-4)], [("child-d", 1.25e-5), ("child-f", 8e-4)],
                          [("child-f", 1.6e-3)]]  # a series is extended until a step beyond its best has been tried
    assert chosen == {("stsb", "vanilla"): (1e-4, None), ("stsb", "child-f"): (8e-4, 0.2),
                      ("stsb", "child-d"): (2.5e-5, 0.1)}
    assert len(ctx.saved["candidates"]) == 9 + 5
    edges = {c["method"]: c["at_edge"] for c in ctx.saved["chosen"]}
    assert edges == {"vanilla": None, "child-f": None, "child-d": None}  # every choice inside what its series tried
    plain = ChildTuningStudy.select(cfg.replace(select_extend=0), ctx)
    assert plain[("stsb", "child-f")] == (2e-4, 0.2) and len(ctx.saved["candidates"]) == 9
    assert {c["method"]: c["at_edge"] for c in ctx.saved["chosen"]}["child-f"] == "top"  # said, not hidden
    with pytest.raises(ConfigError, match="at least two lrs"):
        cfg.replace(select_lrs=(1e-4,)).validate()


def test_only_a_strict_best_at_an_edge_is_extended_and_never_to_an_lr_already_tried():
    cfg = ChildTuningStudyConfig(finetune=FinetuneConfig.from_flat({}, {}), tasks=("stsb",), p_f=(), p_d=(),
                                 transfer_from=None, select_lrs=(1e-4, 3e-4, 9e-4), select_extend=1)

    def rows(scores):
        return [{"task": "stsb", "method": "vanilla", "p": None, "lr": lr, "holdout": h} for lr, h in scores.items()]

    def extended(scores):
        return [lr for _, _, _, lr, _ in cfg.beyond_the_edge(rows(scores))]

    assert extended({1e-4: 0.5, 3e-4: 0.6, 9e-4: 0.7}) == [2.7e-3]  # x3, rounded: not 0.0026999999999999997
    assert extended({1e-4: 0.7, 3e-4: 0.6, 9e-4: 0.5}) == [3.33333e-5]
    assert extended({1e-4: 0.0, 3e-4: 0.0, 9e-4: 0.0}) == []  # a flat series (MCC 0 everywhere) is not extended
    assert extended({1e-4: 0.6, 3e-4: 0.6, 9e-4: 0.5}) == []  # a tie at the edge is not a best at the edge
    assert extended({1e-4: 0.5, 3e-4: 0.7, 9e-4: None}) == []  # 9e-4 was tried (it failed): 3e-4 is inside
    assert extended({1e-4: None, 3e-4: None}) == []


def test_a_candidate_whose_held_out_score_is_nan_is_scored_by_its_finite_epochs(monkeypatch):
    from types import SimpleNamespace

    from analysis.studies import child_tuning_study as study

    epochs = {1e-4: [0.5, 0.6], 4e-4: [float("nan"), 0.4], 8e-4: [float("nan")]}  # a diverged run can score NaN

    def fake_members(ctx, members, done):
        for i, member in enumerate(members):
            lr = member.config.train.lr
            done(i, SimpleNamespace(run_id=f"{i:016x}", status="done", metrics={"pearson": 0.0},
                                    summary={"metric": "pearson",
                                             "epoch_metrics": [{"holdout_pearson": h} for h in epochs[lr]]}))

    monkeypatch.setattr(study, "run_members", fake_members)
    cfg = ChildTuningStudyConfig(finetune=FinetuneConfig.from_flat({}, {}), tasks=("stsb",), p_f=(), p_d=(),
                                 transfer_from=None, select_lrs=(1e-4, 4e-4, 8e-4))
    rows = study.ChildTuningStudy.candidates(cfg.selection_grid(), SimpleNamespace(log=lambda record: None))
    assert [r["holdout"] for r in rows] == [0.6, 0.4, None]
    assert study.choose(rows) == {("stsb", "vanilla"): (1e-4, None)}
