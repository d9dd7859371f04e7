"""The online learner: start-up data, IL pre-training, the UTD-paced update loop, refits,
weights publishing, metrics and checkpoints (issue 5). ``tandem learner`` runs ``run()``.

Threads: ingest (sockets -> routed episodes, ``Ingest``), outbox (weights and
metrics sockets, ``Outbox``), an optional IL refit job, and this one, which owns
the agent and the buffers: it adds delivered episodes, updates, swaps refits in,
publishes and checkpoints, all between two updates, so each of those is atomic
with respect to training.

Every thread runs under one ``Supervisor`` (``supervise.py``): errors are
counted, logged and recovered from; a thread that cannot continue stops the
service, which checkpoints and exits non-zero (``EXIT_FATAL``).

Checkpoints (``checkpoint``): the networks at most every ``checkpoint_every_s``
(<= 10 s) while they change, on stop (SIGTERM) first of all, and after
pre-training; the replay index only when the replay changed, no more often
than ``INDEX_COST_FACTOR`` times its own writing time, and on stop.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learner import runtime
from learner.bundle import make_bundle
from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.episode_arrays import EpisodeArrays, Segment, merge
from learner.ibrl import IBRLAgent, resolve_device
from learner.il import ILPolicy, build_il, make_il
from learner.loggers import make_sink
from learner.obs import ObsSpec, to_torch
from learner.replay import il_cache_fn, sampling
from learner.service.assembly import EpisodeAssembler
from learner.service.data import ServiceData, spec_for
from learner.service.il_cache import ILCacheJob
from learner.service.ingest import Delivery, Ingest
from learner.service.metrics import DataSnapshot, Metrics, TrainerSnapshot, collect
from learner.service.outbox import Outbox
from learner.service.refit import Refit, train_il
from learner.service.routing import route
from learner.service.sources import IngestLog, load_roots, session_roots
from learner.service.stats import EpisodeStats, RateMeter
from learner.service.supervise import Supervisor
from tandem.messages import EpisodeKind
from tandem.settings import Settings
from tandem.settings.learner_service import LearnerServiceSettings

log = logging.getLogger(__name__)
IDLE_S = 0.02
INDEX_COST_FACTOR = 20.0  # the replay index takes at most ~5 % of the time
CHECKPOINT_COST_WARN = 0.1  # warn when a checkpoint takes over 10 % of its interval


@dataclass
class Progress:
    """What a checkpoint remembers about the run besides the networks."""

    run_id: str = field(
        default_factory=lambda: f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    )
    started_wall: float = field(default_factory=time.time)
    weights_version: int = 0
    il_version: int = 0
    refits: int = 0
    intervention_steps_at_refit: int = 0
    demo_steps_at_refit: int = 0
    refit_weights_version: int = 0
    update_calls: int = 0


class OnlineLearner:
    """Learns from live bridges; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        service: LearnerServiceSettings,
        *,
        resume: bool = False,
        demos_dir: Path | None = None,
    ) -> None:
        self.settings, self.svc, self.cfg = settings, service, settings.learner
        self.run_dir = Path(service.run_dir or settings.data_dir / "runs" / "learner")
        self.store_root = Path(service.recorder_store or Path(settings.data_dir) / "episodes")
        self.demos_dir = Path(demos_dir or service.demos_dir or self.store_root)
        self.ckpt_path = self.run_dir / "checkpoint.pt"
        self.resume = resume
        self.device = resolve_device(self.cfg.device)
        runtime.configure(self.device, self.cfg.threads)
        self.progress = Progress()
        self.stop_event = threading.Event()
        self.supervisor = Supervisor(self.stop_event)
        self.deliveries: deque[Delivery] = deque()
        self.spec: ObsSpec | None = None
        self.data: ServiceData | None = None
        self.agent: IBRLAgent | None = None
        self.il: ILPolicy | None = None
        self.refit: Refit | None = None
        self.il_cache: ILCacheJob | None = None
        self._pending_since: float | None = None  # when un-refit intervention steps arrived
        self.episode_stats = EpisodeStats(service.rolling_episodes)
        self.update_rate = RateMeter()
        self.env_steps = 0
        self.demo_episodes = 0
        self.rollouts_seen = 0
        self.state = "starting"
        self.last_metrics: dict[str, float] = {}
        self.last_checkpoint = time.monotonic()
        self.rejected_episodes = 0
        self.refit_failures = 0
        self._index_mark: tuple[int, int, int] | None = None
        self._index_written = 0.0
        self._index_cost_s = 0.0
        self.rng = np.random.default_rng()
        self._metrics_lock = threading.Lock()
        self._ckpt: dict[str, Any] | None = None
        self._checkpointed: tuple[Any, ...] | None = None
        self.ingest: Ingest | None = None
        self.outbox: Outbox | None = None
        self._il_only_published = False

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        """Restore or start the run, load the recorded data, start ingest and the outbox."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.resume and self.ckpt_path.exists():
            self._ckpt = load_checkpoint(self.ckpt_path)
            self.progress = Progress(**self._ckpt["progress"])
            log.info("resuming run %s from %s", self.progress.run_id, self.ckpt_path)
        elif self.resume:
            log.warning("--resume: no checkpoint at %s; starting a new run", self.ckpt_path)
        elif self.ckpt_path.exists():
            log.warning("%s holds a checkpoint; starting a NEW run over it (--resume continues "
                        "that run)", self.run_dir)  # fmt: skip
        self._save_run_info()
        assembler = EpisodeAssembler()
        for ep in self._recorded_episodes():
            if ep.ended:
                assembler.mark_closed(ep.robot_id, ep.episode_id)
                self._deliver(ep)
            elif self.resume:
                assembler.seed(ep)  # its remaining live steps will join it
        sink = make_sink(self.cfg.logger, self.run_dir, self.settings.model_dump(mode="json"))
        self.outbox = Outbox(
            self.progress.run_id, self.cfg.weights_endpoint, self.cfg.metrics_endpoint,
            self.metrics, metrics_period_s=self.svc.metrics_period_s, supervisor=self.supervisor,
            sink=sink,
        )  # fmt: skip
        self.outbox.start()
        route_kwargs = {
            "demos_require_success": self.svc.demos_require_success,
            "rlif_penalty": self.svc.rlif_penalty,
        }
        self.ingest = Ingest(
            self.cfg.bridges, self.deliveries.append, assembler=assembler,
            ingest_log=self._ingest_log(), route_kwargs=route_kwargs,
            backfill_root=self.store_root,
            label_grace_s=self.svc.label_grace_s, supervisor=self.supervisor,
        )  # fmt: skip
        self.ingest.start()
        self._set_metrics(self._gate_metrics())

    def _ingest_log(self) -> IngestLog | None:
        """The learner's own log of ingested steps, unless a recorder's store keeps them."""
        if not self.svc.keeps_ingest_log:
            log.info("no ingest log: the recorder's store %s keeps every step", self.store_root)
            return None
        return IngestLog.new_session(self.run_dir, self.svc.ingest_flush_s)

    def _recorded_episodes(self) -> list[EpisodeArrays]:
        """Demos (always) and, when resuming, everything this run saw or the store recorded."""
        found = load_roots([self.demos_dir], demos_only=True)
        if self.resume:
            roots = [self.store_root, *session_roots(self.run_dir)]
            since = self.progress.started_wall - 1.0
            for key, ep in load_roots(roots, since_wall=since).items():
                found[key] = merge(found[key], ep) if key in found else ep
        log.info("recorded data: %d episodes", len(found))
        return sorted(found.values(), key=lambda e: (e.kind != "demo", e.episode_id))

    def _deliver(self, ep: EpisodeArrays) -> None:
        """Queue a recorded episode; demos recorded before this run do not count as env steps."""
        routed = route(
            ep,
            demos_require_success=self.svc.demos_require_success,
            rlif_penalty=self.svc.rlif_penalty,
        )
        if routed.malformed:
            log.warning("recorded episode %s/%s rejected, %s",
                        ep.robot_id, ep.episode_id, routed.dropped_reason)  # fmt: skip
        this_run = ep.started_wall >= self.progress.started_wall - 1.0
        self.deliveries.append(Delivery(ep, routed, env_steps=ep.kind != "demo" or this_run))

    def _save_run_info(self) -> None:
        """run.json: the run's id, start and newest published weights version.

        Written at start and at every publish, so a resumed learner never reuses a
        version number it published after its last checkpoint (the bridge would
        ignore it as stale).
        """
        path = self.run_dir / "run.json"
        if self.resume and path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("unreadable %s: %s", path, exc)
            else:
                if old.get("run_id") == self.progress.run_id:
                    published = int(old.get("weights_version", 0))
                    self.progress.weights_version = max(self.progress.weights_version, published)
        info = {
            "run_id": self.progress.run_id, "started_wall": self.progress.started_wall,
            "weights_version": self.progress.weights_version,
        }  # fmt: skip
        _write_json(path, info)

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        """Train until ``stop_event`` is set (or a thread fails for good); then close."""
        try:
            while not self.stop_event.is_set():
                self.supervisor.guard("trainer", self._iteration, self.state)
                ingest, outbox = self.ingest, self.outbox
                self.supervisor.check_alive({
                    "ingest": None if ingest is None else ingest.thread,
                    "outbox": None if outbox is None else outbox.thread,
                })  # fmt: skip
        finally:
            self.close()

    def _iteration(self) -> None:
        self._take_deliveries()
        if not self._ready():
            time.sleep(IDLE_S)
            return
        self._refit_step()
        self._install_il_cache()
        if not self._rl_step():
            time.sleep(IDLE_S)
        if time.monotonic() - self.last_checkpoint >= self.svc.checkpoint_every_s:
            self.checkpoint()

    def close(self) -> None:
        """Checkpoint the networks first (a supervisor's stop timeout may follow SIGTERM),
        then stop the threads, take what ingest delivered and write the replay index."""
        guard = self.supervisor.guard
        if not guard("trainer", self.checkpoint, "checkpointing on stop"):
            self.supervisor.fatal("the checkpoint on stop failed")
        if self.refit is not None and not self.refit.done:
            self.refit.cancel()
        if self.ingest is not None:
            self.ingest.stop()
            self.ingest = None
        guard("trainer", self._take_deliveries, "taking the last episodes")
        if not guard("trainer", lambda: self.checkpoint(final=True), "the last checkpoint"):
            self.supervisor.fatal("the last checkpoint failed")
        if self.outbox is not None:
            self.outbox.close()
            if self.outbox.sink is not None:
                self.outbox.sink.close()
            self.outbox = None

    def _take_deliveries(self) -> None:
        if self.data is None and self._ckpt is not None:
            self._init_data(None)  # a checkpoint knows the shapes: no need to wait for data
        while self.deliveries:
            delivery = self.deliveries.popleft()
            if self.data is None and not self._init_data(delivery):
                self.deliveries.appendleft(delivery)
                return
            self._add(delivery)

    def _init_data(self, delivery: Delivery | None) -> bool:
        """Size the buffers from the checkpoint's spec or the first data that arrives."""
        if self._ckpt is not None:
            self.spec = ObsSpec.from_json(self._ckpt["spec"])
        elif delivery is None:
            return False
        else:
            segs = delivery.routed.demo + delivery.routed.online
            if not segs:
                return True  # nothing to learn from in this one; drop it
            self.spec = self._spec_from(segs[0])
        cfg = self.cfg
        mode, demo_frac = sampling(cfg.method, cfg.rlpd_demo_frac, cfg.ibrl_demo_frac)
        self.data = ServiceData(
            self.spec, demo_capacity=self.svc.demo_capacity, online_capacity=cfg.buffer_size,
            intervention_capacity=self.svc.intervention_capacity, n_step=cfg.n_step,
            gamma=cfg.gamma, mode=mode, demo_frac=demo_frac,
        )  # fmt: skip
        log.info("observation spec: %s", self.spec)
        return True

    def _spec_from(self, seg: Segment) -> ObsSpec:
        pixels = self.cfg.obs == "pixels" or (
            self.cfg.obs == "auto" and bool(seg.images) and self.device.type == "cuda"
        )
        cfg = self.cfg
        return spec_for(
            seg, pixels=pixels, cameras=cfg.cameras, action_dim=7, state_dims=cfg.state_dims,
            state_stack=cfg.state_stack, frame_stack=cfg.frame_stack,
        )  # fmt: skip

    def _add(self, delivery: Delivery) -> None:
        data, routed = self.data, delivery.routed
        if data is None or routed.dropped_reason:
            return
        try:
            added = sum(data.add_demo(seg) for seg in routed.demo)
            added += sum(data.add_online(seg) for seg in routed.online)
        except (ValueError, KeyError, IndexError) as exc:  # the episode misfits the spec
            self._reject(delivery, exc)
            return
        if delivery.env_steps:
            self.env_steps += added
        for seg in routed.intervention:
            data.add_intervention(seg)
        self.episode_stats.add(delivery.episode, len(routed.intervention))
        self.demo_episodes += bool(routed.demo)
        self.rollouts_seen += delivery.episode.kind == EpisodeKind.ROLLOUT
        self._set_metrics(self._gate_metrics())
        if self.il is not None and self._warmup_ends():
            self.publish()

    def _reject(self, delivery: Delivery, exc: Exception) -> None:
        ep = delivery.episode
        self.rejected_episodes += 1
        log.warning("episode %s/%s rejected: it does not fit the observation spec %s: %s: %s",
                    ep.robot_id, ep.episode_id, self.spec, type(exc).__name__, exc)  # fmt: skip

    # ------------------------------------------------------------------ gates
    @property
    def uses_il(self) -> bool:
        return self.cfg.method in ("ibrl", "ibrl_soft", "bc")

    def demos_missing(self) -> bool:
        """True while the demo data is below the minimum for the first policy."""
        if not self.uses_il:
            return False
        demo_steps = 0 if self.data is None else len(self.data.demos)
        cfg = self.cfg
        return self.demo_episodes < cfg.online_min_demos or demo_steps < max(
            1, cfg.online_min_demo_steps
        )

    @property
    def warmup_done(self) -> bool:
        """The IL-only warm-up is over: enough rollouts, and the critic has done enough
        updates to score the RL proposal (always over for methods without a hybrid)."""
        cfg = self.cfg
        if cfg.method not in ("ibrl", "ibrl_soft"):
            return True
        return (
            self.rollouts_seen >= cfg.online_warmup_rollouts
            and self.num_updates >= cfg.online_warmup_updates
        )

    def _gate_metrics(self) -> dict[str, float]:
        """What the learner waits for (the dashboard shows "waiting for demos (1/3)")."""
        cfg = self.cfg
        return {
            "learner/demos": float(self.demo_episodes),
            "learner/demos_required": float(cfg.online_min_demos if self.uses_il else 0),
            "learner/demo_steps": float(0 if self.data is None else len(self.data.demos)),
            "learner/demo_steps_required": float(cfg.online_min_demo_steps if self.uses_il else 0),
            "learner/warmup_rollouts": float(self.rollouts_seen),
            "learner/warmup_rollouts_required": float(
                cfg.online_warmup_rollouts if cfg.method in ("ibrl", "ibrl_soft") else 0
            ),
            "learner/warmup_updates_required": float(
                cfg.online_warmup_updates if cfg.method in ("ibrl", "ibrl_soft") else 0
            ),
            "learner/il_only": float(not self.warmup_done),
        }

    # ------------------------------------------------------------------ models
    def _ready(self) -> bool:
        """Build (restore, or pre-train) the models once there is data to do it with."""
        if self.il is not None or self.data is None:
            if self.data is None:
                self.state = "waiting_for_data"
            return self.il is not None
        if self._ckpt is not None:
            self._restore(self._ckpt)
            self._ckpt = None
            self.publish()
            return True
        if self.demos_missing():
            self.state = "waiting_for_demos"
            return False
        self._pretrain()
        self.checkpoint()
        self.publish()
        return True

    def _new_il(self) -> ILPolicy:
        assert self.spec is not None
        cfg = self.cfg
        dropout = cfg.bc_dropout if cfg.online_bc_dropout is None else cfg.online_bc_dropout
        return make_il(cfg, self.spec, dropout=dropout).to(self.device)

    def _make_agent(self, il: ILPolicy) -> IBRLAgent | None:
        if self.cfg.method == "bc":
            return None
        assert self.spec is not None
        uses_il = self.cfg.method in ("ibrl", "ibrl_soft")
        return IBRLAgent(self.cfg, self.spec, il if uses_il else None, self.device)

    def _pretrain(self) -> None:
        assert self.data is not None
        self.state = "pretraining"
        il = self._new_il()
        states = self.data.demo_states()
        if len(states):
            il.normalizer.fit(states)
        steps = self._pretrain_steps
        log.info("pre-training the IL policy: %d steps on %d demo transitions",
                 steps, len(self.data.demos))  # fmt: skip
        t0 = time.monotonic()
        if len(self.data.demos):
            metrics = train_il(
                il, self.data.sample_il, self._il_batch, steps=steps,
                batch_size=self.cfg.batch_size, lr=self.cfg.bc_lr,
                grad_clip=self.cfg.bc_grad_clip, seed=int(self.rng.integers(1 << 31)),
                stop=self.stop_event, progress=self._pretrain_progress(steps),
            )  # fmt: skip
            self._set_metrics(metrics)
        log.info("IL pre-training done in %.1f s", time.monotonic() - t0)
        self.progress.demo_steps_at_refit = len(self.data.demos)
        self.il = il
        self.agent = self._make_agent(il)
        if self.agent is not None and len(states):
            self.agent.normalizer.fit(states)
        self._cache_il()

    def _pretrain_progress(self, total: int) -> Any:
        every = max(1, total // 10)

        def report(i: int, metrics: dict[str, float]) -> None:
            if i % every == 0 or i == total:
                log.info("IL pre-training %d/%d: bc/loss %.4f", i, total, metrics["bc/loss"])
                self._set_metrics({**metrics, "bc/pretrain_progress": i / max(1, total)})

        return report

    def _restore(self, ckpt: dict[str, Any]) -> None:
        assert self.spec is not None
        il = build_il(self.spec, ckpt["il_arch"]).to(self.device)
        il.proposal_samples = self.cfg.il_proposal_samples
        il.load_state_dict(ckpt["il"])
        il.eval().requires_grad_(False)
        self.il = il
        self.agent = self._make_agent(il)
        if self.agent is not None:
            self.agent.load_state_dict(ckpt["agent"])
            self.il = self.agent.il or il
        self._cache_il()
        log.info("restored the agent at update %d", self.num_updates)

    @property
    def num_updates(self) -> int:
        return 0 if self.agent is None else self.agent.num_updates

    # ------------------------------------------------------------------ training
    def _rl_step(self) -> bool:
        """One update call when the data and the UTD budget allow; False when waiting."""
        agent, data, cfg = self.agent, self.data, self.cfg
        if agent is None or data is None:
            self.state = "imitation_only"
            return False
        if len(data) < max(self.svc.min_transitions, cfg.min_buffer):
            self.state = "waiting_for_data"
            return False
        k = cfg.num_critic_updates
        if agent.num_updates + k > self.utd_target * self.env_steps or not self._under_cap():
            self.state = "waiting_for_steps"
            return False
        self.state = "training"
        agent.env_steps = self.env_steps
        batches = [self._rl_batch(data.sample_rl(cfg.batch_size, self.rng)) for _ in range(k)]
        metrics = agent.update(batches)
        self.update_rate.add(k)
        self.progress.update_calls += 1
        self._set_metrics(metrics)
        warmup_ends = self._warmup_ends()
        if warmup_ends or self.progress.update_calls % self.svc.publish_every_updates == 0:
            self.publish()
        return True

    def _warmup_ends(self) -> bool:
        """True once, when the last IL-only bundle is out and the warm-up is now over."""
        if not (self._il_only_published and self.warmup_done):
            return False
        log.info("IL-only warm-up done (%d rollouts, %d updates): the hybrid acts from now on",
                 self.rollouts_seen, self.num_updates)  # fmt: skip
        self._set_metrics(self._gate_metrics())
        return True

    @property
    def utd_target(self) -> float:
        if self.svc.utd is not None:
            return self.svc.utd
        return self.cfg.num_critic_updates / self.cfg.update_freq

    def _under_cap(self) -> bool:
        return self.update_rate.rate() < self.svc.max_updates_per_s

    def _rl_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        dev = self.device
        out = {
            "obs": to_torch(batch["obs"], dev, batch=True),
            "next_obs": to_torch(batch["next_obs"], dev, batch=True),
            "action": torch.as_tensor(batch["action"], device=dev),
            "reward": torch.as_tensor(batch["reward"], device=dev),
            "discount": torch.as_tensor(batch["discount"], device=dev),
        }
        if "next_il_action" in batch:  # the replay's IL cache (learner.service.il_cache)
            out["next_il_action"] = torch.as_tensor(batch["next_il_action"], device=dev)
        return out

    def _il_batch(self, obs: dict[str, Any], action: Any) -> tuple[dict[str, Any], torch.Tensor]:
        return to_torch(obs, self.device, batch=True), torch.as_tensor(action, device=self.device)

    # ------------------------------------------------------------------ IL proposal cache
    def _cache_il(self) -> None:
        """The IL policy changed: drop the replay's IL cache (batches compute a_IL with the new
        policy meanwhile) and compute the new one off-thread (``learner.service.il_cache``)."""
        agent, data = self.agent, self.data
        if agent is None or agent.il is None or data is None or not self.cfg.caches_il_proposal:
            return
        data.drop_il_proposal()
        propose = il_cache_fn(agent.il, self.device)
        self.il_cache = ILCacheJob(data, propose, self.progress.il_version).start()

    def _install_il_cache(self) -> None:
        """Swap in a finished cache of the current IL version (a superseded one is dropped)."""
        job = self.il_cache
        if job is None or not job.done:
            return
        self.il_cache = None
        if job.error is not None:
            log.warning("IL cache v%d not installed (%s): batches keep computing a_IL",
                        job.version, job.error)  # fmt: skip
            return
        job.install()
        log.info("IL cache v%d installed: %d frames in %.2f s",
                 job.version, job.frames, job.seconds)  # fmt: skip
        self._set_metrics({"hil/il_cache_seconds": job.seconds})

    # ------------------------------------------------------------------ HG-DAgger
    def _refit_step(self) -> None:
        data = self.data
        if data is None or self.il is None or self.cfg.method in ("rl", "rlpd"):
            return
        if self.refit is not None and self.refit.done:
            self._swap_refit(self.refit)
            self.refit = None
        if self.refit is not None:
            return
        p = self.progress
        new = data.intervention_steps - p.intervention_steps_at_refit
        new_demo = len(data.demos) - p.demo_steps_at_refit
        if self._refit_due(new, new_demo):
            self._pending_since = None
            p.intervention_steps_at_refit = data.intervention_steps
            p.demo_steps_at_refit = len(data.demos)
            log.info("IL refit (%s): %d new intervention steps, %d new demo steps",
                     self.cfg.online_il_refit, new, new_demo)  # fmt: skip
            start, steps = self._refit_start(data)
            self.refit = Refit(
                start, data.sample_il, self._il_batch, steps=steps,
                batch_size=self.cfg.batch_size, lr=self.cfg.bc_lr,
                grad_clip=self.cfg.bc_grad_clip, seed=int(self.rng.integers(1 << 31)),
            ).start()  # fmt: skip

    def _refit_due(self, new: int, new_demo: int) -> bool:
        """Enough new imitation data for a refit, or intervention steps that waited
        ``refit_max_wait_s`` since the first of them arrived."""
        now = time.monotonic()
        if new <= 0:
            self._pending_since = None
        elif self._pending_since is None:
            self._pending_since = now
        svc = self.svc
        if new >= svc.refit_min_intervention_steps or new_demo >= svc.refit_min_demo_steps:
            return True
        since, wait = self._pending_since, svc.refit_max_wait_s
        return since is not None and wait is not None and now - since >= wait

    def _refit_start(self, data: ServiceData) -> tuple[ILPolicy, int]:
        """(policy to train, steps): the current one to fine-tune, or a new one (scratch)
        whose normaliser is fit on all imitation data, trained as long as the pre-training."""
        assert self.il is not None
        if self.cfg.online_il_refit == "finetune":
            return self.il, self.svc.refit_steps
        fresh = self._new_il()
        fresh.normalizer.fit(data.il_states())
        return fresh, self._pretrain_steps

    @property
    def _pretrain_steps(self) -> int:
        return self.cfg.bc_steps if self.svc.pretrain_steps is None else self.svc.pretrain_steps

    def _swap_refit(self, job: Refit) -> None:
        if job.error is not None:
            self.refit_failures += 1
            self._set_metrics({"hil/refit_failed": float(self.refit_failures)})
            return
        self.il = job.policy
        if self.agent is not None and self.agent.il is not None:
            self.agent.il = job.policy
        self.progress.refits += 1
        self.progress.il_version += 1
        self._cache_il()
        loss = job.metrics.get("bc/loss", float("nan"))
        log.info("IL policy swapped in: il v%d after a %.1f s refit (bc/loss %.4f)",
                 self.progress.il_version, job.seconds, loss)  # fmt: skip
        self._set_metrics({"hil/refit_loss": loss, "hil/refit_seconds": job.seconds})
        self.publish()
        self.progress.refit_weights_version = self.progress.weights_version

    # ------------------------------------------------------------------ outputs
    def publish(self) -> None:
        """Publish the current policy bundle as the next weights version."""
        assert self.spec is not None and self.outbox is not None
        il_only = not self.warmup_done
        blob, config = make_bundle(
            self.cfg, self.spec, agent=self.agent, il=self.il, il_only=il_only
        )
        self._il_only_published = il_only
        self.progress.weights_version += 1
        self.outbox.publish_weights(
            blob, version=self.progress.weights_version, method=self.cfg.method,
            il_version=self.progress.il_version, update_step=self.num_updates,
            config={"spec": config["spec"], "method": config["method"], "il_only": il_only},
        )  # fmt: skip
        self._save_run_info()

    def checkpoint(self, *, final: bool = False) -> None:
        """Save the networks and the progress atomically when they changed, and the replay
        index when it is due (see the module docstring; ``final``: whenever it changed)."""
        self.last_checkpoint = time.monotonic()
        if self.il is None or self.spec is None:
            return
        mark = (self.num_updates, *asdict(self.progress).values())
        if mark != self._checkpointed:
            t0 = time.monotonic()
            save_checkpoint(self.ckpt_path, self._checkpoint_state())
            self._checkpointed = mark
            cost = time.monotonic() - t0
            self._set_metrics({"learner/checkpoint_s": cost})
            slow = cost > CHECKPOINT_COST_WARN * self.svc.checkpoint_every_s
            log.log(logging.WARNING if slow else logging.INFO, "checkpoint at update %d in "
                    "%.3f s (%s)", self.num_updates, cost, self.ckpt_path)  # fmt: skip
        if self._index_due(final):
            self._write_index()
        self.last_checkpoint = time.monotonic()

    def _checkpoint_state(self) -> dict[str, Any]:
        assert self.il is not None and self.spec is not None
        return {
            "agent": None if self.agent is None else self.agent.state_dict(),
            "il": self.il.state_dict(),
            "il_arch": self.il.arch,
            "spec": self.spec.to_json(),
            "progress": asdict(self.progress),
            "settings": self.settings.model_dump(mode="json"),
            "service": self.svc.model_dump(mode="json"),
        }

    def _index_due(self, final: bool) -> bool:
        data = self.data
        if data is None or self._index_mark == (len(data), data.duplicates, self.env_steps):
            return False
        wait = max(self.svc.checkpoint_every_s, INDEX_COST_FACTOR * self._index_cost_s)
        return final or time.monotonic() - self._index_written >= wait

    def _write_index(self) -> None:
        """``replay_index.json``: every transition the replay holds (diagnostics, tests)."""
        assert self.data is not None
        t0 = time.monotonic()
        self._index_mark = (len(self.data), self.data.duplicates, self.env_steps)
        _write_json(self.run_dir / "replay_index.json", self.data.index())
        self._index_written = time.monotonic()
        self._index_cost_s = self._index_written - t0
        self._set_metrics({"learner/replay_index_s": self._index_cost_s})
        log.debug("replay index of %d transitions in %.3f s", len(self.data), self._index_cost_s)

    def _set_metrics(self, metrics: dict[str, float]) -> None:
        with self._metrics_lock:
            self.last_metrics.update(metrics)

    def metrics(self) -> tuple[int, int, Metrics]:
        """(update step, env steps, flat metrics) for the outbox; see docs/metrics.md.
        Safe to call from the outbox thread at any time."""
        ingest = self.ingest
        return collect(
            self.snapshot(), self._data_snapshot(), None if ingest is None else ingest.snapshot(),
            self.supervisor.metrics(), self.episode_stats.metrics(),
        )  # fmt: skip

    def snapshot(self) -> TrainerSnapshot:
        """The trainer's own figures at this moment (any thread)."""
        with self._metrics_lock:
            last = dict(self.last_metrics)
        p, refit = self.progress, self.refit
        return TrainerSnapshot(
            state=self.state, updates=self.num_updates, env_steps=self.env_steps,
            updates_per_s=self.update_rate.rate(), utd_target=self.utd_target,
            checkpoint_age_s=time.monotonic() - self.last_checkpoint,
            weights_version=p.weights_version, il_version=p.il_version, refits=p.refits,
            refit_weights_version=p.refit_weights_version,
            refit_running=refit is not None and not refit.done,
            rejected_episodes=self.rejected_episodes, last=last,
        )  # fmt: skip

    def _data_snapshot(self) -> DataSnapshot | None:
        data, p = self.data, self.progress
        if data is None:
            return None
        return DataSnapshot(
            sizes=data.sizes(), intervention_steps=data.intervention_steps,
            demo_steps=len(data.demos), duplicates=data.duplicates,
            intervention_steps_at_refit=p.intervention_steps_at_refit,
            demo_steps_at_refit=p.demo_steps_at_refit,
        )  # fmt: skip


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
