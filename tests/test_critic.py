"""The critic: the folded inference copy equals the trained module, checkpoints keep every
setting, and the step envelope says where the hits fall, whatever the gain."""

import math

import pytest
import torch

from deepdrummer_live.critic import (
    Critic,
    CriticConfig,
    FoldedCritic,
    LoopFeatures,
    StepEnvelope,
    load_critic,
    save_critic,
)
from deepdrummer_live.loop import LoopBatch, random_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def features(kit_bank):
    return LoopFeatures(kit_bank, CriticConfig(step_bands=8), "cpu")


def trained(config: CriticConfig, x: torch.Tensor) -> Critic:
    """A critic whose BatchNorm statistics and weights have moved away from their start."""
    torch.manual_seed(0)
    critic = Critic(config)
    critic.set_input_stats(x)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    labels = torch.arange(len(x)) % 2
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(critic(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return critic.eval()


@pytest.mark.parametrize("step_bands", [0, 8])
def test_folded_copy_and_checkpoint_give_the_same_scores(features, kit_bank, step_bands,
                                                         tmp_path):
    x = features(random_batch(24, len(kit_bank), torch.Generator().manual_seed(1)))
    critic = trained(CriticConfig(step_bands=step_bands), x)
    with torch.no_grad():
        expected = critic.probability(x)
        assert torch.allclose(FoldedCritic(critic)(x), expected, atol=1e-5)
        loaded, _ = load_critic(save_critic(tmp_path / "c.pt", critic), "cpu")
        assert loaded.config.step_bands == step_bands
        assert torch.allclose(loaded.eval().probability(x), expected, atol=1e-6)


def test_the_envelope_marks_the_steps_that_play_in_the_band_that_sounds(features, kit_bank):
    kick = next(i for i, name in enumerate(kit_bank.names) if "kick" in name)
    grid = torch.zeros(1, 1, 16, dtype=torch.bool)
    grid[0, 0, [0, 4, 8, 12]] = True
    x = features(LoopBatch(grid, torch.tensor([[kick]])))
    rise, level = StepEnvelope(features.config)(x).view(2, 8, 16)  # [measure, band, step]
    beats, off = [0, 4, 8, 12], [1, 2, 3, 5, 6, 7]
    assert rise[0, beats].min() > 10 * rise[0, off].max()
    assert rise[0].sum() > rise[-1].sum()  # a kick is heard low, not in the top band
    assert level[0, beats].min() > level[0, off].max()  # loudest where it is struck
    assert torch.all(level <= 0)


def test_the_envelope_ignores_gain(features, kit_bank):
    x = features(random_batch(4, len(kit_bank), torch.Generator().manual_seed(2)))
    louder = x.clone()
    louder[:, 0, 0, :] += 6.0 * math.sqrt(features.config.n_mels)  # +6 dB, as augmentation does
    envelope = StepEnvelope(features.config)
    assert torch.allclose(envelope(louder), envelope(x), atol=1e-3)
