"""Proto-RL core: Sinkhorn balancing, unit prototypes, EMA targets, latent queue, kNN reward,
and a pre-trained encoder inside the IBRL pixel agent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from learner.ibrl import IBRLAgent
from learner.obs import ObsSpec
from learner.proto import LatentQueue, ProtoLearner, knn_reward, sinkhorn_knopp
from learner.proto.artifact import EncoderInitError, save_pretrained
from tandem.settings.learner import LearnerSettings
from tests.learner.helpers import loaded_by_importing, random_batch, tiny_settings
from tests.learner.test_learner_core_purity import FORBIDDEN

SPEC = ObsSpec(state_dim=4, action_dim=2, cameras=("front",), image_shape=(32, 32, 3),
               raw_state_dim=4)  # fmt: skip
PIXEL = {"obs": "pixels", "vit_dim": 8, "vit_heads": 2, "spatial_emb": 16, "actor_compress": 8,
         "proto_prototypes": 8, "proto_latent_dim": 8, "proto_pred_hidden": 16,
         "proto_queue_batches": 3, "batch_size": 8, "method": "rl"}  # fmt: skip


def pixel_settings(**overrides: object) -> LearnerSettings:
    return tiny_settings(**{**PIXEL, **overrides})


def trained_proto(steps: int = 2, **overrides: object) -> ProtoLearner:
    torch.manual_seed(0)
    proto = ProtoLearner(pixel_settings(**overrides), SPEC)
    for i in range(steps):
        batch = random_batch(SPEC, 8, seed=i)
        proto.update(batch["obs"], batch["next_obs"])
    return proto


# ------------------------------------------------------------------------------ Sinkhorn
@pytest.mark.parametrize("collapsed", [False, True])
def test_sinkhorn_rows_sum_to_one_and_prototypes_share_the_batch_equally(collapsed: bool) -> None:
    g = torch.Generator().manual_seed(0)
    b, k = 256, 32
    scores = torch.randn(b, k, generator=g).clamp(-1, 1)
    if collapsed:  # every sample prefers prototype 0
        scores = torch.full((b, k), -0.5) + 0.01 * torch.randn(b, k, generator=g)
        scores[:, 0] = 1.0
    q = sinkhorn_knopp(scores, temperature=0.1, iters=3)
    assert torch.allclose(q.sum(dim=1), torch.ones(b), atol=1e-5)
    load = q.sum(dim=0) * k / b  # 1 = an equal share
    assert load.min() > 0.99 and load.max() < 1.01
    plain = torch.softmax(scores / 0.1, dim=1).sum(dim=0) * k / b
    assert plain.max() > (20 if collapsed else 1.05)  # what Sinkhorn is there to prevent


def test_sinkhorn_small_exact_case_gives_equal_loads() -> None:
    scores = torch.zeros(8, 4)
    scores[:, 0] = 1.0  # all 8 samples prefer prototype 0
    q = sinkhorn_knopp(scores, temperature=0.1, iters=50)
    assert torch.allclose(q.sum(dim=0), torch.full((4,), 2.0), atol=1e-4)
    assert torch.allclose(q.sum(dim=1), torch.ones(8), atol=1e-6)


def test_sinkhorn_keeps_confident_balanced_assignments() -> None:
    scores = torch.eye(4).repeat_interleave(2, dim=0)  # 4 clusters x 2 samples
    q = sinkhorn_knopp(scores, temperature=0.1, iters=3)
    assert torch.equal(q.argmax(dim=1), torch.arange(4).repeat_interleave(2))
    assert q.max(dim=1).values.min() > 0.99


def test_sinkhorn_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        sinkhorn_knopp(torch.zeros(3), 0.1, 3)


# ------------------------------------------------------------------- prototypes and EMA
def test_prototypes_stay_unit_norm_after_updates() -> None:
    torch.manual_seed(0)
    proto = ProtoLearner(pixel_settings(proto_lr=0.05), SPEC)
    before = proto.model.prototypes.detach().clone()
    for i in range(3):
        batch = random_batch(SPEC, 8, seed=i)
        metrics = proto.update(batch["obs"], batch["next_obs"])
        norms = proto.model.prototypes.detach().norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert math.isfinite(metrics["proto/loss"])
    assert not torch.allclose(proto.model.prototypes.detach(), before)  # they did move


def test_ema_target_moves_by_tau_towards_the_online_networks() -> None:
    tau = 0.25
    proto = trained_proto(steps=0, proto_tau=tau)
    model = proto.model
    with torch.no_grad():  # make online and target differ
        for p in model.encoder.parameters():
            p.add_(1.0)
    old = [p.clone() for p in model.target_encoder.parameters()]
    online = list(model.encoder.parameters())
    model.update_targets(tau)
    for new, o, src in zip(model.target_encoder.parameters(), old, online, strict=True):
        assert torch.allclose(new - o, tau * (src - o), atol=1e-6)
    # one learner update: the target moves by tau towards the online net *after* its step
    old_proj = [p.clone() for p in model.target_projector.parameters()]
    batch = random_batch(SPEC, 8, seed=5)
    proto.update(batch["obs"], batch["next_obs"])
    for new, o, src in zip(model.target_projector.parameters(), old_proj,
                           model.projector.parameters(), strict=True):  # fmt: skip
        assert torch.allclose(new, (1 - tau) * o + tau * src.detach(), atol=1e-6)


# ----------------------------------------------------------------- queue and kNN reward
def test_knn_reward_is_exact_on_a_hand_made_queue() -> None:
    bank = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, -4.0]])
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    for k, want in {1: [0.0, 0.0], 2: [1.0, 1.0], 3: [2.0, 2.0], 4: [3.0, math.sqrt(5)]}.items():
        assert torch.allclose(knn_reward(z, bank, k), torch.tensor(want)), k
    with pytest.raises(ValueError, match="k = 6"):
        knn_reward(z, bank, 6)


def test_knn_reward_grows_with_the_distance_from_the_visited_latents() -> None:
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([1.0, 0.0, 0.0])
    cloud = torch.nn.functional.normalize(centre + 0.05 * torch.randn(512, 3, generator=g), dim=1)
    angles = torch.tensor([0.3, 0.4, 0.8, 1.2, math.pi / 2, 2.5, math.pi])  # leaving the cloud
    z = torch.stack([angles.cos(), angles.sin(), torch.zeros_like(angles)], dim=1)
    reward = knn_reward(z, cloud, 3)
    assert torch.all(reward[1:] > reward[:-1]), reward
    assert reward.max() <= 2.0  # unit latents
    point = centre.expand(4, 3)  # every neighbour at the centre: r_int = the chord length
    assert torch.allclose(knn_reward(z, point, 3), 2 * torch.sin(angles / 2), atol=1e-5)


def test_queue_holds_m_times_t_latents_and_samples_by_assignment() -> None:
    m, t, d = 4, 3, 5
    queue = LatentQueue(m, t, d, "cpu")
    assert queue.capacity == m * t
    for i in range(t + 2):
        z = torch.randn(6, d) + 10 * i
        scores = torch.full((6, m), -1.0)
        scores[torch.arange(m), torch.arange(m)] = 50.0  # prototype j wants sample j
        idx = queue.push(z, scores)
        assert torch.equal(idx, torch.arange(m))
        assert queue.size == min((i + 1) * m, m * t)
    assert queue.stored().shape == (m * t, d)
    assert queue.ptr == ((t + 2) * m) % (m * t)
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        queue.push(torch.randn(6, d), torch.zeros(6, 3))


def test_intrinsic_reward_queues_m_latents_per_batch() -> None:
    proto = trained_proto(steps=1)
    for i in range(5):
        reward = proto.intrinsic_reward(random_batch(SPEC, 8, seed=10 + i)["next_obs"])
        assert reward.shape == (8,) and torch.all(reward >= 0)
        assert proto.queue.size == min((i + 1) * 8, 8 * 3)


# -------------------------------------------------------- pre-trained encoder into IBRL
def test_pretrained_encoder_loads_into_the_pixel_agent_with_the_same_features(
    tmp_path: Path,
) -> None:
    proto = trained_proto(steps=3)
    path = save_pretrained(tmp_path / "encoder.pt", proto)
    obs = random_batch(SPEC, 4, seed=99)["obs"]
    want = proto.model.encoder({"front": obs["front"]}, 0)
    agent = IBRLAgent(pixel_settings(encoder_init=str(path)), SPEC, None)
    assert agent.encoder is not None
    assert torch.allclose(agent.encoder({"front": obs["front"]}, 0), want, atol=1e-6)
    fresh = IBRLAgent(pixel_settings(), SPEC, None)
    assert fresh.encoder is not None
    assert not torch.allclose(fresh.encoder({"front": obs["front"]}, 0), want, atol=1e-3)


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_frozen_encoder_stays_put_and_finetuned_one_learns(tmp_path: Path, mode: str) -> None:
    path = save_pretrained(tmp_path / "encoder.pt", trained_proto())
    agent = IBRLAgent(pixel_settings(encoder_init=str(path), encoder_init_mode=mode), SPEC, None)
    assert agent.encoder is not None
    before = [p.detach().clone() for p in agent.encoder.parameters()]
    for i in range(2):
        agent.update([random_batch(SPEC, 8, seed=i)])
    after = list(agent.encoder.parameters())
    moved = any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert moved == (mode == "finetune")


def test_encoder_init_that_does_not_fit_is_refused_with_the_difference(tmp_path: Path) -> None:
    path = save_pretrained(tmp_path / "encoder.pt", trained_proto(steps=0))
    with pytest.raises(EncoderInitError, match="vit_dim = 8, this agent has 16"):
        IBRLAgent(pixel_settings(encoder_init=str(path), vit_dim=16), SPEC, None)
    other = ObsSpec(state_dim=4, action_dim=2, cameras=("wrist",), image_shape=(32, 32, 3),
                    raw_state_dim=4)  # fmt: skip
    with pytest.raises(EncoderInitError, match="cameras"):
        IBRLAgent(pixel_settings(encoder_init=str(path)), other, None)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderInitError, match="unreadable"):
        IBRLAgent(pixel_settings(encoder_init=str(tmp_path / "junk.pt")), SPEC, None)


def test_intrinsic_bonus_adds_alpha_r_int_to_the_td_target(tmp_path: Path) -> None:
    path = save_pretrained(tmp_path / "encoder.pt", trained_proto())
    batch = random_batch(SPEC, 8, seed=3)
    targets = {}
    for alpha in (0.0, 5.0):
        torch.manual_seed(1)
        cfg = pixel_settings(encoder_init=str(path), intrinsic_bonus=alpha)
        agent = IBRLAgent(cfg, SPEC, None)
        torch.manual_seed(2)  # the same target noise and shifts in both runs
        metrics = agent.update_critic(batch)
        targets[alpha] = metrics["critic/target_mean"]
        assert ("proto/intrinsic_reward" in metrics) == (alpha > 0)
    r_int = metrics["proto/intrinsic_reward"]
    assert r_int > 0
    assert targets[5.0] - targets[0.0] == pytest.approx(5.0 * r_int, rel=1e-3)


def test_settings_refuse_a_bonus_without_a_pretrained_representation() -> None:
    with pytest.raises(ValidationError, match="intrinsic_bonus > 0 needs encoder_init"):
        pixel_settings(intrinsic_bonus=0.1)
    with pytest.raises(ValidationError, match="proto_knn_k"):
        pixel_settings(proto_knn_k=9)


def test_proto_core_imports_no_io_library() -> None:
    core = ["learner.proto.model", "learner.proto.queue", "learner.proto.sinkhorn",
            "learner.proto.artifact", "learner.proto.coverage"]  # fmt: skip
    assert loaded_by_importing(core, FORBIDDEN) == []
