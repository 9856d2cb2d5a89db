"""The Launch page (AppTest): a form for every experiment kind, method options that follow the method,
a launch that becomes a queued job, and friendly errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.runs.experiment import EXPERIMENTS
from analysis.runs.queue import JobQueue
from analysis.service import forms
from analysis.store.index import RunStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def queue_only(monkeypatch):
    monkeypatch.setenv("PRUNESCOPE_WORKERS", "0")  # launches queue; no worker process starts in these tests


def launch_page() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / "launch.py"), default_timeout=60).run()


def widget_keys(at: AppTest) -> set[str]:
    kinds = ("text_input", "number_input", "checkbox", "selectbox", "multiselect", "text_area")
    return {w.key for kind in kinds for w in at.get(kind) if w.key}


def test_every_experiment_kind_has_a_form_with_its_fields():
    at = launch_page()
    assert not at.exception
    assert list(at.radio(key="launch:kind").options) == [forms.title(k) for k in forms.kinds()]
    assert sorted(forms.kinds()) == EXPERIMENTS.names() and forms.kinds()[0] == "finetune"
    for kind in EXPERIMENTS.names():
        at.radio(key="launch:kind").set_value(kind).run()
        assert not at.exception, kind
        expected = {f"launch:{kind}:{f.name}" for f in forms.form_fields(kind, RunStore())}
        assert expected and expected <= widget_keys(at), kind
    assert at.button(key=f"launch:{EXPERIMENTS.names()[-1]}:go")


def test_method_options_follow_the_chosen_method():
    at = launch_page()
    at.radio(key="launch:kind").set_value("finetune").run()
    assert "launch:finetune:vanilla:p" not in widget_keys(at)
    at.selectbox(key="launch:finetune:method").set_value("child-d").run()
    keys = widget_keys(at)
    assert {"launch:finetune:child-d:p", "launch:finetune:child-d:strict", "launch:finetune:child-d:selection"} <= keys
    at.radio(key="launch:kind").set_value("sweep-pruning").run()
    at.multiselect(key="launch:sweep-pruning:methods").set_value(["sparsebert", "random"]).run()
    keys = widget_keys(at)
    assert "launch:sweep-pruning:sparsebert:temperature" in keys and "launch:sweep-pruning:small-dense:ramp_end" not in keys


def test_a_launch_creates_one_queued_job_with_the_cli_run_id(tiny_models, sentiment_files):
    from analysis.core.config import FinetuneConfig
    from analysis.runs.experiment import run_id

    train, evaluation = sentiment_files
    at = launch_page()
    at.radio(key="launch:kind").set_value("finetune").run()
    at.text_input(key="launch:finetune:model").set_value(str(tiny_models["bert"]))
    at.text_input(key="launch:finetune:dataset").set_value(str(train))
    at.text_input(key="launch:finetune:eval_file").set_value(str(evaluation))
    at.number_input(key="launch:finetune:epochs").set_value(1.0)
    at.selectbox(key="launch:finetune:method").set_value("child-f").run()
    at.number_input(key="launch:finetune:child-f:p").set_value(0.2)
    at.button(key="launch:finetune:go").click().run()
    assert not at.exception and not at.error
    assert "Queued as run" in at.success[0].value
    cli = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train), "epochs": 1,
                                        "eval_file": str(evaluation), "method": "child-f", "options": {"p": 0.2}})
    jobs = JobQueue(RunStore()).rows()
    assert [(j["run_id"], j["status"]) for j in jobs] == [(run_id("finetune", cli), "queued")]
    # the queue panel shows it with a progress bar and a cancel button; launching again adds no job
    assert at.button(key=f"launch:cancel:{jobs[0]['job_id']}")
    at.button(key="launch:finetune:go").click().run()
    assert "already in the queue" in at.info[0].value and len(JobQueue(RunStore()).rows()) == 1
    at.button(key=f"launch:cancel:{jobs[0]['job_id']}").click().run()
    assert JobQueue(RunStore()).rows()[0]["status"] == "cancelled"


def test_bad_values_are_messages_not_tracebacks(sentiment_files):
    at = launch_page()
    at.radio(key="launch:kind").set_value("finetune").run()
    at.number_input(key="launch:finetune:lr").set_value(0.0)
    at.button(key="launch:finetune:go").click().run()
    assert not at.exception and "lr: the learning rate must be positive" in at.error[0].value
    at.number_input(key="launch:finetune:lr").set_value(1e-4)
    at.text_input(key="launch:finetune:dataset").set_value("no-such-data")
    at.button(key="launch:finetune:go").click().run()
    assert not at.exception and "unknown dataset 'no-such-data'" in at.error[0].value
    assert JobQueue(RunStore()).rows() == []


def runs_page() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / "runs.py"), default_timeout=60).run()


def test_runs_page_offers_the_demo_on_an_empty_store():
    at = runs_page()
    assert not at.exception and "store is empty" in at.info[0].value
    at.button(key="runs:demo").click().run()
    assert not at.exception and "The demo is queued" in at.success[0].value
    jobs = JobQueue(RunStore()).rows()
    assert [(j["kind"], j["status"]) for j in jobs] == [("demo", "queued")]
    assert at.button(key=f"runs-first:cancel:{jobs[0]['job_id']}")


def test_runs_page_deletes_and_reruns_after_confirmation(tiny_models, sentiment_files):
    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as experiments

    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})
    done = experiments.execute("finetune", cfg, save_weights=False).record
    failed_cfg = cfg.replace(seed=7)
    failed_id = experiments.run_id("finetune", failed_cfg)
    store = RunStore()
    store.claim(failed_id, "finetune", failed_cfg.to_dict(), {"method": "vanilla"})
    store.fail(failed_id, "RuntimeError: out of memory")

    at = runs_page()
    at.selectbox(key="runs:pick").set_value(failed_id).run()
    at.button(key="runs:rerun").click().run()
    assert "queued again" in at.warning[0].value
    at.button(key="runs:yes").click().run()
    assert not at.exception and f"Run {failed_id} deleted and queued again as {failed_id} (queued)" in at.success[0].value
    assert store.get(failed_id) is None
    assert [(j["run_id"], j["status"]) for j in JobQueue(store).rows()] == [(failed_id, "queued")]

    at.selectbox(key="runs:pick").set_value(done.run_id).run()
    at.button(key="runs:delete").click().run()
    at.button(key="runs:no").click().run()
    assert store.get(done.run_id) is not None and not at.warning
    at.button(key="runs:delete").click().run()
    at.button(key="runs:yes").click().run()
    assert not at.exception and store.get(done.run_id) is None and not (store.root / done.run_id).exists()
    assert "store is empty" in at.info[0].value


def test_the_lr_schedule_is_a_choice_and_baselines_are_no_probe_targets(tiny_models, sentiment_files):
    fields = {f.name: f for f in forms.form_fields("finetune", RunStore())}
    schedule = fields["lr_schedule"]
    assert (schedule.widget, schedule.default, schedule.choices) == ("select", "linear", ("linear", "constant", "cosine"))
    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as jobs

    train, evaluation = sentiment_files
    bag = jobs.execute("finetune", FinetuneConfig.from_flat({}, {
        "model": "embedding-bag", "tokenizer": str(tiny_models["bert"]), "dataset": str(train),
        "eval_file": str(evaluation), "epochs": 1})).record  # kept its weights, but has no encoder
    targets = {f.name: f for f in forms.form_fields("probe", RunStore())}["target"].choices
    assert (bag.path / "model").is_dir() and bag.run_id not in targets and "default" in targets
