"""Dense similarity in a conversation's own space: the mean and the top directions removed."""

from __future__ import annotations

import numpy as np
import pytest

from multiturn.memory import dense


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _shared(size: int = 200, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Rows that each hold a topic of their own and, in varying amounts, one direction all share
    (the last axis; topics are random in the others). Row 7 holds little of the shared one."""
    common = np.zeros(width, dtype=np.float32)
    common[-1] = 1.0
    amounts = np.random.default_rng(0).uniform(1.0, 3.0, size)
    amounts[7] = 0.3
    topics = np.random.default_rng(1).standard_normal((size, width)).astype(np.float32)
    topics[:, -1] = 0.0
    return _unit(amounts[:, None] * common + _unit(topics)), common


def test_the_shared_direction_no_longer_outweighs_the_topic() -> None:
    matrix, common = _shared()
    query = _unit(2.0 * common + (matrix[7] - matrix[7, -1] * common))
    raw = dense.similarities(dense.fit(matrix, None), matrix, query)
    assert np.allclose(raw, matrix @ query)
    assert int(np.argmax(raw)) != 7  # a row that holds more of the shared direction wins
    for components in (1, 3):  # the mean alone leaves the shared direction: its amount varies
        own = dense.similarities(dense.fit(matrix, components), matrix, query)
        assert int(np.argmax(own)) == 7
        assert own.dtype == np.float32 and own.shape == (200,)


def test_scores_are_cosines_in_the_space_the_exact_eigenvectors_give() -> None:
    rng = np.random.default_rng(1)
    matrix = _unit(rng.standard_normal((300, 32)) * np.linspace(3.0, 0.5, 32))
    query = _unit(rng.standard_normal(32))
    centred = matrix - matrix.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred)
    top = vectors[:, ::-1][:, :3].T
    rows = centred - (centred @ top.T) @ top
    q = (query - matrix.mean(axis=0)) - ((query - matrix.mean(axis=0)) @ top.T) @ top
    expected = rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
    got = dense.similarities(dense.fit(matrix, 3), matrix, query)
    assert np.allclose(got, expected, atol=1e-3)


def test_short_histories_and_empty_residues_keep_defined_scores() -> None:
    matrix, _ = _shared(size=dense.MIN_ROWS - 1, width=32)
    assert dense.fit(matrix, 3) == dense.RAW
    same = np.tile(_unit(np.ones(8)), (dense.MIN_ROWS, 1))  # every row equal: nothing left of any
    space = dense.fit(same, 3)
    scores = dense.similarities(space, same, _unit(np.arange(8.0)))
    assert np.all(scores == 0.0)


@pytest.mark.parametrize("components", [0, 3])
def test_the_fit_is_deterministic(components: int) -> None:
    matrix, _ = _shared()
    first, second = dense.fit(matrix, components), dense.fit(matrix, components)
    assert first.norms is not None and second.norms is not None
    assert np.array_equal(first.norms, second.norms)


def test_a_long_history_estimates_its_directions_from_an_even_sample() -> None:
    rows = 3 * dense.SAMPLE_ROWS + 1
    rng = np.random.default_rng(2)
    matrix = _unit(rng.standard_normal((rows, 32)) * np.array([4.0, 3.0, 2.5] + [0.5] * 29))
    space = dense.fit(matrix, 3)
    assert space.components is not None and space.norms is not None and space.norms.shape == (rows,)
    found = space.components.T @ space.components
    expected = np.zeros((32, 32))
    expected[:3, :3] = np.eye(3)  # the three widest axes
    assert np.linalg.norm(found - expected) < 0.2
