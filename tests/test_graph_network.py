import numpy as np
import pytest
import torch

from nasloop.graph import (DEAD_COLUMN, FEATURES, GLOBAL_NODE, INPUT_NODE, NODE_TYPES, OUTPUT_NODE,
                           encode, encode_batch)
from nasloop.network import CellNetwork, measure_cost, network_cost
from nasloop.space import Arch, all_archs


def test_encoding_shapes_and_global_node():
    a = Arch.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    adj, feat = encode(a)
    assert adj.shape == (9, 9) and feat.shape == (9, len(FEATURES))
    assert feat[:, DEAD_COLUMN].sum() == 0  # pruned: no dead node is kept
    live = feat.sum(1) > 0
    # global node linked both ways to every live node
    assert all(adj[GLOBAL_NODE, v] == adj[v, GLOBAL_NODE] == 1 for v in range(8) if live[v])
    # skip 0->3 becomes a direct input->output edge; skip nodes themselves are removed
    assert adj[INPUT_NODE, OUTPUT_NODE] == 1
    assert not live[4] and not live[6]
    # conv on edge 0->1 (node 1) feeds pool 1->2 (node 3) and conv 1->3 (node 5)
    assert adj[1, 3] == adj[1, 5] == 1
    assert feat[3, NODE_TYPES.index("avg_pool_3x3")] == 1


def test_none_removed_and_dangling_pruned():
    # node 1 gets conv from input, but nothing leaves node 1 -> pruned; 0->3 conv1x1 alive
    a = Arch.from_tuple((3, 0, 0, 2, 0, 0))
    adj, feat = encode(a)
    assert feat[1].sum() == 0 and adj[1].sum() == 0 and adj[:, 1].sum() == 0
    assert feat[4, NODE_TYPES.index("nor_conv_1x1")] == 1
    assert adj[INPUT_NODE, 4] == adj[4, OUTPUT_NODE] == 1
    unpruned_adj, unpruned_feat = encode(a, prune=False)
    # executed even though dead: kept, with its op and the dead flag
    assert unpruned_feat[1, NODE_TYPES.index("nor_conv_3x3")] == 1
    assert unpruned_feat[1, DEAD_COLUMN] == 1 and unpruned_feat[4, DEAD_COLUMN] == 0
    assert unpruned_adj[INPUT_NODE, 1] == 1 and unpruned_adj[1, GLOBAL_NODE] == 1


def test_disconnected_cell_unpruned_keeps_its_executed_ops():
    # no input-output path, but the network still runs the conv on 0->1 and the pool on 1->2
    adj, feat = encode(Arch.from_tuple((3, 0, 4, 0, 0, 0)), prune=False)
    assert feat[1, DEAD_COLUMN] == feat[3, DEAD_COLUMN] == 1
    assert feat[OUTPUT_NODE, NODE_TYPES.index("output")] == 1 and adj[1, 3] == 1


def test_disconnected_cell_keeps_only_global():
    adj, feat = encode(Arch((0,) * 6))
    assert adj.sum() == 0 and feat.sum() == 1 and feat[GLOBAL_NODE].sum() == 1


def test_batch_matches_single():
    cells = list(all_archs())[::997]
    adj, feat = encode_batch(cells)
    for i, a in enumerate(cells):
        np.testing.assert_array_equal(adj[i], encode(a)[0])


@pytest.mark.parametrize("ops", [(3,) * 6, (0,) * 6, (1, 2, 3, 4, 1, 2), (4, 4, 4, 2, 2, 2),
                                 (2, 0, 3, 1, 4, 0), (3, 3, 4, 1, 3, 1)])
def test_flops_and_params_match_the_module(ops):
    a = Arch(ops)
    assert network_cost(a) == measure_cost(CellNetwork(a))


def test_known_extremes_of_the_space():
    # NAS-Bench-201 reports 220.11 MFLOPs / 1.53 M params for the all-3x3 cell
    c = network_cost(Arch((3,) * 6))
    assert round(c.flops / 1e6, 2) == 220.12 and round(c.params / 1e6, 2) == 1.53
    model = CellNetwork(Arch((3,) * 6)).eval()
    import torch
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_both_network_forms_match_their_cost_formula_and_isomorphs_share_the_deployable_one():
    from nasloop.network import FORMS
    from nasloop.space import all_archs

    for a in list(all_archs())[::1301]:
        for form in FORMS:
            assert network_cost(a, form=form) == measure_cost(CellNetwork(a, form=form))
    a = Arch.parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    b = Arch.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    assert network_cost(a) == network_cost(b)  # the dead conv is not built
    assert network_cost(a, form="reference").flops < network_cost(b, form="reference").flops
    dead = Arch.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|")
    assert not dead.is_connected()
    out = CellNetwork(dead).eval()(torch.zeros(1, 3, 32, 32))  # no path: a zero cell, runs
    assert out.shape == (1, 10)


def test_a_closed_dead_gate_is_the_pruned_graph_and_an_open_one_the_full_graph():
    """``dead_gate``: with every gate shut, the same weights predict on the unpruned graph
    what they predict on the pruned one (dead nodes send nothing), except in cells with no
    input-output path (pruned: the global node alone; unpruned: input and output stay);
    open, the full graph."""
    from nasloop.predictors.gcn import GCNNet, normalise_adjacency
    from nasloop.graph import encode_batch

    rng = np.random.default_rng(0)
    cells = [Arch.from_tuple(tuple(int(o) for o in rng.integers(0, 5, 6))) for _ in range(200)]
    cells += [Arch((3, 0, 0, 2, 0, 0)), Arch((1, 1, 4, 0, 0, 3))]  # dead op nodes both
    inputs = {}
    for prune in (True, False):
        adj, feat = encode_batch(cells, prune=prune)
        inputs[prune] = (torch.from_numpy(normalise_adjacency(adj, "directed")),
                         torch.from_numpy(np.ascontiguousarray(feat)))
    dead = inputs[False][1][:, :, DEAD_COLUMN].sum(1) > 0
    assert dead.sum() > 20  # the check below covers cells with dead op nodes
    torch.manual_seed(0)
    gated, plain = GCNNet(len(FEATURES), 32, 4, 0.0, dead_gate=True), GCNNet(len(FEATURES), 32, 4, 0.0)
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if k != "gate"})
    gated.eval(), plain.eval()
    with torch.no_grad():
        gated.gate.fill_(-1e4)  # sigmoid: exactly 0
        path = inputs[True][1][:, INPUT_NODE].sum(1) > 0
        assert (~path).sum() > 0
        torch.testing.assert_close(gated(*inputs[False])[path], plain(*inputs[True])[path])
        gated.gate.fill_(1e4)  # exactly 1
        torch.testing.assert_close(gated(*inputs[False]), plain(*inputs[False]))
        gated.gate.fill_(0.0)  # half open: differs exactly where a cell has dead nodes
        diff = (gated(*inputs[False]) - plain(*inputs[False])).abs() > 1e-6
    assert torch.equal(diff, dead)


def test_dead_gate_needs_the_unpruned_graph():
    from nasloop.errors import ConfigError
    from nasloop.predictors import create_predictor

    with pytest.raises(ConfigError, match="dead_gate must be false unless prune_dead is false"):
        create_predictor("gcn_plus", dead_gate=True)._validate_params()
