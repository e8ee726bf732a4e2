"""GAE against a hand-computed example: a termination, a truncation and two env rows."""

import pytest
import torch

from learner.gae import compute_gae

G, L = 0.9, 0.5


def test_gae_matches_hand_computation() -> None:
    # Row 0: step 0 terminates; step 1 is truncated (final obs value 10); step 2 runs on.
    # Row 1: no episode end; rollout end bootstraps from next value 3. Row 0 bootstraps from 7.
    rewards = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    values = torch.tensor([[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]])
    terminals = torch.tensor([[1, 0], [0, 0], [0, 0]], dtype=torch.bool)
    truncations = torch.tensor([[0, 0], [1, 0], [0, 0]], dtype=torch.bool)
    final_values = torch.tensor([[99.0, 99.0], [10.0, 0.0], [0.0, 0.0]])
    next_values = torch.tensor([7.0, 3.0])
    adv, ret = compute_gae(rewards, values, terminals, truncations, final_values, next_values, G, L)

    # Row 0, by hand.
    a2 = 5 + G * 7 - 2.5  # bootstraps from next value
    a1 = 3 + G * 10 - 1.5  # truncation: V(final obs), recursion cut
    a0 = 1 - 0.5  # termination: no bootstrap, recursion cut
    # Row 1: an ordinary chain, never reading row 0.
    b2 = 6 + G * 3 - 3.0
    b1 = 4 + G * 3.0 - 2.0 + G * L * b2
    b0 = 2 + G * 2.0 - 1.0 + G * L * b1
    expected = torch.tensor([[a0, b0], [a1, b1], [a2, b2]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_terminal_wins_over_truncation_and_masked_steps_are_zero() -> None:
    rewards = torch.tensor([[1.0], [1.0]])
    values = torch.tensor([[0.0], [2.0]])
    both = torch.tensor([[1], [0]], dtype=torch.bool)
    final_values = torch.tensor([[50.0], [0.0]])
    adv, _ = compute_gae(rewards, values, both, both, final_values, torch.tensor([4.0]), G, L)
    assert adv[0, 0].item() == pytest.approx(1.0)  # no bootstrap at all, not even from final value
    masks = torch.tensor([[1], [0]], dtype=torch.bool)
    none = torch.zeros_like(both)
    adv, _ = compute_gae(rewards, values, none, none, final_values, torch.tensor([4.0]), G, L, masks)
    assert adv[1, 0].item() == 0.0
    assert adv[0, 0].item() == pytest.approx(1.0 + G * 2.0)  # bootstraps from V of the masked step


def test_bad_shapes_name_the_argument() -> None:
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="next_values"):
        compute_gae(x, x, x.bool(), x.bool(), x, torch.zeros(3), G, L)
