"""The fast LSTM baseline: the same function as a packed BiLSTM, lazy AdamW, clipping sparse gradients."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from analysis.core.config import TrainConfig
from analysis.core.errors import ModelError
from analysis.models.lstm import LSTMClassifier, check_edge_tokens, reversal_index
from analysis.training.loop import make_optimizer
from analysis.training.sparse_optim import LazyAdamW, clip_grad_norm_, sparse_parameters


def batch(seed: int = 0, lengths=(9, 3, 5, 1, 7)):
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    return torch.randint(1, 100, (len(lengths), width), generator=g) * mask, mask


def packed_reference(model: LSTMClassifier, layers: int) -> nn.LSTM:
    """torch's packed bidirectional LSTM holding the same weights."""
    ref = nn.LSTM(model.config["embedding_dim"], model.config["hidden"], num_layers=layers, bidirectional=True,
                  batch_first=True)
    with torch.no_grad():
        for i in range(layers):
            for suffix, mod in (("", model.forward_lstms[i]), ("_reverse", model.backward_lstms[i])):
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{kind}_l{i}{suffix}").copy_(getattr(mod, f"{kind}_l0"))
    return ref


def test_reversal_index_reverses_each_row_within_its_length():
    index = reversal_index(torch.tensor([3, 1, 4]), 4)  # (time, batch)
    assert index.t().tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert torch.equal(index.gather(0, index), torch.arange(4).unsqueeze(1).expand(4, 3))  # its own inverse


@pytest.mark.parametrize("layers", [1, 2])
def test_padded_directions_compute_the_packed_bilstm(layers):
    torch.manual_seed(0)
    model = LSTMClassifier(100, 0, 3, 8, 6, layers, True, 0.0).eval()
    ids, mask = batch()
    ref = packed_reference(model, layers)
    packed = nn.utils.rnn.pack_padded_sequence(model.embeddings(ids), mask.sum(1), batch_first=True,
                                               enforce_sorted=False)
    out, _ = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=ids.shape[1])
    want = model.classifier(out.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(1))
    assert torch.allclose(model(ids, mask).logits, want, atol=1e-6)
    ids2 = ids.clone()
    ids2[mask == 0] = 7  # what sits in the padding never matters
    assert torch.allclose(model(ids2, mask).logits, want, atol=1e-6)


def test_lazy_adamw_moves_only_used_rows_and_matches_adamw_when_all_are_used():
    torch.manual_seed(0)
    dense = nn.Embedding(6, 4)
    lazy = nn.Embedding(6, 4, sparse=True)
    lazy.load_state_dict(dense.state_dict())
    ref = torch.optim.AdamW(dense.parameters(), lr=0.1, weight_decay=0.05)
    opt = LazyAdamW([], [lazy.weight], lr=0.1, weight_decay=0.05)
    every_row = torch.tensor([[0, 1, 2, 3, 4, 5, 5, 2]])
    for step in range(3):
        for emb, o in ((dense, ref), (lazy, opt)):
            emb(every_row).pow(2).sum().backward()
            o.step()
            o.zero_grad()
    assert torch.allclose(lazy.weight, dense.weight, atol=1e-6)
    before = lazy.weight.detach().clone()
    lazy(torch.tensor([[1, 1, 4]])).sum().backward()
    opt.step()
    changed = (lazy.weight != before).any(1)
    assert changed.tolist() == [False, True, False, False, True, False]


def test_clipping_counts_sparse_gradients_like_their_dense_form():
    torch.manual_seed(0)
    emb, head = nn.Embedding(10, 3, sparse=True), nn.Linear(3, 1)
    head(emb(torch.tensor([[1, 1, 2, 5]]))).sum().backward()
    dense = [emb.weight.grad.to_dense(), head.weight.grad.clone(), head.bias.grad.clone()]
    total = torch.sqrt(sum(g.pow(2).sum() for g in dense))
    norm = clip_grad_norm_([emb.weight, head.weight, head.bias], 0.5)
    assert torch.isclose(norm, total)
    clipped = [emb.weight.grad.to_dense(), head.weight.grad, head.bias.grad]
    assert all(torch.allclose(c, d * 0.5 / (total + 1e-6)) for c, d in zip(clipped, dense))


def test_dense_clipping_is_torchs_own():
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 4)
    for m in (a, b):
        m(x).pow(2).sum().backward()
    assert torch.equal(clip_grad_norm_(a.parameters(), 0.1), nn.utils.clip_grad_norm_(b.parameters(), 0.1))
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(a.parameters(), b.parameters()))


def test_make_optimizer_routes_only_sparse_tables_to_the_lazy_update():
    cfg = TrainConfig(lr=1e-3)
    lstm = LSTMClassifier(50, 0, 2, 8, 4, 1, True, 0.1, sparse_embeddings=True)
    opt = make_optimizer(lstm, cfg)
    assert isinstance(opt, LazyAdamW) and sparse_parameters(lstm) == [lstm.embeddings.weight]
    lazy_groups = [g for g in opt.param_groups if g.get("lazy")]
    assert len(lazy_groups) == 1 and lazy_groups[0]["params"] == [lstm.embeddings.weight]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(lstm.parameters()))
    dense = make_optimizer(LSTMClassifier(50, 0, 2, 8, 4, 1, True, 0.1), cfg)
    assert type(dense) is torch.optim.AdamW


def test_lstm_with_sparse_embeddings_learns_in_the_training_loop(tiny_models, sentiment_files):
    from analysis.core.config import FinetuneConfig
    from analysis.runs.finetune import load_inputs
    from analysis.training.loop import fit

    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": "lstm", "tokenizer": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "lstm_hidden": 16, "epochs": 8,
                                        "batch_size": 8, "lr": 1e-2})
    assert cfg.model.lstm_sparse_embeddings
    inputs = load_inputs(cfg.model, cfg.data, seed=0)
    start = copy.deepcopy(inputs.model.embeddings.weight.detach())
    result = fit(inputs.model, inputs.train, inputs.eval, inputs.task, cfg.train, 0, torch.device("cpu"))
    assert result.metrics["accuracy"] >= 0.9
    moved = (inputs.model.embeddings.weight != start).any(1)
    inner = [inputs.train.row(i)[0][1:-1] for i in range(len(inputs.train))]  # [CLS] and [SEP] left out
    used = torch.from_numpy(np.concatenate(inner)).long().unique()
    assert moved[used].all() and int(moved.sum()) == len(used)  # only the rows the data uses were updated


def test_dropping_edge_tokens_is_the_model_on_the_inner_tokens():
    torch.manual_seed(0)
    keep = LSTMClassifier(100, 0, 2, 8, 6, 1, True, 0.0).eval()
    drop = copy.deepcopy(keep)
    drop.drop_edge_tokens = True
    inner, inner_mask = batch(2, lengths=(6, 1, 4))
    lengths = inner_mask.sum(1)
    ids = torch.zeros(3, inner.shape[1] + 2, dtype=torch.long)
    ids[:, 0] = 98  # [CLS]
    for row, n in enumerate(lengths.tolist()):
        ids[row, 1:n + 1] = inner[row, :n]
        ids[row, n + 1] = 99  # [SEP]
    mask = (ids != 0).long()
    assert torch.allclose(drop(ids, mask).logits, keep(inner, inner_mask).logits, atol=1e-6)
    empty = torch.tensor([[98, 99, 0], [98, 5, 99]])
    assert torch.isfinite(drop(empty, (empty != 0).long()).logits).all()  # an empty text still pools something


def test_dropping_edge_tokens_needs_a_tokenizer_that_adds_them():
    class Bare:
        all_special_ids = [0]

        def __call__(self, text):
            return {"input_ids": [7]}

    with pytest.raises(ModelError, match="lstm_special_tokens"):
        check_edge_tokens(Bare())
