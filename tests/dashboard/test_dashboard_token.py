"""The dashboard's access token (AppTest): with $PRUNESCOPE_TOKEN set, launching, cancelling and deleting are
disabled with a message until the token is entered, and a forged click on a disabled button does nothing (the
pages also check the token again before acting)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.core.config import FinetuneConfig
from analysis.runs.queue import JobQueue
from analysis.store.index import RunStore
from dashboard import common

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "correct horse battery staple"
RID = "0123456789abcdef"
LOCKED_TEXT = "locked"


@pytest.fixture(autouse=True)
def queue_only(monkeypatch):
    """Jobs are queued but no worker starts: the test looks at the queue, nothing trains."""
    monkeypatch.setenv("PRUNESCOPE_WORKERS", "0")


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / f"{name}.py"), default_timeout=60).run()


def unlock(at: AppTest, token: str) -> AppTest:
    at.text_input(key="access:input").input(token).run()
    assert not at.exception
    return at


def crafted_click(at: AppTest, key: str) -> AppTest:
    """A click on a disabled button, as a forged websocket message could send it (AppTest refuses the usual way)."""
    at.button(key=key)._value = True
    return at.run()


def a_done_run(store: RunStore) -> None:
    store.claim(RID, "finetune", {"seed": 0}, {"method": "vanilla", "dataset": "sst2"})
    store.finish(RID, {"accuracy": 0.5}, {}, {})


def test_token_comparison_is_constant_time(monkeypatch):
    calls = []
    real = common.hmac.compare_digest
    monkeypatch.setattr(common.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert common.token_matches(TOKEN, TOKEN) and common.token_matches(f" {TOKEN}\n", TOKEN)
    assert not common.token_matches("correct horse", TOKEN) and not common.token_matches(None, TOKEN)
    assert len(calls) == 4 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


def test_without_a_token_every_action_is_open(monkeypatch):
    monkeypatch.delenv(common.TOKEN_ENV, raising=False)
    at = page("launch")
    assert not at.exception and not at.button(key="launch:finetune:go").disabled
    assert not at.sidebar.text_input and not any(LOCKED_TEXT in i.value for i in at.info)


def test_launch_is_disabled_until_the_token_is_entered(monkeypatch):
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    at = page("launch")
    go = "launch:finetune:go"
    assert not at.exception and at.button(key=go).disabled
    assert any(LOCKED_TEXT in i.value and common.TOKEN_ENV in i.value for i in at.info)
    crafted_click(at, go)  # a forged click on the disabled button: nothing is queued
    assert not at.exception and JobQueue(RunStore()).rows() == []
    unlock(at, "wrong token")
    assert at.button(key=go).disabled and any("not the one" in e.value for e in at.sidebar.error)
    unlock(at, TOKEN)
    assert not at.button(key=go).disabled and not any(LOCKED_TEXT in i.value for i in at.info)
    at.button(key=go).click().run()
    assert not at.exception and "Queued as run" in at.success[0].value
    assert [j["status"] for j in JobQueue(RunStore()).rows()] == ["queued"]


def test_delete_needs_the_token(monkeypatch):
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    store = RunStore()
    a_done_run(store)
    at = page("runs")
    assert not at.exception and at.button(key="runs:delete").disabled and at.button(key="runs:rerun").disabled
    crafted_click(at, "runs:delete")  # a forged click: no confirmation appears, nothing is deleted
    assert not at.exception and not at.warning and store.get(RID) is not None
    at.session_state["runs:confirm"] = ("delete", RID)  # even with the confirmation up, "Yes" stays locked
    at.run()
    assert at.button(key="runs:yes").disabled
    crafted_click(at, "runs:yes")
    assert not at.exception and store.get(RID) is not None
    unlock(at, TOKEN)
    at.button(key="runs:delete").click().run()
    at.button(key="runs:yes").click().run()
    assert not at.exception and store.get(RID) is None


def test_cancel_needs_the_token(monkeypatch, sentiment_files):
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_dict({"data": {"dataset": str(train), "eval_file": str(evaluation)}})
    store = RunStore()
    a_done_run(store)  # a non-empty store: the Runs page shows its queue panel
    sub = JobQueue(store).submit("finetune", cfg)
    cancel = f"runs:cancel:{sub.job_id}"
    at = page("runs")
    assert not at.exception and at.button(key=cancel).disabled
    crafted_click(at, cancel)
    assert not at.exception and JobQueue(store).job(sub.job_id)["status"] == "queued"
    unlock(at, TOKEN)
    assert not at.button(key=cancel).disabled
    at.button(key=cancel).click().run()
    assert not at.exception and JobQueue(store).job(sub.job_id)["status"] == "cancelled"


def test_a_new_token_locks_a_session_unlocked_with_the_old_one(monkeypatch):
    """The dashboard restarted with another token: a click on the button enabled under the old one does nothing
    (the page checks the token again on every run) and the session is asked for the new token."""
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    at = unlock(page("launch"), TOKEN)
    go = "launch:finetune:go"
    assert not at.button(key=go).disabled
    monkeypatch.setenv(common.TOKEN_ENV, "a new token")
    at.button(key=go).click().run()
    assert not at.exception and JobQueue(RunStore()).rows() == [] and at.button(key=go).disabled
    assert any("not the one" in e.value for e in at.sidebar.error) and any(LOCKED_TEXT in i.value for i in at.info)


def test_the_app_command_listens_on_loopback_unless_told_and_warns_without_a_token():
    from analysis.cli.app import exposure_warning, streamlit_argv

    argv = streamlit_argv("127.0.0.1", 8765)
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1" and argv[argv.index("--server.port") + 1] == "8765"
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("::1", "") is None
    assert "PRUNESCOPE_TOKEN" in exposure_warning("0.0.0.0", None)
    assert exposure_warning("0.0.0.0", TOKEN) is None
    config = (ROOT / ".streamlit" / "config.toml").read_text()  # a plain `streamlit run app.py` here: loopback too
    assert 'address = "127.0.0.1"' in config
