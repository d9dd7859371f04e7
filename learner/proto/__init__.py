"""Proto-RL: reward-free pixel pre-training with prototypes, and its kNN curiosity reward.

``model`` (representation and learner), ``sinkhorn``, ``queue`` (latent queue, kNN reward),
``artifact`` (the encoder file) and ``coverage`` are pure; the runner of ``tandem pretrain``
(env, replay, episode files) is ``learner.pretrain``.
"""

from learner.proto.model import ProtoLearner, ProtoModel, make_encoder
from learner.proto.queue import LatentQueue, knn_reward
from learner.proto.sinkhorn import sinkhorn_knopp

__all__ = ["LatentQueue", "ProtoLearner", "ProtoModel", "knn_reward", "make_encoder",
           "sinkhorn_knopp"]  # fmt: skip
