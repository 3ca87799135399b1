"""Batched Metropolis–Hastings over drum loops: many chains at once, one scorer call per step.

The paper ran one chain and scored one loop per step (≈ 120 proposals/s here). Scoring is far
cheaper per loop in batches, so every step here mutates and scores all live chains together.
The proposal is the paper's symmetric one (`loop.mutate_batch`), so accepting with
α = min(1, (f'/f)^(1/s)) leaves the chains' stationary distribution ∝ f^(1/s); s → 0 is hill
climbing. Constraints (locked tracks, four on the floor) are re-imposed on every proposal: on the
free cells the proposal stays symmetric, so the chain samples f restricted to allowed loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .library import SampleBank
from .loop import (
    DEFAULT_BPM,
    DEFAULT_DENSITY,
    STEPS,
    TRACKS,
    Constraints,
    Loop,
    LoopBatch,
    mutate_batch,
    random_batch,
)

if TYPE_CHECKING:  # the learner is downstream; the sampler only reads its preset
    from .learner import Preset

Scorer = Callable[[LoopBatch], torch.Tensor]

HILL_CLIMB_BELOW = 1e-6  # a temperature this small is treated as exactly 0 (hill climbing)
MIN_SCORE = 1e-12  # scores are clamped here before the log so f = 0 never gives -inf - -inf
MAX_ROUNDS = 4  # rounds of fresh chains `sample`/`threshold` run to find enough distinct loops


@dataclass(frozen=True)
class Candidate:
    """A loop the sampler chose, its score and the critic version that scored it."""

    loop: Loop
    score: float
    critic_version: int


@dataclass(frozen=True)
class ThresholdResult:
    """Threshold mode's answer: did the chain reach the threshold, and after how many proposals."""

    candidate: Candidate
    reached: bool
    proposals: int


@dataclass
class ChainResult:
    """Final states of a batched MH run: `batch` [C], `scores` [C], `proposals` [C] long
    (proposals made per chain), `reached` [C] bool (f ≥ stop_at; all False without stop_at);
    with `keep_visited`, every proposal scored on the way (`visited`, `visited_scores`)."""

    batch: LoopBatch
    scores: torch.Tensor
    proposals: torch.Tensor
    reached: torch.Tensor
    visited: LoopBatch | None = None
    visited_scores: torch.Tensor | None = None
    cancelled: bool = False  # `cancel()` said stop before the budget was spent


def _score(scorer: Scorer, batch: LoopBatch) -> torch.Tensor:
    scores = scorer(batch)
    if not isinstance(scores, torch.Tensor):
        scores = torch.as_tensor(scores)
    scores = scores.detach().float().cpu().reshape(-1)
    if scores.shape[0] != len(batch):
        raise ValueError(f"the scorer returned {scores.shape[0]} scores for {len(batch)} loops")
    return scores


def metropolis_hastings(scorer: Scorer, start: LoopBatch, n_samples: int,
                        generator: torch.Generator, steps: int | torch.Tensor,
                        temperature: float, constraints: Constraints | None = None,
                        bank: SampleBank | None = None,
                        stop_at: float | None = None, keep_visited: bool = False,
                        cancel: Callable[[], bool] | None = None) -> ChainResult:
    """Run one chain per loop of `start` for `steps` proposals each (the budget; an int, or a
    tensor [C] of budgets per chain).

    With `stop_at`, a chain stops as soon as its score is ≥ stop_at (possibly at its start,
    after 0 proposals). Only live chains are mutated and scored. `constraints` need `bank`.
    `keep_visited` also returns every proposal scored (fallbacks for callers that need many
    distinct loops). `cancel()` is asked before every step; True ends the run (`cancelled`).
    """
    budgets = torch.as_tensor(steps, dtype=torch.long).expand(len(start)).clone()
    if len(start) and int(budgets.min()) < 0:
        raise ValueError(f"steps must be ≥ 0, not {int(budgets.min())}")
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, not {temperature}")
    if constraints is not None and constraints.active and bank is None:
        raise ValueError("constraints need the sample bank")
    constrain = constraints is not None and constraints.active
    current = constraints.apply(start, bank) if constrain else start
    current = LoopBatch(current.grid.cpu().clone(), current.samples.cpu().clone())
    scores = _score(scorer, current)
    chains = len(current)
    proposals = torch.zeros(chains, dtype=torch.long)
    hill = temperature < HILL_CLIMB_BELOW
    visited: list[LoopBatch] = []
    visited_scores: list[torch.Tensor] = []
    cancelled = False
    for _ in range(int(budgets.max()) if chains else 0):
        live = proposals < budgets
        if stop_at is not None:
            live &= scores < stop_at
        index = live.nonzero().reshape(-1)
        if index.numel() == 0:
            break
        if cancel is not None and cancel():
            cancelled = True
            break
        proposal = mutate_batch(current[index], n_samples, generator)
        if constrain:
            proposal = constraints.apply(proposal, bank)
        new = _score(scorer, proposal)
        if keep_visited:
            visited.append(proposal)
            visited_scores.append(new)
        old = scores[index]
        u = torch.rand(index.numel(), generator=generator)
        if hill:
            accept = new >= old
        else:
            log_ratio = (new.clamp_min(MIN_SCORE).log() - old.clamp_min(MIN_SCORE).log())
            accept = torch.log(u) < log_ratio / temperature
        proposals[index] += 1
        taken = index[accept]
        current.grid[taken] = proposal.grid[accept]
        current.samples[taken] = proposal.samples[accept]
        scores[taken] = new[accept]
    reached = scores >= stop_at if stop_at is not None else torch.zeros(chains, dtype=torch.bool)
    result = ChainResult(current, scores, proposals, reached, cancelled=cancelled)
    if keep_visited:
        result.visited = LoopBatch.cat(visited) if visited else current[:0]
        result.visited_scores = torch.cat(visited_scores) if visited else scores[:0]
    return result


class Sampler:
    """Turns a scorer (the critic's P(like)) into loops to play: `sample` for ordinary play
    (draws from f^(1/s)), `threshold` for evaluation (search until f ≥ threshold)."""

    def __init__(self, bank: SampleBank, scorer: Scorer, preset: Preset,
                 generator: torch.Generator | None = None, tracks: int = TRACKS,
                 steps: int = STEPS) -> None:
        self.bank = bank
        self.shape = (tracks, steps)  # of the loops it starts chains from
        self.scorer = scorer
        self.preset = preset
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def set_scorer(self, scorer: Scorer) -> None:
        self.scorer = scorer

    @property
    def version(self) -> int:
        return int(getattr(self.scorer, "version", 0))

    def _starts(self, n: int, constraints: Constraints | None) -> LoopBatch:
        batch = random_batch(n, len(self.bank), self.generator, *self.shape,
                             density=DEFAULT_DENSITY)
        if constraints is not None and constraints.active:
            batch = constraints.apply(batch, self.bank)
        return batch

    def _run(self, n: int, steps: int | torch.Tensor, constraints: Constraints | None,
             stop_at: float | None = None, keep_visited: bool = False,
             cancel: Callable[[], bool] | None = None) -> tuple[ChainResult, int]:
        scorer = self.scorer  # one scorer for the whole run, even if set_scorer is called
        version = int(getattr(scorer, "version", 0))
        result = metropolis_hastings(scorer, self._starts(n, constraints), len(self.bank),
                                     self.generator, steps, self.preset.temperature,
                                     constraints, self.bank, stop_at, keep_visited, cancel)
        return result, version

    def sample(self, n: int, constraints: Constraints | None = None,
               exclude: set[str] | None = None, bpm: float = DEFAULT_BPM,
               cancel: Callable[[], bool] | None = None,
               chains: int | None = None) -> list[Candidate]:
        """The `n` best distinct final states of max(n, chains) chains, none of whose loop ids
        (at `bpm`) is in `exclude`, best first. When too few final states qualify (chains that
        met on one mode, or modes already handed out), the best other loops the chains visited
        fill in, then fresh chains; fewer than `n` come back only when the allowed space is
        nearly exhausted. `cancel()` True (asked every MH step) abandons the run: [].
        `chains` overrides the preset's count (still at least `n`)."""
        if n <= 0:
            return []
        exclude = exclude or set()
        chosen: list[Candidate] = []
        seen: set[str] = set()

        def take(batch: LoopBatch, scores: torch.Tensor, version: int) -> None:
            order = torch.argsort(scores, descending=True, stable=True)
            for start in range(0, len(order), 4 * n):  # ids only for as many as needed
                part = order[start:start + 4 * n]
                loops = batch[part].to_loops(self.bank, bpm)
                for loop, score in zip(loops, scores[part].tolist(), strict=True):
                    loop_id = loop.loop_id
                    if loop_id not in seen and loop_id not in exclude:
                        seen.add(loop_id)
                        chosen.append(Candidate(loop, float(score), version))
                        if len(chosen) >= n:
                            return

        for _ in range(MAX_ROUNDS):
            result, version = self._run(max(n, chains or self.preset.chains),
                                        self.preset.mh_steps, constraints,
                                        keep_visited=True, cancel=cancel)
            if result.cancelled:
                return []
            take(result.batch, result.scores, version)
            if len(chosen) < n:
                take(result.visited, result.visited_scores, version)
            if len(chosen) >= n:
                break
        return chosen[:n]

    def threshold(self, n: int, threshold: float | None = None, budget: int | None = None,
                  constraints: Constraints | None = None, exclude: set[str] | None = None,
                  bpm: float = DEFAULT_BPM) -> list[ThresholdResult]:
        """`n` distinct loops, each from a chain that ran until f ≥ `threshold` or `budget`
        proposals were spent; `reached` says which. A chain that ends on a loop already taken
        (or excluded) is restarted from a fresh start with the budget it has left."""
        if n <= 0:
            return []
        threshold = float(self.preset.threshold if threshold is None else threshold)
        budget = int(self.preset.threshold_budget if budget is None else budget)
        exclude = exclude or set()
        results: list[ThresholdResult] = []
        seen: set[str] = set()
        spent = [0] * n  # proposals already spent on each wanted loop by its earlier chains
        wanted = list(range(n))
        for round_ in range(MAX_ROUNDS):
            last = round_ == MAX_ROUNDS - 1
            left = torch.tensor([budget - spent[slot] for slot in wanted], dtype=torch.long)
            result, version = self._run(len(wanted), left, constraints, stop_at=threshold)
            loops = result.batch.to_loops(self.bank, bpm)
            retry = []
            for slot, loop, score, used, reached in zip(
                    wanted, loops, result.scores.tolist(), result.proposals.tolist(),
                    result.reached.tolist(), strict=True):
                spent[slot] += used
                if loop.loop_id in seen or loop.loop_id in exclude:
                    if not last:
                        retry.append(slot)
                    continue
                seen.add(loop.loop_id)
                results.append(ThresholdResult(Candidate(loop, float(score), version),
                                               bool(reached), spent[slot]))
            wanted = retry
            if not wanted:
                break
        return results
