"""Settings of the learner: IBRL hyperparameters, networks, compute and endpoints.

The defaults are the reference sizes of the IBRL paper (pixel ViT + spatial-embedding critic,
state MLPs of 3x1024 with a 5-head critic ensemble). Named profiles in ``learner/profiles/``
(``cpu``, ``pixel``, ...) are TOML files in the ``--config`` format that override them.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["ibrl", "ibrl_soft", "rl", "rlpd", "bc", "dagger", "hg_dagger"]
DeviceName = Literal["auto", "cpu", "cuda"]
ObsMode = Literal["auto", "state", "pixels"]


class LearnerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method = Field(
        "ibrl",
        description="Algorithm: ibrl, ibrl_soft, rl, rlpd or bc; dagger or hg_dagger (tandem "
        "train with a scripted --expert, docs/learner.md).",
    )
    device: DeviceName = Field("auto", description="Compute device; auto picks CUDA when present.")
    batch_size: int = Field(256, ge=1, description="Minibatch size of every update.")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate of actor, critic and encoder.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    n_step: int = Field(3, ge=1, description="Length of the n-step return.")
    tau: float = Field(0.01, gt=0, le=1, description="Polyak rate of the target networks.")

    # ---- observations
    obs: ObsMode = Field(
        "auto",
        description="Observations the RL agent and IL policy use: state vector, camera images "
        "plus state (pixels), or auto (pixels when the env has cameras and CUDA is in use).",
    )
    cameras: list[str] = Field(
        default_factory=list, description="Cameras used in pixel mode; empty = every camera."
    )
    image_size: int = Field(96, ge=16, description="Rendered image size (square) for sim envs.")
    frame_stack: int = Field(1, ge=1, description="Number of past frames stacked per camera.")
    state_stack: int = Field(1, ge=1, description="Number of past state vectors stacked.")
    state_dims: int | None = Field(
        None,
        ge=1,
        description="Use only the first N entries of the state vector (e.g. 14 = sim "
        "proprioception in pixel runs); None = all.",
    )
    shift_pad: int = Field(4, ge=0, description="Random-shift augmentation padding (pixels).")
    state_norm_clip: float | None = Field(
        10.0,
        gt=0,
        description="Clamp of the demo-normalised state (in demo standard deviations); "
        "None = no clamp.",
    )

    # ---- RL (TD3 backbone)
    hidden_dim: int = Field(1024, ge=1, description="Width of actor and critic MLP layers.")
    actor_layers: int = Field(2, ge=1, description="Hidden layers of the actor MLP (pixels).")
    state_actor_layers: int = Field(3, ge=1, description="Hidden layers of the state actor MLP.")
    critic_layers: int = Field(3, ge=1, description="Hidden layers of each state critic head.")
    actor_dropout: float = Field(0.5, ge=0, lt=1, description="Dropout in the actor MLP.")
    actor_init: Literal["random", "il"] = Field(
        "random",
        description="Initial RL actor: random (the reference) or a copy of the pre-trained IL "
        "policy (ibrl*, state observations, same width and depth as the IL MLP).",
    )
    num_q: int = Field(5, ge=2, description="Critic heads of the state ensemble.")
    num_k: int = Field(2, ge=1, description="Random heads whose min scores an action (state).")
    pixel_num_q: int = Field(2, ge=2, description="Critic heads for pixel observations.")
    stddev_max: float = Field(0.1, gt=0, description="Exploration noise std at the start.")
    stddev_min: float = Field(0.1, gt=0, description="Exploration noise std at the end.")
    stddev_steps: int = Field(
        500_000, ge=1, description="Env steps of the linear stddev_max -> stddev_min schedule."
    )
    stddev_clip: float = Field(0.3, gt=0, description="Clip of the target smoothing noise.")
    soft_beta: float = Field(10.0, gt=0, description="Inverse temperature of ibrl_soft.")
    select_lcb: float | None = Field(
        None,
        ge=0,
        description="ibrl*: choose by a lower confidence bound on the RL proposal's advantage "
        "over all critic heads, mean - select_lcb * std of Q(s,a_RL) - Q(s,a_IL), so the RL "
        "proposal wins only where the heads agree it is better; None = the reference rule "
        "(min of num_k random heads for each proposal).",
    )
    select_margin: float = Field(
        0.0,
        ge=0,
        description="ibrl*: the RL proposal must beat the IL proposal by this much Q (with "
        "select_lcb: its advantage bound must exceed it); 0 = no margin.",
    )
    update_freq: int = Field(2, ge=1, description="Env steps between update calls.")
    num_critic_updates: int = Field(
        1, ge=1, description="Critic updates per update call (one actor update on the last)."
    )
    vit_dim: int = Field(128, ge=8, description="Embedding width of the pixel ViT encoder.")
    vit_heads: int = Field(4, ge=1, description="Attention heads of the ViT.")
    vit_depth: int = Field(1, ge=1, description="Transformer layers of the ViT.")
    spatial_emb: int = Field(1024, ge=1, description="Width of the critic spatial embedding.")
    actor_compress: int = Field(128, ge=1, description="Pixel actor: patch features -> this width.")

    # ---- replay and schedule
    buffer_size: int = Field(
        500_000, ge=1, description="Capacity of the online buffer in frames (demos kept apart)."
    )
    warmup_episodes: int = Field(
        10, ge=0, description="Episodes of IL (ibrl*) or random (rl, rlpd) warm-up rollouts."
    )
    min_buffer: int = Field(
        256, ge=1, description="Transitions (demo + online) needed before updates start."
    )
    rlpd_demo_frac: float = Field(
        0.5, ge=0, le=1, description="Fraction of each rlpd batch drawn from the demos."
    )
    ibrl_demo_frac: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Fraction of each ibrl, ibrl_soft or rl batch drawn from the demos "
        "(symmetric sampling, as rlpd); None = uniform over demos and online data, as the "
        "reference.",
    )

    # ---- imitation policy
    bc_steps: int = Field(20_000, ge=0, description="Gradient steps of IL pre-training.")
    bc_lr: float = Field(1e-4, gt=0, description="Adam learning rate of the IL policy.")
    bc_hidden_dim: int = Field(1024, ge=1, description="Width of the IL policy MLP.")
    bc_layers: int = Field(3, ge=1, description="Hidden layers of the state IL MLP.")
    bc_dropout: float = Field(0.5, ge=0, lt=1, description="IL dropout for state obs.")
    bc_pixel_dropout: float = Field(0.0, ge=0, lt=1, description="IL dropout for pixel obs.")
    bc_grad_clip: float = Field(5.0, gt=0, description="Gradient-norm clip of IL training.")
    bc_resnet_width: int = Field(64, ge=4, description="First-stage width of the IL ResNet.")
    il_kind: Literal["bc", "mse", "gaussian", "gmm", "diffusion", "bins", "srpo"] = Field(
        "bc",
        description="IL policy (bc, and the IL proposal of ibrl/ibrl_soft), trained on the "
        "demos here: mse (alias bc) = deterministic MSE regression; gaussian = mean and "
        "log-std, NLL; gmm = mixture of il_gmm_modes Gaussians; diffusion = DDPM "
        "(il_diffusion_predict), DDIM sampling; bins = per-dimension bins, autoregressive "
        "(docs/learner.md, 'Choosing the IL policy kind'). srpo = the policy of an offline "
        "bundle (tandem train-offline, il_bundle), not retrained.",
    )
    il_gmm_modes: int = Field(5, ge=1, description="il_kind = gmm: mixture components.")
    il_bins: int = Field(64, ge=2, description="il_kind = bins: bins per action dimension.")
    il_diffusion_train_steps: int = Field(
        100, ge=2, description="il_kind = diffusion: noise steps of the DDPM training schedule."
    )
    il_diffusion_ddim_steps: int = Field(
        8, ge=1, description="il_kind = diffusion: DDIM steps when sampling (<= train steps)."
    )
    il_diffusion_candidates: int = Field(
        8,
        ge=1,
        description="il_kind = diffusion: fixed noise vectors of the deterministic action; "
        "of their samples, the one with the most others near it is the action.",
    )
    il_diffusion_predict: Literal["eps", "x0"] = Field(
        "x0",
        description="il_kind = diffusion: what the network predicts, the clean action (x0) "
        "or the noise (eps, DDPM; bundles from before this setting are eps).",
    )
    il_diffusion_obs_noise: float = Field(
        0.1,
        ge=0.0,
        allow_inf_nan=False,
        description="il_kind = diffusion: std of the Gaussian noise added to the normalised "
        "observation features while training (never when acting), so that the denoiser is "
        "smooth in the observation; 0 = none (bundles from before this setting).",
    )
    il_proposal_samples: int = Field(
        1,
        ge=1,
        description="ibrl/ibrl_soft: 1 = the IL proposal is the IL policy's deterministic "
        "action (mode or mean); K > 1 = K samples of the IL policy, and the one the critic "
        "scores highest is the proposal (acting and TD target).",
    )
    il_bundle: str | None = Field(
        None, description="Policy bundle (file path) of the IL proposal when il_kind = srpo."
    )

    # ---- DAgger and HG-DAgger with a scripted expert (tandem train --expert)
    dagger_episodes: int = Field(
        5, ge=1, description="dagger, hg_dagger: policy rollouts per round before each refit."
    )
    dagger_beta: float = Field(
        0.0,
        ge=0,
        le=1,
        description="dagger: probability that the expert, not the policy, acts at a step of "
        "round 1 (Ross et al.'s beta mixture); the expert labels every visited state either way.",
    )
    dagger_beta_decay: float = Field(
        0.5, ge=0, le=1, description="dagger: beta of round i is dagger_beta * decay^(i-1)."
    )
    hg_dagger_threshold: float | None = Field(
        1.0,
        gt=0,
        description="hg_dagger: the expert takes over when its action and the policy's differ "
        "by more than this (L2, actions in [-1, 1]); None = no action gate.",
    )
    hg_dagger_patience: int = Field(
        3,
        ge=1,
        description="hg_dagger: consecutive steps the action gap must stay over the threshold "
        "before the expert takes over (1 = at the first; a one-step lag of the gripper "
        "command is not a mistake a person would step in for).",
    )
    hg_dagger_stall_steps: int | None = Field(
        15,
        ge=2,
        description="hg_dagger: the expert also takes over when the hand (info ee_pos) moved "
        "less than hg_dagger_stall_m in this many steps, as the scripted operator does; None = "
        "no stall gate.",
    )
    hg_dagger_stall_m: float = Field(
        0.01, gt=0, description="hg_dagger: the stall gate's distance, metres."
    )

    # ---- compute
    bf16: bool = Field(
        False,
        description="bfloat16 autocast for forward passes: of updates and acting on CUDA, of "
        "updates only on the CPU (fast where the CPU has bf16 instructions, e.g. AVX512-BF16).",
    )
    compile: bool = Field(False, description="torch.compile the networks (CUDA only).")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None = default.")
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = Field(
        "default",
        description="torch.compile mode when compile is on; reduce-overhead captures CUDA "
        "graphs (docs/learner.md, Speed).",
    )
    compile_on_cpu: bool = Field(
        False, description="Let compile = true compile on the CPU too (off: measured slower)."
    )
    tf32: bool = Field(True, description="TF32 matmuls and convolutions (CUDA only).")
    channels_last: bool = Field(
        True, description="channels_last memory format for the conv encoders (CUDA only)."
    )
    overlap: bool = Field(
        False,
        description="tandem train: run updates on a learner thread while the env steps "
        "(the update-to-data ratio still holds, within overlap_max_lag update calls); off "
        "by default: on the 2-core CPU it measured no faster (docs/learner.md, Speed).",
    )
    overlap_max_lag: int = Field(
        1,
        ge=1,
        description="tandem train with overlap: update calls the learner may be behind the "
        "env before the env waits.",
    )
    il_cache: bool = Field(
        True,
        description="Store the IL proposal a_IL(obs) of every replay frame when it enters the "
        "replay (recomputed when the IL policy changes) instead of running the IL policy on "
        "every sampled batch. Not with il_proposal_samples > 1 (the critic picks among samples).",
    )
    replay_on_device: bool = Field(
        True,
        description="CUDA: keep a copy of the replay (states and uint8 images) on the GPU so "
        "sampling copies nothing from the host.",
    )

    # ---- evaluation and checkpoints (tandem train)
    time_limit: int | None = Field(
        None,
        ge=1,
        description="tandem train: truncate training and evaluation episodes after this many "
        "env steps (the sim's horizon, a TimeLimit for gym envs); None = the env's own "
        "(200 for sim tasks).",
    )
    eval_every: int = Field(5_000, ge=1, description="Env steps between evaluations.")
    eval_episodes: int = Field(20, ge=1, description="Episodes per evaluation.")
    checkpoint_every: int = Field(
        25_000, ge=1, description="Env steps between full checkpoints (and at the end)."
    )
    log_every: int = Field(500, ge=1, description="Env steps between metrics-log lines.")
    logger: Literal["none", "tensorboard", "wandb"] = Field(
        "none",
        description="Also send training and evaluation scalars to TensorBoard (RUN_DIR/"
        "tensorboard) or Weights & Biases (offline unless WANDB_MODE is set).",
    )

    @property
    def caches_il_proposal(self) -> bool:
        """Whether the replay stores a_IL (``il_cache``): not with K > 1 proposal samples,
        which the current critic scores, a choice that cannot be stored."""
        return self.il_cache and self.il_proposal_samples == 1

    @model_validator(mode="after")
    def _il_bundle_given(self) -> "LearnerSettings":
        if self.il_kind == "srpo" and not self.il_bundle:
            raise ValueError("il_kind = srpo needs il_bundle (a tandem train-offline bundle)")
        if self.il_diffusion_ddim_steps > self.il_diffusion_train_steps:
            raise ValueError("il_diffusion_ddim_steps must be <= il_diffusion_train_steps")
        return self

    bridges: list[str] = Field(
        default_factory=lambda: ["tcp://127.0.0.1:5555"],
        description="ZMQ PUB endpoints of the bridges whose steps the learner consumes.",
    )
    weights_endpoint: str = Field(
        "tcp://127.0.0.1:5561", description="ZMQ PUB endpoint where policy weights are published."
    )
    metrics_endpoint: str = Field(
        "tcp://127.0.0.1:5562", description="ZMQ PUB endpoint where training metrics are published."
    )

    # ---- online learner (tandem learner; docs/learner_service.md)
    online_min_demos: int = Field(
        2,
        ge=0,
        description="Online learner: successful demonstration episodes to wait for before the "
        "IL pre-training and the first policy (ibrl, ibrl_soft, bc).",
    )
    online_min_demo_steps: int = Field(
        0,
        ge=0,
        description="Online learner: demonstration steps to wait for as well before the first "
        "policy.",
    )
    online_warmup_rollouts: int = Field(
        2,
        ge=0,
        description="Online learner (ibrl, ibrl_soft): rollout episodes acted by the IL policy "
        "alone (IL-only bundles, as the reference's warm-up) before the hybrid acts; the "
        "critic trains meanwhile.",
    )
    online_warmup_updates: int = Field(
        50_000,
        ge=0,
        description="Online learner (ibrl, ibrl_soft): critic updates done before the hybrid "
        "acts, whatever the rollout count: an undertrained critic prefers the untrained RL "
        "proposal (live sim:lift, cpu profile: the hybrid acting after 10k updates dropped "
        "the evaluation success from 0.8-1.0 to 0.0-0.4; 2-core CPU: about 13 updates/s).",
    )
    online_il_refit: Literal["scratch", "finetune"] = Field(
        "scratch",
        description="Online learner's IL refits (after new interventions or demos): scratch = "
        "a new IL policy whose state normaliser is fit on all imitation data (demos and "
        "interventions), trained as long as the pre-training; finetune = the current policy "
        "for learner_service.refit_steps (its normaliser stays the first demos').",
    )
    online_bc_dropout: float | None = Field(
        0.0,
        ge=0,
        lt=1,
        description="Online learner: dropout of the state IL policy; None = bc_dropout. A few "
        "demos plus interventions are too little data for bc_dropout's 0.5 (the policy creeps "
        "near the object instead of grasping it).",
    )

    # ---- Proto-RL pre-training and the curiosity bonus (tandem pretrain; docs/learner.md)
    encoder_init: str | None = Field(
        None,
        description="Pixel agents: start the ViT encoder from this tandem pretrain file "
        "(DIR/encoder.pt); None = random initialisation.",
    )
    encoder_init_mode: Literal["frozen", "finetune"] = Field(
        "frozen",
        description="With encoder_init: frozen = the critic never trains the encoder (as "
        "Proto-RL downstream); finetune = the critic trains it as a fresh one (as IBRL).",
    )
    intrinsic_bonus: float = Field(
        0.0,
        ge=0,
        description="Pixel agents: reward r + alpha * r_int with r_int the Proto-RL kNN "
        "novelty of the next observation under the encoder_init representation; 0 = off.",
    )
    proto_prototypes: int = Field(512, ge=2, description="Proto-RL: number M of prototypes.")
    proto_latent_dim: int = Field(128, ge=2, description="Proto-RL: width of the latent z.")
    proto_pred_hidden: int = Field(
        512, ge=1, description="Proto-RL: hidden width of the 2-layer predictor v."
    )
    proto_temperature: float = Field(
        0.1, gt=0, description="Proto-RL: softmax temperature of the prototype scores."
    )
    proto_sinkhorn_iters: int = Field(
        3, ge=1, description="Proto-RL: Sinkhorn-Knopp iterations of the target assignment."
    )
    proto_queue_batches: int = Field(
        4, ge=1, description="Proto-RL: batches T kept in the latent queue (M * T latents)."
    )
    proto_knn_k: int = Field(
        3, ge=1, description="Proto-RL: r_int is the distance to the k-th nearest queue latent."
    )
    proto_tau: float = Field(
        0.05, gt=0, le=1, description="Proto-RL: EMA rate of the target encoder and projector."
    )
    proto_lr: float = Field(
        1e-4, gt=0, description="Proto-RL: Adam learning rate of f, g, v and the prototypes."
    )

    @model_validator(mode="after")
    def _proto_consistent(self) -> "LearnerSettings":
        if self.intrinsic_bonus > 0 and not self.encoder_init:
            raise ValueError(
                "intrinsic_bonus > 0 needs encoder_init (the r_int representation of a "
                "tandem pretrain run, DIR/encoder.pt)"
            )
        if self.proto_knn_k > self.proto_prototypes:  # the first batch queues M latents
            raise ValueError("proto_knn_k must be <= proto_prototypes")
        return self
