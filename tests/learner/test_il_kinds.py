"""IL policy kinds (``learner.il``): each learns, the multimodal ones keep the modes, the
bundle carries every kind, and IBRL uses any kind as its proposal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learner.acting import load_policy
from learner.bundle import make_bundle
from learner.il import KINDS, ILPolicy, build_il, il_update, make_il
from learner.il.bins import from_bins, to_bins
from learner.networks import il_proposal, propose
from learner.obs import ObsSpec
from tests.learner.helpers import tiny_agent, tiny_settings

SPEC = ObsSpec(state_dim=4, action_dim=2, raw_state_dim=4)
SMALL = {"hidden": 64, "layers": 2, "dropout": 0.0}


def policy_of(kind: str, spec: ObsSpec = SPEC, **extra: object) -> ILPolicy:
    torch.manual_seed(0)
    return KINDS[kind](spec, **SMALL, **extra)  # type: ignore[arg-type]


def fit(policy: ILPolicy, states: torch.Tensor, actions: torch.Tensor, steps: int) -> list[float]:
    """``steps`` updates on random minibatches of 128; the loss of every step."""
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(states), (128,), generator=g)
        losses.append(il_update(policy, opt, {"state": states[idx]}, actions[idx], 10.0)["bc/loss"])
    policy.eval()
    return losses


def bimodal(n: int = 2048, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """States carry no information on the mode: a0 = +-0.6 (fair coin), a1 = 0.2 a0."""
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(n, 4, generator=g)
    sign = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    a0 = 0.6 * sign + 0.02 * torch.randn(n, generator=g)
    return states, torch.stack([a0, 0.2 * a0], dim=-1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_lowers_its_loss_on_toy_data(kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    states = torch.randn(1024, 4, generator=g)
    actions = torch.tanh(states[:, :2] @ torch.tensor([[0.8, -0.3], [0.4, 0.9]]))
    policy = policy_of(kind)
    losses = fit(policy, states, actions, 300)
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < first - 0.5 * abs(first) or last < first - 1.0, (kind, first, last)
    with torch.no_grad():
        out = policy({"state": states[:64]})
    assert out.shape == (64, 2) and bool((out.abs() < 1).all())
    # the deterministic action is the same on every call (IBRL's TD target relies on it)
    with torch.no_grad():
        assert torch.equal(out, policy({"state": states[:64]}))


def test_gmm_recovers_both_modes_where_mse_averages_them() -> None:
    states, actions = bimodal()
    gmm, mse = policy_of("gmm", modes=5), policy_of("mse")
    fit(gmm, states, actions, 600)
    fit(mse, states, actions, 600)
    probe = {"state": torch.randn(8, 4, generator=torch.Generator().manual_seed(5))}
    with torch.no_grad():
        samples = gmm.sample(probe, 500)[..., 0]  # [500, 8]
        mode, mean = gmm(probe)[:, 0], mse(probe)[:, 0]
    upper = (samples > 0).float().mean(0)
    assert bool(((upper > 0.3) & (upper < 0.7)).all()), upper  # both modes, about half each
    assert abs(float(samples[samples > 0].median()) - 0.6) < 0.1
    assert abs(float(samples[samples < 0].median()) + 0.6) < 0.1
    assert bool(((mode.abs() - 0.6).abs() < 0.1).all()), mode  # one of the modes, not between
    assert bool((mean.abs() < 0.25).all()), mean  # MSE: the average of the two ways


@pytest.mark.parametrize("predict", ["eps", "x0"])
def test_diffusion_samples_match_a_known_distribution(predict: str) -> None:
    """a0 = +-0.6 (fair coin, sd 0.02), a1 = 0.2 a0: the DDIM samples put half their mass at
    each mode, keep the correlation, and the deterministic action sits on a mode, whether the
    network predicts the noise or the clean action."""
    states, actions = bimodal()
    policy = policy_of("diffusion", train_steps=50, ddim_steps=25, candidates=4, predict=predict)
    fit(policy, states, actions, 1500)
    probe = {"state": torch.randn(4, 4, generator=torch.Generator().manual_seed(5))}
    with torch.no_grad():
        samples = policy.sample(probe, 400, generator=torch.Generator().manual_seed(0))
        det = policy(probe)
    a0, a1 = samples[..., 0].flatten(), samples[..., 1].flatten()
    assert 0.35 < float((a0 > 0).float().mean()) < 0.65
    assert abs(float(a0.abs().median()) - 0.6) < 0.08
    assert float((a0.abs() < 0.3).float().mean()) < 0.1  # little mass between the modes
    assert float((a1 - 0.2 * a0).abs().median()) < 0.05
    assert bool(((det[:, 0].abs() - 0.6).abs() < 0.12).all()), det


def test_diffusion_observation_noise_is_for_training_only() -> None:
    """``obs_noise`` (``learner.il_diffusion_obs_noise``) perturbs the features the denoiser
    is trained on, never the action it acts with, and travels in the arch (bundles)."""
    states, actions = bimodal(256)
    noisy, plain = policy_of("diffusion", obs_noise=0.5), policy_of("diffusion")
    batch = {"state": states[:64]}
    torch.manual_seed(3)
    loss_noisy = noisy.loss(batch, actions[:64])[0]
    torch.manual_seed(3)
    loss_plain = plain.loss(batch, actions[:64])[0]
    assert not torch.allclose(loss_noisy, loss_plain)
    noisy.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(noisy(batch), plain(batch))  # same weights, same action
    assert build_il(SPEC, noisy.arch).obs_noise == 0.5  # type: ignore[attr-defined]
    made = make_il(tiny_settings(il_kind="diffusion", il_diffusion_obs_noise=0.2), SPEC)
    assert made.arch["obs_noise"] == 0.2
    with pytest.raises(ValueError, match="obs_noise"):
        policy_of("diffusion", obs_noise=-0.1)
    with pytest.raises(ValueError):
        tiny_settings(il_kind="diffusion", il_diffusion_obs_noise=-0.1)
    # a diffusion arch without ``obs_noise`` (bundles before the setting) trains without it
    arch = dict(plain.arch)
    del arch["obs_noise"]
    assert build_il(SPEC, arch).obs_noise == 0.0  # type: ignore[attr-defined]


def test_bins_round_trip_their_discretisation() -> None:
    bins = 64
    actions = torch.linspace(-1, 1, 1001)
    idx = to_bins(actions, bins)
    assert int(idx.min()) == 0 and int(idx.max()) == bins - 1
    back = from_bins(idx, bins)
    assert float((back - actions).abs().max()) <= 1.0 / bins + 1e-6  # half a bin width
    assert bool((back.abs() < 1).all())
    every = torch.arange(bins)
    assert torch.equal(to_bins(from_bins(every, bins), bins), every)


def test_bins_decode_dimensions_jointly() -> None:
    """Autoregressive decoding: the pairs (0.6, 0.12) and (-0.6, -0.12) are sampled, never
    a mix of the two modes' coordinates."""
    states, actions = bimodal()
    policy = policy_of("bins", bins=32)
    fit(policy, states, actions, 600)
    probe = {"state": torch.randn(4, 4, generator=torch.Generator().manual_seed(5))}
    with torch.no_grad():
        samples = policy.sample(probe, 200, generator=torch.Generator().manual_seed(0))
    a0, a1 = samples[..., 0].flatten(), samples[..., 1].flatten()
    assert 0.3 < float((a0 > 0).float().mean()) < 0.7
    assert float((torch.sign(a0) == torch.sign(a1)).float().mean()) > 0.95


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_policy_bundle_round_trips_every_kind(kind: str) -> None:
    spec = ObsSpec(state_dim=6, action_dim=3, raw_state_dim=3, state_stack=2)
    cfg = tiny_settings(method="bc", il_kind=kind)
    il = make_il(cfg, spec)
    il.normalizer.fit(np.random.default_rng(0).normal(size=(50, 6)))
    il.eval()
    blob, config = make_bundle(cfg, spec, agent=None, il=il)
    assert config["il_arch"]["kind"] == kind
    policy = load_policy(blob)
    assert type(policy.il) is type(il)
    again = build_il(spec, config["il_arch"])
    assert sorted(again.state_dict()) == sorted(il.state_dict())
    for k in range(3):
        obs = np.linspace(-1, 1, 3) * (k + 1)
        policy.reset()
        action, info = policy.act(obs, explore=False)
        stacked = torch.as_tensor(np.concatenate([obs, obs]), dtype=torch.float32)[None]
        with torch.no_grad():
            expected = il({"state": stacked})[0].numpy()
        np.testing.assert_allclose(action, expected, atol=1e-6)
        assert info["proposal"] == "il"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_is_ibrls_proposal_when_acting_and_bootstrapping(kind: str) -> None:
    from tests.learner.helpers import random_batch

    spec = ObsSpec(state_dim=4, action_dim=2, raw_state_dim=4)
    cfg = tiny_settings(method="ibrl", il_kind=kind)
    agent = tiny_agent(spec, method="ibrl", il_kind=kind)
    agent.il = make_il(cfg, spec).eval().requires_grad_(False)
    metrics = agent.update([random_batch(spec, 32)])
    assert all(np.isfinite(v) for v in metrics.values())
    blob, _ = make_bundle(agent.cfg, spec, agent=agent, il=agent.il)
    policy = load_policy(blob)
    obs = {"state": torch.randn(5, 4)}
    a_bundle, use_il, _, q_il = policy.act_batch(obs, explore=False)
    assert a_bundle.shape == (5, 2) and bool(torch.isfinite(q_il).all())
    with torch.no_grad():
        a_il = agent.il(obs)
    chosen = a_bundle[use_il]
    torch.testing.assert_close(chosen, a_il[use_il])


class DistanceCritic(torch.nn.Module):
    """Q = -|action - target| (two identical heads): the best action is ``target``."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = target

    def forward(self, feat: torch.Tensor, prop: object, action: torch.Tensor) -> torch.Tensor:
        q = -(action - self.target).abs().sum(-1)
        return torch.stack([q, q])


def test_k_sample_rule_proposes_the_sample_the_critic_scores_highest() -> None:
    states, actions = bimodal()
    gmm = policy_of("gmm")
    fit(gmm, states, actions, 400)
    obs = {"state": torch.randn(6, 4)}
    feat = obs["state"]
    for target in (torch.tensor([0.6, 0.12]), torch.tensor([-0.6, -0.12])):
        critic = DistanceCritic(target)
        gmm.proposal_samples = 16
        torch.manual_seed(0)
        with torch.no_grad():
            samples = gmm.sample(obs, 16)  # the draws il_proposal makes after the same seed
            q = -(samples - target).abs().sum(-1)  # [16, 6]
            torch.manual_seed(0)
            best = il_proposal(critic, gmm, feat, None, obs=obs, num_k=2)
        torch.testing.assert_close(best, samples[q.argmax(0), torch.arange(6)])
        assert bool((torch.sign(best[:, 0]) == torch.sign(target[0])).all()), best
        _, use_il, *_ = propose(
            critic, gmm, feat, None, -target.expand(6, 2), obs=obs, mode="ibrl", num_k=2,
            beta=10.0,
        )  # fmt: skip
        assert bool(use_il.all())
    gmm.proposal_samples = 1
    torch.testing.assert_close(il_proposal(critic, gmm, feat, None, obs=obs, num_k=2), gmm(obs))


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown IL policy kind"):
        build_il(SPEC, {"kind": "flow", "hidden": 8, "layers": 1, "dropout": 0.0})
    with pytest.raises(ValueError):
        tiny_settings(il_kind="flow")
    with pytest.raises(ValueError, match="ddim_steps"):
        tiny_settings(il_kind="diffusion", il_diffusion_train_steps=10, il_diffusion_ddim_steps=20)
    with pytest.raises(ValueError, match="predict"):
        policy_of("diffusion", predict="v")
    with pytest.raises(ValueError):
        tiny_settings(il_kind="diffusion", il_diffusion_predict="v")
    # a diffusion arch without ``predict`` (bundles before the setting) predicts the noise
    arch = dict(policy_of("diffusion").arch)
    del arch["predict"]
    assert build_il(SPEC, arch).predict == "eps"  # type: ignore[attr-defined]
    # an arch without a kind (every policy before kinds) is an MSE policy
    arch = dict(policy_of("mse").arch)
    del arch["kind"]
    assert build_il(SPEC, arch).kind == "mse"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["gaussian", "gmm", "diffusion", "bins"])
def test_tandem_train_bc_trains_and_bundles_the_kind(kind: str, tmp_path: Path, capsys) -> None:
    from learner.acting import read_bundle
    from tandem.cli.main import main
    from tests.learner.test_learn_cli import CONFIG, TOY, tandem

    demos = tmp_path / "demos"
    res = tandem("record-demos", *TOY, "--policy", "learner.toy_env:NoisyReachExpert",
                 "--policy-args", '{"speed": 1.0, "noise": 0.1}', "--episodes", "2",
                 "--out", str(demos))  # fmt: skip
    assert res.returncode == 0, res.stderr
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG + f'il_kind = "{kind}"\nil_diffusion_ddim_steps = 4\n')
    out = tmp_path / "bc"
    args = ["train", "--method", "bc", *TOY, "--demos", str(demos), "--config", str(config),
            "--eval-episodes", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "success" in capsys.readouterr().out
    _, bundle = read_bundle(out / "policy.safetensors")
    assert bundle["il_arch"]["kind"] == kind
    assert load_policy(out / "policy.safetensors").il.kind == kind  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["gmm", "diffusion"])
def test_the_online_learner_refits_and_restores_the_kind(kind: str, tmp_path: Path) -> None:
    from tests.learner.service.test_service_il import _learner, _run_refit

    learner = _learner(tmp_path, il_kind=kind, il_diffusion_ddim_steps=4)
    _run_refit(learner)  # pre-training, then an HG-DAgger refit on the interventions
    assert learner.il is not None and learner.il.kind == kind
    assert learner.progress.refits >= 1
    assert learner.agent is not None and learner.agent.il is learner.il
    again = _learner(tmp_path / "again", il_kind=kind, il_diffusion_ddim_steps=4)
    again.spec = learner.spec
    again._restore(learner._checkpoint_state())
    obs = {"state": torch.randn(3, learner.spec.state_dim)}  # type: ignore[union-attr]
    with torch.no_grad():
        torch.testing.assert_close(again.il(obs), learner.il(obs))  # type: ignore[misc]
