"""The sparse execution path gives the masked model's outputs, with every kernel."""

import pytest
import torch

from analysis.core.errors import ConfigError
from analysis.methods.pruning.masks import apply_masks_, magnitude_scores, select
from analysis.methods.pruning.unstructured import prunable_params
from analysis.models.loading import load_encoder_classifier
from analysis.models.sparse_exec import CSRLinear, to_sparse_execution_


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "electra"])
@pytest.mark.parametrize("kernel", ["numba", "mkl"])
def test_sparse_execution_matches_the_masked_model(tiny_models, family, kernel):
    torch.manual_seed(0)
    model = load_encoder_classifier(str(tiny_models[family]), 2).eval()
    params = prunable_params(model)
    apply_masks_(params, select(magnitude_scores(params), 0.9, "per-tensor"))
    ids = torch.randint(5, 1000, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).logits
        swapped = to_sparse_execution_(model, kernel=kernel)
        got = model(input_ids=ids, attention_mask=mask).logits
    assert swapped == len(params)
    assert sum(isinstance(m, CSRLinear) for m in model.modules()) == len(params)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_dense_enough_layers_are_left_alone_and_bad_kernels_refused(tiny_models):
    model = load_encoder_classifier(str(tiny_models["bert"]), 2)
    assert to_sparse_execution_(model) == 0  # nothing is 50% zero
    with pytest.raises(ConfigError, match="unknown sparse kernel"):
        CSRLinear(torch.nn.Linear(4, 4), kernel="cusparse")


def test_the_numba_kernel_leaves_torchs_thread_count_alone():
    """numba's first call starts an OpenMP pool that resets torch's thread count; the layer puts it back."""
    import torch

    from analysis.models.sparse_exec import CSRLinear

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        linear = torch.nn.Linear(16, 8)
        with torch.no_grad():
            linear.weight[torch.rand_like(linear.weight) < 0.9] = 0
        CSRLinear(linear, kernel="numba")(torch.randn(3, 5, 16))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
