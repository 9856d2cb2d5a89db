"""The Explore page (AppTest) on a store with a real tiny fine-tune: it opens on the unedited model, moving the
sparsity slider and clicking heads change the metric, and an edit becomes a queued run."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / "explore.py"), default_timeout=120)


def values(at: AppTest) -> list[str]:
    return [m.value for m in at.metric]


def test_an_empty_store_says_how_to_get_a_model():
    at = page().run()
    assert not at.exception and "python -m analysis finetune" in at.info[0].value


def test_edits_change_the_metric_and_become_a_run(finetuned, no_stray_workers):
    at = page().run()
    assert not at.exception, [e.value for e in at.exception]
    unedited = values(at)
    assert at.metric[0].delta == "+0.0000"  # no edit: the unedited metric exactly
    at.slider(key=f"whatif:sparsity:{finetuned}").set_value(0.9).run()
    assert not at.exception and "90% magnitude" in at.markdown[-1].value + " ".join(m.value for m in at.markdown)
    at.button_group(key=f"whatif:heads:{finetuned}:0").set_value([0, 1, 2, 3]).run()
    assert not at.exception
    edited = values(at)
    assert edited != unedited or any(m.delta != "+0.0000" for m in at.metric)
    assert len(at.dataframe) >= 1  # the history of edits
    retrain = next(b for b in at.button if b.label == "Retrain this edit")
    retrain.click().run()
    assert not at.exception and any("Queued run" in s.value for s in at.success)
