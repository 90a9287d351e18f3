import csv
import itertools

import pytest

from nasloop.errors import ArchError
from nasloop.space import (NUM_CELLS, OPS, Arch, all_archs, arch_from_index, arch_index)

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_parse_print_round_trip_all_cells():
    cells = list(all_archs())
    assert len(cells) == NUM_CELLS == 15625 and len(set(cells)) == NUM_CELLS
    for a in cells:
        assert Arch.parse(str(a)) == a
        assert Arch.from_tuple(a.to_tuple()) == a
        assert arch_from_index(arch_index(a)) == a


def test_tuple_order_matches_brpnas_convention():
    a = Arch.parse(BEST)
    assert a.to_tuple() == (3, 3, 4, 1, 3, 1)
    assert Arch.coerce("(3, 3, 4, 1, 3, 1)") == a == Arch.coerce([3, 3, 4, 1, 3, 1])
    assert OPS.index("none") == 0 and OPS.index("avg_pool_3x3") == 4


def test_neighbours_differ_on_exactly_one_edge():
    a = Arch.parse(BEST)
    n = a.neighbours()
    assert len(n) == 24 == len(set(n)) and a not in n
    assert all(sum(x != y for x, y in zip(a.ops, b.ops)) == 1 for b in n)


def test_connectivity_matches_benchmark_tables(gpu_table):
    connected = {a for a in all_archs() if a.is_connected()}
    assert len(connected) == 15284  # the 341 cells the BRP-NAS tables leave out
    assert connected == set(gpu_table.cells())
    assert not Arch((0,) * 6).is_connected()
    assert Arch((0, 0, 0, 1, 0, 0)).is_connected()  # input -> output skip


def test_canonical_keys_count_6466_and_match_nasbench(data_dir):
    keys = {a.canonical_key() for a in all_archs()}
    assert len(keys) == 6466
    # the partition equals NAS-Bench-201's own UniqueString column
    rows = list(csv.DictReader(open(data_dir / "nats" / "nats_bench.csv")))
    pairs = {(Arch.parse(r["ArchitectureString"]).canonical_key(), r["UniqueString"]) for r in rows}
    assert len(pairs) == 6466


def test_canonical_key_ignores_summation_order_and_dead_paths():
    # the two inputs of node 2 swapped between conv and pool: same network
    a = Arch.from_tuple((3, 3, 4, 0, 0, 1))
    b = Arch.from_tuple((3, 4, 3, 0, 0, 1))
    assert a != b and a.canonical_key() != b.canonical_key()  # different wiring
    c = Arch.from_tuple((3, 2, 2, 1, 0, 0))  # node 3 = skip(x): the rest is dead
    d = Arch.from_tuple((4, 3, 1, 1, 0, 0))
    assert c.canonical_key() == d.canonical_key()


@pytest.mark.parametrize("bad, part", [
    ("|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|", "nor_conv_9x9"),
    ("|none~0|+|none~0|none~1|", "node groups"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "expected 2"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "op~0"),
    ("(1,2,3,4,5,0)", "op index 5"),
    ("(1,2,3)", "6 edges"),
])
def test_malformed_input_names_the_bad_part(bad, part):
    with pytest.raises(ArchError, match=part.replace("(", r"\(")):
        Arch.coerce(bad)


def test_out_of_range_index():
    with pytest.raises(ArchError, match="out of range"):
        arch_from_index(15625)
    with pytest.raises(ArchError):
        Arch((0, 1, 2, 3, 4, -1))


def test_arch_is_immutable_and_hashable():
    a = Arch.parse(BEST)
    with pytest.raises(Exception):
        a.ops = (0,) * 6  # type: ignore[misc]
    assert {a: 1}[Arch.parse(BEST)] == 1
    assert list(itertools.islice(all_archs(), 1))[0] == Arch((0,) * 6)
