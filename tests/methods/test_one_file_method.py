"""Adding a pruning method is one new file: written in a temporary folder and imported, it appears in the CLI
(its flags too), in the launch forms, in the figures' order and colours, and passes the invariant suite."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import pytest

from analysis.cli.base import main
from analysis.figures.base import method_colour, method_order
from analysis.methods.pruning import PRUNING_METHODS
from analysis.runs import experiment as jobs
from analysis.service import forms
from analysis.store.index import RunStore
from tests.methods.test_pruning import check_reached_sparsity, prune_config

METHOD_FILE = '''
"""Largest weights first: the opposite of magnitude pruning (a test of the one-file recipe)."""

from dataclasses import dataclass

from analysis.methods.pruning.base import PRUNING_METHODS
from analysis.methods.pruning.masks import magnitude_scores
from analysis.methods.pruning.unstructured import Unstructured, UnstructuredOptions


@dataclass(frozen=True)
class ReverseOptions(UnstructuredOptions):
    flip_sign: bool = True  # scores are -|w|: the largest weights go first


@PRUNING_METHODS.register("reverse-magnitude")
class ReverseMagnitude(Unstructured):
    """Remove the largest weights first, on the cubic ramp, from the pre-trained model."""

    order = 55
    Options = ReverseOptions

    def score_fn(self, seed):
        return lambda params: {k: -v for k, v in magnitude_scores(params).items()}
'''


@pytest.fixture
def one_file_method(tmp_path, monkeypatch):
    monkeypatch.setattr(PRUNING_METHODS, "_items", dict(PRUNING_METHODS._items))  # registered only for this test
    path = tmp_path / "reverse_magnitude.py"
    path.write_text(textwrap.dedent(METHOD_FILE))
    spec = importlib.util.spec_from_file_location("reverse_magnitude", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reverse_magnitude", module)
    spec.loader.exec_module(module)
    return "reverse-magnitude"


def test_a_method_in_one_file_is_everywhere(one_file_method, tiny_models, sentiment_files, capsys):
    name = one_file_method
    assert name in PRUNING_METHODS.names()
    # the CLI: its name and its own option flag
    train, evaluation = sentiment_files
    argv = ["prune", "--method", name, "--no-flip-sign", "--model", str(tiny_models["bert"]), "--dataset", str(train),
            "--eval-file", str(evaluation), "--sparsity", "0.5", "--dry-run", "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["config"]["method"] == name and printed["config"]["options"] == {"flip_sign": False}
    # the forms: a choice of the method field, with its option fields
    method_field = next(f for f in forms.form_fields("prune") if f.name == "method")
    assert name in method_field.choices
    assert [f.name for f in forms.option_fields(PRUNING_METHODS, name)][-1] == "flip_sign"
    # the figures: its place from `order`, a colour of its own among its neighbours
    order = method_order()
    assert order.index("random") < order.index(name) < order.index("small-dense")
    assert method_colour(name) not in {method_colour("random"), method_colour("small-dense")}
    # the invariant suite
    rec = jobs.execute("prune", prune_config(tiny_models, sentiment_files, name, 0.5)).record
    assert rec.status == "done"
    check_reached_sparsity(name, RunStore().load_artifact_json(rec.run_id, "sparsity"), 0.5)
